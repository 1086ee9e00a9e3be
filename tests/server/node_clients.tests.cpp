// tests/server/node_clients.tests.cpp
//
// The server under test driven by two published Node.js beanstalkd clients
// at once, jackd and fivebeans: tests/server/node/clients.mjs runs a
// workload with both and checks the accounting (its header says what).
//
// The clients are installed once per build tree: `npm ci` from
// tests/server/node/package-lock.json into ./node-clients (ctest runs this
// in the build's tests/ folder), skipped while the lock copied there still
// matches. Needs node and npm (Debian packages nodejs and npm) and, for the
// install, the npm registry.
//
// CONQ_BEANSTALKD names the server, started on a free loopback port by
// beanstalk_wire.hpp's server_process (ctest sets it to conq-beanstalkd);
// beanstalkd itself must pass as well; from the build's tests/ folder:
//   CONQ_BEANSTALKD=/usr/bin/beanstalkd CONQ_TEST_SOURCE_DIR=<repo>/tests ./server_node_clients_tests
#include "beanstalk_wire.hpp"
#include "conq_catch.hpp"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The first executable called `name` on PATH, or an empty path.
fs::path find_program(const std::string& name) {
    std::string path = conq_test::env_or("PATH");
    if (path.empty()) path = "/usr/local/bin:/usr/bin:/bin";
    std::istringstream dirs(path);
    for (std::string dir; std::getline(dirs, dir, ':');) {
        const fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
        std::error_code ec;
        if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

// This process's environment with `extra` ("NAME=value") added or replacing.
std::vector<std::string> environment_with(const std::vector<std::string>& extra) {
    std::vector<std::string> result;
    for (char** entry = environ; *entry; ++entry) {
        const std::string text = *entry;
        const std::string name = text.substr(0, text.find('=') + 1);
        bool replaced = false;
        for (const auto& e : extra) replaced = replaced || e.compare(0, name.size(), name) == 0;
        if (!replaced) result.push_back(text);
    }
    result.insert(result.end(), extra.begin(), extra.end());
    return result;
}

struct run_result {
    bool timed_out = false;
    int exit_status = -1;  // -1 when killed by a signal
    std::string output;
};

// Runs a program (argv[0], a path) in `dir` to its end, with stdout and
// stderr into `log`, or kills its process group after `limit`.
run_result run(std::vector<std::string> argv, const fs::path& dir, const std::vector<std::string>& extra_env,
               std::chrono::seconds limit, const fs::path& log) {
    run_result result;
    conq_test::spawn_options o;
    o.dir = dir;
    o.env = environment_with(extra_env);
    o.output = log;
    o.own_group = true;
    std::optional<conq_test::child_process> child;
    try {
        child.emplace(std::move(argv), std::move(o));
    } catch (const std::system_error& e) {
        result.output = e.what();
        return result;
    }
    std::optional<int> status = child->wait_exit(limit);
    if (!status) {
        result.timed_out = true;
        child->kill(SIGKILL);
        status = child->wait_exit();
    }
    if (!result.timed_out && status && WIFEXITED(*status)) result.exit_status = WEXITSTATUS(*status);
    result.output = read_file(log);
    return result;
}

// `npm ci` of tests/server/node into `dir`, unless dir already holds an
// install of the same lock.
void install_clients(const fs::path& npm, const fs::path& source, const fs::path& dir) {
    const std::string lock = read_file(source / "package-lock.json");
    REQUIRE_FALSE(lock.empty());
    const fs::path stamp = dir / "installed-package-lock.json";
    if (read_file(stamp) == lock && fs::exists(dir / "node_modules" / "jackd" / "package.json") &&
        fs::exists(dir / "node_modules" / "fivebeans" / "package.json")) {
        return;
    }
    fs::create_directories(dir);
    fs::remove(stamp);
    for (const char* name : {"package.json", "package-lock.json"}) {
        fs::copy_file(source / name, dir / name, fs::copy_options::overwrite_existing);
    }
    const auto npm_ci = run({npm.string(), "ci", "--no-audit", "--no-fund"}, dir,
                            {"npm_config_update_notifier=false"}, 300s, dir / "npm-ci.log");
    INFO("npm ci in " << dir << " (the npm registry must be reachable):\n" << npm_ci.output);
    REQUIRE_FALSE(npm_ci.timed_out);
    REQUIRE(npm_ci.exit_status == 0);
    std::ofstream(stamp, std::ios::binary) << lock;
}

}  // namespace

TEST_CASE("jackd and fivebeans workers and producers share the server", "[server][node]") {
    const std::string program = conq_test::env_or("CONQ_BEANSTALKD");
    const std::string sources = conq_test::env_or("CONQ_TEST_SOURCE_DIR");
    if (program.empty() || sources.empty()) {
        FAIL("CONQ_BEANSTALKD (the server to test) and CONQ_TEST_SOURCE_DIR (the repository's tests/ "
             "folder) must be set; ctest sets both");
    }
    const fs::path node = find_program("node");
    const fs::path npm = find_program("npm");
    if (node.empty() || npm.empty()) {
        FAIL("node and npm must be on PATH for this test: install the Debian packages nodejs and npm "
             "(scripts/install-deps.sh)");
    }

    const fs::path source = fs::path(sources) / "server" / "node";
    const fs::path dir = fs::absolute("node-clients");
    install_clients(npm, source, dir);

    // Its output goes to the test's (ctest shows it on failure).
    conq_test::server_process server(program, {});

    // clients.mjs resolves the clients from its working directory (and NODE_PATH).
    const auto clients =
        run({node.string(), (source / "clients.mjs").string(), "127.0.0.1", std::to_string(server.port())}, dir,
            {"NODE_PATH=" + (dir / "node_modules").string()}, 120s, dir / "clients.log");
    INFO("node clients.mjs 127.0.0.1 " << server.port() << " against " << program << ":\n" << clients.output);
    REQUIRE_FALSE(clients.timed_out);
    REQUIRE(clients.exit_status == 0);
}

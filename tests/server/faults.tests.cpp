// tests/server/faults.tests.cpp
//
// A live in-memory server against clients that misbehave:
//
//   - workers that vanish in the middle of their work (a close without
//     quit, half a command line, half a put body, a half-close while a
//     reserve waits, a reset with replies unread) lose no job: what they
//     held is ready again at once, and a last worker drains every job
//     exactly once;
//   - random bytes and mutated commands (cut, doubled, flipped, NUL/CR/LF
//     inserted, huge numbers, overlong lines, put bodies shorter or longer
//     than announced, a 10 MB body over -z), sent in random pieces over many
//     connections, get well-formed protocol replies only; the server keeps
//     answering a fresh connection within a second, and the jobs of a
//     well-behaved connection working alongside all stay;
//   - a client that pipelines 100k commands and stops reading neither makes
//     the server hold its replies without bound nor slows other clients.
//
// CONQ_BEANSTALKD names the server (ctest sets it); beanstalkd 1.12 passes
// too: CONQ_BEANSTALKD=/usr/bin/beanstalkd ./server_faults_tests.
// CONQ_TEST_SEED repeats a run (each failure prints the seed);
// CONQ_STRESS_SCALE makes the rounds longer.
#include "beanstalk_wire.hpp"
#include "conq_catch.hpp"
#include "stress_config.hpp"
#include "watchdog.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <sstream>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CONQ_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CONQ_TEST_SANITIZED 1
#endif
#endif

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using conq_test::connection;
using conq_test::number_of;
using conq_test::reply_status;
using conq_test::server_process;
using conq_test::test_seed;
using conq_test::visible;
using conq_test::words_of;
using job_id = std::uint64_t;

#if defined(CONQ_TEST_SANITIZED)
// The server carries the same sanitizer, and with it shadow memory and a
// quarantine of freed blocks.
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif
constexpr auto reply_timeout = 5s;

// ---------------------------------------------------------------- helpers

std::string program_under_test() {
    std::string program = conq_test::env_or("CONQ_BEANSTALKD");
    if (program.empty()) FAIL("set CONQ_BEANSTALKD to the conq-beanstalkd program (ctest does)");
    return program;
}

std::string describe(const conq_test::reply& r) {
    switch (r.status) {
    case reply_status::ok: return "`" + visible(r.bytes) + "`";
    case reply_status::timeout: return "no reply in time (after `" + visible(r.bytes) + "`)";
    case reply_status::closed: return "the connection closed (after `" + visible(r.bytes) + "`)";
    }
    return "?";
}

/// A reply's first line without its CRLF.
std::string_view first_line(const std::string& bytes) {
    return std::string_view(bytes).substr(0, bytes.find("\r\n"));
}

/// The body of a RESERVED, FOUND or OK reply.
std::string_view body_of(const std::string& bytes) {
    const std::size_t start = bytes.find("\r\n") + 2;
    if (start < 2 || bytes.size() < start + 2) return {};
    return std::string_view(bytes).substr(start, bytes.size() - start - 2);
}

/// The value of `key` in a YAML reply body, or "".
std::string yaml_value(std::string_view body, std::string_view key) {
    std::string needle = "\n";  // appended: g++ 12 -O3 warns (-Wrestrict) on "literal" + std::string
    needle.append(key).append(": ");
    const std::size_t at = body.find(needle);
    if (at == std::string_view::npos) return {};
    const std::size_t start = at + needle.size();
    return std::string(body.substr(start, body.find('\n', start) - start));
}

std::uint64_t yaml_number(std::string_view body, std::string_view key) {
    return number_of(yaml_value(body, key)).value_or(~std::uint64_t{0});
}

/// Sends `text` and reads one reply; throws when none comes.
std::string ask(connection& c, std::string_view text, std::chrono::milliseconds timeout = reply_timeout) {
    if (!c.send(text)) throw std::runtime_error("cannot send `" + visible(text) + "`: the connection is gone");
    const conq_test::reply r = c.read_reply(timeout);
    if (!r.ok()) throw std::runtime_error("`" + visible(text) + "`: " + describe(r));
    return r.bytes;
}

/// The stats body, from a connection opened for it (which counts itself).
std::string fresh_stats(std::uint16_t port, std::chrono::milliseconds timeout) {
    connection c(port);
    return std::string(body_of(ask(c, "stats\r\n", timeout)));
}

bool valid_tube_name(std::string_view name) {
    if (name.empty() || name.size() > 200 || name.front() == '-') return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               std::string_view("-+/;.$_()").find(c) != std::string_view::npos;
    });
}

/// Why `bytes`, one reply as connection::read_reply returns it, is not a
/// reply of the beanstalkd protocol; empty when it is one.
std::string malformed(const std::string& bytes) {
    const std::size_t end = bytes.find("\r\n");
    if (end == std::string::npos) return "no CRLF";
    const std::string_view line(bytes.data(), end);
    if (line.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
        return "a control byte in the line";
    const auto words = words_of(line);
    const std::string_view word = words[0];
    static constexpr std::array<std::string_view, 17> bare{
        "OUT_OF_MEMORY", "INTERNAL_ERROR", "BAD_FORMAT", "UNKNOWN_COMMAND", "EXPECTED_CRLF", "JOB_TOO_BIG",
        "DRAINING",      "DEADLINE_SOON",  "TIMED_OUT",  "DELETED",         "NOT_FOUND",     "RELEASED",
        "BURIED",        "TOUCHED",        "NOT_IGNORED", "KICKED",         "PAUSED"};
    const bool has_body = bytes.size() > end + 2;
    if (words.size() == 1 && std::find(bare.begin(), bare.end(), word) != bare.end())
        return has_body ? "a body after a bare reply" : "";
    if (words.size() == 2 && (word == "INSERTED" || word == "BURIED" || word == "WATCHING" || word == "KICKED") &&
        number_of(words[1]))
        return has_body ? "a body after " + std::string(word) : "";
    if (words.size() == 2 && word == "USING") return valid_tube_name(words[1]) ? "" : "a bad tube name";
    std::optional<std::uint64_t> size;
    if (words.size() == 3 && (word == "RESERVED" || word == "FOUND") && number_of(words[1]))
        size = number_of(words[2]);
    if (words.size() == 2 && word == "OK") size = number_of(words[1]);
    if (!size) return "not a reply of the protocol";
    if (bytes.size() != end + 2 + *size + 2 || bytes.compare(bytes.size() - 2, 2, "\r\n") != 0)
        return "a body of another size than announced";
    if (word == "OK" && bytes.compare(end + 2, 4, "---\n") != 0) return "an OK body that is not YAML";
    return "";
}

/// Resident memory of a process, in KiB (0 if unknown).
std::uint64_t resident_kib(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
    return 0;
}

/// CPU time a process has used (user and system).
std::chrono::milliseconds cpu_time(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::string field;
    unsigned long long user = 0, system = 0;
    for (int i = 3; fields >> field; ++i) {  // field 14 is utime, 15 stime
        if (i == 14) user = std::strtoull(field.c_str(), nullptr, 10);
        if (i == 15) {
            system = std::strtoull(field.c_str(), nullptr, 10);
            break;
        }
    }
    const long ticks = ::sysconf(_SC_CLK_TCK);
    const auto per_second = static_cast<unsigned long long>(ticks > 0 ? ticks : 100);
    return std::chrono::milliseconds((user + system) * 1000 / per_second);
}

/// The end of a server sent SIGTERM: exit status 0, or (beanstalkd) the signal.
bool clean_exit(int status) {
    return (WIFEXITED(status) && WEXITSTATUS(status) == 0) || (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
}

/// Polls `done` every 5 ms until it holds or `limit` passes.
template <class F>
bool eventually(F done, std::chrono::milliseconds limit) {
    const auto deadline = clock_type::now() + limit;
    for (;;) {
        if (done()) return true;
        if (clock_type::now() >= deadline) return false;
        std::this_thread::sleep_for(5ms);
    }
}

// ------------------------------------------------------ vanishing workers

enum class vanish : std::uint8_t {
    close,             // closes without quit, between commands
    half_line,         // "delete <a held id>" without its CRLF, then closes
    cr_only,           // the same line ended by CR alone
    half_body,         // a put header and half its body, then closes
    waiting_reserve,   // a reserve waits; the worker half-closes (TIMED_OUT first)
    reset,             // closes with a reply unread: the server gets a reset
    pipelined,         // sends reserves and closes at once, reading nothing
};
constexpr std::array<vanish, 7> all_ways{vanish::close,           vanish::half_line, vanish::cr_only,
                                         vanish::half_body,       vanish::waiting_reserve, vanish::reset,
                                         vanish::pipelined};

std::string_view name_of(vanish v) {
    switch (v) {
    case vanish::close: return "close without quit";
    case vanish::half_line: return "half a command line";
    case vanish::cr_only: return "a line ended by CR alone";
    case vanish::half_body: return "half a put body";
    case vanish::waiting_reserve: return "half-close while a reserve waits";
    case vanish::reset: return "reset with a reply unread";
    case vanish::pipelined: return "pipelined reserves, closed unread";
    }
    return "?";
}

struct worker {
    int index = 0;
    vanish how = vanish::close;
    std::optional<connection> link;
    std::vector<job_id> held;
};

// ----------------------------------------------------------- fuzz input

/// Commands of the protocol, some well-formed and some near it, over the
/// tubes fz, fz.b and default and ids 0 to 300.
class command_source {
public:
    explicit command_source(std::mt19937_64& rng) : rng_(rng) {}

    std::string one() {
        const auto id = [&] { return std::to_string(rng_() % 301); };
        const auto tube = [&] {
            static constexpr std::array<std::string_view, 3> tubes{"fz", "fz.b", "default"};
            return std::string(tubes[rng_() % tubes.size()]);
        };
        const auto small = [&] { return std::to_string(rng_() % 3); };
        switch (rng_() % 27) {
        case 0:
        case 1:
        case 2: {
            static constexpr std::array<std::size_t, 7> sizes{0, 1, 17, 300, 4095, 4096, 4097};
            const std::size_t size = sizes[rng_() % sizes.size()];
            std::string body(size, 'b');
            for (char& c : body) c = static_cast<char>(rng_() & 0xff);
            return "put " + std::to_string(rng_() % 2000) + " " + small() + " " + std::to_string(1 + rng_() % 5) +
                   " " + std::to_string(size) + "\r\n" + body + "\r\n";
        }
        case 3: return "use " + tube() + "\r\n";
        case 4: return "watch " + tube() + "\r\n";
        case 5: return "ignore " + tube() + "\r\n";
        case 6: return "reserve-with-timeout " + small() + "\r\n";
        case 7: return "reserve\r\n";
        case 8: return "reserve-job " + id() + "\r\n";
        case 9: return "delete " + id() + "\r\n";
        case 10: return "release " + id() + " " + small() + " " + small() + "\r\n";
        case 11: return "bury " + id() + " " + small() + "\r\n";
        case 12: return "touch " + id() + "\r\n";
        case 13: return "kick " + small() + "\r\n";
        case 14: return "kick-job " + id() + "\r\n";
        case 15: return "peek " + id() + "\r\n";
        case 16: return "peek-ready\r\n";
        case 17: return "peek-delayed\r\n";
        case 18: return "peek-buried\r\n";
        case 19: return "stats\r\n";
        case 20: return "stats-job " + id() + "\r\n";
        case 21: return "stats-tube " + tube() + "\r\n";
        case 22: return "list-tubes\r\n";
        case 23: return "list-tube-used\r\n";
        case 24: return "list-tubes-watched\r\n";
        case 25: return "pause-tube " + tube() + " " + small() + "\r\n";
        default: return rng_() % 8 == 0 ? "quit\r\n" : "stats-tube fz\r\n";
        }
    }

    /// One of the ways input goes wrong, applied to `s`.
    void mutate(std::string& s) {
        const auto at = [&] { return static_cast<std::size_t>(rng_() % (s.size() + 1)); };
        switch (rng_() % 9) {
        case 0: s.resize(at()); break;  // cut
        case 1: {                        // a piece doubled
            const std::size_t from = at(), length = std::min<std::size_t>(rng_() % 64, s.size() - from);
            s.insert(at(), s.substr(from, length));
            break;
        }
        case 2:  // bytes flipped
            for (int n = 1 + static_cast<int>(rng_() % 4); n > 0 && !s.empty(); --n)
                s[rng_() % s.size()] ^= static_cast<char>(1 + rng_() % 255);
            break;
        case 3: {  // NUL, CR, LF, space inserted
            static constexpr std::array<char, 5> bytes{'\0', '\r', '\n', ' ', '\t'};
            s.insert(at(), 1, bytes[rng_() % bytes.size()]);
            break;
        }
        case 4: {  // a number made huge, or signed
            static constexpr std::array<std::string_view, 7> numbers{
                "4294967295", "4294967296", "18446744073709551615", "18446744073709551616",
                "99999999999999999999999999999999", "-1", "+7"};
            const std::size_t digit = s.find_first_of("0123456789", at());
            if (digit == std::string::npos) break;
            const std::size_t end = std::min(s.find_first_not_of("0123456789", digit), s.size());
            s.replace(digit, end - digit, numbers[rng_() % numbers.size()]);
            break;
        }
        case 5: {  // an overlong line, up to several KiB
            static constexpr std::array<char, 4> fill{'a', '9', ' ', '\r'};
            s.insert(at(), 200 + rng_() % 8000, fill[rng_() % fill.size()]);
            break;
        }
        case 6: {  // a put body shorter or longer than announced
            const std::size_t announced = rng_() % 64, sent = rng_() % 64;
            s.insert(at(), "put 1 0 1 " + std::to_string(announced) + "\r\n" + std::string(sent, 'x') + "\r\n");
            break;
        }
        case 7: s.insert(at(), 1, static_cast<char>(rng_() & 0xff)); break;
        default: s.erase(at(), rng_() % 8); break;
        }
    }

    /// Bytes for one connection: random bytes, or commands with mistakes.
    std::string input() {
        std::string s;
        const auto kind = rng_() % 8;
        if (kind == 0) {  // random bytes
            s.resize(rng_() % 512);
            for (char& c : s) c = static_cast<char>(rng_() & 0xff);
        } else if (kind == 1) {  // random bytes from the protocol's own alphabet
            static constexpr std::string_view alphabet = "abcdeikloprstuvwy-0123456789  \r\n\r\n";
            s.resize(rng_() % 512);
            for (char& c : s) c = alphabet[rng_() % alphabet.size()];
        } else {
            for (std::size_t n = 1 + rng_() % 12; n > 0; --n) s += one();
            for (std::size_t n = rng_() % 4; n > 0; --n) mutate(s);
        }
        return s;
    }

private:
    std::mt19937_64& rng_;
};

/// What went wrong on one fuzz connection (empty if nothing did); counts
/// the replies it read in `replies`, by their first word.
std::string run_fuzz_connection(std::uint16_t port, const std::string& input, std::uint64_t seed,
                                std::map<std::string, std::size_t>& replies) {
    std::mt19937_64 rng(seed);
    std::optional<connection> c;
    try {
        c.emplace(port);
    } catch (const std::system_error& e) {
        return std::string("cannot connect: ") + e.what();
    }
    // Random pieces, sometimes with a pause between them, so that the
    // server sees lines and bodies cut anywhere.
    for (std::size_t at = 0; at < input.size();) {
        const std::size_t length = std::min<std::size_t>(input.size() - at, 1 + rng() % 700);
        if (!c->send(std::string_view(input).substr(at, length))) break;  // quit, or the server closed
        at += length;
        if (rng() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    }
    if (rng() % 5 == 0) return {};  // vanishes without reading anything
    // Half-closed, the server answers what is whole (a waiting reserve
    // TIMED_OUT) and closes.
    c->shutdown_write();
    for (std::size_t count = 0;; ++count) {
        const conq_test::reply r = c->read_reply(reply_timeout);
        if (r.status == reply_status::closed) {
            if (!r.bytes.empty()) return "the connection closed in the middle of a reply: `" + visible(r.bytes) + "`";
            return {};
        }
        if (r.status == reply_status::timeout)
            return "after the half-close and " + std::to_string(count) + " replies, neither a reply nor the close "
                   "within " + std::to_string(reply_timeout.count()) + " s; got `" + visible(r.bytes) + "`";
        if (const std::string why = malformed(r.bytes); !why.empty())
            return "reply " + std::to_string(count + 1) + " `" + visible(r.bytes) + "`: " + why;
        ++replies[std::string(words_of(first_line(r.bytes))[0])];
    }
}

/// A connection that behaves, working beside the fuzz: puts jobs into its
/// own tube, reserves each at once (then nothing other connections send can
/// move it) and checks them now and then; deletes some.
class steady_client {
public:
    steady_client(std::uint16_t port, std::uint64_t seed)
        : link_(port), rng_(seed), tube_("steady-" + std::to_string(seed % 1000000007)) {}

    void run(const std::stop_token& stop) {
        try {
            expect(ask(link_, "use " + tube_ + "\r\n"), "USING " + tube_);
            expect(ask(link_, "watch " + tube_ + "\r\n"), "WATCHING 2");
            expect(ask(link_, "ignore default\r\n"), "WATCHING 1");
            while (!stop.stop_requested() && failure_.empty()) {
                step();
                std::this_thread::sleep_for(1ms);
            }
        } catch (const std::exception& e) {
            failure_ = e.what();
        }
    }

    [[nodiscard]] const std::string& failure() const noexcept { return failure_; }
    [[nodiscard]] const std::map<job_id, std::string>& held() const noexcept { return held_; }
    [[nodiscard]] const std::string& tube() const noexcept { return tube_; }
    [[nodiscard]] std::size_t puts() const noexcept { return puts_; }
    connection& link() noexcept { return link_; }

private:
    void expect(const std::string& got, std::string_view wanted) {
        if (first_line(got) != wanted && failure_.empty())
            failure_ = "steady connection: expected " + std::string(wanted) + ", got `" + visible(got) + "`";
    }

    void step() {
        std::string body = "steady-" + std::to_string(++puts_) + ":";
        body.resize(body.size() + rng_() % 600);
        for (std::size_t i = body.find(':') + 1; i < body.size(); ++i) body[i] = static_cast<char>(rng_() & 0xff);
        // One write: the server reads the put and the reserve together, so
        // that no other connection can take the job in between.
        const std::string text = "put " + std::to_string(rng_() % 5000) + " 0 3600 " + std::to_string(body.size()) +
                                 "\r\n" + body + "\r\nreserve-with-timeout 0\r\n";
        if (!link_.send(text)) throw std::runtime_error("steady connection: the server closed it");
        const conq_test::reply inserted = link_.read_reply(reply_timeout);
        const conq_test::reply reserved = link_.read_reply(reply_timeout);
        const auto words = words_of(first_line(inserted.bytes));
        const auto id =
            inserted.ok() && words.size() == 2 && words[0] == "INSERTED" ? number_of(words[1]) : std::nullopt;
        if (!id) {
            failure_ = "steady connection: put got " + describe(inserted);
            return;
        }
        const std::string wanted = "RESERVED " + std::to_string(*id) + " " + std::to_string(body.size());
        if (!reserved.ok() || first_line(reserved.bytes) != wanted || body_of(reserved.bytes) != body) {
            failure_ = "steady connection: expected " + wanted + " with the body just put, got " + describe(reserved);
            return;
        }
        held_.emplace(*id, std::move(body));
        // Now and then: one of the jobs checked, or deleted.
        const auto roll = rng_() % 8;
        if (roll == 0 || held_.size() > 300) {
            auto it = std::next(held_.begin(), static_cast<std::ptrdiff_t>(rng_() % held_.size()));
            expect(ask(link_, "delete " + std::to_string(it->first) + "\r\n"), "DELETED");
            held_.erase(it);
        } else if (roll == 1) {
            auto it = std::next(held_.begin(), static_cast<std::ptrdiff_t>(rng_() % held_.size()));
            const std::string found = ask(link_, "peek " + std::to_string(it->first) + "\r\n");
            expect(found, "FOUND " + std::to_string(it->first) + " " + std::to_string(it->second.size()));
            if (body_of(found) != it->second && failure_.empty())
                failure_ = "steady connection: job " + std::to_string(it->first) + " changed its body";
        }
    }

    connection link_;
    std::mt19937_64 rng_;
    std::string tube_;
    std::map<job_id, std::string> held_;
    std::size_t puts_ = 0;
    std::string failure_;
};

}  // namespace

TEST_CASE("workers that vanish mid-command lose no job", "[server][faults]") {
    const std::string program = program_under_test();
    const std::uint64_t seed = test_seed();
    INFO("seed " << seed << " (CONQ_TEST_SEED=" << seed << " repeats this run)");
    conq_test::watchdog guard("vanishing workers", std::chrono::seconds(120 * conq_test::stress_scale()));
    std::mt19937_64 rng(seed);
    server_process server(program, {});
    const std::uint16_t port = server.port();

    connection observer(port);
    connection producer(port);
    REQUIRE(first_line(ask(producer, "use work\r\n")) == "USING work");
    const std::size_t job_count = conq_test::scaled(120);
    std::set<job_id> put_ids;
    std::map<job_id, std::string> bodies;
    for (std::size_t i = 0; i < job_count; ++i) {
        std::string body = "job-" + std::to_string(i) + ":" + std::string(rng() % 300, 'j');
        // A long time-to-run: a job comes back only because its worker went.
        const std::string inserted = ask(producer, "put " + std::to_string(rng() % 3000) + " 0 3600 " +
                                                       std::to_string(body.size()) + "\r\n" + body + "\r\n");
        const auto words = words_of(first_line(inserted));
        REQUIRE(words.size() == 2);
        REQUIRE(words[0] == "INSERTED");
        const job_id id = number_of(words[1]).value_or(0);
        REQUIRE(put_ids.insert(id).second);
        bodies.emplace(id, std::move(body));
    }

    const auto state_of = [&](job_id id) {
        return yaml_value(body_of(ask(observer, "stats-job " + std::to_string(id) + "\r\n")), "state");
    };
    const auto connections_now = [&] {
        return yaml_number(body_of(ask(observer, "stats\r\n")), "current-connections");
    };

    // Workers, each holding one to four jobs; some delete or release one.
    std::set<job_id> deleted;
    std::vector<worker> workers;
    const std::size_t worker_count = all_ways.size() * 2 * conq_test::stress_scale();
    for (std::size_t i = 0; i < worker_count; ++i) {
        worker& w = workers.emplace_back();
        w.index = static_cast<int>(i);
        w.how = all_ways[i % all_ways.size()];
        w.link.emplace(port);
        REQUIRE(first_line(ask(*w.link, "watch work\r\n")) == "WATCHING 2");
        REQUIRE(first_line(ask(*w.link, "ignore default\r\n")) == "WATCHING 1");
        for (std::size_t n = 1 + rng() % 4; n > 0; --n) {
            const std::string reserved = ask(*w.link, "reserve-with-timeout 0\r\n");
            const auto words = words_of(first_line(reserved));
            REQUIRE(words.size() == 3);
            REQUIRE(words[0] == "RESERVED");
            const job_id id = number_of(words[1]).value_or(0);
            REQUIRE(put_ids.count(id));
            REQUIRE(body_of(reserved) == bodies.at(id));
            w.held.push_back(id);
        }
        if (w.held.size() > 1 && rng() % 2 == 0) {
            const job_id id = w.held.back();
            w.held.pop_back();
            REQUIRE(first_line(ask(*w.link, "delete " + std::to_string(id) + "\r\n")) == "DELETED");
            deleted.insert(id);
        }
        if (w.held.size() > 1 && rng() % 3 == 0) {
            const job_id id = w.held.back();
            w.held.pop_back();
            REQUIRE(first_line(ask(*w.link, "release " + std::to_string(id) + " 7 0\r\n")) == "RELEASED");
        }
    }
    std::size_t open = 2 + workers.size();  // the observer, the producer, the workers
    REQUIRE(connections_now() == open);

    std::shuffle(workers.begin(), workers.end(), rng);
    std::size_t half_puts = 0;
    for (worker& w : workers) {
        INFO("worker " << w.index << " vanishes: " << name_of(w.how) << ", holding " << w.held.size() << " jobs");
        for (const job_id id : w.held) REQUIRE(state_of(id) == "reserved");
        connection& link = *w.link;
        switch (w.how) {
        case vanish::close: break;
        case vanish::half_line:
            REQUIRE(link.send("delete " + std::to_string(w.held.front())));
            break;
        case vanish::cr_only:
            REQUIRE(link.send("delete " + std::to_string(w.held.front()) + "\r"));
            break;
        case vanish::half_body:
            REQUIRE(link.send("put 0 0 60 100\r\n" + std::string(50, 'h')));
            ++half_puts;
            break;
        case vanish::waiting_reserve: {
            const std::string idle = "idle-" + std::to_string(w.index);
            REQUIRE(first_line(ask(link, "watch " + idle + "\r\n")) == "WATCHING 2");
            REQUIRE(first_line(ask(link, "ignore work\r\n")) == "WATCHING 1");
            const auto waiting = [&] { return yaml_number(body_of(ask(observer, "stats\r\n")), "current-waiting"); };
            const auto waiting_before = waiting();
            REQUIRE(link.send("reserve\r\n"));
            REQUIRE(eventually([&] { return waiting() == waiting_before + 1; }, 2s));
            link.shutdown_write();
            const conq_test::reply r = link.read_reply(reply_timeout);
            INFO("the waiting reserve, after the half-close: " << describe(r));
            REQUIRE(r.ok());
            REQUIRE(r.bytes == "TIMED_OUT\r\n");
            REQUIRE(link.at_eof(reply_timeout));
            break;
        }
        case vanish::reset:
            REQUIRE(link.send("stats\r\n"));
            std::this_thread::sleep_for(50ms);  // the reply waits unread in this socket
            break;
        case vanish::pipelined:
            REQUIRE(link.send("reserve-with-timeout 0\r\nreserve-with-timeout 0\r\nreserve-with-timeout 0\r\n"));
            break;
        }
        w.link.reset();
        --open;
        // The server notices the close on its next turn: the jobs are ready
        // again then, not at the end of their hour of time-to-run. (A
        // half-sent delete must not have run.)
        for (const job_id id : w.held) {
            INFO("job " << id);
            CHECK(eventually([&] { return state_of(id) == "ready"; }, 2s));
        }
        CHECK(eventually([&] { return connections_now() == open; }, 2s));
    }

    // One clean worker takes every job left, each once.
    connection drainer(port);
    ++open;
    REQUIRE(first_line(ask(drainer, "watch work\r\n")) == "WATCHING 2");
    REQUIRE(first_line(ask(drainer, "ignore default\r\n")) == "WATCHING 1");
    std::set<job_id> drained;
    for (;;) {
        const std::string reserved = ask(drainer, "reserve-with-timeout 0\r\n");
        if (reserved == "TIMED_OUT\r\n") break;
        const auto words = words_of(first_line(reserved));
        REQUIRE(words.size() == 3);
        REQUIRE(words[0] == "RESERVED");
        const job_id id = number_of(words[1]).value_or(0);
        INFO("job " << id);
        REQUIRE(put_ids.count(id));
        REQUIRE_FALSE(deleted.count(id));
        REQUIRE(drained.insert(id).second);
        REQUIRE(body_of(reserved) == bodies.at(id));
        REQUIRE(first_line(ask(drainer, "delete " + std::to_string(id) + "\r\n")) == "DELETED");
    }
    CHECK(drained.size() + deleted.size() == job_count);
    for (const job_id id : put_ids) {
        INFO("job " << id);
        CHECK(drained.count(id) + deleted.count(id) == 1);
    }

    const std::string stats = std::string(body_of(ask(observer, "stats\r\n")));
    INFO("stats:\n" << stats);
    for (const char* key : {"current-jobs-urgent", "current-jobs-ready", "current-jobs-reserved",
                            "current-jobs-delayed", "current-jobs-buried", "current-waiting"}) {
        INFO(key);
        CHECK(yaml_number(stats, key) == 0);
    }
    CHECK(yaml_number(stats, "total-jobs") == job_count);  // half a put body makes no job
    CHECK(yaml_number(stats, "cmd-put") == job_count + half_puts);
    CHECK(yaml_number(stats, "current-connections") == open);
    // The tubes of the workers that waited went with them.
    const std::string tubes(body_of(ask(observer, "list-tubes\r\n")));
    CHECK(tubes.find("idle-") == std::string::npos);
    CHECK(clean_exit(server.stop()));
}

TEST_CASE("malformed or truncated or oversized input gets protocol replies only", "[server][faults]") {
    const std::string program = program_under_test();
    const std::uint64_t seed = test_seed();
    INFO("seed " << seed << " (CONQ_TEST_SEED=" << seed << " repeats this run)");
    conq_test::watchdog guard("malformed input", std::chrono::seconds(240 * conq_test::stress_scale()));
    std::mt19937_64 rng(seed);
    constexpr std::size_t max_job_size = 4096;
    server_process server(program, {"-z", std::to_string(max_job_size)});
    const std::uint16_t port = server.port();

    steady_client steady(port, rng());
    std::jthread steady_thread([&](const std::stop_token& stop) { steady.run(stop); });

    // A body far over -z, announced and sent: read through, then refused.
    {
        connection big(port);
        const std::size_t size = 10u << 20;
        REQUIRE(big.send("put 0 0 10 " + std::to_string(size) + "\r\n"));
        const std::string chunk(1u << 16, 'z');
        for (std::size_t sent = 0; sent < size; sent += chunk.size()) REQUIRE(big.send(chunk));
        REQUIRE(big.send("\r\nstats\r\n"));
        const conq_test::reply refused = big.read_reply(10s);
        INFO("10 MB put over -z " << max_job_size << ": " << describe(refused));
        CHECK(refused.bytes == "JOB_TOO_BIG\r\n");
        const conq_test::reply stats = big.read_reply(reply_timeout);
        CHECK(malformed(stats.bytes).empty());
        CHECK(first_line(stats.bytes).substr(0, 3) == "OK ");
    }

    command_source source(rng);
    const std::size_t batches = conq_test::scaled(150);
    constexpr std::size_t connections_per_batch = 6;
    std::size_t inputs = 0, bytes = 0;
    std::map<std::string, std::size_t> replies;
    for (std::size_t batch = 0; batch < batches; ++batch) {
        INFO("batch " << batch + 1 << " of " << batches);
        std::vector<std::string> input(connections_per_batch);
        std::vector<std::uint64_t> seeds(connections_per_batch);
        std::vector<std::string> failure(connections_per_batch);
        std::vector<std::map<std::string, std::size_t>> counts(connections_per_batch);
        for (std::size_t i = 0; i < connections_per_batch; ++i) {
            input[i] = source.input();
            seeds[i] = rng();
            bytes += input[i].size();
        }
        std::vector<std::thread> threads;
        for (std::size_t i = 0; i < connections_per_batch; ++i)
            threads.emplace_back([&, i] { failure[i] = run_fuzz_connection(port, input[i], seeds[i], counts[i]); });
        for (auto& t : threads) t.join();
        inputs += connections_per_batch;
        for (const auto& c : counts)
            for (const auto& [word, n] : c) replies[word] += n;
        if (const auto status = server.wait_exit(0ms)) {
            std::string sent;
            for (std::size_t i = 0; i < connections_per_batch; ++i)
                sent += "\n  connection " + std::to_string(i) + ": `" + visible(input[i], 600) + "`";
            FAIL("the server " << server_process::describe_status(*status) << " during a batch that sent:" << sent);
        }
        for (std::size_t i = 0; i < connections_per_batch; ++i) {
            if (failure[i].empty()) continue;
            FAIL("connection " << i << ", which sent `" << visible(input[i], 600) << "`:\n  " << failure[i]);
        }
        // A fresh connection is answered within a second.
        const auto asked = clock_type::now();
        std::string stats;
        try {
            stats = fresh_stats(port, 1000ms);
        } catch (const std::exception& e) {
            FAIL("a fresh connection's stats after the batch: " << e.what());
        }
        CHECK(clock_type::now() - asked < 1s);
        CHECK(stats.rfind("---\n", 0) == 0);
        if (!steady.failure().empty()) FAIL(steady.failure());
    }

    steady_thread.request_stop();
    steady_thread.join();
    if (!steady.failure().empty()) FAIL(steady.failure());
    std::string counted;
    for (const auto& [word, n] : replies) counted += " " + word + " " + std::to_string(n);
    std::printf("faults: %zu inputs, %zu bytes; replies:%s; the steady connection put %zu jobs\n", inputs, bytes,
                counted.c_str(), steady.puts());
    INFO(inputs << " inputs, " << bytes << " bytes; the steady connection holds " << steady.held().size()
                << " of its " << steady.puts() << " jobs");
    REQUIRE(steady.puts() > 0);

    // Every job of the steady connection is there, reserved, as put.
    connection checker(port);
    for (const auto& [id, body] : steady.held()) {
        INFO("job " << id << " of the steady connection");
        const std::string found = ask(checker, "peek " + std::to_string(id) + "\r\n");
        CHECK(first_line(found) == "FOUND " + std::to_string(id) + " " + std::to_string(body.size()));
        CHECK(body_of(found) == body);
        const std::string yaml(body_of(ask(checker, "stats-job " + std::to_string(id) + "\r\n")));
        CHECK(yaml_value(yaml, "state") == "reserved");
        CHECK(yaml_value(yaml, "tube") == steady.tube());
    }
    const std::string tube_stats(body_of(ask(checker, "stats-tube " + steady.tube() + "\r\n")));
    CHECK(yaml_number(tube_stats, "current-jobs-reserved") == steady.held().size());
    for (const auto& [id, body] : steady.held())
        CHECK(first_line(ask(steady.link(), "delete " + std::to_string(id) + "\r\n")) == "DELETED");

    const int status = server.stop();
    INFO("the server, sent SIGTERM, " << server_process::describe_status(status));
    CHECK(clean_exit(status));
}

TEST_CASE("a client that stops reading holds back neither memory nor other clients", "[server][faults]") {
    const std::string program = program_under_test();
    const std::uint64_t seed = test_seed();
    INFO("seed " << seed << " (CONQ_TEST_SEED=" << seed << " repeats this run)");
    conq_test::watchdog guard("slow readers", std::chrono::seconds(240 * conq_test::stress_scale()));
    server_process server(program, {});
    const std::uint16_t port = server.port();

    connection setup(port);
    std::mt19937_64 rng(seed);
    std::string body(2048, 'p');
    for (char& c : body) c = static_cast<char>(rng() & 0xff);
    const std::string inserted = ask(setup, "put 0 0 60 2048\r\n" + body + "\r\n");
    const auto words = words_of(first_line(inserted));
    REQUIRE(words.size() == 2);
    const job_id id = number_of(words[1]).value_or(0);
    REQUIRE(id != 0);
    const std::uint64_t rss_before = resident_kib(server.pid());
    REQUIRE(rss_before > 0);

    // Two clients pipeline many commands and read nothing: 2 KiB peeks on
    // one, stats on the other, about 200 MB and 100 MB of replies.
    const std::size_t commands = 100000;
    std::string peeks, stats;
    for (std::size_t i = 0; i < commands; ++i) {
        peeks += "peek " + std::to_string(id) + "\r\n";
        stats += "stats\r\n";
    }
    connection peeker(port);
    connection stats_reader(port);
    std::atomic<int> sent{0};
    std::jthread senders([&] {
        sent += peeker.send(peeks);
        sent += stats_reader.send(stats);
    });

    // Meanwhile, and once they are stuck, another client is served at once.
    connection other(port);
    auto slowest = 0ms;
    for (int i = 0; i < 40; ++i) {
        const auto asked = clock_type::now();
        const std::string reply = ask(other, "stats\r\n", 2s);
        slowest = std::max(slowest, std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - asked));
        CHECK(malformed(reply).empty());
        std::this_thread::sleep_for(25ms);
    }
    senders.join();
    INFO("the slowest stats took " << slowest.count() << " ms");
    CHECK(slowest < 1s);
    CHECK(sent == 2);  // both sent everything: the input was taken in or buffered

    // Stuck, they cost the server a bounded amount of memory, and no CPU.
    const auto cpu_before = cpu_time(server.pid());
    std::this_thread::sleep_for(500ms);
    const auto cpu_idle = cpu_time(server.pid()) - cpu_before;
    const std::uint64_t rss_stuck = resident_kib(server.pid());
    const std::uint64_t allowed_kib = sanitized ? 256 * 1024 : 64 * 1024;
    INFO("server resident memory: " << rss_before << " KiB before, " << rss_stuck << " KiB with both stuck; "
                                    << cpu_idle.count() << " ms of CPU in 500 ms");
    CHECK(rss_stuck < rss_before + allowed_kib);
    CHECK(cpu_idle < 250ms);
    CHECK(first_line(ask(other, "peek " + std::to_string(id) + "\r\n")) == "FOUND " + std::to_string(id) + " 2048");

    // One reads everything after all: every reply, in order, whole.
    std::size_t found = 0;
    for (; found < commands; ++found) {
        const conq_test::reply r = peeker.read_reply(10s);
        if (!r.ok() || first_line(r.bytes) != "FOUND " + std::to_string(id) + " 2048" || body_of(r.bytes) != body) {
            FAIL_CHECK("reply " << found + 1 << " of " << commands << " to the pipelined peeks: " << describe(r));
            break;
        }
    }
    CHECK(found == commands);
    // The other goes with its replies unread.
    stats_reader.close();
    const auto connections = [&] { return yaml_number(body_of(ask(other, "stats\r\n")), "current-connections"); };
    CHECK(eventually([&] { return connections() == 3; }, 2s));  // setup, peeker, other
    const std::uint64_t rss_after = resident_kib(server.pid());
    INFO("server resident memory after: " << rss_after << " KiB");
    CHECK(rss_after < rss_before + allowed_kib);
    CHECK(clean_exit(server.stop()));
}

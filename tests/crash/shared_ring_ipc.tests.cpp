// conq::shared_ring between real processes. The test forks and executes
// this same program again, running only the hidden test case
// "[.shm_child]", which plays a producer or a consumer as the environment
// says. Checked:
//   - one producer process, one consumer: every item exactly once, in order;
//   - three producer processes, one consumer: every item exactly once, each
//     producer's items in order;
//   - a producer killed with SIGKILL: the consumer drains what was pushed
//     and then pop() returns nullopt (peer_gone()), no wait forever;
//   - a consumer killed with SIGKILL: push() returns false once the ring is
//     full (peer_gone()), no wait forever.
#include "conq_catch.hpp"
#include "watchdog.hpp"

#include <conq/mpmc_ring.hpp>
#include <conq/shared_ring.hpp>
#include <conq/spsc_ring.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

struct item {
    std::uint64_t producer;
    std::uint64_t seq;
    std::uint64_t check;  // a function of the two above: a torn item shows
};

constexpr std::uint64_t check_of(std::uint64_t p, std::uint64_t s) { return (p * 0x9e3779b97f4a7c15ULL) ^ (s * 31 + 7); }

using spsc_t = conq::spsc_ring<item, conq::shared_memory, conq::blocking>;
using mpmc_t = conq::mpmc_ring<item, conq::mpsc, conq::shared_memory, conq::blocking>;

std::string unique_name(const char* tag) {
    return "/conq-ipc-" + std::string(tag) + "-" + std::to_string(::getpid());
}

/// Starts this program again as a child playing `role` on ring `name`.
pid_t spawn(const std::string& kind, const std::string& role, const std::string& name, std::uint64_t id,
            std::uint64_t count) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::setenv("CONQ_SHM_KIND", kind.c_str(), 1);
        ::setenv("CONQ_SHM_ROLE", role.c_str(), 1);
        ::setenv("CONQ_SHM_NAME", name.c_str(), 1);
        ::setenv("CONQ_SHM_ID", std::to_string(id).c_str(), 1);
        ::setenv("CONQ_SHM_COUNT", std::to_string(count).c_str(), 1);
        ::execl("/proc/self/exe", "/proc/self/exe", "[.shm_child]", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    return pid;
}

int wait_exit(pid_t pid) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return status;
}

template <class Ring>
void child_main(const std::string& role, const std::string& name, std::uint64_t id, std::uint64_t count) {
    if (role == "producer" || role == "producer-forever") {
        auto q = conq::shared_ring<Ring>::open(name, conq::shared_role::producer);
        for (std::uint64_t s = 1; role == "producer-forever" || s <= count; ++s)
            if (!q.push(item{id, s, check_of(id, s)})) ::_exit(3);
        ::_exit(0);
    }
    if (role == "consumer-forever") {
        auto q = conq::shared_ring<Ring>::open(name, conq::shared_role::consumer);
        for (;;) {
            auto v = q.pop();
            if (!v || v->check != check_of(v->producer, v->seq)) ::_exit(4);
        }
    }
    ::_exit(5);
}

}  // namespace

// The child's part: hidden, run only by spawn().
TEST_CASE("shared ring child process", "[.shm_child]") {
    const char* kind = std::getenv("CONQ_SHM_KIND");
    const char* role = std::getenv("CONQ_SHM_ROLE");
    const char* name = std::getenv("CONQ_SHM_NAME");
    if (!kind || !role || !name) ::_exit(6);
    const std::uint64_t id = std::strtoull(std::getenv("CONQ_SHM_ID"), nullptr, 10);
    const std::uint64_t count = std::strtoull(std::getenv("CONQ_SHM_COUNT"), nullptr, 10);
    if (std::string(kind) == "spsc") child_main<spsc_t>(role, name, id, count);
    else child_main<mpmc_t>(role, name, id, count);
}

TEST_CASE("shared_ring: one producer process, one consumer process", "[crash][shm]") {
    conq_test::watchdog dog("spsc between processes", std::chrono::seconds(120));
    const auto name = unique_name("spsc");
    conq::shared_ring<spsc_t>::remove(name);
    auto q = conq::shared_ring<spsc_t>::create(name, 1024, conq::shared_role::consumer);
    constexpr std::uint64_t count = 300000;
    const pid_t child = spawn("spsc", "producer", name, 1, count);
    std::uint64_t next = 1;
    while (auto v = q.pop()) {  // ends when the producer has exited and all is drained
        REQUIRE(v->check == check_of(v->producer, v->seq));
        REQUIRE(v->seq == next);
        ++next;
    }
    const int status = wait_exit(child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(next == count + 1);
    CHECK(q.peer_gone());
    conq::shared_ring<spsc_t>::remove(name);
}

TEST_CASE("shared_ring: three producer processes, one consumer", "[crash][shm]") {
    conq_test::watchdog dog("mpsc between processes", std::chrono::seconds(120));
    const auto name = unique_name("mpsc");
    conq::shared_ring<mpmc_t>::remove(name);
    // Role both: the producers may come and go one after another, and a
    // consumer alone would take the first gap for "every producer gone".
    auto q = conq::shared_ring<mpmc_t>::create(name, 512, conq::shared_role::both);
    constexpr std::uint64_t count = 100000;
    std::vector<pid_t> kids;
    for (std::uint64_t p = 0; p < 3; ++p) kids.push_back(spawn("mpmc", "producer", name, p, count));
    std::vector<std::uint64_t> next(3, 1);
    std::uint64_t total = 0;
    while (total < 3 * count) {
        auto v = q.pop();
        REQUIRE(v);
        REQUIRE(v->producer < 3);
        REQUIRE(v->check == check_of(v->producer, v->seq));
        REQUIRE(v->seq == next[v->producer]);  // each producer's order; no loss, no duplicate
        ++next[v->producer];
        ++total;
    }
    for (const pid_t k : kids) {
        const int status = wait_exit(k);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    CHECK(total == 3 * count);
    conq::shared_ring<mpmc_t>::remove(name);
}

TEST_CASE("shared_ring: a producer killed with SIGKILL is detected", "[crash][shm]") {
    conq_test::watchdog dog("killed producer", std::chrono::seconds(120));
    const auto name = unique_name("kill-prod");
    conq::shared_ring<spsc_t>::remove(name);
    auto q = conq::shared_ring<spsc_t>::create(name, 256, conq::shared_role::consumer);
    const pid_t child = spawn("spsc", "producer-forever", name, 9, 0);
    std::uint64_t next = 1;
    bool killed = false;
    while (auto v = q.pop()) {
        REQUIRE(v->check == check_of(v->producer, v->seq));
        REQUIRE(v->seq == next);  // in order, nothing twice, nothing skipped
        ++next;
        if (!killed && next > 20000) {
            ::kill(child, SIGKILL);
            killed = true;
        }
    }
    REQUIRE(killed);
    const int status = wait_exit(child);
    CHECK(WIFSIGNALED(status));
    CHECK(q.peer_gone());
    CHECK(q.producers_gone());
    conq::shared_ring<spsc_t>::remove(name);
}

TEST_CASE("shared_ring: a consumer killed with SIGKILL is detected", "[crash][shm]") {
    conq_test::watchdog dog("killed consumer", std::chrono::seconds(120));
    const auto name = unique_name("kill-cons");
    conq::shared_ring<spsc_t>::remove(name);
    auto q = conq::shared_ring<spsc_t>::create(name, 256, conq::shared_role::producer);
    const pid_t child = spawn("spsc", "consumer-forever", name, 0, 0);
    std::uint64_t s = 1;
    for (; s <= 20000; ++s) REQUIRE(q.push(item{0, s, check_of(0, s)}));
    ::kill(child, SIGKILL);
    const int status = wait_exit(child);
    CHECK(WIFSIGNALED(status));
    // Pushes go on until the ring is full, then fail instead of waiting.
    while (q.push(item{0, s, check_of(0, s)})) ++s;
    CHECK(q.peer_gone());
    CHECK(q.consumers_gone());
    conq::shared_ring<spsc_t>::remove(name);
}

// Kill -9 of a process using durable conq::work_queues (sync::always).
//
// The test forks and executes this same program again, running only the
// hidden test case "[.wq_child]". The child opens the work queues in the
// directory it is given and works from two threads:
//   - a producer puts jobs (ready, some delayed) into two queues and reports
//     each id over a pipe once put has returned (then it is on disk); now
//     and then it removes one of its earlier jobs by id, reporting the
//     intent before and the removal after remove() returned;
//   - a worker reserves from both queues and removes (reported the same
//     way), buries, releases, or keeps the job in hand.
// The parent kills the child at a random moment, reopens the directory and
// checks:
//   - every reported put is there, unless its removal was reported (or was
//     under way: either outcome is right then);
//   - no reported removal is there;
//   - every job there carries its own payload, appears once, and the next id
//     is above every id reported;
//   - the counts of the queues match the jobs found.
// Then it kicks everything and reserves and removes every job (each must
// come exactly once), so each round starts empty with history: ids go on,
// the journal holds deletes and compactions.
#include "conq_catch.hpp"
#include "kill9.hpp"
#include "stress_config.hpp"
#include "temp_dir.hpp"
#include "watchdog.hpp"

#include <conq/broker/work_queue.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using wq_t = conq::work_queues<std::string>;

std::string body(std::uint64_t id) {
    return "job-" + std::to_string(id) + std::string(id % 61, static_cast<char>('a' + id % 26));
}

conq::durable_options opts() {
    conq::durable_options o;
    o.segment_size = 64 << 10;
    o.max_record_size = 4096;
    o.sync = conq::sync::always;
    return o;
}

// Reports: an id with bit 63 set was removed (remove returned), with bit 62
// set is about to be removed, with neither was put (put returned).
constexpr std::uint64_t removed_flag = std::uint64_t{1} << 63;
constexpr std::uint64_t intent_flag = std::uint64_t{1} << 62;

/// Starts this program again as the child, on `dir`, reporting to `fd`.
pid_t spawn(const std::filesystem::path& dir, int fd, std::uint64_t seed) {
    return conq_test::fork_child([&] {
        ::setenv("CONQ_WQ_DIR", dir.c_str(), 1);
        ::setenv("CONQ_WQ_FD", std::to_string(fd).c_str(), 1);
        ::setenv("CONQ_WQ_SEED", std::to_string(seed).c_str(), 1);
        ::execl("/proc/self/exe", "/proc/self/exe", "[.wq_child]", static_cast<char*>(nullptr));
        ::_exit(127);
    });
}

}  // namespace

// The child's part: hidden, run only by spawn(). It never returns.
TEST_CASE("durable work_queues child process", "[.wq_child]") {
    const char* dir = std::getenv("CONQ_WQ_DIR");
    const char* fd_text = std::getenv("CONQ_WQ_FD");
    const char* seed_text = std::getenv("CONQ_WQ_SEED");
    if (!dir || !fd_text || !seed_text) ::_exit(6);
    const int fd = std::atoi(fd_text);
    const auto seed = std::strtoull(seed_text, nullptr, 10);
    try {
        wq_t w(dir, opts());
        std::mutex report_mu;
        auto report = [&](std::uint64_t v) {
            std::lock_guard<std::mutex> g(report_mu);
            if (::write(fd, &v, sizeof v) != sizeof v) ::_exit(3);
        };
        std::thread producer([&] {
            std::mt19937_64 rng(seed);
            std::vector<conq::job_id> mine;
            for (;;) {
                // Only this thread puts: the next id is the one it will get.
                const conq::job_id id = w.stats().next_id;
                conq::put_options o;
                o.priority = static_cast<std::uint32_t>(rng() % 100);
                if (rng() % 5 == 0) o.delay = std::chrono::hours(1);
                if (w.put(rng() % 2 ? "a" : "b", body(id), o) != id) ::_exit(4);
                report(id);
                mine.push_back(id);
                if (rng() % 4 == 0) {
                    const std::size_t k = rng() % mine.size();
                    const conq::job_id victim = mine[k];
                    mine[k] = mine.back();
                    mine.pop_back();
                    report(victim | intent_flag);
                    try {
                        w.remove(victim);
                        report(victim | removed_flag);
                    } catch (const conq::broker_error& e) {
                        // The worker holds it or removed it already.
                        if (e.errc() != conq::broker_errc::unknown_job) ::_exit(7);
                    }
                }
            }
        });
        std::thread worker([&] {
            std::mt19937_64 rng(seed + 1);
            auto c = w.make_consumer({"a", "b"});
            std::optional<wq_t::job> in_hand;
            for (;;) {
                auto r = c.reserve_for(std::chrono::milliseconds(1));
                if (!r) continue;
                wq_t::job& j = *r.value;
                if (j.payload() != body(j.id())) ::_exit(5);
                switch (rng() % 8) {
                case 0:
                    j.bury();
                    break;
                case 1:
                    j.release(static_cast<std::uint32_t>(rng() % 100));
                    break;
                case 2:
                    in_hand = r.take();  // the one held before is dropped: released
                    break;
                default:
                    report(j.id() | intent_flag);
                    j.remove();
                    report(j.id() | removed_flag);
                    break;
                }
                if (rng() % 16 == 0) w.kick(rng() % 2 ? "a" : "b", 2);
            }
        });
        producer.join();
        worker.join();
    } catch (...) {
        ::_exit(2);
    }
    ::_exit(0);
}

TEST_CASE("durable work_queues survive SIGKILL: reported puts are there, reported removes are not",
          "[crash][work_queue]") {
    conq_test::watchdog dog("work_queues kill -9", std::chrono::seconds(500));
    conq_test::temp_dir dir("conq-wqkill");
    const auto wdir = dir.path() / "wq";
    std::mt19937_64 rng(2024);
    const std::size_t iterations = 30 * conq_test::stress_scale();
    std::uint64_t puts_total = 0, removes_total = 0, survivors_total = 0;
    conq::job_id highest_before = 0;
    for (std::size_t it = 0; it < iterations; ++it) {
        INFO("iteration " << it);
        const std::uint64_t seed = rng();
        const auto run_for = std::chrono::microseconds(30000 + rng() % 90000);
        const auto child = conq_test::kill_after(run_for, [&](int fd) { return spawn(wdir, fd, seed); });

        std::set<conq::job_id> put, removed, maybe_removed;
        for (const std::uint64_t v : child.reports) {
            if (v & removed_flag) removed.insert(v & ~removed_flag);
            else if (v & intent_flag) maybe_removed.insert(v & ~intent_flag);
            else put.insert(v);
        }
        for (const auto id : put) REQUIRE(id > highest_before);  // ids never reused
        // (A removal may be reported without its put: the worker can take and
        // remove a job between put's return and the producer's report.)
        for (const auto id : removed) REQUIRE(id > highest_before);

        auto o = opts();
        o.prefault = false;
        wq_t w(wdir, o);
        const auto stats = w.stats();
        if (!put.empty()) CHECK(stats.next_id > *put.rbegin());
        if (!removed.empty()) CHECK(stats.next_id > *removed.rbegin());
        CHECK(stats.next_id > highest_before);
        // Every job there, by id: its payload is its own and it is in a resting state.
        std::set<conq::job_id> there;
        for (conq::job_id id = highest_before + 1; id < stats.next_id; ++id) {
            try {
                const auto info = w.peek(id);
                REQUIRE(info.id == id);
                REQUIRE(*info.payload == body(id));
                REQUIRE(info.state != conq::job_state::reserved);
                REQUIRE((info.queue == "a" || info.queue == "b"));
                there.insert(id);
            } catch (const conq::broker_error& e) {
                REQUIRE(e.errc() == conq::broker_errc::unknown_job);
            }
        }
        for (const auto id : put) {
            INFO("job " << id);
            if (!removed.count(id) && !maybe_removed.count(id)) CHECK(there.count(id));
        }
        for (const auto id : removed) {
            INFO("job " << id);
            CHECK_FALSE(there.count(id));
        }
        // Counts agree with the jobs found, and each is delivered once.
        CHECK(stats.ready + stats.delayed + stats.buried == there.size());
        CHECK(stats.reserved == 0u);
        std::size_t kicked = w.kick("a", there.size()) + w.kick("b", there.size());
        kicked += w.kick("a", there.size()) + w.kick("b", there.size());  // buried, then delayed
        std::multiset<conq::job_id> delivered;
        while (auto j = w.try_reserve({"a", "b"})) {
            delivered.insert(j->id());
            j->remove();
        }
        CHECK(delivered.size() == there.size());
        CHECK(std::set<conq::job_id>(delivered.begin(), delivered.end()) == there);
        CHECK(w.stats().ready + w.stats().delayed + w.stats().buried == 0u);

        puts_total += put.size();
        removes_total += removed.size();
        survivors_total += there.size();
        highest_before = stats.next_id - 1;
        (void)kicked;
    }
    if (std::getenv("CONQ_STRESS_VERBOSE") != nullptr)
        std::printf("work_queues kill -9: %zu rounds, %llu puts, %llu removes, %llu jobs found after a kill\n",
                    iterations, static_cast<unsigned long long>(puts_total),
                    static_cast<unsigned long long>(removes_total),
                    static_cast<unsigned long long>(survivors_total));
    INFO("puts " << puts_total << ", removes " << removes_total << ", survivors " << survivors_total);
    CHECK(puts_total > 0u);
    CHECK(removes_total > 0u);
    CHECK(survivors_total > 0u);
}

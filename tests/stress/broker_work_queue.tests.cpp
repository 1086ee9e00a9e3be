// Stress tests of conq::work_queues (include/conq/broker/work_queue.hpp) with
// real threads.
//
//   1. Producers put jobs (the payload names producer and sequence) into two
//      queues with random priorities; workers reserve over both queues and
//      remove what they get. Every job is delivered exactly once (the TTR is
//      far away), the counters add up, and close() wakes every worker.
//   2. A manual clock and short TTRs: a driver thread advances the clock
//      while workers remove their jobs at once or hold them until their TTR
//      has run out. A remove after the TTR throws not_reserved and the job is
//      delivered again; in the end every job is removed exactly once.
//
// Catch assertions are made on the main thread only: the threads record
// what they saw and count anything unexpected.
//
// Sizes are small by default; CONQ_STRESS_SCALE multiplies them. With
// CONQ_STRESS_VERBOSE set, each run prints what happened.
#include <conq/broker/work_queue.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "conq_catch.hpp"
#include "stress_config.hpp"
#include "watchdog.hpp"

using namespace std::chrono_literals;

namespace {

std::string payload(std::size_t producer, std::size_t seq) {
    return std::to_string(producer) + ":" + std::to_string(seq);
}

}  // namespace

TEST_CASE("work_queues stress: producers and workers over two queues, every job exactly once",
          "[work_queue][stress]") {
    conq_test::watchdog dog("work_queues producers/workers", std::chrono::seconds(300));
    constexpr std::size_t producers = 3, workers = 3;
    const std::size_t per_producer = conq_test::scaled(conq_test::thread_sanitizer ? 5000 : 20000);
    const std::size_t total = producers * per_producer;

    conq::work_queues<std::string> w;  // steady clock: real blocking reserves
    std::atomic<std::size_t> removed{0};
    std::atomic<int> errors{0};
    std::vector<std::vector<std::string>> seen(workers);
    std::vector<int> how_ended(workers, -1);

    std::vector<std::thread> ts;
    for (std::size_t k = 0; k < workers; ++k) {
        ts.emplace_back([&, k] {
            auto c = w.make_consumer({"a", "b"});
            std::mt19937 rng(static_cast<unsigned>(100 + k));
            for (;;) {
                std::optional<conq::work_queues<std::string>::job> j;
                const unsigned style = rng() % 3;
                if (style == 0) {
                    j = c.try_reserve();
                    if (!j) {
                        if (w.closed()) break;
                        std::this_thread::yield();
                        continue;
                    }
                } else {
                    auto r = style == 1 ? c.reserve() : c.reserve_for(50ms);
                    if (r.status == conq::reserve_status::closed) break;
                    if (r.status != conq::reserve_status::reserved) {
                        if (r.status != conq::reserve_status::timed_out) errors.fetch_add(1);
                        continue;
                    }
                    j = r.take();
                }
                if (!j) {
                    errors.fetch_add(1);
                    continue;
                }
                if (j->deliveries() != 1) errors.fetch_add(1);
                seen[k].push_back(j->payload());
                try {
                    j->remove();
                } catch (...) {
                    errors.fetch_add(1);
                }
                removed.fetch_add(1);
            }
            how_ended[k] = 1;
        });
    }
    for (std::size_t p = 0; p < producers; ++p) {
        ts.emplace_back([&, p] {
            std::mt19937 rng(static_cast<unsigned>(p + 1));
            for (std::size_t s = 0; s < per_producer; ++s) {
                const char* q = rng() % 2 ? "a" : "b";
                w.put(q, payload(p, s), {.priority = static_cast<std::uint32_t>(rng() % 8), .ttr = 1h});
                if (rng() % 64 == 0) std::this_thread::yield();  // let the workers drain and wait
            }
        });
    }
    for (std::size_t p = 0; p < producers; ++p) ts[workers + p].join();
    while (removed.load() < total && errors.load() == 0) std::this_thread::yield();
    // Everything is done: the workers are (or will be) waiting; close wakes them.
    w.close();
    for (std::size_t k = 0; k < workers; ++k) ts[k].join();

    CHECK(errors.load() == 0);
    CHECK(removed.load() == total);
    for (std::size_t k = 0; k < workers; ++k) CHECK(how_ended[k] == 1);
    std::vector<std::string> all;
    for (const auto& v : seen) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    std::vector<std::string> want;
    for (std::size_t p = 0; p < producers; ++p)
        for (std::size_t s = 0; s < per_producer; ++s) want.push_back(payload(p, s));
    std::sort(want.begin(), want.end());
    CHECK(all.size() == want.size());
    CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());  // no job twice
    CHECK(all == want);                                               // and none lost

    const auto s = w.stats();
    if (std::getenv("CONQ_STRESS_VERBOSE") != nullptr) {
        std::printf("producers/workers: %zu jobs; per worker:", total);
        for (const auto& v : seen) std::printf(" %zu", v.size());
        std::printf("\n");
    }
    CHECK(s.total_jobs == total);
    CHECK(s.reserves == total);
    CHECK(s.deletes == total);
    CHECK(s.timeouts == 0u);
    CHECK(s.releases == 0u);
    CHECK(s.ready + s.reserved + s.delayed + s.buried == 0u);
    CHECK(s.waiting == 0u);
    CHECK(s.next_id == total + 1);
    CHECK(w.stats("a")->total_jobs + w.stats("b")->total_jobs == total);
}

TEST_CASE("work_queues stress: short TTRs on a manual clock, stale removes, every job removed once",
          "[work_queue][stress]") {
    conq_test::watchdog dog("work_queues TTR stress", std::chrono::seconds(300));
    constexpr std::size_t workers = 4;
    const std::size_t jobs = conq_test::scaled(conq_test::thread_sanitizer ? 3000 : 10000);
    constexpr auto ttr = 1s;
    constexpr auto step = 250ms;

    conq::manual_clock clock;
    conq::work_queues<std::string, conq::manual_clock> w(clock);
    for (std::size_t i = 0; i < jobs; ++i)
        w.put(i % 3 ? "q" : "r", "job " + std::to_string(i + 1),
              {.priority = static_cast<std::uint32_t>(i % 5), .ttr = ttr});

    std::atomic<std::size_t> removed{0}, reserve_events{0}, stalling{0}, blocked{0};
    std::atomic<int> errors{0};
    std::atomic<bool> stop{false};
    struct tally {
        std::vector<conq::job_id> removed;  // successful removes
        std::size_t reserves = 0, stale = 0, late = 0;
    };
    std::vector<tally> tallies(workers);

    std::vector<std::thread> ts;
    for (std::size_t k = 0; k < workers; ++k) {
        ts.emplace_back([&, k] {
            auto c = w.make_consumer({"q", "r"});
            std::mt19937 rng(static_cast<unsigned>(7 + k));
            tally& t = tallies[k];
            for (;;) {
                blocked.fetch_add(1);
                auto r = c.reserve_for(2 * step);  // blocks until the driver advances the clock
                blocked.fetch_sub(1);
                if (r.status == conq::reserve_status::closed) break;
                if (r.status == conq::reserve_status::deadline_soon) {
                    errors.fetch_add(1);  // it holds nothing between jobs
                    continue;
                }
                if (!r) continue;  // timed out
                ++t.reserves;
                reserve_events.fetch_add(1);
                auto& j = *r.value;
                if (j.payload() != "job " + std::to_string(j.id())) errors.fetch_add(1);
                if (rng() % 4 == 0) {
                    // Hold it past its TTR: the driver moves the clock on.
                    stalling.fetch_add(1);
                    while (j.held()) std::this_thread::yield();
                    stalling.fetch_sub(1);
                    try {
                        j.remove();
                        errors.fetch_add(1);  // must not succeed
                    } catch (const conq::broker_error& e) {
                        if (e.errc() != conq::broker_errc::not_reserved) errors.fetch_add(1);
                    }
                    ++t.stale;
                } else {
                    try {
                        j.remove();
                        t.removed.push_back(j.id());
                        removed.fetch_add(1);
                    } catch (const conq::broker_error& e) {
                        // The clock passed its TTR before the remove: delivered again.
                        if (e.errc() != conq::broker_errc::not_reserved) errors.fetch_add(1);
                        ++t.late;
                    }
                }
            }
        });
    }
    std::thread driver([&] {
        std::size_t last = 0;
        while (!stop.load()) {
            // Advance once the workers have made some progress, or when some
            // wait for the clock: one holds a job past its TTR, or all are
            // blocked in reserve_for.
            const std::size_t now_events = reserve_events.load();
            if (now_events - last >= workers || stalling.load() > 0 || blocked.load() == workers) {
                last = now_events;
                clock.advance(step);
            }
            std::this_thread::yield();
        }
    });
    while (removed.load() < jobs && errors.load() == 0) std::this_thread::yield();
    stop.store(true);
    driver.join();
    w.close();
    for (auto& t : ts) t.join();

    CHECK(errors.load() == 0);
    std::vector<conq::job_id> all;
    std::size_t reserves = 0, stale = 0, late = 0;
    for (const auto& t : tallies) {
        all.insert(all.end(), t.removed.begin(), t.removed.end());
        reserves += t.reserves;
        stale += t.stale;
        late += t.late;
    }
    std::sort(all.begin(), all.end());
    CHECK(all.size() == jobs);
    CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());  // no job removed twice
    std::vector<conq::job_id> want(jobs);
    for (std::size_t i = 0; i < jobs; ++i) want[i] = i + 1;
    CHECK(all == want);  // no job lost
    const auto s = w.stats();
    if (std::getenv("CONQ_STRESS_VERBOSE") != nullptr)
        std::printf("TTR stress: %zu jobs, %zu deliveries, %zu held past their TTR, %zu removes too late, "
                    "clock at %lld ms\n",
                    jobs, reserves, stale, late,
                    static_cast<long long>(clock.now().time_since_epoch() / 1ms));
    CHECK(stale > 0u);
    CHECK(s.deletes == jobs);
    CHECK(s.reserves == reserves);
    // Every delivery ended in a remove or a time-out (nothing is released).
    CHECK(s.timeouts == stale + late);
    CHECK(reserves == jobs + stale + late);
    CHECK(s.releases == 0u);
    CHECK(s.ready + s.reserved + s.delayed + s.buried == 0u);
}

// Stress tests of conq::delay_queue with real threads on a conq::manual_clock,
// for heap and wheel storage, unbounded and bounded. Producers schedule
// items with random delays (some in the past, some due now, most a few
// clock steps ahead) and cancel some of their own; a driver thread advances
// the clock in small random steps; consumers take items with pop(),
// pop_for(), drain_due() or try_pop(). When the producers are done the
// driver moves the clock past every due time and closes the queue.
//
// The checks: every item that was not cancelled is delivered exactly once;
// a cancelled item (cancel returned true) is never delivered; no item is
// delivered before its due time (each item carries its due time, and the
// consumer compares it with the clock after the pop returns: the clock only
// moves forward, so an item popped early is caught unless the clock passed
// its due time in between); no element object leaks or dies twice.
//
// Sizes are small by default; CONQ_STRESS_SCALE multiplies them. With
// CONQ_STRESS_VERBOSE set, every run prints its configuration and duration.
#include <conq/delay_queue.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "conq_catch.hpp"
#include "counted.hpp"
#include "stress_config.hpp"
#include "watchdog.hpp"

namespace {

using conq::manual_clock;
using conq_test::counted;
using i64 = std::int64_t;
using u64 = std::uint64_t;
using namespace std::chrono_literals;

/// What a producer schedules: its identity (in a counted, so that lifetimes
/// are checked too) and the time before which it must not be delivered.
struct job {
    counted id;
    i64 due;  // manual_clock nanoseconds
};

/// How a consumer takes items.
enum class style { pop, pop_for, drain, polling };

constexpr u64 encode(std::size_t producer, std::size_t seq) {
    return (u64{producer} << 32) | u64{seq};
}

i64 now_ns(const manual_clock& c) { return c.now().time_since_epoch().count(); }

/// What the threads found; checked on the main thread after join.
struct findings {
    std::atomic<long> early{0};      // delivered before its due time
    std::atomic<long> bad_value{0};  // out of range or moved-from
    std::atomic<long> cancels{0};    // cancel() returned true
    std::atomic<long> double_cancels{0};  // a second cancel() of one handle returned true
    std::atomic<long> before_flush{0};    // delivered while producers ran (for the verbose line)
};

template <class Q>
void run_delivery(const std::string& what, std::size_t producers,
                  const std::vector<style>& consumers, std::size_t per_producer) {
    INFO(what);
    counted::reset();
    const auto t_start = std::chrono::steady_clock::now();
    const std::size_t P = producers, N = per_producer;
    findings f;
    std::vector<std::atomic<std::uint8_t>> delivered(P * N);
    std::vector<std::uint8_t> cancelled(P * N);  // each producer writes its own part
    {
        conq_test::watchdog dog(what, std::chrono::seconds(120 * conq_test::stress_scale()));
        manual_clock clock;
        Q q(clock);
        std::atomic<std::size_t> producers_done{0};
        std::atomic<bool> flushed{false};

        // Delays up to 2 ms, 20 ms, 1 s. A bounded queue full of items due
        // far ahead holds the producers back until the driver has stepped
        // all the way there: shorter delays keep it around full.
        const u64 scale[3] = {Q::policies::inline_storage ? 500'000u : 2'000'000u,
                              Q::policies::inline_storage ? 2'000'000u : 20'000'000u,
                              Q::policies::inline_storage ? 5'000'000u : 1'000'000'000u};
        auto producer = [&](std::size_t p) {
            std::mt19937_64 rng(0x9e3779b97f4a7c15ULL * (p + 1));
            std::vector<std::pair<typename Q::handle, std::size_t>> mine;  // recent, maybe pending
            i64 last_seen = now_ns(clock);
            for (std::size_t seq = 0; seq < N; ++seq) {
                if (seq % 4 == 0) {
                    // Keep pace with the driver, so that scheduling,
                    // cancelling, advancing and popping interleave.
                    while (now_ns(clock) == last_seen) std::this_thread::yield();
                    last_seen = now_ns(clock);
                }
                const u64 id = encode(p, seq);
                const auto r = rng() % 100;
                i64 delay;
                if (r < 10) delay = 0;
                else if (r < 15) delay = -static_cast<i64>(rng() % 2'000'000);
                else if (r < 55) delay = static_cast<i64>(rng() % scale[0]);
                else if (r < 90) delay = static_cast<i64>(rng() % scale[1]);
                else delay = static_cast<i64>(rng() % scale[2]);
                typename Q::handle h;
                for (;;) {
                    const i64 now = now_ns(clock);
                    const auto how = rng() % 8;
                    if (how == 0) {
                        // The queue reads the clock again: `now + delay` is a
                        // lower bound of the due time it uses.
                        h = q.schedule_after(job{counted(id), now + delay},
                                             std::chrono::nanoseconds(delay));
                    } else if (how == 1) {
                        if (q.try_push(job{counted(id), now})) break;  // due now, no handle
                    } else {
                        const manual_clock::time_point due{std::chrono::nanoseconds(now + delay)};
                        h = q.schedule_at(job{counted(id), now + delay}, due);
                    }
                    if (h) break;
                    std::this_thread::yield();  // bounded and full: wait for the consumers
                }
                if (h) mine.emplace_back(h, seq);
                if (!mine.empty() && rng() % 6 == 0) {
                    const std::size_t i = rng() % mine.size();
                    if (q.cancel(mine[i].first)) {
                        cancelled[p * N + mine[i].second] = 1;
                        f.cancels.fetch_add(1, std::memory_order_relaxed);
                        if (q.cancel(mine[i].first)) f.double_cancels.fetch_add(1);
                    }
                    mine[i] = mine.back();
                    mine.pop_back();
                }
                if (mine.size() > 64) mine.erase(mine.begin(), mine.begin() + 32);
            }
            producers_done.fetch_add(1);
        };

        auto driver = [&] {
            std::mt19937_64 rng(12345);
            while (producers_done.load() < P) {
                const auto r = rng() % 16;
                if (r == 0) {
                    clock.set(clock.now() + std::chrono::nanoseconds(rng() % 1'000'000));
                } else if (r == 1) {
                    // Stop 1 ns short of the earliest due time for a moment:
                    // an item delivered a tick early shows up here.
                    if (const auto due = q.next_due()) clock.set(*due - 1ns);
                } else {
                    clock.advance(std::chrono::nanoseconds(rng() % 300'000));
                }
                std::this_thread::yield();
            }
            flushed.store(true);
            clock.advance(2s);  // past every due time
            q.close();
        };

        auto consumer = [&](style st) {
            auto take = [&](const job& j) {
                const i64 now = now_ns(clock);
                const u64 v = j.id.get();
                const std::size_t p = static_cast<std::size_t>(v >> 32);
                const std::size_t seq = static_cast<std::size_t>(v & 0xffff'ffffU);
                if (v == counted::moved_from_value || p >= P || seq >= N) {
                    f.bad_value.fetch_add(1, std::memory_order_relaxed);
                    return;
                }
                if (now < j.due) f.early.fetch_add(1, std::memory_order_relaxed);
                delivered[p * N + seq].fetch_add(1, std::memory_order_relaxed);
                if (!flushed.load(std::memory_order_relaxed)) {
                    f.before_flush.fetch_add(1, std::memory_order_relaxed);
                }
            };
            std::vector<job> batch;
            for (;;) {
                if (st == style::pop) {
                    auto v = q.pop();
                    if (!v) return;
                    take(*v);
                } else if (st == style::pop_for) {
                    if (auto v = q.pop_for(200us)) {
                        take(*v);
                    } else if (q.closed()) {
                        while (auto w = q.pop()) take(*w);
                        return;
                    }
                } else if (st == style::drain) {
                    batch.clear();
                    if (q.drain_due(std::back_inserter(batch), 8) > 0) {
                        for (const job& j : batch) take(j);
                    } else {
                        auto v = q.pop();
                        if (!v) return;
                        take(*v);
                    }
                } else {
                    if (auto v = q.try_pop()) {
                        take(*v);
                    } else if (q.closed()) {
                        while (auto w = q.pop()) take(*w);
                        return;
                    } else {
                        std::this_thread::yield();
                    }
                }
            }
        };

        std::vector<std::thread> threads;
        for (const style st : consumers) threads.emplace_back(consumer, st);
        for (std::size_t p = 0; p < P; ++p) threads.emplace_back(producer, p);
        threads.emplace_back(driver);
        for (auto& t : threads) t.join();

        CHECK(q.closed());
        CHECK(q.size_approx() == 0);
        CHECK_FALSE(q.try_pop().has_value());
        CHECK_FALSE(q.next_due().has_value());
    }

    if (std::getenv("CONQ_STRESS_VERBOSE") != nullptr) {
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - t_start;
        std::printf("%8.3f s  %s (%zu items, %ld cancelled, %ld delivered before the final "
                    "advance)\n",
                    took.count(), what.c_str(), P * N, f.cancels.load(), f.before_flush.load());
    }
    CHECK(f.early == 0);
    CHECK(f.bad_value == 0);
    CHECK(f.double_cancels == 0);
    CHECK(f.cancels > 0);  // the run did cancel pending items
    std::size_t missing = 0, duplicated = 0, cancelled_but_delivered = 0, n_cancelled = 0;
    for (std::size_t i = 0; i < P * N; ++i) {
        const auto n = delivered[i].load(std::memory_order_relaxed);
        if (cancelled[i] != 0) {
            ++n_cancelled;
            if (n != 0) ++cancelled_but_delivered;
        } else if (n == 0) {
            ++missing;
        } else if (n > 1) {
            ++duplicated;
        }
    }
    CHECK(n_cancelled == static_cast<std::size_t>(f.cancels.load()));
    CHECK(missing == 0);
    CHECK(duplicated == 0);
    CHECK(cancelled_but_delivered == 0);
    CHECK(counted::errors == 0);
    CHECK(counted::live == 0);
    CHECK(counted::constructions == counted::destructions);
}

/// Items per producer. The queue's work is small next to the hand-overs
/// between threads, so ThreadSanitizer runs the same sizes.
std::size_t items(std::size_t base) { return conq_test::scaled(base); }

}  // namespace

TEST_CASE("delay stress: heap, 3 producers, 3 consumers in pop()", "[stress][delay]") {
    run_delivery<conq::delay_queue<job, manual_clock>>(
        "heap 3p3c pop", 3, {style::pop, style::pop, style::pop}, items(10000));
}

TEST_CASE("delay stress: wheel (1 ms ticks), 3 producers, 3 consumers in pop()",
          "[stress][delay]") {
    run_delivery<conq::delay_queue<job, manual_clock, conq::timer_wheel<>>>(
        "wheel<1ms> 3p3c pop", 3, {style::pop, style::pop, style::pop}, items(10000));
}

TEST_CASE("delay stress: wheel (1 us ticks), consumers in pop_for, drain_due and try_pop",
          "[stress][delay]") {
    run_delivery<conq::delay_queue<job, manual_clock, conq::timer_wheel<1000>, conq::blocking>>(
        "wheel<1us> 2p3c pop_for/drain/polling", 2, {style::pop_for, style::drain, style::polling},
        items(10000));
}

TEST_CASE("delay stress: bounded heap (capacity<64>, reject), producers retry when full",
          "[stress][delay]") {
    run_delivery<conq::delay_queue<job, manual_clock, conq::capacity<64>, conq::reject>>(
        "heap capacity<64> reject 3p2c pop/drain", 3, {style::pop, style::drain}, items(6000));
}

TEST_CASE("delay stress: bounded wheel (capacity<64>), 2 producers, 2 consumers",
          "[stress][delay]") {
    run_delivery<conq::delay_queue<job, conq::delay_order<manual_clock>, conq::timer_wheel<>,
                                   conq::capacity<64>>>(
        "wheel<1ms> capacity<64> 2p2c pop/pop_for", 2, {style::pop, style::pop_for}, items(6000));
}

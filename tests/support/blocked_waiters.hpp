// tests/support/blocked_waiters.hpp
//
// Helpers for tests of threads that block in a queue: a pause that lets
// them reach their wait, and the check that close() releases every consumer
// blocked in pop() on an empty queue.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <latch>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace conq_test {

/// A time-out long enough to mean "never" in a test.
inline constexpr auto forever = std::chrono::hours(1);

/// Waits until the threads have passed their latch, then a little longer so
/// that they reach their wait (and, with `blocking`, sleep in the kernel).
/// The caller then checks that none of them has returned; correctness does
/// not depend on the pause.
inline void let_them_block(std::latch& started) {
    started.wait();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

/// `n` consumers block in pop() (or pop_for(forever) when `timed`) on the
/// empty queue `q`; close() must release every one of them with nullopt.
template <class Q>
void check_close_releases_consumers(Q& q, std::size_t n, bool timed) {
    std::latch started(static_cast<std::ptrdiff_t>(n));
    std::atomic<int> returned{0}, got_item{0};
    std::vector<std::thread> threads;
    for (std::size_t c = 0; c < n; ++c) {
        threads.emplace_back([&] {
            started.count_down();
            const auto v = timed ? q.pop_for(forever) : q.pop();
            if (v) got_item.fetch_add(1);
            returned.fetch_add(1);
        });
    }
    let_them_block(started);
    CHECK(returned.load() == 0);  // the queue is empty: they must wait
    q.close();
    for (auto& t : threads) t.join();
    CHECK(returned.load() == static_cast<int>(n));
    CHECK(got_item.load() == 0);
}

}  // namespace conq_test

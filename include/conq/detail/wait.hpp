// conq/detail/wait.hpp
//
// How a thread waits for a condition on a ring (not empty, not full) under
// each wait policy, and how the other side wakes it. Every waiter re-checks
// its condition with a caller-supplied predicate; wake-ups carry no data.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "conq/detail/platform.hpp"
#include "conq/policy.hpp"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#endif

namespace conq::detail {

using wait_clock = std::chrono::steady_clock;
using deadline_t = wait_clock::time_point;
inline constexpr deadline_t no_deadline = deadline_t::max();

/// now + d without overflowing for huge durations.
template <class Rep, class Period>
deadline_t deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
    const auto now = wait_clock::now();
    if (d <= d.zero()) return now;
    const auto room = std::chrono::duration_cast<std::chrono::duration<double>>(no_deadline - now);
    if (std::chrono::duration<double>(d) >= room) return no_deadline;
    return now + std::chrono::duration_cast<wait_clock::duration>(d);
}

// ------------------------------------------------------------- futex wrapper

/// Sleeps while `word == expected`, until woken or `deadline`. May return
/// spuriously; callers re-check.
/// With `shared`, the word may be in memory shared with other processes.
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       deadline_t deadline, bool shared = false) noexcept {
#if defined(__linux__)
    // std::atomic<uint32_t> has the size and representation of uint32_t.
    auto* addr = reinterpret_cast<std::uint32_t*>(&word);
    if (deadline == no_deadline) {
        syscall(SYS_futex, addr, shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
    } else {
        // steady_clock is CLOCK_MONOTONIC on Linux, which FUTEX_WAIT_BITSET
        // takes as an absolute deadline: no drift across spurious wake-ups.
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            deadline.time_since_epoch())
                            .count();
        if (ns <= 0) return;
        timespec ts{};
        ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
        syscall(SYS_futex, addr, shared ? FUTEX_WAIT_BITSET : FUTEX_WAIT_BITSET_PRIVATE, expected, &ts,
                nullptr, FUTEX_BITSET_MATCH_ANY);
    }
#else
    (void)shared;
    if (deadline == no_deadline) {
        word.wait(expected, std::memory_order_acquire);
    } else if (word.load(std::memory_order_acquire) == expected) {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
#endif
}

inline void futex_wake(std::atomic<std::uint32_t>& word, bool all, bool shared = false) noexcept {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE,
            all ? 0x7fffffff : 1, nullptr, nullptr, 0);
#else
    (void)shared;
    if (all) word.notify_all(); else word.notify_one();
#endif
}

// ------------------------------------------------------------- wait points

// Tuning of the spin phase. The blocking policy spins long enough to keep a
// ping-pong exchange out of the kernel (a futex round trip costs ~50 us on a
// VM), then yields, then sleeps.
inline constexpr auto blocking_spin_time = std::chrono::microseconds(20);
inline constexpr auto blocking_yield_time = std::chrono::microseconds(100);
inline constexpr int blocking_quick_spins = 64;
inline constexpr int backoff_max_pauses = 64;

/// A test-and-test-and-set lock word.
class spin_word {
public:
    [[nodiscard]] bool try_lock() noexcept {
        return v_.load(std::memory_order_relaxed) == 0 &&
               v_.exchange(1, std::memory_order_acquire) == 0;
    }
    void lock() noexcept {
        int pauses = 1;
        while (!try_lock()) {
            if (pauses <= backoff_max_pauses) {
                for (int i = 0; i < pauses; ++i) cpu_relax();
                pauses *= 2;
            } else {
                std::this_thread::yield();
            }
        }
    }
    void unlock() noexcept { v_.store(0, std::memory_order_release); }
    [[nodiscard]] bool locked() const noexcept { return v_.load(std::memory_order_relaxed) != 0; }

private:
    std::atomic<std::uint32_t> v_{0};
};

/// One condition that threads can wait for. The primary template serves the
/// polling policies (spin, yield, backoff): nothing to notify. `Shared`: the
/// wait point lives in memory shared between processes.
template <class Wait, bool Shared = false>
class wait_point {
public:
    /// Waits until `ready()` or the deadline; returns the last `ready()`.
    template <class Ready>
    bool wait_until(Ready&& ready, deadline_t deadline) noexcept(noexcept(ready())) {
        int pauses = 1;
        for (unsigned round = 0;; ++round) {
            if (ready()) return true;
            if (deadline != no_deadline && (round & 15) == 15 && wait_clock::now() >= deadline) {
                return ready();
            }
            if constexpr (std::is_same_v<Wait, spin>) {
                cpu_relax();
            } else if constexpr (std::is_same_v<Wait, yield>) {
                std::this_thread::yield();
            } else {
                if (pauses <= backoff_max_pauses) {
                    for (int i = 0; i < pauses; ++i) cpu_relax();
                    pauses *= 2;
                } else {
                    std::this_thread::yield();
                }
            }
        }
    }
    void notify_one() noexcept {}
    void notify_all() noexcept {}
    [[nodiscard]] static constexpr bool may_sleep() noexcept { return false; }
};

/// The blocking policy: spin, yield, then sleep on a futex. A waker pays one
/// relaxed load of `sleepers_` (a line nobody writes while nobody sleeps)
/// unless somebody sleeps. Between processes (Shared) the futex is not
/// process-private and the barrier pair is the global one (membarrier
/// across every registered process).
template <bool Shared>
class wait_point<blocking, Shared> {
public:
    template <class Ready>
    bool wait_until(Ready&& ready, deadline_t deadline) noexcept(noexcept(ready())) {
        // A short wait (the other side is busy, not idle) ends here without
        // reading the clock at all.
        for (int i = 0; i < blocking_quick_spins; ++i) {
            if (ready()) return true;
            cpu_relax();
        }
        const auto start = wait_clock::now();
        const auto spin_end = start + blocking_spin_time;
        const auto yield_end = start + blocking_yield_time;
        for (unsigned round = 0;; ++round) {
            if (ready()) return true;
            if ((round & 15) == 15) {
                const auto now = wait_clock::now();
                if (now >= deadline) return ready();
                if (now >= spin_end) break;
            }
            cpu_relax();
        }
        for (;;) {
            if (ready()) return true;
            const auto now = wait_clock::now();
            if (now >= deadline) return ready();
            if (now >= yield_end) break;
            std::this_thread::yield();
        }
        for (;;) {
            sleepers_.fetch_add(1, std::memory_order_relaxed);
            // Pairs with light_barrier() in notify_*: either the waker sees
            // us in sleepers_, or we see what it published in ready().
            if constexpr (Shared) shared_heavy_barrier(); else heavy_barrier();
            const std::uint32_t seen = epoch_.load(std::memory_order_acquire);
            if (ready()) {
                sleepers_.fetch_sub(1, std::memory_order_relaxed);
                return true;
            }
            futex_wait(epoch_, seen, deadline, Shared);
            sleepers_.fetch_sub(1, std::memory_order_relaxed);
            if (ready()) return true;
            if (deadline != no_deadline && wait_clock::now() >= deadline) return ready();
        }
    }

    /// Call after publishing a change that can make one waiter ready.
    void notify_one() noexcept { notify(false); }
    /// Call after publishing a change that can make several waiters ready.
    void notify_all() noexcept { notify(true); }
    [[nodiscard]] static constexpr bool may_sleep() noexcept { return true; }

private:
    void notify(bool all) noexcept {
        // The light barrier, with the membarrier check read from this object
        // rather than from the process-wide flag: reading the global flag
        // on every push and pop made try_push/try_pop on a busy ring about
        // three times slower (docs/benchmarks.md). Between processes the
        // flag is per process, so the shared wait point reads the global.
        if constexpr (Shared) shared_light_barrier(); else light_barrier(light_);
        if (sleepers_.load(std::memory_order_relaxed) == 0) [[likely]] return;
        epoch_.fetch_add(1, std::memory_order_release);
        futex_wake(epoch_, all, Shared);
    }

    std::atomic<std::uint32_t> epoch_{0};
    std::atomic<std::uint32_t> sleepers_{0};
    // In-process only: whether membarrier makes the waker's side a compiler
    // barrier. Absent between processes, so the shared layout is unchanged.
    struct no_flag {};
    static auto light_flag() noexcept {
        if constexpr (Shared) return no_flag{};
        else return asymmetric_barrier_init();
    }
    [[no_unique_address]] const decltype(light_flag()) light_ = light_flag();
};

}  // namespace conq::detail

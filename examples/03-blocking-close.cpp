// 03-blocking-close.cpp: sleeping instead of spinning, and shutting down.
//
// With the `blocking` wait policy a thread that waits in push() or pop()
// spins for about 20 us, yields until about 100 us, then sleeps in the kernel
// until the other side wakes it: an idle consumer costs no CPU. close() is the
// shutdown signal: it wakes every waiter, later pushes fail, and pop() keeps
// returning the items that are left and then std::nullopt. No sentinel items.
//
// Part 1: one producer, three consumers (spmc). The producer pushes, then
// closes; consumers loop on `while (auto v = q.pop())` and stop by themselves.
// Part 2: two consumers sleep on an empty queue; close() wakes them.

#include <conq/queue.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <thread>
#include <vector>

int main() {
    bool ok = true;

    // ---- Part 1: produce, close, drain.
    {
        conq::queue<int, conq::spmc, conq::blocking, conq::capacity<64>> q;
        constexpr int count = 10'000;
        std::atomic<long long> sum{0};
        std::atomic<int> popped{0};

        std::vector<std::thread> consumers;
        for (int c = 0; c < 3; ++c) {
            consumers.emplace_back([&] {
                // pop() waits while empty; nullopt only once closed and drained.
                while (std::optional<int> v = q.pop()) {
                    sum += *v;
                    ++popped;
                }
            });
        }
        for (int i = 1; i <= count; ++i) {
            if (!q.push(i)) ok = false;  // waits while full; false only if closed
        }
        q.close();
        for (auto& t : consumers) t.join();

        const bool late_push = q.push(-1);  // after close(): refused
        const long long want = static_cast<long long>(count) * (count + 1) / 2;
        std::printf("part 1: %d items popped, sum %lld (expected %lld), push after close: %s\n",
                    popped.load(), sum.load(), want, late_push ? "accepted" : "refused");
        ok = ok && popped == count && sum == want && !late_push && q.closed();
    }

    // ---- Part 2: close() wakes consumers asleep on an empty queue.
    {
        conq::mpmc_queue<int, conq::blocking> q(16);
        std::atomic<int> woke_empty{0};
        std::vector<std::thread> consumers;
        for (int c = 0; c < 2; ++c) {
            consumers.emplace_back([&] {
                if (!q.pop()) ++woke_empty;  // sleeps until close()
            });
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let them fall asleep
        const auto t0 = std::chrono::steady_clock::now();
        q.close();
        for (auto& t : consumers) t.join();
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - t0)
                            .count();
        std::printf("part 2: %d sleeping consumers woke with nullopt %lld us after close()\n",
                    woke_empty.load(), static_cast<long long>(us));
        ok = ok && woke_empty == 2;
    }
    return ok ? 0 : 1;
}

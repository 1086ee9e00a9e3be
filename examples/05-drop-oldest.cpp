// 05-drop-oldest.cpp: a "latest values" feed.
//
// With the drop_oldest overflow policy a push never fails for lack of room:
// when the queue is full the oldest item is removed to make room, and
// dropped() counts how many were removed. A fast producer can therefore
// never be held up by a slow consumer, which sees the newest values.
// (Because the producer may pop, the consumer side then claims items with a
// compare-and-swap, and item moves must be noexcept, even with spsc.)
//
// Part 1, one thread: 20 readings into room for 8 keep the last 8.
// Part 2, two threads: a producer publishes 100,000 readings as fast as it
// can while a consumer reads what is there. How many are popped and how many
// dropped depends on scheduling; their sum does not: every reading is either
// popped or dropped, the consumer sees sequence numbers only go up, and the
// last reading is never lost.

#include <conq/queue.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <thread>

struct reading {
    std::uint64_t seq = 0;
    double celsius = 0.0;
};

using feed = conq::queue<reading, conq::spsc, conq::drop_oldest, conq::capacity<8>>;

int main() {
    bool ok = true;

    // ---- Part 1: the newest 8 survive.
    {
        feed q;
        for (std::uint64_t i = 0; i < 20; ++i) {
            if (!q.try_push(reading{i, 20.0 + static_cast<double>(i) / 10})) ok = false;
        }
        std::uint64_t first = 0, n = 0;
        while (std::optional<reading> r = q.try_pop()) {
            if (n++ == 0) first = r->seq;
        }
        std::printf("part 1: pushed 20, dropped %zu, popped %llu starting at seq %llu\n",
                    q.dropped(), static_cast<unsigned long long>(n),
                    static_cast<unsigned long long>(first));
        ok = ok && q.dropped() == 12 && n == 8 && first == 12;
    }

    // ---- Part 2: fast producer, slow consumer.
    {
        constexpr std::uint64_t count = 100'000;
        feed q;
        std::atomic<bool> started{false}, finished{false};
        std::thread producer([&] {
            while (!started.load(std::memory_order_acquire)) std::this_thread::yield();
            for (std::uint64_t i = 0; i < count; ++i) {
                if (!q.try_push(reading{i, 20.0})) ok = false;  // never fails: makes room
            }
            finished.store(true, std::memory_order_release);
        });

        std::uint64_t popped = 0, last = 0;
        bool increasing = true;
        started.store(true, std::memory_order_release);
        for (;;) {
            const bool done = finished.load(std::memory_order_acquire);
            if (std::optional<reading> r = q.try_pop()) {
                increasing = increasing && (popped == 0 || r->seq > last);
                last = r->seq;
                ++popped;
            } else if (done) {
                break;  // the producer finished and the queue is empty
            } else {
                std::this_thread::yield();
            }
        }
        producer.join();
        std::printf("part 2: pushed %llu, popped %llu, dropped %zu, last seq seen %llu\n",
                    static_cast<unsigned long long>(count), static_cast<unsigned long long>(popped),
                    q.dropped(), static_cast<unsigned long long>(last));
        ok = ok && increasing && popped + q.dropped() == count && last == count - 1;
    }
    return ok ? 0 : 1;
}

// 01-spsc.cpp: the first queue.
//
// One producer thread and one consumer thread share a conq::spsc_queue with
// inline storage (capacity<N>: no heap allocation). The producer uses
// try_push and retries while the queue is full; the consumer uses try_pop,
// which returns std::optional. Neither call ever blocks. Items come out in
// the order they went in, which the consumer checks.

#include <conq/queue.hpp>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <thread>

int main() {
    // capacity<1000> is rounded up to a power of two: capacity() says 1024.
    conq::spsc_queue<std::uint64_t, conq::capacity<1000>> q;
    std::printf("capacity: requested 1000, got %zu\n", q.capacity());

    constexpr std::uint64_t count = 100'000;

    std::thread producer([&q] {
        for (std::uint64_t i = 1; i <= count; ++i) {
            // try_push never blocks: false means "full right now", so retry.
            while (!q.try_push(i)) std::this_thread::yield();
        }
    });

    std::uint64_t expected = 1, sum = 0;
    bool in_order = true;
    while (expected <= count) {
        if (std::optional<std::uint64_t> v = q.try_pop()) {
            in_order = in_order && *v == expected;
            sum += *v;
            ++expected;
        } else {
            std::this_thread::yield();  // empty right now
        }
    }
    producer.join();

    const std::uint64_t want = count * (count + 1) / 2;
    std::printf("popped %llu items in order: %s, sum %llu (expected %llu)\n",
                static_cast<unsigned long long>(count), in_order ? "yes" : "no",
                static_cast<unsigned long long>(sum), static_cast<unsigned long long>(want));
    std::printf("left in the queue: %zu\n", q.size_approx());
    return in_order && sum == want && q.size_approx() == 0 && q.capacity() == 1024 ? 0 : 1;
}

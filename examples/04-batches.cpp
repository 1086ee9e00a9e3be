// 04-batches.cpp: moving many items per call.
//
// try_push_n(first, last) moves as many items of a range in as fit, in order,
// and returns how many; try_pop_n(out, max) moves up to `max` items out
// through an output iterator and returns how many. Neither blocks. A batch
// checks its run of slots in one pass, and where several threads share a
// side it claims the whole run with one compare-and-swap.
//
// Part 1 shows partial batches on a small queue. Part 2 streams 100,000
// items through an spsc queue in batches of up to 64 and checks the order.
// With several consumers, try_pop_n needs an output whose assignment cannot
// throw (a pointer into a buffer, as in part 2), not std::back_inserter.

#include <conq/queue.hpp>

#include <array>
#include <cstdio>
#include <iterator>
#include <numeric>
#include <thread>
#include <vector>

int main() {
    bool ok = true;

    // ---- Part 1: a batch larger than the free room is cut short.
    {
        conq::spsc_queue<int> q(8);
        std::vector<int> in(12);
        std::iota(in.begin(), in.end(), 0);  // 0..11
        const std::size_t pushed = q.try_push_n(in.begin(), in.end());  // room for 8

        std::vector<int> out;
        const std::size_t first = q.try_pop_n(std::back_inserter(out), 5);
        const std::size_t second = q.try_pop_n(std::back_inserter(out), 100);  // only 3 left
        std::printf("part 1: pushed %zu of %zu, popped %zu then %zu\n", pushed, in.size(), first,
                    second);
        ok = ok && pushed == 8 && first == 5 && second == 3 &&
             out == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7};
    }

    // ---- Part 2: a stream of batches between two threads.
    {
        constexpr int count = 100'000, batch = 64;
        conq::spsc_queue<int, conq::capacity<1024>> q;

        std::thread producer([&q] {
            std::vector<int> items(count);
            std::iota(items.begin(), items.end(), 0);
            auto it = items.begin();
            while (it != items.end()) {
                const auto end = items.end() - it > batch ? it + batch : items.end();
                const std::size_t n = q.try_push_n(it, end);  // the first n went in
                if (n == 0) std::this_thread::yield();
                it += static_cast<std::ptrdiff_t>(n);
            }
        });

        std::array<int, batch> buf;
        int next = 0, calls = 0;
        bool in_order = true;
        while (next < count) {
            const std::size_t n = q.try_pop_n(buf.data(), buf.size());
            if (n == 0) {
                std::this_thread::yield();
                continue;
            }
            ++calls;
            for (std::size_t i = 0; i < n; ++i) in_order = in_order && buf[i] == next++;
        }
        producer.join();
        std::printf("part 2: %d items in %d non-empty try_pop_n calls, in order: %s\n", next,
                    calls, in_order ? "yes" : "no");
        ok = ok && in_order && next == count;
    }
    return ok ? 0 : 1;
}

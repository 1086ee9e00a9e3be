// Several producers and consumers share a conq::mpmc_queue; the sum of what
// was popped must equal the sum of what was pushed.
#include <conq/queue.hpp>

#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

int main() {
    constexpr int producers = 2;
    constexpr int consumers = 2;
    constexpr long long per_producer = 50000;
    conq::mpmc_queue<long long, conq::blocking> queue(128);

    std::atomic<long long> popped_sum{0};
    std::vector<std::thread> threads;
    for (int c = 0; c < consumers; ++c) {
        threads.emplace_back([&] {
            long long sum = 0;
            while (std::optional<long long> item = queue.pop()) sum += *item;
            popped_sum += sum;
        });
    }
    std::vector<std::thread> pushers;
    for (int p = 0; p < producers; ++p) {
        pushers.emplace_back([&queue] {
            for (long long i = 1; i <= per_producer; ++i) {
                if (!queue.push(i)) return;
            }
        });
    }
    for (std::thread& t : pushers) t.join();
    queue.close();
    for (std::thread& t : threads) t.join();

    const long long expected = producers * per_producer * (per_producer + 1) / 2;
    std::printf("popped sum %lld, expected %lld\n", popped_sum.load(), expected);
    return popped_sum.load() == expected ? 0 : 1;
}

// 02-mpmc-workers.cpp: several producers, several consumers.
//
// Three producer threads submit jobs to one conq::mpmc_queue and three worker
// threads take them. The capacity is given at run time (heap storage,
// allocated once by the constructor). Producers call push(), which waits
// while the queue is full (default policies: overflow `block`, wait
// `backoff`). Workers use the try_pop(T&) overload, which fills an existing
// object instead of returning an optional.
//
// What it checks: every job is done exactly once, and each worker sees the
// jobs of any one producer in the order that producer pushed them (the ring
// is FIFO: one producer's pushes take increasing tickets, one worker's pops
// take increasing tickets).

#include <conq/queue.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

struct job {
    int producer = -1;
    std::uint32_t seq = 0;
};

int main() {
    constexpr int producers = 3, workers = 3;
    constexpr std::uint32_t per_producer = 20'000;
    constexpr std::uint64_t total = std::uint64_t{producers} * per_producer;

    conq::mpmc_queue<job> q(256);  // runtime capacity
    std::atomic<std::uint64_t> done{0};
    std::vector<std::atomic<std::uint32_t>> seen(producers * std::size_t{per_producer});
    std::atomic<bool> ordered{true};

    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
        threads.emplace_back([&q, p] {
            for (std::uint32_t i = 0; i < per_producer; ++i) q.push(job{p, i});
        });
    }
    for (int w = 0; w < workers; ++w) {
        threads.emplace_back([&] {
            std::array<std::int64_t, producers> last;
            last.fill(-1);
            job j;
            while (done.load(std::memory_order_relaxed) < total) {
                if (!q.try_pop(j)) {
                    std::this_thread::yield();
                    continue;
                }
                if (j.seq <= last[j.producer]) ordered = false;
                last[j.producer] = j.seq;
                seen[j.producer * std::size_t{per_producer} + j.seq].fetch_add(1);
                done.fetch_add(1, std::memory_order_relaxed);
            }
        });
    }
    for (auto& t : threads) t.join();

    bool exactly_once = true;
    for (auto& s : seen) exactly_once = exactly_once && s.load() == 1;
    std::printf("%d producers, %d workers, %llu jobs through a queue of capacity %zu\n", producers,
                workers, static_cast<unsigned long long>(done.load()), q.capacity());
    std::printf("every job done exactly once: %s\n", exactly_once ? "yes" : "no");
    std::printf("per-producer order kept at every worker: %s\n", ordered ? "yes" : "no");
    return exactly_once && ordered && done == total ? 0 : 1;
}

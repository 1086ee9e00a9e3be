// 08-priority-jobs.cpp: a job queue ordered by urgency, then by age.
//
// conq::priority_queue pops the element that is greatest under its
// comparator first. With conq::stable, jobs of equal urgency come out in the
// order they were pushed (beanstalkd's rule: priority, then age). Several
// producers push at once; one worker pops with the blocking policy and stops
// when the queue is closed and drained.
//
// Then the same queue through conq::queue and priority_order<Cmp>, and a
// relaxed queue (a MultiQueue) for when many threads share the queue and a
// near-best element is good enough.

#include <conq/priority_queue.hpp>
#include <conq/queue.hpp>

#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

struct job {
    int urgency;  // higher first
    std::string name;
};
struct by_urgency {
    bool operator()(const job& a, const job& b) const noexcept { return a.urgency < b.urgency; }
};

int main() {
    // Part 1: strict and stable, two producers, one worker.
    conq::priority_queue<job, by_urgency, conq::stable, conq::blocking> jobs;
    {
        std::vector<std::thread> producers;
        for (int p = 0; p < 2; ++p) {
            producers.emplace_back([&jobs, p] {
                for (int i = 0; i < 3; ++i) {
                    jobs.push(job{i == 1 ? 9 : 1, "producer " + std::to_string(p) + " job " +
                                                      std::to_string(i)});
                }
            });
        }
        for (auto& t : producers) t.join();
    }
    jobs.close();  // the worker drains what is there, then stops
    std::thread worker([&jobs] {
        while (std::optional<job> j = jobs.pop()) {
            std::printf("urgency %d: %s\n", j->urgency, j->name.c_str());
        }
        std::printf("closed and drained\n");
    });
    worker.join();

    // Part 2: the same kind of queue through conq::queue, smallest first.
    conq::queue<int, conq::mpmc, conq::priority_order<std::greater<>>> small_first;
    for (int v : {42, 7, 19, 3}) (void)small_first.try_push(v);
    std::printf("smallest first:");
    while (auto v = small_first.try_pop()) std::printf(" %d", *v);
    std::printf("\n");

    // Part 3: relaxed. Every element still comes out exactly once; the
    // order is only nearly sorted.
    conq::priority_queue<int, std::less<>, conq::relaxed<>> relaxed;
    for (int v = 0; v < 20; ++v) (void)relaxed.try_push(v);
    std::printf("relaxed (%zu shards):", relaxed.shard_count());
    int count = 0;
    while (auto v = relaxed.try_pop()) {
        std::printf(" %d", *v);
        ++count;
    }
    std::printf("\n%d of 20 popped\n", count);
    return count == 20 ? 0 : 1;
}

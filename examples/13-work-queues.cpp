// 13-work-queues.cpp: beanstalkd/SQS-style job queues with conq::work_queues.
//
// Jobs go into named queues with a priority (0 is the most urgent), an
// optional delay and a time-to-run (TTR). A worker reserves the best ready
// job of the queues it watches and then decides: remove() (done),
// release() (try again later), bury() (park it until someone kicks it) or
// touch() (more time). A job whose TTR runs out undecided is ready again,
// and a queue with max_deliveries moves a job that keeps coming back to its
// dead-letter queue.
//
// Time is a conq::manual_clock: the delay and the TTR below pass when the
// program says so (advance()), so nothing sleeps. Shown in order: priority
// order, bury, a delayed job waking a worker blocked in reserve_for, kick,
// a TTR running out, dead-lettering, and the statistics.

#include <conq/broker/work_queue.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

using namespace std::chrono_literals;

int main() {
    conq::manual_clock clock;
    conq::work_queues<std::string, conq::manual_clock> jobs(clock);
    jobs.configure("emails", {.max_deliveries = 2, .dead_letter = "emails-failed"});

    jobs.put("emails", "newsletter", {.priority = 500});
    jobs.put("emails", "welcome mail", {.priority = 10});
    jobs.put("emails", "password reset", {.priority = 0});
    jobs.put("emails", "reminder", {.priority = 10, .delay = 30s});
    bool ok = true;

    // 1. Priority order: the reset first, then the welcome mail.
    auto worker = jobs.make_consumer("emails");
    for (int i = 0; i < 2; ++i) {
        auto j = worker.try_reserve();
        std::printf("sent: %s (priority %u)\n", j->payload().c_str(), jobs.peek(j->id()).priority);
        j->remove();
    }

    // 2. Bury: the newsletter cannot go out now; park it.
    {
        auto j = worker.try_reserve();
        j->bury();
        std::printf("buried: %s\n", j->payload().c_str());
    }

    // 3. The reminder is delayed 30 s: a worker thread waits for it, and
    //    moving the clock wakes it.
    std::optional<std::string> reminder;
    std::thread t([&] {
        auto w2 = jobs.make_consumer("emails");
        if (auto r = w2.reserve_for(1min)) {
            reminder = r->payload();
            r->remove();
        }
    });
    while (jobs.stats("emails")->waiting == 0) std::this_thread::yield();
    clock.advance(30s);
    t.join();
    std::printf("after 30 s the waiting worker got: %s\n", reminder ? reminder->c_str() : "nothing");
    ok = ok && reminder == "reminder";

    // 4. Kick: the newsletter is ready again, and goes out.
    std::printf("kicked %zu buried job(s)\n", jobs.kick("emails", 10));
    {
        auto j = worker.try_reserve();
        std::printf("sent: %s\n", j->payload().c_str());
        ok = ok && j->payload() == "newsletter";
        j->remove();
    }

    // 5. TTR: the invoice (5 s to run) is reserved and the worker stalls. At
    //    5 s it is ready again, and the late remove fails.
    jobs.put("emails", "invoice", {.ttr = 5s});
    {
        auto j = worker.try_reserve();
        clock.advance(5s);
        try {
            j->remove();
            ok = false;
        } catch (const conq::broker_error& e) {
            std::printf("late remove of %s: %s\n", j->payload().c_str(), e.what());
        }
    }

    // 6. Dead letters: its 2nd delivery comes back undecided too (released),
    //    so it moves to "emails-failed".
    {
        auto j = worker.try_reserve();
        std::printf("delivery %u of %s, released again\n", j->deliveries(), j->payload().c_str());
        j->release();
    }
    auto failed = jobs.peek_ready("emails-failed");
    std::printf("in emails-failed: %s\n", failed ? failed->payload->c_str() : "nothing");
    ok = ok && failed && *failed->payload == "invoice";

    // 7. Statistics.
    const auto s = *jobs.stats("emails");
    std::printf("emails: %llu jobs put, %llu reserves, %llu deleted, %llu buried, %llu kicked, "
                "%llu timed out, %llu dead-lettered, %zu left\n",
                static_cast<unsigned long long>(s.total_jobs), static_cast<unsigned long long>(s.reserves),
                static_cast<unsigned long long>(s.deletes), static_cast<unsigned long long>(s.buries),
                static_cast<unsigned long long>(s.kicks), static_cast<unsigned long long>(s.timeouts),
                static_cast<unsigned long long>(s.dead_lettered), s.ready + s.delayed + s.buried);
    ok = ok && s.total_jobs == 5 && s.deletes == 4 && s.timeouts == 1 && s.dead_lettered == 1 &&
         s.ready + s.delayed + s.buried == 0;
    return ok ? 0 : 1;
}

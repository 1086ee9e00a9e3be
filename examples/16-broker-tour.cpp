// 16-broker-tour.cpp: the three semantics of conq::broker in one program,
// on one broker, in memory, with a manual clock so that nothing sleeps.
//
//   1. work queues (beanstalkd, SQS): jobs with priorities, a delay, a
//      time-to-run that runs out, bury and kick, a dead-letter queue;
//   2. pub/sub (RabbitMQ topics, ZeroMQ PUB/SUB): patterns with * and #,
//      a small subscriber that drops its oldest messages and sees the gap,
//      request/reply;
//   3. logs (Kafka): a stream of 2 partitions, keyed appends, a consumer
//      group of two members, commit, replay from the beginning;
//
// and at the end drain() and await_idle(), which tests use instead of
// sleeping.

#include <conq/broker/broker.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

int main() {
    conq::manual_clock clock;
    conq::broker<std::string, conq::manual_clock> b(clock);

    // ------------------------------------------------------- work queues
    std::puts("-- work queues");
    b.configure("emails", {.max_deliveries = 2, .dead_letter = "emails-dead"});
    b.put("emails", "newsletter", {.priority = 100});
    b.put("emails", "password reset", {.priority = 0});              // most urgent
    b.put("emails", "reminder", {.priority = 10, .delay = 1h});      // not before an hour
    auto worker = b.make_consumer({"emails"});

    auto j = worker.try_reserve();
    std::printf("first: %s (priority 0 goes first)\n", j->payload().c_str());
    j->remove();

    auto n = worker.try_reserve();                                   // the newsletter
    n->bury();                                                       // park it
    const std::size_t buried = b.queue_stats_of("emails")->buried;
    const std::size_t kicked = b.kick("emails", 10);                 // back to ready
    std::printf("buried: %zu, kicked back: %zu\n", buried, kicked);

    // Its second delivery crashes its worker (the time-to-run runs out):
    // with max_deliveries = 2 it then goes to the dead-letter queue.
    {
        auto held = worker.try_reserve();
        clock.advance(61s);                                          // the default ttr is 60 s
        std::printf("\"%s\" delivered %u times, still held after its ttr? %s\n", held->payload().c_str(),
                    held->deliveries(), held->held() ? "yes" : "no");
    }
    std::printf("dead letters: %zu ready in emails-dead\n", b.queue_stats_of("emails-dead")->ready);
    clock.advance(1h);                                               // the reminder is due
    auto r = worker.try_reserve();
    std::printf("after an hour: %s\n", r->payload().c_str());
    r->remove();
    b.purge("emails-dead");

    // ------------------------------------------------------------ pub/sub
    std::puts("-- pub/sub");
    auto eu = b.subscribe("orders.eu.*");
    auto all = b.subscribe("orders.#");
    auto tiny = b.subscribe("orders.#", {.capacity = 2, .overflow = conq::overflow_action::drop_oldest});
    for (const char* s : {"orders.eu.created", "orders.us.created", "orders.eu.paid"})
        std::printf("publish %-18s -> %zu subscriptions\n", s, b.publish(s, s));
    while (auto m = eu.try_next()) std::printf("orders.eu.* got %s\n", std::string(m->subject()).c_str());
    std::size_t n_all = 0;
    while (all.try_next()) ++n_all;
    std::printf("orders.# got %zu\n", n_all);
    auto first_tiny = tiny.try_next();
    std::printf("the 2-slot subscriber lost %llu and its next message says gap %llu\n",
                static_cast<unsigned long long>(tiny.stats().dropped),
                static_cast<unsigned long long>(first_tiny->gap()));
    (void)tiny.try_next();

    // request/reply: a responder thread answers on the request's reply subject.
    auto service = b.subscribe("time.now");
    std::thread responder([&] {
        if (auto q = service.next()) b.reply(*q, "12:00");
    });
    auto answer = b.request("time.now", "what time is it?", 5s);
    responder.join();
    std::printf("request/reply: %s\n", answer ? answer->payload().c_str() : "(no answer)");
    service.unsubscribe();

    // ------------------------------------------------------------ streams
    std::puts("-- logs");
    auto& clicks = b.create_stream("clicks", {.partitions = 2});
    for (int i = 0; i < 6; ++i) {
        const std::string user = "user-" + std::to_string(i % 3);
        const auto at = clicks.append(user, user + " click " + std::to_string(i));
        std::printf("append %s -> partition %u offset %llu\n", user.c_str(), at.partition,
                    static_cast<unsigned long long>(at.offset));
    }
    auto a = clicks.join("analytics");
    auto c2 = clicks.join("analytics");                              // the group rebalances
    std::vector<conq::stream_record<std::string>> batch;
    for (auto* member : {&a, &c2}) {
        batch.clear();
        member->poll(batch, 100, 0s);
        std::printf("member with partition(s)");
        for (auto p : member->assignment()) std::printf(" %u", p);
        std::printf(" read %zu records\n", batch.size());
        member->commit();
    }
    batch.clear();
    clicks.read(0, clicks.begin_offset(0), 100, batch);              // replay, no group
    std::printf("replay of partition 0 from offset %llu: %zu records\n",
                static_cast<unsigned long long>(clicks.begin_offset(0)), batch.size());
    batch.clear();

    // -------------------------------------------------------- quiescence
    b.drain();
    std::printf("idle: %s\n", b.await_idle(1s) ? "yes" : "no");
    try {
        b.put("emails", "too late");
    } catch (const conq::broker_error& e) {
        std::printf("after drain(): %s\n", e.what());
    }
    return 0;
}

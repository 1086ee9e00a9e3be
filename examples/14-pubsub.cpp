// 14-pubsub.cpp: publish/subscribe on dotted subjects with conq::topics.
//
// Subscriptions name RabbitMQ topic patterns: `*` matches one word, `#` any
// number of words. Each subscription has its own bounded queue; a publish
// queues one shared, immutable payload to every matching subscription and
// says how many it reached. A subscription made before a publish always
// gets it: there is no "slow joiner".
//
// Part 1: routing by pattern.
// Part 2: a small subscriber queue with overflow drop_oldest loses its
//         oldest messages; the next message it takes says how many (gap()).
// Part 3: request/reply: request() publishes with a private reply subject
//         and waits for the first reply, which a responder thread sends with
//         reply(). A manual clock bounds the wait, so nothing sleeps.

#include <conq/broker/topic.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

struct price {
    std::string symbol;
    double value;
};

int main() {
    using namespace std::chrono_literals;

    // Part 1: routing.
    conq::topics<price> bus;
    auto eu = bus.subscribe("prices.eu.*");      // every EU symbol
    auto all = bus.subscribe("prices.#");        // everything under prices
    auto acme = bus.subscribe("prices.*.ACME",   // ACME anywhere, newest two kept
                              {.capacity = 2, .overflow = conq::overflow_action::drop_oldest});

    std::printf("prices.eu.ACME reached %zu subscriptions\n", bus.publish("prices.eu.ACME", {"ACME", 10.50}));
    std::printf("prices.eu.INIT reached %zu subscriptions\n", bus.publish("prices.eu.INIT", {"INIT", 3.25}));
    std::printf("orders.new     reached %zu subscriptions\n", bus.publish("orders.new", {"-", 0}));
    while (auto m = eu.try_next())
        std::printf("  eu   took %-15s %s %.2f\n", std::string(m->subject()).c_str(), m->payload().symbol.c_str(), m->payload().value);
    std::printf("  all  holds %zu messages\n", all.size());

    // Part 2: ACME moves faster than its subscriber reads (it holds the EU
    // price already, and keeps the newest two).
    for (int i = 1; i <= 4; ++i) (void)bus.publish("prices.us.ACME", {"ACME", 10.50 + i});
    bool saw_gap = false;
    while (auto m = acme.try_next()) {
        std::printf("  acme took %.2f (message %llu, %llu lost just before)\n", m->payload().value,
                    static_cast<unsigned long long>(m->sequence()), static_cast<unsigned long long>(m->gap()));
        saw_gap = saw_gap || m->gap() > 0;
    }
    std::printf("  acme dropped %llu in all\n", static_cast<unsigned long long>(acme.stats().dropped));

    // Part 3: request/reply.
    conq::manual_clock clock;
    conq::topics<int, conq::manual_clock> rpc(clock);
    auto service = rpc.subscribe("math.square");
    std::thread responder([&] {
        while (auto m = service.next()) (void)rpc.reply(*m, m->payload() * m->payload());
    });
    const auto answer = rpc.request("math.square", 12, 1s);
    std::printf("request math.square 12 -> %d\n", answer ? answer->payload() : -1);
    const auto nobody = rpc.request("math.cube", 3, 1s);  // no subscriber: nullopt at once
    std::printf("request math.cube 3 -> %s\n", nobody ? "an answer?" : "nobody subscribes");
    rpc.close();  // the responder's next() returns nullopt
    responder.join();

    const conq::topic_stats st = bus.stats();
    std::printf("prices: %llu published, %llu queued, %llu dropped, %llu with no subscriber\n",
                static_cast<unsigned long long>(st.published), static_cast<unsigned long long>(st.delivered),
                static_cast<unsigned long long>(st.dropped), static_cast<unsigned long long>(st.no_route));
    return answer && answer->payload() == 144 && !nobody && saw_gap && st.dropped == 3 ? 0 : 1;
}

// Stress tests of conq::topics (conq/broker/topic.hpp) with real threads.
//
//   fan-out      P publishers x S subscribers, overflow block and small
//                queues (publishers really wait): every subscriber receives
//                every message exactly once, in each publisher's order, with
//                sequence numbers 1, 2, 3... and no gap; the counters add up.
//   churn        publishers run while other threads subscribe and unsubscribe
//                (block, drop_oldest and reject, destroyed with messages
//                queued), read stats() and idle(), and make requests that a
//                responder answers. A steady "#" subscriber still gets every
//                message exactly once and in order; every churned
//                subscription sees sequence - previous = gap + 1.
//   late joiner  a subscription made while publishers run receives every
//                message published after subscribe() returned.
//
// Under ThreadSanitizer these are also the race checks of the routing-table
// swap (hazard slots), the route cache and the subscription queues. Sizes
// are small by default; CONQ_STRESS_SCALE multiplies them.
#include <conq/broker/topic.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "conq_catch.hpp"
#include "stress_config.hpp"
#include "watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using conq::overflow_action;
using u64 = std::uint64_t;
using bus_t = conq::topics<u64>;

constexpr u64 encode(std::size_t publisher, std::size_t index) { return (u64{publisher} << 32) | u64{index}; }
constexpr std::size_t publisher_of(u64 v) { return static_cast<std::size_t>(v >> 32); }
constexpr std::size_t index_of(u64 v) { return static_cast<std::size_t>(v & 0xffff'ffffu); }

/// Checks what one subscriber takes: per publisher, indices 0, 1, 2... with
/// none missing or repeated; sequence numbers 1, 2, 3... with no gap.
struct in_order_checker {
    explicit in_order_checker(std::size_t publishers) : next(publishers, 0) {}
    void take(const conq::message<u64>& m) {
        const std::size_t p = publisher_of(m.payload());
        ++count;
        if (p >= next.size() || index_of(m.payload()) != next[p]) {
            ++errors;
        } else {
            ++next[p];
        }
        if (m.sequence() != count || m.gap() != 0) ++sequence_errors;
    }
    std::vector<std::size_t> next;
    u64 count = 0;
    u64 errors = 0;
    u64 sequence_errors = 0;
};

enum class style { next, batch, timed };

TEST_CASE("topics stress: every subscriber gets every message once, in publisher order",
          "[topic][stress]") {
    conq_test::watchdog dog("topics fan-out stress", std::chrono::seconds(300));
    const std::size_t publishers = 3;
    const std::size_t per_publisher = conq_test::scaled(conq_test::thread_sanitizer ? 6000 : 20000);
    const char* patterns[] = {"#", "s.*.*", "s.#", "*.*.#"};
    const style styles[] = {style::next, style::batch, style::timed, style::next};
    constexpr std::size_t subscribers = 4;

    bus_t bus;
    std::vector<bus_t::subscription> subs;
    for (std::size_t k = 0; k < subscribers; ++k)
        subs.push_back(bus.subscribe(patterns[k], {.capacity = 8 + 8 * k, .overflow = overflow_action::block}));
    std::vector<in_order_checker> checks(subscribers, in_order_checker(publishers));

    std::vector<std::thread> threads;
    for (std::size_t k = 0; k < subscribers; ++k) {
        threads.emplace_back([&, k] {
            auto& s = subs[k];
            auto& c = checks[k];
            std::vector<conq::message<u64>> batch;
            for (;;) {
                if (styles[k] == style::batch) {
                    batch.clear();
                    if (s.next_n(batch, 16) > 0) {
                        for (const auto& m : batch) c.take(m);
                        continue;
                    }
                }
                const auto m = styles[k] == style::timed ? s.next_for(1h) : s.next();
                if (!m) return;
                c.take(*m);
            }
        });
    }
    std::atomic<u64> reached{0};
    std::vector<std::thread> pubs;
    for (std::size_t p = 0; p < publishers; ++p) {
        pubs.emplace_back([&, p] {
            u64 n = 0;
            std::string subject;
            for (std::size_t i = 0; i < per_publisher; ++i) {
                subject = "s." + std::to_string(p) + "." + std::to_string(i % 5);
                n += bus.publish(subject, encode(p, i));
            }
            reached.fetch_add(n);
        });
    }
    for (auto& t : pubs) t.join();
    CHECK(bus.await_idle(1h));
    bus.close();
    for (auto& t : threads) t.join();

    const u64 total = publishers * per_publisher;
    CHECK(reached.load() == total * subscribers);
    for (std::size_t k = 0; k < subscribers; ++k) {
        INFO("subscriber " << k << " (" << patterns[k] << ")");
        CHECK(checks[k].count == total);
        CHECK(checks[k].errors == 0);
        CHECK(checks[k].sequence_errors == 0);
        const auto st = subs[k].stats();
        CHECK(st.received == total);
        CHECK(st.delivered == total);
        CHECK(st.dropped == 0);
        CHECK(st.rejected == 0);
        CHECK(st.high_water <= 8 + 8 * k);
    }
    const auto ts = bus.stats();
    CHECK(ts.published == total);
    CHECK(ts.delivered == total * subscribers);
    CHECK(ts.no_route == 0);
}

TEST_CASE("topics stress: subscribe and unsubscribe churn while publishing", "[topic][stress]") {
    conq_test::watchdog dog("topics churn stress", std::chrono::seconds(300));
    const std::size_t publishers = 2;
    const std::size_t per_publisher = conq_test::scaled(conq_test::thread_sanitizer ? 8000 : 20000);
    const std::size_t requests = conq_test::scaled(conq_test::thread_sanitizer ? 300 : 1000);

    bus_t bus;
    auto steady = bus.subscribe("c.#", {.capacity = 64});
    in_order_checker steady_check(publishers);
    std::thread steady_consumer([&] {
        while (auto m = steady.next()) steady_check.take(*m);
    });

    auto service = bus.subscribe("rpc.echo", {.capacity = 16});
    std::thread responder([&] {
        while (auto m = service.next()) (void)bus.reply(*m, m->payload() + 1);
    });

    std::atomic<bool> publishing{true};
    std::atomic<u64> churn_errors{0}, churned{0}, churn_taken{0};
    const char* patterns[] = {"c.*.*", "c.0.#", "#", "c.*.3", "x.#", "c.1.*", "*.*.*"};
    const overflow_action actions[] = {overflow_action::block, overflow_action::drop_oldest,
                                       overflow_action::reject};
    auto churner = [&](unsigned seed) {
        std::mt19937 rng(seed);
        while (publishing.load()) {
            auto s = bus.subscribe(patterns[rng() % std::size(patterns)],
                                   {.capacity = 1 + rng() % 6, .overflow = actions[rng() % 3]});
            u64 prev = 0;
            const unsigned takes = rng() % 24;
            for (unsigned i = 0; i < takes; ++i) {
                const auto m = s.try_next();
                if (!m) {
                    std::this_thread::yield();
                    continue;
                }
                if (m->sequence() != prev + m->gap() + 1) churn_errors.fetch_add(1);
                prev = m->sequence();
                churn_taken.fetch_add(1, std::memory_order_relaxed);
            }
            if (rng() % 2) s.unsubscribe();  // else the destructor does it, messages queued
            churned.fetch_add(1, std::memory_order_relaxed);
        }
    };
    std::thread churn_a(churner, 1u), churn_b(churner, 2u);

    std::atomic<u64> stats_reads{0};
    std::thread observer([&] {
        while (publishing.load()) {
            const auto st = bus.stats();
            if (st.delivered < st.dropped) churn_errors.fetch_add(1);
            (void)bus.idle();
            stats_reads.fetch_add(1, std::memory_order_relaxed);
            std::this_thread::yield();
        }
    });

    std::atomic<u64> bad_replies{0};
    std::thread requester([&] {
        for (std::size_t i = 0; i < requests; ++i) {
            const auto r = bus.request("rpc.echo", u64{i}, 1h);
            if (!r || r->payload() != u64{i} + 1) bad_replies.fetch_add(1);
        }
    });

    std::vector<std::thread> pubs;
    for (std::size_t p = 0; p < publishers; ++p) {
        pubs.emplace_back([&, p] {
            std::string subject;
            for (std::size_t i = 0; i < per_publisher; ++i) {
                subject = "c." + std::to_string(p) + "." + std::to_string(i % 8);
                (void)bus.publish(subject, encode(p, i));
            }
        });
    }
    for (auto& t : pubs) t.join();
    requester.join();
    publishing = false;
    churn_a.join();
    churn_b.join();
    observer.join();
    CHECK(bus.await_idle(1h));
    bus.close();
    steady_consumer.join();
    responder.join();

    CHECK(steady_check.count == publishers * per_publisher);
    CHECK(steady_check.errors == 0);
    CHECK(steady_check.sequence_errors == 0);
    CHECK(churn_errors.load() == 0);
    CHECK(bad_replies.load() == 0);
    CHECK(churned.load() > 0);
    const auto ts = bus.stats();
    CHECK(ts.subscriptions == 2);
    CHECK(ts.published == publishers * per_publisher + 2 * requests);
}

TEST_CASE("topics stress: a late subscriber misses nothing published after subscribe returned",
          "[topic][stress]") {
    conq_test::watchdog dog("topics late joiner stress", std::chrono::seconds(300));
    const std::size_t publishers = 2;
    const std::size_t per_publisher = conq_test::scaled(conq_test::thread_sanitizer ? 8000 : 20000);
    for (int round = 0; round < 4; ++round) {
        INFO("round " << round);
        bus_t bus;
        std::vector<std::atomic<std::size_t>> done(publishers);  // indices published so far
        std::vector<std::thread> pubs;
        for (std::size_t p = 0; p < publishers; ++p) {
            pubs.emplace_back([&, p] {
                const std::string subject = "late." + std::to_string(p);
                for (std::size_t i = 0; i < per_publisher; ++i) {
                    (void)bus.publish(subject, encode(p, i));
                    done[p].store(i + 1, std::memory_order_seq_cst);
                }
            });
        }
        // Join somewhere in the first half of publisher 0's run.
        const std::size_t wait_for = per_publisher * static_cast<std::size_t>(round) / 8;
        while (done[0].load(std::memory_order_seq_cst) < wait_for) std::this_thread::yield();
        auto s = bus.subscribe("late.*", {.capacity = 16});
        std::vector<std::size_t> seen_at_join(publishers);
        for (std::size_t p = 0; p < publishers; ++p) seen_at_join[p] = done[p].load(std::memory_order_seq_cst);

        std::thread closer([&] {
            for (auto& t : pubs) t.join();
            (void)bus.await_idle(1h);
            bus.close();
        });
        std::vector<std::size_t> first(publishers, per_publisher), next(publishers, 0);
        u64 order_errors = 0;
        while (auto m = s.next()) {
            const std::size_t p = publisher_of(m->payload()), i = index_of(m->payload());
            if (first[p] == per_publisher) {
                first[p] = i;
            } else if (i != next[p]) {
                ++order_errors;
            }
            next[p] = i + 1;
        }
        closer.join();
        CHECK(order_errors == 0);
        for (std::size_t p = 0; p < publishers; ++p) {
            INFO("publisher " << p << ": " << seen_at_join[p] << " published when subscribe returned");
            // Index seen_at_join[p] may have been in flight; the next one
            // started after subscribe() returned (sequentially consistent
            // counters: the publisher read the new routing table).
            if (first[p] == per_publisher) {  // nothing received: nothing was due
                CHECK(seen_at_join[p] + 1 >= per_publisher);
            } else {
                CHECK(first[p] <= seen_at_join[p] + 1);
                CHECK(next[p] == per_publisher);
            }
        }
    }
}

}  // namespace

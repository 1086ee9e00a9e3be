// Unit tests of conq/broker/topic.hpp. They prove: patterns match subjects
// exactly as a RabbitMQ topic exchange does (a table of edge cases, checked
// both through subject_matches() and through real subscriptions); subjects,
// patterns, options and payload sizes that break the rules are refused with
// the right broker_errc and change nothing; a publish reaches every matching
// subscription once and all of them share one payload object (no copy,
// move-only payloads work); the three overflow actions keep exact counts and
// show losses as gaps in the sequence numbers; unsubscribe and destruction
// take a subscription out; close() and unsubscribe() wake blocked consumers
// and publishers; next_for(), request() and await_idle() time out on a
// manual clock; request/reply round-trips; the counters add up.
//
// Time is conq::manual_clock wherever a time-out is involved; no test sleeps.
// Threads that must be blocked are observed through subscription_stats
// (waiting_consumers, blocked_publishers) before the test goes on.
#include <conq/broker/topic.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "conq_catch.hpp"
#include "counted.hpp"
#include "watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using conq::broker_errc;
using conq::manual_clock;
using conq::overflow_action;
using conq_test::counted;

/// The code of the broker_error `f` throws; broker_errc{} if none.
template <class F>
broker_errc error_of(F&& f) {
    try {
        f();
    } catch (const conq::broker_error& e) {
        return e.errc();
    }
    return broker_errc{};
}

/// Spins (yielding) until `done()`; the watchdog of the test catches a hang.
template <class F>
void wait_until(F&& done) {
    while (!done()) std::this_thread::yield();
}

std::int64_t now_ns(const manual_clock& c) { return c.now().time_since_epoch().count(); }

/// The ints of every message queued on `s`, in order.
template <class Sub>
std::vector<int> drain_ints(Sub& s) {
    std::vector<int> out;
    while (auto m = s.try_next()) out.push_back(m->payload());
    return out;
}

struct match_case {
    const char* pattern;
    const char* subject;
    bool expected;
};

// RabbitMQ topic exchange semantics: words split on '.', empty words count,
// `*` is exactly one word (maybe empty), `#` zero or more words.
const match_case match_table[] = {
    {"#", "a", true},
    {"#", "a.b.c", true},
    {"#", ".", true},
    {"#", "a..b", true},
    {"#.#", "a", true},
    {"#.#", "a.b", true},
    {"a.#", "a", true},
    {"a.#", "a.b", true},
    {"a.#", "a.b.c", true},
    {"a.#", "a.", true},
    {"a.#", "b", false},
    {"a.#", "ab", false},
    {"a.#", "b.a", false},
    {"#.a", "a", true},
    {"#.a", "x.y.a", true},
    {"#.a", "a.x", false},
    {"a.#.b", "a.b", true},
    {"a.#.b", "a.x.b", true},
    {"a.#.b", "a.x.y.b", true},
    {"a.#.b", "a..b", true},
    {"a.#.b", "a.x.y", false},
    {"a.#.b", "a.b.x", false},
    {"a.#.b", "b.a.b", false},
    {"a.#.#.b", "a.b", true},
    {"a.#.b.#", "a.b", true},
    {"a.#.b.#", "a.x.b.y.z", true},
    {"#.b.#", "b", true},
    {"#.b.#", "x.b.y", true},
    {"#.b.#", "x.y", false},
    {"x.#.y.#.z", "x.y.z", true},
    {"x.#.y.#.z", "x.1.y.2.3.z", true},
    {"x.#.y.#.z", "x.1.z.y", false},
    {"*", "x", true},
    {"*", "x.y", false},
    {"*", ".", false},
    {"*.*", ".", true},
    {"*.*", "a.b", true},
    {"*.*", "a", false},
    {"*.*", "a.b.c", false},
    {"a.*", "a", false},
    {"a.*", "a.b", true},
    {"a.*", "a.", true},
    {"a.*", "a.b.c", false},
    {"*.b", ".b", true},
    {"a.*.b", "a..b", true},
    {"*.#", "a", true},
    {"*.#", ".", true},
    {"#.*", "a", true},
    {"#.*.#", "a", true},
    {"*.*.#", "a", false},
    {"*.a.#", "x.a", true},
    {"#.#.a", "a", true},
    {"a..b", "a..b", true},
    {"a..b", "a.b", false},
    {".", ".", true},
    {".", "a.", false},
    {"a.", "a.", true},
    {"a.", "a", false},
    {"a", "a.", false},
    {"a.b", "a.b", true},
    {"a.b", "a.b.c", false},
    {"a.b", "a", false},
    {"a.b", "A.b", false},
    {"orders.*.created", "orders.eu.created", true},
    {"orders.*.created", "orders.eu.west.created", false},
    {"orders.#.created", "orders.eu.west.created", true},
    {"\xc3\xa9.*", "\xc3\xa9.x", true},
};

// -------------------------------------------------------------- matching

TEST_CASE("topics: patterns match subjects as a RabbitMQ topic exchange does", "[topic]") {
    STATIC_REQUIRE(sizeof(match_table) / sizeof(match_table[0]) >= 40);
    for (const match_case& c : match_table) {
        INFO("pattern \"" << c.pattern << "\", subject \"" << c.subject << "\"");
        CHECK(conq::subject_matches(c.pattern, c.subject) == c.expected);
    }
}

TEST_CASE("topics: subscriptions receive exactly the subjects the table says", "[topic]") {
    conq::topics<int> bus;
    std::vector<std::string> patterns, subjects;
    for (const match_case& c : match_table) {
        if (std::find(patterns.begin(), patterns.end(), c.pattern) == patterns.end()) patterns.push_back(c.pattern);
        if (std::find(subjects.begin(), subjects.end(), c.subject) == subjects.end()) subjects.push_back(c.subject);
    }
    std::vector<conq::topics<int>::subscription> subs;
    for (const auto& p : patterns) subs.push_back(bus.subscribe(p, {.capacity = 1000}));
    std::size_t expected_deliveries = 0;
    for (std::size_t i = 0; i < subjects.size(); ++i) {
        std::size_t matching = 0;
        for (const auto& p : patterns) matching += conq::subject_matches(p, subjects[i]) ? 1 : 0;
        CHECK(bus.publish(subjects[i], static_cast<int>(i)) == matching);
        expected_deliveries += matching;
    }
    std::vector<std::set<std::string>> got(patterns.size());
    for (std::size_t k = 0; k < patterns.size(); ++k) {
        while (auto m = subs[k].try_next()) {
            CHECK(m->subject() == subjects[static_cast<std::size_t>(m->payload())]);
            got[k].insert(std::string(m->subject()));
        }
    }
    for (const match_case& c : match_table) {
        INFO("pattern \"" << c.pattern << "\", subject \"" << c.subject << "\"");
        const auto k = static_cast<std::size_t>(std::find(patterns.begin(), patterns.end(), c.pattern) - patterns.begin());
        CHECK(got[k].count(c.subject) == (c.expected ? 1u : 0u));
    }
    CHECK(bus.stats().delivered == expected_deliveries);
}

// ------------------------------------------------------------ validation

TEST_CASE("topics: subjects that break the rules are refused with invalid_name", "[topic]") {
    conq::topics<int> bus;
    auto all = bus.subscribe("#");
    const std::string too_long(256, 'a');
    const std::string longest(255, 'a');
    for (const std::string& bad : {std::string(), too_long, std::string("a b"), std::string("a\tb"),
                                  std::string("a\nb"), std::string("a\x7f"), std::string("a\0b", 3),
                                  std::string("a.*"), std::string("*"), std::string("a.#"),
                                  std::string("#"), std::string("a*b"), std::string("a#"),
                                  std::string("_reply"), std::string("_reply.1.2")}) {
        INFO("subject \"" << bad << "\"");
        CHECK_FALSE(conq::valid_subject(bad));
        CHECK(error_of([&] { (void)bus.publish(bad, 1); }) == broker_errc::invalid_name);
        CHECK(error_of([&] { (void)bus.publish(bad, std::make_shared<const int>(1)); }) ==
              broker_errc::invalid_name);
        CHECK(error_of([&] { (void)bus.request(bad, 1, 1s); }) == broker_errc::invalid_name);
    }
    const auto st = bus.stats();
    CHECK(st.published == 0);
    CHECK(st.delivered == 0);
    CHECK(st.no_route == 0);
    CHECK(all.size() == 0);

    for (const std::string& good : {longest, std::string("."), std::string("a..b"), std::string("_replyx"),
                                   std::string("x._reply"), std::string("-+/;$()"), std::string("\xc3\xa9")}) {
        INFO("subject \"" << good << "\"");
        CHECK(conq::valid_subject(good));
        CHECK(bus.publish(good, 1) == 1);
    }
    CHECK(bus.stats().published == 7);
}

TEST_CASE("topics: patterns that break the rules are refused with invalid_pattern", "[topic]") {
    conq::topics<int> bus;
    for (const std::string& bad : {std::string(), std::string(256, 'a'), std::string("a*"), std::string("*a"),
                                  std::string("a#b"), std::string("#a"), std::string("a.b*"),
                                  std::string("**"), std::string("##"), std::string("a b"),
                                  std::string("a\x01"), std::string("_reply.#"), std::string("_reply")}) {
        INFO("pattern \"" << bad << "\"");
        CHECK_FALSE(conq::valid_subject_pattern(bad));
        CHECK(error_of([&] { (void)bus.subscribe(bad); }) == broker_errc::invalid_pattern);
        CHECK(error_of([&] { (void)conq::subject_matches(bad, "a"); }) == broker_errc::invalid_pattern);
    }
    CHECK(bus.stats().subscriptions == 0);
    CHECK(bus.publish("a", 1) == 0);
    for (const char* good : {"*", "#", "#.#", "a..b", ".", "*.*", "a.*.#", "_replyx.#"}) {
        INFO("pattern \"" << good << "\"");
        CHECK(conq::valid_subject_pattern(good));
        CHECK(bus.subscribe(good));
    }
    CHECK(error_of([] { (void)conq::subject_matches("#", "a.*"); }) == broker_errc::invalid_name);
}

TEST_CASE("topics: options out of range are refused with invalid_argument", "[topic]") {
    conq::topics<int> bus;
    CHECK(error_of([&] { (void)bus.subscribe("a", {.capacity = 0}); }) == broker_errc::invalid_argument);
    CHECK(error_of([&] {
              (void)bus.subscribe("a", {.capacity = 4, .overflow = static_cast<overflow_action>(7)});
          }) == broker_errc::invalid_argument);
    CHECK(error_of([] { conq::topics<int> t(conq::topic_options{.max_payload = 0}); }) ==
          broker_errc::invalid_argument);
    CHECK(bus.stats().subscriptions == 0);
    auto one = bus.subscribe("a", {.capacity = 1});
    CHECK(one.capacity() == 1);
    CHECK(one.overflow() == overflow_action::block);
    CHECK(one.pattern() == "a");
}

TEST_CASE("topics: payloads above max_payload are refused with payload_too_large", "[topic]") {
    manual_clock clock;
    conq::topics<std::string, manual_clock> bus(conq::topic_options{.max_payload = 4}, clock);
    auto s = bus.subscribe("a");
    CHECK(error_of([&] { (void)bus.publish("a", std::string("hello")); }) == broker_errc::payload_too_large);
    CHECK(error_of([&] { (void)bus.publish("a", std::make_shared<const std::string>("hello")); }) ==
          broker_errc::payload_too_large);
    CHECK(error_of([&] { (void)bus.request("a", std::string("hello"), 1s); }) ==
          broker_errc::payload_too_large);
    CHECK(bus.stats().published == 0);
    CHECK(s.size() == 0);
    CHECK(bus.publish("a", std::string("abcd")) == 1);
    CHECK(error_of([&] { (void)bus.publish("a", std::shared_ptr<const std::string>()); }) ==
          broker_errc::invalid_argument);
    CHECK(s.size() == 1);
}

// -------------------------------------------------------------- fan-out

TEST_CASE("topics: a publish reaches every matching subscription once", "[topic]") {
    conq::topics<int> bus;
    auto orders = bus.subscribe("orders.#");
    auto created = bus.subscribe("orders.*.created");
    auto exact = bus.subscribe("orders.eu.created");
    auto all = bus.subscribe("#");
    auto payments = bus.subscribe("payments.#");
    auto eu = bus.subscribe("*.eu.*");

    CHECK(bus.publish("orders.eu.created", 1) == 5);
    CHECK(bus.publish("orders.us.created", 2) == 3);
    CHECK(bus.publish("payments.eu.done", 3) == 3);
    CHECK(bus.publish("nothing", 4) == 1);

    CHECK(drain_ints(orders) == std::vector<int>{1, 2});
    CHECK(drain_ints(created) == std::vector<int>{1, 2});
    CHECK(drain_ints(exact) == std::vector<int>{1});
    CHECK(drain_ints(all) == std::vector<int>{1, 2, 3, 4});
    CHECK(drain_ints(payments) == std::vector<int>{3});
    CHECK(drain_ints(eu) == std::vector<int>{1, 3});

    (void)bus.publish("orders.eu.created", 5);
    const auto m = exact.try_next();
    REQUIRE(m);
    CHECK(m->subject() == "orders.eu.created");
    CHECK(m->reply_to().empty());
    CHECK(m->sequence() == 2);
    CHECK(m->gap() == 0);
}

TEST_CASE("topics: every subscriber shares one payload object", "[topic]") {
    counted::reset();
    {
        conq::topics<counted> bus;
        auto a = bus.subscribe("x.#");
        auto b = bus.subscribe("x.*");
        auto c = bus.subscribe("#");
        REQUIRE(bus.publish("x.y", counted(7)) == 3);
        CHECK(counted::copies.load() == 0);
        CHECK(counted::live.load() == 1);
        const auto ma = a.try_next(), mb = b.try_next(), mc = c.try_next();
        REQUIRE((ma && mb && mc));
        CHECK(&ma->payload() == &mb->payload());
        CHECK(&ma->payload() == &mc->payload());
        CHECK(ma->payload().get() == 7);
        const auto copy = *ma;  // copying a message shares, too
        CHECK(&copy.payload() == &ma->payload());
        CHECK(counted::live.load() == 1);

        // Fan-out of an object the caller already shares: that very object.
        const auto mine = std::make_shared<const counted>(9);
        REQUIRE(bus.publish("x.z", mine) == 3);
        const auto sa = a.try_next(), sb = b.try_next();
        REQUIRE((sa && sb));
        CHECK(&sa->payload() == mine.get());
        CHECK(sa->shared_payload().get() == mine.get());
        CHECK(sb->shared_payload().get() == mine.get());
        CHECK(counted::copies.load() == 0);
    }
    CHECK(counted::live.load() == 0);
    CHECK(counted::errors.load() == 0);
}

TEST_CASE("topics: move-only payloads", "[topic]") {
    manual_clock clock;
    conq::topics<std::unique_ptr<int>, manual_clock> bus(clock);
    auto a = bus.subscribe("p.*");
    auto b = bus.subscribe("p.#");
    CHECK(bus.publish("p.q", std::make_unique<int>(5)) == 2);
    const auto ma = a.next(), mb = b.next();
    REQUIRE((ma && mb));
    CHECK(*ma->payload() == 5);
    CHECK(ma->payload().get() == mb->payload().get());

    std::thread responder([&] {
        auto m = a.next();
        if (m) (void)bus.reply(*m, std::make_unique<int>(*m->payload() * 2));
    });
    conq_test::watchdog dog("move-only request", std::chrono::seconds(30));
    const auto r = bus.request("p.double", std::make_unique<int>(21), 1h);
    responder.join();
    REQUIRE(r);
    CHECK(*r->payload() == 42);
}

// -------------------------------------------------------------- overflow

TEST_CASE("topics: overflow block makes the publisher wait for room", "[topic][threads]") {
    conq::topics<int> bus;
    auto s = bus.subscribe("q", {.capacity = 2, .overflow = overflow_action::block});
    CHECK(bus.publish("q", 1) == 1);
    CHECK(bus.publish("q", 2) == 1);
    std::atomic<bool> done{false};
    std::size_t result = 99;
    conq_test::watchdog dog("blocked publisher", std::chrono::seconds(30));
    std::thread publisher([&] {
        result = bus.publish("q", 3);
        done = true;
    });
    wait_until([&] { return s.stats().blocked_publishers == 1; });
    CHECK_FALSE(done.load());
    CHECK(s.size() == 2);
    const auto first = s.try_next();  // room: the publisher goes on
    publisher.join();
    CHECK(result == 1);
    REQUIRE(first);
    CHECK(first->payload() == 1);
    std::vector<conq::message<int>> rest;
    CHECK(s.next_n(rest, 10) == 2);
    REQUIRE(rest.size() == 2);
    CHECK(rest[0].payload() == 2);
    CHECK(rest[1].payload() == 3);
    CHECK(rest[1].sequence() == 3);
    CHECK(rest[1].gap() == 0);
    const auto st = s.stats();
    CHECK(st.received == 3);
    CHECK(st.delivered == 3);
    CHECK(st.dropped == 0);
    CHECK(st.rejected == 0);
    CHECK(st.high_water == 2);
    CHECK(st.blocked_publishers == 0);
}

TEST_CASE("topics: overflow drop_oldest evicts the oldest and reports the gap", "[topic]") {
    conq::topics<int> bus;
    auto s = bus.subscribe("q", {.capacity = 3, .overflow = overflow_action::drop_oldest});
    for (int i = 1; i <= 7; ++i) CHECK(bus.publish("q", i) == 1);
    auto st = s.stats();
    CHECK(st.received == 7);
    CHECK(st.dropped == 4);
    CHECK(st.size == 3);
    CHECK(st.high_water == 3);

    auto m = s.try_next();
    REQUIRE(m);
    CHECK(m->payload() == 5);
    CHECK(m->sequence() == 5);
    CHECK(m->gap() == 4);
    m = s.try_next();
    REQUIRE(m);
    CHECK(m->payload() == 6);
    CHECK(m->gap() == 0);
    CHECK(bus.publish("q", 8) == 1);  // room again: nothing dropped
    CHECK(bus.publish("q", 9) == 1);
    CHECK(bus.publish("q", 10) == 1);  // full: drops 7
    m = s.try_next();
    REQUIRE(m);
    CHECK(m->payload() == 8);
    CHECK(m->sequence() == 8);
    CHECK(m->gap() == 1);
    st = s.stats();
    CHECK(st.dropped == 5);
    CHECK(st.delivered == 3);
    const auto ts = bus.stats();
    CHECK(ts.published == 10);
    CHECK(ts.delivered == 10);
    CHECK(ts.dropped == 5);
    CHECK(ts.rejected == 0);
}

TEST_CASE("topics: overflow reject refuses new messages and reports the gap", "[topic]") {
    conq::topics<int> bus;
    auto s = bus.subscribe("q", {.capacity = 3, .overflow = overflow_action::reject});
    auto other = bus.subscribe("#", {.capacity = 100});
    CHECK(bus.publish("q", 1) == 2);
    CHECK(bus.publish("q", 2) == 2);
    CHECK(bus.publish("q", 3) == 2);
    CHECK(bus.publish("q", 4) == 1);  // refused by s only
    CHECK(bus.publish("q", 5) == 1);
    auto st = s.stats();
    CHECK(st.received == 3);
    CHECK(st.rejected == 2);
    CHECK(st.size == 3);
    CHECK(drain_ints(s) == std::vector<int>{1, 2, 3});
    CHECK(bus.publish("q", 6) == 2);
    auto m = s.try_next();
    REQUIRE(m);
    CHECK(m->payload() == 6);
    CHECK(m->sequence() == 6);
    CHECK(m->gap() == 2);
    CHECK(other.stats().received == 6);

    // Losses between takes add up: reject 9, take 8 (no gap), reject 11, take 10.
    auto t = bus.subscribe("r", {.capacity = 1, .overflow = overflow_action::reject});
    CHECK(bus.publish("r", 8) == 2);
    CHECK(bus.publish("r", 9) == 1);
    m = t.try_next();
    REQUIRE(m);
    CHECK((m->payload() == 8 && m->gap() == 0 && m->sequence() == 1));
    CHECK(bus.publish("r", 10) == 2);
    CHECK(bus.publish("r", 11) == 1);
    m = t.try_next();
    REQUIRE(m);
    CHECK((m->payload() == 10 && m->gap() == 1 && m->sequence() == 3));
    CHECK(bus.publish("r", 12) == 2);
    m = t.try_next();
    REQUIRE(m);
    CHECK((m->payload() == 12 && m->gap() == 1 && m->sequence() == 5));
    const auto ts = bus.stats();
    CHECK(ts.rejected == 4);
    CHECK(ts.no_route == 0);
}

// ----------------------------------------------------- taking, unsubscribe

TEST_CASE("topics: next_n takes a batch in order", "[topic]") {
    conq::topics<int> bus;
    auto s = bus.subscribe("a.*");
    std::vector<conq::message<int>> out;
    CHECK(s.next_n(out, 8) == 0);
    for (int i = 1; i <= 10; ++i) (void)bus.publish("a.b", i);
    CHECK(s.next_n(out, 4) == 4);
    CHECK(s.next_n(out, 0) == 0);
    CHECK(s.next_n(out, 100) == 6);
    REQUIRE(out.size() == 10);
    for (std::size_t i = 0; i < out.size(); ++i) {
        CHECK(out[i].payload() == static_cast<int>(i) + 1);
        CHECK(out[i].sequence() == i + 1);
        CHECK(out[i].gap() == 0);
    }
    CHECK(s.stats().delivered == 10);
    CHECK(s.size() == 0);
}

TEST_CASE("topics: unsubscribe and destruction take a subscription out", "[topic]") {
    counted::reset();
    {
        conq::topics<counted> bus;
        {
            auto gone = bus.subscribe("a");
            CHECK(bus.stats().subscriptions == 1);
            CHECK(bus.publish("a", counted(1)) == 1);
        }  // destroyed with a message queued: it is released
        CHECK(counted::live.load() == 0);
        CHECK(bus.stats().subscriptions == 0);
        CHECK(bus.publish("a", counted(2)) == 0);
        CHECK(bus.stats().no_route == 1);

        auto s = bus.subscribe("a");
        auto keep = bus.subscribe("a");
        CHECK(bus.publish("a", counted(3)) == 2);
        CHECK(bus.publish("a", counted(4)) == 2);
        CHECK(static_cast<bool>(s));
        s.unsubscribe();
        CHECK_FALSE(static_cast<bool>(s));
        CHECK(s.size() == 0);
        CHECK_FALSE(s.try_next());
        CHECK_FALSE(s.next());  // does not wait: unsubscribed
        s.unsubscribe();        // again: nothing
        CHECK(s.stats().received == 2);
        CHECK(s.pattern() == "a");
        CHECK(bus.publish("a", counted(5)) == 1);
        CHECK(s.stats().received == 2);
        CHECK(keep.size() == 3);

        // Move assignment unsubscribes the handle assigned to.
        auto x = bus.subscribe("x");
        auto y = bus.subscribe("x");
        CHECK(bus.stats().subscriptions == 3);
        x = std::move(y);
        CHECK(bus.stats().subscriptions == 2);
        CHECK(bus.publish("x", counted(6)) == 1);
        CHECK(x.size() == 1);
        CHECK_FALSE(static_cast<bool>(y));  // NOLINT(bugprone-use-after-move): moved-from is empty
        CHECK(y.size() == 0);
        conq::topics<counted>::subscription empty;
        CHECK_FALSE(static_cast<bool>(empty));
        CHECK_FALSE(empty.try_next());
        CHECK(empty.pattern().empty());

        const auto ts = bus.stats();  // the counters of gone subscriptions remain
        CHECK(ts.published == 6);
        CHECK(ts.delivered == 1 + 2 + 2 + 1 + 1);
        CHECK(ts.subscriptions == 2);
    }
    CHECK(counted::live.load() == 0);
    CHECK(counted::errors.load() == 0);
}

TEST_CASE("topics: routes follow subscribe and unsubscribe, beyond the route cache too", "[topic]") {
    conq::topics<int> bus;
    CHECK(bus.publish("a.b", 0) == 0);
    auto one = bus.subscribe("a.*");
    CHECK(bus.publish("a.b", 1) == 1);
    auto all = bus.subscribe("#", {.capacity = 20000});
    CHECK(bus.publish("a.b", 2) == 2);
    one.unsubscribe();
    CHECK(bus.publish("a.b", 3) == 1);

    // More distinct subjects than one routing table caches.
    auto s = bus.subscribe("s.*", {.capacity = 10000});
    constexpr int subjects = 5000;
    for (int i = 0; i < subjects; ++i) REQUIRE(bus.publish("s." + std::to_string(i), i) == 2);
    for (int i = 0; i < subjects; ++i) REQUIRE(bus.publish("t." + std::to_string(i), i) == 1);
    CHECK(bus.publish("s.1.x", 0) == 1);
    std::vector<conq::message<int>> got;
    CHECK(s.next_n(got, 2 * subjects) == subjects);
    for (int i = 0; i < subjects; ++i) {
        REQUIRE(got[static_cast<std::size_t>(i)].payload() == i);
        REQUIRE(got[static_cast<std::size_t>(i)].subject() == "s." + std::to_string(i));
    }
    const auto ts = bus.stats();
    CHECK(ts.published == 4 + 2 * subjects + 1);
    CHECK(ts.no_route == 1);
}

/// A payload whose destructor publishes (on the same topics object) once.
struct echo {
    conq::topics<echo>* bus;
    int v;
    echo(conq::topics<echo>* b, int value) noexcept : bus(b), v(value) {}
    echo(echo&& o) noexcept : bus(std::exchange(o.bus, nullptr)), v(o.v) {}
    echo& operator=(echo&&) = delete;
    ~echo() {
        if (bus != nullptr) (void)bus->publish("echo.dtor", echo(nullptr, v));
    }
};

TEST_CASE("topics: a payload destroyed by drop_oldest may publish", "[topic]") {
    conq::topics<echo> bus;
    auto s = bus.subscribe("echo.*", {.capacity = 1, .overflow = overflow_action::drop_oldest});
    CHECK(bus.publish("echo.a", echo(&bus, 1)) == 1);
    // Evicts 1, whose destructor publishes echo.dtor(1), which evicts 2, whose
    // destructor publishes echo.dtor(2), which evicts echo.dtor(1).
    CHECK(bus.publish("echo.b", echo(&bus, 2)) == 1);
    const auto m = s.try_next();
    REQUIRE(m);
    CHECK(m->subject() == "echo.dtor");
    CHECK(m->payload().v == 2);
    CHECK(m->gap() == 3);
    CHECK(s.stats().dropped == 3);
    CHECK(bus.stats().published == 4);
}

// ---------------------------------------------------------------- close

TEST_CASE("topics: close drains what is queued, then ends next()", "[topic]") {
    manual_clock clock;
    conq::topics<int, manual_clock> bus(clock);
    auto s = bus.subscribe("a");
    CHECK(bus.publish("a", 1) == 1);
    CHECK(bus.publish("a", 2) == 1);
    CHECK_FALSE(bus.closed());
    bus.close();
    bus.close();  // idempotent
    CHECK(bus.closed());
    CHECK(error_of([&] { (void)bus.publish("a", 3); }) == broker_errc::closed);
    CHECK(error_of([&] { (void)bus.publish("a", std::make_shared<const int>(3)); }) == broker_errc::closed);
    CHECK(error_of([&] { (void)bus.subscribe("a"); }) == broker_errc::closed);
    CHECK(error_of([&] { (void)bus.request("a", 3, 1s); }) == broker_errc::closed);
    auto m = s.next();
    REQUIRE(m);
    CHECK(m->payload() == 1);
    m = s.next_for(1h);
    REQUIRE(m);
    CHECK(m->payload() == 2);
    CHECK_FALSE(s.next());
    CHECK_FALSE(s.next_for(1h));
    CHECK(bus.stats().published == 2);
}

TEST_CASE("topics: close wakes a blocked next()", "[topic][threads]") {
    manual_clock clock;
    conq::topics<int, manual_clock> bus(clock);
    auto s = bus.subscribe("a");
    auto t = bus.subscribe("b");
    conq_test::watchdog dog("next() woken by close", std::chrono::seconds(30));
    std::atomic<int> returned{0}, got{0};
    std::thread plain([&] {
        if (s.next()) got.fetch_add(1);
        returned.fetch_add(1);
    });
    std::thread timed([&] {
        if (t.next_for(1h)) got.fetch_add(1);
        returned.fetch_add(1);
    });
    wait_until([&] { return s.stats().waiting_consumers == 1 && t.stats().waiting_consumers == 1; });
    CHECK(returned.load() == 0);
    bus.close();
    plain.join();
    timed.join();
    CHECK(returned.load() == 2);
    CHECK(got.load() == 0);
}

TEST_CASE("topics: close wakes a blocked publisher, whose publish throws closed", "[topic][threads]") {
    conq::topics<int> bus;
    auto s = bus.subscribe("a", {.capacity = 1});
    CHECK(bus.publish("a", 1) == 1);
    conq_test::watchdog dog("publisher woken by close", std::chrono::seconds(30));
    broker_errc err{};
    std::thread publisher([&] { err = error_of([&] { (void)bus.publish("a", 2); }); });
    wait_until([&] { return s.stats().blocked_publishers == 1; });
    bus.close();
    publisher.join();
    CHECK(err == broker_errc::closed);
    CHECK(drain_ints(s) == std::vector<int>{1});
    CHECK_FALSE(s.next());
}

TEST_CASE("topics: unsubscribe wakes a blocked next() and a blocked publisher", "[topic][threads]") {
    conq::topics<int> bus;
    auto in = bus.subscribe("in");
    auto full = bus.subscribe("full", {.capacity = 1});
    CHECK(bus.publish("full", 1) == 1);
    conq_test::watchdog dog("woken by unsubscribe", std::chrono::seconds(30));
    std::optional<conq::message<int>> got;
    bool consumer_done = false;
    std::size_t published = 99;
    std::thread consumer([&] {
        got = in.next();
        consumer_done = true;
    });
    std::thread publisher([&] { published = bus.publish("full", 2); });
    wait_until([&] {
        return in.stats().waiting_consumers == 1 && full.stats().blocked_publishers == 1;
    });
    in.unsubscribe();
    full.unsubscribe();
    consumer.join();
    publisher.join();
    CHECK(consumer_done);
    CHECK_FALSE(got);
    CHECK(published == 0);
    CHECK(bus.publish("full", 3) == 0);
}

TEST_CASE("topics: a subscription outlives its topics object", "[topic]") {
    std::optional<conq::topics<int>::subscription> s;
    {
        conq::topics<int> bus;
        s = bus.subscribe("a");
        CHECK(bus.publish("a", 1) == 1);
    }
    REQUIRE(*s);  // still a subscription, of a closed source
    auto m = s->next();
    REQUIRE(m);
    CHECK(m->payload() == 1);
    CHECK_FALSE(s->next());
    s.reset();
}

// ----------------------------------------------------------- time-outs

TEST_CASE("topics: next_for times out on the manual clock", "[topic][threads]") {
    manual_clock clock;
    conq::topics<int, manual_clock> bus(clock);
    auto s = bus.subscribe("a");
    CHECK_FALSE(s.next_for(0s));  // no wait at all
    conq_test::watchdog dog("next_for on a manual clock", std::chrono::seconds(30));

    std::atomic<bool> done{false};
    std::optional<conq::message<int>> got;
    std::int64_t returned_at = -1;
    std::thread waiter([&] {
        got = s.next_for(5s);
        returned_at = now_ns(clock);
        done = true;
    });
    wait_until([&] { return s.stats().waiting_consumers == 1; });
    clock.advance(4s);
    CHECK_FALSE(done.load());
    clock.advance(1s);
    waiter.join();
    CHECK_FALSE(got);
    CHECK(returned_at >= std::int64_t{5'000'000'000});

    // A message before the deadline ends the wait with it.
    std::thread second([&] { got = s.next_for(5s); });
    wait_until([&] { return s.stats().waiting_consumers == 1; });
    clock.advance(2s);
    CHECK(bus.publish("a", 7) == 1);
    second.join();
    REQUIRE(got);
    CHECK(got->payload() == 7);
}

TEST_CASE("topics: request and reply round-trip", "[topic][threads]") {
    manual_clock clock;
    conq::topics<int, manual_clock> bus(clock);
    auto service = bus.subscribe("math.double");
    auto spy = bus.subscribe("#");  // replies bypass patterns: it sees the request only
    conq_test::watchdog dog("request/reply", std::chrono::seconds(30));
    std::size_t first_reply = 99, second_reply = 99;
    std::string seen_reply_to;
    std::thread responder([&] {
        const auto m = service.next();
        if (!m) return;
        seen_reply_to = std::string(m->reply_to());
        first_reply = bus.reply(*m, m->payload() * 2);
        second_reply = bus.reply(*m, -1);  // the requester takes the first only
    });
    const auto r = bus.request("math.double", 21, 1h);
    responder.join();
    REQUIRE(r);
    CHECK(r->payload() == 42);
    CHECK(first_reply == 1);
    CHECK(second_reply == 0);
    CHECK(r->subject() == seen_reply_to);
    CHECK(seen_reply_to.rfind("_reply.", 0) == 0);
    CHECK(r->reply_to().empty());

    const auto m = spy.try_next();
    REQUIRE(m);
    CHECK(m->subject() == "math.double");
    CHECK(m->reply_to() == seen_reply_to);
    CHECK_FALSE(spy.try_next());

    // The requester is gone: a late reply reaches nobody.
    CHECK(bus.reply(*m, 5) == 0);
    CHECK(error_of([&] {
              auto plain = bus.subscribe("plain");
              (void)bus.publish("plain", 1);
              (void)bus.reply(*plain.try_next(), 2);
          }) == broker_errc::invalid_argument);
}

TEST_CASE("topics: request times out on the manual clock", "[topic][threads]") {
    manual_clock clock;
    conq::topics<int, manual_clock> bus(clock);
    // Nobody subscribes: nullopt at once, no waiting.
    CHECK_FALSE(bus.request("nobody.home", 1, 1h));
    CHECK(bus.stats().no_route == 1);

    auto silent = bus.subscribe("svc");
    conq_test::watchdog dog("request time-out", std::chrono::seconds(30));
    std::optional<conq::message<int>> got;
    std::int64_t returned_at = -1;
    std::thread requester([&] {
        got = bus.request("svc", 1, 5s);
        returned_at = now_ns(clock);
    });
    const auto req = silent.next();  // the request was published: its deadline is set
    REQUIRE(req);
    clock.advance(5s);
    requester.join();
    CHECK_FALSE(got);
    CHECK(returned_at >= std::int64_t{5'000'000'000});
    CHECK(bus.reply(*req, 2) == 0);  // too late

    // close() ends a waiting request with nullopt.
    std::thread again([&] { got = bus.request("svc", 2, 1h); });
    REQUIRE(silent.next());
    bus.close();
    again.join();
    CHECK_FALSE(got);
    CHECK(error_of([&] { (void)bus.reply(*req, 3); }) == broker_errc::closed);
}

TEST_CASE("topics: await_idle waits until every queue is empty", "[topic][threads]") {
    manual_clock clock;
    conq::topics<int, manual_clock> bus(clock);
    CHECK(bus.idle());
    CHECK(bus.await_idle(0s));
    auto a = bus.subscribe("a");
    auto b = bus.subscribe("#");
    CHECK(bus.idle());
    for (int i = 0; i < 3; ++i) (void)bus.publish("a", i);
    CHECK_FALSE(bus.idle());
    CHECK_FALSE(bus.await_idle(0s));

    conq_test::watchdog dog("await_idle", std::chrono::seconds(30));
    std::atomic<bool> done{false};
    bool result = false;
    std::thread waiter([&] {
        result = bus.await_idle(1h);
        done = true;
    });
    CHECK(drain_ints(a).size() == 3);
    std::vector<conq::message<int>> batch;
    CHECK(b.next_n(batch, 10) == 3);
    waiter.join();
    CHECK(result);
    CHECK(bus.idle());

    // Unsubscribing a subscription that holds messages makes the rest idle.
    (void)bus.publish("z", 1);
    CHECK_FALSE(bus.idle());
    std::thread second([&] { result = bus.await_idle(1h); });
    b.unsubscribe();
    second.join();
    CHECK(result);

    // A time-out, on the manual clock: a helper moves time until it ends.
    (void)bus.publish("a", 9);
    std::atomic<bool> stop{false};
    std::thread ticker([&] {
        while (!stop.load()) {
            clock.advance(1s);
            std::this_thread::yield();
        }
    });
    const std::int64_t start = now_ns(clock);
    const bool idle = bus.await_idle(5s);
    const std::int64_t end = now_ns(clock);
    stop = true;
    ticker.join();
    CHECK_FALSE(idle);
    CHECK(end - start >= std::int64_t{5'000'000'000});
}

TEST_CASE("topics: stats add up across subscriptions", "[topic]") {
    conq::topics<int> bus;
    auto blocker = bus.subscribe("s.#", {.capacity = 8});
    auto dropper = bus.subscribe("s.*", {.capacity = 2, .overflow = overflow_action::drop_oldest});
    auto rejecter = bus.subscribe("s.x", {.capacity = 1, .overflow = overflow_action::reject});
    std::size_t returned = 0;
    for (int i = 0; i < 4; ++i) returned += bus.publish("s.x", i);  // 4 + 4 + 1
    returned += bus.publish("s.y.z", 9);                             // blocker only
    returned += bus.publish("other", 0);                             // nobody
    CHECK(returned == 10);
    auto ts = bus.stats();
    CHECK(ts.published == 6);
    CHECK(ts.delivered == 10);
    CHECK(ts.dropped == 2);
    CHECK(ts.rejected == 3);
    CHECK(ts.no_route == 1);
    CHECK(ts.subscriptions == 3);

    const auto d = dropper.stats();
    CHECK(d.received == 4);
    CHECK(d.dropped == 2);
    CHECK(d.size == 2);
    CHECK(d.high_water == 2);
    CHECK(d.delivered == 0);
    CHECK(blocker.stats().received == 5);
    CHECK(rejecter.stats().rejected == 3);

    dropper.unsubscribe();
    rejecter.unsubscribe();
    ts = bus.stats();  // gone subscriptions still count
    CHECK(ts.delivered == 10);
    CHECK(ts.dropped == 2);
    CHECK(ts.rejected == 3);
    CHECK(ts.subscriptions == 1);
}

TEST_CASE("topics: more publishers at once than hazard slots", "[topic][threads]") {
    // 24 publishers blocked at once on a full queue hold 24 routing-table
    // hazards (16 built in, the rest from the overflow list); a subscribe and
    // an unsubscribe meanwhile must neither free their table nor lose them.
    conq::topics<int> bus;
    auto s = bus.subscribe("h", {.capacity = 1});
    CHECK(bus.publish("h", -1) == 1);
    constexpr int n = 24;
    conq_test::watchdog dog("blocked publishers", std::chrono::seconds(60));
    std::atomic<int> returned{0};
    std::vector<std::thread> pubs;
    for (int i = 0; i < n; ++i) {
        pubs.emplace_back([&, i] { returned.fetch_add(static_cast<int>(bus.publish("h", i))); });
    }
    wait_until([&] { return s.stats().blocked_publishers == static_cast<std::size_t>(n); });
    {
        auto extra = bus.subscribe("other");  // swaps the routing table under them
    }
    std::set<int> got;
    while (got.size() < static_cast<std::size_t>(n) + 1) {
        const auto m = s.next();
        REQUIRE(m);
        got.insert(m->payload());
    }
    for (auto& t : pubs) t.join();
    CHECK(returned.load() == n);
    CHECK(got.size() == static_cast<std::size_t>(n) + 1);
    CHECK(bus.stats().published == static_cast<std::uint64_t>(n) + 1);
    CHECK(bus.publish("h", 100) == 1);  // and the slots are free again
}

TEST_CASE("topics: messages of one publisher keep their order", "[topic][threads]") {
    conq::topics<int> bus;
    auto s = bus.subscribe("o.*", {.capacity = 4});
    constexpr int n = 2000;
    conq_test::watchdog dog("ordered delivery", std::chrono::seconds(60));
    std::thread publisher([&] {
        for (int i = 0; i < n; ++i) (void)bus.publish(i % 2 ? "o.odd" : "o.even", i);
    });
    int expected = 0;
    bool in_order = true;
    while (expected < n) {
        const auto m = s.next();
        if (!m) break;
        in_order = in_order && m->payload() == expected && m->sequence() == static_cast<std::uint64_t>(expected) + 1 &&
                   m->gap() == 0;
        ++expected;
    }
    publisher.join();
    CHECK(in_order);
    CHECK(expected == n);
}

}  // namespace

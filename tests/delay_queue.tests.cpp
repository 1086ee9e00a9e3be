// Unit tests of conq/delay_queue.hpp. They prove, for heap and wheel timer
// storage, unbounded and bounded: no item comes out before its due time and
// every item comes out once due, earliest first and equal due times in
// schedule order; next_due() names the earliest pending item; cancel()
// removes a pending item exactly once and a stale handle never touches a
// newer item, also when cancelled timers pile up and are swept, and a
// bounded queue allocates nothing after construction; clear(), close() and the common queue interface behave as
// documented; a sleeping pop() is woken by advance(), by a schedule and by
// close(); elements are owned exactly (no leak, no double destruction); and
// heap and wheel storage deliver identical results on long random traces.
//
// Time is conq::manual_clock everywhere except the two tests tagged
// [steady]; no test sleeps for timing. A few sleeps of some milliseconds
// only give a wrong early return its chance to show; no result depends on
// them.
#include <conq/delay_queue.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "alloc_counter.hpp"
#include "conq_catch.hpp"
#include "counted.hpp"
#include "watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using conq::manual_clock;
using conq_test::counted;
using i64 = std::int64_t;
using ns = std::chrono::nanoseconds;
using time_point = manual_clock::time_point;

using configs = std::tuple<                                                  //
    conq::delay_queue<int, manual_clock>,                                    // heap
    conq::delay_queue<int, manual_clock, conq::timer_wheel<>>,               // 1 ms ticks
    conq::delay_queue<int, manual_clock, conq::timer_wheel<1>>,              // 1 ns ticks
    conq::delay_queue<int, manual_clock, conq::capacity<16>, conq::reject>,  // bounded heap
    // The clock named by delay_order; bounded, overflow block; 64 ns ticks.
    conq::delay_queue<int, conq::delay_order<manual_clock>, conq::timer_wheel<64>,
                      conq::capacity<16>, conq::blocking>>;

/// The same queue configuration with another element type.
template <class Q, class U>
struct rebind;
template <class T, class... Policies, class U>
struct rebind<conq::delay_queue<T, Policies...>, U> {
    using type = conq::delay_queue<U, Policies...>;
};
template <class Q, class U>
using rebind_t = typename rebind<Q, U>::type;

template <class Q>
constexpr bool bounded = Q::policies::inline_storage;

[[nodiscard]] time_point at(ns t) { return time_point(t); }
[[nodiscard]] i64 now_ns(const manual_clock& c) { return c.now().time_since_epoch().count(); }
[[nodiscard]] std::optional<i64> in_ns(std::optional<time_point> t) {
    if (!t) return std::nullopt;
    return t->time_since_epoch().count();
}
template <class T>
[[nodiscard]] std::optional<T> some(T v) {
    return std::optional<T>(std::move(v));
}

/// Waits (yielding) until `done()`; a watchdog in the caller bounds it.
template <class F>
void wait_for_flag(F done) {
    while (!done()) std::this_thread::yield();
}

/// Lets a thread that was started reach its blocking call, or return wrongly
/// early. Correctness never depends on it.
void give_it_a_chance() { std::this_thread::sleep_for(5ms); }

/// Pops everything that is due now, choosing the call at random each time.
template <class Q>
std::vector<int> drain_due_items(Q& q, std::mt19937_64& rng) {
    std::vector<int> got;
    for (;;) {
        std::size_t n = 0;
        switch (rng() % 4) {
            case 0:
                if (auto v = q.try_pop()) {
                    got.push_back(*v);
                    n = 1;
                }
                break;
            case 1: {
                int v = -1;
                if (q.try_pop(v)) {
                    got.push_back(v);
                    n = 1;
                }
                break;
            }
            case 2: n = q.drain_due(std::back_inserter(got), 1 + rng() % 3); break;
            default: {
                std::array<int, 4> buf{};
                n = q.try_pop_n(buf.begin(), 1 + rng() % buf.size());
                got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
                break;
            }
        }
        if (n == 0) return got;
    }
}

i64 uniform(std::mt19937_64& rng, i64 lo, i64 hi) {  // [lo, hi]
    return std::uniform_int_distribution<i64>(lo, hi)(rng);
}

}  // namespace

// ------------------------------------------------------------------ due times

TEMPLATE_LIST_TEST_CASE("delay_queue: the interface every queue has", "[delay]", configs) {
    STATIC_REQUIRE(conq::concurrent_queue<TestType>);
    STATIC_REQUIRE(conq::concurrent_queue<rebind_t<TestType, std::unique_ptr<int>>>);
    STATIC_REQUIRE(conq::concurrent_queue<rebind_t<TestType, counted>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::delay_queue<int>>);
    STATIC_REQUIRE(std::is_same_v<typename TestType::clock_type, manual_clock>);
    STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<TestType>);
    STATIC_REQUIRE_FALSE(std::is_move_constructible_v<TestType>);
}

TEMPLATE_LIST_TEST_CASE("delay_queue: nothing comes out before its due time", "[delay]",
                        configs) {
    manual_clock clock;
    TestType q(clock);
    clock.advance(123'456'789ns);  // inside a tick of every tick size tested
    // Around tick and wheel-level boundaries of 1 ms and 64 ns ticks, and far.
    const ns delays[] = {1ns,      2ns,   63ns,   64ns,  65ns,       999'999ns,
                         1ms,      1ms + 1ns, 64ms,  4096ms + 3ns, 1h + 1ns, 72h + 5ns};

    SECTION("one at a time") {
        int value = 0;
        for (const ns d : delays) {
            ++value;
            const i64 due = now_ns(clock) + d.count();
            CONQ_REQUIRE(q.schedule_after(value, d));
            CONQ_REQUIRE_FALSE(q.try_pop().has_value());
            CONQ_REQUIRE_EQ(in_ns(q.next_due()), some(due));
            clock.advance(d - 1ns);
            CONQ_REQUIRE_FALSE(q.try_pop().has_value());
            CONQ_REQUIRE_EQ(q.size_approx(), 1u);
            clock.advance(1ns);
            CONQ_REQUIRE_EQ(q.try_pop(), some(value));
            CONQ_REQUIRE_FALSE(q.try_pop().has_value());
            CONQ_REQUIRE_FALSE(q.next_due().has_value());
        }
    }
    SECTION("all pending at once") {
        const i64 start = now_ns(clock);
        int value = 0;
        for (const ns d : delays) CONQ_REQUIRE(q.schedule_after(++value, d));
        value = 0;
        for (const ns d : delays) {
            ++value;
            clock.set(at(ns(start) + d - 1ns));
            CONQ_REQUIRE_FALSE(q.try_pop().has_value());
            CONQ_REQUIRE_EQ(in_ns(q.next_due()), some(start + d.count()));
            clock.set(at(ns(start) + d));
            CONQ_REQUIRE_EQ(q.try_pop(), some(value));
            CONQ_REQUIRE_FALSE(q.try_pop().has_value());
        }
        CONQ_REQUIRE_EQ(q.size_approx(), 0u);
    }
}

TEMPLATE_LIST_TEST_CASE(
    "delay_queue: schedule_at takes an absolute time; a past one is due at once", "[delay]",
    configs) {
    manual_clock clock(at(5s));
    TestType q(clock);
    REQUIRE(q.schedule_at(1, at(7s)));
    REQUIRE(q.schedule_at(2, at(5s)));   // now
    REQUIRE(q.schedule_at(3, at(1s)));   // past
    REQUIRE(q.schedule_at(4, at(-3s)));  // before the clock's epoch
    const int five = 5;
    REQUIRE(q.schedule_at(five, at(7s)));  // a copy
    CHECK(in_ns(q.next_due()) == some(i64{-3'000'000'000}));
    CHECK(q.try_pop() == some(4));
    CHECK(q.try_pop() == some(3));
    CHECK(q.try_pop() == some(2));
    CHECK_FALSE(q.try_pop().has_value());
    clock.set(at(1s));  // the past: ignored
    CHECK(clock.now() == at(5s));
    clock.set(at(7s - 1ns));
    CHECK_FALSE(q.try_pop().has_value());
    clock.set(at(7s));
    CHECK(q.try_pop() == some(1));
    CHECK(q.try_pop() == some(5));
    CHECK_FALSE(q.try_pop().has_value());
}

TEMPLATE_LIST_TEST_CASE("delay_queue: every item comes out exactly when due, earliest first",
                        "[delay]", configs) {
    using handle = typename TestType::handle;
    struct item {
        i64 due;
        std::uint64_t seq;
        int value;
        handle h;
    };
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        std::mt19937_64 rng(seed);
        manual_clock clock(at(ns(static_cast<i64>(seed) * 777'777)));
        TestType q(clock);
        std::vector<item> pending;
        std::vector<handle> dead;  // popped or cancelled
        std::uint64_t seq = 0;
        int value = 0;
        std::size_t delivered = 0;
        for (int round = 0; round < 400; ++round) {
            for (auto k = rng() % 5; k > 0; --k) {
                const i64 r = uniform(rng, 0, 99);
                i64 delay;
                if (r < 15) delay = 0;
                else if (r < 25) delay = -uniform(rng, 1, 5'000'000);
                else if (r < 50) delay = uniform(rng, 1, 3'000'000);
                else if (r < 75) delay = uniform(rng, 0, 20) * 1'000'000;  // equal due times
                else if (r < 90) delay = uniform(rng, 0, 200'000'000);
                else delay = uniform(rng, 3'600'000'000'000, 7'200'000'000'000);
                const i64 due = now_ns(clock) + delay;
                const bool fits = pending.size() < q.capacity();
                handle h;
                switch (rng() % 3) {
                    case 0: h = q.schedule_after(value, ns(delay)); break;
                    case 1: h = q.schedule_at(value, at(ns(due))); break;
                    default: h = q.emplace_at(at(ns(due)), value); break;
                }
                CONQ_REQUIRE_EQ(static_cast<bool>(h), fits);
                if (h) pending.push_back(item{due, seq++, value, h});
                ++value;
            }
            if (!pending.empty() && rng() % 3 == 0) {
                const auto i = static_cast<std::ptrdiff_t>(rng() % pending.size());
                CONQ_REQUIRE(q.cancel(pending[static_cast<std::size_t>(i)].h));
                dead.push_back(pending[static_cast<std::size_t>(i)].h);
                pending.erase(pending.begin() + i);
            }
            if (!dead.empty() && rng() % 3 == 0) {
                CONQ_REQUIRE_FALSE(q.cancel(dead[rng() % dead.size()]));
            }

            const i64 r = uniform(rng, 0, 99);
            if (r < 15) clock.advance(0ns);
            else if (r < 45) clock.advance(ns(uniform(rng, 1, 999'999)));
            else if (r < 80) clock.advance(ns(uniform(rng, 1, 5'000'000)));
            else if (r < 98) clock.advance(ns(uniform(rng, 1, 50'000'000)));
            else clock.advance(2h);

            const i64 now = now_ns(clock);
            std::stable_sort(pending.begin(), pending.end(), [](const item& a, const item& b) {
                return a.due < b.due || (a.due == b.due && a.seq < b.seq);
            });
            const auto split = std::find_if(pending.begin(), pending.end(),
                                            [now](const item& it) { return it.due > now; });
            std::vector<int> expected;
            for (auto it = pending.begin(); it != split; ++it) {
                expected.push_back(it->value);
                dead.push_back(it->h);
            }
            pending.erase(pending.begin(), split);
            if (dead.size() > 64) dead.erase(dead.begin(), dead.end() - 64);

            const std::vector<int> got = drain_due_items(q, rng);
            CONQ_REQUIRE_EQ(got, expected);
            delivered += got.size();
            CONQ_REQUIRE_EQ(q.size_approx(), pending.size());
            CONQ_REQUIRE_EQ(in_ns(q.next_due()),
                            pending.empty() ? std::optional<i64>() : some(pending.front().due));
        }
        CHECK(delivered > 200);  // the trace did exercise delivery
    }
}

TEMPLATE_LIST_TEST_CASE("delay_queue: equal due times come out in schedule order", "[delay]",
                        configs) {
    manual_clock clock(at(1s + 500us));
    TestType q(clock);
    const std::size_t n = std::min<std::size_t>(q.capacity(), 90);
    const time_point due[3] = {at(3s), at(2s + 1ns), clock.now()};
    for (std::size_t i = 0; i < n; ++i) {
        const int v = static_cast<int>(i);
        switch (i % 3) {
            case 0: CONQ_REQUIRE(q.schedule_at(v, due[0])); break;
            case 1: CONQ_REQUIRE(q.schedule_after(v, due[1] - clock.now())); break;
            default: CONQ_REQUIRE(q.try_push(v)); break;  // due now
        }
    }
    clock.set(at(3s));
    std::vector<int> got;
    while (auto v = q.try_pop()) got.push_back(*v);
    std::vector<int> expected;
    for (const std::size_t group : {2u, 1u, 0u}) {
        for (std::size_t i = group; i < n; i += 3) expected.push_back(static_cast<int>(i));
    }
    CHECK(got == expected);
}

// ------------------------------------------------------------------ next_due

TEMPLATE_LIST_TEST_CASE("delay_queue: next_due is the earliest pending due time", "[delay]",
                        configs) {
    manual_clock clock(at(10ms + 300us));
    TestType q(clock);
    const time_point t0 = clock.now();
    CHECK_FALSE(q.next_due().has_value());

    SECTION("after schedules, cancels and pops") {
        const auto a = q.schedule_after(1, 30ms);
        const auto b = q.schedule_after(2, 10ms);
        REQUIRE(q.schedule_after(3, 20ms));
        REQUIRE((a && b));
        CHECK(q.next_due() == some(t0 + 10ms));
        CHECK(q.cancel(b));
        CHECK(q.next_due() == some(t0 + 20ms));
        clock.advance(20ms);
        CHECK(q.try_pop() == some(3));
        CHECK(q.next_due() == some(t0 + 30ms));
        CHECK(q.cancel(a));
        CHECK_FALSE(q.next_due().has_value());
    }
    SECTION("hours and days ahead") {
        const auto days = q.schedule_after(1, 72h + 3ms);
        const auto hours = q.schedule_after(2, 2h);
        const auto hour = q.schedule_after(3, 1h + 1ns);
        REQUIRE((days && hours && hour));
        CHECK(q.next_due() == some(t0 + 1h + 1ns));
        CHECK(q.cancel(hour));
        CHECK(q.next_due() == some(t0 + 2h));
        // An item due before the one next_due() just found, but after now.
        REQUIRE(q.schedule_after(4, 1s));
        CHECK(q.next_due() == some(t0 + 1s));
        clock.advance(1s - 1ns);
        CHECK_FALSE(q.try_pop().has_value());
        clock.advance(1ns);
        CHECK(q.try_pop() == some(4));
        CHECK(q.next_due() == some(t0 + 2h));
        clock.set(t0 + 2h - 1ns);
        CHECK_FALSE(q.try_pop().has_value());
        CHECK(q.next_due() == some(t0 + 2h));
        clock.set(t0 + 2h);
        CHECK(q.try_pop() == some(2));
        CHECK(q.next_due() == some(t0 + 72h + 3ms));
        clock.set(t0 + 72h + 2ms);
        CHECK_FALSE(q.try_pop().has_value());
        REQUIRE(q.schedule_after(5, 500us));  // due before the days-ahead item
        CHECK(q.next_due() == some(t0 + 72h + 2ms + 500us));
        clock.advance(1ms);
        CHECK(q.try_pop() == some(5));
        CHECK(q.try_pop() == some(1));
        CHECK_FALSE(q.next_due().has_value());
    }
    SECTION("saturates at the end of time") {
        REQUIRE(q.schedule_after(1, ns::max()));
        CHECK(q.next_due() == some(time_point::max()));
        clock.advance(1000h);
        CHECK_FALSE(q.try_pop().has_value());
    }
}

// -------------------------------------------------------------------- cancel

TEMPLATE_LIST_TEST_CASE("delay_queue: cancel removes a pending item, once", "[delay]", configs) {
    using handle = typename TestType::handle;
    manual_clock clock;
    TestType q(clock);
    CHECK_FALSE(q.cancel(handle{}));
    CHECK_FALSE(static_cast<bool>(handle{}));

    const auto a = q.schedule_after(1, 10ms);
    const auto b = q.schedule_after(2, 20ms);
    const auto c = q.schedule_after(3, 30ms);
    const auto d = q.schedule_after(4, 0ns);
    REQUIRE((a && b && c && d));
    CHECK((a != b && b != c && c != d));
    CHECK(q.size_approx() == 4);
    CHECK(q.cancel(b));
    CHECK_FALSE(q.cancel(b));
    CHECK(q.size_approx() == 3);
    CHECK(q.try_pop() == some(4));
    CHECK_FALSE(q.cancel(d));  // popped
    CHECK(q.cancel(a));
    clock.advance(1h);
    CHECK(q.try_pop() == some(3));
    CHECK_FALSE(q.try_pop().has_value());  // 1 and 2 never come
    CHECK_FALSE(q.cancel(c));
    CHECK(q.size_approx() == 0);
}

TEMPLATE_LIST_TEST_CASE("delay_queue: an old handle never cancels a newer item", "[delay]",
                        configs) {
    manual_clock clock;
    TestType q(clock);
    SECTION("popped, then the storage reused") {
        const auto old = q.schedule_after(1, 0ns);
        REQUIRE(old);
        REQUIRE(q.try_pop() == some(1));
        const auto fresh = q.schedule_after(2, 0ns);
        REQUIRE(fresh);
        CHECK(old != fresh);
        CHECK_FALSE(q.cancel(old));
        CHECK(q.try_pop() == some(2));
    }
    SECTION("cancelled, then the storage reused") {
        const auto old = q.schedule_after(1, 1s);
        REQUIRE(q.cancel(old));
        const auto fresh = q.schedule_after(2, 1s);
        CHECK_FALSE(q.cancel(old));
        clock.advance(1s);
        CHECK(q.try_pop() == some(2));
        CHECK_FALSE(q.cancel(fresh));
    }
    SECTION("over many reuses") {
        std::vector<typename TestType::handle> old;
        for (int i = 0; i < 3000; ++i) {
            const auto h = q.schedule_after(i, ns(i % 7));
            CONQ_REQUIRE(h);
            for (const auto& o : old) CONQ_REQUIRE_FALSE(q.cancel(o));
            if (i % 2 == 0) {
                CONQ_REQUIRE(q.cancel(h));
            } else {
                clock.advance(7ns);
                CONQ_REQUIRE_EQ(q.try_pop(), some(i));
            }
            CONQ_REQUIRE_FALSE(q.cancel(h));
            old.push_back(h);
            if (old.size() > 8) old.erase(old.begin());
        }
        CHECK(q.size_approx() == 0);
    }
}

TEMPLATE_LIST_TEST_CASE("delay_queue: a handle cancels nothing in another queue", "[delay]",
                        configs) {
    manual_clock clock;
    TestType a(clock);
    TestType b(clock);
    const auto ha = a.schedule_after(1, 1s);
    const auto hb = b.schedule_after(2, 1s);  // same storage slot in b as ha in a
    REQUIRE((ha && hb));
    CHECK(ha != hb);
    CHECK_FALSE(b.cancel(ha));
    CHECK_FALSE(a.cancel(hb));
    clock.advance(1s);
    CHECK(a.try_pop() == some(1));
    CHECK(b.try_pop() == some(2));
}

TEMPLATE_LIST_TEST_CASE("delay_queue: clear cancels everything and says how many", "[delay]",
                        configs) {
    manual_clock clock;
    TestType q(clock);
    CHECK(q.clear() == 0);
    const auto due = q.schedule_after(1, 0ns);
    const auto later = q.schedule_after(2, 5ms);
    const auto far = q.schedule_after(3, 48h);
    REQUIRE((due && later && far));
    REQUIRE(q.try_push(4));
    CHECK(q.size_approx() == 4);
    CHECK(q.clear() == 4);
    CHECK(q.size_approx() == 0);
    CHECK_FALSE(q.next_due().has_value());
    CHECK_FALSE(q.try_pop().has_value());
    clock.advance(49h);
    CHECK_FALSE(q.try_pop().has_value());
    CHECK_FALSE(q.cancel(due));
    CHECK_FALSE(q.cancel(far));
    CHECK(q.clear() == 0);
    // Still usable.
    REQUIRE(q.schedule_after(5, 1ms));
    clock.advance(1ms);
    CHECK(q.try_pop() == some(5));
}

// -------------------------------------------------------- sleeping consumers

TEMPLATE_LIST_TEST_CASE("delay_queue: a sleeping pop wakes when advance() makes its item due",
                        "[delay][threads]", configs) {
    const conq_test::watchdog dog("delay_queue: pop woken by advance", std::chrono::seconds(60));
    manual_clock clock;
    TestType q(clock);
    REQUIRE(q.schedule_after(42, 5s));
    std::atomic<bool> started{false}, done{false};
    std::optional<int> got;
    i64 popped_at = -1;
    std::thread consumer([&] {
        started.store(true);
        got = q.pop();
        popped_at = now_ns(clock);
        done.store(true);
    });
    wait_for_flag([&] { return started.load(); });
    give_it_a_chance();
    clock.advance(4s);
    give_it_a_chance();
    CHECK_FALSE(done.load());
    clock.advance(999'999'999ns);
    give_it_a_chance();
    CHECK_FALSE(done.load());
    clock.advance(1ns);
    consumer.join();
    CHECK(got == some(42));
    CHECK(popped_at >= 5'000'000'000);
}

TEMPLATE_LIST_TEST_CASE("delay_queue: each advance releases the sleepers it makes items due for",
                        "[delay][threads]", configs) {
    const conq_test::watchdog dog("delay_queue: several sleepers", std::chrono::seconds(60));
    manual_clock clock;
    TestType q(clock);
    for (int i = 1; i <= 3; ++i) REQUIRE(q.schedule_after(i, std::chrono::seconds(i)));
    std::atomic<int> started{0}, done{0};
    std::array<std::optional<int>, 3> got;
    std::vector<std::thread> consumers;
    for (std::size_t c = 0; c < 3; ++c) {
        consumers.emplace_back([&, c] {
            started.fetch_add(1);
            got[c] = q.pop();
            done.fetch_add(1);
        });
    }
    wait_for_flag([&] { return started.load() == 3; });
    give_it_a_chance();
    CHECK(done.load() == 0);
    for (int k = 1; k <= 3; ++k) {
        clock.advance(1s);
        wait_for_flag([&] { return done.load() >= k; });
        give_it_a_chance();
        CHECK(done.load() == k);
    }
    for (auto& t : consumers) t.join();
    std::vector<int> values;
    for (const auto& g : got) {
        REQUIRE(g.has_value());
        values.push_back(*g);
    }
    std::sort(values.begin(), values.end());
    CHECK(values == std::vector<int>{1, 2, 3});
}

TEMPLATE_LIST_TEST_CASE(
    "delay_queue: a pop sleeping on an empty queue wakes for a due item or close",
    "[delay][threads]", configs) {
    const conq_test::watchdog dog("delay_queue: pop on an empty queue", std::chrono::seconds(60));
    manual_clock clock;
    TestType q(clock);
    std::atomic<bool> started{false};
    std::optional<int> got{-1};
    auto sleeper = [&] {
        started.store(true);
        got = q.pop();
    };
    SECTION("schedule_after(x, 0)") {
        std::thread consumer(sleeper);
        wait_for_flag([&] { return started.load(); });
        give_it_a_chance();
        CHECK(q.schedule_after(7, 0ns));
        consumer.join();
        CHECK(got == some(7));
    }
    SECTION("try_push") {
        std::thread consumer(sleeper);
        wait_for_flag([&] { return started.load(); });
        give_it_a_chance();
        CHECK(q.try_push(8));
        consumer.join();
        CHECK(got == some(8));
    }
    SECTION("try_push_n") {
        std::thread consumer(sleeper);
        wait_for_flag([&] { return started.load(); });
        give_it_a_chance();
        std::array<int, 2> in{9, 10};
        CHECK(q.try_push_n(in.begin(), in.end()) == 2);
        consumer.join();
        CHECK(got == some(9));
    }
    SECTION("close") {
        std::thread consumer(sleeper);
        wait_for_flag([&] { return started.load(); });
        give_it_a_chance();
        q.close();
        consumer.join();
        CHECK_FALSE(got.has_value());
    }
}

TEMPLATE_LIST_TEST_CASE("delay_queue: an earlier item wakes a pop sleeping on a later one",
                        "[delay][threads]", configs) {
    const conq_test::watchdog dog("delay_queue: earlier item", std::chrono::seconds(60));
    manual_clock clock;
    TestType q(clock);
    REQUIRE(q.schedule_after(10, 10s));
    std::atomic<bool> started{false};
    std::optional<int> got;
    std::thread consumer([&] {
        started.store(true);
        got = q.pop();
    });
    wait_for_flag([&] { return started.load(); });
    give_it_a_chance();
    SECTION("due later, then advanced to") {
        CHECK(q.schedule_after(2, 2s));
        give_it_a_chance();
        clock.advance(2s);
        consumer.join();
        CHECK(got == some(2));
        CHECK(clock.now() == at(2s));
    }
    SECTION("due now: no advance needed") {
        CHECK(q.schedule_after(0, 0ns));
        consumer.join();
        CHECK(got == some(0));
        CHECK(clock.now() == at(0s));
    }
    CHECK(q.size_approx() == 1);
    CHECK(in_ns(q.next_due()) == some(i64{10'000'000'000}));
}

// --------------------------------------------------------------------- close

TEMPLATE_LIST_TEST_CASE("delay_queue: close refuses new items and still delivers pending ones",
                        "[delay][threads]", configs) {
    const conq_test::watchdog dog("delay_queue: close", std::chrono::seconds(60));
    manual_clock clock;
    TestType q(clock);
    REQUIRE(q.schedule_after(1, 1s));
    REQUIRE(q.schedule_after(2, 2s));
    CHECK_FALSE(q.closed());
    q.close();
    q.close();  // idempotent
    CHECK(q.closed());

    const int three = 3;
    CHECK_FALSE(q.schedule_after(3, 0ns));
    CHECK_FALSE(q.schedule_after(three, 0ns));
    CHECK_FALSE(q.schedule_at(3, clock.now()));
    CHECK_FALSE(q.emplace_at(clock.now(), 3));
    CHECK_FALSE(q.try_push(3));
    CHECK_FALSE(q.try_push(three));
    CHECK_FALSE(q.try_emplace(3));
    CHECK_FALSE(q.push(3));
    CHECK_FALSE(q.push_for(3, 1ms));
    std::array<int, 2> in{3, 3};
    CHECK(q.try_push_n(in.begin(), in.end()) == 0);
    CHECK(q.size_approx() == 2);

    CHECK_FALSE(q.try_pop().has_value());
    clock.advance(1s);
    CHECK(q.try_pop() == some(1));

    std::atomic<bool> started{false};
    std::optional<int> got;
    std::thread consumer([&] {
        started.store(true);
        got = q.pop();  // closed, but 2 is still pending
    });
    wait_for_flag([&] { return started.load(); });
    give_it_a_chance();
    clock.advance(1s);
    consumer.join();
    CHECK(got == some(2));
    CHECK_FALSE(q.pop().has_value());  // closed and empty: at once
    CHECK_FALSE(q.pop_for(1h).has_value());
    CHECK_FALSE(q.try_pop().has_value());
}

// ------------------------------------------------------ the common interface

TEMPLATE_LIST_TEST_CASE("delay_queue: push and pop calls of the common interface", "[delay]",
                        configs) {
    manual_clock clock(at(3s));
    TestType q(clock);
    if constexpr (bounded<TestType>) {
        CHECK(q.capacity() == TestType::policies::capacity::value);
    } else {
        CHECK(q.capacity() == TestType::unbounded);
        CHECK(TestType::unbounded == std::numeric_limits<std::size_t>::max());
    }

    const int two = 2;
    CHECK(q.try_push(1));  // due now: poppable at once
    CHECK(q.try_push(two));
    CHECK(q.push(3));
    CHECK(q.push_for(4, 1ms));
    CHECK(q.try_emplace(5));
    CHECK(q.size_approx() == 5);
    CHECK(q.next_due() == some(clock.now()));
    int out = 0;
    CHECK(q.try_pop(out));
    CHECK(out == 1);
    CHECK(q.pop() == some(2));
    CHECK(q.pop_for(1h) == some(3));
    std::array<int, 4> buf{};
    CHECK(q.try_pop_n(buf.begin(), buf.size()) == 2);
    CHECK((buf[0] == 4 && buf[1] == 5));
    CHECK(q.size_approx() == 0);

    // pop_for gives up on an item that is not due (real time passes, the
    // manual clock does not).
    REQUIRE(q.schedule_after(9, 1ns));
    CHECK_FALSE(q.pop_for(1ms).has_value());
    out = -1;
    CHECK_FALSE(q.try_pop(out));
    CHECK(out == -1);
    std::vector<int> drained;
    CHECK(q.try_pop_n(std::back_inserter(drained), 8) == 0);
    CHECK(q.size_approx() == 1);
    clock.advance(1ns);
    CHECK(q.pop_for(1ms) == some(9));

    // Batches push due now, in order, while there is room.
    std::vector<int> in(20);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = 100 + static_cast<int>(i);
    const std::size_t room = std::min(q.capacity(), in.size());
    CHECK(q.try_push_n(in.begin(), in.end()) == room);
    CHECK(q.size_approx() == room);
    CHECK(q.try_pop_n(std::back_inserter(drained), 3) == 3);
    CHECK(q.drain_due(std::back_inserter(drained), 100) == room - 3);
    CHECK(drained == std::vector<int>(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(room)));
    CHECK(q.try_pop_n(buf.begin(), 0) == 0);
}

TEMPLATE_LIST_TEST_CASE("delay_queue: a bounded queue refuses items when full, keeping them",
                        "[delay]", configs) {
    if constexpr (bounded<TestType>) {
        using P = rebind_t<TestType, std::unique_ptr<int>>;
        manual_clock clock;
        P q(clock);
        const std::size_t n = q.capacity();
        std::vector<typename P::handle> handles;
        for (std::size_t i = 0; i < n; ++i) {
            handles.push_back(q.schedule_after(std::make_unique<int>(static_cast<int>(i)), 1h));
            REQUIRE(handles.back());
        }
        auto p = std::make_unique<int>(-1);
        CHECK_FALSE(q.schedule_after(std::move(p), 0ns));
        CHECK(p != nullptr);
        CHECK_FALSE(q.schedule_at(std::move(p), clock.now()));
        CHECK(p != nullptr);
        CHECK_FALSE(q.emplace_at(clock.now(), nullptr));
        CHECK_FALSE(q.try_push(std::move(p)));
        CHECK(p != nullptr);
        CHECK_FALSE(q.push_for(std::move(p), 1ms));  // block: gives up; reject: at once
        CHECK(p != nullptr);
        if constexpr (std::is_same_v<typename P::policies::overflow, conq::reject>) {
            CHECK_FALSE(q.push(std::move(p)));  // never waits
            CHECK(p != nullptr);
        }
        std::array<std::unique_ptr<int>, 1> one{std::make_unique<int>(-3)};
        CHECK(q.try_push_n(one.begin(), one.end()) == 0);
        CHECK(one[0] != nullptr);
        CHECK(q.size_approx() == n);

        // A cancel makes room, and so does a pop.
        REQUIRE(q.cancel(handles[0]));
        REQUIRE(q.schedule_after(std::move(p), 0ns));
        CHECK_FALSE(q.try_push(std::make_unique<int>(-4)));
        auto first = q.try_pop();
        REQUIRE(first.has_value());
        CHECK(**first == -1);
        CHECK(q.try_push(std::make_unique<int>(-5)));
        CHECK(q.clear() == n);
    } else {
        SUCCEED("unbounded");
    }
}

TEST_CASE("delay_queue: a bounded blocking push waits for room", "[delay][threads]") {
    const conq_test::watchdog dog("delay_queue: push waits for room", std::chrono::seconds(60));
    manual_clock clock;
    conq::delay_queue<int, manual_clock> q(clock, 2);
    REQUIRE(q.try_push(1));
    REQUIRE(q.schedule_after(2, 1s));
    std::atomic<bool> started{false}, done{false};
    bool pushed = false;
    std::thread producer([&] {
        started.store(true);
        pushed = q.push(3);
        done.store(true);
    });
    wait_for_flag([&] { return started.load(); });
    give_it_a_chance();
    CHECK_FALSE(done.load());
    CHECK(q.try_pop() == some(1));
    producer.join();
    CHECK(pushed);
    CHECK(q.try_pop() == some(3));  // due when pushed, before 2
    CHECK_FALSE(q.try_pop().has_value());
}

TEST_CASE("delay_queue: capacities and clocks given to the constructor", "[delay]") {
    manual_clock clock;
    using Q = conq::delay_queue<int, manual_clock>;
    SECTION("runtime capacity, exactly") {
        Q q(clock, 5);
        CHECK(q.capacity() == 5);
        for (int i = 0; i < 5; ++i) CHECK(q.schedule_after(i, 1s));
        CHECK_FALSE(q.schedule_after(5, 1s));
        CHECK_FALSE(q.try_push(5));
        CHECK(q.size_approx() == 5);
    }
    SECTION("capacity 0 is an error") {
        CHECK_THROWS_AS(Q(clock, 0), std::invalid_argument);
        CHECK_THROWS_AS(Q(0), std::invalid_argument);
    }
    SECTION("capacity<N> is not rounded") {
        conq::delay_queue<int, manual_clock, conq::capacity<10>> q(clock);
        CHECK(q.capacity() == 10);
        for (int i = 0; i < 10; ++i) CHECK(q.try_push(i));
        CHECK_FALSE(q.try_push(10));
    }
    SECTION("a queue without a clock argument owns its clock") {
        Q q;
        CHECK(q.capacity() == Q::unbounded);
        CHECK(&q.clock() != &clock);
        REQUIRE(q.schedule_after(1, 1s));
        clock.advance(1s);  // not this queue's clock
        CHECK_FALSE(q.try_pop().has_value());
        q.clock().advance(1s);
        CHECK(q.try_pop() == some(1));
        Q bounded_own(3);
        CHECK(bounded_own.capacity() == 3);
    }
    SECTION("a queue bound to a clock reads it") {
        Q q(clock);
        CHECK(&q.clock() == &clock);
    }
    SECTION("several queues on one clock") {
        Q a(clock), b(clock);
        {
            Q c(clock);  // subscribes and unsubscribes in between
            REQUIRE(c.schedule_after(3, 1s));
        }
        REQUIRE(a.schedule_after(1, 1s));
        REQUIRE(b.schedule_after(2, 2s));
        clock.advance(2s);
        CHECK(a.try_pop() == some(1));
        CHECK(b.try_pop() == some(2));
    }
}

// ------------------------------------------------------------------ elements

TEMPLATE_LIST_TEST_CASE("delay_queue: move-only elements", "[delay]", configs) {
    using P = rebind_t<TestType, std::unique_ptr<int>>;
    manual_clock clock;
    P q(clock);
    auto a = std::make_unique<int>(1);
    REQUIRE(q.schedule_after(std::move(a), 2ms));
    CHECK(a == nullptr);
    REQUIRE(q.schedule_at(std::make_unique<int>(2), clock.now() + 1ms));
    REQUIRE(q.emplace_at(clock.now() + 3ms, new int(3)));
    REQUIRE(q.try_push(std::make_unique<int>(0)));
    REQUIRE(q.try_emplace(new int(-1)));
    std::array<std::unique_ptr<int>, 2> batch{std::make_unique<int>(-2), std::make_unique<int>(-3)};
    REQUIRE(q.try_push_n(batch.begin(), batch.end()) == 2);
    CHECK((batch[0] == nullptr && batch[1] == nullptr));

    std::vector<std::unique_ptr<int>> out;
    CHECK(q.drain_due(std::back_inserter(out), 10) == 4);
    REQUIRE(out.size() == 4);
    CHECK((*out[0] == 0 && *out[1] == -1 && *out[2] == -2 && *out[3] == -3));
    clock.advance(3ms);
    auto v = q.pop();
    REQUIRE((v && *v));
    CHECK(**v == 2);
    std::unique_ptr<int> w;
    REQUIRE(q.try_pop(w));
    CHECK(*w == 1);
    std::array<std::unique_ptr<int>, 2> got;
    CHECK(q.try_pop_n(got.begin(), got.size()) == 1);
    CHECK(*got[0] == 3);

    q.close();
    auto late = std::make_unique<int>(9);
    CHECK_FALSE(q.schedule_after(std::move(late), 0ns));
    CHECK(late != nullptr);  // a failed schedule leaves the argument alone
    CHECK_FALSE(q.try_push(std::move(late)));
    CHECK(late != nullptr);
}

template <class Q>
void lifetime_round_trip() {
    using C = rebind_t<Q, counted>;
    counted::reset();
    {
        manual_clock clock;
        C q(clock);
        std::mt19937_64 rng(7);
        const std::size_t live_per_round = std::min<std::size_t>(q.capacity(), 12);
        for (int round = 0; round < 200; ++round) {
            std::vector<std::pair<typename C::handle, std::uint64_t>> hs;
            for (std::size_t i = 0; i < live_per_round; ++i) {
                const std::uint64_t v = static_cast<std::uint64_t>(round) * 100 + i;
                const auto delay = ns(uniform(rng, 0, 3'000'000));
                typename C::handle h;
                switch (i % 4) {
                    case 0: {
                        const counted lv(v);
                        h = q.schedule_after(lv, delay);  // a copy
                        break;
                    }
                    case 1: h = q.schedule_after(counted(v), delay); break;
                    case 2: h = q.emplace_at(clock.now() + delay, v); break;
                    default: h = q.schedule_at(counted(v), clock.now() + delay); break;
                }
                CONQ_REQUIRE(h);
                hs.emplace_back(h, v);
            }
            CONQ_REQUIRE_EQ(counted::live.load(), static_cast<long>(q.size_approx()));
            // Cancel some, pop some, clear or keep the rest.
            for (std::size_t i = 0; i < hs.size(); i += 3) CONQ_REQUIRE(q.cancel(hs[i].first));
            CONQ_REQUIRE_EQ(counted::live.load(), static_cast<long>(q.size_approx()));
            clock.advance(ns(uniform(rng, 0, 3'000'000)));
            while (auto v = q.try_pop()) {
                CONQ_REQUIRE(v->get() != counted::moved_from_value);
                CONQ_REQUIRE_EQ(v->get() / 100, static_cast<std::uint64_t>(round));
            }
            std::vector<counted> drained;
            (void)q.drain_due(std::back_inserter(drained), 2);
            for (const auto& c : drained) CONQ_REQUIRE(c.get() != counted::moved_from_value);
            drained.clear();
            counted one;
            (void)q.try_pop(one);
            CONQ_REQUIRE(one.get() != counted::moved_from_value);
            if (round % 2 == 0) {
                (void)q.clear();
            } else {
                clock.advance(3ms);
                std::vector<counted> rest;
                (void)q.try_pop_n(std::back_inserter(rest), live_per_round);
            }
            CONQ_REQUIRE_EQ(counted::live.load(), 1L + static_cast<long>(q.size_approx()));
        }
        // Destroyed while holding items, due and not due.
        for (std::uint64_t i = 0; i < std::min<std::uint64_t>(q.capacity(), 10); ++i) {
            REQUIRE(q.schedule_after(counted(i), i % 2 == 0 ? 0ns : 1h));
        }
        CHECK(counted::live.load() == static_cast<long>(q.size_approx()));
    }
    CHECK(counted::errors.load() == 0);
    CHECK(counted::live.load() == 0);
    CHECK(counted::constructions.load() == counted::destructions.load());
}

TEMPLATE_LIST_TEST_CASE("delay_queue: owns exactly the items inside", "[delay]", configs) {
    lifetime_round_trip<TestType>();
}

TEMPLATE_LIST_TEST_CASE("delay_queue: many cancels among few pending timers lose nothing",
                        "[delay][cancel]", configs) {
    // Cancelling is lazy: a cancelled timer stays in the storage until the
    // storage meets it or sweeps it, and a sweep comes when cancelled ones
    // outnumber pending ones by 64. Here most timers are cancelled, so the
    // queue sweeps many times, with pending ones in every state (heap,
    // wheel buckets of several levels, the wheel's due heap) and handles of
    // swept timers still held.
    manual_clock clock;
    TestType q(clock);
    std::mt19937_64 rng(7);
    const std::size_t keep = std::min<std::size_t>(q.capacity(), 48);
    struct pending {
        i64 due;
        int id;
        typename TestType::handle h;
    };
    std::vector<pending> live;
    std::vector<typename TestType::handle> dead;  // cancelled or popped
    int next_id = 0;
    for (int round = 0; round < 600; ++round) {
        // Fill up to `keep` pending (a quarter due at once, the rest up to
        // 3 s ahead), then cancel two thirds of them, chosen at random.
        while (live.size() < keep) {
            const i64 due = now_ns(clock) + uniform(rng, 0, 3) * uniform(rng, 1, 1'000'000'000);
            const auto h = q.schedule_at(next_id, at(ns(due)));
            REQUIRE(h);
            live.push_back({due, next_id++, h});
        }
        std::shuffle(live.begin(), live.end(), rng);
        while (live.size() > keep / 3) {
            CHECK(q.cancel(live.back().h));
            dead.push_back(live.back().h);
            live.pop_back();
        }
        // Old handles match nothing, wherever their node went since.
        for (int k = 0; k < 4; ++k) CHECK_FALSE(q.cancel(dead[rng() % dead.size()]));
        CHECK(q.size_approx() == live.size());
        // Every third round, 200 ms pass: exactly the pending items now due
        // come out, by due time, then schedule order.
        if (round % 3 == 2) {
            clock.advance(200ms);
            std::vector<pending> due_now;
            for (auto it = live.begin(); it != live.end();) {
                if (it->due <= now_ns(clock)) {
                    due_now.push_back(*it);
                    dead.push_back(it->h);
                    it = live.erase(it);
                } else {
                    ++it;
                }
            }
            std::sort(due_now.begin(), due_now.end(), [](const pending& x, const pending& y) {
                return x.due < y.due || (x.due == y.due && x.id < y.id);
            });
            std::vector<int> want;
            for (const auto& p : due_now) want.push_back(p.id);
            std::vector<int> got;
            while (auto v = q.try_pop()) got.push_back(*v);
            CHECK(got == want);
        }
    }
    // Everything still pending comes out, in order, and nothing else.
    std::sort(live.begin(), live.end(), [](const pending& a, const pending& b) {
        return a.due < b.due || (a.due == b.due && a.id < b.id);
    });
    std::vector<int> want;
    for (const auto& p : live) want.push_back(p.id);
    clock.advance(ns(i64{1} << 40));
    std::vector<int> got;
    while (auto v = q.try_pop()) got.push_back(*v);
    CHECK(got == want);
    CHECK(q.size_approx() == 0);
    CHECK_FALSE(q.next_due());
}

TEST_CASE("delay_queue: a bounded queue allocates nothing after construction", "[delay][alloc]") {
    manual_clock clock;
    conq::delay_queue<int, manual_clock, conq::capacity<64>> heap(clock);
    conq::delay_queue<int, manual_clock, conq::capacity<64>, conq::timer_wheel<>> wheel(clock);
    std::mt19937_64 rng(11);
    std::vector<conq::delay_queue<int, manual_clock, conq::capacity<64>>::handle> heap_handles;
    std::vector<conq::delay_queue<int, manual_clock, conq::capacity<64>, conq::timer_wheel<>>::handle>
        wheel_handles;
    heap_handles.reserve(64);
    wheel_handles.reserve(64);
    bool ok = true;
    long scheduled = 0;
    // Fill, cancel most, refill, ...: cancelled timers pile up to the sweep
    // threshold again and again, and time passes now and then. No Catch
    // macros inside the counted part (they may allocate).
    auto churn = [&](auto& q, auto& hs) {
        for (int round = 0; round < 2000; ++round) {
            while (hs.size() < 64) {
                const auto h = q.schedule_after(round, ns(uniform(rng, 1, 100'000'000'000)));
                ok = static_cast<bool>(h) && ok;
                hs.push_back(h);
                ++scheduled;
            }
            ok = !q.schedule_after(-1, 1ms) && ok;  // full
            std::shuffle(hs.begin(), hs.end(), rng);
            const std::size_t stay = static_cast<std::size_t>(rng() % 8);
            while (hs.size() > stay) {
                ok = q.cancel(hs.back()) && ok;
                hs.pop_back();
            }
            if (round % 100 == 99) {
                clock.advance(100s);
                while (q.try_pop()) {
                }
                hs.clear();
            }
        }
    };
    const long before = conq_test::allocations();
    churn(heap, heap_handles);
    churn(wheel, wheel_handles);
    const long after = conq_test::allocations();
    CHECK(ok);
    CHECK(scheduled > 200'000);
    CHECK(after - before == 0);
}

// ------------------------------------------------ heap and wheel, side by side

namespace {

/// The reference a delay queue must match: pending items ordered by
/// (due, schedule order).
class model_queue {
public:
    i64 now = 0;

    void schedule(int id, i64 due) {
        const auto key = std::make_tuple(due, seq_++, id);
        pending_.insert(key);
        const auto i = static_cast<std::size_t>(id);
        if (keys_.size() <= i) keys_.resize(i + 1);
        keys_[i] = key;
    }
    bool cancel(int id) {
        if (static_cast<std::size_t>(id) >= keys_.size()) return false;
        return pending_.erase(keys_[static_cast<std::size_t>(id)]) == 1;
    }
    std::optional<i64> next_due() const {
        if (pending_.empty()) return std::nullopt;
        return std::get<0>(*pending_.begin());
    }
    std::optional<int> try_pop() {
        if (pending_.empty() || std::get<0>(*pending_.begin()) > now) return std::nullopt;
        const int id = std::get<2>(*pending_.begin());
        pending_.erase(pending_.begin());
        return id;
    }
    std::size_t size() const { return pending_.size(); }
    std::size_t clear() {
        const std::size_t n = pending_.size();
        pending_.clear();
        return n;
    }

private:
    using key = std::tuple<i64, std::uint64_t, int>;
    std::set<key> pending_;
    std::vector<key> keys_;
    std::uint64_t seq_ = 0;
};

/// Runs one random trace against `Q` (or the model when Q is void) and
/// returns the log of every outcome. The trace's choices depend only on the
/// seed and on earlier outcomes, so equal implementations give equal logs.
struct trace_counts {
    std::size_t delivered = 0, cancelled = 0, most_pending = 0;
};

template <class Q>
std::vector<i64> run_trace(std::uint64_t seed, int steps, trace_counts& counts) {
    constexpr i64 tick = 1'000'000;  // the default wheel tick, 1 ms
    constexpr i64 none = std::numeric_limits<i64>::min();
    std::mt19937_64 rng(seed);
    std::vector<i64> log;

    manual_clock clock;
    constexpr bool is_model = std::is_void_v<Q>;
    using queue_type = std::conditional_t<is_model, model_queue, Q>;
    std::unique_ptr<queue_type> q;
    if constexpr (is_model) q = std::make_unique<model_queue>();
    else q = std::make_unique<Q>(clock);
    using handle = typename std::conditional_t<is_model, conq::delay_queue<int>, Q>::handle;
    [[maybe_unused]] std::vector<handle> handles;

    std::vector<int> live;                // ids scheduled and neither popped nor cancelled
    std::vector<std::size_t> where_live;  // id -> index in live
    int next_id = 0;
    auto forget = [&](int id) {
        const std::size_t i = where_live[static_cast<std::size_t>(id)];
        live[i] = live.back();
        where_live[static_cast<std::size_t>(live[i])] = i;
        live.pop_back();
    };
    auto now = [&] { return now_ns(clock); };
    auto advance_to = [&](i64 t) {
        clock.set(at(ns(t)));
        if constexpr (is_model) q->now = now();
    };
    auto next_due = [&]() -> std::optional<i64> {
        if constexpr (is_model) return q->next_due();
        else return in_ns(q->next_due());
    };
    auto try_pop = [&]() -> std::optional<int> {
        if constexpr (is_model) return q->try_pop();
        else return q->try_pop();
    };
    auto popped = [&](int id) {
        log.push_back(id);
        forget(id);
        ++counts.delivered;
    };

    auto schedule_one = [&] {
        const i64 r = uniform(rng, 0, 99);
        i64 delay;
        if (r < 10) delay = 0;
        else if (r < 15) delay = -uniform(rng, 1, 2 * tick);  // in the past
        else if (r < 35) delay = uniform(rng, 1, tick - 1);
        else if (r < 65) delay = uniform(rng, 0, 100 * tick);
        else if (r < 85) delay = uniform(rng, 0, 1'000'000 * tick);
        else if (r < 95) delay = uniform(rng, 1'000'000 * tick, i64{1} << 52);
        else delay = std::numeric_limits<i64>::max();  // saturates at the end of time
        const int id = next_id++;
        live.push_back(id);
        where_live.push_back(live.size() - 1);
        const i64 due = delay > std::numeric_limits<i64>::max() - now()
                            ? std::numeric_limits<i64>::max()
                            : now() + delay;
        if constexpr (is_model) {
            q->schedule(id, due);
            log.push_back(1);
        } else {
            const auto h = (id % 2 == 0 || delay == std::numeric_limits<i64>::max())
                               ? q->schedule_after(id, ns(delay))
                               : q->schedule_at(id, at(ns(due)));
            log.push_back(static_cast<bool>(h));
            handles.push_back(h);
        }
    };

    for (int step = 0; step < steps; ++step) {
        counts.most_pending = std::max(counts.most_pending, live.size());
        const i64 op = uniform(rng, 0, 999);
        log.push_back(op / 10);
        if (op < 450) {  // schedule one, or now and then a burst
            for (i64 n = op < 5 ? uniform(rng, 2, 300) : 1; n > 0; --n) schedule_one();
                } else if (op < 500) {  // cancel a pending item
            if (live.empty()) continue;
            const int id = live[rng() % live.size()];
            bool ok;
            if constexpr (is_model) ok = q->cancel(id);
            else ok = q->cancel(handles[static_cast<std::size_t>(id)]);
            log.push_back(ok);
            if (ok) {
                forget(id);
                ++counts.cancelled;
            }
        } else if (op < 550) {  // cancel any handle, mostly dead ones
            if (next_id == 0) continue;
            const int id = static_cast<int>(rng() % static_cast<std::uint64_t>(next_id));
            bool ok;
            if constexpr (is_model) ok = q->cancel(id);
            else ok = q->cancel(handles[static_cast<std::size_t>(id)]);
            log.push_back(ok);
            if (ok) forget(id);
        } else if (op < 700) {  // advance
            const i64 r = uniform(rng, 0, 99);
            const std::optional<i64> nd = next_due();
            i64 to = now();
            if (r < 10) to += 0;
            else if (r < 35) to += uniform(rng, 1, tick - 1);
            else if (r < 65) to += uniform(rng, 1, 100 * tick);
            else if (r < 75) to += uniform(rng, 1, 1'000'000 * tick);
            else if (r < 78) to += uniform(rng, i64{1} << 40, i64{1} << 44);
            else if (nd && *nd < (i64{1} << 60)) to = r < 90 ? *nd : *nd - 1;  // at a due time
            advance_to(std::max(to, now()));
            log.push_back(now());
        } else if (op < 770) {
            const std::optional<i64> nd = next_due();
            log.push_back(nd ? *nd : none);
        } else if (op < 860) {  // pop everything due
            while (const auto v = try_pop()) popped(*v);
            log.push_back(none);
        } else if (op < 960) {  // drain a few
            const std::size_t max = 1 + rng() % 4;
            std::vector<int> got;
            if constexpr (is_model) {
                while (got.size() < max) {
                    const auto v = q->try_pop();
                    if (!v) break;
                    got.push_back(*v);
                }
            } else {
                const std::size_t n = q->drain_due(std::back_inserter(got), max);
                CONQ_REQUIRE_EQ(n, got.size());
            }
            log.push_back(static_cast<i64>(got.size()));
            for (const int id : got) popped(id);
        } else if (op < 995) {
            if constexpr (is_model) log.push_back(static_cast<i64>(q->size()));
            else log.push_back(static_cast<i64>(q->size_approx()));
        } else if (rng() % 64 == 0) {  // rarely: clear
            log.push_back(static_cast<i64>(q->clear()));
            for (const int id : std::vector<int>(live)) forget(id);
        }
    }
    return log;
}

template <class Q>
void same_log_as_model(const std::vector<i64>& model, std::uint64_t seed, int steps) {
    trace_counts counts;
    const std::vector<i64> log = run_trace<Q>(seed, steps, counts);
    std::size_t i = 0;
    while (i < log.size() && i < model.size() && log[i] == model[i]) ++i;
    INFO("seed " << seed << ": first difference at log entry " << i << " of " << model.size());
    CHECK(log.size() == model.size());
    CHECK(i == model.size());
}

}  // namespace

TEST_CASE("delay_queue: heap and wheel storage agree on long random traces", "[delay][trace]") {
    using heap = conq::delay_queue<int, manual_clock>;
    using wheel_1ms = conq::delay_queue<int, manual_clock, conq::timer_wheel<>>;
    using wheel_1us = conq::delay_queue<int, manual_clock, conq::timer_wheel<1000>>;
    using wheel_1ns = conq::delay_queue<int, manual_clock, conq::timer_wheel<1>>;
    constexpr int steps = 20'000;
    for (const std::uint64_t seed : {101u, 202u, 303u, 404u}) {
        trace_counts counts;
        const std::vector<i64> model = run_trace<void>(seed, steps, counts);
        // The trace is busy enough to mean something. Each storage must give
        // the model's log, so all give the same.
        CHECK(counts.delivered > steps / 10);
        CHECK(counts.cancelled > steps / 40);
        CHECK(counts.most_pending > 500);
        same_log_as_model<heap>(model, seed, steps);
        same_log_as_model<wheel_1ms>(model, seed, steps);
        same_log_as_model<wheel_1us>(model, seed, steps);
        same_log_as_model<wheel_1ns>(model, seed, steps);
    }
}

// -------------------------------------------------------------- steady_clock

TEST_CASE("delay_queue: with the steady clock, pop returns an item once due", "[delay][steady]") {
    const conq_test::watchdog dog("delay_queue: steady pop", std::chrono::seconds(60));
    conq::delay_queue<int> q;  // conq::steady_clock
    STATIC_REQUIRE(std::is_same_v<conq::delay_queue<int>::clock_type, conq::steady_clock>);
    REQUIRE(q.schedule_after(7, 1ms));
    CHECK(q.pop() == some(7));
    conq::delay_queue<int, conq::timer_wheel<>> w;
    REQUIRE(w.schedule_after(8, 1ms));
    CHECK(w.pop() == some(8));
}

TEST_CASE("delay_queue: a pop_for that gives up while sleeping for the earliest item hands over",
          "[delay][steady]") {
    // With the steady clock one pop sleeps until the earliest due time and
    // the others sleep until told. When that pop is a pop_for whose time-out
    // comes first, it must wake another sleeper as it leaves, or nobody
    // waits for the due time any more.
    conq::delay_queue<int> q;
    REQUIRE(q.schedule_after(1, 300ms));
    std::atomic<bool> first_started{false}, second_done{false};
    std::optional<int> first_got, second_got;
    std::thread first([&] {
        first_started.store(true);
        first_got = q.pop_for(100ms);
    });
    wait_for_flag([&] { return first_started.load(); });
    std::this_thread::sleep_for(20ms);  // lets `first` be the one sleeping for the item
    std::thread second([&] {
        second_got = q.pop();
        second_done.store(true);
    });
    first.join();
    if (first_got.has_value()) {
        q.close();  // this run did not set the scene (a very slow start): release `second`
    } else {
        // The item is due 300 ms after it was scheduled. A pop that nobody
        // wakes never returns; 10 s is the bound this test gives it.
        const auto give_up = std::chrono::steady_clock::now() + 10s;
        while (!second_done.load() && std::chrono::steady_clock::now() < give_up) {
            std::this_thread::sleep_for(1ms);
        }
        CHECK(second_done.load());
        q.close();  // releases a stranded pop (it then takes the item, now due)
    }
    second.join();
    CHECK(first_got.has_value() != second_got.has_value());
}

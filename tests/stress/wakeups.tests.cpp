// Stress tests of waiting and waking, for every concurrency mode x every
// wait policy (blocking sleeps in the kernel, the others poll):
//
//   close() wakes every producer blocked in push / push_for on a full ring
//   and every consumer blocked in pop / pop_for on an empty one;
//   a push (or a batch) wakes consumers blocked in pop / pop_for;
//   a pop (or a batch) wakes producers blocked in push / push_for;
//   ping-pong through two rings of capacity 1 and 2, thousands of times.
//
// A waiter that is never woken hangs its thread: a watchdog then aborts the
// process with the name of the test. Nothing here measures time; the timed
// calls use a deadline of an hour, so they return only when woken.
#include <conq/queue.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include "blocked_waiters.hpp"
#include "conq_catch.hpp"
#include "counted.hpp"
#include "ring_configs.hpp"
#include "stress_config.hpp"
#include "watchdog.hpp"

namespace {

using conq_test::config;
using conq_test::counted;
using u64 = std::uint64_t;
using namespace std::chrono_literals;

using conq_test::forever;
using conq_test::let_them_block;
constexpr std::size_t ring_capacity = 4;


template <class C>
std::string name_of(const char* what, bool timed) {
    return std::string(what) + (timed ? " (timed) " : " ") + conq_test::type_name<C>();
}

template <class C>
constexpr std::size_t producers_for() {
    return C::multi_producer ? 3 : 1;
}
template <class C>
constexpr std::size_t consumers_for() {
    return C::multi_consumer ? 3 : 1;
}

// ----------------------------------------------------------------- close

template <class C>
void close_wakes_blocked_producers(bool timed) {
    static_assert(C::blocks);
    const std::string what = name_of<C>("close wakes producers", timed);
    INFO(what);
    counted::reset();
    {
        conq_test::watchdog dog(what, std::chrono::seconds(30));
        auto q = conq_test::make_ring<conq_test::ring_t<C, counted>>(ring_capacity);
        const std::size_t cap = q->capacity();
        for (u64 i = 0; i < cap; ++i) REQUIRE(q->try_push(counted(i)));
        constexpr std::size_t P = producers_for<C>();
        std::latch started(P);
        std::atomic<int> returned{0}, succeeded{0}, intact{0};
        std::vector<std::thread> threads;
        for (std::size_t p = 0; p < P; ++p) {
            threads.emplace_back([&, p] {
                const u64 value = 1000 + p;
                counted v(value);
                started.count_down();
                const bool ok = timed ? q->push_for(std::move(v), forever) : q->push(std::move(v));
                if (ok) succeeded.fetch_add(1);
                if (v.get() == value) intact.fetch_add(1);
                returned.fetch_add(1);
            });
        }
        let_them_block(started);
        CHECK(returned.load() == 0);  // the ring is full: they must wait
        q->close();
        for (auto& t : threads) t.join();
        CHECK(returned.load() == static_cast<int>(P));
        CHECK(succeeded.load() == 0);
        CHECK(intact.load() == static_cast<int>(P));  // a failed push keeps its argument
        for (u64 i = 0; i < cap; ++i) REQUIRE(q->pop() == std::optional<counted>(counted(i)));
        REQUIRE_FALSE(q->pop().has_value());
    }
    CHECK(counted::live == 0);
    CHECK(counted::errors == 0);
}

template <class C>
void close_wakes_blocked_consumers(bool timed) {
    const std::string what = name_of<C>("close wakes consumers", timed);
    INFO(what);
    conq_test::watchdog dog(what, std::chrono::seconds(30));
    auto q = conq_test::make_ring<conq_test::ring_t<C, u64>>(ring_capacity);
    constexpr std::size_t n = consumers_for<C>();
    conq_test::check_close_releases_consumers(*q, n, timed);
}

// ------------------------------------------------- the other side acts

/// Consumers wait in pop; items arrive one push at a time, or as one batch.
/// Each consumer takes exactly one item and leaves. The first round pauses
/// before the pushes (the consumers are asleep); the others do not (the
/// consumers are on their way to sleep: the race a lost wake-up needs).
template <class C>
void push_wakes_blocked_consumers(bool timed, bool as_batch) {
    const std::string what =
        name_of<C>(as_batch ? "a batch wakes consumers" : "a push wakes consumers", timed);
    INFO(what);
    conq_test::watchdog dog(what, std::chrono::seconds(60));
    constexpr std::size_t n = consumers_for<C>();
    const int rounds = static_cast<int>(conq_test::scaled(10));
    for (int round = 0; round < rounds; ++round) {
        INFO("round " << round);
        auto q = conq_test::make_ring<conq_test::ring_t<C, u64>>(ring_capacity);
        std::latch started(n);
        std::vector<std::optional<u64>> got(n);
        std::vector<std::thread> threads;
        for (std::size_t c = 0; c < n; ++c) {
            threads.emplace_back([&, c] {
                started.count_down();
                got[c] = timed ? q->pop_for(forever) : q->pop();
            });
        }
        if (round == 0) {
            let_them_block(started);
        } else {
            started.wait();
        }
        if (as_batch) {
            std::vector<u64> items;
            for (std::size_t c = 0; c < n; ++c) items.push_back(100 + c);
            REQUIRE(q->try_push_n(items.begin(), items.end()) == n);
        } else {
            for (std::size_t c = 0; c < n; ++c) REQUIRE(q->push(u64{100 + c}));
        }
        for (auto& t : threads) t.join();
        std::set<u64> values;
        for (const auto& v : got) {
            REQUIRE(v.has_value());
            values.insert(*v);
        }
        REQUIRE(values.size() == n);
        REQUIRE(*values.begin() == 100);
        REQUIRE(*values.rbegin() == 100 + n - 1);
        REQUIRE(q->size_approx() == 0);
    }
}

/// Producers wait in push on a full ring; room appears one pop at a time,
/// or as one batch. Each producer gets its item in and leaves. Rounds as in
/// push_wakes_blocked_consumers.
template <class C>
void pop_wakes_blocked_producers(bool timed, bool as_batch) {
    static_assert(C::blocks);
    const std::string what =
        name_of<C>(as_batch ? "a batch pop wakes producers" : "a pop wakes producers", timed);
    INFO(what);
    conq_test::watchdog dog(what, std::chrono::seconds(60));
    constexpr std::size_t P = producers_for<C>();
    const int rounds = static_cast<int>(conq_test::scaled(10));
    for (int round = 0; round < rounds; ++round) {
        INFO("round " << round);
        auto q = conq_test::make_ring<conq_test::ring_t<C, u64>>(ring_capacity);
        const std::size_t cap = q->capacity();
        for (u64 i = 0; i < cap; ++i) REQUIRE(q->try_push(i));
        std::latch started(P);
        std::atomic<int> succeeded{0};
        std::vector<std::thread> threads;
        for (std::size_t p = 0; p < P; ++p) {
            threads.emplace_back([&, p] {
                started.count_down();
                const u64 v = 100 + p;
                if (timed ? q->push_for(v, forever) : q->push(v)) succeeded.fetch_add(1);
            });
        }
        if (round == 0) {
            let_them_block(started);
        } else {
            started.wait();
        }
        // Room for exactly P more (P <= capacity).
        std::vector<u64> first;
        if (as_batch) {
            std::vector<u64> out(P);
            REQUIRE(q->try_pop_n(out.data(), P) == P);
            first = out;
        } else {
            for (std::size_t p = 0; p < P; ++p) {
                auto v = q->try_pop();
                REQUIRE(v.has_value());
                first.push_back(*v);
            }
        }
        for (auto& t : threads) t.join();
        REQUIRE(succeeded.load() == static_cast<int>(P));
        for (std::size_t i = 0; i < P; ++i) REQUIRE(first[i] == i);
        // The ring: the rest of the first fill, then the P new items.
        for (u64 i = P; i < cap; ++i) REQUIRE(q->try_pop() == std::optional<u64>(i));
        std::set<u64> values;
        while (auto v = q->try_pop()) values.insert(*v);
        REQUIRE(values.size() == P);
        REQUIRE(*values.begin() == 100);
        REQUIRE(*values.rbegin() == 100 + P - 1);
    }
}

// -------------------------------------------------------------- ping-pong

/// Two threads bounce a counter through two rings; every pop waits for the
/// other thread's push, so every wake-up must arrive.
template <class C>
void ping_pong(std::size_t capacity, bool timed) {
    const std::string what =
        name_of<C>("ping-pong", timed) + " capacity " + std::to_string(capacity);
    INFO(what);
    conq_test::watchdog dog(what, std::chrono::seconds(60 * conq_test::stress_scale()));
    auto there = conq_test::make_ring<conq_test::ring_t<C, u64>>(capacity);
    auto back = conq_test::make_ring<conq_test::ring_t<C, u64>>(capacity);
    const u64 rounds = conq_test::for_busy_wait(conq_test::scaled(2000),
                                                std::is_same_v<typename C::wait, conq::spin>);
    std::atomic<long> wrong{0};
    // Now and then one side pauses, so that the other runs out of spinning
    // and (with blocking) sleeps in the kernel until the push arrives.
    auto pause_now_and_then = [](u64 i, u64 phase) {
        if (i % 64 == phase) std::this_thread::sleep_for(300us);
    };
    std::thread echo([&] {
        for (;;) {
            auto v = timed ? there->pop_for(forever) : there->pop();
            if (!v) break;
            pause_now_and_then(*v / 2, 0);
            if (!(timed ? back->push_for(*v + 1, forever) : back->push(*v + 1))) {
                wrong.fetch_add(1);
            }
        }
        back->close();
    });
    u64 sent = 0, last = 0;
    for (u64 i = 0; i < rounds; ++i) {
        pause_now_and_then(i, 32);
        if (!(timed ? there->push_for(2 * i, forever) : there->push(2 * i))) wrong.fetch_add(1);
        ++sent;
        auto v = timed ? back->pop_for(forever) : back->pop();
        if (!v || *v != 2 * i + 1) wrong.fetch_add(1);
        if (v) last = *v;
    }
    there->close();
    echo.join();
    CHECK(wrong.load() == 0);
    CHECK(sent == rounds);
    CHECK(last == 2 * rounds - 1);
    CHECK_FALSE(back->pop().has_value());  // closed by the echo thread, drained
}

template <class Concurrency, class... Extra>
using by_wait = std::tuple<config<conq::queue, Concurrency, conq::spin, Extra...>,
                           config<conq::queue, Concurrency, conq::yield, Extra...>,
                           config<conq::queue, Concurrency, conq::backoff, Extra...>,
                           config<conq::queue, Concurrency, conq::blocking, Extra...>>;

using all_block_configs =
    decltype(std::tuple_cat(by_wait<conq::spsc>{}, by_wait<conq::mpsc>{}, by_wait<conq::spmc>{},
                            by_wait<conq::mpmc>{},
                            std::tuple<config<conq::queue, conq::mpmc, conq::blocking,
                                              conq::capacity<4>>>{}));

// Consumers wait with every overflow policy.
using consumer_configs = decltype(std::tuple_cat(
    all_block_configs{},
    std::tuple<config<conq::queue, conq::spsc, conq::blocking, conq::drop_oldest>,
               config<conq::queue, conq::mpmc, conq::blocking, conq::drop_oldest>,
               config<conq::queue, conq::mpsc, conq::yield, conq::drop_oldest>,
               config<conq::queue, conq::spmc, conq::blocking, conq::reject>>{}));

}  // namespace

TEMPLATE_LIST_TEST_CASE("close wakes every producer blocked in push", "[wakeup][close]",
                        all_block_configs) {
    close_wakes_blocked_producers<TestType>(false);
    close_wakes_blocked_producers<TestType>(true);
}

TEMPLATE_LIST_TEST_CASE("close wakes every consumer blocked in pop", "[wakeup][close]",
                        consumer_configs) {
    close_wakes_blocked_consumers<TestType>(false);
    close_wakes_blocked_consumers<TestType>(true);
}

TEMPLATE_LIST_TEST_CASE("a push wakes consumers blocked in pop", "[wakeup]", consumer_configs) {
    push_wakes_blocked_consumers<TestType>(false, false);
    push_wakes_blocked_consumers<TestType>(true, false);
    push_wakes_blocked_consumers<TestType>(false, true);
    push_wakes_blocked_consumers<TestType>(true, true);
}

TEMPLATE_LIST_TEST_CASE("a pop wakes producers blocked in push", "[wakeup]", all_block_configs) {
    pop_wakes_blocked_producers<TestType>(false, false);
    pop_wakes_blocked_producers<TestType>(true, false);
    pop_wakes_blocked_producers<TestType>(false, true);
    pop_wakes_blocked_producers<TestType>(true, true);
}

TEMPLATE_LIST_TEST_CASE("ping-pong: every wake-up arrives", "[wakeup][pingpong]",
                        all_block_configs) {
    if constexpr (!TestType::inline_storage) {
        ping_pong<TestType>(1, false);
        ping_pong<TestType>(2, true);
    } else {
        ping_pong<TestType>(4, false);
    }
}

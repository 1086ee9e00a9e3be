// tests/support/ring_contract.hpp
//
// The single-threaded contract every ring (and conq::queue) keeps, written
// once as function templates over a `conq_test::config`. Each test file
// calls them from its own TEMPLATE_LIST_TEST_CASEs, so a failure names the
// container and the configuration.
//
// Every configuration used with these checks has capacity 8: capacity<8>
// (or capacity<5>, rounded up) for inline storage, 8 given to the
// constructor otherwise.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
#include <list>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include <conq/policy.hpp>

#include "conq_catch.hpp"
#include "counted.hpp"
#include "ring_configs.hpp"
#include "watchdog.hpp"

namespace conq_test::contract {

using u64 = std::uint64_t;
using namespace std::chrono_literals;

/// The capacity of every configuration these checks run on.
inline constexpr std::size_t nominal = 8;

template <class T>
[[nodiscard]] std::optional<T> some(T v) {
    return std::optional<T>(std::move(v));
}

// ------------------------------------------------------------------ traits

/// Interface, copy/move rules and constructors, at compile time.
template <class C>
void traits() {
    using R = ring_t<C, u64>;
    using P = ring_t<C, std::unique_ptr<int>>;
    static_assert(conq::concurrent_queue<R>);
    static_assert(conq::concurrent_queue<P>);
    static_assert(conq::concurrent_queue<ring_t<C, counted>>);
    static_assert(conq::concurrent_queue<ring_t<C, no_default>>);
    static_assert(std::is_same_v<typename R::value_type, u64>);
    // Concurrent containers are neither copyable nor movable.
    static_assert(!(std::is_copy_constructible_v<R>));
    static_assert(!(std::is_move_constructible_v<R>));
    static_assert(!(std::is_copy_assignable_v<R>));
    static_assert(!(std::is_move_assignable_v<R>));
    if constexpr (C::inline_storage) {
        static_assert(std::is_default_constructible_v<R>);
        static_assert(!(std::is_constructible_v<R, std::size_t>));
        // Inline storage: the slots live inside the object.
        static_assert(sizeof(R) >= nominal * sizeof(u64));
    } else {
        // (The default constructor of a runtime-capacity ring exists only to
        // fail with a readable static_assert, so is_default_constructible
        // says true; it is not checked here.)
        static_assert(std::is_constructible_v<R, std::size_t>);
        static_assert(!(std::is_convertible_v<std::size_t, R>));  // explicit
    }
    // A move-only T has no copying overloads.
    static_assert(!(requires(P& q, const std::unique_ptr<int>& v) { q.try_push(v); }));
    static_assert(!(requires(P& q, const std::unique_ptr<int>& v) { q.push(v); }));
    static_assert(requires(P& q, std::unique_ptr<int>&& v) { q.push(std::move(v)); });
}

// --------------------------------------------------------- fill and drain

/// FIFO order, try_push failing exactly at capacity(), size_approx, several
/// laps with the start shifted so that every slot is first once.
template <class C>
void fill_and_drain() {
    auto r = make_ring<ring_t<C, u64>>(nominal);
    CONQ_REQUIRE_EQ(r->capacity(), nominal);
    CONQ_REQUIRE_EQ(r->size_approx(), 0);
    CONQ_REQUIRE_FALSE(r->closed());
    CONQ_REQUIRE_FALSE(r->try_pop().has_value());
    u64 out = 777;
    CONQ_REQUIRE_FALSE(r->try_pop(out));
    CONQ_REQUIRE_EQ(out, 777);

    u64 next = 1;
    for (std::size_t lap = 0; lap < 2 * nominal + 1; ++lap) {
        INFO("lap " << lap);
        for (std::size_t i = 0; i < nominal; ++i) {
            CONQ_REQUIRE(r->try_push(next + i));
            CONQ_REQUIRE_EQ(r->size_approx(), i + 1);
        }
        if constexpr (!C::drops) {
            const u64 extra = 999;
            CONQ_REQUIRE_FALSE(r->try_push(extra));
            CONQ_REQUIRE_FALSE(r->try_push(u64{999}));
            CONQ_REQUIRE_FALSE(r->try_emplace(u64{999}));
            CONQ_REQUIRE_EQ(r->size_approx(), nominal);
        }
        for (std::size_t i = 0; i < nominal; ++i) {
            CONQ_REQUIRE_EQ(r->try_pop(), some(next + i));
            CONQ_REQUIRE_EQ(r->size_approx(), nominal - i - 1);
        }
        CONQ_REQUIRE_FALSE(r->try_pop().has_value());
        next += nominal;
        // Shift where the next lap starts by one slot.
        CONQ_REQUIRE(r->try_emplace(next));
        CONQ_REQUIRE_EQ(r->try_pop(), some(next));
        ++next;
    }
}

/// Every call, in a long deterministic random sequence, against a
/// std::deque model: results, contents and size_approx after every step.
template <class C>
void model_check(std::uint32_t seed, int steps) {
    INFO("seed " << seed);
    auto r = make_ring<ring_t<C, u64>>(nominal);
    const std::size_t cap = r->capacity();
    std::deque<u64> model;
    std::size_t dropped = 0;
    u64 next = 1;
    std::mt19937 rng(seed);
    auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    auto model_push = [&](u64 v) {
        if (model.size() == cap) {
            model.pop_front();
            ++dropped;
        }
        model.push_back(v);
    };
    auto room = [&] { return C::drops || model.size() < cap; };
    std::vector<u64> in;
    std::array<u64, 2 * nominal + 4> buf{};

    for (int step = 0; step < steps; ++step) {
        const std::size_t op = pick(11);
        INFO("step " << step << " op " << op << " size " << model.size());
        switch (op) {
            case 0: {  // try_push(const T&)
                const u64 v = next;
                const bool expect = room();
                CONQ_REQUIRE_EQ(r->try_push(v), expect);
                if (expect) model_push(next++);
                break;
            }
            case 1: {  // try_push(T&&)
                const bool expect = room();
                CONQ_REQUIRE_EQ(r->try_push(u64{next}), expect);
                if (expect) model_push(next++);
                break;
            }
            case 2: {  // try_emplace
                const bool expect = room();
                CONQ_REQUIRE_EQ(r->try_emplace(next), expect);
                if (expect) model_push(next++);
                break;
            }
            case 3: {  // push: only where it cannot wait
                if (!room() && C::blocks) break;
                const bool expect = room();
                CONQ_REQUIRE_EQ(r->push(u64{next}), expect);
                if (expect) model_push(next++);
                break;
            }
            case 4: {  // push_for with no time to wait
                const bool expect = room();
                CONQ_REQUIRE_EQ(r->push_for(u64{next}, 0ms), expect);
                if (expect) model_push(next++);
                break;
            }
            case 5: {  // try_push_n
                in.clear();
                const std::size_t len = pick(cap + 3);
                for (std::size_t i = 0; i < len; ++i) in.push_back(next + i);
                const std::size_t expect =
                    C::drops ? len : std::min(len, cap - model.size());
                CONQ_REQUIRE_EQ(r->try_push_n(in.begin(), in.end()), expect);
                for (std::size_t i = 0; i < expect; ++i) model_push(next++);
                next += len - expect;  // values never pushed are skipped
                break;
            }
            case 6: {  // try_pop()
                const auto got = r->try_pop();
                if (model.empty()) {
                    CONQ_REQUIRE_FALSE(got.has_value());
                } else {
                    CONQ_REQUIRE_EQ(got, some(model.front()));
                    model.pop_front();
                }
                break;
            }
            case 7: {  // try_pop(T&)
                u64 v = 0;
                const bool ok = r->try_pop(v);
                CONQ_REQUIRE_EQ(ok, !model.empty());
                if (ok) {
                    CONQ_REQUIRE_EQ(v, model.front());
                    model.pop_front();
                }
                break;
            }
            case 8: {  // pop: only where it cannot wait
                if (model.empty()) break;
                CONQ_REQUIRE_EQ(r->pop(), some(model.front()));
                model.pop_front();
                break;
            }
            case 9: {  // pop_for with no time to wait
                const auto got = r->pop_for(0ms);
                if (model.empty()) {
                    CONQ_REQUIRE_FALSE(got.has_value());
                } else {
                    CONQ_REQUIRE_EQ(got, some(model.front()));
                    model.pop_front();
                }
                break;
            }
            default: {  // try_pop_n
                const std::size_t max = pick(cap + 3);
                const std::size_t expect = std::min(max, model.size());
                CONQ_REQUIRE_EQ(r->try_pop_n(buf.data(), max), expect);
                for (std::size_t i = 0; i < expect; ++i) {
                    CONQ_REQUIRE_EQ(buf[i], model.front());
                    model.pop_front();
                }
                break;
            }
        }
        CONQ_REQUIRE_EQ(r->size_approx(), model.size());
        if constexpr (C::drops) CONQ_REQUIRE_EQ(r->dropped(), dropped);
    }
}

// ----------------------------------------------------------------- batches

/// try_push_n / try_pop_n: partial batches when nearly full or empty,
/// order kept, wrap-around, empty ranges, max 0, non-random-access
/// iterators.
template <class C>
void batches() {
    static_assert(!C::drops, "drop_oldest_keeps_newest covers batches with drop_oldest");
    auto r = make_ring<ring_t<C, u64>>(nominal);
    std::vector<u64> in(32);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = i;
    std::array<u64, 16> out{};

    CONQ_REQUIRE_EQ(r->try_push_n(in.begin(), in.begin()), 0);
    CONQ_REQUIRE_EQ(r->try_pop_n(out.data(), out.size()), 0);
    CONQ_REQUIRE_EQ(r->try_push_n(in.begin(), in.begin() + 5), 5);      // 0..4
    CONQ_REQUIRE_EQ(r->try_push_n(in.begin() + 5, in.begin() + 10), 3);  // 5..7 fit
    CONQ_REQUIRE_EQ(r->size_approx(), 8);
    CONQ_REQUIRE_EQ(r->try_push_n(in.begin() + 8, in.end()), 0);  // full
    CONQ_REQUIRE_EQ(r->try_pop_n(out.data(), 0), 0);
    CONQ_REQUIRE_EQ(r->size_approx(), 8);
    CONQ_REQUIRE_EQ(r->try_pop_n(out.data(), 3), 3);
    CONQ_REQUIRE_EQ(std::vector<u64>(out.begin(), out.begin() + 3), (std::vector<u64>{0, 1, 2}));
    CONQ_REQUIRE_EQ(r->try_push_n(in.begin() + 8, in.begin() + 12), 3);  // 8..10, wraps
    CONQ_REQUIRE_EQ(r->size_approx(), 8);
    CONQ_REQUIRE_EQ(r->try_pop_n(out.data(), out.size()), 8);  // asks for more than there is
    CONQ_REQUIRE_EQ(std::vector<u64>(out.begin(), out.begin() + 8),
                    (std::vector<u64>{3, 4, 5, 6, 7, 8, 9, 10}));
    CONQ_REQUIRE_EQ(r->try_pop_n(out.data(), out.size()), 0);
    CONQ_REQUIRE_EQ(r->size_approx(), 0);

    // Batches of every size 1..8 over many laps, popped in other sizes.
    u64 next = 100, expect = 100;
    std::vector<u64> chunk;
    for (std::size_t lap = 0; lap < 40; ++lap) {
        INFO("lap " << lap);
        chunk.clear();
        const std::size_t len = 1 + lap % nominal;
        for (std::size_t i = 0; i < len; ++i) chunk.push_back(next + i);
        const std::size_t held = static_cast<std::size_t>(next - expect);
        CONQ_REQUIRE_EQ(r->try_push_n(chunk.begin(), chunk.end()), std::min(len, nominal - held));
        if (held + len > nominal) {  // the batch did not fit: drain, then push it whole
            const std::size_t pushed = nominal - held;
            next += pushed;
            CONQ_REQUIRE_EQ(r->try_pop_n(out.data(), out.size()), nominal);
            for (std::size_t i = 0; i < nominal; ++i) CONQ_REQUIRE_EQ(out[i], expect++);
            const auto rest = chunk.begin() + static_cast<std::ptrdiff_t>(pushed);
            CONQ_REQUIRE_EQ(r->try_push_n(rest, chunk.end()), len - pushed);
            next += len - pushed;
        } else {
            next += len;
        }
        const std::size_t take = 1 + (lap * 3) % nominal;
        const std::size_t have = static_cast<std::size_t>(next - expect);
        const std::size_t got = r->try_pop_n(out.data(), take);
        CONQ_REQUIRE_EQ(got, std::min(take, have));
        for (std::size_t i = 0; i < got; ++i) CONQ_REQUIRE_EQ(out[i], expect++);
        CONQ_REQUIRE_EQ(r->size_approx(), static_cast<std::size_t>(next - expect));
    }
    const std::size_t n = r->try_pop_n(out.data(), out.size());
    for (std::size_t i = 0; i < n; ++i) CONQ_REQUIRE_EQ(out[i], expect++);
    CONQ_REQUIRE_EQ(expect, next);

    // Forward (not random-access) iterators on the way in.
    std::list<u64> items{1, 2, 3};
    CONQ_REQUIRE_EQ(r->try_push_n(items.begin(), items.end()), 3);
    if constexpr (!C::multi_consumer && !C::drops) {
        // A back_insert_iterator on the way out (one consumer only: several
        // consumers need a noexcept assignment through the iterator).
        std::vector<u64> v;
        CONQ_REQUIRE_EQ(r->try_pop_n(std::back_inserter(v), 10), 3);
        CONQ_REQUIRE_EQ(v, (std::vector<u64>{1, 2, 3}));
    } else {
        CONQ_REQUIRE_EQ(r->try_pop_n(out.data(), 10), 3);
        CONQ_REQUIRE_EQ(std::vector<u64>(out.begin(), out.begin() + 3),
                        (std::vector<u64>{1, 2, 3}));
    }
}

// --------------------------------------------------- element types

/// std::unique_ptr elements; a failed push leaves its argument intact.
template <class C>
void move_only() {
    using P = std::unique_ptr<int>;
    auto r = make_ring<ring_t<C, P>>(nominal);
    auto p = std::make_unique<int>(1);
    CONQ_REQUIRE(r->try_push(std::move(p)));
    CONQ_REQUIRE_EQ(p, nullptr);
    CONQ_REQUIRE(r->try_emplace(std::make_unique<int>(2)));
    CONQ_REQUIRE(r->push(std::make_unique<int>(3)));
    CONQ_REQUIRE(r->push_for(std::make_unique<int>(4), 0ms));
    std::vector<P> batch;
    for (int i = 5; i <= 8; ++i) batch.push_back(std::make_unique<int>(i));
    CONQ_REQUIRE_EQ(r->try_push_n(batch.begin(), batch.end()), 4);
    for (const P& b : batch) CONQ_REQUIRE_EQ(b, nullptr);  // moved in

    if constexpr (!C::drops) {
        auto q = std::make_unique<int>(9);
        CONQ_REQUIRE_FALSE(r->try_push(std::move(q)));
        CONQ_REQUIRE(q != nullptr);
        CONQ_REQUIRE_EQ(*q, 9);
        CONQ_REQUIRE_FALSE(r->push_for(std::move(q), 1ms));
        CONQ_REQUIRE(q != nullptr);
        if constexpr (C::rejects) {
            CONQ_REQUIRE_FALSE(r->push(std::move(q)));
            CONQ_REQUIRE(q != nullptr);
        }
        std::vector<P> more;
        more.push_back(std::make_unique<int>(10));
        more.push_back(std::make_unique<int>(11));
        CONQ_REQUIRE_EQ(r->try_push_n(more.begin(), more.end()), 0);
        CONQ_REQUIRE(more[0] != nullptr);
        CONQ_REQUIRE(more[1] != nullptr);
    }

    auto v = r->try_pop();
    CONQ_REQUIRE(v.has_value());
    CONQ_REQUIRE(*v != nullptr);
    CONQ_REQUIRE_EQ(**v, 1);
    P out;
    CONQ_REQUIRE(r->try_pop(out));
    CONQ_REQUIRE_EQ(*out, 2);
    v = r->pop();
    CONQ_REQUIRE_EQ(**v, 3);
    v = r->pop_for(0ms);
    CONQ_REQUIRE_EQ(**v, 4);
    std::array<P, nominal> outs;
    CONQ_REQUIRE_EQ(r->try_pop_n(outs.data(), outs.size()), 4);
    for (int i = 0; i < 4; ++i) CONQ_REQUIRE_EQ(*outs[static_cast<std::size_t>(i)], 5 + i);

    // Items left inside are destroyed with the ring (the sanitizer build
    // reports a leak otherwise).
    CONQ_REQUIRE(r->try_emplace(std::make_unique<int>(20)));
    CONQ_REQUIRE(r->try_emplace(std::make_unique<int>(21)));
    r->close();
    auto z = std::make_unique<int>(22);
    CONQ_REQUIRE_FALSE(r->try_push(std::move(z)));
    CONQ_REQUIRE(z != nullptr);
    CONQ_REQUIRE_FALSE(r->push(std::move(z)));
    CONQ_REQUIRE(z != nullptr);
    CONQ_REQUIRE_FALSE(r->push_for(std::move(z), 1h));
    CONQ_REQUIRE(z != nullptr);
}

/// A T without a default constructor.
template <class C>
void non_default_constructible() {
    auto r = make_ring<ring_t<C, no_default>>(nominal);
    CONQ_REQUIRE(r->try_push(no_default(1)));
    const no_default two(2);
    CONQ_REQUIRE(r->try_push(two));
    CONQ_REQUIRE(r->try_emplace(3));
    CONQ_REQUIRE(r->push(no_default(4)));
    CONQ_REQUIRE(r->push_for(no_default(5), 0ms));
    std::vector<no_default> batch{no_default(6), no_default(7)};
    CONQ_REQUIRE_EQ(r->try_push_n(batch.begin(), batch.end()), 2);
    CONQ_REQUIRE_EQ(r->try_pop().value().value, 1);
    no_default out(0);
    CONQ_REQUIRE(r->try_pop(out));
    CONQ_REQUIRE_EQ(out.value, 2);
    CONQ_REQUIRE_EQ(r->pop().value().value, 3);
    CONQ_REQUIRE_EQ(r->pop_for(1ms).value().value, 4);
    std::array<std::optional<no_default>, 4> outs;
    CONQ_REQUIRE_EQ(r->try_pop_n(outs.data(), outs.size()), 3);
    CONQ_REQUIRE_EQ(outs[0]->value, 5);
    CONQ_REQUIRE_EQ(outs[1]->value, 6);
    CONQ_REQUIRE_EQ(outs[2]->value, 7);
    CONQ_REQUIRE_FALSE(outs[3].has_value());
}

/// try_emplace with a constructor that throws: the exception propagates
/// and the ring is as it was, in every configuration.
template <class C>
void emplace_throws() {
    auto r = make_ring<ring_t<C, throwing_ctor>>(nominal);
    CONQ_REQUIRE(r->try_emplace(0, false));
    REQUIRE_THROWS_AS(r->try_emplace(100, true), injected_error);
    CONQ_REQUIRE_EQ(r->size_approx(), 1);
    for (int i = 1; i < static_cast<int>(nominal); ++i) {
        CONQ_REQUIRE(r->try_emplace(i, false));
        // (On a full ring a single producer may return false without
        // constructing anything, so the throw is tried only with room left.)
        if (r->size_approx() < nominal) {
            REQUIRE_THROWS_AS(r->try_emplace(100 + i, true), injected_error);
        }
    }
    CONQ_REQUIRE_EQ(r->size_approx(), nominal);
    if constexpr (C::drops) {
        // Full, with drop_oldest: a push that throws must not have dropped
        // the oldest item to make room for an item that never came.
        const auto d = r->dropped();
        try {
            (void)r->try_emplace(300, true);
        } catch (const injected_error&) {
        }
        CONQ_CHECK_EQ(r->dropped(), d);
        CONQ_CHECK_EQ(r->size_approx(), nominal);
    }
    for (int i = 0; i < static_cast<int>(nominal); ++i) {
        CONQ_REQUIRE_EQ(r->try_pop().value().value, i);
        REQUIRE_THROWS_AS(r->try_emplace(200 + i, true), injected_error);
    }
    CONQ_REQUIRE_FALSE(r->try_pop().has_value());
    CONQ_REQUIRE(r->try_emplace(7, false));  // and it still works
    CONQ_REQUIRE_EQ(r->pop().value().value, 7);
}

/// Lvalues are copied once, rvalues moved and never copied, try_emplace
/// builds in place; pops never copy; a failed push leaves its argument as
/// it was (not moved from).
template <class C>
void copy_and_move() {
    counted::reset();
    {
        auto r = make_ring<ring_t<C, counted>>(nominal);
        long c0 = counted::copies, m0 = counted::moves;
        auto copies = [&] { return counted::copies - c0; };
        auto moves = [&] { return counted::moves - m0; };
        auto mark = [&] {
            c0 = counted::copies;
            m0 = counted::moves;
        };

        counted a(1);
        mark();
        CONQ_REQUIRE(r->try_push(a));
        CONQ_CHECK_EQ(copies(), 1);
        CONQ_CHECK_EQ(moves(), 0);
        CONQ_REQUIRE_EQ(a.get(), 1);
        mark();
        CONQ_REQUIRE(r->try_push(std::move(a)));
        CONQ_CHECK_EQ(copies(), 0);
        CONQ_CHECK_EQ(moves(), 1);
        mark();
        CONQ_REQUIRE(r->try_emplace(u64{2}));
        CONQ_CHECK_EQ(copies(), 0);
        CONQ_CHECK_EQ(moves(), 0);
        counted b(3);
        mark();
        CONQ_REQUIRE(r->push(b));
        CONQ_REQUIRE(r->push_for(b, 0ms));
        CONQ_CHECK_EQ(copies(), 2);
        CONQ_REQUIRE_EQ(b.get(), 3);
        mark();
        CONQ_REQUIRE(r->push(counted(4)));
        CONQ_REQUIRE(r->push_for(counted(5), 0ms));
        CONQ_CHECK_EQ(copies(), 0);
        CONQ_REQUIRE_EQ(r->size_approx(), 7);

        mark();
        CONQ_REQUIRE_EQ(r->try_pop(), some(counted(1)));
        counted out;
        CONQ_REQUIRE(r->try_pop(out));
        CONQ_REQUIRE_EQ(out.get(), 1);
        CONQ_REQUIRE_EQ(r->pop(), some(counted(2)));
        CONQ_REQUIRE_EQ(r->pop_for(0ms), some(counted(3)));
        std::array<counted, 4> outs;
        CONQ_REQUIRE_EQ(r->try_pop_n(outs.data(), outs.size()), 3);
        CONQ_REQUIRE_EQ(outs[0].get(), 3);
        CONQ_REQUIRE_EQ(outs[1].get(), 4);
        CONQ_REQUIRE_EQ(outs[2].get(), 5);
        CONQ_CHECK_EQ(copies(), 0);
        CONQ_REQUIRE_EQ(r->size_approx(), 0);

        if constexpr (!C::drops) {
            for (u64 i = 0; i < nominal; ++i) CONQ_REQUIRE(r->try_emplace(100 + i));
            counted x(42);
            mark();
            CONQ_REQUIRE_FALSE(r->try_push(std::move(x)));
            CONQ_REQUIRE_FALSE(r->push_for(std::move(x), 1ms));
            if constexpr (C::rejects) CONQ_REQUIRE_FALSE(r->push(std::move(x)));
            CONQ_REQUIRE_EQ(x.get(), 42);
            CONQ_CHECK_EQ(moves(), 0);
            CONQ_CHECK_EQ(copies(), 0);
        }
        r->close();
        counted y(43);
        mark();
        CONQ_REQUIRE_FALSE(r->try_push(std::move(y)));
        CONQ_REQUIRE_FALSE(r->push(std::move(y)));
        CONQ_REQUIRE_FALSE(r->push_for(std::move(y), 1h));
        CONQ_REQUIRE_EQ(y.get(), 43);
        CONQ_CHECK_EQ(moves(), 0);
    }
    CONQ_CHECK_EQ(counted::errors, 0);
    CONQ_CHECK_EQ(counted::live, 0);
    CONQ_CHECK_EQ(counted::constructions, counted::destructions);
}

/// The ring owns exactly the items inside it: live objects track
/// size_approx, and destroying a ring destroys what it still holds, once.
template <class C>
void lifetime() {
    counted::reset();
    {
        auto r = make_ring<ring_t<C, counted>>(nominal);
        CONQ_CHECK_EQ(counted::live, 0);  // slots hold no objects until pushed
        for (u64 i = 0; i < 5; ++i) CONQ_REQUIRE(r->try_emplace(i));
        CONQ_CHECK_EQ(counted::live, 5);
        { auto v = r->try_pop(); }
        { auto v = r->pop(); }
        CONQ_CHECK_EQ(counted::live, 3);
    }
    CONQ_CHECK_EQ(counted::errors, 0);
    CONQ_CHECK_EQ(counted::live, 0);
    CONQ_CHECK_EQ(counted::constructions, counted::destructions);

    counted::reset();
    {
        // Full and wrapped when destroyed.
        auto r = make_ring<ring_t<C, counted>>(nominal);
        std::array<counted, nominal> outs;
        for (u64 i = 0; i < nominal; ++i) CONQ_REQUIRE(r->try_emplace(i));
        CONQ_REQUIRE_EQ(r->try_pop_n(outs.data(), 5), 5);
        std::vector<counted> more;
        for (u64 i = 0; i < 5; ++i) more.emplace_back(10 + i);
        CONQ_REQUIRE_EQ(r->try_push_n(more.begin(), more.end()), 5);
        more.clear();
        CONQ_CHECK_EQ(counted::live, static_cast<long>(nominal + outs.size()));
        r->close();
        CONQ_REQUIRE_EQ(r->pop(), some(counted(5)));
        CONQ_CHECK_EQ(counted::live, static_cast<long>(nominal - 1 + outs.size()));
    }
    CONQ_CHECK_EQ(counted::errors, 0);
    CONQ_CHECK_EQ(counted::live, 0);
    CONQ_CHECK_EQ(counted::constructions, counted::destructions);

    if constexpr (C::drops) {
        counted::reset();
        {
            auto r = make_ring<ring_t<C, counted>>(nominal);
            for (u64 i = 0; i < 3 * nominal; ++i) CONQ_REQUIRE(r->try_emplace(i));
            CONQ_CHECK_EQ(counted::live, static_cast<long>(nominal));  // dropped ones destroyed
            CONQ_CHECK_EQ(r->dropped(), 2 * nominal);
        }
        CONQ_CHECK_EQ(counted::errors, 0);
        CONQ_CHECK_EQ(counted::live, 0);
        CONQ_CHECK_EQ(counted::constructions, counted::destructions);
    }
}

// ------------------------------------------------------------------- close

/// After close(): pushes of every kind fail (arguments intact), pops drain
/// what was inside and then return nullopt without waiting; idempotent.
template <class C>
void close_drains() {
    watchdog dog("close_drains<" + type_name<C>() + ">", std::chrono::seconds(30));
    {
        auto r = make_ring<ring_t<C, u64>>(nominal);
        for (u64 i = 1; i <= 4; ++i) CONQ_REQUIRE(r->try_push(i));
        r->close();
        CONQ_REQUIRE(r->closed());
        CONQ_REQUIRE_FALSE(r->try_push(u64{10}));
        CONQ_REQUIRE_FALSE(r->try_emplace(u64{11}));
        CONQ_REQUIRE_FALSE(r->push(u64{12}));
        CONQ_REQUIRE_FALSE(r->push_for(u64{13}, 1h));
        std::vector<u64> in{14, 15};
        CONQ_REQUIRE_EQ(r->try_push_n(in.begin(), in.end()), 0);
        CONQ_REQUIRE_EQ(r->size_approx(), 4);
        r->close();  // idempotent
        CONQ_REQUIRE(r->closed());
        CONQ_REQUIRE_EQ(r->pop(), some(u64{1}));
        CONQ_REQUIRE_EQ(r->try_pop(), some(u64{2}));
        CONQ_REQUIRE_EQ(r->pop_for(1h), some(u64{3}));
        std::array<u64, 4> out{};
        CONQ_REQUIRE_EQ(r->try_pop_n(out.data(), out.size()), 1);
        CONQ_REQUIRE_EQ(out[0], 4);
        // Drained: nullopt at once, however long the call may wait.
        CONQ_REQUIRE_FALSE(r->pop().has_value());
        CONQ_REQUIRE_FALSE(r->pop_for(1h).has_value());
        CONQ_REQUIRE_FALSE(r->try_pop().has_value());
        CONQ_REQUIRE_EQ(r->try_pop_n(out.data(), out.size()), 0);
        CONQ_REQUIRE_FALSE(r->pop().has_value());  // and again
        CONQ_REQUIRE(r->closed());
    }
    {
        // Closing an empty ring: pop returns at once.
        auto r = make_ring<ring_t<C, u64>>(nominal);
        r->close();
        CONQ_REQUIRE_FALSE(r->pop().has_value());
        CONQ_REQUIRE_FALSE(r->pop_for(1h).has_value());
        CONQ_REQUIRE_EQ(r->size_approx(), 0);
    }
    {
        // Closing a full ring: push fails at once instead of waiting.
        auto r = make_ring<ring_t<C, u64>>(nominal);
        for (u64 i = 0; i < nominal; ++i) CONQ_REQUIRE(r->try_push(i));
        r->close();
        CONQ_REQUIRE_FALSE(r->push(u64{99}));
        CONQ_REQUIRE_FALSE(r->push_for(u64{99}, 1h));
        if constexpr (C::drops) CONQ_REQUIRE_EQ(r->dropped(), 0);  // a closed ring drops nothing
        for (u64 i = 0; i < nominal; ++i) CONQ_REQUIRE_EQ(r->pop(), some(i));
        CONQ_REQUIRE_FALSE(r->pop().has_value());
    }
}

// ---------------------------------------------------------------- timeouts

/// push_for / pop_for give up when the time is up (never sooner); zero,
/// negative and huge durations; durations of any representation.
template <class C>
void timeouts() {
    using clock = std::chrono::steady_clock;
    watchdog dog("timeouts<" + type_name<C>() + ">", std::chrono::seconds(30));
    auto r = make_ring<ring_t<C, u64>>(nominal);

    auto t0 = clock::now();
    CONQ_REQUIRE_FALSE(r->pop_for(20ms).has_value());
    CONQ_REQUIRE(clock::now() - t0 >= 20ms);
    t0 = clock::now();
    CONQ_REQUIRE_FALSE(r->pop_for(std::chrono::duration<double, std::milli>(20.5)).has_value());
    CONQ_REQUIRE(clock::now() - t0 >= 20ms);
    CONQ_REQUIRE_FALSE(r->pop_for(0ms).has_value());
    CONQ_REQUIRE_FALSE(r->pop_for(-5ms).has_value());
    CONQ_REQUIRE_FALSE(r->pop_for(std::chrono::nanoseconds::min()).has_value());

    // An item that is there is taken whatever the timeout.
    CONQ_REQUIRE(r->push_for(u64{1}, 0ms));
    CONQ_REQUIRE(r->push_for(u64{2}, -5ms));
    CONQ_REQUIRE(r->push_for(u64{3}, std::chrono::nanoseconds::max()));
    CONQ_REQUIRE(r->push_for(u64{4}, std::chrono::hours::max()));
    CONQ_REQUIRE_EQ(r->pop_for(0ms), some(u64{1}));
    CONQ_REQUIRE_EQ(r->pop_for(-5ms), some(u64{2}));
    CONQ_REQUIRE_EQ(r->pop_for(std::chrono::nanoseconds::max()), some(u64{3}));
    CONQ_REQUIRE_EQ(r->pop_for(std::chrono::hours::max()), some(u64{4}));

    if constexpr (!C::drops) {
        for (u64 i = 0; i < nominal; ++i) CONQ_REQUIRE(r->try_push(i));
        const u64 v = 77;
        t0 = clock::now();
        CONQ_REQUIRE_FALSE(r->push_for(v, 20ms));
        if constexpr (C::blocks) CONQ_REQUIRE(clock::now() - t0 >= 20ms);
        CONQ_REQUIRE_FALSE(r->push_for(u64{78}, 0ms));
        CONQ_REQUIRE_FALSE(r->push_for(u64{78}, -1ms));
        CONQ_REQUIRE_FALSE(r->push_for(u64{78}, std::chrono::nanoseconds::min()));
        CONQ_REQUIRE_EQ(r->size_approx(), nominal);
        for (u64 i = 0; i < nominal; ++i) CONQ_REQUIRE_EQ(r->pop_for(1ms), some(i));
    }
    CONQ_REQUIRE_EQ(r->size_approx(), 0);
}

/// overflow reject: push and push_for never wait.
template <class C>
void reject_never_waits() {
    static_assert(C::rejects);
    watchdog dog("reject_never_waits<" + type_name<C>() + ">", std::chrono::seconds(30));
    auto r = make_ring<ring_t<C, u64>>(nominal);
    for (u64 i = 0; i < nominal; ++i) CONQ_REQUIRE(r->push(i));
    const u64 v = 100;
    CONQ_REQUIRE_FALSE(r->push(v));
    CONQ_REQUIRE_FALSE(r->push(u64{101}));
    CONQ_REQUIRE_FALSE(r->push_for(u64{102}, 1h));
    CONQ_REQUIRE_EQ(r->size_approx(), nominal);
    CONQ_REQUIRE_EQ(r->pop(), some(u64{0}));
    CONQ_REQUIRE(r->push(u64{103}));  // room again
    for (u64 i = 1; i < nominal; ++i) CONQ_REQUIRE_EQ(r->pop(), some(i));
    CONQ_REQUIRE_EQ(r->pop(), some(u64{103}));
}

/// overflow drop_oldest: pushes never fail for lack of room and never wait;
/// the newest capacity() items stay, in order; dropped() counts the rest.
template <class C>
void drop_oldest_keeps_newest() {
    static_assert(C::drops);
    watchdog dog("drop_oldest_keeps_newest<" + type_name<C>() + ">", std::chrono::seconds(30));
    auto r = make_ring<ring_t<C, u64>>(nominal);
    CONQ_REQUIRE_EQ(r->dropped(), 0);
    for (u64 i = 1; i <= 20; ++i) CONQ_REQUIRE(r->try_push(i));
    CONQ_REQUIRE_EQ(r->dropped(), 12);
    CONQ_REQUIRE_EQ(r->size_approx(), nominal);
    for (u64 i = 13; i <= 20; ++i) CONQ_REQUIRE_EQ(r->try_pop(), some(i));
    CONQ_REQUIRE_FALSE(r->try_pop().has_value());

    // Every kind of push, on a full ring.
    for (u64 i = 0; i < nominal; ++i) CONQ_REQUIRE(r->push(i));
    CONQ_REQUIRE(r->push(u64{100}));
    CONQ_REQUIRE(r->push_for(u64{101}, 1h));
    CONQ_REQUIRE(r->push_for(u64{102}, 0ms));
    CONQ_REQUIRE(r->try_emplace(u64{103}));
    const u64 lv = 104;
    CONQ_REQUIRE(r->try_push(lv));
    CONQ_REQUIRE_EQ(r->dropped(), 12 + 5);
    std::vector<u64> in;
    for (u64 i = 200; i < 210; ++i) in.push_back(i);
    CONQ_REQUIRE_EQ(r->try_push_n(in.begin(), in.end()), in.size());
    CONQ_REQUIRE_EQ(r->dropped(), 12 + 5 + 10);
    std::array<u64, 16> out{};
    CONQ_REQUIRE_EQ(r->try_pop_n(out.data(), out.size()), nominal);
    for (u64 i = 0; i < nominal; ++i) CONQ_REQUIRE_EQ(out[i], 202 + i);

    // Half full: nothing is dropped.
    for (u64 i = 0; i < nominal / 2; ++i) CONQ_REQUIRE(r->try_push(i));
    CONQ_REQUIRE_EQ(r->dropped(), 27);

    // Closed: pushes fail and drop nothing.
    r->close();
    CONQ_REQUIRE_FALSE(r->try_push(u64{1}));
    CONQ_REQUIRE_FALSE(r->push(u64{1}));
    CONQ_REQUIRE_EQ(r->try_push_n(in.begin(), in.end()), 0);
    CONQ_REQUIRE_EQ(r->dropped(), 27);
    for (u64 i = 0; i < nominal / 2; ++i) CONQ_REQUIRE_EQ(r->pop(), some(i));
    CONQ_REQUIRE_FALSE(r->pop().has_value());
}

// ---------------------------------------------------------- small capacities

/// Runtime capacities are rounded up to a power of two and every one,
/// including 1, keeps the contract. 0 and more than 2^40 are errors.
template <class C>
void runtime_capacities() {
    static_assert(!C::inline_storage);
    using R = ring_t<C, u64>;
    REQUIRE_THROWS_AS(R(0), std::invalid_argument);
    REQUIRE_THROWS_AS(R((std::size_t{1} << 40) + 1), std::length_error);
    const std::pair<std::size_t, std::size_t> cases[] = {
        {1, 1}, {2, 2}, {3, 4}, {5, 8}, {8, 8}, {9, 16}, {1000, 1024}};
    for (auto [asked, rounded] : cases) {
        INFO("capacity " << asked);
        R r(asked);
        CONQ_REQUIRE_EQ(r.capacity(), rounded);
        u64 next = 0;
        for (int lap = 0; lap < 3; ++lap) {
            for (std::size_t i = 0; i < rounded; ++i) CONQ_REQUIRE(r.try_push(next + i));
            CONQ_REQUIRE_EQ(r.size_approx(), rounded);
            if constexpr (C::drops) {
                const auto d = r.dropped();
                CONQ_REQUIRE(r.try_push(u64{next + rounded}));
                CONQ_REQUIRE_EQ(r.dropped(), d + 1);
                ++next;  // the oldest is gone
                for (std::size_t i = 0; i < rounded; ++i) {
                    CONQ_REQUIRE_EQ(r.try_pop(), some(next + i));
                }
                next += rounded;
            } else {
                CONQ_REQUIRE_FALSE(r.try_push(u64{12345}));
                std::vector<u64> more{1, 2};
                CONQ_REQUIRE_EQ(r.try_push_n(more.begin(), more.end()), 0);
                for (std::size_t i = 0; i < rounded; ++i) {
                    CONQ_REQUIRE_EQ(r.try_pop(), some(next + i));
                }
                next += rounded;
            }
            CONQ_REQUIRE_FALSE(r.try_pop().has_value());
        }
        // Batches larger than the ring.
        std::vector<u64> in{7, 8, 9};
        std::array<u64, 4> out{};
        const std::size_t n = r.try_push_n(in.begin(), in.end());
        if constexpr (C::drops) {
            CONQ_REQUIRE_EQ(n, 3);
        } else {
            CONQ_REQUIRE_EQ(n, std::min<std::size_t>(3, rounded));
        }
        // drop_oldest keeps the last ones of the batch, the others the first.
        const std::size_t kept = std::min<std::size_t>(3, rounded);
        const u64 first = C::drops ? 10 - kept : 7;
        CONQ_REQUIRE_EQ(r.try_pop_n(out.data(), out.size()), kept);
        for (std::size_t i = 0; i < kept; ++i) CONQ_REQUIRE_EQ(out[i], first + i);
    }
}

// ----------------------------------------------------------- exceptions

/// For configurations where T's copy and move may throw (one producer and
/// one consumer): a throwing push leaves the ring unchanged and its
/// argument intact; a throwing pop leaves the item in the ring for the next
/// pop; a throwing batch keeps what went before the throw.
template <class C>
void strong_guarantee() {
    using R = ring_t<C, may_throw>;
    may_throw::disarm();
    may_throw::live = 0;
    {
        auto r = make_ring<R>(nominal);
        CONQ_REQUIRE(r->try_emplace(1));
        CONQ_REQUIRE(r->try_emplace(2));

        may_throw a(3);
        may_throw::arm(0);
        REQUIRE_THROWS_AS(r->try_push(std::move(a)), injected_error);
        may_throw::arm(0);
        REQUIRE_THROWS_AS(r->try_push(a), injected_error);
        may_throw::arm(0);
        REQUIRE_THROWS_AS(r->push(std::move(a)), injected_error);
        may_throw::arm(0);
        REQUIRE_THROWS_AS(r->push_for(std::move(a), 1ms), injected_error);
        may_throw::disarm();
        REQUIRE_THROWS_AS(r->try_emplace(9, true), injected_error);
        CONQ_REQUIRE_EQ(a.value, 3);
        CONQ_REQUIRE_EQ(r->size_approx(), 2);
        CONQ_REQUIRE_EQ(may_throw::live, 3);

        CONQ_REQUIRE(r->try_push(std::move(a)));  // the ring still works: 1 2 3
        CONQ_REQUIRE_EQ(r->size_approx(), 3);

        may_throw::arm(0);
        REQUIRE_THROWS_AS(r->try_pop(), injected_error);
        may_throw::disarm();
        CONQ_REQUIRE_EQ(r->size_approx(), 3);
        auto v = r->try_pop();
        CONQ_REQUIRE(v.has_value());
        CONQ_REQUIRE_EQ(v->value, 1);

        may_throw out(0);
        may_throw::arm(0);
        REQUIRE_THROWS_AS(r->try_pop(out), injected_error);
        may_throw::disarm();
        CONQ_REQUIRE_EQ(out.value, 0);
        CONQ_REQUIRE_EQ(r->size_approx(), 2);
        CONQ_REQUIRE(r->try_pop(out));
        CONQ_REQUIRE_EQ(out.value, 2);

        may_throw::arm(0);
        REQUIRE_THROWS_AS(r->pop(), injected_error);
        may_throw::arm(0);
        REQUIRE_THROWS_AS(r->pop_for(1h), injected_error);
        may_throw::disarm();
        v = r->pop();
        CONQ_REQUIRE(v.has_value());
        CONQ_REQUIRE_EQ(v->value, 3);
        CONQ_REQUIRE_EQ(r->size_approx(), 0);

        // Batch in: the third move throws.
        std::vector<may_throw> batch;
        batch.reserve(5);
        for (int i = 10; i < 15; ++i) batch.emplace_back(i);
        may_throw::arm(2);
        REQUIRE_THROWS_AS(r->try_push_n(batch.begin(), batch.end()), injected_error);
        may_throw::disarm();
        CONQ_REQUIRE_EQ(r->size_approx(), 2);
        CONQ_REQUIRE_EQ(batch[0].value, -1);  // moved in
        CONQ_REQUIRE_EQ(batch[1].value, -1);
        CONQ_REQUIRE_EQ(batch[2].value, 12);  // untouched
        CONQ_REQUIRE_EQ(batch[4].value, 14);
        CONQ_REQUIRE_EQ(r->try_push_n(batch.begin() + 2, batch.end()), 3);  // 10 .. 14

        // Batch out: the second assignment throws.
        std::vector<may_throw> outs;
        outs.reserve(5);
        for (int i = 0; i < 5; ++i) outs.emplace_back(0);
        may_throw::arm(1);
        REQUIRE_THROWS_AS(r->try_pop_n(outs.begin(), outs.size()), injected_error);
        may_throw::disarm();
        CONQ_REQUIRE_EQ(outs[0].value, 10);
        CONQ_REQUIRE_EQ(outs[1].value, 0);
        CONQ_REQUIRE_EQ(r->size_approx(), 4);
        CONQ_REQUIRE_EQ(r->try_pop_n(outs.begin(), outs.size()), 4);
        for (int i = 0; i < 4; ++i) {
            CONQ_REQUIRE_EQ(outs[static_cast<std::size_t>(i)].value, 11 + i);
        }
        CONQ_REQUIRE_EQ(r->size_approx(), 0);

        // A throw with the ring full and wrapped changes nothing either.
        for (int i = 0; i < static_cast<int>(nominal); ++i) CONQ_REQUIRE(r->try_emplace(100 + i));
        CONQ_REQUIRE_EQ(r->try_pop().value().value, 100);
        may_throw b(200);
        may_throw::arm(0);
        REQUIRE_THROWS_AS(r->try_push(std::move(b)), injected_error);
        may_throw::disarm();
        CONQ_REQUIRE(r->try_push(std::move(b)));
        CONQ_REQUIRE_FALSE(r->try_emplace(300));  // full
        for (int i = 1; i < static_cast<int>(nominal); ++i) {
            CONQ_REQUIRE_EQ(r->pop().value().value, 100 + i);
        }
        CONQ_REQUIRE_EQ(r->pop().value().value, 200);
    }
    CONQ_REQUIRE_EQ(may_throw::live, 0);
}

}  // namespace conq_test::contract

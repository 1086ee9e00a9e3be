// Unit tests of conq/priority_queue.hpp: the single-threaded contract in
// every mode (strict, strict + stable, relaxed), max- and min-first, without
// a capacity, with capacity<N> and with a runtime capacity, under the block
// and reject overflow policies and every wait policy.
//
// What they prove: strict pops come out exactly as from std::priority_queue
// and relaxed pops return every element exactly once; stable keeps push
// order among equal keys; every call succeeds and fails when it should;
// capacities are exact; close() fails pushes and drains pops; move-only
// elements work and a failed push (closed, full, or meeting close() while
// it moves its argument in) leaves its argument as it was; a throwing
// try_emplace changes nothing; the queue owns exactly the elements inside
// it, copies only lvalues and never leaks; a bounded queue allocates
// nothing after construction.
#include <conq/priority_queue.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <stdexcept>
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
using conq_test::counted;
using u64 = std::uint64_t;

// ----------------------------------------------------------- configurations

using configs = std::tuple<                                      //
    conq::priority_queue<int>,                                   // strict, largest first
    conq::priority_queue<int, std::greater<>>,                   // smallest first
    conq::priority_queue<int, std::less<>, conq::stable>,        //
    conq::priority_queue<int, std::less<>, conq::capacity<64>>,  //
    conq::priority_queue<int, std::less<>, conq::blocking>,      //
    conq::priority_queue<int, std::less<>, conq::relaxed<>>,     //
    conq::priority_queue<int, std::less<>, conq::relaxed<2, 1>, conq::reject, conq::capacity<16>>,
    conq::priority_queue<int, std::greater<>, conq::stable, conq::mpsc, conq::capacity<8>,
                         conq::reject, conq::yield>,
    conq::priority_queue<int, std::greater<>, conq::relaxed<1, 4>, conq::spmc, conq::spin>>;

/// What a test needs to know about a configuration.
template <class Q>
struct info {
    using set = typename Q::policies;
    using compare = typename Q::value_compare;
    static constexpr bool relaxed = !std::is_same_v<typename set::priority_mode, conq::strict>;
    static constexpr bool stable = set::is_stable;
    static constexpr bool inline_storage = set::inline_storage;
    static constexpr bool rejects = std::is_same_v<typename set::overflow, conq::reject>;
};

/// The same configuration for another element type and comparator.
template <class Q, class U, class Cmp>
struct rebind;
template <class U, class Cmp, class T, class C, class... Ps>
struct rebind<conq::priority_queue<T, C, Ps...>, U, Cmp> {
    using type = conq::priority_queue<U, Cmp, Ps...>;
};

/// Orders A by Key(a) as Compare orders the keys.
template <class Compare, class Key>
struct compare_by {
    template <class A>
    bool operator()(const A& a, const A& b) const {
        return Compare{}(Key{}(a), Key{}(b));
    }
};

/// Q's configuration for elements U ordered by Key, in Q's direction.
template <class Q, class U, class Key>
using queue_of = typename rebind<Q, U, compare_by<typename Q::value_compare, Key>>::type;

/// A key and an identity; the queues order it by key only.
struct keyed {
    keyed(int k, int i) noexcept : key(k), id(i) {}
    int key;
    int id;
};
struct key_of {
    int operator()(const keyed& k) const noexcept { return k.key; }
};
struct pointee {
    int operator()(const std::unique_ptr<int>& p) const noexcept { return *p; }
};
struct count_of {
    u64 operator()(const counted& c) const noexcept { return c.get(); }
};
struct value_of {
    template <class A>
    int operator()(const A& a) const noexcept {
        return a.value;
    }
};

/// Q as configured: capacity<N> if it has one, else unbounded. Queues are
/// neither copyable nor movable, hence the unique_ptr.
template <class Q>
std::unique_ptr<Q> make_default() {
    return std::make_unique<Q>();
}
/// A bounded Q: capacity<N> if it has one, else `runtime` given to the constructor.
template <class Q>
std::unique_ptr<Q> make_bounded(std::size_t runtime) {
    if constexpr (Q::policies::inline_storage) {
        (void)runtime;
        return std::make_unique<Q>();
    } else {
        return std::make_unique<Q>(runtime);
    }
}

/// The element of [first, last) that comes out first under Compare (the first of
/// equal ones, as a stable queue would).
template <class Compare, class It, class Key>
It best_of(It first, It last, Key key) {
    It best = first;
    for (It it = first; it != last; ++it) {
        if (Compare{}(key(*best), key(*it))) best = it;
    }
    return best;
}

// ------------------------------------------------------------ the int model

/// Every call, in a long deterministic random sequence, against a model:
/// strict pops must equal std::priority_queue's top, relaxed pops must be
/// elements still inside (each at most once, and none missing: a pop from a
/// non-empty queue never comes back empty). Pushes fail exactly when the
/// model is at capacity. size_approx equals the model's size after every
/// step (exact with one thread).
template <class Q>
void model_check(Q& q, std::uint32_t seed, int steps) {
    using I = info<Q>;
    using compare = typename I::compare;
    std::mt19937 rng(seed);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    // Mostly few distinct keys (ties), sometimes spread out.
    auto key = [&] { return pick(4) == 0 ? pick(1'000'000) - 500'000 : pick(40); };

    std::priority_queue<int, std::vector<int>, compare> order;  // strict: what comes next
    std::multiset<int> inside;                                  // both: what is inside
    const std::size_t cap = q.capacity();
    auto pushed = [&](int v) {
        inside.insert(v);
        if constexpr (!I::relaxed) order.push(v);
    };
    auto popped = [&](int v) {
        if constexpr (!I::relaxed) {
            CONQ_REQUIRE_FALSE(order.empty());
            CONQ_REQUIRE_EQ(v, order.top());
            order.pop();
        }
        const auto it = inside.find(v);
        CONQ_REQUIRE(it != inside.end());
        inside.erase(it);
    };

    std::vector<int> batch;
    std::array<int, 6> outs{};
    for (int step = 0; step < steps; ++step) {
        // Grow in the first half, shrink in the second: sizes range widely.
        const bool push_turn = pick(100) < (step < steps / 2 ? 60 : 40);
        const std::size_t size = inside.size();
        if (push_turn && size == cap) {
            const int v = key();
            CONQ_REQUIRE_FALSE(q.try_push(v));
            CONQ_REQUIRE_FALSE(q.try_push(int{v}));
            CONQ_REQUIRE_FALSE(q.try_emplace(v));
            CONQ_REQUIRE_FALSE(q.push_for(int{v}, 0ms));
            if constexpr (I::rejects) CONQ_REQUIRE_FALSE(q.push(int{v}));
            batch.assign({v, v + 1});
            CONQ_REQUIRE_EQ(q.try_push_n(batch.begin(), batch.end()), 0);
        } else if (push_turn) {
            const int v = key();
            switch (pick(7)) {
                case 0: {
                    const int lv = v;
                    CONQ_REQUIRE(q.try_push(lv));
                    pushed(v);
                    break;
                }
                case 1:
                    CONQ_REQUIRE(q.try_push(int{v}));
                    pushed(v);
                    break;
                case 2:
                    CONQ_REQUIRE(q.try_emplace(v));
                    pushed(v);
                    break;
                case 3:
                    CONQ_REQUIRE(q.push(int{v}));
                    pushed(v);
                    break;
                case 4: {
                    const int lv = v;
                    CONQ_REQUIRE(q.push(lv));
                    pushed(v);
                    break;
                }
                case 5:
                    CONQ_REQUIRE(q.push_for(int{v}, 1h));
                    pushed(v);
                    break;
                default: {
                    batch.clear();
                    const int len = 1 + pick(5);
                    for (int i = 0; i < len; ++i) batch.push_back(key());
                    // As many as fit, the first ones of the range.
                    const std::size_t n = q.try_push_n(batch.begin(), batch.end());
                    CONQ_REQUIRE_EQ(n, std::min(batch.size(), cap - size));
                    for (std::size_t i = 0; i < n; ++i) pushed(batch[i]);
                    break;
                }
            }
        } else if (size == 0) {
            CONQ_REQUIRE_FALSE(q.try_pop().has_value());
            int out = 12345;
            CONQ_REQUIRE_FALSE(q.try_pop(out));
            CONQ_REQUIRE_EQ(out, 12345);
            CONQ_REQUIRE_FALSE(q.pop_for(0ms).has_value());
            CONQ_REQUIRE_EQ(q.try_pop_n(outs.data(), outs.size()), 0);
        } else {
            switch (pick(5)) {
                case 0: {
                    const auto v = q.try_pop();
                    CONQ_REQUIRE(v.has_value());
                    popped(*v);
                    break;
                }
                case 1: {
                    int out = 0;
                    CONQ_REQUIRE(q.try_pop(out));
                    popped(out);
                    break;
                }
                case 2: {
                    const auto v = q.pop();
                    CONQ_REQUIRE(v.has_value());
                    popped(*v);
                    break;
                }
                case 3: {
                    const auto v = q.pop_for(1h);
                    CONQ_REQUIRE(v.has_value());
                    popped(*v);
                    break;
                }
                default: {
                    const std::size_t max = 1 + static_cast<std::size_t>(pick(6));
                    const std::size_t n = q.try_pop_n(outs.data(), max);
                    CONQ_REQUIRE_EQ(n, std::min(max, size));
                    for (std::size_t i = 0; i < n; ++i) popped(outs[i]);
                    break;
                }
            }
        }
        CONQ_REQUIRE_EQ(q.size_approx(), inside.size());
    }
    while (!inside.empty()) {
        const auto v = q.try_pop();
        CONQ_REQUIRE(v.has_value());
        popped(*v);
    }
    CONQ_REQUIRE_FALSE(q.try_pop().has_value());
    CONQ_REQUIRE_EQ(q.size_approx(), 0);
}

// ------------------------------------------------------------------ ties

/// keyed elements with few distinct keys, pushed and popped in a random
/// interleaving. Stable: each pop is exactly the best key's oldest element.
/// Strict: its key is the best key inside. Relaxed: it is an element still
/// inside, with its own key (nothing mixed up between elements).
template <class Q>
void ties_check(std::uint32_t seed, int steps) {
    using I = info<Q>;
    using K = queue_of<Q, keyed, key_of>;
    using compare = typename I::compare;
    auto q = make_default<K>();
    std::mt19937 rng(seed);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    std::map<int, int> inside;  // id -> key; ids grow with push order
    int next_id = 0;
    const std::size_t cap = q->capacity();
    for (int step = 0; step < steps; ++step) {
        const bool push_turn = pick(100) < (step < steps / 2 ? 60 : 40);
        if (push_turn && inside.size() < cap) {
            const int k = pick(3);
            const int id = next_id++;
            switch (pick(3)) {
                case 0: CONQ_REQUIRE(q->try_push(keyed(k, id))); break;
                case 1: CONQ_REQUIRE(q->try_emplace(k, id)); break;
                default: {
                    const keyed lv(k, id);
                    CONQ_REQUIRE(q->push(lv));
                    break;
                }
            }
            inside.emplace(id, k);
        } else if (!inside.empty()) {
            const auto got = q->try_pop();
            CONQ_REQUIRE(got.has_value());
            const auto it = inside.find(got->id);
            CONQ_REQUIRE(it != inside.end());
            CONQ_REQUIRE_EQ(got->key, it->second);
            if constexpr (!I::relaxed) {
                // The first (oldest) element with the best key.
                const auto best = best_of<compare>(inside.begin(), inside.end(),
                                                   [](const auto& e) { return e.second; });
                CONQ_REQUIRE_EQ(got->key, best->second);
                if constexpr (I::stable) CONQ_REQUIRE_EQ(got->id, best->first);
            }
            inside.erase(it);
        } else {
            CONQ_REQUIRE_FALSE(q->try_pop().has_value());
        }
    }
}

// ----------------------------------------------------------- element types

/// A move-only value whose move constructor runs a hook once when armed:
/// it stands for another thread that acts while a push is moving its
/// argument into the queue.
struct hooked {
    static inline void (*hook)(void*) = nullptr;
    static inline void* hook_arg = nullptr;

    explicit hooked(int v) : p(std::make_unique<int>(v)) {}
    hooked(hooked&& o) noexcept : p(std::move(o.p)) {
        if (hook != nullptr) {
            auto* h = hook;
            hook = nullptr;
            h(hook_arg);
        }
    }
    hooked& operator=(hooked&&) noexcept = default;
    ~hooked() = default;

    std::unique_ptr<int> p;
};
struct hooked_key {
    int operator()(const hooked& h) const noexcept { return *h.p; }
};

/// An order chosen at run time, given to the constructor.
struct runtime_order {
    bool smallest_first = false;
    bool operator()(int a, int b) const noexcept { return smallest_first ? b < a : a < b; }
};

}  // namespace

// ================================================================== tests

TEMPLATE_LIST_TEST_CASE("priority_queue: interface, copy and move rules", "[priority_queue]",
                        configs) {
    using Q = TestType;
    using P = queue_of<Q, std::unique_ptr<int>, pointee>;
    STATIC_REQUIRE(conq::concurrent_queue<Q>);
    STATIC_REQUIRE(conq::concurrent_queue<P>);
    STATIC_REQUIRE(conq::concurrent_queue<queue_of<Q, counted, count_of>>);
    STATIC_REQUIRE(conq::concurrent_queue<queue_of<Q, keyed, key_of>>);
    STATIC_REQUIRE(std::is_same_v<typename Q::value_type, int>);
    STATIC_REQUIRE(std::is_same_v<typename P::value_type, std::unique_ptr<int>>);
    STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<Q>);
    STATIC_REQUIRE_FALSE(std::is_move_constructible_v<Q>);
    STATIC_REQUIRE_FALSE(std::is_copy_assignable_v<Q>);
    STATIC_REQUIRE_FALSE(std::is_move_assignable_v<Q>);
    STATIC_REQUIRE(std::is_default_constructible_v<Q>);
    if constexpr (info<Q>::inline_storage) {
        STATIC_REQUIRE_FALSE(std::is_constructible_v<Q, std::size_t>);
    } else {
        STATIC_REQUIRE(std::is_constructible_v<Q, std::size_t>);
        STATIC_REQUIRE_FALSE(std::is_convertible_v<std::size_t, Q>);  // explicit
    }
    // A move-only T has no copying overloads.
    STATIC_REQUIRE_FALSE(requires(P& q, const std::unique_ptr<int>& v) { q.try_push(v); });
    STATIC_REQUIRE_FALSE(requires(P& q, const std::unique_ptr<int>& v) { q.push(v); });
    STATIC_REQUIRE(requires(P& q, std::unique_ptr<int>&& v) { q.push(std::move(v)); });
}

TEMPLATE_LIST_TEST_CASE("priority_queue: pops in std::priority_queue order (relaxed: each once)",
                        "[priority_queue]", configs) {
    using Q = TestType;
    conq_test::watchdog dog("model check", std::chrono::seconds(60));
    for (std::uint32_t seed = 1; seed <= 4; ++seed) {
        INFO("seed " << seed);
        {
            auto q = make_default<Q>();  // capacity<N>, or unbounded
            model_check(*q, seed, 3000);
        }
        if constexpr (!info<Q>::inline_storage) {
            auto q = make_bounded<Q>(7);
            model_check(*q, seed + 100, 3000);
        }
    }
}

TEMPLATE_LIST_TEST_CASE("priority_queue: push then pop everything, against std::priority_queue",
                        "[priority_queue]", configs) {
    using Q = TestType;
    using compare = typename info<Q>::compare;
    std::mt19937 rng(7);
    auto q = make_default<Q>();
    const std::size_t n = std::min<std::size_t>(q->capacity(), 2000);
    std::priority_queue<int, std::vector<int>, compare> order;
    std::multiset<int> inside;
    for (std::size_t i = 0; i < n; ++i) {
        const int v = static_cast<int>(rng() % 500);
        CONQ_REQUIRE(q->try_push(v));
        order.push(v);
        inside.insert(v);
    }
    CONQ_REQUIRE_EQ(q->size_approx(), n);
    for (std::size_t i = 0; i < n; ++i) {
        const auto v = q->try_pop();
        CONQ_REQUIRE(v.has_value());
        if constexpr (!info<Q>::relaxed) CONQ_REQUIRE_EQ(*v, order.top());
        order.pop();
        const auto it = inside.find(*v);
        CONQ_REQUIRE(it != inside.end());
        inside.erase(it);
    }
    REQUIRE(inside.empty());
    REQUIRE_FALSE(q->try_pop().has_value());
}

TEMPLATE_LIST_TEST_CASE("priority_queue: stable keeps push order among equal keys",
                        "[priority_queue][stable]", configs) {
    using Q = TestType;
    using I = info<Q>;
    using K = queue_of<Q, keyed, key_of>;
    if constexpr (I::stable) {
        // By hand: ids in push order; key 2 beats key 1 with std::less.
        auto q = make_default<K>();
        REQUIRE(q->try_push(keyed(1, 0)));
        REQUIRE(q->try_push(keyed(1, 1)));
        REQUIRE(q->try_push(keyed(2, 2)));
        REQUIRE(q->try_push(keyed(1, 3)));
        REQUIRE(q->try_push(keyed(2, 4)));
        REQUIRE(q->try_emplace(1, 5));
        std::vector<int> ids;
        while (auto v = q->try_pop()) ids.push_back(v->id);
        if constexpr (std::is_same_v<typename I::compare, std::less<>>) {
            REQUIRE(ids == std::vector<int>{2, 4, 0, 1, 3, 5});
        } else {
            REQUIRE(ids == std::vector<int>{0, 1, 3, 5, 2, 4});
        }
    }
    for (std::uint32_t seed = 1; seed <= 4; ++seed) {
        INFO("seed " << seed);
        ties_check<Q>(seed, 4000);
    }
}

TEMPLATE_LIST_TEST_CASE("priority_queue: each call on an empty, a filled and a drained queue",
                        "[priority_queue]", configs) {
    using Q = TestType;
    conq_test::watchdog dog("calls", std::chrono::seconds(30));
    auto q = make_default<Q>();
    REQUIRE(q->size_approx() == 0);
    REQUIRE_FALSE(q->closed());
    REQUIRE_FALSE(q->try_pop().has_value());
    int out = 77;
    REQUIRE_FALSE(q->try_pop(out));
    REQUIRE(out == 77);
    REQUIRE_FALSE(q->pop_for(1ms).has_value());  // times out: nothing comes
    std::array<int, 8> outs{};
    outs.fill(-1);
    REQUIRE(q->try_pop_n(outs.data(), outs.size()) == 0);
    REQUIRE(outs[0] == -1);
    std::vector<int> none;
    REQUIRE(q->try_push_n(none.begin(), none.end()) == 0);

    const int three = 3;
    REQUIRE(q->try_push(three));
    REQUIRE(q->try_push(5));
    REQUIRE(q->try_emplace(1));
    REQUIRE(q->push(4));
    REQUIRE(q->push(three));
    REQUIRE(q->push_for(2, 1ms));
    std::vector<int> in{0, 6};
    REQUIRE(q->try_push_n(in.begin(), in.end()) == 2);
    REQUIRE(q->size_approx() == 8);  // every configuration holds at least 8
    REQUIRE(q->try_pop_n(outs.data(), 0) == 0);

    std::vector<int> got;
    got.push_back(q->try_pop().value());
    REQUIRE(q->try_pop(out));
    got.push_back(out);
    got.push_back(q->pop().value());
    got.push_back(q->pop_for(1h).value());
    REQUIRE(q->try_pop_n(outs.data(), 3) == 3);
    got.insert(got.end(), outs.begin(), outs.begin() + 3);
    REQUIRE(q->size_approx() == 1);
    REQUIRE(q->try_pop_n(outs.data(), outs.size()) == 1);
    got.push_back(outs[0]);
    REQUIRE(q->size_approx() == 0);
    REQUIRE_FALSE(q->try_pop().has_value());
    REQUIRE_FALSE(q->pop_for(1ms).has_value());

    std::vector<int> expected{0, 1, 2, 3, 3, 4, 5, 6};
    if constexpr (std::is_same_v<typename info<Q>::compare, std::less<>>) {
        std::reverse(expected.begin(), expected.end());
    }
    if constexpr (info<Q>::relaxed) {
        std::vector<int> sorted = got;
        std::sort(expected.begin(), expected.end());
        std::sort(sorted.begin(), sorted.end());
        REQUIRE(sorted == expected);
    } else {
        REQUIRE(got == expected);
    }
}

TEMPLATE_LIST_TEST_CASE("priority_queue: exact capacity; full until a pop makes room",
                        "[priority_queue][bounded]", configs) {
    using Q = TestType;
    using I = info<Q>;
    conq_test::watchdog dog("bounded", std::chrono::seconds(30));
    // capacity<N> as given; a runtime capacity that no rounding would keep.
    auto q = make_bounded<Q>(5);
    const std::size_t cap = q->capacity();
    if constexpr (I::inline_storage) {
        REQUIRE(cap == I::set::capacity::value);
    } else {
        REQUIRE(cap == 5);
    }
    // 0, 1, ..., cap - 1: the best is cap - 1 (std::less) or 0 (std::greater).
    for (std::size_t i = 0; i < cap; ++i) CONQ_REQUIRE(q->try_push(static_cast<int>(i)));
    constexpr bool largest_first = std::is_same_v<typename I::compare, std::less<>>;
    REQUIRE(q->size_approx() == cap);
    const int lv = 100;
    REQUIRE_FALSE(q->try_push(lv));
    REQUIRE_FALSE(q->try_push(100));
    REQUIRE_FALSE(q->try_emplace(100));
    REQUIRE_FALSE(q->push_for(100, 1ms));  // block: times out; reject: at once
    if constexpr (I::rejects) {
        REQUIRE_FALSE(q->push(100));
        REQUIRE_FALSE(q->push(lv));
    }
    std::vector<int> more{100, 101};
    REQUIRE(q->try_push_n(more.begin(), more.end()) == 0);
    REQUIRE(q->size_approx() == cap);

    // One pop, one push fits; then full again.
    const auto first = q->try_pop();
    REQUIRE(first.has_value());
    if constexpr (!I::relaxed) REQUIRE(*first == (largest_first ? static_cast<int>(cap) - 1 : 0));
    REQUIRE(q->try_push(100));
    REQUIRE_FALSE(q->try_push(101));
    REQUIRE(q->size_approx() == cap);
    // The new element, best under std::less, worst under std::greater.
    if constexpr (!I::relaxed && largest_first) {
        REQUIRE(q->try_pop() == std::optional<int>(100));
    } else {
        REQUIRE(q->try_pop().has_value());
    }
    // Two pops, a batch of three: two fit.
    REQUIRE(q->try_pop().has_value());
    std::vector<int> three{200, 201, 202};
    REQUIRE(q->try_push_n(three.begin(), three.end()) == 2);
    REQUIRE(q->size_approx() == cap);
    std::size_t drained = 0;
    while (q->try_pop()) ++drained;
    REQUIRE(drained == cap);
    // Refilled after draining: the count of free places came back whole.
    for (std::size_t i = 0; i < cap; ++i) CONQ_REQUIRE(q->try_push(1));
    REQUIRE_FALSE(q->try_push(1));
}

TEMPLATE_LIST_TEST_CASE("priority_queue: runtime capacity, unbounded without one, 0 is an error",
                        "[priority_queue][bounded]", configs) {
    using Q = TestType;
    if constexpr (info<Q>::inline_storage) {
        Q q;
        REQUIRE(q.capacity() == info<Q>::set::capacity::value);
        REQUIRE(q.capacity() != Q::unbounded);
    } else {
        Q five(5);
        REQUIRE(five.capacity() == 5);
        Q one(1);
        REQUIRE(one.capacity() == 1);
        REQUIRE(one.try_push(1));
        REQUIRE_FALSE(one.try_push(2));
        REQUIRE(one.try_pop() == std::optional<int>(1));
        REQUIRE(one.try_push(3));
        REQUIRE(one.try_pop() == std::optional<int>(3));
        REQUIRE_THROWS_AS(Q(std::size_t{0}), std::invalid_argument);
        REQUIRE_THROWS_AS(Q(std::size_t{0}, typename Q::value_compare{}), std::invalid_argument);

        Q unbounded;
        REQUIRE(unbounded.capacity() == Q::unbounded);
        REQUIRE(Q::unbounded == std::numeric_limits<std::size_t>::max());
        for (int i = 0; i < 5000; ++i) CONQ_REQUIRE(unbounded.try_push(i));
        REQUIRE(unbounded.size_approx() == 5000);
        std::vector<int> batch(3000, 7);
        REQUIRE(unbounded.try_push_n(batch.begin(), batch.end()) == 3000);
        REQUIRE(unbounded.size_approx() == 8000);
    }
}

TEST_CASE("priority_queue: a Compare given to the constructor is the one used",
          "[priority_queue]") {
    const std::vector<int> in{4, 1, 3, 0, 2};
    auto drain = [](auto& q) {
        std::vector<int> out;
        while (auto v = q.try_pop()) out.push_back(*v);
        return out;
    };
    {
        conq::priority_queue<int, runtime_order> q(runtime_order{true});
        for (int v : in) REQUIRE(q.try_push(v));
        REQUIRE(drain(q) == std::vector<int>{0, 1, 2, 3, 4});
    }
    {
        conq::priority_queue<int, runtime_order, conq::stable> q(3, runtime_order{true});
        REQUIRE(q.capacity() == 3);
        for (int v : {2, 0, 1}) REQUIRE(q.try_push(v));
        REQUIRE(drain(q) == std::vector<int>{0, 1, 2});
    }
    {
        conq::priority_queue<int, runtime_order, conq::capacity<8>> q(runtime_order{false});
        for (int v : in) REQUIRE(q.try_push(v));
        REQUIRE(drain(q) == std::vector<int>{4, 3, 2, 1, 0});
    }
    for (bool smallest_first : {true, false}) {
        // Relaxed: no exact order, but the first tenth of the pops of 0..999
        // come from the right end (a mean rank error of a few dozen at most).
        conq::priority_queue<int, runtime_order, conq::relaxed<>> q(runtime_order{smallest_first});
        for (int v = 0; v < 1000; ++v) REQUIRE(q.try_push(v));
        long sum = 0;
        for (int i = 0; i < 100; ++i) sum += q.try_pop().value();
        const long mean = sum / 100;
        INFO("mean of the first 100 pops: " << mean);
        if (smallest_first) {
            CHECK(mean < 250);
        } else {
            CHECK(mean > 750);
        }
        std::vector<int> out = drain(q);
        REQUIRE(out.size() == 900);
    }
}

TEMPLATE_LIST_TEST_CASE("priority_queue: close fails pushes and drains pops", "[priority_queue]",
                        configs) {
    using Q = TestType;
    using I = info<Q>;
    conq_test::watchdog dog("close", std::chrono::seconds(30));
    {
        auto q = make_default<Q>();
        for (int v : {2, 4, 1, 3}) REQUIRE(q->try_push(v));
        q->close();
        REQUIRE(q->closed());
        const int lv = 10;
        REQUIRE_FALSE(q->try_push(lv));
        REQUIRE_FALSE(q->try_push(10));
        REQUIRE_FALSE(q->try_emplace(11));
        REQUIRE_FALSE(q->push(12));
        REQUIRE_FALSE(q->push(lv));
        REQUIRE_FALSE(q->push_for(13, 1h));  // at once, not after an hour
        std::vector<int> in{14, 15};
        REQUIRE(q->try_push_n(in.begin(), in.end()) == 0);
        REQUIRE(q->size_approx() == 4);
        q->close();  // idempotent
        REQUIRE(q->closed());

        std::vector<int> got;
        got.push_back(q->pop().value());
        got.push_back(q->try_pop().value());
        got.push_back(q->pop_for(1h).value());
        std::array<int, 4> outs{};
        REQUIRE(q->try_pop_n(outs.data(), outs.size()) == 1);
        got.push_back(outs[0]);
        if constexpr (I::relaxed) {
            std::sort(got.begin(), got.end());
            REQUIRE(got == std::vector<int>{1, 2, 3, 4});
        } else if constexpr (std::is_same_v<typename I::compare, std::less<>>) {
            REQUIRE(got == std::vector<int>{4, 3, 2, 1});
        } else {
            REQUIRE(got == std::vector<int>{1, 2, 3, 4});
        }
        // Drained: nullopt at once, however long the call may wait.
        REQUIRE_FALSE(q->pop().has_value());
        REQUIRE_FALSE(q->pop_for(1h).has_value());
        REQUIRE_FALSE(q->try_pop().has_value());
        int out = -1;
        REQUIRE_FALSE(q->try_pop(out));
        REQUIRE(q->try_pop_n(outs.data(), outs.size()) == 0);
        REQUIRE_FALSE(q->pop().has_value());
        REQUIRE(q->size_approx() == 0);
    }
    {
        auto q = make_default<Q>();
        q->close();
        REQUIRE_FALSE(q->pop().has_value());
        REQUIRE_FALSE(q->pop_for(1h).has_value());
        REQUIRE_FALSE(q->try_push(1));
    }
    {
        // Closing a full queue: push fails at once instead of waiting.
        auto q = make_bounded<Q>(4);
        const std::size_t cap = q->capacity();
        for (std::size_t i = 0; i < cap; ++i) CONQ_REQUIRE(q->try_push(1));
        q->close();
        REQUIRE_FALSE(q->push(2));
        REQUIRE_FALSE(q->push_for(2, 1h));
        std::size_t drained = 0;
        while (auto v = q->pop()) {
            CONQ_REQUIRE_EQ(*v, 1);
            ++drained;
        }
        REQUIRE(drained == cap);
    }
}

TEMPLATE_LIST_TEST_CASE("priority_queue: move-only elements; a failed push keeps its argument",
                        "[priority_queue]", configs) {
    using Q = TestType;
    using I = info<Q>;
    using P = queue_of<Q, std::unique_ptr<int>, pointee>;
    using ptr = std::unique_ptr<int>;
    conq_test::watchdog dog("move-only", std::chrono::seconds(30));
    auto q = make_bounded<P>(8);
    const std::size_t cap = q->capacity();
    auto p = std::make_unique<int>(1);
    REQUIRE(q->try_push(std::move(p)));
    REQUIRE(p == nullptr);
    REQUIRE(q->try_emplace(std::make_unique<int>(2)));
    REQUIRE(q->push(std::make_unique<int>(3)));
    REQUIRE(q->push_for(std::make_unique<int>(4), 0ms));
    std::vector<ptr> batch;
    for (int i = 5; i <= 6; ++i) batch.push_back(std::make_unique<int>(i));
    REQUIRE(q->try_push_n(batch.begin(), batch.end()) == 2);
    for (const ptr& b : batch) REQUIRE(b == nullptr);  // moved in

    // Fill up; then every kind of push fails and keeps its argument.
    for (std::size_t i = 6; i < cap; ++i) CONQ_REQUIRE(q->try_push(std::make_unique<int>(0)));
    auto x = std::make_unique<int>(9);
    REQUIRE_FALSE(q->try_push(std::move(x)));
    REQUIRE(x != nullptr);
    REQUIRE_FALSE(q->push_for(std::move(x), 1ms));
    REQUIRE(x != nullptr);
    if constexpr (I::rejects) {
        REQUIRE_FALSE(q->push(std::move(x)));
        REQUIRE(x != nullptr);
    }
    REQUIRE(*x == 9);
    std::vector<ptr> more;
    more.push_back(std::make_unique<int>(10));
    more.push_back(std::make_unique<int>(11));
    REQUIRE(q->try_push_n(more.begin(), more.end()) == 0);
    REQUIRE(more[0] != nullptr);
    REQUIRE(more[1] != nullptr);
    // A batch larger than the room: the first ones go in, the rest stay.
    REQUIRE(q->try_pop().has_value());
    REQUIRE(q->try_push_n(more.begin(), more.end()) == 1);
    REQUIRE(more[0] == nullptr);
    REQUIRE(more[1] != nullptr);
    REQUIRE(*more[1] == 11);

    std::vector<int> got;
    auto v = q->try_pop();
    REQUIRE(v.has_value());
    REQUIRE(*v != nullptr);
    got.push_back(**v);
    ptr out;
    REQUIRE(q->try_pop(out));
    got.push_back(*out);
    got.push_back(*q->pop().value());
    got.push_back(*q->pop_for(1h).value());
    std::vector<ptr> outs(cap);
    const std::size_t n = q->try_pop_n(outs.data(), outs.size());
    REQUIRE(n == cap - 4);
    for (std::size_t i = 0; i < n; ++i) got.push_back(*outs[i]);
    if constexpr (!I::relaxed) {
        // Best first: under std::less the largest, so 10 and 6 lead.
        if constexpr (std::is_same_v<typename I::compare, std::less<>>) {
            REQUIRE(std::is_sorted(got.rbegin(), got.rend()));
        } else {
            REQUIRE(std::is_sorted(got.begin(), got.end()));
        }
    }
    REQUIRE(got.size() == cap);

    // Closed: every push fails and keeps its argument; what is inside is
    // destroyed with the queue (the sanitizer build reports a leak otherwise).
    REQUIRE(q->try_emplace(std::make_unique<int>(20)));
    REQUIRE(q->try_push(std::make_unique<int>(21)));
    q->close();
    auto z = std::make_unique<int>(22);
    REQUIRE_FALSE(q->try_push(std::move(z)));
    REQUIRE(z != nullptr);
    REQUIRE_FALSE(q->push(std::move(z)));
    REQUIRE(z != nullptr);
    REQUIRE_FALSE(q->push_for(std::move(z), 1h));
    REQUIRE(z != nullptr);
    REQUIRE(*z == 22);

    // Unbounded (or capacity<N>) move-only queue: order kept by the pointees.
    auto u = make_default<P>();
    for (int i : {3, 1, 2}) REQUIRE(u->push(std::make_unique<int>(i)));
    std::vector<int> order;
    while (auto w = u->try_pop()) order.push_back(**w);
    std::sort(order.begin(), order.end());
    REQUIRE(order == std::vector<int>{1, 2, 3});
}

TEMPLATE_LIST_TEST_CASE("priority_queue: a push meeting close() succeeds or keeps its argument",
                        "[priority_queue][close]", configs) {
    // The hook closes the queue from inside T's move constructor: the
    // moment another thread's close() can fall between a push's first look
    // at closed() and the point where it commits the element.
    using Q = TestType;
    using H = queue_of<Q, hooked, hooked_key>;
    conq_test::watchdog dog("close while moving in", std::chrono::seconds(30));
    for (int how = 0; how < 3; ++how) {
        INFO("call " << how << " (0 try_push, 1 push, 2 push_for)");
        auto q = make_default<H>();
        REQUIRE(q->try_push(hooked(1)));
        hooked v(2);
        hooked::hook_arg = q.get();
        hooked::hook = [](void* arg) { static_cast<H*>(arg)->close(); };
        bool ok = false;
        switch (how) {
            case 0: ok = q->try_push(std::move(v)); break;
            case 1: ok = q->push(std::move(v)); break;
            default: ok = q->push_for(std::move(v), 1h); break;
        }
        const bool hook_ran = hooked::hook == nullptr;
        hooked::hook = nullptr;
        REQUIRE(hook_ran);
        REQUIRE(q->closed());
        std::vector<int> got;
        while (auto w = q->pop()) got.push_back(*w->p);
        std::sort(got.begin(), got.end());
        if (ok) {
            // Took effect before the close: it comes out.
            REQUIRE(got == std::vector<int>{1, 2});
        } else {
            // Refused: the argument is as it was, and nothing of it is inside.
            REQUIRE(v.p != nullptr);
            REQUIRE(*v.p == 2);
            REQUIRE(got == std::vector<int>{1});
        }
    }
}

TEMPLATE_LIST_TEST_CASE("priority_queue: a throwing try_emplace changes nothing",
                        "[priority_queue]", configs) {
    using Q = TestType;
    using E = queue_of<Q, conq_test::throwing_ctor, value_of>;
    auto q = make_bounded<E>(4);
    const std::size_t cap = q->capacity();
    REQUIRE(q->try_emplace(1, false));
    REQUIRE_THROWS_AS(q->try_emplace(2, true), conq_test::injected_error);
    REQUIRE(q->size_approx() == 1);
    REQUIRE_THROWS_AS(q->try_emplace(3, true), conq_test::injected_error);
    // The failed emplaces took no room: cap elements fit, not one more.
    for (std::size_t i = 1; i < cap; ++i) CONQ_REQUIRE(q->try_emplace(static_cast<int>(i), false));
    REQUIRE(q->size_approx() == cap);
    REQUIRE_FALSE(q->try_emplace(9, false));
    std::size_t drained = 0;
    while (q->try_pop()) ++drained;
    REQUIRE(drained == cap);
    REQUIRE(q->size_approx() == 0);
}

TEMPLATE_LIST_TEST_CASE("priority_queue: owns exactly the elements inside; copies lvalues only",
                        "[priority_queue][lifetime]", configs) {
    using Q = TestType;
    using I = info<Q>;
    using C = queue_of<Q, counted, count_of>;
    counted::reset();
    {
        auto q = make_bounded<C>(8);  // every configuration: capacity 8 or more
        CHECK(counted::live == 0);    // no element objects until pushed
        const long c0 = counted::copies;
        for (u64 i = 0; i < 3; ++i) CONQ_REQUIRE(q->try_emplace(i));
        CHECK(counted::live == 3);
        {
            const counted lv(10);
            REQUIRE(q->try_push(lv));
            REQUIRE(q->push(lv));
            REQUIRE(q->push_for(lv, 0ms));
            REQUIRE(lv.get() == 10);
            CHECK(counted::copies - c0 == 3);  // one copy per lvalue push
        }
        CHECK(counted::live == 6);
        REQUIRE(q->try_push(counted(11)));
        REQUIRE(q->push(counted(12)));
        CHECK(counted::live == 8);
        {
            auto a = q->try_pop();
            auto b = q->pop();
            counted out;
            REQUIRE(q->try_pop(out));
            REQUIRE(a.has_value());
            REQUIRE(b.has_value());
            if constexpr (!I::relaxed && std::is_same_v<typename I::compare, std::less<>>) {
                REQUIRE(a->get() == 12);
                REQUIRE(b->get() == 11);
                REQUIRE(out.get() == 10);
            }
            CHECK(counted::live == 8);  // 5 inside + 3 out here
        }
        CHECK(counted::live == 5);
        std::vector<counted> batch;
        for (u64 i = 20; i < 23; ++i) batch.emplace_back(i);
        REQUIRE(q->try_push_n(batch.begin(), batch.end()) == 3);
        batch.clear();
        CHECK(counted::live == 8);
        {
            std::array<counted, 4> outs;
            REQUIRE(q->try_pop_n(outs.data(), 4) == 4);
            for (const counted& o : outs) CONQ_CHECK(o.get() != counted::moved_from_value);
        }
        CHECK(counted::live == 4);
        CHECK(counted::copies - c0 == 3);  // the heap moves, never copies
        // Full: refused pushes create nothing that stays.
        while (q->size_approx() < q->capacity()) CONQ_REQUIRE(q->try_emplace(u64{30}));
        const long inside = counted::live;
        CHECK(inside == static_cast<long>(q->capacity()));
        {
            counted x(40);
            REQUIRE_FALSE(q->try_push(std::move(x)));
            REQUIRE_FALSE(q->push_for(std::move(x), 0ms));
            REQUIRE(x.get() == 40);
        }
        CHECK(counted::live == inside);
        q->close();
        REQUIRE_FALSE(q->try_emplace(u64{41}));
        CHECK(counted::live == inside);
        { auto v = q->pop(); }
        CHECK(counted::live == inside - 1);
        // Destroyed non-empty and closed.
    }
    CHECK(counted::errors == 0);
    CHECK(counted::live == 0);
    CHECK(counted::constructions == counted::destructions);

    counted::reset();
    {
        // Unbounded (or capacity<N>), destroyed open with elements inside
        // after a long mixed sequence.
        auto q = make_default<C>();
        std::mt19937 rng(3);
        std::size_t inside = 0;
        for (int i = 0; i < 2000; ++i) {
            if (rng() % 3 != 0 && inside < q->capacity()) {
                CONQ_REQUIRE(q->try_emplace(u64{rng() % 50}));
                ++inside;
            } else if (inside > 0) {
                CONQ_REQUIRE(q->try_pop().has_value());
                --inside;
            }
        }
        CHECK(counted::live == static_cast<long>(inside));
        CHECK(inside > 0);
    }
    CHECK(counted::errors == 0);
    CHECK(counted::live == 0);
    CHECK(counted::constructions == counted::destructions);
}

TEMPLATE_LIST_TEST_CASE("priority_queue: a bounded queue allocates nothing after construction",
                        "[priority_queue][alloc]", configs) {
    // No Catch assertion inside the measured section (Catch allocates); the
    // results are checked after it.
    using Q = TestType;
    using I = info<Q>;
    auto q = make_bounded<Q>(16);
    const std::size_t cap = q->capacity();
    std::array<int, 16> out{};
    const std::array<int, 4> in{1, 2, 3, 4};
    bool ok = true;
    std::size_t pushed = 0, popped = 0;

    const long before = conq_test::allocations();
    for (int lap = 0; lap < 50; ++lap) {
        const int lv = 7 + lap;
        ok = q->try_push(lv) && ok;
        ok = q->try_push(lap) && ok;
        ok = q->try_emplace(2 * lap) && ok;
        ok = q->push(3 * lap) && ok;
        ok = q->push_for(lap % 5, 1ms) && ok;
        pushed += 5 + q->try_push_n(in.begin(), in.begin() + 3);
        int x = 0;
        ok = q->try_pop(x) && ok;
        ok = q->try_pop().has_value() && ok;
        ok = q->pop().has_value() && ok;
        ok = q->pop_for(1ms).has_value() && ok;
        popped += 4 + q->try_pop_n(out.data(), out.size());
        ok = q->size_approx() == 0 && ok;
    }
    const bool timed_pop = q->pop_for(1ms).has_value();
    std::size_t filled = 0;
    while (filled < cap && q->try_push(static_cast<int>(filled))) ++filled;
    const bool timed_push = q->push_for(6, 1ms);
    const bool rejected_push = I::rejects && q->push(6);
    q->close();
    const bool closed_push = q->push(8) || q->try_push(9);
    std::size_t drained = 0;
    while (q->pop().has_value()) ++drained;
    const bool popped_after = q->pop_for(1h).has_value();
    const long after = conq_test::allocations();

    CHECK(after - before == 0);
    CHECK(ok);
    CHECK(pushed == popped);
    CHECK_FALSE(timed_pop);
    CHECK(filled == cap);
    CHECK_FALSE(timed_push);
    CHECK_FALSE(rejected_push);
    CHECK_FALSE(closed_push);
    CHECK(drained == cap);
    CHECK_FALSE(popped_after);
}

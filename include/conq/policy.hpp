// conq/policy.hpp
//
// The policy tags that configure every conqueue container, the lookup that
// finds one policy of each family in a list given in any order, and the
// `conq::concurrent_queue` concept that every in-memory queue satisfies.
//
// A policy is an empty tag type (or a small template carrying a constant).
// Families and their defaults:
//
//   concurrency  spsc, mpsc, spmc, mpmc                      default mpmc
//   capacity     capacity<N> (inline storage)                default none: runtime, heap
//   wait         spin, yield, backoff, blocking              default backoff
//   overflow     block, reject, drop_oldest                  default block
//   order        fifo, priority_order<Cmp>, delay_order<Clk> default fifo
//   clock        steady_clock, manual_clock                  default steady_clock
//
// and three families that only the ordered containers read:
//
//   priority mode  strict, relaxed<C, Stickiness>            default strict
//   ties           stable (equal priorities in push order)   default: any order
//   timer storage  timer_heap, timer_wheel<TickNs>           default timer_heap
//
// Each family may appear at most once. A type that is not a conqueue policy,
// a duplicate family, or `capacity<0>` fails to compile with one sentence
// that names the fix.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <type_traits>

namespace conq {

class manual_clock;

namespace detail {
// Family markers. A policy names its family through a member alias
// `conq_policy_family`; the lookup below reads nothing else.
struct concurrency_family {};
struct capacity_family {};
struct wait_family {};
struct overflow_family {};
struct order_family {};
struct clock_family {};
struct priority_mode_family {};
struct ties_family {};
struct timer_storage_family {};
struct placement_family {};

/// The largest capacity a ring accepts (2^40 items): indices stay far from
/// overflow and the high bit stays free for the closed flag.
inline constexpr std::size_t max_capacity = std::size_t{1} << 40;
}  // namespace detail

// ---------------------------------------------------------------- concurrency

/// One producer thread and one consumer thread at a time.
struct spsc {
    using conq_policy_family = detail::concurrency_family;
    static constexpr bool multi_producer = false;
    static constexpr bool multi_consumer = false;
};
/// Any number of producer threads, one consumer thread at a time.
struct mpsc {
    using conq_policy_family = detail::concurrency_family;
    static constexpr bool multi_producer = true;
    static constexpr bool multi_consumer = false;
};
/// One producer thread at a time, any number of consumer threads.
struct spmc {
    using conq_policy_family = detail::concurrency_family;
    static constexpr bool multi_producer = false;
    static constexpr bool multi_consumer = true;
};
/// Any number of producer and consumer threads.
struct mpmc {
    using conq_policy_family = detail::concurrency_family;
    static constexpr bool multi_producer = true;
    static constexpr bool multi_consumer = true;
};

// ------------------------------------------------------------------- capacity

/// Storage for N items inside the container object (no heap allocation at
/// all). N is rounded up to a power of two; `capacity()` reports the result.
/// Without this policy the capacity is given to the constructor and the
/// storage comes from the heap, once, at construction.
template <std::size_t N>
struct capacity {
    static_assert(N > 0,
                  "conq::capacity<N>: N must be greater than zero; leave capacity<N> out to give "
                  "the capacity to the constructor instead.");
    static_assert(N <= detail::max_capacity,
                  "conq::capacity<N>: N must be at most 2^40; use a runtime capacity for "
                  "anything that large.");
    using conq_policy_family = detail::capacity_family;
    static constexpr std::size_t value = N;
};

// ----------------------------------------------------------------------- wait

/// Busy-wait with the CPU's pause instruction. Lowest latency; burns a core
/// while waiting and suffers when threads outnumber cores.
struct spin {
    using conq_policy_family = detail::wait_family;
};
/// Call `std::this_thread::yield()` between attempts.
struct yield {
    using conq_policy_family = detail::wait_family;
};
/// Pause with exponential back-off, then yield between attempts (the default).
struct backoff {
    using conq_policy_family = detail::wait_family;
};
/// Spin briefly, then sleep in the kernel (futex) until woken. Push and pop
/// make no system call while nobody sleeps; a sleeper is woken by the next
/// push or pop that changes what it waits for.
struct blocking {
    using conq_policy_family = detail::wait_family;
};

// ------------------------------------------------------------------- overflow

/// `push` waits while the container is full (the default).
struct block {
    using conq_policy_family = detail::overflow_family;
};
/// `push` never waits: it returns false at once when the container is full.
struct reject {
    using conq_policy_family = detail::overflow_family;
};
/// `push` and `try_push` never fail for lack of room: the oldest item is
/// removed to make room, and counted in `dropped()`.
struct drop_oldest {
    using conq_policy_family = detail::overflow_family;
};

// ---------------------------------------------------------------------- clock

/// The monotonic system clock, as an object with `now()`.
struct steady_clock {
    using conq_policy_family = detail::clock_family;
    using duration = std::chrono::steady_clock::duration;
    using time_point = std::chrono::steady_clock::time_point;
    static constexpr bool is_steady = true;
    [[nodiscard]] time_point now() const noexcept { return std::chrono::steady_clock::now(); }
};

namespace detail {
/// Something that sleeps on a manual_clock's time: a queue registers one of
/// these so that manual_clock::advance() wakes its waiters.
class clock_listener {
public:
    virtual void clock_advanced() noexcept = 0;

protected:
    ~clock_listener() = default;

private:
    friend class conq::manual_clock;
    clock_listener* prev_ = nullptr;
    clock_listener* next_ = nullptr;
};
}  // namespace detail

/// A clock that moves only when told to. Tests of delays and time-outs use it
/// instead of sleeping: a delay_queue bound to a manual_clock sleeps until
/// advance() or set() moves the time past its earliest due item. `now()`,
/// `advance()` and `set()` may be called from any thread. A manual_clock must
/// outlive the queues bound to it.
class manual_clock {
public:
    using conq_policy_family = detail::clock_family;
    using duration = std::chrono::nanoseconds;
    using time_point = std::chrono::time_point<manual_clock, duration>;
    static constexpr bool is_steady = true;

    manual_clock() = default;
    explicit manual_clock(time_point start) noexcept : now_ns_(start.time_since_epoch().count()) {}
    manual_clock(const manual_clock&) = delete;
    manual_clock& operator=(const manual_clock&) = delete;

    [[nodiscard]] time_point now() const noexcept {
        return time_point(duration(now_ns_.load(std::memory_order_acquire)));
    }
    /// Moves time forward by `d` and wakes every queue bound to this clock
    /// (a negative `d` is ignored: the clock is steady).
    void advance(duration d) noexcept {
        if (d.count() <= 0) return;
        now_ns_.fetch_add(d.count(), std::memory_order_acq_rel);
        notify();
    }
    /// Moves time forward to `t`; a `t` in the past is ignored.
    void set(time_point t) noexcept {
        std::int64_t cur = now_ns_.load(std::memory_order_relaxed);
        const std::int64_t to = t.time_since_epoch().count();
        while (cur < to && !now_ns_.compare_exchange_weak(cur, to, std::memory_order_acq_rel)) {
        }
        if (cur < to) notify();
    }

    /// Registers `l` to be told of every advance (used by delay_queue).
    void subscribe(detail::clock_listener& l) noexcept {
        std::lock_guard<std::mutex> g(mu_);
        l.prev_ = nullptr;
        l.next_ = head_;
        if (head_) head_->prev_ = &l;
        head_ = &l;
    }
    /// Removes `l`; after it returns, `l` is never called again.
    void unsubscribe(detail::clock_listener& l) noexcept {
        std::lock_guard<std::mutex> g(mu_);
        if (l.prev_) l.prev_->next_ = l.next_; else head_ = l.next_;
        if (l.next_) l.next_->prev_ = l.prev_;
        l.prev_ = l.next_ = nullptr;
    }

private:
    void notify() noexcept {
        std::lock_guard<std::mutex> g(mu_);
        for (detail::clock_listener* l = head_; l; l = l->next_) l->clock_advanced();
    }

    std::atomic<std::int64_t> now_ns_{0};
    std::mutex mu_;
    detail::clock_listener* head_ = nullptr;
};

/// A clock usable by conqueue: an object with `now()` whose time never runs
/// backwards. `std::chrono::system_clock` and similar are rejected.
template <class C>
concept clock_type = requires(const C& c) {
    typename C::time_point;
    typename C::duration;
    { c.now() } -> std::same_as<typename C::time_point>;
} && C::is_steady;

// ---------------------------------------------------------------------- order

/// First in, first out (the default).
struct fifo {
    using conq_policy_family = detail::order_family;
};
/// Pop the element that is greatest under `Compare` first (as
/// `std::priority_queue`: with `std::less` the largest comes out first).
template <class Compare = std::less<>>
struct priority_order {
    using conq_policy_family = detail::order_family;
    using compare = Compare;
};
/// An item becomes poppable at its due time, measured by `Clock`.
template <class Clock = steady_clock>
struct delay_order {
    static_assert(clock_type<Clock>,
                  "conq::delay_order<Clock>: Clock must be steady (time never runs backwards) and "
                  "have now(); use conq::steady_clock or conq::manual_clock.");
    using conq_policy_family = detail::order_family;
    using clock = Clock;
};

// ------------------------------------------------------------- priority mode

/// priority_queue: every pop returns a top element at the moment it takes
/// effect (linearizable). The default.
struct strict {
    using conq_policy_family = detail::priority_mode_family;
};
/// priority_queue: a MultiQueue of C shards per hardware thread; a pop takes
/// the better top of two randomly chosen shards, so it may return an element
/// a little below the true top (see docs/priority-and-delay.md for the rank
/// error). Each thread keeps its shard choice for `Stickiness` operations.
/// Scales with threads where a strict queue cannot.
template <unsigned C = 4, unsigned Stickiness = 8>
struct relaxed {
    static_assert(C >= 1, "conq::relaxed<C, Stickiness>: C (shards per thread) must be at least 1.");
    static_assert(Stickiness >= 1,
                  "conq::relaxed<C, Stickiness>: Stickiness must be at least 1 (1 picks new shards "
                  "for every operation).");
    using conq_policy_family = detail::priority_mode_family;
    static constexpr unsigned shards_per_thread = C;
    static constexpr unsigned stickiness = Stickiness;
};

// ----------------------------------------------------------------------- ties

/// priority_queue: elements of equal priority come out in the order they
/// were pushed (priority, then age, as beanstalkd orders jobs). Each element
/// carries a 64-bit number, and a push takes the queue's lock instead of
/// publishing and leaving. Without it equal elements come out in
/// any order. delay_queue is always stable.
struct stable {
    using conq_policy_family = detail::ties_family;
};

// -------------------------------------------------------------- timer storage

/// delay_queue: a 4-ary min-heap of (due time, push order): exact,
/// O(log n) schedule and pop, O(1) cancel (amortised: cancelled timers are
/// dropped lazily). The default.
struct timer_heap {
    using conq_policy_family = detail::timer_storage_family;
};
/// delay_queue: a hierarchical timing wheel (64 slots per level, ticks of
/// `TickNs` nanoseconds): O(1) schedule and cancel (amortised), for very
/// many timers that are mostly cancelled. Delivery stays exact (same order
/// and times as timer_heap); the tick only sets how timers are bucketed.
template <std::int64_t TickNs = 1'000'000>
struct timer_wheel {
    static_assert(TickNs > 0, "conq::timer_wheel<TickNs>: the tick must be at least 1 ns.");
    using conq_policy_family = detail::timer_storage_family;
    static constexpr std::int64_t tick_ns = TickNs;
};

// ------------------------------------------------------------------ placement

/// The ring lives in this process's memory. The default.
struct in_process {
    using conq_policy_family = detail::placement_family;
};
/// The ring can live in memory shared between processes: made or opened
/// through conq::shared_ring (conq/shared_ring.hpp) in a named shared-memory
/// object or a mapped file. T must be trivially copyable; the barriers and
/// futexes become process-shared (a little slower than in_process).
struct shared_memory {
    using conq_policy_family = detail::placement_family;
};

// ------------------------------------------------------------- policy lookup

namespace detail {

template <class P>
concept policy_tag = requires { typename P::conq_policy_family; };

template <class P>
struct family_of {
    using type = void;
};
template <policy_tag P>
struct family_of<P> {
    using type = typename P::conq_policy_family;
};

template <class Family, class... Ps>
inline constexpr std::size_t family_count =
    (std::size_t{0} + ... + std::size_t{std::is_same_v<typename family_of<Ps>::type, Family>});

template <class Family, class Default, class... Ps>
struct find_policy {
    using type = Default;
};
template <class Family, class Default, class P, class... Rest>
struct find_policy<Family, Default, P, Rest...> {
    using type = std::conditional_t<std::is_same_v<typename family_of<P>::type, Family>, P,
                                    typename find_policy<Family, Default, Rest...>::type>;
};

/// Marks "no capacity<N> given": the capacity comes from the constructor.
struct runtime_capacity {
    static constexpr std::size_t value = 0;
};

/// The checked result of a policy list: one member type per family.
template <class... Ps>
struct policy_set {
    static_assert((policy_tag<Ps> && ...),
                  "conq: a template argument after T is not a conqueue policy; use the tags from "
                  "conq/policy.hpp (spsc, mpmc, capacity<N>, blocking, drop_oldest, ...).");
    static_assert(family_count<concurrency_family, Ps...> <= 1,
                  "conq: more than one concurrency policy was given; keep exactly one of spsc, "
                  "mpsc, spmc, mpmc.");
    static_assert(family_count<capacity_family, Ps...> <= 1,
                  "conq: more than one capacity<N> was given; keep one.");
    static_assert(family_count<wait_family, Ps...> <= 1,
                  "conq: more than one wait policy was given; keep one of spin, yield, backoff, "
                  "blocking.");
    static_assert(family_count<overflow_family, Ps...> <= 1,
                  "conq: more than one overflow policy was given; keep one of block, reject, "
                  "drop_oldest.");
    static_assert(family_count<order_family, Ps...> <= 1,
                  "conq: more than one order policy was given; keep one of fifo, "
                  "priority_order<Cmp>, delay_order<Clock>.");
    static_assert(family_count<clock_family, Ps...> <= 1,
                  "conq: more than one clock policy was given; keep one of steady_clock, "
                  "manual_clock.");
    static_assert(family_count<priority_mode_family, Ps...> <= 1,
                  "conq: more than one priority mode was given; keep one of strict, relaxed<...>.");
    static_assert(family_count<ties_family, Ps...> <= 1, "conq: stable was given twice; keep one.");
    static_assert(family_count<timer_storage_family, Ps...> <= 1,
                  "conq: more than one timer storage was given; keep one of timer_heap, "
                  "timer_wheel<...>.");
    static_assert(family_count<placement_family, Ps...> <= 1,
                  "conq: more than one placement was given; keep one of in_process, shared_memory.");

    using concurrency = typename find_policy<concurrency_family, mpmc, Ps...>::type;
    using capacity = typename find_policy<capacity_family, runtime_capacity, Ps...>::type;
    using wait = typename find_policy<wait_family, backoff, Ps...>::type;
    using overflow = typename find_policy<overflow_family, block, Ps...>::type;
    using order = typename find_policy<order_family, fifo, Ps...>::type;
    using clock = typename find_policy<clock_family, steady_clock, Ps...>::type;
    using priority_mode = typename find_policy<priority_mode_family, strict, Ps...>::type;
    using timer_storage = typename find_policy<timer_storage_family, timer_heap, Ps...>::type;
    using placement = typename find_policy<placement_family, in_process, Ps...>::type;

    static constexpr bool has_concurrency = family_count<concurrency_family, Ps...> == 1;
    static constexpr bool has_clock = family_count<clock_family, Ps...> == 1;
    static constexpr bool has_wait = family_count<wait_family, Ps...> == 1;
    static constexpr bool has_priority_mode = family_count<priority_mode_family, Ps...> == 1;
    static constexpr bool has_timer_storage = family_count<timer_storage_family, Ps...> == 1;
    static constexpr bool is_stable = family_count<ties_family, Ps...> == 1;
    static constexpr bool inline_storage = capacity::value != 0;
    static constexpr bool shared = std::is_same_v<placement, shared_memory>;
};

}  // namespace detail

// -------------------------------------------------------------------- concept

/// The interface every in-memory conqueue container offers (DESIGN.md: "one
/// interface for every in-memory queue").
template <class Q>
concept concurrent_queue = requires(Q& q, const Q& cq, typename Q::value_type v,
                                    typename Q::value_type* out, std::chrono::nanoseconds d) {
    typename Q::value_type;
    { q.try_push(std::move(v)) } -> std::same_as<bool>;
    { q.push(std::move(v)) } -> std::same_as<bool>;
    { q.push_for(std::move(v), d) } -> std::same_as<bool>;
    { q.try_pop() } -> std::same_as<std::optional<typename Q::value_type>>;
    { q.pop() } -> std::same_as<std::optional<typename Q::value_type>>;
    { q.pop_for(d) } -> std::same_as<std::optional<typename Q::value_type>>;
    { q.try_push_n(out, out) } -> std::same_as<std::size_t>;
    { q.try_pop_n(out, std::size_t{}) } -> std::same_as<std::size_t>;
    { q.close() };
    { cq.closed() } -> std::same_as<bool>;
    { cq.capacity() } -> std::same_as<std::size_t>;
    { cq.size_approx() } -> std::same_as<std::size_t>;
};

}  // namespace conq

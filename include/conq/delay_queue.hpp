// conq/delay_queue.hpp
//
// conq::delay_queue<T, Policies...>: items become poppable at their due time.
// Any number of producer and consumer threads.
//
//   conq::manual_clock clock;
//   conq::delay_queue<Job, conq::manual_clock> q(clock);
//   auto h = q.schedule_after(job, 5s);    // a handle, for cancel(h)
//   q.pop();                               // sleeps until a job is due
//
// Due times are read from a clock object (policy `steady_clock`, the
// default, or `manual_clock`, whose advance() wakes the queue: tests never
// sleep). Items with equal due times come out in the order they were
// scheduled. An item is never popped before its due time; once due, it is
// next in line (a pop returns the earliest due item, exactly).
//
// Storage (policy): `timer_heap` (default), a 4-ary heap of timers, O(log n)
// schedule and pop; `timer_wheel<TickNs>`, a hierarchical timing wheel, O(1)
// schedule, for very many timers most of which are cancelled before they
// fire. Both deliver the same items at the same times in the same order (the
// wheel keeps the timers of past ticks in a small heap), so the choice is
// only about speed. Both cancel in O(1) (amortised): cancel() destroys the
// item and marks the timer, and the storage drops the mark when it meets it
// or in a sweep once marked timers outnumber pending ones by 64 (see
// timer_slab), so memory stays within about twice the pending timers.
//
// The queue is guarded by one lock, a spin lock released by a plain store
// (std::mutex measured 18-40% slower on schedule + cancel; see
// docs/benchmarks.md); pop() sleeps on a condition variable (one consumer
// sleeps until the earliest due time, the others until it is taken: Java's
// DelayQueue leader/follower scheme). Sleepers are counted under the lock,
// so a schedule or a pop wakes nobody, and pays nothing for it, while
// nobody sleeps.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "conq/detail/dary_heap.hpp"
#include "conq/detail/storage.hpp"
#include "conq/detail/wait.hpp"
#include "conq/policy.hpp"

namespace conq {

namespace detail {

template <class O>
struct order_clock {
    using type = void;
};
template <class C>
struct order_clock<delay_order<C>> {
    using type = C;
};

/// The clock of a delay queue: the clock policy, else delay_order's clock,
/// else steady_clock.
template <class Set>
using delay_clock_t = std::conditional_t<
    Set::has_clock, typename Set::clock,
    std::conditional_t<std::is_void_v<typename order_clock<typename Set::order>::type>, steady_clock,
                       typename order_clock<typename Set::order>::type>>;

template <class C>
concept subscribable_clock = requires(C& c, clock_listener& l) {
    c.subscribe(l);
    c.unsubscribe(l);
};

inline constexpr std::uint32_t nil = std::numeric_limits<std::uint32_t>::max();

/// A timer: the item plus what the storage needs to find it again.
template <class T>
struct timer_node {
    std::int64_t due = 0;     // clock nanoseconds
    std::uint64_t seq = 0;    // schedule order: ties of due
    std::uint32_t next = nil; // free list / wheel bucket list
    std::uint16_t where = 0;  // 0 free; 1 in a heap; 2 + level*64 + slot: in a wheel bucket
    raw_item<T> item;
};

/// Timer nodes in chunks that never move, a free list through them, and a tag
/// per node in an array of its own. The tag is the node's generation times
/// two, plus one while it is cancelled; a handle holds the tag its node had
/// when it was scheduled, so it matches only that timer, while it is
/// pending. Cancelling is lazy: it sets the tag's low bit (and destroys the
/// item), and the storage frees the node when it meets it, or in a sweep.
/// The tags are 4 bytes per node, so checking and cancelling a handle stays
/// in cache when the nodes do not.
template <class T>
class timer_slab {
    static constexpr std::uint32_t chunk_bits = 10;
    static constexpr std::uint32_t chunk_size = 1u << chunk_bits;

public:
    using node = timer_node<T>;

    timer_slab() = default;
    timer_slab(const timer_slab&) = delete;
    timer_slab& operator=(const timer_slab&) = delete;
    ~timer_slab() {
        for (std::uint32_t i = 0; i < count_; ++i) {
            if (live(i)) (*this)[i].item.ptr()->~T();
        }
    }

    node& operator[](std::uint32_t i) noexcept { return chunks_[i >> chunk_bits][i & (chunk_size - 1)]; }
    const node& operator[](std::uint32_t i) const noexcept {
        return chunks_[i >> chunk_bits][i & (chunk_size - 1)];
    }
    /// Nodes ever handed out (indices below this are valid).
    [[nodiscard]] std::uint32_t size() const noexcept { return count_; }
    /// Cancelled nodes that a storage still refers to.
    [[nodiscard]] std::size_t cancelled_count() const noexcept { return cancelled_; }
    /// Whether the next allocate() has to add a chunk.
    [[nodiscard]] bool full() const noexcept { return free_ == nil && count_ == capacity(); }
    [[nodiscard]] std::uint32_t tag(std::uint32_t i) const noexcept { return tags_[i]; }
    [[nodiscard]] bool cancelled(std::uint32_t i) const noexcept { return (tags_[i] & 1u) != 0; }
    /// Holds a pending timer: in a storage and not cancelled.
    [[nodiscard]] bool live(std::uint32_t i) const noexcept {
        return (*this)[i].where != 0 && !cancelled(i);
    }

    /// A free node (its `where` still 0). May allocate a chunk.
    std::uint32_t allocate() {
        if (free_ != nil) {
            const std::uint32_t i = free_;
            free_ = (*this)[i].next;
            return i;
        }
        if (count_ == capacity()) add_chunk();
        return count_++;
    }
    /// Marks a pending timer cancelled (its item already destroyed).
    void cancel(std::uint32_t i) noexcept {
        tags_[i] |= 1u;
        ++cancelled_;
    }
    /// Frees a node that was allocated (pending with its item gone, or
    /// cancelled): a new generation, so no old handle matches it.
    void release(std::uint32_t i) noexcept {
        if (tags_[i] & 1u) --cancelled_;
        tags_[i] = (tags_[i] | 1u) + 1u;
        node& n = (*this)[i];
        n.where = 0;
        n.next = free_;
        free_ = i;
    }
    /// Releases the node if it is cancelled. \returns whether it was.
    bool drop_if_cancelled(std::uint32_t i) noexcept {
        if (!cancelled(i)) return false;
        release(i);
        return true;
    }
    void reserve(std::size_t n) {
        while (capacity() < n) add_chunk();
    }
    /// One pass over every node in memory order: frees the cancelled ones
    /// and calls keep(i) for each live one (a storage's sweep rebuilds
    /// itself from those).
    template <class Keep>
    void sweep(Keep&& keep) noexcept {
        for (std::uint32_t i = 0; i < count_; ++i) {
            if ((*this)[i].where == 0) continue;
            if (cancelled(i)) release(i);
            else keep(i);
        }
    }

private:
    [[nodiscard]] std::uint32_t capacity() const noexcept {
        return static_cast<std::uint32_t>(chunks_.size()) * chunk_size;
    }
    void add_chunk() {
        if (capacity() >= nil - chunk_size) throw std::length_error("conq::delay_queue: too many timers");
        const std::size_t n = std::size_t{capacity()} + chunk_size;
        tags_.resize(n);
        chunks_.push_back(std::make_unique<node[]>(chunk_size));
    }

    std::vector<std::unique_ptr<node[]>> chunks_;
    std::vector<std::uint32_t> tags_;
    std::uint32_t free_ = nil;
    std::uint32_t count_ = 0;
    std::size_t cancelled_ = 0;
};

/// A heap of timers by (due, seq). Cancelled timers stay in it until they
/// reach the top (or a sweep), where they are dropped.
template <class T>
class timer_min_heap {
    struct entry {
        std::int64_t due;
        std::uint64_t seq;
        std::uint32_t idx;
    };
    struct before {
        bool operator()(const entry& a, const entry& b) const noexcept {
            return a.due < b.due || (a.due == b.due && a.seq < b.seq);
        }
    };

public:
    explicit timer_min_heap(timer_slab<T>& slab) : slab_(&slab) {}
    void reserve(std::size_t n) { h_.reserve(n); }
    void reserve_one_more() { h_.reserve_one_more(); }
    /// Room for n entries in all, growing geometrically.
    void reserve_for(std::size_t n) {
        if (h_.reserved() < n) h_.reserve(std::max(n, h_.reserved() + h_.reserved() / 2 + 16));
    }
    /// \pre room reserved
    void insert(std::uint32_t i) noexcept {
        auto& n = (*slab_)[i];
        n.where = 1;
        h_.push(entry{n.due, n.seq, i});
    }
    /// Whether no live timer is left (drops cancelled ones from the top).
    [[nodiscard]] bool empty() noexcept {
        while (!h_.empty() && slab_->drop_if_cancelled(h_.top().idx)) (void)h_.pop();
        return h_.empty();
    }
    /// \pre !empty()
    [[nodiscard]] std::uint32_t top() const noexcept { return h_.top().idx; }
    [[nodiscard]] std::int64_t top_due() const noexcept { return h_.top().due; }
    /// \pre !empty()
    std::uint32_t pop() noexcept { return h_.pop().idx; }
    /// Empties the heap without touching the nodes.
    void clear() noexcept { h_.clear(); }
    /// During a sweep: keeps node i (in a heap), then rebuild() restores the order.
    void keep(std::uint32_t i) noexcept {
        auto& n = (*slab_)[i];
        h_.push_unordered(entry{n.due, n.seq, i});
    }
    void rebuild() noexcept { h_.make_heap(); }

private:
    dary_heap<entry, before> h_;
    timer_slab<T>* slab_;
};

// Both storages cancel lazily: cancel() only marks the timer's tag (O(1),
// and the node itself is not touched unless the item has a destructor), and
// the storage frees the node when it meets it (at the top of a heap, or when
// a wheel bucket is spread). So that cancelled timers never
// outnumber live ones by much, the queue calls sweep() when they do: one
// pass over the nodes in memory order frees the cancelled ones and rebuilds
// the storage from the live ones (O(nodes), amortised O(1) per cancel).

/// timer_heap storage.
template <class T>
class heap_timers {
public:
    explicit heap_timers(timer_slab<T>& slab) : slab_(&slab), h_(slab) {}
    void reserve(std::size_t n) { h_.reserve(n); }
    void prepare_insert() { h_.reserve_one_more(); }
    void insert(std::uint32_t i) noexcept { h_.insert(i); }
    /// The earliest live timer (nil if none). Exact.
    std::uint32_t earliest() noexcept { return h_.empty() ? nil : h_.top(); }
    /// Removes the earliest timer if it is due at `now`; nil otherwise.
    std::uint32_t pop_due(std::int64_t now) noexcept {
        if (h_.empty() || h_.top_due() > now) return nil;
        return h_.pop();
    }
    /// Frees every cancelled node, keeps the live ones.
    void sweep() noexcept {
        h_.clear();  // its room stays: every kept node was in it
        slab_->sweep([this](std::uint32_t i) noexcept { h_.keep(i); });
        h_.rebuild();
    }
    /// Forgets every timer (the queue has freed the nodes).
    void reset() noexcept { h_.clear(); }

private:
    timer_slab<T>* slab_;
    timer_min_heap<T> h_;
};

/// timer_wheel storage: 11 levels of 64 buckets (6 bits of the tick each,
/// 66 bits: every tick fits, no overflow list). A timer due at tick t sits at
/// the lowest level whose window holds t, relative to the current tick c;
/// timers of ticks <= c wait in a small exact heap (`ready_`), so delivery is
/// exact: the wheel only buckets the future. Moving c forward jumps straight
/// to the next non-empty bucket (bitmaps), never tick by tick, and spreads
/// that bucket's timers over the levels below (or into ready_). Buckets are
/// singly linked lists: schedule and cancel touch only the timer's node.
template <class T, std::int64_t TickNs>
class wheel_timers {
    static constexpr unsigned bits = 6;
    static constexpr unsigned slots = 1u << bits;
    static constexpr unsigned levels = 11;

public:
    explicit wheel_timers(timer_slab<T>& slab) : slab_(&slab), ready_(slab) { reset(); }
    void reserve(std::size_t n) { ready_.reserve(n); }
    // Spreading a bucket can move any number of timers into ready_, so its
    // room covers every node there is.
    void prepare_insert() { ready_.reserve_for(std::size_t{slab_->size()} + 1); }

    void insert(std::uint32_t i) noexcept {
        auto& n = (*slab_)[i];
        const std::uint64_t t = tick(n.due);
        if (t <= cur_) {
            ready_.insert(i);
            return;
        }
        const unsigned l = static_cast<unsigned>(std::bit_width(t ^ cur_) - 1) / bits;
        const unsigned s = static_cast<unsigned>(t >> (bits * l)) & (slots - 1);
        link(i, l, s);
    }
    std::uint32_t earliest() noexcept {
        // Spill buckets into ready_ until it holds the earliest timer: every
        // timer still in a bucket is due at a later tick than any in ready_.
        while (ready_.empty()) {
            if (!advance_one(std::numeric_limits<std::uint64_t>::max())) return nil;
        }
        return ready_.top();
    }
    std::uint32_t pop_due(std::int64_t now) noexcept {
        const std::uint64_t t = tick(now);
        while (advance_one(t)) {
        }
        if (cur_ < t) cur_ = t;
        if (ready_.empty() || ready_.top_due() > now) return nil;
        return ready_.pop();
    }
    /// Frees every cancelled node; relinks the live ones into the buckets
    /// they were in (their `where`), or ready_.
    void sweep() noexcept {
        reset();
        slab_->sweep([this](std::uint32_t i) noexcept {
            const std::uint16_t w = (*slab_)[i].where;
            if (w == 1) ready_.keep(i);
            else link(i, (w - 2u) / slots, (w - 2u) % slots);
        });
        ready_.rebuild();
    }
    /// Forgets every timer (the queue has freed the nodes).
    void reset() noexcept {
        for (auto& l : head_) l.fill(nil);
        std::fill(std::begin(occupied_), std::end(occupied_), std::uint64_t{0});
        ready_.clear();
    }

private:
    static std::uint64_t tick(std::int64_t ns) noexcept {
        return ns <= 0 ? 0 : static_cast<std::uint64_t>(ns / TickNs);
    }

    void link(std::uint32_t i, unsigned l, unsigned s) noexcept {
        auto& n = (*slab_)[i];
        n.where = static_cast<std::uint16_t>(2 + l * slots + s);
        n.next = head_[l][s];
        head_[l][s] = i;
        occupied_[l] |= std::uint64_t{1} << s;
    }

    // Moves cur_ to the start of the earliest non-empty bucket if that is
    // at most `limit`, and spreads that bucket (freeing its cancelled
    // timers). False if there is none.
    bool advance_one(std::uint64_t limit) noexcept {
        std::uint64_t start = std::numeric_limits<std::uint64_t>::max();
        unsigned level = levels;
        for (unsigned l = 0; l < levels; ++l) {
            if (occupied_[l] == 0) continue;
            const unsigned s = static_cast<unsigned>(std::countr_zero(occupied_[l]));
            const unsigned shift = bits * (l + 1);
            const std::uint64_t prefix = shift >= 64 ? 0 : (cur_ >> shift) << shift;
            const std::uint64_t st = prefix | (std::uint64_t{s} << (bits * l));
            if (st < start) {
                start = st;
                level = l;
            }
            break;  // bucket ranges of lower levels come before those of higher ones
        }
        if (level == levels || start > limit) return false;
        cur_ = start;
        const unsigned s = static_cast<unsigned>(std::countr_zero(occupied_[level]));
        std::uint32_t i = head_[level][s];
        head_[level][s] = nil;
        occupied_[level] &= ~(std::uint64_t{1} << s);
        while (i != nil) {
            const std::uint32_t next = (*slab_)[i].next;
            if (!slab_->drop_if_cancelled(i)) insert(i);  // lands in ready_ or a lower level
            i = next;
        }
        return true;
    }

    timer_slab<T>* slab_;
    timer_min_heap<T> ready_;
    std::uint64_t cur_ = 0;
    std::uint64_t occupied_[levels] = {};
    std::array<std::array<std::uint32_t, slots>, levels> head_;
};

template <class S>
inline constexpr bool is_timer_wheel = false;
template <std::int64_t N>
inline constexpr bool is_timer_wheel<timer_wheel<N>> = true;

template <class T, class Storage>
struct timer_storage_for {
    using type = heap_timers<T>;
};
template <class T, std::int64_t N>
struct timer_storage_for<T, timer_wheel<N>> {
    using type = wheel_timers<T, N>;
};

/// Subscribes a queue to a manual_clock's advances (nothing for others).
template <class Clock, class Queue>
class clock_link {
public:
    clock_link(Clock&, Queue&) noexcept {}
};
template <subscribable_clock Clock, class Queue>
class clock_link<Clock, Queue> final : public clock_listener {
public:
    clock_link(Clock& c, Queue& q) noexcept : clock_(&c), queue_(&q) { c.subscribe(*this); }
    ~clock_link() { clock_->unsubscribe(*this); }
    clock_link(const clock_link&) = delete;
    clock_link& operator=(const clock_link&) = delete;
    void clock_advanced() noexcept override { queue_->wake_all(); }

private:
    Clock* clock_;
    Queue* queue_;
};

}  // namespace detail

/// A concurrent delay queue; see the top of this header. Neither copyable
/// nor movable.
///
/// Memory effect: everything a thread wrote before scheduling an item is
/// visible to the thread whose pop returns it.
template <class T, class... Policies>
class delay_queue {
    using set = detail::policy_set<Policies...>;

public:
    using value_type = T;
    using clock_type = detail::delay_clock_t<set>;
    using time_point = typename clock_type::time_point;
    using duration = typename clock_type::duration;
    using policies = set;

    static_assert(conq::clock_type<clock_type>,
                  "conq::delay_queue: the clock must be steady (time never runs backwards) and have "
                  "now(); a wall clock such as std::chrono::system_clock can jump and release or "
                  "hold items wrongly. Use conq::steady_clock or conq::manual_clock.");
    static_assert(std::is_object_v<T> && !std::is_const_v<T> && !std::is_array_v<T>,
                  "conq::delay_queue: T must be a non-const object type that is not an array.");
    static_assert(std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>,
                  "conq::delay_queue: T's move constructor and destructor must be noexcept.");
    static_assert(!std::is_same_v<typename set::overflow, drop_oldest>,
                  "conq::delay_queue: drop_oldest has no meaning for a delay order (the oldest "
                  "item is not the one due last); use block or reject.");
    static_assert(!set::has_wait || std::is_same_v<typename set::wait, blocking> ||
                      std::is_same_v<typename set::wait, backoff>,
                  "conq::delay_queue: a delay queue sleeps until the next due time; spin and yield "
                  "do not apply. Remove the wait policy (or use blocking).");
    static_assert(std::is_same_v<typename set::order, fifo> ||
                      !std::is_void_v<typename detail::order_clock<typename set::order>::type>,
                  "conq::delay_queue: the only order policy it takes is delay_order<Clock>; "
                  "remove the order policy.");
    static_assert(!set::shared,
                  "conq::delay_queue: shared_memory applies to rings only (timers live on this "
                  "process's heap); remove it.");
    static_assert(!set::has_clock ||
                      std::is_void_v<typename detail::order_clock<typename set::order>::type> ||
                      std::is_same_v<typename set::clock,
                                     typename detail::order_clock<typename set::order>::type>,
                  "conq::delay_queue: the clock policy and delay_order<Clock> name different "
                  "clocks; keep one.");
    static_assert(!set::has_priority_mode && !set::is_stable,
                  "conq::delay_queue: strict, relaxed and stable apply to priority queues; a delay "
                  "queue is always exact and stable. Remove them.");

    static constexpr std::size_t unbounded = std::numeric_limits<std::size_t>::max();

    /// A scheduled item, for cancel(). A default handle refers to nothing;
    /// a failed schedule returns one. Handles of popped or cancelled items
    /// never match a later item (unless kept while one timer slot is
    /// reused 2^31 times: the generation has 31 bits).
    class handle {
    public:
        handle() = default;
        explicit operator bool() const noexcept { return idx_ != detail::nil; }
        friend bool operator==(handle, handle) = default;

    private:
        friend class delay_queue;
        handle(const delay_queue* q, std::uint32_t i, std::uint32_t g) noexcept
            : queue_(q), idx_(i), tag_(g) {}
        const delay_queue* queue_ = nullptr;
        std::uint32_t idx_ = detail::nil;
        std::uint32_t tag_ = 0;  // the node's tag when it was scheduled (see timer_slab)
    };

    /// Uses a clock of its own (clock() returns it). Without capacity<N>:
    /// unbounded; with it: at most N pending items.
    delay_queue() requires std::is_default_constructible_v<clock_type>
        : delay_queue(own_tag{}, nullptr, set::inline_storage ? set::capacity::value : unbounded) {}
    /// Reads time from `clock`, which must outlive the queue (a
    /// manual_clock's advance() then wakes this queue's sleeping pops).
    explicit delay_queue(clock_type& clock)
        : delay_queue(own_tag{}, &clock, set::inline_storage ? set::capacity::value : unbounded) {}
    /// At most `capacity` pending items. \throws std::invalid_argument if 0.
    explicit delay_queue(std::size_t capacity) requires(!set::inline_storage &&
                                                        std::is_default_constructible_v<clock_type>)
        : delay_queue(own_tag{}, nullptr, detail::checked_bound("conq::delay_queue", capacity)) {}
    delay_queue(clock_type& clock, std::size_t capacity) requires(!set::inline_storage)
        : delay_queue(own_tag{}, &clock, detail::checked_bound("conq::delay_queue", capacity)) {}

    delay_queue(const delay_queue&) = delete;
    delay_queue& operator=(const delay_queue&) = delete;
    ~delay_queue() = default;

    // ------------------------------------------------------------ scheduling

    /// Schedules `v` to become poppable at `due`. Never waits.
    /// \returns a handle for cancel(); a null handle if closed or full (then
    /// `v` was not moved from).
    /// \throws std::bad_alloc (nothing scheduled, `v` not moved from).
    handle schedule_at(T&& v, time_point due) { return emplace_at(due, std::move(v)); }
    handle schedule_at(const T& v, time_point due) requires std::is_copy_constructible_v<T> {
        return emplace_at(due, v);
    }
    /// Schedules `v` at now() + `delay`.
    handle schedule_after(T&& v, duration delay) { return emplace_at(after(delay), std::move(v)); }
    handle schedule_after(const T& v, duration delay) requires std::is_copy_constructible_v<T> {
        return emplace_at(after(delay), v);
    }
    /// Constructs the item from `args`, due at `due`.
    template <class... Args>
    handle emplace_at(time_point due, Args&&... args) requires std::is_constructible_v<T, Args&&...> {
        std::lock_guard lk(mu_);
        if (closed_ || size_ >= bound_) return {};
        return add(true, ns(due), std::forward<Args>(args)...);
    }

    /// Removes a pending item. \returns true if it was pending (it will
    /// never be popped); false if it was already popped or cancelled, or the
    /// handle is null or was made by another queue.
    bool cancel(handle h) noexcept {
        std::lock_guard lk(mu_);
        if (h.queue_ != this || h.idx_ == detail::nil || h.idx_ >= slab_.size()) return false;
        // Only the tag is read: the node itself is not touched unless the
        // item has a destructor to run.
        if (slab_.tag(h.idx_) != h.tag_) return false;
        if constexpr (!std::is_trivially_destructible_v<T>) slab_[h.idx_].item.ptr()->~T();
        slab_.cancel(h.idx_);
        removed_locked(1);
        if (slab_.cancelled_count() > size_ + sweep_slack) timers_.sweep();
        return true;
    }

    /// Cancels every pending item. \returns how many.
    std::size_t clear() noexcept {
        std::lock_guard lk(mu_);
        std::size_t n = 0;
        for (std::uint32_t i = 0, end = slab_.size(); i < end; ++i) {
            if (slab_[i].where == 0) continue;
            if (slab_.live(i)) {
                slab_[i].item.ptr()->~T();
                ++n;
            }
            slab_.release(i);
        }
        timers_.reset();
        removed_locked(n);
        return n;
    }

    /// The due time of the earliest pending item, if any.
    [[nodiscard]] std::optional<time_point> next_due() {
        std::lock_guard lk(mu_);
        const std::uint32_t i = timers_.earliest();
        if (i == detail::nil) return std::nullopt;
        return to_time(slab_[i].due);
    }

    /// Moves up to `max` items that are due now out to `out`, earliest
    /// first. Never waits. \returns how many.
    template <class OutIt>
    std::size_t drain_due(OutIt out, std::size_t max) {
        std::lock_guard lk(mu_);
        const std::int64_t now = ns(clock_->now());
        std::size_t n = 0;
        for (; n < max; ++n) {
            const std::uint32_t i = timers_.pop_due(now);
            if (i == detail::nil) break;
            T* p = slab_[i].item.ptr();
            *out = std::move(*p);
            ++out;
            p->~T();
            slab_.release(i);
        }
        removed_locked(n);
        return n;
    }

    // ------------------------------------------------- the common interface

    /// Pushes an item due now (poppable at once). Never waits.
    [[nodiscard]] bool try_push(T&& v) { return static_cast<bool>(emplace_at(clock_->now(), std::move(v))); }
    [[nodiscard]] bool try_push(const T& v) requires std::is_copy_constructible_v<T> {
        return static_cast<bool>(emplace_at(clock_->now(), v));
    }
    template <class... Args>
    [[nodiscard]] bool try_emplace(Args&&... args) requires std::is_constructible_v<T, Args&&...> {
        return static_cast<bool>(emplace_at(clock_->now(), std::forward<Args>(args)...));
    }
    /// Pushes an item due now, waiting while full (overflow `block`).
    bool push(T&& v) { return push_until(std::move(v), detail::no_deadline); }
    bool push(const T& v) requires std::is_copy_constructible_v<T> {
        return push_until(v, detail::no_deadline);
    }
    template <class Rep, class Period>
    bool push_for(T&& v, std::chrono::duration<Rep, Period> timeout) {
        return push_until(std::move(v), detail::deadline_after(timeout));
    }
    template <class Rep, class Period>
    bool push_for(const T& v, std::chrono::duration<Rep, Period> timeout)
        requires std::is_copy_constructible_v<T>
    {
        return push_until(v, detail::deadline_after(timeout));
    }

    /// Pops the earliest item if it is due. Never waits.
    [[nodiscard]] std::optional<T> try_pop() {
        std::optional<T> out;
        std::lock_guard lk(mu_);
        take_due(out);
        return out;
    }
    [[nodiscard]] bool try_pop(T& out) {
        std::optional<T> v = try_pop();
        if (!v) return false;
        out = std::move(*v);
        return true;
    }
    /// Pops the earliest item, sleeping until it is due; wakes early when an
    /// earlier item is scheduled or the queue closes. nullopt once the queue
    /// is closed and holds nothing (items pending at close() are still
    /// delivered at their due times; clear() drops them).
    std::optional<T> pop() { return pop_until(detail::no_deadline); }
    /// As pop, giving up after `timeout` of real (steady) time.
    template <class Rep, class Period>
    std::optional<T> pop_for(std::chrono::duration<Rep, Period> timeout) {
        return pop_until(detail::deadline_after(timeout));
    }

    /// Pushes items due now, in order, while there is room. \returns how many.
    template <std::input_iterator It>
    [[nodiscard]] std::size_t try_push_n(It first, It last) {
        std::lock_guard lk(mu_);
        const std::int64_t now = ns(clock_->now());
        std::size_t n = 0;
        for (; first != last && !closed_ && size_ < bound_; ++first, ++n) {
            (void)add(false, now, std::move(*first));
        }
        if (n) wake_pops(true);
        return n;
    }
    /// drain_due(out, max).
    template <class OutIt>
    [[nodiscard]] std::size_t try_pop_n(OutIt out, std::size_t max) {
        return drain_due(out, max);
    }

    /// Closes the queue: schedules and pushes fail from now on, and every
    /// waiting pop and push wakes. Idempotent.
    void close() noexcept {
        {
            std::lock_guard lk(mu_);
            closed_ = true;
        }
        cv_.notify_all();
        not_full_.notify_all();
    }
    [[nodiscard]] bool closed() const noexcept {
        std::lock_guard lk(mu_);
        return closed_;
    }
    /// The most pending items (`unbounded` without a capacity).
    [[nodiscard]] std::size_t capacity() const noexcept { return bound_; }
    /// The number of pending items (due or not).
    [[nodiscard]] std::size_t size_approx() const noexcept {
        return size_atomic_.load(std::memory_order_relaxed);
    }
    /// The clock this queue reads.
    [[nodiscard]] clock_type& clock() noexcept { return *clock_; }

    /// Wakes every sleeping pop so it re-reads the clock (a manual_clock
    /// calls this on advance()).
    void wake_all() noexcept {
        { std::lock_guard lk(mu_); }
        cv_.notify_all();
    }

private:
    struct own_tag {};
    using storage = typename detail::timer_storage_for<T, typename set::timer_storage>::type;

    delay_queue(own_tag, clock_type* external, std::size_t bound)
        : clock_(external ? external : &own_clock_), bound_(bound), timers_(slab_),
          link_(*clock_, *this) {
        if (bound_ != unbounded) {
            // Live timers plus cancelled ones not yet swept (see add()).
            slab_.reserve(bound_ + bound_ / 2 + sweep_slack + 1);
            timers_.reserve(bound_ + bound_ / 2 + sweep_slack + 1);
        }
    }

    static std::int64_t ns(time_point t) noexcept {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    }
    static time_point to_time(std::int64_t n) noexcept {
        return time_point(std::chrono::duration_cast<duration>(std::chrono::nanoseconds(n)));
    }
    time_point after(duration d) const noexcept {
        const time_point now = clock_->now();
        if (d > time_point::max() - now) return time_point::max();
        return now + d;
    }

    // Holding mu_: adds a timer. Builds the item first (if that throws,
    // nothing changed). `notify`: wake a pop (a new item may be the earliest,
    // and the sleeping leader waits for a later time).
    template <class... Args>
    handle add(bool notify, std::int64_t due, Args&&... args) {
        // A bounded queue never allocates after construction: when its
        // nodes run out, some are cancelled ones (at most bound_ are live),
        // and a sweep frees them.
        if (bound_ != unbounded && slab_.full() && slab_.cancelled_count() != 0) timers_.sweep();
        const std::uint32_t i = slab_.allocate();
        auto& n = slab_[i];
        try {
            timers_.prepare_insert();
            ::new (static_cast<void*>(n.item.bytes)) T(std::forward<Args>(args)...);
        } catch (...) {
            slab_.release(i);
            throw;
        }
        n.due = due;
        n.seq = next_seq_++;
        timers_.insert(i);
        ++size_;
        size_atomic_.store(size_, std::memory_order_relaxed);
        if (notify) {
            leader_ = nullptr;
            wake_pops(false);
        }
        return handle(this, i, slab_.tag(i));
    }

    void removed_locked(std::size_t n) noexcept {
        if (n == 0) return;
        size_ -= n;
        size_atomic_.store(size_, std::memory_order_relaxed);
        if (bound_ != unbounded && push_waiters_ != 0) not_full_.notify_all();
    }

    // Holding mu_: wakes one sleeping pop, or all; nothing (not even the
    // condition variable's own lock) while none sleeps.
    void wake_pops(bool all) noexcept {
        if (pop_waiters_ == 0) return;
        if (all) cv_.notify_all(); else cv_.notify_one();
    }

    bool take_due(std::optional<T>& out) noexcept {
        const std::uint32_t i = timers_.pop_due(ns(clock_->now()));
        if (i == detail::nil) return false;
        T* p = slab_[i].item.ptr();
        out.emplace(std::move(*p));
        p->~T();
        slab_.release(i);
        removed_locked(1);
        return true;
    }

    template <class U>
    bool push_until(U&& v, detail::deadline_t deadline) {
        std::unique_lock lk(mu_);
        for (;;) {
            if (closed_) return false;
            if (size_ < bound_) {
                (void)add(true, ns(clock_->now()), std::forward<U>(v));
                return true;
            }
            if constexpr (std::is_same_v<typename set::overflow, reject>) return false;
            bool timed_out = false;
            ++push_waiters_;
            if (deadline == detail::no_deadline) {
                not_full_.wait(lk);
            } else {
                timed_out = not_full_.wait_until(lk, deadline) == std::cv_status::timeout;
            }
            --push_waiters_;
            if (timed_out && (closed_ || size_ >= bound_)) return false;
        }
    }

    std::optional<T> pop_until(detail::deadline_t deadline) {
        std::optional<T> out;
        std::unique_lock lk(mu_);
        const void* const me = &out;
        for (;;) {
            if (take_due(out)) {
                if (leader_ == nullptr && size_ != 0) wake_pops(false);  // next leader
                return out;
            }
            const std::uint32_t first = timers_.earliest();
            if (first == detail::nil && closed_) return out;
            if (detail::wait_clock::now() >= deadline) {
                // Giving up: if nobody sleeps until the earliest due time
                // any more (we may have been that pop), wake one that will.
                if (leader_ == nullptr && first != detail::nil) wake_pops(false);
                return out;
            }
            ++pop_waiters_;
            if constexpr (detail::subscribable_clock<clock_type>) {
                // Time moves by advance(), which wakes us: wait untimed.
                if (deadline == detail::no_deadline) cv_.wait(lk);
                else cv_.wait_until(lk, deadline);
            } else if (first == detail::nil || leader_ != nullptr) {
                // Nothing pending, or another pop already sleeps until the
                // earliest due time: wait to be told.
                if (deadline == detail::no_deadline) cv_.wait(lk);
                else cv_.wait_until(lk, deadline);
            } else {
                leader_ = me;
                const auto wake = steady_deadline(slab_[first].due);
                cv_.wait_until(lk, std::min(wake, deadline));
                if (leader_ == me) leader_ = nullptr;
            }
            --pop_waiters_;
        }
    }

    // A due time of this clock as a steady_clock deadline.
    detail::deadline_t steady_deadline(std::int64_t due) const noexcept {
        if constexpr (std::is_same_v<clock_type, steady_clock>) {
            return detail::deadline_t(std::chrono::nanoseconds(due));
        } else {
            const std::int64_t now = ns(clock_->now());
            return detail::deadline_after(std::chrono::nanoseconds(due > now ? due - now : 0));
        }
    }

    // Cancelled timers may outnumber live ones by this much before a sweep.
    static constexpr std::size_t sweep_slack = 64;

    mutable detail::spin_word mu_;
    std::condition_variable_any cv_;        // pops
    std::condition_variable_any not_full_;  // pushes waiting for room
    std::size_t pop_waiters_ = 0;           // sleeping on cv_ (under mu_)
    std::size_t push_waiters_ = 0;          // sleeping on not_full_ (under mu_)
    [[no_unique_address]] clock_type own_clock_{};
    clock_type* clock_;
    const std::size_t bound_;
    std::size_t size_ = 0;
    std::atomic<std::size_t> size_atomic_{0};
    std::uint64_t next_seq_ = 0;
    bool closed_ = false;
    const void* leader_ = nullptr;
    detail::timer_slab<T> slab_;
    storage timers_;
    detail::clock_link<clock_type, delay_queue> link_;
};

static_assert(concurrent_queue<delay_queue<int>>);

}  // namespace conq

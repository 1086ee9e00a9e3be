// conq/spsc_ring.hpp
//
// conq::spsc_ring<T, Policies...>: a bounded FIFO ring for exactly one
// producer thread and one consumer thread at a time.
//
// Design: head and tail are monotonically increasing counters on their own
// cache lines; each side keeps a private copy of the other side's counter and
// reloads it only when that copy says "full" (producer) or "empty"
// (consumer), so in steady state a side touches the other's line once per
// batch of items, not once per item. Capacity is a power of two (index by
// mask). Batch calls publish their whole batch with one store.
//
// Memory effect: everything the producer wrote before a successful push is
// visible to the consumer after the pop that returns that item (the tail
// store is a release, its load an acquire), and symmetrically for the slot
// reuse.
//
// Policies: capacity<N>, a wait policy, overflow block or reject. For
// drop_oldest or more threads, use mpmc_ring (conq::queue picks it for you).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "conq/detail/platform.hpp"
#include "conq/detail/ring_front.hpp"
#include "conq/detail/storage.hpp"
#include "conq/detail/wait.hpp"
#include "conq/policy.hpp"

namespace conq {

template <class T, class... Policies>
class spsc_ring
    : public detail::ring_front<spsc_ring<T, Policies...>, T,
                                typename detail::policy_set<Policies...>::overflow> {
    using set = detail::policy_set<Policies...>;
    using front = detail::ring_front<spsc_ring, T, typename set::overflow>;
    friend front;

    static_assert(std::is_object_v<T> && !std::is_const_v<T> && !std::is_array_v<T>,
                  "conq::spsc_ring: T must be a non-const object type that is not an array.");
    static_assert(std::is_nothrow_destructible_v<T>,
                  "conq::spsc_ring: T's destructor must not throw.");
    static_assert(std::is_move_constructible_v<T>,
                  "conq::spsc_ring: T must be move constructible.");
    static_assert(std::is_same_v<typename set::concurrency, spsc> || !set::has_concurrency,
                  "conq::spsc_ring: only conq::spsc is allowed here; for several producers or "
                  "consumers use conq::mpmc_ring<T, conq::mpsc/spmc/mpmc> or conq::queue.");
    static_assert(!std::is_same_v<typename set::overflow, drop_oldest>,
                  "conq::spsc_ring: drop_oldest needs the producer to pop, which one consumer "
                  "slot cannot share; use conq::queue<T, conq::spsc, conq::drop_oldest> (it "
                  "picks mpmc_ring) or conq::mpmc_ring<T, conq::spsc, conq::drop_oldest>.");
    static_assert(std::is_same_v<typename set::order, fifo>,
                  "conq::spsc_ring: rings are FIFO; priority_order and delay_order are not yet "
                  "available, remove the order policy.");
    static_assert(!set::has_clock,
                  "conq::spsc_ring: a clock policy only applies to delay_order; rings time "
                  "push_for/pop_for with std::chrono::steady_clock, so remove the clock policy.");

    using wait_type = typename set::wait;
    static constexpr std::size_t static_capacity =
        set::inline_storage ? detail::round_up_pow2(set::capacity::value) : 0;
    using item = detail::raw_item<T>;

public:
    using value_type = T;
    using policies = set;

    /// Constructs an empty ring with inline storage for capacity<N> items.
    spsc_ring() requires(set::inline_storage) : storage_(static_capacity) { init(); }

    /// Constructs an empty ring holding up to `capacity` items, rounded up to
    /// a power of two. Allocates once, here; never again.
    /// \throws std::invalid_argument if capacity is 0, std::length_error if
    /// it exceeds 2^40, std::bad_alloc.
    explicit spsc_ring(std::size_t capacity) requires(!set::inline_storage)
        : mask_(detail::checked_capacity("conq::spsc_ring", capacity) - 1), storage_(mask_ + 1) {
        init();
    }

    spsc_ring(const spsc_ring&) = delete;
    spsc_ring& operator=(const spsc_ring&) = delete;

    /// Destroys the items still inside. \pre no thread is using the ring.
    ~spsc_ring() {
        const std::size_t t = tail_.load(std::memory_order_relaxed);
        for (std::size_t h = head_.load(std::memory_order_relaxed); h != t; ++h) {
            slot(h).ptr()->~T();
        }
    }

    // ------------------------------------------------------------ producer

    /// Pushes a copy of `v` if there is room. Never blocks; wait-free.
    /// \returns false if full or closed (then nothing changed).
    [[nodiscard]] bool try_push(const T& v) requires std::is_copy_constructible_v<T> {
        return try_emplace_impl(v);
    }
    /// Moves `v` in if there is room; on false `v` was not moved from.
    [[nodiscard]] bool try_push(T&& v) { return try_emplace_impl(std::move(v)); }

    /// Constructs an item in place from `args` if there is room. If the
    /// constructor throws, the ring is unchanged and the exception propagates.
    template <class... Args>
    [[nodiscard]] bool try_emplace(Args&&... args) requires std::is_constructible_v<T, Args&&...> {
        return try_emplace_impl(std::forward<Args>(args)...);
    }

    /// Moves as many items of [first, last) in as fit, in order, and makes
    /// them visible with one store. \returns how many were moved in (the
    /// first ones of the range). If a move throws, the items before it are
    /// in the ring and the exception propagates.
    template <std::forward_iterator It>
    [[nodiscard]] std::size_t try_push_n(It first, It last) {
        const std::size_t want = static_cast<std::size_t>(std::distance(first, last));
        const std::size_t t = tail_.load(std::memory_order_relaxed);
        std::size_t room = capacity() - (t - head_cache_);
        if (room < want) {
            head_cache_ = head_.load(std::memory_order_acquire);
            room = capacity() - (t - head_cache_);
        }
        const std::size_t n = want < room ? want : room;
        if (n == 0 || !announce(t + n)) return 0;
        std::size_t done = 0;
        try {
            for (; done < n; ++done, ++first) ::new (slot(t + done).bytes) T(std::move(*first));
        } catch (...) {
            publish_tail(t + done, done);
            announced_.store(t + done, std::memory_order_release);
            throw;
        }
        publish_tail(t + n, n);
        return n;
    }

    // ------------------------------------------------------------ consumer

    /// Moves up to `max` items out to `out`, oldest first, and frees their
    /// slots with one store. \returns how many. If an assignment throws, the
    /// items before it are out of the ring, the rest stay.
    template <class OutIt>
    [[nodiscard]] std::size_t try_pop_n(OutIt out, std::size_t max) {
        const std::size_t h = head_.load(std::memory_order_relaxed);
        std::size_t avail = tail_cache_ - h;
        if (avail < max) {
            tail_cache_ = tail_.load(std::memory_order_acquire);
            avail = tail_cache_ - h;
        }
        const std::size_t n = max < avail ? max : avail;
        std::size_t done = 0;
        try {
            for (; done < n; ++done) {
                T* p = slot(h + done).ptr();
                *out = std::move(*p);
                ++out;
                p->~T();
            }
        } catch (...) {
            publish_head(h + done, done);
            throw;
        }
        publish_head(h + n, n);
        return n;
    }

    // ------------------------------------------------------------- any thread

    /// Closes the ring: later pushes fail, pops drain what is left and then
    /// return nullopt, and every waiting push and pop wakes. Idempotent.
    void close() noexcept {
        closed_.store(true, std::memory_order_seq_cst);
        detail::full_fence();
        not_empty_.notify_all();
        not_full_.notify_all();
    }
    /// Whether close() has been called.
    [[nodiscard]] bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

    /// The number of items the ring holds when full (a power of two).
    [[nodiscard]] std::size_t capacity() const noexcept {
        if constexpr (set::inline_storage) return static_capacity;
        else return mask_ + 1;
    }
    /// A snapshot of the number of items; may be stale by the time it returns.
    [[nodiscard]] std::size_t size_approx() const noexcept {
        const std::size_t h = head_.load(std::memory_order_acquire);
        const std::size_t t = tail_.load(std::memory_order_acquire);
        return t > h ? (t - h < capacity() ? t - h : capacity()) : 0;
    }

private:
    // A push first announces the tail it is about to publish, then checks
    // closed_. A consumer draining a closed ring waits until tail_ catches up
    // with announced_ (see drained()), so a push that passed its closed check
    // before close() is never stranded. One store to a line only the producer
    // writes; the light barrier orders it before the closed_ load.
    bool announce(std::size_t end) noexcept {
        announced_.store(end, std::memory_order_relaxed);
        detail::light_barrier();
        if (closed_.load(std::memory_order_relaxed)) [[unlikely]] {
            announced_.store(tail_.load(std::memory_order_relaxed), std::memory_order_release);
            return false;
        }
        return true;
    }

    void init() noexcept {
        (void)detail::asymmetric_barrier_init();
    }

    item& slot(std::size_t i) noexcept {
        if constexpr (set::inline_storage) return storage_.data()[i & (static_capacity - 1)];
        else return storage_.data()[i & mask_];
    }

    void publish_tail(std::size_t t, std::size_t n) noexcept {
        if (n == 0) return;
        tail_.store(t, std::memory_order_release);
        if (n == 1) not_empty_.notify_one(); else not_empty_.notify_all();
    }
    void publish_head(std::size_t h, std::size_t n) noexcept {
        if (n == 0) return;
        head_.store(h, std::memory_order_release);
        not_full_.notify_one();
    }

    template <class... Args>
    bool try_emplace_impl(Args&&... args) {
        const std::size_t t = tail_.load(std::memory_order_relaxed);
        if (t - head_cache_ == capacity()) {
            head_cache_ = head_.load(std::memory_order_acquire);
            if (t - head_cache_ == capacity()) return false;
        }
        if (!announce(t + 1)) return false;
        try {
            ::new (slot(t).bytes) T(std::forward<Args>(args)...);
        } catch (...) {
            announced_.store(t, std::memory_order_release);  // unchanged
            throw;
        }
        tail_.store(t + 1, std::memory_order_release);
        not_empty_.notify_one();
        return true;
    }

    template <class Take>
    bool try_pop_impl(Take&& take) {
        const std::size_t h = head_.load(std::memory_order_relaxed);
        if (h == tail_cache_) {
            tail_cache_ = tail_.load(std::memory_order_acquire);
            if (h == tail_cache_) return false;
        }
        T* p = slot(h).ptr();
        take(*p);  // if this throws, the item stays
        p->~T();
        head_.store(h + 1, std::memory_order_release);
        not_full_.notify_one();
        return true;
    }

    bool push_ready() const noexcept {
        return tail_.load(std::memory_order_relaxed) - head_.load(std::memory_order_acquire) <
                   capacity() ||
               closed();
    }
    bool pop_ready() const noexcept {
        return tail_.load(std::memory_order_acquire) != head_.load(std::memory_order_relaxed) ||
               closed();
    }
    // Consumer side, after seeing closed(): true when no item is left and no
    // push that started before close() can still land.
    bool drained() noexcept {
        detail::heavy_barrier();  // pairs with the light barrier in announce()
        std::size_t t = tail_.load(std::memory_order_acquire);
        while (announced_.load(std::memory_order_acquire) != t) {
            std::this_thread::yield();
            t = tail_.load(std::memory_order_acquire);
        }
        return t == head_.load(std::memory_order_relaxed);
    }

    // Written by the producer, read by the consumer.
    alignas(detail::destructive_size) std::atomic<std::size_t> tail_{0};
    // Written by the consumer, read by the producer.
    alignas(detail::destructive_size) std::atomic<std::size_t> head_{0};
    // Producer only (announced_ is read by a consumer draining a closed ring).
    alignas(detail::destructive_size) std::size_t head_cache_ = 0;
    std::atomic<std::size_t> announced_{0};
    // Consumer only.
    alignas(detail::destructive_size) std::size_t tail_cache_ = 0;
    // Read by both, written rarely.
    alignas(detail::destructive_size) std::atomic<bool> closed_{false};
    const std::size_t mask_ = static_capacity - 1;
    [[no_unique_address]] detail::wait_point<wait_type> not_empty_;
    [[no_unique_address]] detail::wait_point<wait_type> not_full_;
    alignas(detail::destructive_size) detail::slot_storage<item, static_capacity> storage_;
};

}  // namespace conq

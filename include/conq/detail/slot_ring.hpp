// conq/detail/slot_ring.hpp
//
// The ring behind conq::spsc_ring and conq::mpmc_ring: a bounded FIFO array
// of slots, each carrying a sequence number that says whose turn it is
// (Vyukov's bounded queue, with doubled numbers so that capacity 1 works). A
// producer with ticket p may fill its slot once the sequence reads 2p and
// publishes by storing 2p + 1; a consumer with ticket p may empty it once it
// reads 2p + 1 and frees it for ticket p + capacity by storing 2(p + capacity).
//
// A multi-producer (multi-consumer) side claims tickets by compare-and-swap
// on tail_ (head_) only after it saw the slot ready, so a thread never waits
// while holding a ticket (robust when threads outnumber cores). A single side
// keeps its counter to itself and needs no read-modify-write at all.
//
// With one producer and one consumer in one process (frees_by_index), the
// consumer never writes to a slot: it frees slots by moving head_ on, and
// the producer reads head_ only when its cached copy says the ring is full.
// The slot lines then travel one way, producer to consumer, instead of
// coming back modified. On a 2-vCPU VM that took batches of 64 from about
// 520 to 700-750 M items/s (docs/design-rings.md).
//
// Consecutive tickets go to different cache lines (a bit swap of the slot
// index), so a producer and a consumer working a few items apart do not
// fight over one line.
//
// Memory effect: everything a producer wrote before a successful push is
// visible to the consumer whose pop returns that item (the sequence store is
// a release, its load an acquire), and an item is destroyed before its slot
// is reused (the freeing store, of the sequence or of head_, is a release,
// and the producer reads it with acquire).
//
// Closing: with several producers close() sets a bit in tail_, so a push
// either claimed its ticket before close() (and its item will be popped) or
// fails. A single producer announces the ticket it is about to fill in
// tail_ before it checks closed_ (see announce()).
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "conq/detail/platform.hpp"
#include "conq/detail/ring_front.hpp"
#include "conq/detail/storage.hpp"
#include "conq/detail/wait.hpp"
#include "conq/policy.hpp"

namespace conq::detail {

/// The shared implementation; `Concurrency` is one of spsc, mpsc, spmc, mpmc.
template <class T, class Concurrency, class... Policies>
class slot_ring : public ring_front<slot_ring<T, Concurrency, Policies...>, T,
                                    typename policy_set<Policies...>::overflow> {
    using set = policy_set<Policies...>;
    using front = ring_front<slot_ring, T, typename set::overflow>;
    friend front;

    using concurrency = Concurrency;
    static constexpr bool drops = std::is_same_v<typename set::overflow, drop_oldest>;
    static constexpr bool multi_producer = concurrency::multi_producer;
    // With drop_oldest a producer pops too, so the consumer side is shared.
    static constexpr bool multi_consumer = concurrency::multi_consumer || drops;

    static_assert(std::is_object_v<T> && !std::is_const_v<T> && !std::is_array_v<T>,
                  "conq: a ring's T must be a non-const object type that is not an array.");
    static_assert(std::is_nothrow_destructible_v<T>,
                  "conq: a ring's T must have a destructor that does not throw.");
    static_assert(std::is_move_constructible_v<T>,
                  "conq: a ring's T must be move constructible.");
    static_assert(!(multi_producer || multi_consumer) || std::is_nothrow_move_constructible_v<T>,
                  "conq: with several producers or consumers (or drop_oldest), T's move "
                  "constructor must be noexcept: a thread that claimed a slot could not give it "
                  "back if the move threw. Mark it noexcept, or store std::unique_ptr<T>.");
    static_assert(std::is_same_v<typename set::order, fifo>,
                  "conq: rings are FIFO; for priority_order or delay_order use conq::queue, "
                  "conq::priority_queue or conq::delay_queue.");
    static_assert(!set::has_priority_mode && !set::is_stable && !set::has_timer_storage,
                  "conq: strict, relaxed, stable, timer_heap and timer_wheel apply to priority and "
                  "delay queues, not to rings; remove them.");
    static_assert(!set::has_clock,
                  "conq: a clock policy only applies to delay_order; rings time "
                  "push_for/pop_for with std::chrono::steady_clock, so remove the clock policy.");
    static_assert(!set::shared || std::is_trivially_copyable_v<T>,
                  "conq: a ring in shared memory holds only trivially copyable T (no pointers into "
                  "one process's heap, no destructors to run); copy the data into a plain struct.");

    static constexpr bool shared = set::shared;
    // One producer and one consumer, in one process: the consumer frees a
    // slot by moving head_ on, not by writing the slot's sequence, and the
    // producer reads head_ only when its cached copy says full.
    static constexpr bool frees_by_index = !multi_producer && !multi_consumer && !shared;

    using wait_type = typename set::wait;
    static constexpr std::size_t static_capacity =
        set::inline_storage ? round_up_pow2(set::capacity::value) : 0;
    static constexpr std::size_t closed_bit = std::size_t{1} << (sizeof(std::size_t) * 8 - 1);

    struct slot {
        std::atomic<std::size_t> seq;
        raw_item<T> item;
    };
    // In shared memory with a run-time capacity the slots follow the ring
    // object in the mapping; otherwise inline (capacity<N>) or on the heap.
    using storage_type = std::conditional_t<shared && !set::inline_storage, trailing_slot_storage<slot>,
                                            slot_storage<slot, static_capacity>>;
    // Slots per 64-byte line, if a slot's size divides the line; else 1.
    static constexpr std::size_t line_slots =
        (sizeof(slot) < constructive_size &&
         constructive_size % sizeof(slot) == 0)
            ? constructive_size / sizeof(slot)
            : 1;
    static constexpr unsigned line_shift = std::countr_zero(line_slots);

public:
    using value_type = T;
    using policies = set;

    /// Constructs an empty ring with inline storage for capacity<N> items.
    slot_ring() requires(set::inline_storage) : storage_(static_capacity) { init(); }

    /// Without capacity<N> there is nothing to size the ring by: a readable
    /// error instead of "use of deleted function".
    template <class Set = set>
    slot_ring() requires(!Set::inline_storage) : storage_(0) {
        static_assert(Set::inline_storage,
                      "conq: this ring has no capacity<N> policy, so its capacity is given to the "
                      "constructor: write q(1024), or add conq::capacity<1024> to the policies.");
    }

    /// Constructs an empty ring holding up to `capacity` items, rounded up to
    /// a power of two. Allocates once, here; never again.
    /// \throws std::invalid_argument if capacity is 0, std::length_error if
    /// it exceeds 2^40, std::bad_alloc.
    explicit slot_ring(std::size_t capacity) requires(!set::inline_storage && !shared)
        : mask_(checked_capacity("conq: ring", capacity) - 1), storage_(mask_ + 1) {
        init();
    }

    /// Shared memory, run-time capacity: constructs the ring in place at the
    /// start of a mapping that has room for shared_bytes(capacity) bytes.
    /// conq::shared_ring does this; nothing else should.
    slot_ring(shared_placement_t, std::size_t capacity) requires(shared && !set::inline_storage)
        : mask_(checked_capacity("conq: ring", capacity) - 1), storage_(mask_ + 1) {
        init();
    }
    /// Shared memory, capacity<N>: the same with the slots inside the object.
    explicit slot_ring(shared_placement_t) requires(shared && set::inline_storage) : storage_(static_capacity) {
        init();
    }
    /// Bytes a shared ring of `capacity` items needs from its first byte on.
    static constexpr std::size_t shared_bytes(std::size_t capacity) noexcept {
        if constexpr (shared && !set::inline_storage)
            return sizeof(slot_ring) + storage_type::bytes_after(round_up_pow2(capacity));
        else
            return sizeof(slot_ring);
    }

    slot_ring(const slot_ring&) = delete;
    slot_ring& operator=(const slot_ring&) = delete;

    /// Destroys the items still inside. \pre no thread is using the ring.
    ~slot_ring() {
        const std::size_t t = tail_.load(std::memory_order_relaxed) & ~closed_bit;
        for (std::size_t h = head_.load(std::memory_order_relaxed); h != t; ++h) {
            slot& s = slot_at(h);
            if (s.seq.load(std::memory_order_relaxed) == full_seq(h)) s.item.ptr()->~T();
        }
    }

    // ------------------------------------------------------------ producers

    /// Pushes a copy of `v` if there is room (with drop_oldest: always, making
    /// room). Never blocks. Lock-free with several producers, wait-free with
    /// one; with drop_oldest it may spin while a consumer finishes taking the
    /// oldest item.
    /// \returns false if full or closed; then nothing changed.
    [[nodiscard]] bool try_push(const T& v) requires std::is_copy_constructible_v<T> {
        return try_emplace_impl(v);
    }
    /// Moves `v` in if there is room; on false `v` was not moved from.
    [[nodiscard]] bool try_push(T&& v) { return try_emplace_impl(std::move(v)); }

    /// Constructs an item from `args` if there is room. With several
    /// producers and a constructor that may throw, the item is built before
    /// a slot is claimed: if it throws, nothing changed; if the ring is then
    /// full, rvalue arguments may have been moved from.
    template <class... Args>
    [[nodiscard]] bool try_emplace(Args&&... args) requires std::is_constructible_v<T, Args&&...> {
        return try_emplace_impl(std::forward<Args>(args)...);
    }

    /// Moves as many items of [first, last) in as fit, in order, claiming
    /// their slots with one compare-and-swap (several producers) or one
    /// counter store (one producer); each slot still gets its own turn
    /// store. With drop_oldest it pushes item by item. \returns how many (the first
    /// ones of the range).
    template <std::forward_iterator It>
    [[nodiscard]] std::size_t try_push_n(It first, It last) {
        if constexpr (drops) {
            std::size_t n = 0;
            for (; first != last && try_emplace_impl(std::move(*first)); ++first) ++n;
            return n;
        } else {
            const std::size_t want = static_cast<std::size_t>(std::distance(first, last));
            if (want == 0) return 0;
            std::size_t pos = 0, n = 0;
            if constexpr (multi_producer) {
                pos = tail_.load(std::memory_order_relaxed);
                for (;;) {
                    if (pos & closed_bit) return 0;
                    n = 0;
                    while (n < want && slot_at(pos + n).seq.load(std::memory_order_acquire) == free_seq(pos + n)) ++n;
                    if (n == 0) {
                        const std::size_t seq = slot_at(pos).seq.load(std::memory_order_acquire);
                        if (static_cast<std::ptrdiff_t>(seq - free_seq(pos)) < 0) return 0;  // full
                        pos = tail_.load(std::memory_order_relaxed);
                        continue;
                    }
                    if (tail_.compare_exchange_weak(pos, pos + n, std::memory_order_relaxed)) break;
                }
                for (std::size_t i = 0; i < n; ++i, ++first) {
                    slot& s = slot_at(pos + i);
                    ::new (s.item.bytes) T(std::move(*first));
                    s.seq.store(full_seq(pos + i), std::memory_order_release);
                }
            } else {
                pos = tail_.load(std::memory_order_relaxed);
                if constexpr (frees_by_index) {
                    n = std::min(want, room(pos, want));
                } else {
                    while (n < want && slot_at(pos + n).seq.load(std::memory_order_acquire) == free_seq(pos + n)) ++n;
                }
                if (n == 0 || !announce(pos, pos + n)) return 0;
                std::size_t done = 0;
                try {
                    for (; done < n; ++done, ++first) {
                        slot& s = slot_at(pos + done);
                        ::new (s.item.bytes) T(std::move(*first));
                        s.seq.store(full_seq(pos + done), std::memory_order_release);
                    }
                } catch (...) {
                    tail_.store(pos + done, std::memory_order_release);  // the rest: unchanged
                    if (done) not_empty_.notify_all();
                    throw;
                }
            }
            if (n == 1) not_empty_.notify_one(); else if (n > 1) not_empty_.notify_all();
            return n;
        }
    }

    // ------------------------------------------------------------ consumers

    /// Moves up to `max` items out to `out`, oldest first. \returns how many.
    template <class OutIt>
    [[nodiscard]] std::size_t try_pop_n(OutIt out, std::size_t max) {
        if (max == 0) return 0;
        std::size_t pos = 0, n = 0;
        if constexpr (multi_consumer) {
            static_assert(std::is_nothrow_assignable_v<decltype(*out), T&&>,
                          "conq: try_pop_n with several consumers (or drop_oldest), assigning a T&& "
                          "through the output iterator must be noexcept.");
            pos = head_.load(std::memory_order_relaxed);
            for (;;) {
                n = 0;
                while (n < max && slot_at(pos + n).seq.load(std::memory_order_acquire) == full_seq(pos + n)) ++n;
                if (n == 0) {
                    const std::size_t seq = slot_at(pos).seq.load(std::memory_order_acquire);
                    if (static_cast<std::ptrdiff_t>(seq - full_seq(pos)) < 0) return 0;  // empty
                    pos = head_.load(std::memory_order_relaxed);
                    continue;
                }
                if (head_.compare_exchange_weak(pos, pos + n, std::memory_order_relaxed)) break;
            }
            for (std::size_t i = 0; i < n; ++i) {
                slot& s = slot_at(pos + i);
                *out = std::move(*s.item.ptr());
                ++out;
                s.item.ptr()->~T();
                s.seq.store(free_seq(pos + i + capacity()), std::memory_order_release);
            }
        } else {
            pos = head_.load(std::memory_order_relaxed);
            try {
                for (; n < max; ++n) {
                    slot& s = slot_at(pos + n);
                    if (s.seq.load(std::memory_order_acquire) != full_seq(pos + n)) break;
                    *out = std::move(*s.item.ptr());
                    ++out;
                    s.item.ptr()->~T();
                    if constexpr (!frees_by_index)
                        s.seq.store(free_seq(pos + n + capacity()), std::memory_order_release);
                }
            } catch (...) {
                head_.store(pos + n, std::memory_order_release);
                if (n) not_full_.notify_all();
                throw;
            }
            head_.store(pos + n, std::memory_order_release);
        }
        if (n == 1) not_full_.notify_one(); else if (n > 1) not_full_.notify_all();
        return n;
    }

    // ------------------------------------------------------------- any thread

    /// Closes the ring: later pushes fail, pops drain what was accepted and
    /// then return nullopt, and every waiting push and pop wakes. Idempotent.
    void close() noexcept {
        // The tail bit first: whoever sees closed_ then also sees the final
        // tail, so a consumer never declares the ring drained while a
        // producer can still claim a ticket.
        if constexpr (multi_producer) tail_.fetch_or(closed_bit, std::memory_order_seq_cst);
        closed_.store(true, std::memory_order_seq_cst);
        full_fence();
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
        const std::size_t t = tail_.load(std::memory_order_acquire) & ~closed_bit;
        return t > h ? (t - h < capacity() ? t - h : capacity()) : 0;
    }
    /// With drop_oldest: how many items were removed to make room so far.
    [[nodiscard]] std::size_t dropped() const noexcept requires drops {
        return dropped_.load(std::memory_order_relaxed);
    }

private:
    // Single producer only. A push first moves tail_ past the tickets it is
    // about to fill (announcing them), then checks closed_; if the ring is
    // closed it moves tail_ back. A consumer draining a closed ring treats
    // every announced ticket as an item still to come (see drained()), so a
    // push that passed its closed check before close() is never stranded.
    // tail_ is on a line only the producer writes; the light barrier orders
    // the store before the closed_ load (the consumer's heavy barrier does
    // the rest).
    bool announce(std::size_t pos, std::size_t end) noexcept {
        tail_.store(end, std::memory_order_relaxed);
        if constexpr (shared) shared_light_barrier(); else light_barrier();
        if (closed_.load(std::memory_order_relaxed)) [[unlikely]] {
            tail_.store(pos, std::memory_order_release);
            return false;
        }
        return true;
    }

    void init() noexcept {
        if constexpr (shared) (void)shared_barrier_init();
        else (void)asymmetric_barrier_init();
        for (std::size_t i = 0; i < capacity(); ++i) {
            // The slot of ticket i starts free for ticket i.
            slot* s = ::new (static_cast<void*>(&slot_at(i))) slot;
            s->seq.store(free_seq(i), std::memory_order_relaxed);
        }
    }

    // Slot states, as a function of the ticket p that owns the slot: free
    // for p (2p), holding p's item (2p + 1). Doubling keeps "full for p" and
    // "free for p + 1" apart even when the capacity is 1.
    static constexpr std::size_t free_seq(std::size_t p) noexcept { return p << 1; }
    static constexpr std::size_t full_seq(std::size_t p) noexcept { return (p << 1) | 1; }

    std::size_t mask() const noexcept {
        if constexpr (set::inline_storage) return static_capacity - 1;
        else return mask_;
    }
    // Ticket -> slot index. Swaps the low "slot within line" bits with the
    // next ones, so tickets i and i+1 land on different cache lines while a
    // group of line_slots lines stays together.
    slot& slot_at(std::size_t ticket) noexcept {
        std::size_t i = ticket & mask();
        if constexpr (line_slots > 1) {
            if (mask() + 1 >= line_slots * line_slots) {
                constexpr std::size_t low = line_slots - 1;
                const std::size_t a = i & low, b = (i >> line_shift) & low;
                i = (i & ~(low | (low << line_shift))) | (a << line_shift) | b;
            }
        }
        return storage_.data()[i];
    }
    const slot& slot_at(std::size_t ticket) const noexcept {
        return const_cast<slot_ring*>(this)->slot_at(ticket);
    }

    template <class... Args>
    bool try_emplace_impl(Args&&... args) {
        if constexpr (drops && !std::is_nothrow_constructible_v<T, Args&&...>) {
            // Build the item before dropping anything for it: a constructor
            // that throws must not cost the oldest item its place.
            T tmp(std::forward<Args>(args)...);
            return try_emplace_impl(std::move(tmp));
        } else if constexpr (multi_producer) {
            if constexpr (std::is_nothrow_constructible_v<T, Args&&...>) {
                return claim_and_construct(std::forward<Args>(args)...);
            } else {
                T tmp(std::forward<Args>(args)...);  // may throw: nothing claimed yet
                return claim_and_construct(std::move(tmp));
            }
        } else {
            const std::size_t pos = tail_.load(std::memory_order_relaxed);
            slot& s = slot_at(pos);
            if constexpr (frees_by_index) {
                if (room(pos, 1) == 0) return false;  // full
            } else {
                while (s.seq.load(std::memory_order_acquire) != free_seq(pos)) {
                    if (closed_.load(std::memory_order_relaxed) || !make_room(pos)) return false;
                }
            }
            if (!announce(pos, pos + 1)) return false;
            try {
                ::new (s.item.bytes) T(std::forward<Args>(args)...);
            } catch (...) {
                tail_.store(pos, std::memory_order_release);  // unchanged
                throw;
            }
            s.seq.store(full_seq(pos), std::memory_order_release);
            not_empty_.notify_one();
            return true;
        }
    }

    template <class... Args>
    bool claim_and_construct(Args&&... args) noexcept {
        std::size_t pos = tail_.load(std::memory_order_relaxed);
        slot* s;
        for (;;) {
            if (pos & closed_bit) return false;
            s = &slot_at(pos);
            const std::size_t seq = s->seq.load(std::memory_order_acquire);
            const auto diff = static_cast<std::ptrdiff_t>(seq - free_seq(pos));
            if (diff == 0) {
                if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
            } else if (diff < 0) {
                if (!make_room(pos)) return false;
                pos = tail_.load(std::memory_order_relaxed);
            } else {
                pos = tail_.load(std::memory_order_relaxed);
            }
        }
        ::new (s->item.bytes) T(std::forward<Args>(args)...);
        s->seq.store(full_seq(pos), std::memory_order_release);
        not_empty_.notify_one();
        return true;
    }

    // The slot for ticket `pos` still holds ticket pos - capacity. Without
    // drop_oldest the ring is full: false. With it, pop the oldest item
    // unless a consumer has already claimed it (then it is about to be freed).
    bool make_room(std::size_t pos) {
        if constexpr (drops) {
            if (head_.load(std::memory_order_acquire) + capacity() <= pos) {
                if (try_pop_impl([](T&) noexcept {})) dropped_.fetch_add(1, std::memory_order_relaxed);
            } else {
                cpu_relax();
            }
            return true;
        } else {
            (void)pos;
            return false;
        }
    }

    template <class Take>
    bool try_pop_impl(Take&& take) {
        if constexpr (multi_consumer) {
            static_assert(noexcept(take(std::declval<T&>())),
                          "conq: with several consumers (or drop_oldest), moving an "
                          "item out must not throw; T's move constructor and move assignment "
                          "must be noexcept.");
            std::size_t pos = head_.load(std::memory_order_relaxed);
            slot* s;
            for (;;) {
                s = &slot_at(pos);
                const std::size_t seq = s->seq.load(std::memory_order_acquire);
                const auto diff = static_cast<std::ptrdiff_t>(seq - full_seq(pos));
                if (diff == 0) {
                    if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
                } else if (diff < 0) {
                    return false;
                } else {
                    pos = head_.load(std::memory_order_relaxed);
                }
            }
            take(*s->item.ptr());
            s->item.ptr()->~T();
            s->seq.store(free_seq(pos + capacity()), std::memory_order_release);
        } else {
            const std::size_t pos = head_.load(std::memory_order_relaxed);
            slot& s = slot_at(pos);
            if (s.seq.load(std::memory_order_acquire) != full_seq(pos)) return false;
            take(*s.item.ptr());  // if this throws, the item stays
            s.item.ptr()->~T();
            if constexpr (frees_by_index) {
                head_.store(pos + 1, std::memory_order_release);  // frees the slot
            } else {
                s.seq.store(free_seq(pos + capacity()), std::memory_order_release);
                head_.store(pos + 1, std::memory_order_relaxed);
            }
        }
        not_full_.notify_one();
        return true;
    }

    // frees_by_index only: free slots from ticket `pos` on, by the cached
    // head_, which is reloaded first if it shows fewer than `need`. The
    // acquire load pairs with the consumer's release store of head_: the
    // items in the slots it freed are destroyed.
    std::size_t room(std::size_t pos, std::size_t need) noexcept {
        if (capacity() - (pos - cached_head_) < need) cached_head_ = head_.load(std::memory_order_acquire);
        return capacity() - (pos - cached_head_);
    }

    bool push_ready() const noexcept {
        const std::size_t pos = tail_.load(std::memory_order_acquire) & ~closed_bit;
        if constexpr (frees_by_index)
            return pos - head_.load(std::memory_order_acquire) < capacity() || closed();
        else
            return slot_at(pos).seq.load(std::memory_order_acquire) == free_seq(pos) || closed();
    }
    bool pop_ready() const noexcept {
        const std::size_t pos = head_.load(std::memory_order_acquire);
        return slot_at(pos).seq.load(std::memory_order_acquire) == full_seq(pos) || closed();
    }
    // After seeing closed(): true when no accepted item is left to pop.
    bool drained() noexcept {
        // With one producer, tail_ counts announced tickets (see announce()).
        if constexpr (!multi_producer) {  // pairs with announce()
            if constexpr (shared) shared_heavy_barrier(); else heavy_barrier();
        }
        const std::size_t t = tail_.load(std::memory_order_acquire) & ~closed_bit;
        if (head_.load(std::memory_order_acquire) >= t) return true;
        std::this_thread::yield();  // a push that claimed before close() is landing
        return false;
    }

    // Producers' ticket counter (+ closed bit when several producers).
    alignas(destructive_size) std::atomic<std::size_t> tail_{0};
    // With frees_by_index: the producer's last look at head_ (its own).
    std::size_t cached_head_ = 0;
    // Consumers' ticket counter.
    alignas(destructive_size) std::atomic<std::size_t> head_{0};
    // Read by all, written rarely.
    alignas(destructive_size) std::atomic<bool> closed_{false};
    const std::size_t mask_ = static_capacity - 1;
    [[no_unique_address]] wait_point<wait_type, shared> not_empty_;
    [[no_unique_address]] wait_point<wait_type, shared> not_full_;
    std::atomic<std::size_t> dropped_{0};
    alignas(destructive_size) storage_type storage_;  // last: trailing slots follow it
};

}  // namespace conq::detail

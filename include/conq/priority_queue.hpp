// conq/priority_queue.hpp
//
// conq::priority_queue<T, Compare, Policies...>: a concurrent priority queue
// for any number of producer and consumer threads. As with
// std::priority_queue, the element that is greatest under Compare comes out
// first (std::less: the largest; std::greater: the smallest).
//
// Two designs, chosen by the priority-mode policy:
//
// strict (default): one binary heap behind a lock, with pushes combined. A
//   thread that finds the lock free applies its own operation and every
//   push other threads published meanwhile. A push that finds the lock busy
//   publishes its element in a request slot (one cache line; a bit in a
//   shared mask) and returns at once: it never waits for the holder
//   (tbb::concurrent_priority_queue makes pushers wait). A pop takes the
//   lock and inserts the published pushes before it looks at the top, so
//   every pop returns an element that is a top of the queue at the moment
//   the pop takes effect, counting every push that returned before. The
//   heap keeps the best element pushed since the last pop outside the array
//   (a "held" element): a pop that finds it better than the top takes it
//   without touching the heap, otherwise one sift pays for push and pop.
//   Pops wait for the lock rather than asking the holder for an answer:
//   measured on two cores, a round trip through a request slot cost more
//   than the heap work it saved.
//
// relaxed<C, S>: a MultiQueue: C heaps per hardware thread, each under its
//   own try-lock. A pop takes the better top of two randomly chosen heaps,
//   a push goes to the heap the thread last popped from (else to a random
//   heap); a thread keeps its pair of heaps for S pops. A pop may return an
//   element a little below the true top (the rank error, measured in
//   docs/benchmarks.md); in exchange threads rarely touch the same heap,
//   which is what lets it scale with cores (measured here only on two).
//
// Policies (conq/policy.hpp): concurrency mpsc/spmc/mpmc (spsc is refused:
// there is no single-producer variant to gain from), capacity<N> or a
// runtime capacity (bounded) or neither (unbounded), wait spin/yield/
// backoff/blocking (how pop waits while empty and push while full),
// overflow block/reject, strict/relaxed<...>, stable.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>

#include "conq/detail/dary_heap.hpp"
#include "conq/detail/platform.hpp"
#include "conq/detail/storage.hpp"
#include "conq/detail/wait.hpp"
#include "conq/policy.hpp"

namespace conq {

template <class T, class Compare = std::less<>, class... Policies>
class priority_queue;

namespace detail {

template <class M>
inline constexpr bool is_relaxed_mode = false;
template <unsigned C, unsigned S>
inline constexpr bool is_relaxed_mode<relaxed<C, S>> = true;

template <class O>
inline constexpr bool is_priority_order = false;
template <class C>
inline constexpr bool is_priority_order<priority_order<C>> = true;

/// What a heap holds: the element, plus its push order when ties are stable.
template <class T, bool Stable>
struct pq_entry {
    T value;
};
template <class T>
struct pq_entry<T, true> {
    T value;
    std::uint64_t seq;
};

/// "a comes out before b": a is greater under Compare, or equal and older.
/// A Compare that throws terminates the program (it runs inside combines
/// that hold other threads' elements).
template <class T, class Compare, bool Stable>
struct pq_before {
    [[no_unique_address]] Compare comp;
    bool values(const T& a, std::uint64_t sa, const T& b, std::uint64_t sb) const noexcept {
        if (comp(b, a)) return true;
        if constexpr (Stable) {
            return !comp(a, b) && sa < sb;
        } else {
            (void)sa, (void)sb;
            return false;
        }
    }
    bool operator()(const pq_entry<T, Stable>& a, const pq_entry<T, Stable>& b) const noexcept {
        if constexpr (Stable) return values(a.value, a.seq, b.value, b.seq);
        else return comp(b.value, a.value);
    }
};

/// A per-thread pseudo-random generator (xorshift64*). Each thread gets its
/// own seed from a process-wide counter (thread ids and stack addresses
/// repeat for threads created one after another).
inline std::uint64_t thread_random() noexcept {
    thread_local std::uint64_t state = [] {
        static std::atomic<std::uint64_t> seeds{0x9e3779b97f4a7c15ULL};
        std::uint64_t s = seeds.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed);
        s ^= std::hash<std::thread::id>{}(std::this_thread::get_id());
        s = (s ^ (s >> 30)) * 0xbf58476d1ce4e5b9ULL;
        s = (s ^ (s >> 27)) * 0x94d049bb133111ebULL;
        s ^= s >> 31;
        return s ? s : 0x9e3779b97f4a7c15ULL;
    }();
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545f4914f6cdd1dULL;
}

enum class pop_status { item, empty, drained };

/// The element count of a bounded ordered queue: places are reserved before
/// an element goes in (a full queue refuses it) and released after a pop.
/// Unbounded queues (bound == SIZE_MAX) never touch it.
class bound_counter {
public:
    static constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
    bool reserve(std::size_t bound) noexcept {
        if (bound == none) return true;
        if (n_.fetch_add(1, std::memory_order_acquire) >= bound) {
            n_.fetch_sub(1, std::memory_order_relaxed);
            return false;
        }
        return true;
    }
    void unreserve(std::size_t bound) noexcept {
        if (bound != none) n_.fetch_sub(1, std::memory_order_relaxed);
    }
    void release(std::size_t n) noexcept { n_.fetch_sub(n, std::memory_order_release); }
    [[nodiscard]] std::size_t load() const noexcept { return n_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::size_t> n_{0};
};

/// A failed push leaves an rvalue T argument as it was: the element that was
/// built from it goes back.
template <class T, class... Args>
void pq_give_back(T& from, Args&&... args) noexcept {
    if constexpr (sizeof...(Args) == 1) {
        using A = std::tuple_element_t<0, std::tuple<Args...>>;
        if constexpr (std::is_same_v<std::remove_cvref_t<A>, T> && !std::is_reference_v<A> &&
                      !std::is_const_v<A>) {
            auto& dst = (args, ...);
            if constexpr (std::is_nothrow_move_assignable_v<T>) {
                dst = std::move(from);
            } else {
                std::destroy_at(std::addressof(dst));
                std::construct_at(std::addressof(dst), std::move(from));
            }
        }
    } else {
        (void)from;
    }
}

// ------------------------------------------------------------ strict: combining

template <class T, class Compare, class Set>
class combining_pq {
protected:
    static constexpr bool stable = Set::is_stable;
    using entry = pq_entry<T, stable>;
    using before_type = pq_before<T, Compare, stable>;
    // Binary: measured against 4-ary with 10^6 u64 keys, 50/50 push/pop,
    // one thread: 1.2-1.4x (strict) and up to 1.8x (stable, ascending
    // keys) faster; docs/benchmarks.md.
    using heap_type = held_heap<entry, before_type, 2>;
    using wait_type = typename Set::wait;

    static constexpr unsigned slot_count = 32;
    enum : std::uint32_t {
        s_free,     // nobody's
        s_claimed,  // its owner is filling it in
        s_push,     // holds a published element
    };
    struct alignas(destructive_size) request {
        std::atomic<std::uint32_t> state{s_free};
        const void* owner = nullptr;  // identifies the push that filled it in
        std::uint64_t serial = 0;
        raw_item<T> item;
    };

    explicit combining_pq(std::size_t bound, Compare comp)
        : heap_(before_type{comp}), bound_(bound) {
        if (bound_ != unbounded) heap_.reserve(bound_);
    }

    ~combining_pq() {
        // Pushes still published in request slots (nobody combined since).
        const std::uint32_t bits = pending_.load(std::memory_order_relaxed);
        for (unsigned i = 0; i < slot_count; ++i) {
            if ((bits >> i & 1) && slots_[i].state.load(std::memory_order_relaxed) == s_push) {
                slots_[i].item.ptr()->~T();
            }
        }
    }

public:
    static constexpr std::size_t unbounded = std::numeric_limits<std::size_t>::max();

    /// The most elements the queue holds (`unbounded` without a capacity).
    [[nodiscard]] std::size_t capacity() const noexcept { return bound_; }
    /// A snapshot of the number of elements; may be stale when it returns.
    [[nodiscard]] std::size_t size_approx() const noexcept {
        if (bound_ != unbounded) return count_.load();
        return heap_size_.load(std::memory_order_relaxed) +
               static_cast<std::size_t>(std::popcount(pending_.load(std::memory_order_relaxed)));
    }
    /// Whether close() has been called.
    [[nodiscard]] bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
    /// Closes the queue: later pushes fail, pops take what is left and then
    /// return nullopt, every waiting push and pop wakes. Idempotent.
    void close() noexcept {
        closed_.store(true, std::memory_order_seq_cst);
        full_fence();
        not_empty_.notify_all();
        not_full_.notify_all();
    }

protected:
    // ------------------------------------------------------------ push

    template <class... Args>
    bool try_emplace_impl(Args&&... args) {
        if (closed_.load(std::memory_order_acquire)) return false;
        if (!reserve_one()) return false;
        if (lock_.try_lock()) return push_locked(std::forward<Args>(args)...);
        // Stable pushes are numbered under the lock, in the order they are
        // inserted, so they take it; so does a push that finds no free slot.
        request* r = stable ? nullptr : claim_slot();
        if (r == nullptr) {
            lock_.lock();
            return push_locked(std::forward<Args>(args)...);
        }
        try {
            ::new (static_cast<void*>(r->item.bytes)) T(std::forward<Args>(args)...);
        } catch (...) {
            r->state.store(s_free, std::memory_order_release);
            unreserve_one();
            throw;
        }
        thread_local const char me = 0;
        thread_local std::uint64_t serial = 0;
        r->owner = &me;
        r->serial = ++serial;
        r->state.store(s_push, std::memory_order_relaxed);
        const std::uint32_t bit = std::uint32_t{1} << index_of(r);
        pending_.fetch_or(bit, std::memory_order_seq_cst);
        if (closed_.load(std::memory_order_seq_cst)) [[unlikely]] {
            return settle_after_close(r, bit, &me, serial, std::forward<Args>(args)...);
        }
        // Done: the holder, or the next thread to take the lock, inserts it
        // (every pop combines first). Taking the lock here just to insert
        // it would pull the heap over to this core.
        not_empty_.notify_one();
        return true;
    }

    template <class It>
    std::size_t try_push_n_impl(It first, It last) {
        if (first == last || closed_.load(std::memory_order_acquire)) return 0;
        lock_.lock();
        guard g{this};
        combine();
        if (closed_.load(std::memory_order_relaxed)) return 0;
        std::size_t n = 0;
        for (; first != last; ++first) {
            if (!reserve_one()) break;
            try {
                if (bound_ == unbounded) heap_.reserve(grow_to(heap_.size() + 1));
                heap_.push(make_entry(std::move(*first)));
            } catch (...) {
                unreserve_one();
                publish_size();
                if (n) not_empty_.notify_all();
                throw;
            }
            ++n;
        }
        publish_size();
        if (n == 1) not_empty_.notify_one(); else if (n > 1) not_empty_.notify_all();
        return n;
    }

    // ------------------------------------------------------------ pop

    pop_status try_pop_impl(std::optional<T>& out) {
        if (!lock_.try_lock()) lock_.lock();
        const pop_status st = pop_locked(out);
        if (st == pop_status::item) released_one();
        return st;
    }

    template <class OutIt>
    std::size_t try_pop_n_impl(OutIt out, std::size_t max) {
        if (max == 0) return 0;
        std::size_t n = 0;
        {
            lock_.lock();
            guard g{this};
            combine();
            for (; n < max && !heap_.empty(); ++n) {
                *out = std::move(heap_.pop().value);
                ++out;
            }
            publish_size();
        }
        if (bound_ != unbounded && n) {
            count_.release(n);
            if (n == 1) not_full_.notify_one(); else not_full_.notify_all();
        }
        return n;
    }

    [[nodiscard]] bool pop_ready() const noexcept {
        return heap_size_.load(std::memory_order_relaxed) != 0 ||
               pending_.load(std::memory_order_relaxed) != 0 ||
               closed_.load(std::memory_order_relaxed);
    }
    [[nodiscard]] bool push_ready() const noexcept {
        return bound_ == unbounded || count_.load() < bound_ ||
               closed_.load(std::memory_order_relaxed);
    }

    wait_point<wait_type> not_empty_;
    wait_point<wait_type> not_full_;

private:
    struct guard {
        combining_pq* q;
        ~guard() { q->unlock_and_recheck(); }
    };

    bool reserve_one() noexcept { return count_.reserve(bound_); }
    void unreserve_one() noexcept { count_.unreserve(bound_); }
    void released_one() noexcept {
        if (bound_ != unbounded) {
            count_.release(1);
            not_full_.notify_one();
        }
    }

    template <class... Args>
    entry make_entry(Args&&... args) noexcept(std::is_nothrow_constructible_v<T, Args&&...>) {
        if constexpr (stable) return entry{T(std::forward<Args>(args)...), next_seq_++};
        else return entry{T(std::forward<Args>(args)...)};
    }
    entry take_entry(request& r) noexcept {
        T* p = r.item.ptr();
        entry e = make_entry(std::move(*p));  // T's move is noexcept
        p->~T();
        return e;
    }

    // Holding the lock: combine, then push directly.
    template <class... Args>
    bool push_locked(Args&&... args) {
        guard g{this};
        combine();
        if (closed_.load(std::memory_order_relaxed)) {
            unreserve_one();
            return false;
        }
        try {
            // Room first: a failed allocation must not take the element with it.
            if (bound_ == unbounded) heap_.reserve(grow_to(heap_.size() + 1));
            heap_.push(make_entry(std::forward<Args>(args)...));
        } catch (...) {
            unreserve_one();
            throw;
        }
        publish_size();
        not_empty_.notify_one();
        return true;
    }

    // A push published just as the queue closed: it counts only if a
    // combine took it before anybody could see the queue drained. Under the
    // lock, a bit still set (and still ours) means nobody took it: withdraw.
    // Once a pop has said drained, no combine takes anything (drained_), so
    // a push that published too late always finds its bit here.
    template <class... Args>
    bool settle_after_close(request* r, std::uint32_t bit, const void* me, std::uint64_t serial,
                            Args&&... args) {
        lock_.lock();
        guard g{this};
        // Acquire: if the bit is set by a thread that reused the slot, its
        // owner and serial are visible.
        if ((pending_.load(std::memory_order_acquire) & bit) && r->owner == me &&
            r->serial == serial && r->state.load(std::memory_order_relaxed) == s_push) {
            pending_.fetch_and(~bit, std::memory_order_relaxed);
            pq_give_back(*r->item.ptr(), std::forward<Args>(args)...);
            r->item.ptr()->~T();
            r->state.store(s_free, std::memory_order_release);
            unreserve_one();
            return false;
        }
        not_empty_.notify_one();
        return true;
    }
    // Holding the lock. "Drained" needs closed_ read before the combine: a
    // push that published after that combine read closed_ after close()
    // and withdraws itself, and from then on no combine may take it (the
    // recheck after this very unlock would, and the pop that said drained
    // would never see it): drained_ stops every later combine.
    pop_status pop_locked(std::optional<T>& out) {
        guard g{this};
        const bool was_closed = closed_.load(std::memory_order_seq_cst);
        combine();
        if (heap_.empty()) {
            if (!was_closed) return pop_status::empty;
            drained_ = true;
            return pop_status::drained;
        }
        out.emplace(std::move(heap_.pop().value));
        publish_size();
        return pop_status::item;
    }

    request* claim_slot() noexcept {
        thread_local unsigned hint = static_cast<unsigned>(thread_random());
        for (unsigned k = 0; k < slot_count; ++k) {
            request& r = slots_[(hint + k) % slot_count];
            std::uint32_t expected = s_free;
            if (r.state.load(std::memory_order_relaxed) == s_free &&
                r.state.compare_exchange_strong(expected, s_claimed, std::memory_order_acquire)) {
                hint = (hint + k) % slot_count;
                return &r;
            }
        }
        return nullptr;
    }
    unsigned index_of(const request* r) const noexcept {
        return static_cast<unsigned>(r - slots_);
    }

    void publish_size() noexcept { heap_size_.store(heap_.size(), std::memory_order_relaxed); }

    // Inserts the pushes published while the lock was held (the heap is
    // still in this core's cache), then releases the lock with a plain
    // store. A few rounds at most: a holder does not serve others forever,
    // and what it leaves is safe (every pop combines before it looks at the
    // heap, and the destructor frees what nobody inserted). The look at
    // pending_ is a hint, so it needs no fence: releasing first and looking
    // again after a full barrier, as this did before, cost a locked
    // instruction per operation and measured 10-20% slower at 2 threads.
    void unlock_and_recheck() noexcept {
        for (int round = 0; round < 4 && pending_.load(std::memory_order_relaxed) != 0; ++round) {
            combine_guarded();
        }
        lock_.unlock();
    }

    // combine() for callers that cannot report an allocation failure to the
    // thread whose push needed the memory: the pushes stay published.
    void combine_guarded() noexcept {
        try {
            combine();
        } catch (...) {
        }
    }

    // Inserts every published push (none once drained_: those withdraw).
    // Holding the lock. Throws only bad_alloc from growing an unbounded
    // heap, leaving the pushes published.
    void combine() {
        if (pending_.load(std::memory_order_relaxed) == 0 || drained_) return;
        const std::uint32_t bits = pending_.exchange(0, std::memory_order_acq_rel);
        if (bits == 0) return;
        if (bound_ == unbounded) {
            try {
                heap_.reserve(grow_to(heap_.size() + static_cast<std::size_t>(std::popcount(bits))));
            } catch (...) {
                pending_.fetch_or(bits, std::memory_order_release);
                throw;
            }
        }
        for (std::uint32_t b = bits; b != 0; b &= b - 1) {
            request& p = slots_[std::countr_zero(b)];
            heap_.push(take_entry(p));  // room reserved above
            p.state.store(s_free, std::memory_order_release);
        }
        publish_size();
    }

    std::size_t grow_to(std::size_t need) const noexcept {
        const std::size_t have = heap_.reserved();
        if (need <= have) return have;
        return std::max(need, have + have / 2 + 64);
    }

    // Published pushes set bits here: the one word every pusher writes.
    alignas(destructive_size) std::atomic<std::uint32_t> pending_{0};
    alignas(destructive_size) spin_word lock_;
    // Written by every operation: not on the line that waiting threads poll.
    alignas(destructive_size) std::atomic<std::size_t> heap_size_{0};
    alignas(destructive_size) heap_type heap_;
    std::uint64_t next_seq_ = 0;  // stable: the next push number (holder only)
    bool drained_ = false;        // a pop said drained: combine nothing more (holder only)
    const std::size_t bound_;
    alignas(destructive_size) bound_counter count_;
    alignas(destructive_size) std::atomic<bool> closed_{false};
    request slots_[slot_count];
};

// ------------------------------------------------------------ relaxed: MultiQueue

template <class T, class Compare, class Set>
class multi_pq {
protected:
    using mode = typename Set::priority_mode;
    using entry = pq_entry<T, false>;
    using before_type = pq_before<T, Compare, false>;
    // 4-ary: a binary heap measured 0.7-0.8x here (uniform and 8-bit keys,
    // one thread), unlike the strict queue's one big heap.
    using heap_type = held_heap<entry, before_type, 4>;
    using wait_type = typename Set::wait;

    struct alignas(destructive_size) shard {
        spin_word lock;
        std::atomic<std::size_t> size{0};
        heap_type heap;
    };

    explicit multi_pq(std::size_t bound, Compare comp) : bound_(bound) {
        const unsigned hw = std::max(2u, std::thread::hardware_concurrency());
        n_ = static_cast<std::size_t>(mode::shards_per_thread) * hw;
        shards_ = std::make_unique<shard[]>(n_);
        // Bounded: each heap gets an equal share of the room, reserved now,
        // and a push goes to a heap with room left, so nothing allocates.
        if (bound_ != unbounded) per_shard_ = bound_ / n_ + 1;
        for (std::size_t i = 0; i < n_; ++i) {
            shards_[i].heap = heap_type(before_type{comp});
            if (bound_ != unbounded) shards_[i].heap.reserve(per_shard_);
        }
    }

public:
    static constexpr std::size_t unbounded = std::numeric_limits<std::size_t>::max();

    [[nodiscard]] std::size_t capacity() const noexcept { return bound_; }
    [[nodiscard]] std::size_t size_approx() const noexcept {
        if (bound_ != unbounded) return count_.load();
        std::size_t s = 0;
        for (std::size_t i = 0; i < n_; ++i) s += shards_[i].size.load(std::memory_order_relaxed);
        return s;
    }
    [[nodiscard]] bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
    void close() noexcept {
        closed_.store(true, std::memory_order_seq_cst);
        full_fence();
        not_empty_.notify_all();
        not_full_.notify_all();
    }
    /// The number of internal heaps (C per hardware thread).
    [[nodiscard]] std::size_t shard_count() const noexcept { return n_; }

protected:
    template <class... Args>
    bool try_emplace_impl(Args&&... args) {
        if (closed_.load(std::memory_order_acquire)) return false;
        if (!reserve_one()) return false;
        std::optional<entry> built;
        try {
            built.emplace(entry{T(std::forward<Args>(args)...)});  // before any lock
        } catch (...) {
            unreserve_one();
            throw;
        }
        entry& e = *built;
        sticky& st = tls();
        for (unsigned tries = 0;; ++tries) {
            if (st.push_left == 0) {
                // First choice: the heap this thread last popped from (a
                // pop makes it pop_a and restarts this choice), which refills
                // the heap that just lost its top, and a pop soon after often
                // takes the element still held outside the heap: more
                // operations per second and a lower rank error than a random
                // heap (docs/priority-and-delay.md). Then random heaps; after
                // many misses (every heap locked or full), walk them in turn.
                if (tries == 0 && st.pop_left != 0) st.push_shard = st.pop_a;
                else st.push_shard = tries < 64 ? pick() : st.push_shard + 1;
                st.push_left = mode::stickiness;
            }
            shard& s = shards_[st.push_shard % n_];
            if (!s.lock.try_lock()) {
                st.push_left = 0;
                continue;
            }
            if (bound_ != unbounded && s.heap.size() >= per_shard_) {
                s.lock.unlock();
                st.push_left = 0;
                continue;
            }
            --st.push_left;
            if (closed_.load(std::memory_order_relaxed)) {
                s.lock.unlock();
                unreserve_one();
                pq_give_back(e.value, std::forward<Args>(args)...);
                return false;
            }
            try {
                s.heap.push(std::move(e));  // on a throw, e is as it was
            } catch (...) {
                s.lock.unlock();
                unreserve_one();
                pq_give_back(e.value, std::forward<Args>(args)...);
                throw;
            }
            s.size.store(s.heap.size(), std::memory_order_relaxed);
            s.lock.unlock();
            not_empty_.notify_one();
            return true;
        }
    }

    template <class It>
    std::size_t try_push_n_impl(It first, It last) {
        std::size_t n = 0;
        for (; first != last && try_emplace_impl(std::move(*first)); ++first) ++n;
        return n;
    }

    pop_status try_pop_impl(std::optional<T>& out) {
        sticky& st = tls();
        for (int attempt = 0; attempt < 4; ++attempt) {
            if (st.pop_left == 0) {
                st.pop_a = pick();
                st.pop_b = pick();
                st.pop_left = mode::stickiness;
            }
            shard& a = shards_[st.pop_a % n_];
            shard& b = shards_[st.pop_b % n_];
            const bool la = a.size.load(std::memory_order_relaxed) != 0 && a.lock.try_lock();
            const bool lb = &b != &a && b.size.load(std::memory_order_relaxed) != 0 && b.lock.try_lock();
            shard* from = nullptr;
            if (la && !a.heap.empty()) from = &a;
            if (lb && !b.heap.empty() &&
                (from == nullptr || b.heap.before()(b.heap.top(), a.heap.top()))) {
                from = &b;
            }
            if (from != nullptr) {
                out.emplace(std::move(from->heap.pop().value));
                from->size.store(from->heap.size(), std::memory_order_relaxed);
            }
            if (la) a.lock.unlock();
            if (lb) b.lock.unlock();
            if (from != nullptr) {
                --st.pop_left;
                // The next push goes to the heap that just gave its top
                // (see try_emplace_impl), so pop_a names it.
                if (from == &b) std::swap(st.pop_a, st.pop_b);
                st.push_left = 0;
                released(1);
                return pop_status::item;
            }
            st.pop_left = 0;
        }
        // Both choices failed a few times: look at every heap before saying
        // "empty". The scan is not atomic: an element pushed into a heap it
        // already passed is missed (the caller's next try finds it).
        const bool was_closed = closed_.load(std::memory_order_seq_cst);
        const std::size_t start = static_cast<std::size_t>(thread_random() % n_);
        for (std::size_t k = 0; k < n_; ++k) {
            shard& s = shards_[(start + k) % n_];
            s.lock.lock();
            if (!s.heap.empty()) {
                out.emplace(std::move(s.heap.pop().value));
                s.size.store(s.heap.size(), std::memory_order_relaxed);
                s.lock.unlock();
                released(1);
                return pop_status::item;
            }
            s.lock.unlock();
        }
        return was_closed ? pop_status::drained : pop_status::empty;
    }

    template <class OutIt>
    std::size_t try_pop_n_impl(OutIt out, std::size_t max) {
        std::size_t n = 0;
        std::optional<T> v;
        for (; n < max; ++n) {
            if (try_pop_impl(v) != pop_status::item) break;
            *out = std::move(*v);
            ++out;
            v.reset();
        }
        return n;
    }

    [[nodiscard]] bool pop_ready() const noexcept {
        if (closed_.load(std::memory_order_relaxed)) return true;
        for (std::size_t i = 0; i < n_; ++i) {
            if (shards_[i].size.load(std::memory_order_relaxed) != 0) return true;
        }
        return false;
    }
    [[nodiscard]] bool push_ready() const noexcept {
        return bound_ == unbounded || count_.load() < bound_ ||
               closed_.load(std::memory_order_relaxed);
    }

    wait_point<wait_type> not_empty_;
    wait_point<wait_type> not_full_;

private:
    struct sticky {
        std::size_t push_shard = 0, pop_a = 0, pop_b = 0;
        unsigned push_left = 0, pop_left = 0;
    };
    static sticky& tls() noexcept {
        thread_local sticky s;
        return s;
    }
    std::size_t pick() const noexcept { return static_cast<std::size_t>(thread_random() % n_); }

    bool reserve_one() noexcept { return count_.reserve(bound_); }
    void unreserve_one() noexcept { count_.unreserve(bound_); }
    void released(std::size_t n) noexcept {
        if (bound_ != unbounded) {
            count_.release(n);
            not_full_.notify_one();
        }
    }

    std::unique_ptr<shard[]> shards_;
    std::size_t n_ = 0;
    std::size_t per_shard_ = 0;  // bounded: room reserved in each heap
    const std::size_t bound_;
    alignas(destructive_size) bound_counter count_;
    alignas(destructive_size) std::atomic<bool> closed_{false};
};

template <class T, class Compare, class... Policies>
struct pq_checks {
    using set = policy_set<Policies...>;
    static_assert(std::is_object_v<T> && !std::is_const_v<T> && !std::is_array_v<T>,
                  "conq::priority_queue: T must be a non-const object type that is not an array.");
    static_assert(std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T>,
                  "conq::priority_queue: T's move constructor and move assignment must be "
                  "noexcept: the heap moves elements while other threads' elements are in "
                  "flight. Mark them noexcept, or store std::unique_ptr<T>.");
    static_assert(std::is_nothrow_destructible_v<T>,
                  "conq::priority_queue: T must have a destructor that does not throw.");
    static_assert(std::is_invocable_r_v<bool, const Compare&, const T&, const T&>,
                  "conq::priority_queue: Compare must be callable as bool(const T&, const T&), a "
                  "strict weak ordering on T (like std::less<T>).");
    static_assert(!std::is_same_v<typename set::concurrency, spsc>,
                  "conq::priority_queue: spsc ring storage cannot keep a priority order; use "
                  "mpsc or mpmc (one producer and one consumer are served just as well).");
    static_assert(!std::is_same_v<typename set::overflow, drop_oldest>,
                  "conq::priority_queue: drop_oldest has no meaning for a priority order; use "
                  "block or reject.");
    static_assert(!set::has_clock,
                  "conq::priority_queue: a clock policy only applies to delay_order; remove it.");
    static_assert(!set::shared,
                  "conq::priority_queue: shared_memory applies to rings only (the heap grows on this "
                  "process's heap); remove it.");
    static_assert(!set::has_timer_storage,
                  "conq::priority_queue: timer_heap and timer_wheel only apply to delay queues; "
                  "remove them.");
    static_assert(std::is_same_v<typename set::order, fifo> ||
                      std::is_same_v<typename set::order, priority_order<Compare>>,
                  "conq::priority_queue: the only order policy it takes is "
                  "priority_order<Compare> with its own Compare; remove the order policy.");
    static_assert(!(set::is_stable && is_relaxed_mode<typename set::priority_mode>),
                  "conq::priority_queue: relaxed<...> cannot keep equal priorities in push order; "
                  "drop stable, or use strict.");
    using type =
        std::conditional_t<is_relaxed_mode<typename set::priority_mode>, multi_pq<T, Compare, set>,
                           combining_pq<T, Compare, set>>;
};

}  // namespace detail

/// A concurrent priority queue; see the top of this header. Neither
/// copyable nor movable.
///
/// Memory effect: everything a thread wrote before a push is visible to the
/// thread whose pop returns that element.
template <class T, class Compare, class... Policies>
class priority_queue : public detail::pq_checks<T, Compare, Policies...>::type {
    using base = typename detail::pq_checks<T, Compare, Policies...>::type;
    using set = detail::policy_set<Policies...>;
    using overflow = typename set::overflow;

public:
    using value_type = T;
    using value_compare = Compare;
    using policies = set;

    /// Without capacity<N>: unbounded (grows on the heap); with it: at most N
    /// elements, storage reserved here.
    priority_queue() : priority_queue(Compare{}) {}
    explicit priority_queue(Compare comp)
        : base(set::inline_storage ? set::capacity::value : base::unbounded, comp) {}
    /// At most `capacity` elements (exactly; no rounding); storage reserved
    /// here, so pushes never allocate. \throws std::invalid_argument if 0.
    explicit priority_queue(std::size_t capacity, Compare comp = Compare{})
        requires(!set::inline_storage)
        : base(detail::checked_bound("conq::priority_queue", capacity), comp) {}

    priority_queue(const priority_queue&) = delete;
    priority_queue& operator=(const priority_queue&) = delete;

    /// Pushes a copy of `v` unless full or closed. Never waits for room; it
    /// may wait briefly for a thread that holds the heap.
    [[nodiscard]] bool try_push(const T& v) requires std::is_copy_constructible_v<T> {
        return this->try_emplace_impl(v);
    }
    /// Moves `v` in unless full or closed; on false `v` is as it was.
    [[nodiscard]] bool try_push(T&& v) { return this->try_emplace_impl(std::move(v)); }
    /// Constructs an element from `args` unless full or closed.
    template <class... Args>
    [[nodiscard]] bool try_emplace(Args&&... args) requires std::is_constructible_v<T, Args&&...> {
        return this->try_emplace_impl(std::forward<Args>(args)...);
    }

    /// Pushes, waiting while full (overflow `block`; `reject` never waits).
    /// False only when closed (or full, with `reject`); then `v` is as it was.
    bool push(T&& v) { return push_until(std::move(v), detail::no_deadline); }
    bool push(const T& v) requires std::is_copy_constructible_v<T> {
        return push_until(v, detail::no_deadline);
    }
    /// As push, giving up after `timeout`.
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

    /// Pops a top element if there is one. Never waits for an element.
    [[nodiscard]] std::optional<T> try_pop() {
        std::optional<T> out;
        (void)this->try_pop_impl(out);
        return out;
    }
    /// Pops a top element into `out` (move assignment) if there is one.
    [[nodiscard]] bool try_pop(T& out) {
        std::optional<T> v;
        if (this->try_pop_impl(v) != detail::pop_status::item) return false;
        out = std::move(*v);
        return true;
    }
    /// Pops a top element, waiting while empty. nullopt only once the queue
    /// is closed and every element pushed before the close has been popped.
    std::optional<T> pop() { return pop_until(detail::no_deadline); }
    /// As pop, giving up after `timeout` (nullopt on time-out too).
    template <class Rep, class Period>
    std::optional<T> pop_for(std::chrono::duration<Rep, Period> timeout) {
        return pop_until(detail::deadline_after(timeout));
    }

    /// Moves as many elements of [first, last) in as fit, in order; strict
    /// mode does it in one hold of the heap. \returns how many (the first
    /// ones of the range).
    template <std::input_iterator It>
    [[nodiscard]] std::size_t try_push_n(It first, It last) {
        return this->try_push_n_impl(first, last);
    }
    /// Moves up to `max` elements out, best first (strict: in one hold of
    /// the heap). \returns how many.
    template <class OutIt>
    [[nodiscard]] std::size_t try_pop_n(OutIt out, std::size_t max) {
        return this->try_pop_n_impl(out, max);
    }

private:
    template <class U>
    bool push_until(U&& v, detail::deadline_t deadline) {
        for (;;) {
            if (this->try_emplace_impl(std::forward<U>(v))) return true;
            if (this->closed()) return false;
            if constexpr (std::is_same_v<overflow, reject>) {
                return false;
            } else if (!this->not_full_.wait_until([this] { return this->push_ready(); }, deadline)) {
                return this->try_emplace_impl(std::forward<U>(v));
            }
        }
    }

    std::optional<T> pop_until(detail::deadline_t deadline) {
        std::optional<T> out;
        for (;;) {
            const detail::pop_status st = this->try_pop_impl(out);
            if (st != detail::pop_status::empty) return out;
            if (this->closed()) continue;  // the next try says drained, or finds a late push
            if (!this->not_empty_.wait_until([this] { return this->pop_ready(); }, deadline)) {
                (void)this->try_pop_impl(out);
                return out;
            }
        }
    }
};

static_assert(concurrent_queue<priority_queue<int>>);

}  // namespace conq

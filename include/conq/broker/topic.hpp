// conq/broker/topic.hpp
//
// conq::topics<T, Clock>: publish/subscribe on dotted subjects inside one
// process, with the routing of a RabbitMQ topic exchange and the fan-out of
// ZeroMQ PUB/SUB, but no slow joiner and no silent loss.
//
//   conq::topics<Order> bus;
//   auto eu  = bus.subscribe("orders.eu.*");             // *: exactly one word
//   auto all = bus.subscribe("orders.#",                  // #: zero or more words
//                            {.capacity = 64, .overflow = conq::overflow_action::drop_oldest});
//   bus.publish("orders.eu.created", Order{42});          // 2: both queued it
//   while (auto m = eu.next()) handle(m->subject(), m->payload());
//
// Subjects are 1 to 255 bytes of words separated by '.', words may be empty
// ("a..b", "."); no control characters, spaces, '*' or '#'; the first word
// "_reply" is reserved for request/reply. A pattern has the same form, and a
// word of it may be `*` (any one word, the empty word too) or `#` (any number
// of words, none too); `*` and `#` must be whole words. Matching is RabbitMQ's:
// "#" matches every subject, "a.#" matches "a" and "a.b.c", "a.*" does not
// match "a", "*.*" matches ".".
//
// Guarantees:
//   - A message published after subscribe() returned reaches that
//     subscription (unless its own overflow action dropped or refused it,
//     which it counts). After unsubscribe() (or the handle's destruction)
//     returns, no publisher queues anything to it.
//   - One payload object per publish, immutable, shared by every subscriber
//     that receives it (T may be move-only).
//   - Each subscription has its own bounded queue and overflow action: block
//     (publish waits for room), drop_oldest (the oldest queued message makes
//     room) or reject (the new message is not queued). Messages published by
//     one thread arrive at each subscription in publish order. Every message
//     routed to a subscription takes the next sequence number, queued or not,
//     so message::gap() tells how many were lost just before it.
//   - Memory: what a publisher wrote before publish() is visible to the
//     subscriber that takes the message.
//   - Waits with a time-out (next_for, request, await_idle) read `Clock`; with
//     conq::manual_clock they end when advance() reaches the deadline, so tests
//     never sleep. The clock must outlive the topics object and every
//     subscription made from it.
//
// Design: publishers read an immutable routing table (the subscriptions, and
// a cache from subject to the subscriptions it matches, filled as subjects are
// first published). subscribe and unsubscribe copy the table and swap it in;
// a publisher protects the table it reads with a hazard slot of its own, so
// a publish takes no lock shared by all publishers and allocates once (the
// shared payload). Each subscription queue is a ring with two small spin
// locks, one for its publishers' end and one for its consumer's, and an
// atomic count between them: a publisher and the consumer meet on the count
// only, and take both locks only for what is rare (growing the ring,
// drop_oldest's eviction, close, unsubscribe, stats). Threads that must wait
// sleep on a condition variable, which the other side touches only when
// somebody sleeps.
#pragma once

#include <conq/broker/common.hpp>
#include <conq/detail/platform.hpp>
#include <conq/detail/wait.hpp>
#include <conq/policy.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace conq {

/// What a full subscription queue does with a new message.
enum class overflow_action : std::uint8_t {
    block,        ///< the publisher waits for room (or for close/unsubscribe)
    drop_oldest,  ///< the oldest queued message is dropped to make room (counted)
    reject,       ///< the new message is not queued (counted)
};

/// How a subscription queues: at most `capacity` messages (at least 1), and
/// what a full queue does.
struct subscription_options {
    std::size_t capacity = 1024;
    overflow_action overflow = overflow_action::block;
};

/// Limits of a topics object. `max_payload` is compared with
/// conq::payload_size(payload) (conq/broker/common.hpp).
struct topic_options {
    std::size_t max_payload = std::size_t{1} << 20;
};

/// Counters of a topics object, summed over its subscriptions, including
/// those already gone. Read while publishers run, the fields are each
/// current but not one snapshot.
struct topic_stats {
    std::uint64_t published = 0;  ///< publish, request and reply calls that were accepted
    std::uint64_t delivered = 0;  ///< messages queued to a subscription (one per subscription reached)
    std::uint64_t dropped = 0;    ///< queued messages evicted by drop_oldest
    std::uint64_t rejected = 0;   ///< messages a full `reject` queue refused
    std::uint64_t no_route = 0;   ///< publishes that matched no subscription
    std::size_t subscriptions = 0;  ///< subscriptions now active
};

/// Counters of one subscription.
struct subscription_stats {
    std::uint64_t received = 0;   ///< messages queued to it
    std::uint64_t delivered = 0;  ///< messages taken from it (next, try_next, next_n...)
    std::uint64_t dropped = 0;    ///< queued messages evicted by drop_oldest
    std::uint64_t rejected = 0;   ///< messages refused by `reject` because it was full
    std::size_t high_water = 0;   ///< the most messages it ever held
    std::size_t size = 0;         ///< messages queued now
    std::size_t waiting_consumers = 0;   ///< threads asleep in next()/next_for() now
    std::size_t blocked_publishers = 0;  ///< publishers asleep waiting for room now
};

namespace detail {

inline constexpr std::size_t max_subject_size = 255;
/// The first word of the subjects request() replies to.
inline constexpr std::string_view reply_word = "_reply";

[[nodiscard]] constexpr bool first_word_is(std::string_view s, std::string_view w) noexcept {
    return s.starts_with(w) && (s.size() == w.size() || s[w.size()] == '.');
}

/// A byte allowed in subjects and patterns: no control character, no space.
[[nodiscard]] constexpr bool subject_byte(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f;
}

/// The subject as publish() checks it, except the reserved first word.
[[nodiscard]] constexpr bool plain_subject(std::string_view s) noexcept {
    if (s.empty() || s.size() > max_subject_size) return false;
    for (const char c : s) {
        if (!subject_byte(c) || c == '*' || c == '#') return false;
    }
    return true;
}

}  // namespace detail

/// Whether publish() accepts `s` as a subject.
[[nodiscard]] constexpr bool valid_subject(std::string_view s) noexcept {
    return detail::plain_subject(s) && !detail::first_word_is(s, detail::reply_word);
}

/// Whether subscribe() accepts `p` as a pattern.
[[nodiscard]] constexpr bool valid_subject_pattern(std::string_view p) noexcept {
    if (p.empty() || p.size() > detail::max_subject_size) return false;
    if (detail::first_word_is(p, detail::reply_word)) return false;
    std::size_t word_start = 0;
    for (std::size_t i = 0; i <= p.size(); ++i) {
        if (i == p.size() || p[i] == '.') {
            const std::string_view w = p.substr(word_start, i - word_start);
            if (w.size() > 1 && (w.find('*') != std::string_view::npos || w.find('#') != std::string_view::npos))
                return false;
            word_start = i + 1;
        } else if (!detail::subject_byte(p[i])) {
            return false;
        }
    }
    return true;
}

namespace detail {

/// A compiled subscription pattern.
class topic_pattern {
public:
    /// Matches nothing (request() inboxes).
    topic_pattern() = default;

    /// Throws broker_error(invalid_pattern) naming `call` if `p` is not a
    /// valid pattern.
    topic_pattern(std::string_view p, std::string_view call) : text_(p) {
        if (!valid_subject_pattern(p)) throw broker_error(broker_errc::invalid_pattern, call, p);
        bool wild = false;
        std::size_t start = 0;
        for (std::size_t i = 0; i <= p.size(); ++i) {
            if (i != p.size() && p[i] != '.') continue;
            const std::string_view w = p.substr(start, i - start);
            start = i + 1;
            if (w == "#") {
                wild = true;
                if (!words_.empty() && words_.back().k == kind::any) continue;  // "#.#" is "#"
                words_.push_back({kind::any, {}});
            } else if (w == "*") {
                wild = true;
                words_.push_back({kind::one, {}});
            } else {
                words_.push_back({kind::literal, std::string(w)});
            }
        }
        all_ = words_.size() == 1 && words_[0].k == kind::any;
        exact_ = !wild;
        valid_ = true;
    }

    [[nodiscard]] const std::string& text() const noexcept { return text_; }

    /// Whether `s` (a valid subject) matches: word by word, `*` one word,
    /// `#` any run of words (the "last star" backtracking of glob matching,
    /// O(words of s x words of the pattern) at worst, no allocation).
    [[nodiscard]] bool matches(std::string_view s) const noexcept {
        if (!valid_) return false;
        if (all_) return true;
        if (exact_) return s == text_;
        constexpr std::size_t none = static_cast<std::size_t>(-1);
        const std::size_t n = words_.size();
        const std::size_t end = s.size() + 1;  // "after the last word"
        const auto word_end = [s](std::size_t at) noexcept {
            const std::size_t d = s.find('.', at);
            return d == std::string_view::npos ? s.size() : d;
        };
        std::size_t p = 0, pos = 0, star_p = none, star_pos = 0;
        while (pos != end) {
            if (p < n) {
                const word& w = words_[p];
                if (w.k == kind::any) {
                    star_p = p++;
                    star_pos = pos;
                    continue;
                }
                const std::size_t e = word_end(pos);
                if (w.k == kind::one || s.substr(pos, e - pos) == w.text) {
                    ++p;
                    pos = e + 1;
                    continue;
                }
            }
            if (star_p == none) return false;
            // The last `#` takes one more word; retry what follows it.
            p = star_p + 1;
            star_pos = word_end(star_pos) + 1;
            pos = star_pos;
        }
        while (p < n && words_[p].k == kind::any) ++p;
        return p == n;
    }

private:
    enum class kind : std::uint8_t { literal, one, any };
    struct word {
        kind k;
        std::string text;
    };
    std::string text_;
    std::vector<word> words_;
    bool all_ = false;
    bool exact_ = false;
    bool valid_ = false;
};

/// Memory for envelopes, recycled in three size classes (64, 128 and 256
/// bytes, aligned to their size up to a cache line).
/// A publisher allocates and the subscribers' threads free: through the
/// general allocator every such pair takes the arena lock on both sides.
/// Here each thread keeps up to 64 blocks per class and trades batches of
/// 32 with a process-wide list under a mutex: one lock per 32 envelopes.
/// Larger or over-aligned envelopes use operator new directly.
class envelope_blocks {
public:
    static constexpr std::size_t classes = 3;
    static constexpr std::size_t batch = 32;
    static constexpr std::size_t block_align = 64;  // one block, whole cache lines

    /// The class of a block of `bytes`, or `classes` if none fits.
    static constexpr std::size_t class_of(std::size_t bytes) noexcept {
        return bytes <= 64 ? 0 : bytes <= 128 ? 1 : bytes <= 256 ? 2 : classes;
    }
    static constexpr std::size_t class_bytes(std::size_t c) noexcept { return std::size_t{64} << c; }

    static void* get(std::size_t c) {
        std::vector<void*>& mine = local().free[c];
        if (mine.empty()) refill(mine, c);
        if (mine.empty()) return ::operator new(class_bytes(c), std::align_val_t{block_align});
        void* p = mine.back();
        mine.pop_back();
        return p;
    }
    static void put(std::size_t c, void* p) noexcept {
        std::vector<void*>& mine = local().free[c];
        if (mine.size() >= 2 * batch) spill(mine, c, batch);
        if (mine.size() < mine.capacity()) {
            mine.push_back(p);
            return;
        }
        ::operator delete(p, std::align_val_t{block_align});  // no room was reserved
    }

private:
    struct shared_lists {
        std::mutex mu;
        std::vector<void*> free[classes];
    };
    struct thread_lists {
        std::vector<void*> free[classes];
        thread_lists() {
            for (auto& v : free) {
                try {
                    v.reserve(2 * batch + 1);
                } catch (...) {
                }
            }
        }
        ~thread_lists() {
            for (std::size_t c = 0; c < classes; ++c) spill(free[c], c, free[c].size());
        }
    };
    static shared_lists& shared() noexcept {
        static shared_lists* s = new shared_lists;  // never destroyed: threads may exit after main
        return *s;
    }
    static thread_lists& local() noexcept {
        thread_local thread_lists t;
        return t;
    }
    static void refill(std::vector<void*>& mine, std::size_t c) noexcept {
        shared_lists& s = shared();
        std::lock_guard<std::mutex> g(s.mu);
        std::vector<void*>& from = s.free[c];
        const std::size_t n = std::min(batch, from.size());
        for (std::size_t i = 0; i < n && mine.size() < mine.capacity(); ++i) {
            mine.push_back(from.back());
            from.pop_back();
        }
    }
    static void spill(std::vector<void*>& mine, std::size_t c, std::size_t n) noexcept {
        shared_lists& s = shared();
        std::lock_guard<std::mutex> g(s.mu);
        std::vector<void*>& to = s.free[c];
        for (std::size_t i = 0; i < n && !mine.empty(); ++i) {
            void* p = mine.back();
            mine.pop_back();
            try {
                to.push_back(p);
            } catch (...) {
                ::operator delete(p, std::align_val_t{block_align});
            }
        }
    }
};

/// What every subscriber of one publish shares: the payload, once, with
/// the subject and the reply subject, in one allocation (their bytes follow
/// the object). Reference counted by hand, so that a publish to K
/// subscriptions sets the count to K once instead of K atomic increments on
/// a line the consumers are decrementing. Kept small: with a 16-byte payload
/// and a subject of up to 16 bytes it fills one 64-byte block, one cache
/// line to move from the publisher's core to the subscribers'.
template <class T>
struct envelope {
    envelope(const envelope&) = delete;
    envelope& operator=(const envelope&) = delete;

    mutable std::atomic<std::uint32_t> refs;
    std::uint16_t subject_len = 0;
    std::uint16_t reply_len = 0;
    const T* payload = nullptr;

    [[nodiscard]] std::string_view subject() const noexcept { return {text(), subject_len}; }
    [[nodiscard]] std::string_view reply_to() const noexcept { return {text() + subject_len, reply_len}; }

    /// A `Kind` (owning_envelope or sharing_envelope) on `subject`, holding
    /// `refs` references. Subjects are at most 255 bytes, reply subjects
    /// shorter.
    template <class Kind, class... Args>
    static const envelope* create(std::string_view subject, std::uint32_t refs, std::string_view reply,
                                  Args&&... args) {
        constexpr std::size_t align = alignof(Kind) > alignof(std::max_align_t) ? alignof(Kind)
                                                                                 : alignof(std::max_align_t);
        const std::size_t bytes = sizeof(Kind) + subject.size() + reply.size();
        const std::size_t cls = align <= alignof(std::max_align_t) ? envelope_blocks::class_of(bytes)
                                                                  : envelope_blocks::classes;
        void* mem = cls < envelope_blocks::classes ? envelope_blocks::get(cls)
                                                   : ::operator new(bytes, std::align_val_t{align});
        char* text = static_cast<char*>(mem) + sizeof(Kind);
        if (!subject.empty()) std::memcpy(text, subject.data(), subject.size());
        if (!reply.empty()) std::memcpy(text + subject.size(), reply.data(), reply.size());
        try {
            Kind* k = ::new (mem) Kind(std::forward<Args>(args)...);
            k->refs.store(refs, std::memory_order_relaxed);
            k->subject_len = static_cast<std::uint16_t>(subject.size());
            k->reply_len = static_cast<std::uint16_t>(reply.size());
            k->bytes_ = static_cast<std::uint32_t>(bytes);
            k->align_ = static_cast<std::uint16_t>(align);
            k->class_ = static_cast<std::uint8_t>(cls);
            return k;
        } catch (...) {
            free_block(mem, cls, bytes, align);
            throw;
        }
    }
    void release() const noexcept {
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            const std::size_t bytes = bytes_, align = align_, cls = class_;
            auto* self = const_cast<envelope*>(this);
            self->~envelope();
            free_block(static_cast<void*>(self), cls, bytes, align);
        }
    }

protected:
    envelope() noexcept : refs(1) {}
    virtual ~envelope() = default;

private:
    // The text sits at the end of the allocation: bytes_ counts it.
    [[nodiscard]] const char* text() const noexcept {
        return reinterpret_cast<const char*>(this) + bytes_ - subject_len - reply_len;
    }
    static void free_block(void* p, std::size_t cls, std::size_t /*bytes*/, std::size_t align) noexcept {
        if (cls < envelope_blocks::classes) envelope_blocks::put(cls, p);
        else ::operator delete(p, std::align_val_t{align});
    }
    std::uint32_t bytes_ = 0;
    std::uint16_t align_ = 0;
    std::uint8_t class_ = 0;
};

/// An envelope that holds the payload itself (publish of a T).
template <class T>
struct owning_envelope final : envelope<T> {
    explicit owning_envelope(T&& v) : value(std::move(v)) { this->payload = &value; }
    T value;
};

/// An envelope that shares a payload the caller already holds.
template <class T>
struct sharing_envelope final : envelope<T> {
    explicit sharing_envelope(std::shared_ptr<const T> v) noexcept : keep(std::move(v)) {
        this->payload = keep.get();
    }
    std::shared_ptr<const T> keep;
};

/// One reference to an envelope.
template <class T>
class env_ref {
public:
    env_ref() = default;
    /// Takes over one reference the caller holds.
    explicit env_ref(const envelope<T>* e) noexcept : e_(e) {}
    env_ref(const env_ref& o) noexcept : e_(o.e_) {
        if (e_) e_->refs.fetch_add(1, std::memory_order_relaxed);
    }
    env_ref(env_ref&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
    env_ref& operator=(env_ref o) noexcept {
        std::swap(e_, o.e_);
        return *this;
    }
    ~env_ref() { reset(); }
    void reset() noexcept {
        if (e_) std::exchange(e_, nullptr)->release();
    }
    [[nodiscard]] const envelope<T>* operator->() const noexcept { return e_; }
    [[nodiscard]] const envelope<T>* get() const noexcept { return e_; }
    explicit operator bool() const noexcept { return e_ != nullptr; }

private:
    const envelope<T>* e_ = nullptr;
};

template <class T, class Clock>
class topic_queue;
template <class T, class Clock>
class topic_core;

}  // namespace detail

/// A message as a subscriber receives it. Copies are cheap: they share the
/// payload (and the subject) with every other subscriber of the same
/// publish. The payload is immutable.
template <class T>
class message {
public:
    /// The subject it was published on (for a reply: the requester's reply
    /// subject).
    [[nodiscard]] std::string_view subject() const noexcept { return env_->subject(); }
    /// Where to reply (topics::reply); empty unless sent by request().
    [[nodiscard]] std::string_view reply_to() const noexcept { return env_->reply_to(); }
    /// The payload, one object shared by every subscriber.
    [[nodiscard]] const T& payload() const noexcept { return *env_->payload; }
    /// The payload as a shared pointer (it keeps the message's data alive).
    /// For a publish of a shared_ptr, it points to the caller's object.
    /// \throws std::bad_alloc (it allocates the shared pointer's control block).
    [[nodiscard]] std::shared_ptr<const T> shared_payload() const {
        if (const auto* s = dynamic_cast<const detail::sharing_envelope<T>*>(env_.get())) return s->keep;
        return std::shared_ptr<const T>(env_->payload, [keep = env_](const T*) mutable { keep.reset(); });
    }
    /// How many messages this subscription lost (dropped or rejected) just
    /// before this one; 0 normally.
    [[nodiscard]] std::uint64_t gap() const noexcept { return gap_; }
    /// This subscription's number for the message: 1, 2, 3... counting every
    /// message routed to it, lost ones included.
    [[nodiscard]] std::uint64_t sequence() const noexcept { return seq_; }

private:
    template <class, class>
    friend class detail::topic_queue;
    message(detail::env_ref<T> e, std::uint64_t seq, std::uint64_t gap) noexcept
        : env_(std::move(e)), seq_(seq), gap_(gap) {}

    detail::env_ref<T> env_;
    std::uint64_t seq_;
    std::uint64_t gap_;
};

namespace detail {

/// Where await_idle() sleeps; a queue that becomes empty wakes it only when
/// somebody waits.
template <class Clock>
struct idle_hub {
    explicit idle_hub(const clock_ref<Clock>& c) : cv(c, mu) {}
    void notify() noexcept {
        std::lock_guard<std::mutex> g(mu);
        cv.notify_all();
    }
    std::mutex mu;
    clock_cv<Clock> cv;
    std::atomic<std::uint32_t> waiters{0};
};

/// Spins, then yields, until `ready()` or about blocking_yield_time passed
/// (a waiter whose other side is busy does not sleep in the kernel).
template <class Ready>
bool spin_then_yield(Ready&& ready) {
    for (int i = 0; i < blocking_quick_spins; ++i) {
        if (ready()) return true;
        cpu_relax();
    }
    const auto start = std::chrono::steady_clock::now();
    for (unsigned round = 1;; ++round) {
        if (ready()) return true;
        if ((round & 15) == 0) {
            const auto spent = std::chrono::steady_clock::now() - start;
            if (spent >= blocking_yield_time) return false;
            if (spent >= blocking_spin_time) std::this_thread::yield();
        }
        cpu_relax();
    }
}

/// One subscription's queue: a ring under two spin locks, one for the
/// publishers' end and one for the consumer's, so that a publisher and the
/// consumer do not take the same lock word.
///
///   - tail_lock_ (publishers): the slot at tail_, seq_, received_,
///     rejected_, high_water_.
///   - head_lock_ (consumers): the slot at head_, last_taken_, delivered_.
///   - count_ (atomic): the messages queued. A publisher writes its slot and
///     then adds 1 (a release, and a full barrier); a consumer reads it
///     (acquire) before it takes the slots it counts, and subtracts what it
///     took (a release, and a full barrier) after moving them out, so a
///     publisher that reads it (acquire) reuses only slots already emptied.
///     Only publishers add, only consumers (and drop_oldest's eviction, under
///     both locks) subtract, so under both locks it does not move.
///   - Both locks (always tail_lock_, then head_lock_): whatever both ends
///     read, ring_, ring_size_, mask_, state_ (grow, unsubscribe, close), a
///     drop_oldest eviction (dropped_), and stats().
///
/// Sleepers use wait_mu_ and cv_. A consumer about to sleep (holding
/// wait_mu_) adds to consumers_waiting_ and then reads count_ again; a
/// publisher adds to count_ and then reads consumers_waiting_: all of it
/// sequentially consistent, so one of the two sees the other, and a
/// publisher that sees a sleeper takes wait_mu_ before notifying, which it
/// cannot get before the sleeper waits. Publishers waiting for room and
/// publishers_waiting_ mirror that with the consumer's subtraction.
template <class T, class Clock>
class topic_queue {
public:
    using env_ptr = env_ref<T>;
    static constexpr std::uint32_t unsubscribed_bit = 1;
    static constexpr std::uint32_t closed_bit = 2;

    topic_queue(topic_pattern p, subscription_options o, const clock_ref<Clock>& c, idle_hub<Clock>* hub)
        : pattern_(std::move(p)), cap_(o.capacity), overflow_(o.overflow), clock_(c), hub_(hub),
          cv_(c, wait_mu_) {}
    topic_queue(const topic_queue&) = delete;
    topic_queue& operator=(const topic_queue&) = delete;

    [[nodiscard]] const topic_pattern& pattern() const noexcept { return pattern_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return cap_; }
    [[nodiscard]] overflow_action overflow() const noexcept { return overflow_; }
    [[nodiscard]] std::size_t size() const noexcept { return count_.load(std::memory_order_relaxed); }
    [[nodiscard]] bool active() const noexcept {
        return (state_.load(std::memory_order_acquire) & unsubscribed_bit) == 0;
    }

    /// Queues `e` (moved from only if queued): 1 if queued (after evicting
    /// the oldest under drop_oldest), 0 if refused (full under reject, or
    /// unsubscribed). Throws broker_error(closed) once the topics object is
    /// closed.
    template <class E>
    std::size_t push(E&& e) {
        env_ptr evicted;  // released after the locks: its payload's destructor may publish
        bool wake = false;
        {
            std::unique_lock<spin_word> g(tail_lock_);
            // state_ changes under both locks: this read is current.
            if (const std::uint32_t st = state_.load(std::memory_order_relaxed); st != 0) {
                g.unlock();
                return refused(st);
            }
            // Never below the true count (only publishers add, under this
            // lock); acquire: the slots the consumer gave back are empty.
            const std::size_t c = count_.load(std::memory_order_acquire);
            if (c == cap_) {
                if (overflow_ == overflow_action::reject) {
                    ++seq_;  // the loss shows as a gap on the next message taken
                    ++rejected_;
                    return 0;
                }
                if (overflow_ == overflow_action::block) {
                    g.unlock();
                    return push_blocking(std::forward<E>(e));
                }
                std::lock_guard<spin_word> h(head_lock_);
                if (count_.load(std::memory_order_relaxed) == cap_) {  // the consumer may have taken some
                    evicted = std::move(ring_[head_].env);
                    head_ = (head_ + 1) & mask_;
                    count_.fetch_sub(1, std::memory_order_relaxed);  // both locks held: nobody reads it for a slot
                    ++dropped_;
                }
                // count_ < cap_ <= ring_size_ now: no grow.
            } else if (c == ring_size_) {
                grow();
            }
            wake = place(std::forward<E>(e));
        }
        if (wake) wake_all();
        return 1;
    }

    std::optional<message<T>> try_take() {
        std::optional<message<T>> m;
        bool wake_pub = false, wake_idle = false;
        {
            std::lock_guard<spin_word> g(head_lock_);
            if (count_.load(std::memory_order_acquire) == 0) return m;
            m.emplace(take_locked(wake_pub, wake_idle));
        }
        if (wake_pub) wake_all();
        if (wake_idle) hub_->notify();
        return m;
    }

    /// Takes the next message, waiting until the clock reads `deadline`
    /// (clock_cv::forever: no limit). nullopt on time-out, once unsubscribed,
    /// or once closed and empty.
    std::optional<message<T>> take_until(std::int64_t deadline) {
        // A lock only when there is something to take: an empty queue's
        // consumer leaves the lines to the publishers.
        if (count_.load(std::memory_order_relaxed) != 0) {
            if (auto m = try_take()) return m;
        }
        if (state_.load(std::memory_order_acquire) == 0 &&
            (deadline == clock_cv<Clock>::forever || clock_.now_ns() < deadline)) {
            const bool ready = spin_then_yield([this, deadline] {
                return count_.load(std::memory_order_relaxed) != 0 ||
                       state_.load(std::memory_order_relaxed) != 0 ||
                       (deadline != clock_cv<Clock>::forever && clock_.now_ns() >= deadline);
            });
            // A message came while spinning: take it without the sleepers' mutex.
            if (ready && count_.load(std::memory_order_relaxed) != 0) {
                if (auto m = try_take()) return m;
            }
        }
        std::unique_lock<std::mutex> wl(wait_mu_);
        std::unique_lock<spin_word> g(head_lock_);
        for (;;) {
            if (count_.load(std::memory_order_acquire) != 0) {
                bool wake_pub = false, wake_idle = false;
                message<T> m = take_locked(wake_pub, wake_idle);
                g.unlock();
                if (wake_pub) cv_.notify_all();
                wl.unlock();
                if (wake_idle) hub_->notify();
                return m;
            }
            // state_ changes under both locks: this read is current.
            if (state_.load(std::memory_order_relaxed) != 0) return std::nullopt;
            if (deadline != clock_cv<Clock>::forever && clock_.now_ns() >= deadline) return std::nullopt;
            // Counted, then count_ read again: a publisher that added after
            // this read sees the count and wakes us (it needs wait_mu_,
            // which we hold until we sleep).
            consumers_waiting_.fetch_add(1, std::memory_order_seq_cst);
            if (count_.load(std::memory_order_seq_cst) != 0) {
                consumers_waiting_.fetch_sub(1, std::memory_order_relaxed);
                continue;
            }
            g.unlock();
            cv_.wait_until(wl, deadline);
            g.lock();
            consumers_waiting_.fetch_sub(1, std::memory_order_relaxed);
        }
    }

    /// Appends up to `max` queued messages to `out`, without waiting.
    std::size_t take_n(std::vector<message<T>>& out, std::size_t max) {
        const std::size_t guess = std::min(max, count_.load(std::memory_order_relaxed));
        if (guess == 0) return 0;
        out.reserve(out.size() + guess);  // no allocation under the lock
        std::size_t n = 0;
        bool wake_pub = false, wake_idle = false;
        {
            std::lock_guard<spin_word> g(head_lock_);
            const std::size_t k =
                std::min({max, count_.load(std::memory_order_acquire), out.capacity() - out.size()});
            // The bookkeeping of take_locked once for the batch: the lock is
            // held for a few stores per message.
            std::uint64_t last = last_taken_;
            std::size_t h = head_;
            for (; n < k; ++n) {
                slot& s = ring_[h];
                out.push_back(message<T>(std::move(s.env), s.seq, s.seq - last - 1));
                last = s.seq;
                h = (h + 1) & mask_;
            }
            if (k != 0) {
                last_taken_ = last;
                head_ = h;
                delivered_ += k;
                const std::size_t left = count_.fetch_sub(k, std::memory_order_seq_cst) - k;
                wake_pub = publishers_waiting_.load(std::memory_order_seq_cst) != 0;
                wake_idle = left == 0 && hub_ != nullptr && hub_->waiters.load(std::memory_order_relaxed) != 0;
            }
        }
        if (wake_pub) wake_all();
        if (wake_idle) hub_->notify();
        return n;
    }

    /// Stops the queue for good and discards what it holds; wakes everyone
    /// waiting on it. True the first time.
    bool unsubscribe() noexcept {
        std::unique_ptr<slot[]> discarded;  // destroyed after the locks
        {
            std::lock_guard<spin_word> g(tail_lock_);
            std::lock_guard<spin_word> h(head_lock_);
            const std::uint32_t st = state_.load(std::memory_order_relaxed);
            if (st & unsubscribed_bit) return false;
            state_.store(st | unsubscribed_bit, std::memory_order_release);
            discarded = std::move(ring_);
            ring_size_ = mask_ = head_ = tail_ = 0;
            count_.store(0, std::memory_order_relaxed);
        }
        wake_all();
        return true;
    }

    /// The topics object closed: publishers get broker_error(closed),
    /// consumers drain what is queued and then get nullopt.
    void close() noexcept {
        {
            std::lock_guard<spin_word> g(tail_lock_);
            std::lock_guard<spin_word> h(head_lock_);
            state_.store(state_.load(std::memory_order_relaxed) | closed_bit, std::memory_order_release);
        }
        wake_all();
    }

    /// Whether the queue is empty; under the consumers' lock, so that a
    /// consumer that empties it later sees the idle waiter counted before
    /// this call.
    [[nodiscard]] bool empty_now() noexcept {
        std::lock_guard<spin_word> h(head_lock_);
        return count_.load(std::memory_order_relaxed) == 0;
    }

    [[nodiscard]] subscription_stats stats() noexcept {
        std::lock_guard<spin_word> g(tail_lock_);
        std::lock_guard<spin_word> h(head_lock_);
        return subscription_stats{received_,
                                  delivered_,
                                  dropped_,
                                  rejected_,
                                  high_water_,
                                  count_.load(std::memory_order_relaxed),
                                  consumers_waiting_.load(std::memory_order_relaxed),
                                  publishers_waiting_.load(std::memory_order_relaxed)};
    }

    bool folded = false;  // its counters moved to the topics totals (topic_core's writer lock)

private:
    struct slot {
        env_ptr env;
        std::uint64_t seq = 0;
    };

    static std::size_t refused(std::uint32_t st) {
        if (st & unsubscribed_bit) return 0;
        throw broker_error(broker_errc::closed, "publish");
    }

    /// Appends under tail_lock_; the slot at tail_ is free (count_ <
    /// ring_size_ and count_ < cap_). Whether a consumer sleeps.
    template <class E>
    bool place(E&& e) {
        slot& s = ring_[tail_];
        s.env = std::forward<E>(e);
        s.seq = ++seq_;
        tail_ = (tail_ + 1) & mask_;
        ++received_;
        // Publishes the slot (release); a full barrier before the read of
        // consumers_waiting_ (see the class comment).
        const std::size_t now = count_.fetch_add(1, std::memory_order_seq_cst) + 1;
        if (now > high_water_) high_water_ = now;
        return consumers_waiting_.load(std::memory_order_seq_cst) != 0;
    }

    /// The ring starts small and doubles up to the capacity, so that an
    /// idle subscription with a large capacity costs little memory. Called
    /// under tail_lock_; takes head_lock_ to move the slots.
    void grow() {
        const std::size_t want = std::min(round_up_pow2(cap_), ring_size_ == 0 ? std::size_t{16} : ring_size_ * 2);
        auto fresh = std::make_unique<slot[]>(want);  // ring_size_ is stable under tail_lock_
        std::unique_ptr<slot[]> old;                  // freed after head_lock_
        {
            std::lock_guard<spin_word> h(head_lock_);
            const std::size_t n = count_.load(std::memory_order_relaxed);  // stable under both locks
            for (std::size_t i = 0; i < n; ++i) fresh[i] = std::move(ring_[(head_ + i) & mask_]);
            old = std::move(ring_);
            ring_ = std::move(fresh);
            ring_size_ = want;
            mask_ = want - 1;
            head_ = 0;
            tail_ = n;
        }
    }

    /// Takes the slot at head_ under head_lock_; count_ (read with acquire)
    /// is not 0.
    message<T> take_locked(bool& wake_pub, bool& wake_idle) noexcept {
        slot& s = ring_[head_];
        const std::uint64_t seq = s.seq;
        message<T> m(std::move(s.env), seq, seq - last_taken_ - 1);
        last_taken_ = seq;
        head_ = (head_ + 1) & mask_;
        ++delivered_;
        // Gives the slot back (release); a full barrier before the read of
        // publishers_waiting_ (see the class comment).
        const std::size_t left = count_.fetch_sub(1, std::memory_order_seq_cst) - 1;
        wake_pub = wake_pub || publishers_waiting_.load(std::memory_order_seq_cst) != 0;
        if (left == 0 && hub_ != nullptr && hub_->waiters.load(std::memory_order_relaxed) != 0) wake_idle = true;
        return m;
    }

    template <class E>
    std::size_t push_blocking(E&& e) {
        spin_then_yield([this] {
            return count_.load(std::memory_order_relaxed) < cap_ || state_.load(std::memory_order_relaxed) != 0;
        });
        std::unique_lock<std::mutex> wl(wait_mu_);
        std::unique_lock<spin_word> g(tail_lock_);
        std::size_t c = 0;
        for (;;) {
            if (const std::uint32_t st = state_.load(std::memory_order_relaxed); st != 0) {
                g.unlock();
                wl.unlock();
                return refused(st);
            }
            c = count_.load(std::memory_order_acquire);
            if (c < cap_) break;
            // Counted, then count_ read again: a consumer that takes after
            // this read sees the count and wakes us (it needs wait_mu_,
            // which we hold until we sleep).
            publishers_waiting_.fetch_add(1, std::memory_order_seq_cst);
            if (count_.load(std::memory_order_seq_cst) < cap_) {
                publishers_waiting_.fetch_sub(1, std::memory_order_relaxed);
                continue;
            }
            g.unlock();
            cv_.wait_until(wl, clock_cv<Clock>::forever);
            g.lock();
            publishers_waiting_.fetch_sub(1, std::memory_order_relaxed);
        }
        if (c == ring_size_) grow();
        const bool wake = place(std::forward<E>(e));
        g.unlock();
        if (wake) cv_.notify_all();
        return 1;
    }

    void wake_all() noexcept {
        std::lock_guard<std::mutex> g(wait_mu_);  // a waiter between its check and its sleep is not missed
        cv_.notify_all();
    }

    // The publishers' end, under tail_lock_ (dropped_: under both locks).
    alignas(destructive_size) spin_word tail_lock_;
    std::size_t tail_ = 0;          // the slot the next message goes to
    std::uint64_t seq_ = 0;         // the last sequence number given
    std::uint64_t received_ = 0, rejected_ = 0, dropped_ = 0;
    std::size_t high_water_ = 0;

    // The consumers' end, under head_lock_.
    alignas(destructive_size) spin_word head_lock_;
    std::size_t head_ = 0;          // the oldest queued message
    std::uint64_t last_taken_ = 0;  // the sequence number of the last message taken
    std::uint64_t delivered_ = 0;

    // Both ends, every message.
    alignas(destructive_size) std::atomic<std::size_t> count_{0};

    // Both ends read these; they change rarely (under both locks, or when
    // somebody goes to sleep).
    alignas(destructive_size) std::unique_ptr<slot[]> ring_;
    std::size_t ring_size_ = 0;
    std::size_t mask_ = 0;
    std::atomic<std::uint32_t> state_{0};  // unsubscribed_bit | closed_bit
    std::atomic<std::size_t> consumers_waiting_{0};
    std::atomic<std::size_t> publishers_waiting_{0};

    // Read-only after construction.
    const topic_pattern pattern_;
    const std::size_t cap_;
    const overflow_action overflow_;
    const clock_ref<Clock>& clock_;
    idle_hub<Clock>* const hub_;

    std::mutex wait_mu_;
    clock_cv<Clock> cv_;
};

/// The subscriptions that one subject reaches.
template <class Q>
struct route {
    std::size_t hash = 0;
    std::shared_ptr<const std::string> subject;  // shared by the envelopes of every publish on it
    std::vector<Q*> queues;
};

/// Subject -> route, filled by publishers, never emptied: an open-addressing
/// table of atomic pointers, insert-only, owned by one routing table and
/// freed with it. Past max_routes subjects, publish matches patterns on
/// every call instead.
template <class Q>
class route_cache {
public:
    static constexpr std::size_t slots = 4096;
    static constexpr std::size_t max_routes = 3072;
    static constexpr std::size_t max_probe = 32;

    route_cache() = default;
    route_cache(const route_cache&) = delete;
    route_cache& operator=(const route_cache&) = delete;
    ~route_cache() {
        if (std::atomic<route<Q>*>* t = table_.load(std::memory_order_acquire)) {
            for (std::size_t i = 0; i < slots; ++i) delete t[i].load(std::memory_order_relaxed);
            delete[] t;
        }
    }

    [[nodiscard]] const route<Q>* find(std::size_t h, std::string_view subject) const noexcept {
        std::atomic<route<Q>*>* t = table_.load(std::memory_order_acquire);
        if (t == nullptr) return nullptr;
        for (std::size_t i = 0; i < max_probe; ++i) {
            const route<Q>* r = t[(h + i) & (slots - 1)].load(std::memory_order_acquire);
            if (r == nullptr) return nullptr;
            if (r->hash == h && *r->subject == subject) return r;
        }
        return nullptr;
    }

    [[nodiscard]] bool full() const noexcept { return count_.load(std::memory_order_relaxed) >= max_routes; }

    /// Inserts `r` unless the cache is full; returns the route to use (r, or
    /// an equal one another publisher inserted first), or nullptr (then `r`
    /// stays with the caller).
    const route<Q>* insert(std::unique_ptr<route<Q>>& r) {
        std::atomic<route<Q>*>* t = table_.load(std::memory_order_acquire);
        if (t == nullptr) {
            auto* fresh = new std::atomic<route<Q>*>[slots];
            for (std::size_t i = 0; i < slots; ++i) fresh[i].store(nullptr, std::memory_order_relaxed);
            if (table_.compare_exchange_strong(t, fresh, std::memory_order_acq_rel, std::memory_order_acquire)) {
                t = fresh;
            } else {
                delete[] fresh;
            }
        }
        for (std::size_t i = 0; i < max_probe; ++i) {
            std::atomic<route<Q>*>& s = t[(r->hash + i) & (slots - 1)];
            route<Q>* cur = s.load(std::memory_order_acquire);
            if (cur == nullptr) {
                if (s.compare_exchange_strong(cur, r.get(), std::memory_order_acq_rel, std::memory_order_acquire)) {
                    count_.fetch_add(1, std::memory_order_relaxed);
                    return r.release();
                }
            }
            if (cur->hash == r->hash && *cur->subject == *r->subject) return cur;
        }
        return nullptr;
    }

private:
    std::atomic<std::atomic<route<Q>*>*> table_{nullptr};
    std::atomic<std::size_t> count_{0};
};

/// An immutable set of subscriptions and its route cache.
template <class Q>
struct route_table {
    std::vector<std::shared_ptr<Q>> queues;
    mutable route_cache<Q> cache;  // filled by publishers, which see the table as const
};

/// A publisher's hazard slot: the routing table it reads (nullptr: free),
/// and counters that only its holder writes.
struct alignas(destructive_size) publisher_slot {
    std::atomic<const void*> table{nullptr};
    std::atomic<std::uint64_t> published{0};
    std::atomic<std::uint64_t> no_route{0};
    publisher_slot* next = nullptr;  // the overflow list

    void bump(std::atomic<std::uint64_t>& c) noexcept {
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
};

/// A number per thread, to spread publishers over the slots.
inline std::size_t thread_hint() noexcept {
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t hint = next.fetch_add(1, std::memory_order_relaxed);
    return hint;
}

inline std::atomic<std::uint64_t> topic_core_ids{0};

/// Everything a topics object and its subscription handles share.
template <class T, class Clock>
class topic_core {
public:
    using queue = topic_queue<T, Clock>;
    using table = route_table<queue>;
    using env_ptr = env_ref<T>;

    explicit topic_core(topic_options o) requires std::is_default_constructible_v<Clock>
        : clock_(), opts_(check(o)), hub_(clock_) {}
    topic_core(topic_options o, Clock& c) : clock_(c), opts_(check(o)), hub_(clock_) {}
    topic_core(const topic_core&) = delete;
    topic_core& operator=(const topic_core&) = delete;
    ~topic_core() {
        delete current_.load(std::memory_order_relaxed);
        for (const table* t : retired_) delete t;
        for (publisher_slot* s = extra_.load(std::memory_order_relaxed); s != nullptr;) {
            publisher_slot* next = s->next;
            delete s;
            s = next;
        }
    }

    [[nodiscard]] Clock& clock() const noexcept { return clock_.get(); }
    [[nodiscard]] const clock_ref<Clock>& clock_reference() const noexcept { return clock_; }
    [[nodiscard]] bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

    // ------------------------------------------------------------ publish

    void check_publish(std::string_view subject, const T& payload, std::string_view call) const {
        if (closed()) throw broker_error(broker_errc::closed, call, subject);
        if (!valid_subject(subject)) throw broker_error(broker_errc::invalid_name, call, subject);
        check_size(payload, call);
    }
    void check_size(const T& payload, std::string_view call) const {
        if (payload_size(payload) > opts_.max_payload)
            throw broker_error(broker_errc::payload_too_large, call, std::to_string(payload_size(payload)));
    }

    /// Routes a publish on `subject` (already checked); `make(subject, refs)`
    /// builds the envelope holding `refs` references, only if some
    /// subscription matches.
    template <class Make>
    std::size_t publish(std::string_view subject, Make&& make) {
        reader rd(*this);
        const table& t = rd.get();
        publisher_slot& s = rd.slot();
        s.bump(s.published);
        if (t.queues.empty()) {
            s.bump(s.no_route);
            return 0;
        }
        const std::size_t h = std::hash<std::string_view>{}(subject);
        const route<queue>* r = t.cache.find(h, subject);
        std::unique_ptr<route<queue>> fresh;
        if (r == nullptr && !t.cache.full()) {
            fresh = build_route(t, subject, h);
            r = t.cache.insert(fresh);
            if (r == nullptr) r = fresh.get();
        }
        if (r != nullptr) {
            if (r->queues.empty()) {
                s.bump(s.no_route);
                return 0;
            }
            // One reference per subscription, counted once; a push that
            // refuses its reference drops it.
            const std::size_t k = r->queues.size();
            const envelope<T>* e = make(subject, static_cast<std::uint32_t>(k));
            std::size_t n = 0, i = 0;
            try {
                for (; i < k; ++i) n += r->queues[i]->push(env_ptr(e));
            } catch (...) {
                // Closed mid-way: the references of the queues not reached.
                for (++i; i < k; ++i) e->release();
                throw;
            }
            return n;
        }
        // Too many subjects to cache: match every pattern, no route built.
        const auto first = std::find_if(t.queues.begin(), t.queues.end(),
                                        [subject](const auto& q) { return q->pattern().matches(subject); });
        if (first == t.queues.end()) {
            s.bump(s.no_route);
            return 0;
        }
        const env_ptr e(make(subject, 1));
        std::size_t n = 0;
        for (auto it = first; it != t.queues.end(); ++it) {
            if ((*it)->pattern().matches(subject)) n += (*it)->push(e);
        }
        return n;
    }

    // ------------------------------------------------------ subscriptions

    std::shared_ptr<queue> subscribe(std::string_view pattern, subscription_options o) {
        topic_pattern p(pattern, "subscribe");
        check_options(o, "subscribe");
        if (closed()) throw broker_error(broker_errc::closed, "subscribe", pattern);
        auto q = std::make_shared<queue>(std::move(p), o, clock_, &hub_);
        std::vector<const table*> freeable;
        {
            std::lock_guard<std::mutex> g(writer_mu_);
            if (closed()) throw broker_error(broker_errc::closed, "subscribe", pattern);
            install(rebuilt(q));
            freeable = reclaim();
        }
        for (const table* t : freeable) delete t;
        return q;
    }

    /// Takes `q` out for good; after it returns no publisher queues to it.
    void unsubscribe(const std::shared_ptr<queue>& q) noexcept {
        if (!q->unsubscribe()) return;
        std::vector<const table*> freeable;
        {
            std::lock_guard<std::mutex> g(writer_mu_);
            fold(*q);
            const table* cur = current_.load(std::memory_order_relaxed);
            if (std::any_of(cur->queues.begin(), cur->queues.end(), [&](const auto& e) { return e == q; })) {
                try {
                    install(rebuilt(nullptr));
                } catch (...) {
                    // Out of memory: q stays in the table, stopped (publishers skip
                    // it); the next rebuild drops it.
                }
            }
            freeable = reclaim();
        }
        for (const table* t : freeable) delete t;
        if (hub_.waiters.load(std::memory_order_relaxed) != 0) hub_.notify();
    }

    // -------------------------------------------------------------- close

    void close() noexcept {
        {
            std::lock_guard<std::mutex> g(writer_mu_);
            if (closed_.exchange(true, std::memory_order_acq_rel)) return;
            for (const auto& q : current_.load(std::memory_order_relaxed)->queues) q->close();
        }
        std::lock_guard<std::mutex> g(reply_mu_);
        for (auto& [id, q] : inboxes_) q->close();
    }

    /// close(), then forget every subscription (the topics object is gone;
    /// handles still drain what they hold).
    void shutdown() noexcept {
        close();
        std::vector<const table*> freeable;
        {
            std::lock_guard<std::mutex> g(writer_mu_);
            try {
                install(std::make_unique<table>());
            } catch (...) {
                // Out of memory: the table stays until the core goes.
            }
            freeable = reclaim();
        }
        for (const table* t : freeable) delete t;
    }

    // -------------------------------------------------------------- state

    [[nodiscard]] bool idle() {
        std::lock_guard<std::mutex> g(writer_mu_);
        for (const auto& q : current_.load(std::memory_order_relaxed)->queues) {
            if (!q->empty_now()) return false;
        }
        return true;
    }

    bool await_idle(std::int64_t deadline) {
        std::unique_lock<std::mutex> lk(hub_.mu);
        hub_.waiters.fetch_add(1, std::memory_order_seq_cst);
        struct leave {
            std::atomic<std::uint32_t>& w;
            ~leave() { w.fetch_sub(1, std::memory_order_relaxed); }
        } guard{hub_.waiters};
        for (;;) {
            if (idle()) return true;
            if (deadline != clock_cv<Clock>::forever && clock_.now_ns() >= deadline) return false;
            hub_.cv.wait_until(lk, deadline);
        }
    }

    [[nodiscard]] topic_stats stats() {
        topic_stats r;
        std::lock_guard<std::mutex> g(writer_mu_);
        for (const publisher_slot& s : slots_) add_slot(r, s);
        for (const publisher_slot* s = extra_.load(std::memory_order_acquire); s != nullptr; s = s->next)
            add_slot(r, *s);
        r.delivered = gone_.received;
        r.dropped = gone_.dropped;
        r.rejected = gone_.rejected;
        for (const auto& q : current_.load(std::memory_order_relaxed)->queues) {
            if (q->folded) continue;
            const subscription_stats st = q->stats();
            r.delivered += st.received;
            r.dropped += st.dropped;
            r.rejected += st.rejected;
            if (q->active()) ++r.subscriptions;
        }
        return r;
    }

    // ------------------------------------------------------ request/reply

    /// Registers a reply inbox; returns its subject.
    std::string open_inbox(const std::shared_ptr<queue>& q, std::uint64_t& id) {
        id = next_reply_.fetch_add(1, std::memory_order_relaxed);
        std::string subject(reply_word);
        subject += '.';
        subject += std::to_string(id_);
        subject += '.';
        subject += std::to_string(id);
        std::lock_guard<std::mutex> g(reply_mu_);
        if (closed()) throw broker_error(broker_errc::closed, "request");
        inboxes_.emplace(id, q);
        return subject;
    }

    /// Forgets the inbox `id` (if no reply took it out already) and stops `q`.
    void close_inbox(std::uint64_t id, const std::shared_ptr<queue>& q) noexcept {
        {
            std::lock_guard<std::mutex> g(reply_mu_);
            inboxes_.erase(id);
        }
        q->unsubscribe();
        std::lock_guard<std::mutex> g(writer_mu_);
        fold(*q);
    }

    /// Queues a reply to the inbox named by `reply_to`: 1, or 0 if the
    /// requester is gone or already has its reply (the first one wins: the
    /// inbox leaves the map with it).
    std::size_t reply(std::string_view reply_to, T&& payload) {
        reader rd(*this);
        publisher_slot& s = rd.slot();
        s.bump(s.published);
        env_ptr e;  // released after reply_mu_: a payload's destructor may reply
        std::uint64_t id = 0;
        if (parse_inbox(reply_to, id)) {
            e = env_ptr(envelope<T>::template create<owning_envelope<T>>(reply_to, 1, std::string_view(),
                                                                          std::move(payload)));
            std::lock_guard<std::mutex> g(reply_mu_);
            if (const auto it = inboxes_.find(id); it != inboxes_.end()) {
                const std::size_t n = it->second->push(e);  // capacity 1, reject: never waits
                inboxes_.erase(it);
                return n;
            }
        }
        s.bump(s.no_route);
        return 0;
    }

private:
    struct totals {
        std::uint64_t received = 0, dropped = 0, rejected = 0;
    };

    /// RAII hazard: the current routing table, safe to read until destroyed.
    class reader {
    public:
        explicit reader(topic_core& c) : slot_(c.claim(table_)) {}
        reader(const reader&) = delete;
        reader& operator=(const reader&) = delete;
        ~reader() { slot_->table.store(nullptr, std::memory_order_release); }
        [[nodiscard]] const table& get() const noexcept { return *table_; }
        [[nodiscard]] publisher_slot& slot() const noexcept { return *slot_; }

    private:
        const table* table_ = nullptr;
        publisher_slot* slot_;
    };

    static topic_options check(topic_options o) {
        if (o.max_payload == 0) throw broker_error(broker_errc::invalid_argument, "topics", "max_payload 0");
        return o;
    }
    static void check_options(const subscription_options& o, std::string_view call) {
        if (o.capacity == 0 || o.capacity > max_capacity)
            throw broker_error(broker_errc::invalid_argument, call, "capacity " + std::to_string(o.capacity));
        if (o.overflow != overflow_action::block && o.overflow != overflow_action::drop_oldest &&
            o.overflow != overflow_action::reject)
            throw broker_error(broker_errc::invalid_argument, call, "overflow action");
    }

    /// The inbox id in "_reply.<core id>.<inbox id>", if it names one of
    /// this core's inboxes.
    [[nodiscard]] bool parse_inbox(std::string_view s, std::uint64_t& id) const noexcept {
        if (!first_word_is(s, reply_word) || s.size() == reply_word.size()) return false;
        s.remove_prefix(reply_word.size() + 1);
        const std::size_t dot = s.find('.');
        if (dot == std::string_view::npos) return false;
        std::uint64_t core = 0;
        return parse_u64(s.substr(0, dot), core) && core == id_ && parse_u64(s.substr(dot + 1), id);
    }
    static bool parse_u64(std::string_view s, std::uint64_t& v) noexcept {
        if (s.empty() || s.size() > 19) return false;
        v = 0;
        for (const char c : s) {
            if (c < '0' || c > '9') return false;
            v = v * 10 + static_cast<std::uint64_t>(c - '0');
        }
        return true;
    }

    std::unique_ptr<route<queue>> build_route(const table& t, std::string_view subject, std::size_t h) const {
        auto r = std::make_unique<route<queue>>();
        r->hash = h;
        r->subject = std::make_shared<const std::string>(subject);
        for (const auto& q : t.queues) {
            if (q->pattern().matches(subject)) r->queues.push_back(q.get());
        }
        return r;
    }

    /// The current subscriptions that are still active, plus `add`.
    std::unique_ptr<table> rebuilt(const std::shared_ptr<queue>& add) const {
        const table* cur = current_.load(std::memory_order_relaxed);
        auto t = std::make_unique<table>();
        t->queues.reserve(cur->queues.size() + 1);
        for (const auto& q : cur->queues) {
            if (q->active()) t->queues.push_back(q);
        }
        if (add) t->queues.push_back(add);
        return t;
    }

    /// Swaps `t` in (writer_mu_ held). Readers that hold the old table keep
    /// it until reclaim() finds no hazard on it.
    void install(std::unique_ptr<table> t) {
        retired_.reserve(retired_.size() + 1);
        const table* old = current_.load(std::memory_order_relaxed);
        current_.store(t.release(), std::memory_order_seq_cst);
        retired_.push_back(old);
    }

    /// The retired tables no reader holds (writer_mu_ held); the caller
    /// deletes them after unlocking (a queue's destructor may take the
    /// clock's lock).
    std::vector<const table*> reclaim() noexcept {
        std::vector<const table*> out;
        try {
            out.reserve(retired_.size());
        } catch (...) {
            return out;
        }
        std::size_t kept = 0;
        for (const table* t : retired_) {
            if (hazarded(t)) {
                retired_[kept++] = t;
            } else {
                out.push_back(t);
            }
        }
        retired_.resize(kept);
        return out;
    }

    [[nodiscard]] bool hazarded(const table* t) const noexcept {
        for (const publisher_slot& s : slots_) {
            if (s.table.load(std::memory_order_seq_cst) == t) return true;
        }
        for (const publisher_slot* s = extra_.load(std::memory_order_seq_cst); s != nullptr; s = s->next) {
            if (s->table.load(std::memory_order_seq_cst) == t) return true;
        }
        return false;
    }

    /// Claims a free slot and protects the current table with it.
    publisher_slot* claim(const table*& out) {
        const table* t = current_.load(std::memory_order_acquire);
        const std::size_t start = thread_hint();
        for (std::size_t k = 0; k < slot_count; ++k) {
            publisher_slot& s = slots_[(start + k) % slot_count];
            if (try_claim(s, t)) {
                out = protect(s, t);
                return &s;
            }
        }
        for (publisher_slot* s = extra_.load(std::memory_order_acquire); s != nullptr; s = s->next) {
            if (try_claim(*s, t)) {
                out = protect(*s, t);
                return s;
            }
        }
        // More publishers at once than slots (or nested publishes): one more
        // slot, kept until the core goes.
        auto* s = new publisher_slot;
        s->table.store(t, std::memory_order_relaxed);
        s->next = extra_.load(std::memory_order_relaxed);
        while (!extra_.compare_exchange_weak(s->next, s, std::memory_order_seq_cst, std::memory_order_relaxed)) {
        }
        out = protect(*s, t);
        return s;
    }
    static bool try_claim(publisher_slot& s, const table* t) noexcept {
        const void* expected = nullptr;
        return s.table.load(std::memory_order_relaxed) == nullptr &&
               s.table.compare_exchange_strong(expected, t, std::memory_order_seq_cst, std::memory_order_relaxed);
    }
    /// The hazard pointer handshake: the slot names `t` and `t` is still
    /// current afterwards, so a writer that swaps it out later sees the slot.
    const table* protect(publisher_slot& s, const table* t) noexcept {
        for (;;) {
            const table* cur = current_.load(std::memory_order_seq_cst);
            if (cur == t) return t;
            t = cur;
            s.table.store(t, std::memory_order_seq_cst);
        }
    }

    static void add_slot(topic_stats& r, const publisher_slot& s) noexcept {
        r.published += s.published.load(std::memory_order_relaxed);
        r.no_route += s.no_route.load(std::memory_order_relaxed);
    }

    void fold(queue& q) noexcept {  // writer_mu_ held
        if (q.folded) return;
        const subscription_stats st = q.stats();
        gone_.received += st.received;
        gone_.dropped += st.dropped;
        gone_.rejected += st.rejected;
        q.folded = true;
    }

    static constexpr std::size_t slot_count = 16;

    clock_ref<Clock> clock_;  // first: the queues' waits read it until they go
    const topic_options opts_;
    idle_hub<Clock> hub_;
    const std::uint64_t id_ = topic_core_ids.fetch_add(1, std::memory_order_relaxed);
    std::atomic<bool> closed_{false};
    std::atomic<const table*> current_{new table()};

    publisher_slot slots_[slot_count];
    std::atomic<publisher_slot*> extra_{nullptr};

    std::mutex writer_mu_;  // table changes, retired_, gone_, folded
    std::vector<const table*> retired_;
    totals gone_;

    std::mutex reply_mu_;
    std::unordered_map<std::uint64_t, std::shared_ptr<queue>> inboxes_;
    std::atomic<std::uint64_t> next_reply_{1};
};

}  // namespace detail

/// Publish/subscribe on dotted subjects (see the top of this header).
///
/// Every call may be made from any thread at once. A topics object is
/// neither copyable nor movable; its subscriptions may outlive it (they then
/// drain what they hold and report closed).
template <class T, class Clock = steady_clock>
class topics {
    static_assert(clock_type<Clock>,
                  "conq::topics<T, Clock>: Clock must be steady (time never runs backwards) and have "
                  "now(); use conq::steady_clock or conq::manual_clock.");
    static_assert(std::is_object_v<T> && !std::is_const_v<T> && !std::is_array_v<T> &&
                      std::is_move_constructible_v<T> && std::is_destructible_v<T>,
                  "conq::topics<T>: T must be a non-const, move-constructible object type (not an array).");

    using core = detail::topic_core<T, Clock>;
    using queue = detail::topic_queue<T, Clock>;

public:
    using value_type = T;
    using duration = typename Clock::duration;

    class subscription;

    /// With its own Clock and default options.
    topics() requires std::is_default_constructible_v<Clock> : topics(topic_options{}) {}
    /// With its own Clock. Throws broker_error(invalid_argument) if
    /// max_payload is 0.
    explicit topics(topic_options o) requires std::is_default_constructible_v<Clock>
        : core_(std::make_shared<core>(o)) {}
    /// Reads `clock`, which must outlive this object and its subscriptions.
    explicit topics(Clock& clock) : topics(topic_options{}, clock) {}
    topics(topic_options o, Clock& clock) : core_(std::make_shared<core>(o, clock)) {}
    topics(const topics&) = delete;
    topics& operator=(const topics&) = delete;
    /// Closes (see close()) and lets go of the subscriptions.
    ~topics() { core_->shutdown(); }

    /// The clock waits are measured on.
    [[nodiscard]] Clock& clock() const noexcept { return core_->clock(); }

    /// Queues one message to every subscription whose pattern matches
    /// `subject`; all of them share `payload`. Returns how many queued it: a
    /// drop_oldest eviction counts as queued, a reject or an unsubscribed
    /// subscription does not. Waits while a matching `block` subscription is
    /// full. Throws broker_error: invalid_name (a subject that breaks the
    /// rules, or starts with the reserved word "_reply"), payload_too_large,
    /// closed (also when close() happens while it waits; subscriptions
    /// reached before then keep the message). Lock-free with respect to
    /// other publishers except for the subscription queues it fills; no
    /// allocation but the shared payload once the subject has been seen.
    std::size_t publish(std::string_view subject, T payload) {
        core_->check_publish(subject, payload, "publish");
        return core_->publish(subject, [&](std::string_view s, std::uint32_t refs) {
            return detail::envelope<T>::template create<detail::owning_envelope<T>>(s, refs, std::string_view(),
                                                                                    std::move(payload));
        });
    }

    /// As publish(subject, T), fanning out an object the caller already
    /// shares: subscribers see this very object (message::shared_payload()
    /// points to it). Throws broker_error(invalid_argument) if it is null.
    std::size_t publish(std::string_view subject, std::shared_ptr<const T> payload) {
        if (!payload) {
            if (core_->closed()) throw broker_error(broker_errc::closed, "publish", subject);
            throw broker_error(broker_errc::invalid_argument, "publish", "null payload");
        }
        core_->check_publish(subject, *payload, "publish");
        return core_->publish(subject, [&](std::string_view s, std::uint32_t refs) {
            return detail::envelope<T>::template create<detail::sharing_envelope<T>>(s, refs, std::string_view(),
                                                                                     std::move(payload));
        });
    }

    /// A new subscription to the subjects `pattern` matches, with its own
    /// queue. Every message published after this returns, on a matching
    /// subject, reaches it. Throws broker_error: invalid_pattern,
    /// invalid_argument (capacity 0 or above 2^40, an unknown overflow
    /// action), closed. O(subscriptions): the routing table is copied.
    [[nodiscard]] subscription subscribe(std::string_view pattern, subscription_options o = {}) {
        return subscription(core_, core_->subscribe(pattern, o));
    }

    /// Request/reply (RabbitMQ reply-to, NATS request): publishes `payload`
    /// on `subject` with reply_to() naming a private inbox, and waits until
    /// `timeout` has passed on Clock for the first reply (see reply()).
    /// nullopt on time-out, at once when no subscription took the request,
    /// or when close() happens while it waits. Replies never go through
    /// pattern routing: a "#" subscription does not see them. Throws as
    /// publish().
    [[nodiscard]] std::optional<message<T>> request(std::string_view subject, T payload, duration timeout) {
        core_->check_publish(subject, payload, "request");
        const std::int64_t deadline = deadline_after(timeout);
        auto inbox = std::make_shared<queue>(detail::topic_pattern(),
                                             subscription_options{1, overflow_action::reject},
                                             core_->clock_reference(), nullptr);
        std::uint64_t id = 0;
        std::string reply_to = core_->open_inbox(inbox, id);
        struct closer {
            core& c;
            std::uint64_t id;
            const std::shared_ptr<queue>& q;
            ~closer() { c.close_inbox(id, q); }
        } guard{*core_, id, inbox};
        const std::size_t reached = core_->publish(subject, [&](std::string_view s, std::uint32_t refs) {
            return detail::envelope<T>::template create<detail::owning_envelope<T>>(s, refs, reply_to,
                                                                                    std::move(payload));
        });
        if (reached == 0) return std::nullopt;
        return inbox->take_until(deadline);
    }

    /// Sends `payload` to the requester of `request` (a message received
    /// from request()). Returns 1 if it was queued, 0 if the requester no
    /// longer waits or already has a reply. Throws broker_error:
    /// invalid_argument if `request` has no reply_to, payload_too_large,
    /// closed.
    std::size_t reply(const message<T>& request, T payload) {
        if (core_->closed()) throw broker_error(broker_errc::closed, "reply", request.reply_to());
        if (request.reply_to().empty())
            throw broker_error(broker_errc::invalid_argument, "reply", "message without reply_to");
        core_->check_size(payload, "reply");
        return core_->reply(request.reply_to(), std::move(payload));
    }

    /// Refuses new work: publish, subscribe, request and reply throw
    /// broker_error(closed) from now on, publishers waiting for room wake
    /// and throw it, subscribers take what is queued and then get nullopt,
    /// and waiting requests return nullopt. Idempotent.
    void close() noexcept { core_->close(); }
    [[nodiscard]] bool closed() const noexcept { return core_->closed(); }

    /// The counters (see topic_stats).
    [[nodiscard]] topic_stats stats() const { return core_->stats(); }

    /// Whether every subscription queue is empty (request inboxes aside).
    [[nodiscard]] bool idle() const { return core_->idle(); }

    /// Waits until idle() ("everything published has been taken"), at most
    /// `timeout` on Clock; returns idle().
    bool await_idle(duration timeout) { return core_->await_idle(deadline_after(timeout)); }

private:
    std::int64_t deadline_after(duration timeout) const noexcept {
        if (timeout <= duration::zero()) return core_->clock_reference().now_ns();
        return detail::add_sat(core_->clock_reference().now_ns(), detail::saturating_ns(timeout));
    }

    std::shared_ptr<core> core_;
};

/// A subscription: its own queue of the messages published on matching
/// subjects. Move-only; destroying it (or unsubscribe()) takes it out.
///
/// Any thread may take from it, and several may at once; each message goes
/// to one of them. unsubscribe() may be called while others wait in next();
/// destroying or moving the handle may not (as for any object). It may
/// outlive its topics object, and then drains what it holds.
template <class T, class Clock>
class topics<T, Clock>::subscription {
public:
    /// An empty handle (as a moved-from one): subscribed to nothing.
    subscription() noexcept = default;
    subscription(subscription&& o) noexcept = default;
    /// Unsubscribes this handle's subscription, then takes over `o`'s.
    subscription& operator=(subscription&& o) noexcept {
        if (this != &o) {
            unsubscribe();
            core_ = std::move(o.core_);
            queue_ = std::move(o.queue_);
        }
        return *this;
    }
    subscription(const subscription&) = delete;
    subscription& operator=(const subscription&) = delete;
    ~subscription() { unsubscribe(); }

    /// The next message if one is queued; never waits.
    [[nodiscard]] std::optional<message<T>> try_next() {
        if (!queue_) return std::nullopt;
        return queue_->try_take();
    }

    /// The next message, waiting for one. nullopt once the topics object is
    /// closed and this queue is empty, or once unsubscribed. Taking a
    /// message wakes a publisher waiting for room.
    [[nodiscard]] std::optional<message<T>> next() {
        if (!queue_) return std::nullopt;
        return queue_->take_until(detail::clock_cv<Clock>::forever);
    }

    /// As next(), waiting at most `timeout` on Clock (with manual_clock:
    /// until advance() reaches it). nullopt on time-out.
    [[nodiscard]] std::optional<message<T>> next_for(duration timeout) {
        if (!queue_) return std::nullopt;
        if (timeout <= duration::zero()) return queue_->try_take();
        const auto& c = core_->clock_reference();
        return queue_->take_until(detail::add_sat(c.now_ns(), detail::saturating_ns(timeout)));
    }

    /// Appends up to `max` queued messages to `out` under one lock, without
    /// waiting; returns how many. The cheap way to drain a busy
    /// subscription.
    std::size_t next_n(std::vector<message<T>>& out, std::size_t max) {
        if (!queue_) return 0;
        return queue_->take_n(out, max);
    }

    /// The pattern given to subscribe() (empty for an empty handle).
    [[nodiscard]] const std::string& pattern() const noexcept {
        static const std::string none;
        return queue_ ? queue_->pattern().text() : none;
    }
    /// Messages queued now.
    [[nodiscard]] std::size_t size() const noexcept { return queue_ ? queue_->size() : 0; }
    [[nodiscard]] std::size_t capacity() const noexcept { return queue_ ? queue_->capacity() : 0; }
    [[nodiscard]] overflow_action overflow() const noexcept {
        return queue_ ? queue_->overflow() : overflow_action::block;
    }
    /// Its counters; still readable after unsubscribe().
    [[nodiscard]] subscription_stats stats() const noexcept {
        return queue_ ? queue_->stats() : subscription_stats{};
    }

    /// Takes the subscription out: queued messages are discarded, waiting
    /// next() calls return nullopt, publishers waiting for room go on, and
    /// once it returns no publisher queues to it again. Idempotent.
    void unsubscribe() noexcept {
        if (queue_ && core_) core_->unsubscribe(queue_);
    }

    /// Whether it is subscribed (not unsubscribed, not empty or moved from).
    explicit operator bool() const noexcept { return queue_ && queue_->active(); }

private:
    friend class topics;
    subscription(std::shared_ptr<core> c, std::shared_ptr<queue> q) noexcept
        : core_(std::move(c)), queue_(std::move(q)) {}

    std::shared_ptr<core> core_;
    std::shared_ptr<queue> queue_;
};

/// Whether `subject` matches `pattern` under the topic rules (the test that
/// publish() applies). Throws broker_error: invalid_pattern, invalid_name.
[[nodiscard]] inline bool subject_matches(std::string_view pattern, std::string_view subject) {
    const detail::topic_pattern p(pattern, "subject_matches");
    if (!valid_subject(subject)) throw broker_error(broker_errc::invalid_name, "subject_matches", subject);
    return p.matches(subject);
}

}  // namespace conq

// Stress tests of conq::priority_queue with real threads: strict, strict +
// stable and relaxed mode, each with the backoff and the blocking wait
// policy, bounded (small capacities: full and empty transitions) and
// unbounded.
//
//   exactly once   P producers, C consumers (2x2, 3x1), with push/pop,
//                  batches and timed calls: after close() and the drain
//                  every value came out exactly once and intact, the sum is
//                  conserved, no element object leaks or dies twice.
//   strict order   (strict modes) one consumer, several producers, each
//                  pushing increasing keys into a smallest-first queue. A
//                  pop must return a key no larger than every element whose
//                  push had returned before the pop began and that has not
//                  been popped yet (a linearizable pop takes a top of what
//                  is inside, and those are inside); each producer's
//                  elements come out in push order. The consumer keeps a
//                  few larger "ballast" elements inside, so a pop that
//                  overlooks a fresh push returns something else instead of
//                  waiting; a comparator that yields the CPU makes the heap's
//                  holder lose it mid-operation, so that pushes pile up
//                  while it works. A LIFO stand-in run through the same
//                  check shows that the check can fail.
//   stable         equal keys: one consumer sees each producer's elements
//                  of one key in push order.
//   close race     close() in the middle of the traffic: every push that
//                  returned true is delivered exactly once, none other is,
//                  and a push that returned false kept its argument.
//   wake-ups       close() wakes every consumer blocked in pop and every
//                  producer blocked in push on a full queue; a push wakes a
//                  blocked consumer, a pop a blocked producer.
//   rank error     (relaxed) one thread pushes 10000 random keys and pops
//                  them all: the mean rank of each popped key among the keys
//                  still inside (over four such runs) stays below 4 x
//                  shard_count(); with two threads, every element comes out
//                  exactly once.
//
// A waiter that is never woken hangs its thread: a watchdog then aborts the
// process with the name of the test. Nothing measures time. Sizes are small
// by default; CONQ_STRESS_SCALE multiplies them. With CONQ_STRESS_VERBOSE
// set, every run prints its configuration and duration.
#include <conq/priority_queue.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
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

using conq_test::counted;
using u64 = std::uint64_t;
using namespace std::chrono_literals;

using conq_test::forever;
using conq_test::let_them_block;

// ----------------------------------------------------------- configurations

/// A priority mode, wait policy and the rest, for any element type and comparator.
template <class... Policies>
struct pq_config {
    template <class T, class Compare = std::less<>>
    using queue = conq::priority_queue<T, Compare, Policies...>;
};

using configs = std::tuple<                     //
    pq_config<conq::backoff>,                   //
    pq_config<conq::blocking>,                  //
    pq_config<conq::stable, conq::backoff>,     //
    pq_config<conq::stable, conq::blocking>,    //
    pq_config<conq::relaxed<>, conq::backoff>,  //
    pq_config<conq::relaxed<>, conq::blocking>>;

using strict_configs = std::tuple<           //
    pq_config<conq::backoff>,                //
    pq_config<conq::blocking>,               //
    pq_config<conq::stable, conq::backoff>,  //
    pq_config<conq::stable, conq::blocking>>;

using stable_configs = std::tuple<           //
    pq_config<conq::stable, conq::backoff>,  //
    pq_config<conq::stable, conq::blocking, conq::mpsc>>;

using relaxed_configs = std::tuple<  //
    pq_config<conq::relaxed<>>,      // 4 shards per thread, 8 sticky
    pq_config<conq::relaxed<2, 1>>,  //
    pq_config<conq::relaxed<2, 4>, conq::blocking>>;

/// Orders A by Key(a) as Compare orders the keys.
template <class Compare, class Key>
struct compare_by {
    template <class A>
    bool operator()(const A& a, const A& b) const {
        return Compare{}(Key{}(a), Key{}(b));
    }
};
struct count_of {
    u64 operator()(const counted& c) const noexcept { return c.get(); }
};
struct pointee {
    u64 operator()(const std::unique_ptr<u64>& p) const noexcept { return *p; }
};

/// A queue of the configuration: unbounded for capacity 0.
template <class Q>
std::unique_ptr<Q> make_queue(std::size_t capacity) {
    if (capacity == 0) return std::make_unique<Q>();
    return std::make_unique<Q>(capacity);
}

std::string capacity_name(std::size_t capacity) {
    return capacity == 0 ? std::string("unbounded") : "capacity " + std::to_string(capacity);
}

void report(const std::string& what, std::chrono::steady_clock::time_point start) {
    if (std::getenv("CONQ_STRESS_VERBOSE") != nullptr) {
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
        std::printf("%8.3f s  %s\n", took.count(), what.c_str());
    }
}


/// A tiny deterministic generator (per thread, no locks).
struct small_rng {
    u64 s;
    u64 next() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return s;
    }
    std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

// -------------------------------------------------------------- exactly once

/// How producers and consumers call the queue.
enum class style { plain, batch, timed };

const char* style_name(style s) {
    switch (s) {
        case style::plain: return "push/pop";
        case style::batch: return "try_push_n/try_pop_n";
        case style::timed: return "push_for/pop_for";
    }
    return "?";
}

struct shape {
    std::size_t producers;
    std::size_t consumers;
};

// A value: 16-bit key, producer, sequence number. Keys come from a hash,
// so that every producer's elements spread over the whole order.
constexpr u64 key_of(std::size_t p, std::size_t seq) {
    u64 h = (u64{p} << 32 | u64{seq}) * 0x9e3779b97f4a7c15ULL;
    return (h >> 48) & 0xffff;
}
constexpr u64 encode(std::size_t p, std::size_t seq) {
    return key_of(p, seq) << 40 | u64{p} << 32 | u64{seq};
}

template <class C>
void exactly_once(shape sh, std::size_t capacity, style st, std::size_t per_producer,
                  bool last_producer_closes) {
    using Q = typename C::template queue<counted, compare_by<std::less<>, count_of>>;
    const std::string what = conq_test::type_name<C>() + " " + capacity_name(capacity) + " " +
                             std::to_string(sh.producers) + "p" + std::to_string(sh.consumers) +
                             "c " + style_name(st);
    INFO(what);
    counted::reset();
    const auto t_start = std::chrono::steady_clock::now();
    const std::size_t P = sh.producers, N = per_producer;
    std::vector<std::atomic<std::uint8_t>> seen(P * N);
    std::atomic<long> bad_value{0}, failed_push{0}, moved_on_fail{0};
    std::atomic<u64> sum{0}, delivered{0};
    {
        conq_test::watchdog dog(what, std::chrono::seconds(120 * conq_test::stress_scale()));
        auto q = make_queue<Q>(capacity);
        std::atomic<std::size_t> producers_done{0};

        auto push_one = [&](counted v) {
            const u64 value = v.get();
            for (;;) {
                const bool ok =
                    st == style::timed ? q->push_for(std::move(v), 200us) : q->push(std::move(v));
                if (ok) return;
                if (v.get() != value) {
                    moved_on_fail.fetch_add(1, std::memory_order_relaxed);
                    v = counted(value);
                }
                if (q->closed()) {
                    failed_push.fetch_add(1, std::memory_order_relaxed);
                    return;
                }
            }
        };

        auto producer = [&](std::size_t p) {
            small_rng rng{0x9e3779b97f4a7c15ULL + p};
            std::vector<counted> chunk;
            for (std::size_t seq = 0; seq < N;) {
                if (st == style::batch) {
                    const std::size_t len = std::min<std::size_t>(1 + rng.below(8), N - seq);
                    chunk.clear();
                    for (std::size_t i = 0; i < len; ++i) chunk.emplace_back(encode(p, seq + i));
                    std::size_t done = 0;
                    while (done < len) {
                        const std::size_t n = q->try_push_n(
                            chunk.begin() + static_cast<std::ptrdiff_t>(done), chunk.end());
                        for (std::size_t i = done + n; i < len; ++i) {
                            if (chunk[i].get() != encode(p, seq + i)) {
                                moved_on_fail.fetch_add(1, std::memory_order_relaxed);
                            }
                        }
                        done += n;
                        if (n == 0) push_one(std::move(chunk[done++]));  // wait for room
                    }
                    seq += len;
                } else {
                    push_one(counted(encode(p, seq)));
                    ++seq;
                }
            }
            if (last_producer_closes && producers_done.fetch_add(1) + 1 == P) q->close();
        };

        auto consumer = [&] {
            u64 local_sum = 0, count = 0;
            auto take = [&](const counted& c) {
                const u64 v = c.get();
                const std::size_t p = static_cast<std::size_t>(v >> 32 & 0xff);
                const std::size_t seq = static_cast<std::size_t>(v & 0xffff'ffffU);
                if (v == counted::moved_from_value || p >= P || seq >= N || v != encode(p, seq)) {
                    bad_value.fetch_add(1, std::memory_order_relaxed);
                    return;
                }
                seen[p * N + seq].fetch_add(1, std::memory_order_relaxed);
                local_sum += v;
                ++count;
            };
            small_rng rng{0x2545f4914f6cdd1dULL};
            std::array<counted, 8> buf;
            for (;;) {
                if (st == style::batch) {
                    const std::size_t n = q->try_pop_n(buf.data(), 1 + rng.below(buf.size()));
                    for (std::size_t i = 0; i < n; ++i) take(buf[i]);
                    if (n == 0) {
                        auto v = q->pop();  // wait for an element
                        if (!v) break;
                        take(*v);
                    }
                } else if (st == style::timed) {
                    if (auto v = q->pop_for(200us)) {
                        take(*v);
                    } else if (q->closed()) {
                        while (auto w = q->pop()) take(*w);
                        break;
                    }
                } else {
                    auto v = q->pop();
                    if (!v) break;
                    take(*v);
                }
            }
            sum.fetch_add(local_sum, std::memory_order_relaxed);
            delivered.fetch_add(count, std::memory_order_relaxed);
        };

        std::vector<std::thread> threads;
        for (std::size_t c = 0; c < sh.consumers; ++c) threads.emplace_back(consumer);
        for (std::size_t p = 0; p < P; ++p) threads.emplace_back(producer, p);
        for (std::size_t p = 0; p < P; ++p) threads[sh.consumers + p].join();
        if (!last_producer_closes) q->close();
        for (std::size_t c = 0; c < sh.consumers; ++c) threads[c].join();

        CHECK(q->closed());
        CHECK(q->size_approx() == 0);
        CHECK_FALSE(q->try_pop().has_value());
    }
    report(what, t_start);
    CHECK(bad_value == 0);
    CHECK(failed_push == 0);
    CHECK(moved_on_fail == 0);
    std::size_t missing = 0, duplicated = 0;
    for (auto& s : seen) {
        const auto n = s.load(std::memory_order_relaxed);
        if (n == 0) ++missing;
        if (n > 1) ++duplicated;
    }
    CHECK(missing == 0);
    CHECK(duplicated == 0);
    CHECK(delivered == P * N);
    u64 expected = 0;
    for (std::size_t p = 0; p < P; ++p) {
        for (std::size_t seq = 0; seq < N; ++seq) expected += encode(p, seq);
    }
    CHECK(sum == expected);
    CHECK(counted::errors == 0);
    CHECK(counted::live == 0);
    CHECK(counted::constructions == counted::destructions);
}

template <class C>
void exactly_once_all() {
    const std::size_t total = conq_test::scaled(16000);
    int round = 0;
    for (std::size_t capacity : {std::size_t{4}, std::size_t{0}}) {
        for (shape sh : {shape{2, 2}, shape{3, 1}}) {
            for (style st : {style::plain, style::batch, style::timed}) {
                exactly_once<C>(sh, capacity, st, total / sh.producers, (round++ % 2) == 0);
            }
        }
    }
}

// -------------------------------------------------------------- strict order

/// What the order check found.
struct order_findings {
    long ignored_completed = 0;  // a pop returned a key above a completed, unpopped push
    long producer_order = 0;     // a producer's elements out of push order
    long bad_value = 0;
    std::size_t delivered = 0;
};

/// P producers push their increasing keys (value = key << 8 | producer)
/// into a smallest-first queue built by `make`, and publish after each push
/// returns how many of theirs are done. The one consumer reads those counts
/// before each pop (or batch): every element a producer had finished
/// pushing and the consumer has not popped yet is inside the queue when
/// the pop begins and stays there (nobody else pops), so the popped value
/// must not be larger than the oldest such element of any producer.
///
/// The consumer keeps `ballast` elements inside, larger than every
/// producer's key (a source of its own, index P, with growing keys): it
/// pushes them first and pushes a new one for each it pops. So the queue is
/// never empty and the consumer never waits: a pop that overlooks a fresh
/// push returns something else (usually ballast) instead of waiting for it,
/// and the check sees it. With `head_start` the consumer starts popping
/// once every producer has finished two pushes (a bounded queue could be
/// full before that).
template <class Make>
order_findings order_check(Make make, std::size_t P, std::size_t N, std::size_t ballast,
                           bool batches, u64 seed, bool head_start) {
    // Keys: increasing per producer, by random steps that average p + 1:
    // the producers' keys interleave, and the slow-growing ones of producer
    // 0 are often smaller than what the others left inside.
    std::vector<std::vector<u64>> values(P + 1, std::vector<u64>(N));
    small_rng rng{seed};
    u64 largest = 0;
    for (std::size_t p = 0; p < P; ++p) {
        u64 key = rng.below(4);
        for (std::size_t i = 0; i < N; ++i) {
            key += 1 + rng.below(2 * p + 1);
            values[p][i] = key << 8 | p;
        }
        largest = std::max(largest, key);
    }
    std::vector<u64>& extra = values[P];  // the consumer's own, pushed in this order
    extra.clear();

    auto q = make();
    std::vector<std::atomic<std::size_t>> done(P);
    order_findings f;
    std::thread consumer([&] {
        std::vector<std::size_t> next(P + 1, 0);  // per source: how many popped
        std::vector<std::size_t> snap(P + 1);
        // Tops the ballast up (a bounded queue may be full: then later).
        auto add_ballast = [&] {
            while (extra.size() - next[P] < ballast && !q->closed()) {
                const u64 v = (largest + 1 + extra.size()) << 8 | P;
                if (!q->try_push(u64{v})) return;
                extra.push_back(v);
            }
        };
        add_ballast();
        for (std::size_t p = 0; head_start && p < P; ++p) {
            while (done[p].load(std::memory_order_acquire) < 2) std::this_thread::yield();
        }
        std::array<u64, 4> buf{};
        auto take = [&](u64 v) {
            const std::size_t p = static_cast<std::size_t>(v & 0xff);
            if (p > P || next[p] >= values[p].size()) {
                ++f.bad_value;
                return;
            }
            if (v != values[p][next[p]]) ++f.producer_order;
            for (std::size_t o = 0; o <= P; ++o) {
                if (snap[o] > next[o] && v > values[o][next[o]]) ++f.ignored_completed;
            }
            ++next[p];
            if (p < P) ++f.delivered;
        };
        auto snapshot = [&] {
            for (std::size_t p = 0; p < P; ++p) snap[p] = done[p].load(std::memory_order_acquire);
            snap[P] = extra.size();
        };
        for (;;) {
            snapshot();
            std::size_t n = 0;
            if (batches) {
                n = q->try_pop_n(buf.data(), buf.size());
            } else if (auto v = q->pop()) {
                buf[0] = *v;
                n = 1;
            } else {
                break;  // closed and drained
            }
            if (batches && n == 0) {
                if (q->closed()) {
                    snapshot();
                    while (auto v = q->pop()) take(*v);
                    break;
                }
                std::this_thread::yield();  // full of nothing: ballast did not fit
                continue;
            }
            for (std::size_t i = 0; i < n; ++i) take(buf[i]);
            add_ballast();
        }
    });
    std::vector<std::thread> producers;
    for (std::size_t p = 0; p < P; ++p) {
        producers.emplace_back([&, p] {
            for (std::size_t i = 0; i < N; ++i) {
                if (!q->push(u64{values[p][i]})) return;
                done[p].store(i + 1, std::memory_order_release);
            }
        });
    }
    for (auto& t : producers) t.join();
    q->close();
    consumer.join();
    return f;
}

/// std::greater, but every 8th call on a thread yields the CPU: the thread
/// that holds a strict queue's heap is often descheduled in the middle of
/// its work, so that the others publish their pushes and pops as requests
/// and the holder serves them together (the combining paths, which a fast
/// comparator on two cores rarely reaches).
struct yielding_greater {
    bool operator()(u64 a, u64 b) const noexcept {
        thread_local unsigned calls = 0;
        if ((++calls & 7) == 0) std::this_thread::yield();
        return a > b;
    }
};

template <class C, class Compare>
void strict_order_runs(const char* compare_name, std::vector<std::size_t> capacities,
                       std::size_t total) {
    using Q = typename C::template queue<u64, Compare>;
    for (std::size_t capacity : capacities) {
        for (std::size_t P : {std::size_t{2}, std::size_t{3}}) {
            for (bool batches : {false, true}) {
                const std::string what = conq_test::type_name<C>() + " order, " + compare_name +
                                         ", " + capacity_name(capacity) + ", " + std::to_string(P) +
                                         " producers" + (batches ? ", try_pop_n" : "");
                INFO(what);
                conq_test::watchdog dog(what,
                                        std::chrono::seconds(120 * conq_test::stress_scale()));
                const auto t_start = std::chrono::steady_clock::now();
                const std::size_t N = total / P;
                const order_findings f = order_check([&] { return make_queue<Q>(capacity); }, P, N,
                                                     4, batches, 17 + P + capacity, false);
                report(what, t_start);
                CHECK(f.bad_value == 0);
                CHECK(f.ignored_completed == 0);
                CHECK(f.producer_order == 0);
                CHECK(f.delivered == P * N);
            }
        }
    }
}

template <class C>
void strict_order_all() {
    strict_order_runs<C, std::greater<>>("std::greater", {16, 0}, conq_test::scaled(6000));
    // Fewer: every yield on a loaded machine may cost a time slice.
    strict_order_runs<C, yielding_greater>("yielding greater", {0}, conq_test::scaled(6000));
}

/// Not a priority queue: last in, first out. It passes for none of the
/// order checks (see the test that uses it).
class lifo_stand_in {
public:
    bool try_push(u64 v) { return push(v); }
    bool push(u64 v) {
        {
            std::lock_guard<std::mutex> g(m_);
            if (closed_) return false;
            items_.push_back(v);
        }
        cv_.notify_one();
        return true;
    }
    std::optional<u64> pop() {
        std::unique_lock<std::mutex> g(m_);
        cv_.wait(g, [&] { return !items_.empty() || closed_; });
        if (items_.empty()) return std::nullopt;
        const u64 v = items_.back();
        items_.pop_back();
        return v;
    }
    std::size_t try_pop_n(u64* out, std::size_t max) {
        std::lock_guard<std::mutex> g(m_);
        std::size_t n = 0;
        for (; n < max && !items_.empty(); ++n) {
            out[n] = items_.back();
            items_.pop_back();
        }
        return n;
    }
    void close() {
        {
            std::lock_guard<std::mutex> g(m_);
            closed_ = true;
        }
        cv_.notify_all();
    }
    bool closed() {
        std::lock_guard<std::mutex> g(m_);
        return closed_;
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    std::vector<u64> items_;
    bool closed_ = false;
};

// -------------------------------------------------------------------- stable

/// Equal keys (all one key, or three keys): value = key << 48 | producer <<
/// 32 | sequence, ordered by the key only. One consumer: each producer's
/// elements of one key come out in push order.
template <class C>
void stable_under_threads(std::size_t capacity, std::size_t P, bool one_key) {
    struct key_only {
        u64 operator()(u64 v) const noexcept { return v >> 48; }
    };
    using Q = typename C::template queue<u64, compare_by<std::less<>, key_only>>;
    const std::size_t N = conq_test::scaled(12000) / P;
    const std::string what = conq_test::type_name<C>() + " stable, " + capacity_name(capacity) +
                             ", " + std::to_string(P) + " producers" +
                             (one_key ? ", one key" : ", three keys");
    INFO(what);
    conq_test::watchdog dog(what, std::chrono::seconds(120 * conq_test::stress_scale()));
    const auto t_start = std::chrono::steady_clock::now();
    auto q = make_queue<Q>(capacity);
    long out_of_order = 0, bad = 0;
    std::size_t delivered = 0;
    std::thread consumer([&] {
        std::vector<std::array<long, 3>> last(P, {-1, -1, -1});  // per producer and key
        while (auto v = q->pop()) {
            const std::size_t key = static_cast<std::size_t>(*v >> 48);
            const std::size_t p = static_cast<std::size_t>(*v >> 32 & 0xffff);
            const long seq = static_cast<long>(*v & 0xffff'ffffU);
            if (key >= 3 || p >= P) {
                ++bad;
                continue;
            }
            if (seq <= last[p][key]) ++out_of_order;
            last[p][key] = seq;
            ++delivered;
        }
    });
    std::vector<std::thread> producers;
    for (std::size_t p = 0; p < P; ++p) {
        producers.emplace_back([&, p] {
            for (std::size_t i = 0; i < N; ++i) {
                const u64 key = one_key ? 1 : (i / 16 + p) % 3;
                if (!q->push(key << 48 | u64{p} << 32 | u64{i})) return;
            }
        });
    }
    for (auto& t : producers) t.join();
    q->close();
    consumer.join();
    report(what, t_start);
    CHECK(bad == 0);
    CHECK(out_of_order == 0);
    CHECK(delivered == P * N);
}

// ---------------------------------------------------------------- close race

/// A u64 that marks where it was moved from. The first move of an element
/// (the push taking its argument) yields the CPU now and then: it stretches
/// the moment between a push's first look at closed() and the point where
/// the element is committed, where close() can slip in.
struct lagging {
    static constexpr u64 moved_from = ~u64{0};
    u64 value = 0;
    bool fresh = true;
    explicit lagging(u64 v) noexcept : value(v) {}
    lagging(lagging&& o) noexcept : value(o.value), fresh(false) {
        o.value = moved_from;
        if (o.fresh && (value & 3) == 0) std::this_thread::yield();
    }
    lagging& operator=(lagging&& o) noexcept {
        value = o.value;
        fresh = o.fresh;
        if (&o != this) o.value = moved_from;
        return *this;
    }
    ~lagging() = default;
};
struct lagging_key {
    u64 operator()(const lagging& l) const noexcept { return l.value; }
};

template <class C>
void close_race(std::size_t capacity, int rounds) {
    using Q = typename C::template queue<lagging, compare_by<std::less<>, lagging_key>>;
    constexpr std::size_t P = 2, consumers = 2, M = 300;
    const std::string what = conq_test::type_name<C>() + " close race, " + capacity_name(capacity);
    INFO(what);
    conq_test::watchdog dog(what, std::chrono::seconds(120 * conq_test::stress_scale()));
    const auto t_start = std::chrono::steady_clock::now();
    small_rng rng{12345};
    long lost = 0, duplicated = 0, unaccounted = 0, left_inside = 0, bad = 0, moved_on_fail = 0,
         accepted_after_fail = 0;
    for (int round = 0; round < rounds; ++round) {
        auto q = make_queue<Q>(capacity);
        std::vector<std::atomic<std::size_t>> accepted(P);  // per producer: elements 0..n-1
        std::vector<std::atomic<std::uint8_t>> seen(P * M);
        std::atomic<std::size_t> total_accepted{0};
        std::atomic<long> errors{0}, kept{0}, after_fail{0};
        const std::size_t close_after = rng.below(P * M / 2);
        auto producer = [&](std::size_t p) {
            for (std::size_t seq = 0; seq < M; ++seq) {
                const u64 value = u64{p} << 32 | seq;
                lagging v(value);
                bool ok = false;
                for (;;) {
                    ok = seq % 2 == 0 ? q->push(std::move(v)) : q->try_push(std::move(v));
                    if (ok) break;
                    if (v.value != value) {
                        kept.fetch_add(1, std::memory_order_relaxed);
                        v = lagging(value);
                    }
                    if (q->closed()) break;
                    std::this_thread::yield();  // try_push: full
                }
                if (!ok) {
                    // Closed for good: nothing is accepted after a refusal.
                    if (q->try_push(lagging(value))) after_fail.fetch_add(1);
                    break;
                }
                accepted[p].store(seq + 1, std::memory_order_relaxed);
                total_accepted.fetch_add(1, std::memory_order_relaxed);
            }
        };
        auto consumer = [&] {
            for (;;) {
                auto v = round % 2 == 0 ? q->pop() : q->pop_for(forever);
                if (!v) break;
                const std::size_t p = static_cast<std::size_t>(v->value >> 32);
                const std::size_t seq = static_cast<std::size_t>(v->value & 0xffff'ffffU);
                if (p >= P || seq >= M) {
                    errors.fetch_add(1, std::memory_order_relaxed);
                    continue;
                }
                seen[p * M + seq].fetch_add(1, std::memory_order_relaxed);
            }
        };
        std::vector<std::thread> threads;
        for (std::size_t c = 0; c < consumers; ++c) threads.emplace_back(consumer);
        for (std::size_t p = 0; p < P; ++p) threads.emplace_back(producer, p);
        threads.emplace_back([&] {
            while (total_accepted.load(std::memory_order_relaxed) < close_after) {
                std::this_thread::yield();
            }
            q->close();
        });
        for (auto& t : threads) t.join();

        bad += errors.load();
        moved_on_fail += kept.load();
        accepted_after_fail += after_fail.load();
        while (q->try_pop()) ++left_inside;
        for (std::size_t p = 0; p < P; ++p) {
            const std::size_t n = accepted[p].load();
            for (std::size_t seq = 0; seq < M; ++seq) {
                const auto k = seen[p * M + seq].load();
                if (k > 1) ++duplicated;
                if (seq < n && k == 0) ++lost;
                if (seq >= n && k != 0) ++unaccounted;  // delivered but never accepted
            }
        }
    }
    report(what, t_start);
    CHECK(bad == 0);
    CHECK(lost == 0);
    CHECK(duplicated == 0);
    CHECK(unaccounted == 0);
    CHECK(left_inside == 0);
    CHECK(moved_on_fail == 0);  // a refused push keeps its argument
    CHECK(accepted_after_fail == 0);
}

// ------------------------------------------------------------------ wake-ups

template <class C>
void close_wakes_consumers(bool timed) {
    using Q = typename C::template queue<u64>;
    const std::string what =
        conq_test::type_name<C>() + " close wakes consumers" + (timed ? " (timed)" : "");
    INFO(what);
    conq_test::watchdog dog(what, std::chrono::seconds(30));
    auto q = std::make_unique<Q>();
    constexpr std::size_t n = 3;
    conq_test::check_close_releases_consumers(*q, n, timed);
}

template <class C>
void close_wakes_producers(bool timed) {
    using Q = typename C::template queue<std::unique_ptr<u64>, compare_by<std::less<>, pointee>>;
    const std::string what =
        conq_test::type_name<C>() + " close wakes producers" + (timed ? " (timed)" : "");
    INFO(what);
    conq_test::watchdog dog(what, std::chrono::seconds(30));
    constexpr std::size_t cap = 4, P = 3;
    auto q = std::make_unique<Q>(cap);
    for (u64 i = 0; i < cap; ++i) REQUIRE(q->try_push(std::make_unique<u64>(i)));
    std::latch started(P);
    std::atomic<int> returned{0}, succeeded{0}, intact{0};
    std::vector<std::thread> threads;
    for (std::size_t p = 0; p < P; ++p) {
        threads.emplace_back([&, p] {
            auto v = std::make_unique<u64>(1000 + p);
            started.count_down();
            const bool ok = timed ? q->push_for(std::move(v), forever) : q->push(std::move(v));
            if (ok) succeeded.fetch_add(1);
            if (v != nullptr && *v == 1000 + p) intact.fetch_add(1);
            returned.fetch_add(1);
        });
    }
    let_them_block(started);
    CHECK(returned.load() == 0);  // the queue is full: they must wait
    q->close();
    for (auto& t : threads) t.join();
    CHECK(returned.load() == static_cast<int>(P));
    CHECK(succeeded.load() == 0);
    CHECK(intact.load() == static_cast<int>(P));  // a failed push keeps its argument
    std::size_t drained = 0;
    while (auto v = q->pop()) {
        CHECK(**v < cap);
        ++drained;
    }
    CHECK(drained == cap);
}

/// Consumers wait in pop; elements arrive one push at a time. Each consumer
/// takes exactly one and leaves. The first round pauses before the pushes
/// (the consumers are asleep); the others do not (they are on their way to
/// sleep: the race a lost wake-up needs).
template <class C>
void push_wakes_consumers(bool timed) {
    using Q = typename C::template queue<u64>;
    const std::string what =
        conq_test::type_name<C>() + " a push wakes consumers" + (timed ? " (timed)" : "");
    INFO(what);
    conq_test::watchdog dog(what, std::chrono::seconds(60));
    constexpr std::size_t n = 3;
    const int rounds = static_cast<int>(conq_test::scaled(10));
    for (int round = 0; round < rounds; ++round) {
        auto q = std::make_unique<Q>();
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
        for (std::size_t c = 0; c < n; ++c) REQUIRE(q->push(u64{100 + c}));
        for (auto& t : threads) t.join();
        std::set<u64> values;
        for (const auto& v : got) {
            REQUIRE(v.has_value());
            values.insert(*v);
        }
        REQUIRE(values == std::set<u64>{100, 101, 102});
    }
}

/// Producers wait in push on a full queue; room appears one pop at a time.
template <class C>
void pop_wakes_producers(bool timed) {
    using Q = typename C::template queue<u64>;
    const std::string what =
        conq_test::type_name<C>() + " a pop wakes producers" + (timed ? " (timed)" : "");
    INFO(what);
    conq_test::watchdog dog(what, std::chrono::seconds(60));
    constexpr std::size_t cap = 4, P = 3;
    const int rounds = static_cast<int>(conq_test::scaled(10));
    for (int round = 0; round < rounds; ++round) {
        auto q = std::make_unique<Q>(cap);
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
        std::multiset<u64> values;
        for (std::size_t p = 0; p < P; ++p) {
            auto v = q->pop();  // waits while a producer holds the heap
            REQUIRE(v.has_value());
            values.insert(*v);
        }
        for (auto& t : threads) t.join();
        REQUIRE(succeeded.load() == static_cast<int>(P));
        while (auto v = q->try_pop()) values.insert(*v);
        REQUIRE(values == std::multiset<u64>{0, 1, 2, 3, 100, 101, 102});
    }
}

// ---------------------------------------------------------------- rank error

/// A Fenwick tree of counts over 0..n-1.
class fenwick {
public:
    explicit fenwick(std::size_t n) : t_(n + 1, 0) {}
    void add(std::size_t i, long d) {
        for (++i; i < t_.size(); i += i & (~i + 1)) t_[i] += d;
    }
    /// The sum of counts at 0..i-1.
    long prefix(std::size_t i) const {
        long s = 0;
        for (; i > 0; i -= i & (~i + 1)) s += t_[i];
        return s;
    }

private:
    std::vector<long> t_;
};

/// One thread pushes n random keys into a fresh queue, then pops them all;
/// the rank of a popped key is how many keys still inside are strictly
/// greater (0 for a strict queue). Returns the sum of the ranks and the
/// worst, or nullopt if a pop returned nothing or a key that is not inside.
template <class Q>
std::optional<std::pair<long, long>> rank_error_run(Q& q, std::size_t n, u64 seed) {
    std::mt19937_64 rng(seed);
    std::vector<u64> keys(n);
    for (auto& k : keys) k = rng() % 1'000'000'000;
    std::vector<u64> sorted = keys;
    std::sort(sorted.begin(), sorted.end());
    auto index_of = [&](u64 k) {
        return static_cast<std::size_t>(std::lower_bound(sorted.begin(), sorted.end(), k) -
                                        sorted.begin());
    };
    fenwick inside(n);
    for (u64 k : keys) {
        if (!q.try_push(k)) return std::nullopt;
        inside.add(index_of(k), 1);
    }
    long total = 0, worst = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const auto v = q.try_pop();
        if (!v) return std::nullopt;
        const std::size_t at = index_of(*v);
        if (at >= n || sorted[at] != *v || inside.prefix(at + 1) - inside.prefix(at) == 0) {
            return std::nullopt;  // not a key that is inside
        }
        const long rank = inside.prefix(n) - inside.prefix(at + 1);
        total += rank;
        worst = std::max(worst, rank);
        inside.add(at, -1);
    }
    if (q.try_pop().has_value()) return std::nullopt;
    return std::pair<long, long>(total, worst);
}

/// The bound: a mean rank error below 4 x shard_count(). Measured on the
/// two-core reference machine (8 shards for relaxed<4, 8>) one run's mean
/// is 23 to 33 for relaxed<4, 8> (stickiness costs rank: a pop keeps its
/// pair of shards for 8 pops), about 2.4 for relaxed<2, 1> and 6 for
/// relaxed<2, 4>. Four runs are averaged, so that one unlucky run of the
/// per-thread random shard choice cannot fail the test; a pop that takes
/// the top of one random shard instead of the better of two drifts far
/// beyond the bound.
template <class C>
void rank_error() {
    using Q = typename C::template queue<u64>;  // largest first
    constexpr std::size_t n = 10000;
    constexpr int runs = 4;
    const std::string what = conq_test::type_name<C>() + " rank error";
    INFO(what);
    conq_test::watchdog dog(what, std::chrono::seconds(120));
    long total = 0, worst = 0;
    std::size_t shards = 0;
    std::string means;
    for (int run = 0; run < runs; ++run) {
        Q q;
        shards = q.shard_count();
        const auto r = rank_error_run(q, n, 99 + static_cast<u64>(run));
        REQUIRE(r.has_value());  // every key popped exactly once
        total += r->first;
        worst = std::max(worst, r->second);
        means += " " + std::to_string(static_cast<double>(r->first) / static_cast<double>(n));
    }
    const double mean = static_cast<double>(total) / static_cast<double>(runs * n);
    const double bound = 4.0 * static_cast<double>(shards);
    std::printf("relaxed rank error: mean %.2f (runs:%s), worst %ld, %zu shards, bound %.0f  %s\n",
                mean, means.c_str(), worst, shards, bound, conq_test::type_name<C>().c_str());
    INFO("mean rank error " << mean << " (runs:" << means << "), worst " << worst << ", " << shards
                            << " shards");
    CHECK(mean < bound);
}

/// One thread pushes while another pops: every element exactly once.
template <class C>
void relaxed_two_threads() {
    using Q = typename C::template queue<u64>;
    const std::size_t n = conq_test::scaled(20000);
    const std::string what = conq_test::type_name<C>() + " two threads";
    INFO(what);
    conq_test::watchdog dog(what, std::chrono::seconds(120 * conq_test::stress_scale()));
    auto q = std::make_unique<Q>();
    std::vector<std::uint8_t> seen(n, 0);
    long bad = 0;
    std::thread consumer([&] {
        while (auto v = q->pop()) {
            if (*v >= n) {
                ++bad;
                continue;
            }
            ++seen[*v];
        }
    });
    std::mt19937 rng(5);
    std::vector<u64> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    for (u64 v : order) REQUIRE(q->push(u64{v}));
    q->close();
    consumer.join();
    CHECK(bad == 0);
    CHECK(std::count(seen.begin(), seen.end(), std::uint8_t{1}) == static_cast<long>(n));
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("priority_queue stress: every value exactly once", "[stress][priority]",
                        configs) {
    exactly_once_all<TestType>();
}

TEMPLATE_LIST_TEST_CASE("priority_queue stress: a pop never passes over a completed push",
                        "[stress][priority][order]", strict_configs) {
    strict_order_all<TestType>();
}

TEST_CASE("priority_queue stress: the order check catches a queue that is not one",
          "[stress][priority][order]") {
    for (bool batches : {false, true}) {
        const order_findings f = order_check([] { return std::make_unique<lifo_stand_in>(); }, 3,
                                             200, 4, batches, 1, true);
        CHECK(f.ignored_completed > 0);
        CHECK(f.producer_order > 0);
        CHECK(f.delivered == 600);
    }
}

TEMPLATE_LIST_TEST_CASE("priority_queue stress: stable keeps each producer's push order",
                        "[stress][priority][stable]", stable_configs) {
    for (std::size_t capacity : {std::size_t{8}, std::size_t{0}}) {
        stable_under_threads<TestType>(capacity, 3, true);
        stable_under_threads<TestType>(capacity, 2, false);
    }
}

TEMPLATE_LIST_TEST_CASE("priority_queue stress: close race", "[stress][priority][close]", configs) {
    const int rounds = static_cast<int>(conq_test::scaled(200));
    close_race<TestType>(8, rounds);
    close_race<TestType>(0, rounds);
}

TEMPLATE_LIST_TEST_CASE("priority_queue stress: close wakes every blocked consumer and producer",
                        "[stress][priority][wakeup]", configs) {
    close_wakes_consumers<TestType>(false);
    close_wakes_consumers<TestType>(true);
    close_wakes_producers<TestType>(false);
    close_wakes_producers<TestType>(true);
}

TEMPLATE_LIST_TEST_CASE("priority_queue stress: a push wakes a consumer, a pop a producer",
                        "[stress][priority][wakeup]", configs) {
    push_wakes_consumers<TestType>(false);
    push_wakes_consumers<TestType>(true);
    pop_wakes_producers<TestType>(false);
    pop_wakes_producers<TestType>(true);
}

TEMPLATE_LIST_TEST_CASE("priority_queue stress: relaxed rank error and two threads",
                        "[stress][priority][relaxed]", relaxed_configs) {
    rank_error<TestType>();
    relaxed_two_threads<TestType>();
}

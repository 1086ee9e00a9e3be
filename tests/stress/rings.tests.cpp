// Stress tests of the rings with real threads: every concurrency mode x
// every wait policy, capacities 4 and 64 (full and empty transitions,
// wrap-around), several producers and consumers as the mode allows, and
// four ways of calling (push/pop, batches, timed calls, try_ calls).
//
// Every producer pushes {producer id, sequence number}; consumers pop until
// the ring is closed and drained. The checks: every item delivered exactly
// once (with drop_oldest: at most once, and delivered + dropped() = pushed),
// the items of one producer reach each consumer in the order they were
// pushed, the sum of the values is conserved, no element object leaks or
// dies twice.
//
// Sizes are small by default; CONQ_STRESS_SCALE multiplies them. With
// CONQ_STRESS_VERBOSE set, every run prints its configuration and duration.
#include <conq/queue.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

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

/// How producers and consumers call the ring.
enum class style { plain, batch, timed, polling };

const char* style_name(style s) {
    switch (s) {
        case style::plain: return "push/pop";
        case style::batch: return "try_push_n/try_pop_n";
        case style::timed: return "push_for/pop_for";
        case style::polling: return "try_push/try_pop";
    }
    return "?";
}

struct shape {
    std::size_t producers;
    std::size_t consumers;
};

/// What the threads found wrong; checked on the main thread after join.
struct findings {
    std::atomic<long> bad_value{0};       // out of range or moved-from
    std::atomic<long> out_of_order{0};    // a producer's items out of order at a consumer
    std::atomic<long> failed_push{0};     // a push failed before close
    std::atomic<long> moved_on_fail{0};   // a failed push moved from its argument
    std::atomic<u64> sum{0};
    std::atomic<u64> delivered{0};
};

constexpr u64 encode(std::size_t producer, std::size_t seq) {
    return (u64{producer} << 32) | u64{seq};
}

/// A tiny deterministic generator for batch sizes (per thread, no locks).
struct small_rng {
    u64 s;
    std::size_t next(std::size_t n) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return static_cast<std::size_t>(s % n);
    }
};

template <class C>
void run_delivery(std::size_t capacity, shape sh, style st, std::size_t per_producer,
                  bool last_producer_closes) {
    using Q = conq_test::ring_t<C, counted>;
    const std::string what = conq_test::type_name<C>() + " capacity " +
                             std::to_string(capacity) + " " + std::to_string(sh.producers) +
                             "p" + std::to_string(sh.consumers) + "c " + style_name(st);
    INFO(what);
    counted::reset();
    const auto t_start = std::chrono::steady_clock::now();
    findings f;
    const std::size_t P = sh.producers, N = per_producer;
    std::vector<std::atomic<std::uint8_t>> seen(P * N);
    std::size_t dropped = 0;
    {
        conq_test::watchdog dog(what, std::chrono::seconds(120 * conq_test::stress_scale()));
        auto q = conq_test::make_ring<Q>(capacity);
        std::atomic<std::size_t> producers_done{0};

        // Pushes `v`; on a rejected (full) push, tries again.
        auto push_one = [&](counted v) {
            const u64 value = v.get();
            for (;;) {
                bool ok = false;
                switch (st) {
                    case style::timed: ok = q->push_for(std::move(v), 200us); break;
                    case style::polling: ok = q->try_push(std::move(v)); break;
                    default: ok = q->push(std::move(v)); break;
                }
                if (ok) return;
                if (v.get() != value) {
                    f.moved_on_fail.fetch_add(1, std::memory_order_relaxed);
                    v = counted(value);
                }
                if (q->closed()) {
                    f.failed_push.fetch_add(1, std::memory_order_relaxed);
                    return;
                }
                if (st == style::polling || C::rejects) std::this_thread::yield();
            }
        };

        auto producer = [&](std::size_t p) {
            small_rng rng{0x9e3779b97f4a7c15ULL + p};
            std::vector<counted> chunk;
            for (std::size_t seq = 0; seq < N;) {
                if (st == style::batch) {
                    const std::size_t len = std::min<std::size_t>(1 + rng.next(8), N - seq);
                    chunk.clear();
                    for (std::size_t i = 0; i < len; ++i) chunk.emplace_back(encode(p, seq + i));
                    std::size_t done = 0;
                    while (done < len) {
                        const std::size_t n = q->try_push_n(
                            chunk.begin() + static_cast<std::ptrdiff_t>(done), chunk.end());
                        for (std::size_t i = done + n; i < len; ++i) {
                            if (chunk[i].get() != encode(p, seq + i)) {
                                f.moved_on_fail.fetch_add(1, std::memory_order_relaxed);
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
            std::vector<long> last(P, -1);
            u64 sum = 0, count = 0;
            auto take = [&](const counted& c) {
                const u64 v = c.get();
                const std::size_t p = static_cast<std::size_t>(v >> 32);
                const std::size_t seq = static_cast<std::size_t>(v & 0xffff'ffffU);
                if (v == counted::moved_from_value || p >= P || seq >= N) {
                    f.bad_value.fetch_add(1, std::memory_order_relaxed);
                    return;
                }
                seen[p * N + seq].fetch_add(1, std::memory_order_relaxed);
                if (static_cast<long>(seq) <= last[p]) {
                    f.out_of_order.fetch_add(1, std::memory_order_relaxed);
                }
                last[p] = static_cast<long>(seq);
                sum += v;
                ++count;
            };
            auto drain_closed = [&] {
                while (auto v = q->pop()) take(*v);
            };
            small_rng rng{0x2545f4914f6cdd1dULL};
            std::array<counted, 8> buf;
            for (;;) {
                if (st == style::batch) {
                    const std::size_t n = q->try_pop_n(buf.data(), 1 + rng.next(buf.size()));
                    for (std::size_t i = 0; i < n; ++i) take(buf[i]);
                    if (n == 0) {
                        auto v = q->pop();  // wait for an item
                        if (!v) break;
                        take(*v);
                    }
                } else if (st == style::timed) {
                    if (auto v = q->pop_for(200us)) {
                        take(*v);
                    } else if (q->closed()) {
                        drain_closed();
                        break;
                    }
                } else if (st == style::polling) {
                    if (auto v = q->try_pop()) {
                        take(*v);
                    } else if (q->closed()) {
                        drain_closed();
                        break;
                    } else {
                        std::this_thread::yield();
                    }
                } else {
                    auto v = q->pop();
                    if (!v) break;
                    take(*v);
                }
            }
            f.sum.fetch_add(sum, std::memory_order_relaxed);
            f.delivered.fetch_add(count, std::memory_order_relaxed);
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
        if constexpr (C::drops) dropped = q->dropped();
    }

    if (std::getenv("CONQ_STRESS_VERBOSE") != nullptr) {
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - t_start;
        std::printf("%8.3f s  %s\n", took.count(), what.c_str());
    }
    CHECK(f.bad_value == 0);
    CHECK(f.out_of_order == 0);
    CHECK(f.failed_push == 0);
    CHECK(f.moved_on_fail == 0);
    std::size_t missing = 0, duplicated = 0;
    for (auto& s : seen) {
        const auto n = s.load(std::memory_order_relaxed);
        if (n == 0) ++missing;
        if (n > 1) ++duplicated;
    }
    CHECK(duplicated == 0);
    if constexpr (C::drops) {
        CHECK(missing == dropped);
        CHECK(f.delivered + dropped == P * N);
    } else {
        CHECK(missing == 0);
        CHECK(f.delivered == P * N);
        u64 expected = 0;
        for (std::size_t p = 0; p < P; ++p) expected += N * encode(p, 0) + N * (N - 1) / 2;
        CHECK(f.sum == expected);
    }
    CHECK(counted::errors == 0);
    CHECK(counted::live == 0);
    CHECK(counted::constructions == counted::destructions);
}

template <class C>
std::vector<shape> shapes_for() {
    if constexpr (C::multi_producer && C::multi_consumer) return {{2, 2}, {3, 1}, {1, 3}};
    else if constexpr (C::multi_producer) return {{3, 1}};
    else if constexpr (C::multi_consumer) return {{1, 3}};
    else return {{1, 1}};
}

// The capacities a configuration is stressed at: its capacity<N>, or 4
// and 64 given at run time. Busy-waiting (spin) threads that outnumber the
// free cores hand over once per time slice, so spin with more than two
// threads gets only 64: a ring of 4 would turn every fourth item into a
// context switch (see stress_config.hpp).
template <class C>
std::vector<std::size_t> ring_capacities() {
    if constexpr (C::inline_storage) {
        return {C::set::capacity::value};
    } else if constexpr (std::is_same_v<typename C::wait, conq::spin> &&
                         (C::multi_producer || C::multi_consumer)) {
        return {64};
    } else {
        return {4, 64};
    }
}

// Runs every style and shape at each capacity.
template <class C>
void stress_all() {
    const std::size_t total = conq_test::scaled(8000);
    std::vector<std::size_t> capacities = ring_capacities<C>();
    int round = 0;
    // Busy-waiting threads crawl as soon as they are not all running at
    // once (see stress_config.hpp): fewer items for spin.
    const std::size_t items =
        conq_test::for_busy_wait(total, std::is_same_v<typename C::wait, conq::spin>);
    for (std::size_t cap : capacities) {
        for (shape sh : shapes_for<C>()) {
            for (style st : {style::plain, style::batch, style::timed, style::polling}) {
                run_delivery<C>(cap, sh, st, items / sh.producers, (round++ % 2) == 0);
            }
        }
    }
}

// ------------------------------------------------------------ close race

/// A u64 whose move constructor sometimes yields the CPU: it stretches the
/// moment between a producer claiming a slot and publishing its item, where
/// close() and a consumer that decides "closed and empty" can slip in.
struct lagging {
    u64 value = 0;
    lagging() = default;
    explicit lagging(u64 v) noexcept : value(v) {}
    lagging(const lagging&) = default;
    lagging(lagging&& o) noexcept : value(o.value) {
        if ((value & 7) == 0) std::this_thread::yield();
    }
    lagging& operator=(const lagging&) = default;
    lagging& operator=(lagging&&) noexcept = default;
    ~lagging() = default;
};

/// close() in the middle of the traffic, from a third thread: every push
/// that returned true is delivered exactly once (with drop_oldest: or
/// counted in dropped()), the ring is empty when the consumers have all
/// seen nullopt, and a producer's first failed push is its last accepted
/// one's successor (nothing is accepted after a failure).
template <class C>
void close_race(std::size_t capacity, shape sh, bool batches, int rounds) {
    using Q = conq_test::ring_t<C, lagging>;
    const std::size_t P = sh.producers;
    const std::size_t M =
        conq_test::for_busy_wait(300, std::is_same_v<typename C::wait, conq::spin>, 50);
    const std::string what = conq_test::type_name<C>() + " close race, capacity " +
                             std::to_string(capacity) + " " + std::to_string(P) + "p" +
                             std::to_string(sh.consumers) + "c" + (batches ? " batches" : "");
    INFO(what);
    conq_test::watchdog dog(what, std::chrono::seconds(120 * conq_test::stress_scale()));
    const auto t_start = std::chrono::steady_clock::now();
    small_rng rng{12345};
    long lost = 0, duplicated = 0, left_inside = 0, bad = 0, unaccounted = 0;
    for (int round = 0; round < rounds; ++round) {
        auto q = conq_test::make_ring<Q>(capacity);
        std::vector<std::atomic<std::size_t>> accepted(P);  // per producer: items 0..n-1
        std::vector<std::atomic<std::uint8_t>> seen(P * M);
        std::atomic<std::size_t> total_accepted{0};
        std::atomic<long> errors{0};
        const std::size_t close_after = rng.next(P * M / 2);
        const bool timed_pops = round % 2 == 1;

        auto producer = [&](std::size_t p) {
            std::vector<lagging> chunk;
            for (std::size_t seq = 0; seq < M;) {
                std::size_t n = 0;
                if (batches) {
                    chunk.clear();
                    const std::size_t len = std::min<std::size_t>(1 + seq % 5, M - seq);
                    for (std::size_t i = 0; i < len; ++i) chunk.emplace_back(encode(p, seq + i));
                    n = q->try_push_n(chunk.begin(), chunk.end());
                    if (n == 0) n = q->push(std::move(chunk[0])) ? 1 : 0;
                } else {
                    n = q->push(lagging(encode(p, seq))) ? 1 : 0;
                }
                if (n == 0) {
                    if (q->closed()) break;
                    std::this_thread::yield();  // reject: full
                    continue;
                }
                seq += n;
                accepted[p].store(seq, std::memory_order_relaxed);
                total_accepted.fetch_add(n, std::memory_order_relaxed);
            }
            // Once closed, nothing more is accepted.
            const lagging probe(encode(p, M - 1));
            if (q->closed() && (q->try_push(probe) || q->push(probe))) {
                errors.fetch_add(1, std::memory_order_relaxed);
            }
        };
        auto consumer = [&] {
            std::vector<long> last(P, -1);
            for (;;) {
                auto v = timed_pops ? q->pop_for(std::chrono::hours(1)) : q->pop();
                if (!v) break;
                const std::size_t p = static_cast<std::size_t>(v->value >> 32);
                const std::size_t seq = static_cast<std::size_t>(v->value & 0xffff'ffffU);
                if (p >= P || seq >= M || static_cast<long>(seq) <= last[p]) {
                    errors.fetch_add(1, std::memory_order_relaxed);
                    continue;
                }
                last[p] = static_cast<long>(seq);
                seen[p * M + seq].fetch_add(1, std::memory_order_relaxed);
            }
        };
        std::vector<std::thread> threads;
        for (std::size_t c = 0; c < sh.consumers; ++c) threads.emplace_back(consumer);
        for (std::size_t p = 0; p < P; ++p) threads.emplace_back(producer, p);
        threads.emplace_back([&] {
            while (total_accepted.load(std::memory_order_relaxed) < close_after) {
                std::this_thread::yield();
            }
            q->close();
        });
        for (auto& t : threads) t.join();

        bad += errors.load();
        left_inside += static_cast<long>(q->size_approx());
        while (q->try_pop()) ++left_inside;
        std::size_t delivered = 0;
        for (std::size_t p = 0; p < P; ++p) {
            const std::size_t n = accepted[p].load();
            for (std::size_t seq = 0; seq < M; ++seq) {
                const auto k = seen[p * M + seq].load();
                delivered += k;
                if (k > 1) ++duplicated;
                if (seq >= n && k != 0) ++unaccounted;  // delivered but never accepted
                if (!C::drops && seq < n && k == 0) ++lost;
            }
        }
        if constexpr (C::drops) {
            if (delivered + q->dropped() != total_accepted.load()) ++lost;
        }
    }
    if (std::getenv("CONQ_STRESS_VERBOSE") != nullptr) {
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - t_start;
        std::printf("%8.3f s  %s\n", took.count(), what.c_str());
    }
    CHECK(bad == 0);
    CHECK(lost == 0);
    CHECK(duplicated == 0);
    CHECK(unaccounted == 0);
    CHECK(left_inside == 0);
}

template <class C>
void close_race_all() {
    const int rounds = static_cast<int>(conq_test::for_busy_wait(
        conq_test::scaled(20), std::is_same_v<typename C::wait, conq::spin>, 3));
    for (std::size_t cap : ring_capacities<C>()) {
        for (shape sh : shapes_for<C>()) {
            close_race<C>(cap, sh, false, rounds);
            close_race<C>(cap, sh, true, rounds);
        }
    }
}

// ------------------------------------------------------- closed is final

/// Once closed() has returned true, every push fails: a thread spins on
/// closed() while another thread calls close(), then tries to push. Many
/// fresh rings, so the push lands inside close() now and then (a close()
/// that publishes "closed" before it stops the producers' ticket counter
/// lets such a push through, and a consumer that already saw "closed and
/// drained" never sees its item).
template <class C>
void closed_is_final() {
    using Q = conq_test::ring_t<C, u64>;
    constexpr std::size_t per_pass = 500;
    const std::size_t passes = conq_test::for_busy_wait(
        conq_test::scaled(10), std::is_same_v<typename C::wait, conq::spin>, 2);
    const std::string what = conq_test::type_name<C>() + " closed is final";
    INFO(what);
    conq_test::watchdog dog(what, std::chrono::seconds(120 * conq_test::stress_scale()));
    long accepted_after_close = 0;
    for (std::size_t pass = 0; pass < passes; ++pass) {
        std::vector<std::unique_ptr<Q>> rings;
        for (std::size_t i = 0; i < per_pass; ++i) rings.push_back(conq_test::make_ring<Q>(4));
        std::atomic<std::size_t> ready{0};  // the pusher is spinning on ring ready - 1
        std::atomic<long> accepted{0};
        std::thread pusher([&] {
            for (std::size_t i = 0; i < per_pass; ++i) {
                Q& r = *rings[i];
                ready.store(i + 1, std::memory_order_release);
                for (unsigned spins = 0; !r.closed(); ++spins) {
                    if (spins > 100000) std::this_thread::yield();  // the closer is not running
                }
                if (r.try_push(u64{i})) accepted.fetch_add(1, std::memory_order_relaxed);
            }
        });
        for (std::size_t i = 0; i < per_pass; ++i) {
            while (ready.load(std::memory_order_acquire) <= i) std::this_thread::yield();
            rings[i]->close();
        }
        pusher.join();
        accepted_after_close += accepted.load();
        for (auto& r : rings) {  // and nothing of that kind is waiting in a ring
            if (r->try_pop().has_value()) ++accepted_after_close;
        }
    }
    CHECK(accepted_after_close == 0);
}

template <class Concurrency>
using by_wait = std::tuple<config<conq::queue, Concurrency, conq::spin>,
                           config<conq::queue, Concurrency, conq::yield>,
                           config<conq::queue, Concurrency, conq::backoff>,
                           config<conq::queue, Concurrency, conq::blocking>>;

using spsc_configs = by_wait<conq::spsc>;
using mpsc_configs = by_wait<conq::mpsc>;
using spmc_configs = by_wait<conq::spmc>;
using mpmc_configs = by_wait<conq::mpmc>;

using other_configs = std::tuple<                                          //
    config<conq::queue, conq::mpmc, conq::blocking, conq::capacity<4>>,    //
    config<conq::queue, conq::spsc, conq::spin, conq::capacity<64>>,       //
    config<conq::queue, conq::mpsc, conq::reject, conq::yield>,            //
    config<conq::queue, conq::spmc, conq::reject, conq::blocking>>;

using drop_configs = std::tuple<                                           //
    config<conq::queue, conq::spsc, conq::drop_oldest, conq::blocking>,    //
    config<conq::queue, conq::mpsc, conq::drop_oldest, conq::spin>,        //
    config<conq::queue, conq::spmc, conq::drop_oldest, conq::yield>,       //
    config<conq::queue, conq::mpmc, conq::drop_oldest>>;

using all_configs =
    decltype(std::tuple_cat(spsc_configs{}, mpsc_configs{}, spmc_configs{}, mpmc_configs{},
                            other_configs{}, drop_configs{}));

}  // namespace

TEMPLATE_LIST_TEST_CASE("stress spsc: every item once, in order", "[stress][spsc]",
                        spsc_configs) {
    stress_all<TestType>();
}

TEMPLATE_LIST_TEST_CASE("stress mpsc: every item once, per-producer order", "[stress][mpsc]",
                        mpsc_configs) {
    stress_all<TestType>();
}

TEMPLATE_LIST_TEST_CASE("stress spmc: every item once, order within each consumer",
                        "[stress][spmc]", spmc_configs) {
    stress_all<TestType>();
}

TEMPLATE_LIST_TEST_CASE("stress mpmc: every item once, per-producer order", "[stress][mpmc]",
                        mpmc_configs) {
    stress_all<TestType>();
}

TEMPLATE_LIST_TEST_CASE("stress: inline capacity and reject", "[stress]", other_configs) {
    stress_all<TestType>();
}

TEMPLATE_LIST_TEST_CASE("stress drop_oldest: at most once, order kept, drops counted",
                        "[stress][drop_oldest]", drop_configs) {
    stress_all<TestType>();
}

TEMPLATE_LIST_TEST_CASE("close race: every accepted item delivered, none after", "[stress][close]",
                        all_configs) {
    close_race_all<TestType>();
}

TEMPLATE_LIST_TEST_CASE("closed is final: no push succeeds after closed() returned true",
                        "[stress][close]", all_configs) {
    closed_is_final<TestType>();
}

// benchmarks/rings.bench.cpp
//
// conq_ring_bench: conqueue's rings side by side with Boost.Lockfree,
// moodycamel, TBB and a mutex + condition-variable ring, in one binary, on
// the same item type (std::uint64_t) and capacity (65536). atomic_queue and
// rigtorp's SPSCQueue and MPMCQueue join them when CMake is given a checkout
// of each (see benchmarks/CMakeLists.txt).
//
// Scenarios (benchmark names are <scenario>/<queue>):
//
//   throughput_1p1c     one producer pinned to the first CPU, one consumer
//                       to the second; values 1..N; items/s
//   throughput_<P>p<C>c P producers and C consumers on queues that allow
//                       several of each (P = C = 2 by default; more with
//                       CONQ_BENCH_MAX_THREADS); producer i on CPU 2i,
//                       consumer i on CPU 2i+1 (modulo the CPUs available)
//   rtt                 ping-pong over two queues; ns per round trip
//
// Throughput runs also report fill_pct where the queue can tell its size:
// the mean of the consumers' samples of it (one per 65536 pops), in % of
// the capacity. A spinning SPSC ring runs in different regimes from one
// repetition to the next (pinned at full, or part full), and this is the
// counter that tells them apart.
//
// Every consumer sums what it pops (and the squares); the totals must equal
// those of 1..N, or the run is reported as an error. Threads are created,
// pinned and parked at a start gate before the clock starts; the time runs
// from opening the gate to the last consumer's last pop (manual time).
//
// Settings (flag, else environment variable, else default):
//
//   --conq_items=N        CONQ_BENCH_ITEMS         20000000  items, 1p1c (fast queues)
//   --conq_rounds=N       CONQ_BENCH_ROUNDS        200000    round trips (blocking queues: N/10)
//   --conq_max_threads=N  CONQ_BENCH_MAX_THREADS   2         largest P (= C) of the MPMC scenario
//   --conq_cpus=0,1,...   CONQ_BENCH_CPUS          the CPUs this process may use
//   --conq_timeout_s=N    CONQ_BENCH_TIMEOUT_S     120       abort a run that takes longer
//
// The program exits with status 1 if any run failed its check. The
// multi-producer scenario runs on N/2 items; medium-speed queues run on a
// quarter and slow ones on a tenth of the counts (see adapters.hpp).

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "adapters.hpp"
#include "bench_common.hpp"

namespace conq_bench {
namespace {

// ------------------------------------------------------------ configuration

struct config {
    std::uint64_t items = 20'000'000;
    std::uint64_t rounds = 200'000;
    int max_threads = 2;
    std::vector<int> cpus;
    int timeout_s = 120;
};

config& settings() {
    static config c;
    return c;
}

// Reads our own --conq_* flags (removing them from argv) on top of the
// environment, before Google Benchmark sees the rest.
void read_settings(int& argc, char** argv) {
    config& c = settings();
    c.cpus = allowed_cpus();
    auto apply = [&c](const std::string& key, const std::string& value) {
        if (key == "items")
            c.items = parse_count("items", value, 4);
        else if (key == "rounds")
            c.rounds = parse_count("rounds", value, 10);
        else if (key == "max_threads")
            c.max_threads = static_cast<int>(parse_count("max_threads", value, 1));
        else if (key == "cpus")
            c.cpus = parse_cpus("cpus", value);
        else if (key == "timeout_s")
            c.timeout_s = static_cast<int>(parse_count("timeout_s", value, 1));
        else
            return false;
        return true;
    };
    read_flags(argc, argv,
               {{"items", "CONQ_BENCH_ITEMS"},
                {"rounds", "CONQ_BENCH_ROUNDS"},
                {"max_threads", "CONQ_BENCH_MAX_THREADS"},
                {"cpus", "CONQ_BENCH_CPUS"},
                {"timeout_s", "CONQ_BENCH_TIMEOUT_S"}},
               apply);
}

std::uint64_t scaled(std::uint64_t n, speed rate) {
    switch (rate) {
        case speed::fast:
            return n;
        case speed::medium:
            return std::max<std::uint64_t>(n / 4, 4);
        case speed::slow:
            return std::max<std::uint64_t>(n / 10, 4);
    }
    return n;
}

// ------------------------------------------------------------------ threads

// Producer i runs on CPU 2i, consumer i on CPU 2i+1 (modulo the CPU list),
// ping-pong thread A on the first CPU and B on the second. With fewer than
// two CPUs nothing is pinned.
int producer_cpu(int i) {
    const auto& cpus = settings().cpus;
    if (cpus.size() < 2) return -1;
    return cpus[static_cast<std::size_t>(2 * i) % cpus.size()];
}
int consumer_cpu(int i) {
    const auto& cpus = settings().cpus;
    if (cpus.size() < 2) return -1;
    return cpus[static_cast<std::size_t>(2 * i + 1) % cpus.size()];
}

// --------------------------------------------------------------- scenarios

/// Sum and sum of squares of 1..n, mod 2^64.
checksum expected_checksum(std::uint64_t n) {
    std::uint64_t a = n, b = n + 1, c = 2 * n + 1;
    (a % 2 == 0 ? a : b) /= 2;
    checksum e;
    e.sum = a * b;  // n(n+1)/2
    a = n;
    b = n + 1;
    (a % 2 == 0 ? a : b) /= 2;
    if (a % 3 == 0)
        a /= 3;
    else if (b % 3 == 0)
        b /= 3;
    else
        c /= 3;
    e.squares = a * b * c;  // n(n+1)(2n+1)/6
    return e;
}

template <class P>
void produce(P& p, item_t first, item_t last) {
    if constexpr (requires { p.push_range(first, last); }) {
        p.push_range(first, last);
    } else {
        for (item_t v = first; v < last; ++v) p.push(v);
    }
}

/// How full the queue was, sampled by a consumer every fill_interval pops.
struct fill_samples {
    double sum = 0;  // of fill / ring_capacity
    std::uint64_t count = 0;
};
inline constexpr std::uint64_t fill_interval = 65536;

template <class C>
checksum consume(C& c, std::uint64_t count, fill_samples& fill) {
    checksum cs;
    if constexpr (requires { c.pop_into(count, cs); }) {
        c.pop_into(count, cs);
    } else if constexpr (requires { c.fill(); }) {
        // The sample costs a look at the producer's counter, once in 65536 pops.
        for (std::uint64_t i = 0; i < count; ++i) {
            cs.add(c.pop());
            if ((i + 1) % fill_interval == 0) {
                fill.sum += static_cast<double>(c.fill()) / static_cast<double>(ring_capacity);
                ++fill.count;
            }
        }
    } else {
        for (std::uint64_t i = 0; i < count; ++i) cs.add(c.pop());
    }
    return cs;
}

struct run_result {
    double seconds = 0;
    double fill_pct = -1;  // mean sampled fill, % of the capacity; -1: not sampled
    std::string error;
};

/// One run of P producers and C consumers moving 1..items through a fresh queue.
template <class A>
run_result throughput_once(const std::string& what, int producers, int consumers,
                           std::uint64_t items) {
    auto queue = std::make_unique<A>();
    start_gate gate(producers + consumers);
    finish_line finish(producers + consumers, settings().timeout_s);
    std::vector<checksum> sums(static_cast<std::size_t>(consumers));
    std::vector<fill_samples> fills(static_cast<std::size_t>(consumers));
    std::vector<clock_type::time_point> ends(static_cast<std::size_t>(consumers));
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(producers + consumers));

    for (int i = 0; i < producers; ++i) {
        // Producer i pushes the values [first, last): contiguous shares of 1..items.
        const item_t first = 1 + items * static_cast<item_t>(i) / static_cast<item_t>(producers);
        const item_t last = 1 + items * static_cast<item_t>(i + 1) / static_cast<item_t>(producers);
        threads.emplace_back([&, i, first, last] {
            pin_this_thread(producer_cpu(i));
            typename A::producer p(*queue);
            gate.arrive_and_wait();
            produce(p, first, last);
            finish.cross();
        });
    }
    for (int i = 0; i < consumers; ++i) {
        // Each consumer pops a fixed share; together exactly `items` pops.
        const std::uint64_t share =
            items / static_cast<std::uint64_t>(consumers) +
            (static_cast<std::uint64_t>(i) < items % static_cast<std::uint64_t>(consumers) ? 1 : 0);
        threads.emplace_back([&, i, share] {
            pin_this_thread(consumer_cpu(i));
            typename A::consumer c(*queue);
            gate.arrive_and_wait();
            sums[static_cast<std::size_t>(i)] = consume(c, share, fills[static_cast<std::size_t>(i)]);
            ends[static_cast<std::size_t>(i)] = clock_type::now();
            finish.cross();
        });
    }
    const auto t0 = gate.open();
    finish.wait_or_abort(what);
    for (auto& t : threads) t.join();

    run_result r;
    r.seconds =
        std::chrono::duration<double>(*std::max_element(ends.begin(), ends.end()) - t0).count();
    checksum total;
    for (const auto& s : sums) total += s;
    fill_samples fill;
    for (const auto& f : fills) {
        fill.sum += f.sum;
        fill.count += f.count;
    }
    if (fill.count != 0) r.fill_pct = 100.0 * fill.sum / static_cast<double>(fill.count);
    const checksum want = expected_checksum(items);
    if (total != want) {
        r.error = cat("checksum mismatch: popped sum ", std::to_string(total.sum), " squares ",
                      std::to_string(total.squares), ", expected ", std::to_string(want.sum), " / ",
                      std::to_string(want.squares));
    }
    return r;
}

/// One run of `rounds` round trips: A pushes i on the first queue, B pops it
/// and pushes it on the second, A pops it back.
template <class A>
run_result round_trip_once(const std::string& what, std::uint64_t rounds) {
    auto there = std::make_unique<A>();
    auto back = std::make_unique<A>();
    start_gate gate(2);
    finish_line finish(2, settings().timeout_s);
    double seconds = 0;
    std::uint64_t wrong = 0;

    std::thread b([&] {
        pin_this_thread(consumer_cpu(0));
        typename A::consumer in(*there);
        typename A::producer out(*back);
        gate.arrive_and_wait();
        for (std::uint64_t i = 0; i < rounds; ++i) out.push(in.pop());
        finish.cross();
    });
    std::thread a([&] {
        pin_this_thread(producer_cpu(0));
        typename A::producer out(*there);
        typename A::consumer in(*back);
        gate.arrive_and_wait();
        const auto t0 = clock_type::now();
        for (item_t i = 1; i <= rounds; ++i) {
            out.push(i);
            wrong += in.pop() != i ? 1 : 0;
        }
        seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
        finish.cross();
    });
    (void)gate.open();
    finish.wait_or_abort(what);
    a.join();
    b.join();

    run_result r;
    r.seconds = seconds;
    if (wrong != 0) r.error = cat(std::to_string(wrong), " round trips returned the wrong value");
    return r;
}

// ------------------------------------------------------------- registration

template <class A>
void register_throughput(int producers, int consumers, std::uint64_t items) {
    const std::string scenario =
        producers == 1 && consumers == 1
            ? std::string("throughput_1p1c")
            : cat("throughput_", std::to_string(producers), "p", std::to_string(consumers), "c");
    const std::string name = cat(scenario, "/", A::name);
    common(benchmark::RegisterBenchmark(
               name.c_str(),
               [=](benchmark::State& state) {
                   for (auto _ : state) {
                       const run_result r = throughput_once<A>(name, producers, consumers, items);
                       if (!r.error.empty()) {
                           fail(state, r.error);
                           break;
                       }
                       state.SetIterationTime(r.seconds);
                       if (r.fill_pct >= 0) state.counters["fill_pct"] = r.fill_pct;
                   }
                   state.SetItemsProcessed(static_cast<std::int64_t>(items) * state.iterations());
                   state.counters["items"] = static_cast<double>(items);
                   state.SetLabel(A::api);
               }),
           benchmark::kMillisecond);
}

template <class A>
void register_round_trip(std::uint64_t rounds) {
    const std::string name = cat("rtt/", A::name);
    common(benchmark::RegisterBenchmark(
               name.c_str(),
               [=](benchmark::State& state) {
                   for (auto _ : state) {
                       const run_result r = round_trip_once<A>(name, rounds);
                       if (!r.error.empty()) {
                           fail(state, r.error);
                           break;
                       }
                       // The reported time is the time per round trip.
                       state.SetIterationTime(r.seconds / static_cast<double>(rounds));
                       state.counters["rtt_ns"] = r.seconds * 1e9 / static_cast<double>(rounds);
                   }
                   state.counters["rounds"] = static_cast<double>(rounds);
                   state.SetLabel(A::api);
               }),
           benchmark::kNanosecond);
}

/// The P = C values of the multi-producer scenario: 2, 4, 8, ... up to the
/// maximum, and the maximum itself.
std::vector<int> thread_counts() {
    std::vector<int> out;
    const int max = settings().max_threads;
    for (int k = 2; k <= max; k *= 2) out.push_back(k);
    if (max >= 2 && out.back() != max) out.push_back(max);
    return out;
}

template <class... As>
void register_all() {
    const config& c = settings();
    (register_throughput<As>(1, 1, scaled(c.items, As::rate)), ...);
    for (int k : thread_counts()) {
        auto one = [k, &c]<class A>() {
            if constexpr (A::multi) register_throughput<A>(k, k, scaled(c.items / 2, A::rate));
        };
        (one.template operator()<As>(), ...);
    }
    auto rtt = [&c]<class A>() {
        if constexpr (A::round_trip) {
            register_round_trip<A>(A::blocking ? std::max<std::uint64_t>(c.rounds / 10, 1)
                                               : c.rounds);
        }
    };
    (rtt.template operator()<As>(), ...);
}

void register_benchmarks() {
    register_all<conq_spsc, conq_spsc_batch64, conq_spsc_batch256, conq_spsc_blocking, conq_mpmc,
                 conq_mpmc_backoff, conq_mpmc_blocking, conq_mpmc_blocking_try, conq_mpmc_spin_wait,
#if defined(CONQ_BENCH_HAVE_BOOST)
                 boost_spsc, boost_queue,
#endif
#if defined(CONQ_BENCH_HAVE_READERWRITERQUEUE)
                 moodycamel_rwq, moodycamel_brwcb,
#endif
#if defined(CONQ_BENCH_HAVE_CONCURRENTQUEUE)
                 moodycamel_cq, moodycamel_bcq,
#endif
#if defined(CONQ_BENCH_HAVE_TBB)
                 tbb_bounded, tbb_bounded_blocking,
#endif
#if defined(CONQ_BENCH_HAVE_ATOMIC_QUEUE)
                 atomic_queue_spsc, atomic_queue2_spsc, atomic_queue_mpmc,
#endif
#if defined(CONQ_BENCH_HAVE_RIGTORP)
                 rigtorp_spsc, rigtorp_mpmc,
#endif
                 mutex_ring>();
}

// ------------------------------------------------------------------ context

void add_context() {
    const config& c = settings();
    std::vector<std::string> peers;
#if defined(CONQ_BENCH_HAVE_BOOST)
    peers.push_back(cat("Boost ", std::to_string(BOOST_VERSION / 100000), ".",
                        std::to_string(BOOST_VERSION / 100 % 1000)));
#endif
#if defined(CONQ_BENCH_HAVE_TBB)
    peers.push_back(
        cat("TBB ", std::to_string(TBB_VERSION_MAJOR), ".", std::to_string(TBB_VERSION_MINOR)));
#endif
#if defined(CONQ_BENCH_HAVE_CONCURRENTQUEUE)
    peers.push_back("moodycamel concurrentqueue");
#endif
#if defined(CONQ_BENCH_HAVE_READERWRITERQUEUE)
    peers.push_back("moodycamel readerwriterqueue");
#endif
#if defined(CONQ_BENCH_HAVE_ATOMIC_QUEUE)
    peers.push_back("atomic_queue (user's checkout)");
#endif
#if defined(CONQ_BENCH_HAVE_RIGTORP)
    peers.push_back("rigtorp SPSCQueue and MPMCQueue (user's checkout)");
#endif
    add_common_context(c.cpus);
    benchmark::AddCustomContext("conq_items_1p1c", std::to_string(c.items));
    benchmark::AddCustomContext("conq_items_mpmc", std::to_string(c.items / 2));
    benchmark::AddCustomContext("conq_rtt_rounds", std::to_string(c.rounds));
    benchmark::AddCustomContext("conq_capacity", std::to_string(ring_capacity));
    benchmark::AddCustomContext("conq_peers", peers.empty() ? "none" : join(peers, ", "));
}

}  // namespace
}  // namespace conq_bench

int main(int argc, char** argv) {
    conq_bench::program_name = "conq_ring_bench";
    conq_bench::read_settings(argc, argv);
    conq_bench::register_benchmarks();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    conq_bench::add_context();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return conq_bench::any_failed.load() ? 1 : 0;
}

// benchmarks/priority.bench.cpp
//
// conq_priority_bench: conq::priority_queue (strict, strict + stable,
// relaxed) side by side with tbb::concurrent_priority_queue and a
// std::priority_queue behind a std::mutex, all holding std::uint64_t keys
// with std::greater (a min-queue: the smallest key comes out first).
//
// Benchmarks (names are <scenario>/<keys>/<queue>/threads:<T>):
//
//   pq_mixed       prefill P keys (single-threaded, not timed), then T
//                  threads each alternate push(key) and try_pop() for
//                  OPS/T/2 rounds; operations/s (a push and a pop are two
//                  operations). T = 1, 2, 4, 8, ... up to the maximum, and
//                  the maximum itself; thread i on CPU i (modulo the CPUs
//                  available; unpinned with fewer than two)
//   pq_rank_error  one thread, prefill 100,000, then 200,000 alternating
//                  push/pop operations; for every pop, the rank of the
//                  popped key among the keys in the queue at that moment
//                  (how many were strictly smaller). Counters
//                  rank_error_mean, rank_error_max and shards; for the
//                  strict queue the rank must be 0. The time reported is
//                  the push/pop loop's, of no interest.
//
// Keys (<keys>):
//
//   uniform    uniform 32-bit keys, for the prefill and every push
//   ascending  Dijkstra-like: prefill uniform in [0, 2^20); each thread
//              pushes the key it popped last (0 before its first pop) plus
//              a uniform number in [0, 1024)
//   u8         uniform in [0, 256): many equal keys
//
// Each thread draws from its own xorshift64* generator seeded from its index;
// the prefill generator has a fixed seed.
//
// Checks (a failed one reports an error and makes the program exit with
// status 1): after the threads end, the queue is drained by one thread; the
// number of keys pushed (prefill included) must equal the successful pops
// plus the drained keys, and so must the sum and the sum of squares of the
// keys (every key came out exactly once). The exact queues (every queue but
// conq_relaxed) must give the drained keys in non-decreasing order. A pop
// that finds the queue empty counts as a failed pop (counter failed_pops;
// it cannot happen with a prefill larger than the thread count).
//
// Threads are created, pinned and parked at a start gate before the clock
// starts; the time runs from opening the gate to the last thread's end
// (manual time, a fresh queue every repetition).
//
// Settings (flag, else environment variable, else default):
//
//   --conq_ops=N           CONQ_BENCH_PQ_OPS           4000000  operations per pq_mixed run
//   --conq_prefill=N       CONQ_BENCH_PQ_PREFILL       1000000  keys in the queue before pq_mixed
//   --conq_rank_ops=N      CONQ_BENCH_PQ_RANK_OPS      200000   operations per pq_rank_error run
//   --conq_rank_prefill=N  CONQ_BENCH_PQ_RANK_PREFILL  100000   keys before pq_rank_error
//   --conq_max_threads=N   CONQ_BENCH_MAX_THREADS      2        largest T
//   --conq_cpus=0,1,...    CONQ_BENCH_CPUS             the CPUs this process may use
//   --conq_timeout_s=N     CONQ_BENCH_TIMEOUT_S        120      abort a run that takes longer

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "conq/priority_queue.hpp"

#if defined(CONQ_BENCH_HAVE_TBB)
#include <tbb/concurrent_priority_queue.h>
#include <tbb/version.h>
#endif

namespace conq_bench {
namespace {

using key_type = std::uint64_t;

// ------------------------------------------------------------ configuration

struct config {
    std::uint64_t ops = 4'000'000;
    std::uint64_t prefill = 1'000'000;
    std::uint64_t rank_ops = 200'000;
    std::uint64_t rank_prefill = 100'000;
    int max_threads = 2;
    std::vector<int> cpus;
    int timeout_s = 120;
};

config& settings() {
    static config c;
    return c;
}

void read_settings(int& argc, char** argv) {
    config& c = settings();
    c.cpus = allowed_cpus();
    auto apply = [&c](const std::string& key, const std::string& value) {
        if (key == "ops")
            c.ops = parse_count("ops", value, 2);
        else if (key == "prefill")
            c.prefill = parse_count("prefill", value, 0);
        else if (key == "rank_ops")
            c.rank_ops = parse_count("rank_ops", value, 2);
        else if (key == "rank_prefill")
            c.rank_prefill = parse_count("rank_prefill", value, 0);
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
               {{"ops", "CONQ_BENCH_PQ_OPS"},
                {"prefill", "CONQ_BENCH_PQ_PREFILL"},
                {"rank_ops", "CONQ_BENCH_PQ_RANK_OPS"},
                {"rank_prefill", "CONQ_BENCH_PQ_RANK_PREFILL"},
                {"max_threads", "CONQ_BENCH_MAX_THREADS"},
                {"cpus", "CONQ_BENCH_CPUS"},
                {"timeout_s", "CONQ_BENCH_TIMEOUT_S"}},
               apply);
}

/// Thread i runs on the i-th CPU of the list (modulo its length); with fewer
/// than two CPUs nothing is pinned.
int worker_cpu(int i) {
    const auto& cpus = settings().cpus;
    if (cpus.size() < 2) return -1;
    return cpus[static_cast<std::size_t>(i) % cpus.size()];
}

// --------------------------------------------------------------------- keys

enum class keys { uniform, ascending, u8 };

const char* keys_name(keys k) {
    switch (k) {
        case keys::uniform:
            return "uniform";
        case keys::ascending:
            return "ascending";
        case keys::u8:
            return "u8";
    }
    return "?";
}

/// xorshift64*; the seed goes through splitmix64 first, so that small seeds
/// (thread indices) give unrelated streams.
class xorshift {
public:
    explicit xorshift(std::uint64_t seed) noexcept {
        std::uint64_t z = seed + 0x9e3779b97f4a7c15ULL;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        s_ = z != 0 ? z : 1;
    }
    std::uint64_t operator()() noexcept {
        s_ ^= s_ >> 12;
        s_ ^= s_ << 25;
        s_ ^= s_ >> 27;
        return s_ * 0x2545f4914f6cdd1dULL;
    }

private:
    std::uint64_t s_;
};

inline constexpr std::uint64_t prefill_seed = 20240601;

/// A key of the prefill (the high bits of the generator are the good ones).
template <keys K>
key_type prefill_key(xorshift& rng) noexcept {
    if constexpr (K == keys::uniform) return rng() >> 32;     // [0, 2^32)
    else if constexpr (K == keys::ascending) return rng() >> 44;  // [0, 2^20)
    else return rng() >> 56;                                  // [0, 256)
}

/// The key a thread pushes; `last` is the key it popped last (0 before).
template <keys K>
key_type push_key(xorshift& rng, key_type last) noexcept {
    if constexpr (K == keys::ascending) return last + (rng() >> 54);  // + [0, 1024)
    else return prefill_key<K>(rng);
}

/// Count, sum and sum of squares (mod 2^64) of a multiset of keys: equal for
/// "what went in" and "what came out" when every key came out exactly once.
struct key_sum {
    std::uint64_t count = 0;
    std::uint64_t sum = 0;
    std::uint64_t squares = 0;
    void add(key_type k) noexcept {
        ++count;
        sum += k;
        squares += k * k;
    }
    key_sum& operator+=(const key_sum& o) noexcept {
        count += o.count;
        sum += o.sum;
        squares += o.squares;
        return *this;
    }
    friend bool operator==(const key_sum&, const key_sum&) = default;
};

// ----------------------------------------------------------------- adapters
//
// Each adapter owns one queue and offers push(k) (false if the key did not
// go in), try_pop(k) (false when it found the queue empty), `exact` (pops
// give a true minimum, so a single-threaded drain is sorted), `name` and
// `api`.

template <class Queue, bool Exact>
struct conq_adapter {
    static constexpr bool exact = Exact;
    Queue q;
    bool push(key_type k) { return q.push(k); }
    bool try_pop(key_type& k) { return q.try_pop(k); }
    std::size_t shards() const noexcept {
        if constexpr (requires { q.shard_count(); }) return q.shard_count();
        else return 1;
    }
};

struct conq_strict
    : conq_adapter<conq::priority_queue<key_type, std::greater<>>, true> {
    static constexpr const char* name = "conq_strict";
    static constexpr const char* api = "priority_queue<u64, greater> (strict): push/try_pop";
};
struct conq_stable
    : conq_adapter<conq::priority_queue<key_type, std::greater<>, conq::stable>, true> {
    static constexpr const char* name = "conq_stable";
    static constexpr const char* api = "priority_queue<u64, greater, stable>: push/try_pop";
};
struct conq_relaxed
    : conq_adapter<conq::priority_queue<key_type, std::greater<>, conq::relaxed<>>, false> {
    static constexpr const char* name = "conq_relaxed";
    static constexpr const char* api = "priority_queue<u64, greater, relaxed<4, 8>>: push/try_pop";
};

#if defined(CONQ_BENCH_HAVE_TBB)
struct tbb_cpq {
    static constexpr bool exact = true;
    static constexpr const char* name = "tbb_cpq";
    static constexpr const char* api =
        "tbb::concurrent_priority_queue<u64, greater<u64>>: push/try_pop";
    tbb::concurrent_priority_queue<key_type, std::greater<key_type>> q;
    bool push(key_type k) {
        q.push(k);
        return true;
    }
    bool try_pop(key_type& k) { return q.try_pop(k); }
    std::size_t shards() const noexcept { return 1; }
};
#endif

struct mutex_std_pq {
    static constexpr bool exact = true;
    static constexpr const char* name = "mutex_std_pq";
    static constexpr const char* api = "std::mutex + std::priority_queue<u64, vector, greater>";
    std::mutex m;
    std::priority_queue<key_type, std::vector<key_type>, std::greater<>> q;
    bool push(key_type k) {
        std::lock_guard lock(m);
        q.push(k);
        return true;
    }
    bool try_pop(key_type& k) {
        std::lock_guard lock(m);
        if (q.empty()) return false;
        k = q.top();
        q.pop();
        return true;
    }
    std::size_t shards() const noexcept { return 1; }
};

// ------------------------------------------------------------ pq_mixed

struct thread_result {
    key_sum pushed;
    key_sum popped;
    std::uint64_t failed_pops = 0;
    std::uint64_t failed_pushes = 0;
    clock_type::time_point end;
};

struct mixed_result {
    double seconds = 0;
    std::uint64_t ops = 0;
    std::uint64_t failed_pops = 0;
    std::string error;
};

template <keys K, class A>
void mixed_worker(A& a, int index, std::uint64_t rounds, thread_result& r) {
    xorshift rng(static_cast<std::uint64_t>(index) + 1);
    key_type last = 0;
    key_sum pushed, popped;
    std::uint64_t failed_pops = 0, failed_pushes = 0;
    for (std::uint64_t i = 0; i < rounds; ++i) {
        const key_type k = push_key<K>(rng, last);
        if (a.push(k)) pushed.add(k); else ++failed_pushes;
        key_type v = 0;
        if (a.try_pop(v)) {
            popped.add(v);
            if constexpr (K == keys::ascending) last = v;
        } else {
            ++failed_pops;
        }
    }
    r.end = clock_type::now();
    r.pushed = pushed;
    r.popped = popped;
    r.failed_pops = failed_pops;
    r.failed_pushes = failed_pushes;
}

/// One run: prefill, T threads of alternating push/pop, then a drain and the checks.
template <keys K, class A>
mixed_result mixed_once(const std::string& what, int threads, std::uint64_t ops,
                        std::uint64_t prefill) {
    auto a = std::make_unique<A>();
    key_sum in;
    {
        xorshift rng(prefill_seed);
        for (std::uint64_t i = 0; i < prefill; ++i) {
            const key_type k = prefill_key<K>(rng);
            if (!a->push(k)) return {0, 0, 0, cat("prefill push ", std::to_string(i), " failed")};
            in.add(k);
        }
    }
    const std::uint64_t rounds =
        std::max<std::uint64_t>(ops / static_cast<std::uint64_t>(threads) / 2, 1);
    start_gate gate(threads);
    finish_line finish(threads, settings().timeout_s);
    std::vector<thread_result> results(static_cast<std::size_t>(threads));
    std::vector<std::thread> pool;
    pool.reserve(static_cast<std::size_t>(threads));
    for (int i = 0; i < threads; ++i) {
        pool.emplace_back([&, i] {
            pin_this_thread(worker_cpu(i));
            gate.arrive_and_wait();
            mixed_worker<K>(*a, i, rounds, results[static_cast<std::size_t>(i)]);
            finish.cross();
        });
    }
    const auto t0 = gate.open();
    finish.wait_or_abort(what);
    for (auto& t : pool) t.join();

    mixed_result r;
    clock_type::time_point end = t0;
    key_sum out;
    std::uint64_t failed_pushes = 0;
    for (const auto& t : results) {
        end = std::max(end, t.end);
        in += t.pushed;
        out += t.popped;
        r.failed_pops += t.failed_pops;
        failed_pushes += t.failed_pushes;
    }
    r.seconds = std::chrono::duration<double>(end - t0).count();
    r.ops = 2 * rounds * static_cast<std::uint64_t>(threads);

    // Drain in this thread: the exact queues must give sorted keys.
    const std::uint64_t popped = out.count;
    std::uint64_t unsorted = 0;
    key_type prev = 0, v = 0;
    while (a->try_pop(v)) {
        if (v < prev) ++unsorted;
        prev = v;
        out.add(v);
    }
    const std::uint64_t drained = out.count - popped;
    if (failed_pushes != 0) {
        r.error = cat(std::to_string(failed_pushes), " pushes failed");
    } else if (in.count != out.count) {
        r.error = cat("pushed ", std::to_string(in.count), " keys but popped ",
                      std::to_string(popped), " + drained ", std::to_string(drained));
    } else if (!(in == out)) {
        r.error = cat("the keys that came out are not those pushed (sum ", std::to_string(out.sum),
                      ", expected ", std::to_string(in.sum), ")");
    } else if (A::exact && unsorted != 0) {
        r.error = cat("single-threaded drain out of order ", std::to_string(unsorted), " times");
    }
    return r;
}

// -------------------------------------------------------- pq_rank_error

/// Fenwick tree of counts over key indices 0..n-1.
class fenwick {
public:
    explicit fenwick(std::size_t n) : t_(n + 1, 0) {}
    void add(std::size_t i, std::int64_t d) noexcept {
        for (++i; i < t_.size(); i += i & (~i + 1)) t_[i] += d;
    }
    /// Sum of the counts of indices [0, i).
    [[nodiscard]] std::int64_t prefix(std::size_t i) const noexcept {
        std::int64_t s = 0;
        for (; i > 0; i -= i & (~i + 1)) s += t_[i];
        return s;
    }

private:
    std::vector<std::int64_t> t_;
};

struct rank_result {
    double seconds = 0;
    double mean = 0;
    std::uint64_t max = 0;
    std::uint64_t pops = 0;
    std::size_t shards = 0;
    std::string error;
};

/// One thread records what it pushes and pops; the ranks are computed
/// afterwards by replaying that log over a Fenwick tree of the keys (the
/// keys of `ascending` depend on what comes out, so they are not known in
/// advance).
template <keys K, class A>
rank_result rank_once(std::uint64_t ops, std::uint64_t prefill) {
    struct op {
        key_type key;
        bool pop;
    };
    auto a = std::make_unique<A>();
    std::vector<op> log;
    log.reserve(static_cast<std::size_t>(prefill + ops));
    rank_result r;
    xorshift prng(prefill_seed);
    for (std::uint64_t i = 0; i < prefill; ++i) {
        const key_type k = prefill_key<K>(prng);
        if (!a->push(k)) {
            r.error = "prefill push failed";
            return r;
        }
        log.push_back({k, false});
    }
    xorshift rng(1);
    key_type last = 0;
    const std::uint64_t rounds = std::max<std::uint64_t>(ops / 2, 1);
    const auto t0 = clock_type::now();
    for (std::uint64_t i = 0; i < rounds; ++i) {
        const key_type k = push_key<K>(rng, last);
        if (!a->push(k)) {
            r.error = "push failed";
            return r;
        }
        log.push_back({k, false});
        key_type v = 0;
        if (a->try_pop(v)) {
            log.push_back({v, true});
            if constexpr (K == keys::ascending) last = v;
        }
    }
    r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    r.shards = a->shards();

    std::vector<key_type> sorted;
    sorted.reserve(log.size());
    for (const op& o : log) {
        if (!o.pop) sorted.push_back(o.key);
    }
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    fenwick tree(sorted.size());
    double total = 0;
    for (const op& o : log) {
        const auto it = std::lower_bound(sorted.begin(), sorted.end(), o.key);
        const auto i = static_cast<std::size_t>(it - sorted.begin());
        const bool known = it != sorted.end() && *it == o.key;
        if (!o.pop) {
            tree.add(i, 1);
            continue;
        }
        if (!known || tree.prefix(i + 1) - tree.prefix(i) <= 0) {
            r.error = cat("popped key ", std::to_string(o.key), " that was not in the queue");
            return r;
        }
        const auto rank = static_cast<std::uint64_t>(tree.prefix(i));  // keys strictly smaller
        tree.add(i, -1);
        total += static_cast<double>(rank);
        r.max = std::max(r.max, rank);
        ++r.pops;
    }
    r.mean = r.pops != 0 ? total / static_cast<double>(r.pops) : 0;
    if (r.pops != rounds) {
        r.error = cat(std::to_string(rounds - r.pops), " pops found the queue empty");
    } else if (A::exact && r.max != 0) {
        r.error = cat("an exact queue popped a key of rank ", std::to_string(r.max),
                      " (mean rank error ", std::to_string(r.mean), ")");
    }
    return r;
}

// ------------------------------------------------------------- registration

template <keys K, class A>
void register_mixed(int threads) {
    const config& c = settings();
    const std::uint64_t ops = c.ops;
    const std::uint64_t prefill = c.prefill;
    const std::string name = cat("pq_mixed/", keys_name(K), "/", A::name, "/threads:",
                                 std::to_string(threads));
    common(benchmark::RegisterBenchmark(
               name.c_str(),
               [=](benchmark::State& state) {
                   std::uint64_t done = 0, failed_pops = 0;
                   for (auto _ : state) {
                       const mixed_result r = mixed_once<K, A>(name, threads, ops, prefill);
                       if (!r.error.empty()) {
                           fail(state, r.error);
                           break;
                       }
                       state.SetIterationTime(r.seconds);
                       done += r.ops;
                       failed_pops += r.failed_pops;
                   }
                   // Items are operations: items_per_second is push + pop calls per second.
                   state.SetItemsProcessed(static_cast<std::int64_t>(done));
                   state.counters["ops"] = static_cast<double>(done);
                   state.counters["prefill"] = static_cast<double>(prefill);
                   state.counters["worker_threads"] = threads;
                   state.counters["failed_pops"] = static_cast<double>(failed_pops);
                   state.SetLabel(A::api);
               }),
           benchmark::kMillisecond);
}

template <keys K, class A>
void register_rank_error() {
    const config& c = settings();
    const std::uint64_t ops = c.rank_ops;
    const std::uint64_t prefill = c.rank_prefill;
    const std::string name = cat("pq_rank_error/", keys_name(K), "/", A::name, "/threads:1");
    common(benchmark::RegisterBenchmark(
               name.c_str(),
               [=](benchmark::State& state) {
                   for (auto _ : state) {
                       // In a pinned thread of its own, under the time-out.
                       rank_result r;
                       finish_line finish(1, settings().timeout_s);
                       std::thread t([&] {
                           pin_this_thread(worker_cpu(0));
                           r = rank_once<K, A>(ops, prefill);
                           finish.cross();
                       });
                       finish.wait_or_abort(name);
                       t.join();
                       if (!r.error.empty()) {
                           fail(state, r.error);
                           break;
                       }
                       state.SetIterationTime(r.seconds);
                       state.counters["rank_error_mean"] = r.mean;
                       state.counters["rank_error_max"] = static_cast<double>(r.max);
                       state.counters["shards"] = static_cast<double>(r.shards);
                       state.counters["pops"] = static_cast<double>(r.pops);
                   }
                   state.counters["prefill"] = static_cast<double>(prefill);
                   state.SetLabel(A::api);
               }),
           benchmark::kMillisecond);
}

/// T = 1, 2, 4, 8, ... up to the maximum, and the maximum itself.
std::vector<int> thread_counts() {
    std::vector<int> out;
    const int max = settings().max_threads;
    for (int k = 1; k <= max; k *= 2) out.push_back(k);
    if (out.back() != max) out.push_back(max);
    return out;
}

template <keys K, class... As>
void register_keys() {
    for (int t : thread_counts()) (register_mixed<K, As>(t), ...);
}

template <class... As>
void register_queues() {
    register_keys<keys::uniform, As...>();
    register_keys<keys::ascending, As...>();
    register_keys<keys::u8, As...>();
}

void register_benchmarks() {
    register_queues<conq_strict, conq_stable, conq_relaxed,
#if defined(CONQ_BENCH_HAVE_TBB)
                    tbb_cpq,
#endif
                    mutex_std_pq>();
    register_rank_error<keys::uniform, conq_relaxed>();
    register_rank_error<keys::ascending, conq_relaxed>();
    register_rank_error<keys::u8, conq_relaxed>();
    register_rank_error<keys::uniform, conq_strict>();
    register_rank_error<keys::ascending, conq_strict>();
    register_rank_error<keys::u8, conq_strict>();
}

void add_context() {
    const config& c = settings();
    std::vector<std::string> peers;
#if defined(CONQ_BENCH_HAVE_TBB)
    peers.push_back(
        cat("TBB ", std::to_string(TBB_VERSION_MAJOR), ".", std::to_string(TBB_VERSION_MINOR)));
#endif
    add_common_context(c.cpus);
    benchmark::AddCustomContext("conq_pq_ops", std::to_string(c.ops));
    benchmark::AddCustomContext("conq_pq_prefill", std::to_string(c.prefill));
    benchmark::AddCustomContext("conq_pq_rank_ops", std::to_string(c.rank_ops));
    benchmark::AddCustomContext("conq_pq_rank_prefill", std::to_string(c.rank_prefill));
    benchmark::AddCustomContext("conq_hardware_concurrency",
                                std::to_string(std::thread::hardware_concurrency()));
    benchmark::AddCustomContext("conq_peers", peers.empty() ? "none" : join(peers, ", "));
}

}  // namespace
}  // namespace conq_bench

int main(int argc, char** argv) {
    conq_bench::program_name = "conq_priority_bench";
    conq_bench::read_settings(argc, argv);
    conq_bench::register_benchmarks();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    conq_bench::add_context();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return conq_bench::any_failed.load() ? 1 : 0;
}

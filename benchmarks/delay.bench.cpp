// benchmarks/delay.bench.cpp
//
// conq_delay_bench: conq::delay_queue<std::uint64_t, conq::manual_clock> with
// its two timer storages, conq::timer_heap (a 4-ary heap) and
// conq::timer_wheel<> (a hierarchical wheel, 1 ms tick), with n timers
// pending, n = 10^4, 10^5 and 10^6 (at most CONQ_BENCH_TIMERS_MAX). One
// thread; the clock is a manual_clock, so time moves only when the benchmark
// advances it. Due times are uniform in [1 ms, 10 s] ahead of the clock.
//
// Benchmarks (names are delay/<scenario>/<storage>/pending:<n>):
//
//   schedule_cancel_fifo    n timers pending (scheduled before the clock
//                           starts); each step schedules a new timer and
//                           cancels the oldest pending one (scheduled n
//                           steps earlier: a ring of handles), so n stay
//                           pending: the time-out pattern, where most
//                           timers are cancelled before they fire. STEPS
//                           steps; pairs (schedule + cancel) per second
//   schedule_cancel_random  the same, cancelling a uniformly random pending
//                           timer; pairs per second
//
// The pair scenarios also have a `handles_only` row: the same loop with no
// queue, only the benchmark's own bookkeeping (draw a delay, read the
// handle to cancel from the ring of n handles, store the new one in its
// place), so the queue's share of each pair can be read off. With 10^6
// pending the random handle is a cache miss (the ring is 16 MB); without a
// queue the processor overlaps the misses of consecutive steps, while the
// queue's lock makes each step wait for its own.
// And a `lock_and_tag` row: what a cancel that checks its handle under the
// delay queue's lock (conq::detail::spin_word) costs with no timer storage
// at all. Per pair, handles_only's work plus: take the lock, check and bump
// the 4-byte tag the handle names in an array of 1.5 n tags (as delay_queue
// keeps them), release; take it, give the new timer the tag just freed,
// release. No timer storage behind that lock can do better in the same
// run; the difference to a queue's row is what its storage costs.
//   fire                    n timers scheduled (not timed); then the clock
//                           advances in 1 ms steps, 10,000 of them (to 10 s,
//                           when every timer is due), and after each step
//                           drain_due() moves the due items into a buffer;
//                           fired timers per second. The time includes the
//                           10,000 advance() calls (each wakes the queue)
//   schedule                n timers into an empty queue; schedules per
//                           second. Repeated with fresh queues until at
//                           least STEPS timers were scheduled (counter
//                           rounds); only the schedule loops are timed
//
// Checks (a failed one reports an error and makes the program exit with
// status 1): every schedule returns a handle and every cancel() returns
// true; n timers are pending at the end of the pair scenarios; in `fire`
// every timer fires, in the step of its due time (each item is its due
// time, checked against the clock as it comes out, a compare and an add
// per item), earliest first, and the queue is empty at the end.
//
// Each run happens in a thread of its own pinned to the first CPU (with two
// or more CPUs), under the time-out; a fresh queue and clock every
// repetition (manual time).
//
// Settings (flag, else environment variable, else default):
//
//   --conq_steps=N       CONQ_BENCH_DQ_STEPS      2000000  steps of the pair scenarios
//   --conq_timers_max=N  CONQ_BENCH_TIMERS_MAX    1000000  largest pending count
//   --conq_cpus=0,1,...  CONQ_BENCH_CPUS          the CPUs this process may use
//   --conq_timeout_s=N   CONQ_BENCH_TIMEOUT_S     120      abort a run that takes longer

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "bench_common.hpp"
#include "conq/delay_queue.hpp"

namespace conq_bench {
namespace {

using item_type = std::uint64_t;
using namespace std::chrono_literals;

// ------------------------------------------------------------ configuration

struct config {
    std::uint64_t steps = 2'000'000;
    std::uint64_t timers_max = 1'000'000;
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
        if (key == "steps")
            c.steps = parse_count("steps", value, 1);
        else if (key == "timers_max")
            c.timers_max = parse_count("timers_max", value, 1);
        else if (key == "cpus")
            c.cpus = parse_cpus("cpus", value);
        else if (key == "timeout_s")
            c.timeout_s = static_cast<int>(parse_count("timeout_s", value, 1));
        else
            return false;
        return true;
    };
    read_flags(argc, argv,
               {{"steps", "CONQ_BENCH_DQ_STEPS"},
                {"timers_max", "CONQ_BENCH_TIMERS_MAX"},
                {"cpus", "CONQ_BENCH_CPUS"},
                {"timeout_s", "CONQ_BENCH_TIMEOUT_S"}},
               apply);
}

/// The benchmark thread runs on the first CPU of the list; with fewer than
/// two CPUs it is not pinned.
int bench_cpu() {
    const auto& cpus = settings().cpus;
    return cpus.size() < 2 ? -1 : cpus.front();
}

/// xorshift64*, seeded through splitmix64.
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
    /// Uniform in [0, n) (multiply-shift on the high 32 bits; n < 2^32).
    std::uint64_t below(std::uint64_t n) noexcept { return ((*this)() >> 32) * n >> 32; }

private:
    std::uint64_t s_;
};

inline constexpr std::int64_t min_delay_ns = 1'000'000;        // 1 ms
inline constexpr std::int64_t max_delay_ns = 10'000'000'000;   // 10 s
inline constexpr int fire_steps = 10'000;                      // of 1 ms: to 10 s

/// A delay uniform in [1 ms, 10 s], in nanoseconds.
std::chrono::nanoseconds random_delay(xorshift& rng) noexcept {
    constexpr auto span = static_cast<std::uint64_t>(max_delay_ns - min_delay_ns + 1);
    return std::chrono::nanoseconds(min_delay_ns + static_cast<std::int64_t>(rng() % span));
}

// ------------------------------------------------------------------ storages

struct heap_storage {
    using policy = conq::timer_heap;
    static constexpr const char* name = "timer_heap";
    static constexpr const char* api = "delay_queue<u64, manual_clock, timer_heap>";
};
struct wheel_storage {
    using policy = conq::timer_wheel<>;
    static constexpr const char* name = "timer_wheel";
    static constexpr const char* api = "delay_queue<u64, manual_clock, timer_wheel<1 ms>>";
};

/// No queue: the pair scenarios' own work alone (see the top of the file).
struct handles_only {
    static constexpr const char* name = "handles_only";
    static constexpr const char* api = "no queue: the benchmark's handle ring alone";
};

template <class S>
using queue_for = conq::delay_queue<item_type, conq::manual_clock, typename S::policy>;

// ----------------------------------------------------------------- scenarios

enum class scenario { schedule_cancel_fifo, schedule_cancel_random, fire, schedule };

const char* scenario_name(scenario s) {
    switch (s) {
        case scenario::schedule_cancel_fifo:
            return "schedule_cancel_fifo";
        case scenario::schedule_cancel_random:
            return "schedule_cancel_random";
        case scenario::fire:
            return "fire";
        case scenario::schedule:
            return "schedule";
    }
    return "?";
}

struct run_result {
    double seconds = 0;
    std::uint64_t work = 0;    // pairs, fired timers or schedules
    std::uint64_t rounds = 1;  // schedule: fresh queues filled
    std::string error;
};

/// Which handle a pair step cancels: the oldest (the handles form a ring
/// in schedule order) or a uniformly random one.
template <bool Random>
class pick_slot {
public:
    explicit pick_slot(std::size_t n) noexcept : n_(n) {}
    std::size_t operator()(xorshift& rng) noexcept {
        if constexpr (Random) {
            return static_cast<std::size_t>(rng.below(n_));
        } else {
            const std::size_t j = oldest_;
            oldest_ = oldest_ + 1 == n_ ? 0 : oldest_ + 1;
            return j;
        }
    }

private:
    std::size_t n_;
    std::size_t oldest_ = 0;
};

/// The timed part of the pair scenarios: `steps` calls of step(s, pick),
/// where pick chooses the slot whose handle is cancelled.
template <bool Random, class Step>
run_result time_pairs(std::uint64_t n, std::uint64_t steps, Step&& step) {
    pick_slot<Random> pick(static_cast<std::size_t>(n));
    const auto t0 = clock_type::now();
    for (std::uint64_t s = 0; s < steps; ++s) step(s, pick);
    run_result r;
    r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    r.work = steps;
    return r;
}

/// What handles_only stores per timer: a handle of the same size.
struct fake_handle {
    const void* queue = nullptr;
    std::uint32_t idx = 0;
    std::uint32_t tag = 0;
};
static_assert(sizeof(fake_handle) == sizeof(queue_for<heap_storage>::handle));

/// lock_and_tag (see the top of the file).
struct lock_and_tag {
    static constexpr const char* name = "lock_and_tag";
    static constexpr const char* api = "no queue: handle ring + the queue's lock + 4-byte tag check";
};

/// handles_only: steps times, draw a delay, read the handle in slot j (the
/// oldest or a random one), check it and put a new one there.
template <bool Random>
run_result handles_only_once(std::uint64_t n, std::uint64_t steps) {
    std::vector<fake_handle> ring(static_cast<std::size_t>(n));
    xorshift rng(Random ? 2 : 1);
    for (std::uint64_t i = 0; i < n; ++i) {
        const auto d = random_delay(rng);
        ring[static_cast<std::size_t>(i)] = {&ring, static_cast<std::uint32_t>(i),
                                             static_cast<std::uint32_t>(d.count())};
    }
    std::uint64_t wrong = 0;
    run_result r = time_pairs<Random>(n, steps, [&](std::uint64_t s, pick_slot<Random>& pick) {
        const auto d = random_delay(rng);
        const std::size_t j = pick(rng);
        wrong += ring[j].queue != &ring;  // a use of the handle read, as cancel() makes
        ring[j] = {&ring, static_cast<std::uint32_t>(n + s), static_cast<std::uint32_t>(d.count())};
    });
    if (wrong != 0) r.error = "a handle changed under the benchmark";
    return r;
}

/// lock_and_tag: handles_only's loop, and per step the locked tag check of
/// a cancel and the locked tag hand-out of a schedule. A handle's idx names
/// its tag; a cancelled timer's tag goes to the next schedule (a free list's
/// reuse, the cheapest order for the next step).
template <bool Random>
run_result lock_and_tag_once(std::uint64_t n, std::uint64_t steps) {
    std::vector<fake_handle> ring(static_cast<std::size_t>(n));
    std::vector<std::uint32_t> tags(static_cast<std::size_t>(n + n / 2), 0);
    conq::detail::spin_word mu;  // delay_queue's lock
    xorshift rng(Random ? 2 : 1);
    for (std::uint64_t i = 0; i < n; ++i) {
        // Spread the pending timers over the tag array as a storage that
        // reserved room would.
        const auto idx = static_cast<std::uint32_t>(i * 3 / 2);
        ring[static_cast<std::size_t>(i)] = {&ring, idx, 2};
        tags[idx] = 2;
    }
    std::uint64_t wrong = 0;
    run_result r = time_pairs<Random>(n, steps, [&](std::uint64_t, pick_slot<Random>& pick) {
        const auto d = random_delay(rng);
        const std::size_t j = pick(rng);
        const fake_handle h = ring[j];
        std::uint32_t freed = 0;
        {
            std::lock_guard lk(mu);  // cancel(h)
            std::uint32_t& t = tags[h.idx];
            if (h.queue != &ring || t != h.tag) {
                ++wrong;
            } else {
                t = h.tag + 2;  // a newer generation: h is stale from now on
                freed = h.idx;
            }
        }
        std::uint32_t tag = 0;
        {
            std::lock_guard lk(mu);  // schedule(): take the freed tag
            tag = tags[freed];
        }
        ring[j] = {&ring, freed, tag};
        wrong += d.count() < min_delay_ns;  // a use of the delay, as schedule() makes
    });
    if (wrong != 0) r.error = cat(std::to_string(wrong), " tag checks failed");
    return r;
}

/// n timers pending, then `steps` times: schedule one, cancel one (the
/// oldest, or a random one), keeping n pending.
template <class S, bool Random>
run_result schedule_cancel_once(std::uint64_t n, std::uint64_t steps) {
    using queue = queue_for<S>;
    conq::manual_clock clock;
    auto q = std::make_unique<queue>(clock);
    std::vector<typename queue::handle> ring(static_cast<std::size_t>(n));
    xorshift rng(Random ? 2 : 1);
    std::uint64_t null_handles = 0, failed_cancels = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
        ring[static_cast<std::size_t>(i)] = q->schedule_after(i, random_delay(rng));
        if (!ring[static_cast<std::size_t>(i)]) ++null_handles;
    }
    run_result r = time_pairs<Random>(n, steps, [&](std::uint64_t s, pick_slot<Random>& pick) {
        const auto h = q->schedule_after(n + s, random_delay(rng));
        null_handles += h ? 0 : 1;
        const std::size_t j = pick(rng);
        failed_cancels += q->cancel(ring[j]) ? 0 : 1;
        ring[j] = h;
    });
    if (null_handles != 0) {
        r.error = cat(std::to_string(null_handles), " schedules returned a null handle");
    } else if (failed_cancels != 0) {
        r.error = cat(std::to_string(failed_cancels), " cancels of pending timers returned false");
    } else if (q->size_approx() != n) {
        r.error = cat(std::to_string(q->size_approx()), " timers pending at the end, expected ",
                      std::to_string(n));
    }
    return r;
}

/// n timers, then 10,000 clock steps of 1 ms, draining the due items after each.
template <class S>
run_result fire_once(std::uint64_t n) {
    using queue = queue_for<S>;
    conq::manual_clock clock;
    auto q = std::make_unique<queue>(clock);
    xorshift rng(3);
    std::uint64_t null_handles = 0, want_sum = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
        // The item is its due time (the clock starts at 0).
        const auto d = random_delay(rng);
        const auto v = static_cast<item_type>(d.count());
        null_handles += q->schedule_after(v, d) ? 0 : 1;
        want_sum += v;
    }
    std::vector<item_type> buffer(4096);
    std::uint64_t fired = 0, sum = 0, wrong = 0;
    item_type prev = 0;
    const auto t0 = clock_type::now();
    for (int step = 1; step <= fire_steps; ++step) {
        clock.advance(1ms);
        const auto now = static_cast<item_type>(step) * static_cast<item_type>(min_delay_ns);
        for (;;) {
            const std::size_t k = q->drain_due(buffer.begin(), buffer.size());
            for (std::size_t i = 0; i < k; ++i) {
                const item_type v = buffer[i];
                // Due in this step (after the previous one) and no earlier than the last.
                wrong += (v > now || v + static_cast<item_type>(min_delay_ns) <= now || v < prev);
                prev = v;
                sum += v;
            }
            fired += k;
            if (k < buffer.size()) break;
        }
    }
    run_result r;
    r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    r.work = fired;
    if (null_handles != 0) {
        r.error = cat(std::to_string(null_handles), " schedules returned a null handle");
    } else if (fired != n || sum != want_sum) {
        r.error = cat(std::to_string(fired), " of ", std::to_string(n),
                      " timers fired (or the wrong ones: item sum ", std::to_string(sum),
                      ", expected ", std::to_string(want_sum), ")");
    } else if (wrong != 0) {
        r.error =
            cat(std::to_string(wrong), " timers fired outside their 1 ms step or out of order");
    } else if (q->size_approx() != 0) {
        r.error = cat(std::to_string(q->size_approx()), " timers still pending after 10 s");
    }
    return r;
}

/// n timers into an empty queue, with fresh queues until `at_least` schedules.
template <class S>
run_result schedule_once(std::uint64_t n, std::uint64_t at_least) {
    using queue = queue_for<S>;
    xorshift rng(4);
    run_result r;
    r.rounds = std::max<std::uint64_t>((at_least + n - 1) / n, 1);
    std::uint64_t null_handles = 0;
    for (std::uint64_t round = 0; round < r.rounds; ++round) {
        conq::manual_clock clock;
        auto q = std::make_unique<queue>(clock);
        const auto t0 = clock_type::now();
        for (std::uint64_t i = 0; i < n; ++i) {
            null_handles += q->schedule_after(i, random_delay(rng)) ? 0 : 1;
        }
        r.seconds += std::chrono::duration<double>(clock_type::now() - t0).count();
        if (q->size_approx() != n && r.error.empty()) {
            r.error = cat(std::to_string(q->size_approx()), " timers pending after ",
                          std::to_string(n), " schedules");
        }
    }
    r.work = n * r.rounds;
    if (null_handles != 0) {
        r.error = cat(std::to_string(null_handles), " schedules returned a null handle");
    }
    return r;
}

template <class S>
run_result run_once(scenario sc, std::uint64_t n) {
    const std::uint64_t steps = settings().steps;
    if constexpr (std::is_same_v<S, handles_only>) {
        return sc == scenario::schedule_cancel_random ? handles_only_once<true>(n, steps)
                                                      : handles_only_once<false>(n, steps);
    } else if constexpr (std::is_same_v<S, lock_and_tag>) {
        return sc == scenario::schedule_cancel_random ? lock_and_tag_once<true>(n, steps)
                                                      : lock_and_tag_once<false>(n, steps);
    } else {
        switch (sc) {
            case scenario::schedule_cancel_fifo:
                return schedule_cancel_once<S, false>(n, steps);
            case scenario::schedule_cancel_random:
                return schedule_cancel_once<S, true>(n, steps);
            case scenario::fire:
                return fire_once<S>(n);
            case scenario::schedule:
                return schedule_once<S>(n, steps);
        }
        return {};
    }
}

// ------------------------------------------------------------- registration

template <class S>
void register_one(scenario sc, std::uint64_t n) {
    const std::string name = cat("delay/", scenario_name(sc), "/", S::name, "/pending:",
                                 std::to_string(n));
    common(benchmark::RegisterBenchmark(
               name.c_str(),
               [=](benchmark::State& state) {
                   std::uint64_t work = 0;
                   for (auto _ : state) {
                       // In a pinned thread of its own, under the time-out.
                       run_result r;
                       finish_line finish(1, settings().timeout_s);
                       std::thread t([&] {
                           pin_this_thread(bench_cpu());
                           r = run_once<S>(sc, n);
                           finish.cross();
                       });
                       finish.wait_or_abort(name);
                       t.join();
                       if (!r.error.empty()) {
                           fail(state, r.error);
                           break;
                       }
                       state.SetIterationTime(r.seconds);
                       work += r.work;
                       state.counters["rounds"] = static_cast<double>(r.rounds);
                   }
                   // Items: pairs, fired timers or schedules, per the scenario.
                   state.SetItemsProcessed(static_cast<std::int64_t>(work));
                   state.counters["pending"] = static_cast<double>(n);
                   state.counters["work"] = static_cast<double>(work);
                   state.SetLabel(S::api);
               }),
           benchmark::kMillisecond);
}

/// 10^4, 10^5, 10^6, those at most the maximum, and the maximum itself
/// when it is below 10^6 and not one of them.
std::vector<std::uint64_t> pending_counts() {
    const std::uint64_t max = settings().timers_max;
    std::vector<std::uint64_t> out;
    for (std::uint64_t n = 10'000; n <= 1'000'000 && n <= max; n *= 10) out.push_back(n);
    if (max < 1'000'000 && (out.empty() || out.back() != max)) out.push_back(max);
    return out;
}

void register_benchmarks() {
    for (scenario sc : {scenario::schedule_cancel_fifo, scenario::schedule_cancel_random,
                        scenario::fire, scenario::schedule}) {
        for (std::uint64_t n : pending_counts()) {
            register_one<heap_storage>(sc, n);
            register_one<wheel_storage>(sc, n);
            if (sc == scenario::schedule_cancel_fifo || sc == scenario::schedule_cancel_random) {
                register_one<handles_only>(sc, n);
                register_one<lock_and_tag>(sc, n);
            }
        }
    }
}

void add_context() {
    const config& c = settings();
    add_common_context(c.cpus);
    benchmark::AddCustomContext("conq_dq_steps", std::to_string(c.steps));
    benchmark::AddCustomContext("conq_dq_timers_max", std::to_string(c.timers_max));
    benchmark::AddCustomContext("conq_dq_delays", "uniform in [1 ms, 10 s]");
}

}  // namespace
}  // namespace conq_bench

int main(int argc, char** argv) {
    conq_bench::program_name = "conq_delay_bench";
    conq_bench::read_settings(argc, argv);
    conq_bench::register_benchmarks();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    conq_bench::add_context();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return conq_bench::any_failed.load() ? 1 : 0;
}

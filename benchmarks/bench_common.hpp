// benchmarks/bench_common.hpp
//
// What conqueue's benchmark programs share (conq_ring_bench,
// conq_priority_bench, conq_delay_bench): reading --conq_* flags and
// CONQ_BENCH_* environment variables, pinning threads, the start gate and
// the finish line with its time-out, failing a run (the program then exits
// with status 1), the registration defaults (manual time, one iteration per
// repetition, min and max statistics) and the context every JSON file
// carries (version, CPU, compiler, build type).
//
// Each program sets `program_name` first thing in main(); messages start
// with it.
#pragma once

#include <benchmark/benchmark.h>

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "conq/version.hpp"

namespace conq_bench {

using clock_type = std::chrono::steady_clock;

/// The program's name, for messages; main() sets it before anything else.
inline const char* program_name = "conq_bench";

// ------------------------------------------------------------ configuration

// Concatenates strings with append() only: g++ 12 reports a false
// -Wrestrict for `"literal" + std::string` at -O3 (GCC bug 105651).
template <class... Parts>
std::string cat(const Parts&... parts) {
    std::string out;
    (out.append(std::string_view(parts)), ...);
    return out;
}

// Joins with `sep` (append() only, as cat()).
inline std::string join(const std::vector<std::string>& parts, const char* sep) {
    std::string out;
    for (const auto& p : parts) {
        if (!out.empty()) out.append(sep);
        out.append(p);
    }
    return out;
}

[[noreturn]] inline void usage_error(const std::string& what) {
    std::fprintf(stderr, "%s: %s\n", program_name, what.c_str());
    std::exit(2);
}

inline std::uint64_t parse_count(const std::string& name, const std::string& text,
                                 std::uint64_t min) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || v < min) {
        usage_error(
            cat(name, " must be an integer >= ", std::to_string(min), " (got \"", text, "\")"));
    }
    return v;
}

inline std::vector<int> parse_cpus(const std::string& name, const std::string& text) {
    std::vector<int> out;
    std::stringstream ss(text);
    std::string part;
    while (std::getline(ss, part, ',')) {
        out.push_back(static_cast<int>(parse_count(name, part, 0)));
    }
    if (out.empty()) usage_error(cat(name, " must list at least one CPU, e.g. 0,1"));
    return out;
}

inline std::vector<int> allowed_cpus() {
    std::vector<int> out;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int i = 0; i < CPU_SETSIZE; ++i) {
            if (CPU_ISSET(i, &set)) out.push_back(i);
        }
    }
    return out;
}

/// A setting's flag key (`--conq_<key>=`) and its environment variable.
struct setting_source {
    const char* key;
    const char* env;
};

/// Reads our own --conq_<key>=value flags (removing them from argv) on top of
/// the environment variables of `env`, before Google Benchmark sees the rest.
/// `apply(key, value)` returns false for a key it does not know.
inline void read_flags(int& argc, char** argv, std::initializer_list<setting_source> env,
                       const std::function<bool(const std::string&, const std::string&)>& apply) {
    for (const auto& [key, var] : env) {
        if (const char* v = std::getenv(var); v != nullptr && *v != '\0') apply(key, v);
    }
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const auto eq = arg.find('=');
        if (arg.starts_with("--conq_") && eq != std::string_view::npos) {
            if (!apply(std::string(arg.substr(7, eq - 7)), std::string(arg.substr(eq + 1)))) {
                usage_error(cat("unknown flag ", arg));
            }
            continue;
        }
        argv[kept++] = argv[i];
    }
    argc = kept;
    argv[argc] = nullptr;
}

// ------------------------------------------------------------------ threads

inline std::atomic<bool> pin_warned{false};

/// Set when any run fails its check: the program then exits with status 1.
inline std::atomic<bool> any_failed{false};

inline void fail(benchmark::State& state, const std::string& error) {
    any_failed.store(true);
    state.SkipWithError(error.c_str());
}

/// Pins the calling thread to `cpu`; a negative `cpu` leaves it unpinned.
inline void pin_this_thread(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0 &&
        !pin_warned.exchange(true)) {
        std::fprintf(stderr, "%s: could not pin a thread to CPU %d; running unpinned\n",
                     program_name, cpu);
    }
}

/// Workers arrive and park (yielding, so the main thread gets a CPU); the
/// main thread waits until all arrived, reads the clock, and opens it.
class start_gate {
public:
    explicit start_gate(int workers) : expected_(workers) {}
    void arrive_and_wait() noexcept {
        arrived_.fetch_add(1, std::memory_order_acq_rel);
        while (!open_.load(std::memory_order_acquire)) std::this_thread::yield();
    }
    clock_type::time_point open() noexcept {
        while (arrived_.load(std::memory_order_acquire) < expected_) std::this_thread::yield();
        const auto t0 = clock_type::now();
        open_.store(true, std::memory_order_release);
        return t0;
    }

private:
    const int expected_;
    std::atomic<int> arrived_{0};
    std::atomic<bool> open_{false};
};

/// Counts finished workers; the main thread sleeps on it with a deadline, so
/// a queue that loses an item (and leaves a consumer waiting forever) ends
/// the process with a message instead of hanging it.
class finish_line {
public:
    finish_line(int workers, int timeout_s) : left_(workers), timeout_s_(timeout_s) {}
    void cross() {
        {
            std::lock_guard lock(mutex_);
            --left_;
        }
        cv_.notify_one();
    }
    void wait_or_abort(const std::string& what) {
        std::unique_lock lock(mutex_);
        if (!cv_.wait_for(lock, std::chrono::seconds(timeout_s_), [&] { return left_ == 0; })) {
            std::fprintf(stderr,
                         "%s: %s did not finish within %d s (an item lost or a "
                         "thread starved); aborting\n",
                         program_name, what.c_str(), timeout_s_);
            std::fflush(stderr);
            std::_Exit(3);
        }
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    int left_;
    const int timeout_s_;
};

// ------------------------------------------------------------- registration

inline double stat_min(const std::vector<double>& v) {
    return *std::min_element(v.begin(), v.end());
}
inline double stat_max(const std::vector<double>& v) {
    return *std::max_element(v.begin(), v.end());
}

/// Manual time, one iteration per repetition, min and max next to Google
/// Benchmark's own statistics.
inline benchmark::internal::Benchmark* common(benchmark::internal::Benchmark* b,
                                              benchmark::TimeUnit unit) {
    return b->UseManualTime()
        ->Iterations(1)
        ->Unit(unit)
        ->ComputeStatistics("min", stat_min)
        ->ComputeStatistics("max", stat_max);
}

// ------------------------------------------------------------------ context

inline std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("model name")) {
            const auto colon = line.find(':');
            if (colon != std::string::npos) {
                std::string v = line.substr(colon + 1);
                v.erase(0, v.find_first_not_of(" \t"));
                return v;
            }
        }
    }
    return "unknown";
}

/// What every program reports about its build and machine, as (key, value):
/// conq_version, conq_cpu_model, conq_compiler, conq_build_type (when the
/// build says) and conq_optimized.
inline std::vector<std::pair<std::string, std::string>> build_context() {
    std::vector<std::pair<std::string, std::string>> out;
    out.emplace_back("conq_version", join({std::to_string(CONQ_VERSION_MAJOR), std::to_string(CONQ_VERSION_MINOR),
                                           std::to_string(CONQ_VERSION_PATCH)},
                                          "."));
    out.emplace_back("conq_cpu_model", cpu_model());
    out.emplace_back("conq_compiler",
#if defined(__clang__)
                     "clang " __clang_version__
#elif defined(__GNUC__)
                     "g++ " __VERSION__
#else
                     "unknown"
#endif
    );
#if defined(CONQ_BENCH_BUILD_TYPE)
    out.emplace_back("conq_build_type", CONQ_BENCH_BUILD_TYPE);
#endif
#if defined(__OPTIMIZE__) && defined(NDEBUG)
    out.emplace_back("conq_optimized", "yes (NDEBUG)");
#else
    out.emplace_back("conq_optimized", "NO: build in Release for meaningful numbers");
#endif
    return out;
}

/// The context keys every Google Benchmark program reports: build_context()
/// and conq_cpus (the pinning list). Google Benchmark prints its context
/// sorted by key.
inline void add_common_context(const std::vector<int>& pin_cpus) {
    std::vector<std::string> cpus;
    for (int cpu : pin_cpus) cpus.push_back(std::to_string(cpu));
    for (const auto& [key, value] : build_context()) benchmark::AddCustomContext(key, value);
    benchmark::AddCustomContext("conq_cpus", cpus.size() < 2 ? "unpinned" : join(cpus, ","));
}

}  // namespace conq_bench

// benchmarks/ipc.bench.cpp
//
// conq_ipc_bench: conq::shared_ring (an spsc_ring in a POSIX shared-memory
// object) carrying messages from one process to another, next to what a
// user would pick instead: Boost.Interprocess message_queue, POSIX message
// queues and a pipe, all in one run so that every ratio comes from the same
// machine at the same moment.
//
// Each case forks: the child is the producer, the parent (this program) the
// consumer. The parent makes the channel after the fork and says so through
// a shared anonymous page; the child attaches by name, as an unrelated
// process would, says it is ready and waits at the start gate. The clock
// starts when the parent opens the gate (both sides attached) and stops
// when the parent has received the last message. Opening, closing and
// removing the channel are not timed.
//
// Throughput benchmarks (<size> is 16B or 64B; N messages each):
//
//   conq_spsc_spin/<size>/try_push_pop
//       spsc_ring<msg, shared_memory, spin>, capacity C, through
//       shared_ring's handle: try_push / try_pop in a spin loop (pause)
//   conq_spsc_spin/<size>/push_pop
//       the same ring through the handle's waiting push() / pop()
//   conq_spsc_blocking/<size>/push_pop
//       spsc_ring<msg, shared_memory, blocking>, capacity C, the handle's
//       push() / pop() (spin, yield, then a process-shared futex)
//   conq_spsc_batch/<size>/try_n<B>
//       the spin ring, q->try_push_n / q->try_pop_n of up to B messages
//       per call, spinning while full or empty
//   boost_message_queue/<size>/depth<D>
//       boost::interprocess::message_queue, max_num_msg D (10 and the peer
//       depth), max_msg_size = the message size, blocking send / receive
//   posix_mq/<size>/depth<D>
//       mq_open / mq_send / mq_receive (blocking), mq_maxmsg D (10 and the
//       peer depth), mq_msgsize = the message size. The kernel refuses a
//       depth above fs.mqueue.msg_max (10 by default) to a process without
//       CAP_SYS_RESOURCE, and RLIMIT_MSGQUEUE caps the queue's bytes: a
//       depth that mq_open refuses is left out (the context says why)
//   pipe/<size>/write_read
//       one write() and one read() of one message per call, default pipe
//       capacity (64 KiB)
//
// Round-trip latency benchmarks (16-byte messages, R timed round trips
// after min(1000, R) untimed ones): the parent sends a message carrying a
// sequence number, the child sends it back, the parent reads the clock
// around each trip. Counters p50_ns, p90_ns, p99_ns, p999_ns and max_ns;
// the rate is round trips per second.
//
//   rtt_conq_spsc_spin/16B      two spin rings (try_push / try_pop, spinning)
//   rtt_conq_spsc_blocking/16B  two blocking rings (the handle's push / pop)
//   rtt_posix_mq/16B            two POSIX queues of depth 10
//   rtt_pipe/16B                two pipes
//
// A message is {u64 seq, u64 check} (16 B), and at 64 B six more words
// derived from check. The consumer checks every message: sequence numbers
// in order from 0, check and filler words intact; once the last message is
// in and the producer has exited, it checks that nothing more arrives. A
// failed check, a producer that fails or dies, or a channel that cannot be
// made reports an error and makes the program exit with status 1; a case
// that runs past the time-out kills its child, removes its names and ends
// the program with status 3.
//
// Rates count messages (items_per_second) and message bytes
// (bytes_per_second). Counters: messages (or round_trips), vcsw_per_1k_prod
// and vcsw_per_1k_cons (voluntary context switches per 1000 messages: the
// producer's over its whole life, the consumer thread's over the timed
// part), cpu_s_prod and cpu_s_cons (user + system CPU seconds, counted the
// same way).
//
// Pinning: with two or more CPUs in the list the consumer (the parent's
// thread) runs on the first and the producer (the child) on the second;
// --conq_cpus=0,0 puts both on CPU 0. With one CPU nothing is pinned. On a
// shared CPU the spinning cases (spin, batch) move on only when the
// scheduler switches the two processes: slow by design.
//
// Names: every shared-memory object and queue is named
// conq_ipc_<pid>_<case number>_<what>, and removed when the case ends (on a
// time-out too).
//
// Settings (flag, else environment variable, else default):
//
//   --conq_messages=N     CONQ_BENCH_IPC_MESSAGES     5000000  messages per throughput run
//   --conq_round_trips=N  CONQ_BENCH_IPC_ROUND_TRIPS  100000   timed round trips per latency run
//   --conq_capacity=N     CONQ_BENCH_IPC_CAPACITY     1024     capacity of the conq rings
//   --conq_peer_depth=N   CONQ_BENCH_IPC_PEER_DEPTH   1024     the larger depth of the queues
//   --conq_batch=N        CONQ_BENCH_IPC_BATCH        64       messages per try_push_n / try_pop_n
//   --conq_sizes=16,64    CONQ_BENCH_IPC_SIZES        16,64    message sizes (16 and/or 64)
//   --conq_cpus=0,1,...   CONQ_BENCH_CPUS             the CPUs this process may use
//   --conq_timeout_s=N    CONQ_BENCH_TIMEOUT_S        300      abort a case that hangs

#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <mqueue.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "bench_common.hpp"
#include "conq/detail/platform.hpp"
#include "conq/shared_ring.hpp"
#include "conq/spsc_ring.hpp"

#if defined(CONQ_BENCH_HAVE_BOOST)
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/version.hpp>
#endif

namespace conq_bench {
namespace {

// ------------------------------------------------------------ configuration

struct config {
    std::uint64_t messages = 5'000'000;
    std::uint64_t round_trips = 100'000;
    std::uint64_t capacity = 1'024;
    std::uint64_t peer_depth = 1'024;
    std::uint64_t batch = 64;
    std::vector<int> sizes{16, 64};
    std::vector<int> cpus;
    int timeout_s = 300;
};

config& settings() {
    static config c;
    return c;
}

void read_settings(int& argc, char** argv) {
    config& c = settings();
    c.cpus = allowed_cpus();
    auto apply = [&c](const std::string& key, const std::string& value) {
        if (key == "messages")
            c.messages = parse_count("messages", value, 1);
        else if (key == "round_trips")
            c.round_trips = parse_count("round_trips", value, 1);
        else if (key == "capacity")
            c.capacity = parse_count("capacity", value, 1);
        else if (key == "peer_depth")
            c.peer_depth = parse_count("peer_depth", value, 1);
        else if (key == "batch")
            c.batch = parse_count("batch", value, 1);
        else if (key == "sizes") {
            c.sizes.clear();
            for (int s : parse_cpus("sizes", value)) {
                if (s != 16 && s != 64) usage_error("sizes takes 16 and/or 64, e.g. 16,64");
                if (std::find(c.sizes.begin(), c.sizes.end(), s) == c.sizes.end())
                    c.sizes.push_back(s);
            }
        } else if (key == "cpus")
            c.cpus = parse_cpus("cpus", value);
        else if (key == "timeout_s")
            c.timeout_s = static_cast<int>(parse_count("timeout_s", value, 1));
        else
            return false;
        return true;
    };
    read_flags(argc, argv,
               {{"messages", "CONQ_BENCH_IPC_MESSAGES"},
                {"round_trips", "CONQ_BENCH_IPC_ROUND_TRIPS"},
                {"capacity", "CONQ_BENCH_IPC_CAPACITY"},
                {"peer_depth", "CONQ_BENCH_IPC_PEER_DEPTH"},
                {"batch", "CONQ_BENCH_IPC_BATCH"},
                {"sizes", "CONQ_BENCH_IPC_SIZES"},
                {"cpus", "CONQ_BENCH_CPUS"},
                {"timeout_s", "CONQ_BENCH_TIMEOUT_S"}},
               apply);
}

/// Side i of a pinned pair (0: the consumer, 1: the producer) runs on the
/// i-th CPU of the list; with fewer than two CPUs nothing is pinned.
int side_cpu(int i) {
    const auto& cpus = settings().cpus;
    if (cpus.size() < 2) return -1;
    return cpus[static_cast<std::size_t>(i) % cpus.size()];
}

std::uint64_t warmup_trips() { return std::min<std::uint64_t>(1'000, settings().round_trips); }

// ----------------------------------------------------------------- messages

constexpr std::uint64_t check_of(std::uint64_t seq) noexcept {
    return (seq ^ 0x6a09e667f3bcc909ULL) * 0x9e3779b97f4a7c15ULL;
}

template <std::size_t Size>
struct message;
template <>
struct message<16> {
    std::uint64_t seq;
    std::uint64_t check;
};
template <>
struct message<64> {
    std::uint64_t seq;
    std::uint64_t check;
    std::uint64_t fill[6];
};
static_assert(sizeof(message<16>) == 16 && sizeof(message<64>) == 64);
static_assert(std::is_trivially_copyable_v<message<16>> &&
              std::is_trivially_copyable_v<message<64>>);

template <class M>
M make_message(std::uint64_t seq) noexcept {
    M m{};
    m.seq = seq;
    m.check = check_of(seq);
    if constexpr (sizeof(M) > 16) {
        for (std::size_t i = 0; i < std::size(m.fill); ++i) m.fill[i] = m.check + i + 1;
    }
    return m;
}

template <class M>
bool intact(const M& m, std::uint64_t expected) noexcept {
    bool ok = m.seq == expected && m.check == check_of(expected);
    if constexpr (sizeof(M) > 16) {
        for (std::size_t i = 0; i < std::size(m.fill); ++i) ok &= m.fill[i] == m.check + i + 1;
    }
    return ok;
}

template <class M>
std::string mismatch(const M& m, std::uint64_t expected) {
    if (m.seq != expected)
        return cat("message ", std::to_string(expected), " arrived as seq ", std::to_string(m.seq),
                   " (lost, duplicated or reordered)");
    return cat("message ", std::to_string(expected), " is damaged (check or filler words differ)");
}

// ------------------------------------------------------------------ helpers

std::string errno_text(const std::string& what, int e) {
    return cat(what, ": ", std::generic_category().message(e));
}

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

std::string read_first_line(const char* path) {
    std::ifstream in(path);
    std::string line;
    if (!std::getline(in, line)) return "?";
    return line;
}

/// Names of shared objects alive now, with how to remove each: removed when
/// a case ends, and by the watchdog before it ends a hung program.
class name_registry {
public:
    int add(std::function<void()> remove) {
        std::lock_guard lock(mutex_);
        removers_.emplace(next_, std::move(remove));
        return next_++;
    }
    void remove(int id) {
        std::function<void()> f;
        {
            std::lock_guard lock(mutex_);
            auto it = removers_.find(id);
            if (it == removers_.end()) return;
            f = std::move(it->second);
            removers_.erase(it);
        }
        f();
    }
    void remove_all() {
        std::map<int, std::function<void()>> all;
        {
            std::lock_guard lock(mutex_);
            all.swap(removers_);
        }
        for (auto& [id, f] : all) f();
    }

private:
    std::mutex mutex_;
    std::map<int, std::function<void()>> removers_;
    int next_ = 0;
};

name_registry& live_names() {
    static name_registry r;
    return r;
}

/// A name for this case's object `what`: unique per process and case.
std::string unique_name(const char* what) {
    static int case_number = 0;
    return cat("conq_ipc_", std::to_string(::getpid()), "_", std::to_string(case_number++), "_",
               what);
}

/// Removes a name when the case ends (however it ends).
class name_guard {
public:
    explicit name_guard(std::function<void()> remove) : id_(live_names().add(std::move(remove))) {}
    name_guard(const name_guard&) = delete;
    name_guard& operator=(const name_guard&) = delete;
    ~name_guard() { live_names().remove(id_); }

private:
    int id_;
};

/// What passes between the two processes outside the channel: a shared
/// anonymous page made before the fork.
struct control {
    std::atomic<int> created{0};  // the parent has made the channel
    std::atomic<int> ready{0};    // the child has attached
    std::atomic<int> go{0};       // the start gate
    std::atomic<int> failed{0};   // the child hit an error (in `error`)
    char error[1024];
};
static_assert(std::atomic<int>::is_always_lock_free);

class control_page {
public:
    control_page() {
        void* p = ::mmap(nullptr, sizeof(control), PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            throw std::system_error(errno, std::generic_category(), "mmap (control page)");
        ctl_ = ::new (p) control{};
    }
    control_page(const control_page&) = delete;
    control_page& operator=(const control_page&) = delete;
    ~control_page() { ::munmap(ctl_, sizeof(control)); }
    [[nodiscard]] control& get() const noexcept { return *ctl_; }

private:
    control* ctl_;
};

/// The child process of one case.
class child_process {
public:
    explicit child_process(pid_t pid) noexcept : pid_(pid) {}
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    /// Waits for the child to exit (once; later calls return at once).
    void wait() {
        if (reaped_) return;
        for (;;) {
            const pid_t r = ::wait4(pid_, &status_, 0, &usage_);
            if (r == pid_) break;
            if (r < 0 && errno != EINTR) {
                status_ = -1;
                break;
            }
        }
        reaped_ = true;
    }
    /// True once the child has exited (reaps it).
    bool exited() {
        if (reaped_) return true;
        const pid_t r = ::wait4(pid_, &status_, WNOHANG, &usage_);
        if (r == pid_) reaped_ = true;
        return reaped_;
    }
    void kill() noexcept {
        if (!reaped_) ::kill(pid_, SIGKILL);
    }
    /// Empty when the child exited with status 0; else what happened.
    [[nodiscard]] std::string exit_problem() const {
        if (!reaped_) return "the producer process was not reaped";
        if (WIFEXITED(status_)) {
            if (WEXITSTATUS(status_) == 0) return {};
            return cat("the producer process exited with status ",
                       std::to_string(WEXITSTATUS(status_)));
        }
        if (WIFSIGNALED(status_))
            return cat("the producer process died of signal ", std::to_string(WTERMSIG(status_)));
        return "the producer process ended abnormally";
    }
    [[nodiscard]] const rusage& usage() const noexcept { return usage_; }

private:
    pid_t pid_;
    int status_ = 0;
    rusage usage_{};
    bool reaped_ = false;
};

/// Pins the calling thread for a scope and restores its affinity afterwards.
class pinned_scope {
public:
    explicit pinned_scope(int cpu) : cpu_(cpu) {
        if (cpu_ < 0) return;
        CPU_ZERO(&saved_);
        have_saved_ = pthread_getaffinity_np(pthread_self(), sizeof saved_, &saved_) == 0;
        pin_this_thread(cpu_);
    }
    pinned_scope(const pinned_scope&) = delete;
    pinned_scope& operator=(const pinned_scope&) = delete;
    ~pinned_scope() {
        if (cpu_ >= 0 && have_saved_)
            pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_);
    }

private:
    int cpu_;
    cpu_set_t saved_{};
    bool have_saved_ = false;
};

/// Ends the program if a case runs past the time-out: kills the child,
/// removes the case's names and exits with status 3 (a lost message leaves
/// a blocking receiver waiting forever).
class watchdog {
public:
    watchdog(pid_t child, int timeout_s, std::string what)
        : child_(child),
          timeout_s_(timeout_s),
          what_(std::move(what)),
          thread_([this] { watch(); }) {}
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }

private:
    void watch() {
        std::unique_lock lock(mutex_);
        if (cv_.wait_for(lock, std::chrono::seconds(timeout_s_), [this] { return done_; })) return;
        ::kill(child_, SIGKILL);
        live_names().remove_all();
        std::fprintf(stderr,
                     "%s: %s did not finish within %d s (a message lost, a process stuck or "
                     "starved); aborting\n",
                     program_name, what_.c_str(), timeout_s_);
        std::fflush(stderr);
        std::_Exit(3);
    }

    pid_t child_;
    int timeout_s_;
    std::string what_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;  // last: starts once the members above exist
};

struct case_result {
    double seconds = 0;
    std::uint64_t messages = 0;
    std::uint64_t bytes = 0;
    std::string error;
    std::vector<std::pair<std::string, double>> counters;
};

case_result failed(std::string error) {
    case_result r;
    r.error = std::move(error);
    return r;
}

double cpu_seconds(const rusage& u) {
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

rusage thread_usage() {
    rusage u{};
    ::getrusage(RUSAGE_THREAD, &u);
    return u;
}

// --------------------------------------------------------- the two sides

/// The parent's view of a case in progress.
class parent_side {
public:
    parent_side(control& ctl, child_process& child) noexcept : ctl_(ctl), child_(child) {}

    /// The channel exists: the child may attach.
    void created() noexcept { ctl_.created.store(1, std::memory_order_release); }

    /// Waits until the child has attached; an error if it failed or died.
    std::string wait_ready() {
        for (std::uint64_t i = 0; !ctl_.ready.load(std::memory_order_acquire); ++i) {
            if (ctl_.failed.load(std::memory_order_acquire)) return cat("producer: ", ctl_.error);
            if ((i & 1023) == 1023 && child_.exited()) {
                if (ctl_.failed.load(std::memory_order_acquire))
                    return cat("producer: ", ctl_.error);
                return cat(child_.exit_problem(), " before it was ready");
            }
            std::this_thread::yield();
        }
        return {};
    }

    /// Opens the start gate; the time it was opened.
    clock_type::time_point open_gate() noexcept {
        usage_before_ = thread_usage();
        const auto t0 = clock_type::now();
        ctl_.go.store(1, std::memory_order_release);
        return t0;
    }
    /// The consumer's part is over: take its resource usage.
    void stop() noexcept { usage_after_ = thread_usage(); }

    /// True when the child reported an error (checked where a loop would
    /// otherwise spin forever).
    [[nodiscard]] bool child_failed() const noexcept {
        return ctl_.failed.load(std::memory_order_relaxed) != 0;
    }
    [[nodiscard]] std::string child_error() const { return cat("producer: ", ctl_.error); }

    /// Waits for the child to exit; an error unless it exited cleanly.
    std::string finish() {
        child_.wait();
        if (ctl_.failed.load(std::memory_order_acquire)) return child_error();
        return child_.exit_problem();
    }

    /// Counters of a run of `n` messages (or round trips).
    void add_usage(case_result& r, std::uint64_t n) const {
        const double per_1k = 1000.0 / static_cast<double>(n);
        const rusage& p = child_.usage();
        r.counters.emplace_back("vcsw_per_1k_prod", static_cast<double>(p.ru_nvcsw) * per_1k);
        r.counters.emplace_back(
            "vcsw_per_1k_cons",
            static_cast<double>(usage_after_.ru_nvcsw - usage_before_.ru_nvcsw) * per_1k);
        r.counters.emplace_back("cpu_s_prod", cpu_seconds(p));
        r.counters.emplace_back("cpu_s_cons",
                                cpu_seconds(usage_after_) - cpu_seconds(usage_before_));
    }

private:
    control& ctl_;
    child_process& child_;
    rusage usage_before_{};
    rusage usage_after_{};
};

/// The child's view.
class child_side {
public:
    explicit child_side(control& ctl) noexcept : ctl_(ctl) {}
    /// Waits until the parent has made the channel.
    void wait_created() const {
        const auto deadline = clock_type::now() + std::chrono::seconds(settings().timeout_s);
        while (!ctl_.created.load(std::memory_order_acquire)) {
            if (clock_type::now() > deadline)
                throw std::runtime_error("the parent never made the channel");
            std::this_thread::yield();
        }
    }
    /// Says it is attached and waits at the start gate.
    void arrive_and_wait() const noexcept {
        ctl_.ready.store(1, std::memory_order_release);
        while (!ctl_.go.load(std::memory_order_acquire)) std::this_thread::yield();
    }

private:
    control& ctl_;
};

using parent_fn = std::function<case_result(parent_side&)>;
using child_fn = std::function<std::string(child_side&)>;

/// Forks; the child runs `child` (the producer) and exits, the parent runs
/// `parent` (the consumer, which makes the channel and times the run). The
/// child's error, exit status and resource usage come back to the parent.
case_result run_pair(const std::string& what, const parent_fn& parent, const child_fn& child) {
    control_page page;
    control& ctl = page.get();
    const pid_t parent_pid = ::getpid();
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) return failed(errno_text("fork", errno));
    if (pid == 0) {
        // The child: dies with the parent, never returns into the benchmark
        // library, never runs the parent's exit handlers.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent_pid) ::_exit(4);
        pin_this_thread(side_cpu(1));
        std::string err;
        try {
            child_side side(ctl);
            err = child(side);
        } catch (const std::exception& e) {
            err = e.what();
            if (err.empty()) err = "an exception";
        } catch (...) {
            err = "an unknown exception";
        }
        if (!err.empty()) {
            const std::size_t n = std::min(err.size(), sizeof ctl.error - 1);
            std::memcpy(ctl.error, err.data(), n);
            ctl.error[n] = '\0';
            ctl.failed.store(1, std::memory_order_release);
            ::_exit(1);
        }
        ::_exit(0);
    }
    child_process proc(pid);
    case_result r;
    {
        pinned_scope pinned(side_cpu(0));
        watchdog dog(pid, settings().timeout_s, what);
        parent_side side(ctl, proc);
        try {
            r = parent(side);
        } catch (const std::exception& e) {
            r = failed(e.what());
        }
        if (!r.error.empty()) {
            proc.kill();
            proc.wait();
            // The child's own message says more than the consumer's.
            if (ctl.failed.load(std::memory_order_acquire) &&
                r.error.find(ctl.error) == std::string::npos)
                r.error = cat("producer: ", ctl.error, " (consumer: ", r.error, ")");
            return r;
        }
        if (std::string e = side.finish(); !e.empty()) return failed(e);
    }
    return r;
}

case_result throughput_result(clock_type::time_point t0, clock_type::time_point t1, std::uint64_t n,
                              std::size_t size, const parent_side& side) {
    case_result r;
    r.seconds = seconds_between(t0, t1);
    r.messages = n;
    r.bytes = n * size;
    r.counters.emplace_back("messages", static_cast<double>(n));
    side.add_usage(r, n);
    return r;
}

/// Nearest-rank percentile of sorted samples.
double percentile(const std::vector<std::int64_t>& sorted, double p) {
    if (sorted.empty()) return 0;
    const double n = static_cast<double>(sorted.size());
    auto rank = static_cast<std::size_t>(p / 100.0 * n + 0.999999);
    rank = std::clamp<std::size_t>(rank, 1, sorted.size());
    return static_cast<double>(sorted[rank - 1]);
}

case_result latency_result(clock_type::time_point t0, clock_type::time_point t1,
                           std::vector<std::int64_t> ns, const parent_side& side) {
    case_result r;
    r.seconds = seconds_between(t0, t1);
    r.messages = ns.size();
    std::sort(ns.begin(), ns.end());
    r.counters.emplace_back("round_trips", static_cast<double>(ns.size()));
    r.counters.emplace_back("p50_ns", percentile(ns, 50));
    r.counters.emplace_back("p90_ns", percentile(ns, 90));
    r.counters.emplace_back("p99_ns", percentile(ns, 99));
    r.counters.emplace_back("p999_ns", percentile(ns, 99.9));
    r.counters.emplace_back("max_ns", static_cast<double>(ns.back()));
    side.add_usage(r, ns.size());
    return r;
}

std::int64_t ns_between(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

// -------------------------------------------------------------- conq rings

template <class M>
using spin_ring = conq::spsc_ring<M, conq::shared_memory, conq::spin>;
template <class M>
using blocking_ring = conq::spsc_ring<M, conq::shared_memory, conq::blocking>;

enum class conq_mode { try_ops, handle_ops, batch };

template <class Ring>
case_result conq_throughput(const std::string& what, conq_mode mode) {
    using M = typename Ring::value_type;
    using handle = conq::shared_ring<Ring>;
    const std::uint64_t n = settings().messages;
    const std::size_t batch = static_cast<std::size_t>(settings().batch);
    const std::string name = unique_name("ring");
    return run_pair(
        what,
        [&](parent_side& side) -> case_result {
            name_guard guard([name] { handle::remove(name); });
            auto q = handle::create(name, static_cast<std::size_t>(settings().capacity),
                                    conq::shared_role::consumer);
            side.created();
            if (std::string e = side.wait_ready(); !e.empty()) return failed(e);
            std::uint64_t next = 0;
            std::vector<M> buf(mode == conq_mode::batch ? batch : 1);
            const auto t0 = side.open_gate();
            switch (mode) {
                case conq_mode::try_ops:
                    while (next < n) {
                        if (auto m = q.try_pop()) {
                            if (!intact(*m, next)) return failed(mismatch(*m, next));
                            ++next;
                        } else if (side.child_failed()) {
                            return failed(side.child_error());
                        } else {
                            conq::detail::cpu_relax();
                        }
                    }
                    break;
                case conq_mode::handle_ops:
                    while (next < n) {
                        auto m = q.pop();
                        if (!m)
                            return failed(cat("pop() returned nullopt after ", std::to_string(next),
                                              " messages (producer gone)"));
                        if (!intact(*m, next)) return failed(mismatch(*m, next));
                        ++next;
                    }
                    break;
                case conq_mode::batch:
                    while (next < n) {
                        const std::size_t got = q->try_pop_n(buf.data(), batch);
                        if (got == 0) {
                            if (side.child_failed()) return failed(side.child_error());
                            conq::detail::cpu_relax();
                            continue;
                        }
                        for (std::size_t i = 0; i < got; ++i, ++next) {
                            if (next >= n) return failed("more messages than were sent");
                            if (!intact(buf[i], next)) return failed(mismatch(buf[i], next));
                        }
                    }
                    break;
            }
            const auto t1 = clock_type::now();
            side.stop();
            if (std::string e = side.finish(); !e.empty()) return failed(e);
            if (q.try_pop()) return failed("a message after the last one");
            return throughput_result(t0, t1, n, sizeof(M), side);
        },
        [&](child_side& side) -> std::string {
            side.wait_created();
            auto q = handle::open(name, conq::shared_role::producer);
            std::vector<M> buf(mode == conq_mode::batch ? batch : 1);
            side.arrive_and_wait();
            switch (mode) {
                case conq_mode::try_ops:
                    for (std::uint64_t i = 0; i < n; ++i) {
                        const M m = make_message<M>(i);
                        while (!q.try_push(m)) conq::detail::cpu_relax();
                    }
                    break;
                case conq_mode::handle_ops:
                    for (std::uint64_t i = 0; i < n; ++i) {
                        if (!q.push(make_message<M>(i)))
                            return cat("push() returned false at message ", std::to_string(i),
                                       q.peer_gone() ? " (consumer gone)" : " (closed)");
                    }
                    break;
                case conq_mode::batch:
                    for (std::uint64_t i = 0; i < n;) {
                        const std::size_t k =
                            static_cast<std::size_t>(std::min<std::uint64_t>(batch, n - i));
                        for (std::size_t j = 0; j < k; ++j) buf[j] = make_message<M>(i + j);
                        std::size_t sent = 0;
                        while (sent < k) {
                            const std::size_t pushed =
                                q->try_push_n(buf.begin() + static_cast<std::ptrdiff_t>(sent),
                                              buf.begin() + static_cast<std::ptrdiff_t>(k));
                            if (pushed == 0) conq::detail::cpu_relax();
                            sent += pushed;
                        }
                        i += k;
                    }
                    break;
            }
            return {};
        });
}

/// Ping-pong over two conq rings: the parent pushes to `ping` and pops
/// from `pong`, the child the other way round.
template <class Ring>
case_result conq_round_trips(const std::string& what, bool spin) {
    using M = typename Ring::value_type;
    using handle = conq::shared_ring<Ring>;
    const std::uint64_t warm = warmup_trips();
    const std::uint64_t timed = settings().round_trips;
    const std::string ping = unique_name("ping");
    const std::string pong = unique_name("pong");
    return run_pair(
        what,
        [&](parent_side& side) -> case_result {
            name_guard g1([ping] { handle::remove(ping); });
            name_guard g2([pong] { handle::remove(pong); });
            const auto cap = static_cast<std::size_t>(settings().capacity);
            auto out = handle::create(ping, cap, conq::shared_role::producer);
            auto in = handle::create(pong, cap, conq::shared_role::consumer);
            side.created();
            if (std::string e = side.wait_ready(); !e.empty()) return failed(e);
            std::vector<std::int64_t> ns;
            ns.reserve(static_cast<std::size_t>(timed));
            clock_type::time_point t0{};
            (void)side.open_gate();
            for (std::uint64_t i = 0; i < warm + timed; ++i) {
                if (i == warm) t0 = clock_type::now();
                const auto a = clock_type::now();
                std::optional<M> back;
                if (spin) {
                    while (!out.try_push(make_message<M>(i))) conq::detail::cpu_relax();
                    while (!(back = in.try_pop())) {
                        if (side.child_failed()) return failed(side.child_error());
                        conq::detail::cpu_relax();
                    }
                } else {
                    if (!out.push(make_message<M>(i)))
                        return failed("push() returned false (consumer gone)");
                    back = in.pop();
                    if (!back) return failed("pop() returned nullopt (producer gone)");
                }
                const auto b = clock_type::now();
                if (!intact(*back, i)) return failed(mismatch(*back, i));
                if (i >= warm) ns.push_back(ns_between(a, b));
            }
            const auto t1 = clock_type::now();
            side.stop();
            if (std::string e = side.finish(); !e.empty()) return failed(e);
            return latency_result(t0, t1, std::move(ns), side);
        },
        [&](child_side& side) -> std::string {
            side.wait_created();
            auto in = handle::open(ping, conq::shared_role::consumer);
            auto out = handle::open(pong, conq::shared_role::producer);
            side.arrive_and_wait();
            for (std::uint64_t i = 0; i < warm + timed; ++i) {
                std::optional<M> m;
                if (spin) {
                    while (!(m = in.try_pop())) conq::detail::cpu_relax();
                    while (!out.try_push(*m)) conq::detail::cpu_relax();
                } else {
                    m = in.pop();
                    if (!m) return cat("pop() returned nullopt at round trip ", std::to_string(i));
                    if (!out.push(*m))
                        return cat("push() returned false at round trip ", std::to_string(i));
                }
            }
            return {};
        });
}

// ------------------------------------------------------------- POSIX mq

class mq_handle {
public:
    explicit mq_handle(mqd_t q) noexcept : q_(q) {}
    mq_handle(const mq_handle&) = delete;
    mq_handle& operator=(const mq_handle&) = delete;
    ~mq_handle() {
        if (q_ != static_cast<mqd_t>(-1)) ::mq_close(q_);
    }
    [[nodiscard]] mqd_t get() const noexcept { return q_; }

private:
    mqd_t q_;
};

/// Creates queue `name` (exclusively) for reading or writing.
mqd_t mq_create(const std::string& name, std::uint64_t depth, std::size_t size, int access) {
    mq_attr attr{};
    attr.mq_maxmsg = static_cast<long>(depth);
    attr.mq_msgsize = static_cast<long>(size);
    const mqd_t q = ::mq_open(name.c_str(), O_CREAT | O_EXCL | access | O_CLOEXEC, 0600, &attr);
    if (q == static_cast<mqd_t>(-1))
        throw std::system_error(errno, std::generic_category(),
                                cat("mq_open(O_CREAT, maxmsg ", std::to_string(depth), ", msgsize ",
                                    std::to_string(size), ")"));
    return q;
}

mqd_t mq_attach(const std::string& name, int access) {
    const mqd_t q = ::mq_open(name.c_str(), access | O_CLOEXEC);
    if (q == static_cast<mqd_t>(-1)) throw std::runtime_error(errno_text("mq_open", errno));
    return q;
}

template <class M>
void mq_send_one(mqd_t q, const M& m) {
    while (::mq_send(q, reinterpret_cast<const char*>(&m), sizeof m, 0) != 0) {
        if (errno != EINTR) throw std::runtime_error(errno_text("mq_send", errno));
    }
}

template <class M>
void mq_receive_one(mqd_t q, M& m) {
    for (;;) {
        const ssize_t got = ::mq_receive(q, reinterpret_cast<char*>(&m), sizeof m, nullptr);
        if (got == static_cast<ssize_t>(sizeof m)) return;
        if (got >= 0)
            throw std::runtime_error(cat("mq_receive returned ", std::to_string(got), " bytes"));
        if (errno != EINTR) throw std::runtime_error(errno_text("mq_receive", errno));
    }
}

/// Whether this process may create a queue of `depth` messages of `size`
/// bytes; else why not.
std::string mq_refusal(std::uint64_t depth, std::size_t size) {
    const std::string name = cat("/", unique_name("mq_probe"));
    try {
        mq_handle q(mq_create(name, depth, size, O_RDWR));
        ::mq_unlink(name.c_str());
        return {};
    } catch (const std::system_error& e) {
        std::string why = e.what();
        const std::string msg_max = read_first_line("/proc/sys/fs/mqueue/msg_max");
        const int err = e.code().value();
        if (err == EINVAL)
            why.append(cat(" (fs.mqueue.msg_max is ", msg_max,
                           "; without CAP_SYS_RESOURCE mq_maxmsg may not exceed it: raise it, e.g. "
                           "sysctl fs.mqueue.msg_max=",
                           std::to_string(depth), ", to measure this depth)"));
        else if (err == EMFILE)
            why.append(" (RLIMIT_MSGQUEUE is too small for this depth)");
        return why;
    } catch (const std::exception& e) {
        return e.what();
    }
}

template <class M>
case_result mq_throughput(const std::string& what, std::uint64_t depth) {
    const std::uint64_t n = settings().messages;
    const std::string name = cat("/", unique_name("mq"));
    return run_pair(
        what,
        [&](parent_side& side) -> case_result {
            name_guard guard([name] { ::mq_unlink(name.c_str()); });
            mq_handle q(mq_create(name, depth, sizeof(M), O_RDONLY));
            side.created();
            if (std::string e = side.wait_ready(); !e.empty()) return failed(e);
            M m{};
            const auto t0 = side.open_gate();
            for (std::uint64_t next = 0; next < n; ++next) {
                mq_receive_one(q.get(), m);
                if (!intact(m, next)) return failed(mismatch(m, next));
            }
            const auto t1 = clock_type::now();
            side.stop();
            if (std::string e = side.finish(); !e.empty()) return failed(e);
            mq_attr attr{};
            if (::mq_getattr(q.get(), &attr) != 0) return failed(errno_text("mq_getattr", errno));
            if (attr.mq_curmsgs != 0) return failed("messages after the last one");
            return throughput_result(t0, t1, n, sizeof(M), side);
        },
        [&](child_side& side) -> std::string {
            side.wait_created();
            mq_handle q(mq_attach(name, O_WRONLY));
            side.arrive_and_wait();
            for (std::uint64_t i = 0; i < n; ++i) mq_send_one(q.get(), make_message<M>(i));
            return {};
        });
}

case_result mq_round_trips(const std::string& what) {
    using M = message<16>;
    const std::uint64_t warm = warmup_trips();
    const std::uint64_t timed = settings().round_trips;
    const std::string ping = cat("/", unique_name("mq_ping"));
    const std::string pong = cat("/", unique_name("mq_pong"));
    return run_pair(
        what,
        [&](parent_side& side) -> case_result {
            name_guard g1([ping] { ::mq_unlink(ping.c_str()); });
            name_guard g2([pong] { ::mq_unlink(pong.c_str()); });
            mq_handle out(mq_create(ping, 10, sizeof(M), O_WRONLY));
            mq_handle in(mq_create(pong, 10, sizeof(M), O_RDONLY));
            side.created();
            if (std::string e = side.wait_ready(); !e.empty()) return failed(e);
            std::vector<std::int64_t> ns;
            ns.reserve(static_cast<std::size_t>(timed));
            clock_type::time_point t0{};
            M back{};
            (void)side.open_gate();
            for (std::uint64_t i = 0; i < warm + timed; ++i) {
                if (i == warm) t0 = clock_type::now();
                const auto a = clock_type::now();
                mq_send_one(out.get(), make_message<M>(i));
                mq_receive_one(in.get(), back);
                const auto b = clock_type::now();
                if (!intact(back, i)) return failed(mismatch(back, i));
                if (i >= warm) ns.push_back(ns_between(a, b));
            }
            const auto t1 = clock_type::now();
            side.stop();
            if (std::string e = side.finish(); !e.empty()) return failed(e);
            return latency_result(t0, t1, std::move(ns), side);
        },
        [&](child_side& side) -> std::string {
            side.wait_created();
            mq_handle in(mq_attach(ping, O_RDONLY));
            mq_handle out(mq_attach(pong, O_WRONLY));
            side.arrive_and_wait();
            M m{};
            for (std::uint64_t i = 0; i < warm + timed; ++i) {
                mq_receive_one(in.get(), m);
                mq_send_one(out.get(), m);
            }
            return {};
        });
}

// ---------------------------------------------------- Boost message_queue

#if defined(CONQ_BENCH_HAVE_BOOST)

namespace bip = boost::interprocess;

template <class M>
case_result boost_throughput(const std::string& what, std::uint64_t depth) {
    const std::uint64_t n = settings().messages;
    const std::string name = unique_name("boost_mq");
    return run_pair(
        what,
        [&](parent_side& side) -> case_result {
            name_guard guard([name] { bip::message_queue::remove(name.c_str()); });
            bip::message_queue q(bip::create_only, name.c_str(),
                                 static_cast<bip::message_queue::size_type>(depth), sizeof(M));
            side.created();
            if (std::string e = side.wait_ready(); !e.empty()) return failed(e);
            M m{};
            bip::message_queue::size_type got = 0;
            unsigned int priority = 0;
            const auto t0 = side.open_gate();
            for (std::uint64_t next = 0; next < n; ++next) {
                q.receive(&m, sizeof m, got, priority);
                if (got != sizeof m)
                    return failed(cat("receive got ", std::to_string(got), " bytes"));
                if (!intact(m, next)) return failed(mismatch(m, next));
            }
            const auto t1 = clock_type::now();
            side.stop();
            if (std::string e = side.finish(); !e.empty()) return failed(e);
            if (q.get_num_msg() != 0) return failed("messages after the last one");
            return throughput_result(t0, t1, n, sizeof(M), side);
        },
        [&](child_side& side) -> std::string {
            side.wait_created();
            bip::message_queue q(bip::open_only, name.c_str());
            side.arrive_and_wait();
            for (std::uint64_t i = 0; i < n; ++i) {
                const M m = make_message<M>(i);
                q.send(&m, sizeof m, 0);
            }
            return {};
        });
}

#endif  // CONQ_BENCH_HAVE_BOOST

// ------------------------------------------------------------------- pipes

class pipe_pair {
public:
    pipe_pair() {
        if (::pipe2(fds_, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2", errno));
    }
    pipe_pair(const pipe_pair&) = delete;
    pipe_pair& operator=(const pipe_pair&) = delete;
    ~pipe_pair() {
        close_read();
        close_write();
    }
    [[nodiscard]] int read_end() const noexcept { return fds_[0]; }
    [[nodiscard]] int write_end() const noexcept { return fds_[1]; }
    void close_read() noexcept {
        if (fds_[0] >= 0) ::close(fds_[0]);
        fds_[0] = -1;
    }
    void close_write() noexcept {
        if (fds_[1] >= 0) ::close(fds_[1]);
        fds_[1] = -1;
    }

private:
    int fds_[2] = {-1, -1};
};

void write_all(int fd, const void* data, std::size_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error(errno_text("write", errno));
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

/// Reads exactly n bytes; false at end of file before the first byte.
bool read_all(int fd, void* data, std::size_t n) {
    auto* p = static_cast<char*>(data);
    std::size_t done = 0;
    while (done < n) {
        const ssize_t r = ::read(fd, p + done, n - done);
        if (r < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error(errno_text("read", errno));
        }
        if (r == 0) {
            if (done == 0) return false;
            throw std::runtime_error("read: end of file inside a message");
        }
        done += static_cast<std::size_t>(r);
    }
    return true;
}

template <class M>
case_result pipe_throughput(const std::string& what) {
    const std::uint64_t n = settings().messages;
    pipe_pair p;
    return run_pair(
        what,
        [&](parent_side& side) -> case_result {
            p.close_write();  // end of file once the child is done
            side.created();
            if (std::string e = side.wait_ready(); !e.empty()) return failed(e);
            M m{};
            const auto t0 = side.open_gate();
            for (std::uint64_t next = 0; next < n; ++next) {
                if (!read_all(p.read_end(), &m, sizeof m))
                    return failed(cat("end of file after ", std::to_string(next), " messages"));
                if (!intact(m, next)) return failed(mismatch(m, next));
            }
            const auto t1 = clock_type::now();
            side.stop();
            if (std::string e = side.finish(); !e.empty()) return failed(e);
            if (read_all(p.read_end(), &m, sizeof m)) return failed("a message after the last one");
            return throughput_result(t0, t1, n, sizeof(M), side);
        },
        [&](child_side& side) -> std::string {
            p.close_read();
            side.wait_created();
            side.arrive_and_wait();
            for (std::uint64_t i = 0; i < n; ++i) {
                const M m = make_message<M>(i);
                write_all(p.write_end(), &m, sizeof m);
            }
            return {};
        });
}

case_result pipe_round_trips(const std::string& what) {
    using M = message<16>;
    const std::uint64_t warm = warmup_trips();
    const std::uint64_t timed = settings().round_trips;
    pipe_pair ping;
    pipe_pair pong;
    return run_pair(
        what,
        [&](parent_side& side) -> case_result {
            ping.close_read();
            pong.close_write();
            side.created();
            if (std::string e = side.wait_ready(); !e.empty()) return failed(e);
            std::vector<std::int64_t> ns;
            ns.reserve(static_cast<std::size_t>(timed));
            clock_type::time_point t0{};
            M back{};
            (void)side.open_gate();
            for (std::uint64_t i = 0; i < warm + timed; ++i) {
                if (i == warm) t0 = clock_type::now();
                const auto a = clock_type::now();
                const M m = make_message<M>(i);
                write_all(ping.write_end(), &m, sizeof m);
                if (!read_all(pong.read_end(), &back, sizeof back))
                    return failed(cat("end of file at round trip ", std::to_string(i)));
                const auto b = clock_type::now();
                if (!intact(back, i)) return failed(mismatch(back, i));
                if (i >= warm) ns.push_back(ns_between(a, b));
            }
            const auto t1 = clock_type::now();
            side.stop();
            ping.close_write();
            if (std::string e = side.finish(); !e.empty()) return failed(e);
            return latency_result(t0, t1, std::move(ns), side);
        },
        [&](child_side& side) -> std::string {
            ping.close_write();
            pong.close_read();
            side.wait_created();
            side.arrive_and_wait();
            M m{};
            for (std::uint64_t i = 0; i < warm + timed; ++i) {
                if (!read_all(ping.read_end(), &m, sizeof m))
                    return cat("end of file at round trip ", std::to_string(i));
                write_all(pong.write_end(), &m, sizeof m);
            }
            return {};
        });
}

// ------------------------------------------------------------- registration

/// `run` gets the benchmark's name (for the watchdog's message).
void register_case(const std::string& name, const std::string& label,
                   std::function<case_result(const std::string&)> run) {
    common(benchmark::RegisterBenchmark(
               name.c_str(),
               [=](benchmark::State& state) {
                   case_result r;
                   for (auto _ : state) {
                       try {
                           r = run(name);
                       } catch (const std::exception& e) {
                           r = failed(e.what());
                       }
                       if (!r.error.empty()) {
                           fail(state, cat(name, ": ", r.error));
                           break;
                       }
                       state.SetIterationTime(r.seconds);
                   }
                   if (!r.error.empty()) return;
                   state.SetItemsProcessed(static_cast<std::int64_t>(r.messages));
                   if (r.bytes != 0) state.SetBytesProcessed(static_cast<std::int64_t>(r.bytes));
                   for (const auto& [key, value] : r.counters) state.counters[key] = value;
                   state.SetLabel(label);
               }),
           benchmark::kMillisecond);
}

/// Why the larger POSIX mq depth was left out (empty when it was not).
std::string& mq_note() {
    static std::string note;
    return note;
}

template <class M>
void register_size() {
    const config& c = settings();
    const std::string size = cat(std::to_string(sizeof(M)), "B");
    const std::string cap = std::to_string(c.capacity);
    const std::string batch = std::to_string(c.batch);
    register_case(
        cat("conq_spsc_spin/", size, "/try_push_pop"),
        cat("spsc_ring<shared_memory, spin>, capacity ", cap,
            ", handle try_push/try_pop, spinning"),
        [](const std::string& n) { return conq_throughput<spin_ring<M>>(n, conq_mode::try_ops); });
    register_case(cat("conq_spsc_spin/", size, "/push_pop"),
                  cat("spsc_ring<shared_memory, spin>, capacity ", cap, ", handle push/pop"),
                  [](const std::string& n) {
                      return conq_throughput<spin_ring<M>>(n, conq_mode::handle_ops);
                  });
    register_case(cat("conq_spsc_blocking/", size, "/push_pop"),
                  cat("spsc_ring<shared_memory, blocking>, capacity ", cap, ", handle push/pop"),
                  [](const std::string& n) {
                      return conq_throughput<blocking_ring<M>>(n, conq_mode::handle_ops);
                  });
    register_case(
        cat("conq_spsc_batch/", size, "/try_n", batch),
        cat("spsc_ring<shared_memory, spin>, capacity ", cap, ", try_push_n/try_pop_n of ", batch),
        [](const std::string& n) { return conq_throughput<spin_ring<M>>(n, conq_mode::batch); });

    std::vector<std::uint64_t> depths{10};
    if (c.peer_depth != 10) depths.push_back(c.peer_depth);
#if defined(CONQ_BENCH_HAVE_BOOST)
    for (std::uint64_t d : depths) {
        const std::string ds = std::to_string(d);
        register_case(cat("boost_message_queue/", size, "/depth", ds),
                      cat("boost::interprocess::message_queue, max_num_msg ", ds, ", send/receive"),
                      [d](const std::string& n) { return boost_throughput<M>(n, d); });
    }
#endif
    for (std::uint64_t d : depths) {
        const std::string ds = std::to_string(d);
        if (std::string why = mq_refusal(d, sizeof(M)); !why.empty()) {
            std::string& note = mq_note();
            if (!note.empty()) note.append("; ");
            note.append(cat("posix_mq/", size, "/depth", ds, " left out: ", why));
            continue;
        }
        register_case(cat("posix_mq/", size, "/depth", ds),
                      cat("POSIX mq, mq_maxmsg ", ds, ", mq_send/mq_receive"),
                      [d](const std::string& n) { return mq_throughput<M>(n, d); });
    }
    register_case(cat("pipe/", size, "/write_read"),
                  cat("pipe, one write()/read() of ", size, " per message"),
                  [](const std::string& n) { return pipe_throughput<M>(n); });
}

void register_benchmarks() {
    for (int s : settings().sizes) {
        if (s == 16) register_size<message<16>>();
        if (s == 64) register_size<message<64>>();
    }
    register_case(
        "rtt_conq_spsc_spin/16B", "two spsc_ring<shared_memory, spin>, try_push/try_pop, spinning",
        [](const std::string& n) { return conq_round_trips<spin_ring<message<16>>>(n, true); });
    register_case("rtt_conq_spsc_blocking/16B",
                  "two spsc_ring<shared_memory, blocking>, handle push/pop",
                  [](const std::string& n) {
                      return conq_round_trips<blocking_ring<message<16>>>(n, false);
                  });
    if (std::string why = mq_refusal(10, sizeof(message<16>)); why.empty()) {
        register_case("rtt_posix_mq/16B", "two POSIX mqs, mq_maxmsg 10, mq_send/mq_receive",
                      [](const std::string& n) { return mq_round_trips(n); });
    } else {
        std::string& note = mq_note();
        if (!note.empty()) note.append("; ");
        note.append(cat("rtt_posix_mq/16B left out: ", why));
    }
    register_case("rtt_pipe/16B", "two pipes, one write()/read() of 16 B per message",
                  [](const std::string& n) { return pipe_round_trips(n); });
}

void add_context() {
    const config& c = settings();
    std::vector<std::string> peers{"POSIX mq", "pipe"};
#if defined(CONQ_BENCH_HAVE_BOOST)
    peers.insert(peers.begin(), cat("Boost.Interprocess ", std::to_string(BOOST_VERSION / 100000),
                                    ".", std::to_string(BOOST_VERSION / 100 % 1000), ".",
                                    std::to_string(BOOST_VERSION % 100)));
#endif
    std::vector<int> pinned;
    if (side_cpu(0) >= 0) pinned = {side_cpu(0), side_cpu(1)};
    add_common_context(pinned);
    std::vector<std::string> sizes;
    for (int s : c.sizes) sizes.push_back(std::to_string(s));
    benchmark::AddCustomContext("conq_ipc_messages", std::to_string(c.messages));
    benchmark::AddCustomContext("conq_ipc_round_trips", std::to_string(c.round_trips));
    benchmark::AddCustomContext("conq_ipc_warmup_trips", std::to_string(warmup_trips()));
    benchmark::AddCustomContext("conq_ipc_capacity", std::to_string(c.capacity));
    benchmark::AddCustomContext("conq_ipc_peer_depth", std::to_string(c.peer_depth));
    benchmark::AddCustomContext("conq_ipc_batch", std::to_string(c.batch));
    benchmark::AddCustomContext("conq_ipc_sizes", join(sizes, ","));
    benchmark::AddCustomContext("conq_ipc_pinning",
                                pinned.empty()
                                    ? "unpinned"
                                    : cat("consumer (parent) on CPU ", std::to_string(pinned[0]),
                                          ", producer (child) on CPU ", std::to_string(pinned[1])));
    benchmark::AddCustomContext("conq_mq_msg_max", read_first_line("/proc/sys/fs/mqueue/msg_max"));
    rlimit rl{};
    if (::getrlimit(RLIMIT_MSGQUEUE, &rl) == 0)
        benchmark::AddCustomContext("conq_rlimit_msgqueue", rl.rlim_cur == RLIM_INFINITY
                                                                ? std::string("unlimited")
                                                                : std::to_string(rl.rlim_cur));
    benchmark::AddCustomContext("conq_ipc_note", mq_note().empty() ? "none" : mq_note());
    struct utsname u {};
    if (::uname(&u) == 0) benchmark::AddCustomContext("conq_kernel", u.release);
    benchmark::AddCustomContext("conq_peers", join(peers, ", "));
}

}  // namespace
}  // namespace conq_bench

int main(int argc, char** argv) {
    conq_bench::program_name = "conq_ipc_bench";
    conq_bench::read_settings(argc, argv);
    conq_bench::register_benchmarks();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    conq_bench::add_context();
    if (!conq_bench::mq_note().empty())
        std::fprintf(stderr, "%s: %s\n", conq_bench::program_name, conq_bench::mq_note().c_str());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    conq_bench::live_names().remove_all();
    return conq_bench::any_failed.load() ? 1 : 0;
}

// benchmarks/broker.bench.cpp
//
// conq_broker_bench: the three parts of conq::broker, and ZeroMQ's in-process
// sockets as the peer for pub/sub, all in one run so every ratio comes from
// the same machine at the same moment.
//
// Benchmarks (N = --conq_messages, default 2,000,000; payloads are 16-byte
// trivially copyable values unless stated):
//
//   work/cycle/workers:W        W threads each loop put -> try_reserve ->
//                               remove on one in-memory queue of a shared
//                               conq::work_queues (W = 1, 2); items are
//                               cycles, N in all
//   work/cycle_durable/workers:1  the same on a durable work_queues
//                               (sync::none) in the scratch directory
//   pubsub/conq/subs:S          one publisher publishes N messages on
//                               "bench.tick"; S subscriptions to "bench.*"
//                               (capacity 1024, overflow block) each take
//                               all N in batches (next_n, up to 256); items
//                               are messages delivered: N x S
//   pubsub/zmq_pubsub/subs:S    ZeroMQ inproc: an XPUB socket with
//                               ZMQ_XPUB_NODROP (a full subscriber makes
//                               the publisher wait, as overflow block), S
//                               SUB sockets subscribed to "bench.", high-
//                               water marks 1024, each message one 16-byte
//                               frame prefixed by its 10-byte topic "bench.tick"
//                               as ZeroMQ topic matching needs; items as above
//   pubsub/zmq_pushpull/pulls:1 ZeroMQ inproc PUSH -> PULL, N messages, the
//                               socket pair without topic matching
//   stream/append/memory        one thread appends N unkeyed records to an
//                               in-memory stream of 4 partitions
//   stream/append_keyed/memory  the same with 16 distinct keys
//   stream/consume/memory       one group member polls (batches of 1024)
//                               N records appended beforehand (not timed)
//   stream/append/durable       stream/append on a durable stream (sync::none,
//                               64 MiB segments) in the scratch directory
//   stream/log_append/durable   conq::durable_log::append of the same
//                               records (the encoding the stream writes),
//                               the durable stream's own limit
//
// Time runs from the first call to the last (manual time, one run per
// repetition); the threads start together. Setting up and tearing down are
// not timed.
//
// Settings: --conq_messages=N (CONQ_BENCH_BROKER_MESSAGES),
// --conq_dir=PATH (CONQ_BENCH_DIR, default /tmp) for the durable cases,
// --conq_timeout_s=S (CONQ_BENCH_TIMEOUT_S, default 120), --conq_pin=1
// (CONQ_BENCH_PIN; default 0: unpinned) pins thread 0 to the first allowed
// CPU and every other thread to the second.
#include "bench_common.hpp"

#include <conq/broker/broker.hpp>

#if defined(CONQ_BENCH_HAVE_ZMQ)
#include <zmq.h>
#endif

#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

namespace conq_bench {
namespace {

struct tick {
    std::array<char, 16> bytes{};
};

struct config {
    std::uint64_t messages = 2'000'000;
    std::string dir = "/tmp";
    int timeout_s = 120;
    bool pin = false;
};

config& settings() {
    static config c;
    return c;
}

void read_settings(int& argc, char** argv) {
    read_flags(argc, argv,
               {{"messages", "CONQ_BENCH_BROKER_MESSAGES"}, {"dir", "CONQ_BENCH_DIR"},
                {"timeout_s", "CONQ_BENCH_TIMEOUT_S"}, {"pin", "CONQ_BENCH_PIN"}},
               [](const std::string& k, const std::string& v) {
                   config& c = settings();
                   if (k == "messages") c.messages = parse_count("--conq_messages", v, 1000);
                   else if (k == "dir") c.dir = v;
                   else if (k == "timeout_s") c.timeout_s = static_cast<int>(parse_count("--conq_timeout_s", v, 1));
                   else if (k == "pin") c.pin = parse_count("--conq_pin", v, 0) != 0;
                   else return false;
                   return true;
               });
}

/// A fresh scratch directory, removed when it goes.
struct scratch {
    std::filesystem::path path;
    scratch() {
        path = std::filesystem::path(settings().dir) /
               cat("conq-broker-bench-", std::to_string(::getpid()));
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~scratch() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// Runs `body(thread index)` on `threads` threads started together; the
/// time from the gate's opening to the last thread's end.
template <class Body>
double run_threads(int threads, const std::string& what, Body body) {
    start_gate gate(threads);
    finish_line finish(threads, settings().timeout_s);
    std::vector<std::thread> ts;
    const std::vector<int> cpus = allowed_cpus();
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            // Thread 0 (the publisher, the appender, the first worker) on the
            // first CPU, the others on the second, when there are two.
            if (settings().pin && cpus.size() >= 2) pin_this_thread(cpus[t == 0 ? 0 : 1]);
            gate.arrive_and_wait();
            body(t);
            finish.cross();
        });
    const auto t0 = gate.open();
    finish.wait_or_abort(what);
    const double s = seconds_since(t0);
    for (auto& t : ts) t.join();
    return s;
}

template <class Run>
void register_case(const std::string& name, Run run) {
    common(benchmark::RegisterBenchmark(name.c_str(),
                                        [=](benchmark::State& state) {
                                            std::uint64_t items = 0;
                                            for (auto _ : state) {
                                                const auto [secs, n] = run();
                                                if (secs < 0) {
                                                    fail(state, cat(name, ": check failed"));
                                                    break;
                                                }
                                                state.SetIterationTime(secs);
                                                items += n;
                                            }
                                            state.SetItemsProcessed(static_cast<std::int64_t>(items));
                                        }),
           benchmark::kMillisecond);
}

using result = std::pair<double, std::uint64_t>;

// ------------------------------------------------------------- work queues

template <class WQ>
result work_cycles(WQ& wq, int workers) {
    const std::uint64_t per = settings().messages / static_cast<std::uint64_t>(workers);
    std::atomic<bool> ok{true};
    const double s = run_threads(workers, "work/cycle", [&](int) {
        auto c = wq.make_consumer({"bench"});
        for (std::uint64_t i = 0; i < per; ++i) {
            wq.put("bench", tick{});
            auto j = c.try_reserve();
            // Another worker may have taken the job just put; take the next.
            while (!j) j = c.try_reserve();
            j->remove();
        }
    });
    if (wq.stats().ready != 0 || wq.stats().reserved != 0) ok = false;
    return {ok ? s : -1.0, per * static_cast<std::uint64_t>(workers)};
}

// ----------------------------------------------------------------- pub/sub

result conq_pubsub(int subs) {
    const std::uint64_t n = settings().messages;
    conq::topics<tick> t;
    std::vector<conq::topics<tick>::subscription> ss;
    for (int i = 0; i < subs; ++i) ss.push_back(t.subscribe("bench.*", {.capacity = 1024}));
    std::atomic<bool> ok{true};
    const double s = run_threads(subs + 1, "pubsub/conq", [&](int k) {
        if (k == 0) {
            for (std::uint64_t i = 0; i < n; ++i) t.publish("bench.tick", tick{});
            return;
        }
        auto& sub = ss[static_cast<std::size_t>(k - 1)];
        std::vector<conq::message<tick>> batch;
        std::uint64_t got = 0;
        while (got < n) {
            batch.clear();
            if (sub.next_n(batch, 256) == 0) {
                auto m = sub.next();
                if (!m) break;
                ++got;
                continue;
            }
            got += batch.size();
        }
        if (got != n) ok = false;
    });
    return {ok ? s : -1.0, n * static_cast<std::uint64_t>(subs)};
}

#if defined(CONQ_BENCH_HAVE_ZMQ)
result zmq_pubsub(int subs) {
    const std::uint64_t n = settings().messages;
    void* ctx = zmq_ctx_new();
    void* pub = zmq_socket(ctx, ZMQ_XPUB);
    const int hwm = 1024, one = 1;
    zmq_setsockopt(pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(pub, ZMQ_XPUB_NODROP, &one, sizeof one);
    // Pass every SUB's subscription up (XPUB forwards duplicates only when
    // verbose), so the wait below sees all of them.
    zmq_setsockopt(pub, ZMQ_XPUB_VERBOSE, &one, sizeof one);
    zmq_bind(pub, "inproc://bench");
    std::vector<void*> ss;
    for (int i = 0; i < subs; ++i) {
        void* s = zmq_socket(ctx, ZMQ_SUB);
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_connect(s, "inproc://bench");
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "bench.", 6);
        ss.push_back(s);
    }
    // Every subscription has reached the publisher before the clock starts.
    for (int i = 0; i < subs; ++i) {
        char buf[32];
        zmq_recv(pub, buf, sizeof buf, 0);
    }
    std::atomic<bool> ok{true};
    const double s = run_threads(subs + 1, "pubsub/zmq", [&](int k) {
        char msg[10 + 16];
        if (k == 0) {
            std::memcpy(msg, "bench.tick", 10);
            std::memset(msg + 10, 0, 16);
            for (std::uint64_t i = 0; i < n; ++i) {
                while (zmq_send(pub, msg, sizeof msg, 0) < 0) {
                    if (zmq_errno() != EAGAIN) {
                        ok = false;
                        return;
                    }
                }
            }
            return;
        }
        void* sub = ss[static_cast<std::size_t>(k - 1)];
        for (std::uint64_t i = 0; i < n; ++i)
            if (zmq_recv(sub, msg, sizeof msg, 0) != static_cast<int>(sizeof msg)) {
                ok = false;
                return;
            }
    });
    for (void* q : ss) zmq_close(q);
    zmq_close(pub);
    zmq_ctx_term(ctx);
    return {ok ? s : -1.0, n * static_cast<std::uint64_t>(subs)};
}

result zmq_pushpull() {
    const std::uint64_t n = settings().messages;
    void* ctx = zmq_ctx_new();
    void* push = zmq_socket(ctx, ZMQ_PUSH);
    void* pull = zmq_socket(ctx, ZMQ_PULL);
    const int hwm = 1024;
    zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_bind(pull, "inproc://bench-pp");
    zmq_connect(push, "inproc://bench-pp");
    std::atomic<bool> ok{true};
    const double s = run_threads(2, "pubsub/zmq_pushpull", [&](int k) {
        char msg[16] = {};
        for (std::uint64_t i = 0; i < n; ++i) {
            const int r = k == 0 ? zmq_send(push, msg, sizeof msg, 0) : zmq_recv(pull, msg, sizeof msg, 0);
            if (r != static_cast<int>(sizeof msg)) {
                ok = false;
                return;
            }
        }
    });
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    return {ok ? s : -1.0, n};
}
#endif

// ----------------------------------------------------------------- streams

template <class Streams>
result stream_append(Streams& ss, bool keyed) {
    const std::uint64_t n = settings().messages;
    auto& s = ss.create("bench", {.partitions = 4});
    static const std::array<std::string, 16> keys = [] {
        std::array<std::string, 16> k;
        for (std::size_t i = 0; i < k.size(); ++i) k[i] = cat("key-", std::to_string(i));
        return k;
    }();
    const double secs = run_threads(1, "stream/append", [&](int) {
        if (keyed)
            for (std::uint64_t i = 0; i < n; ++i) s.append(keys[i & 15], tick{});
        else
            for (std::uint64_t i = 0; i < n; ++i) s.append(tick{});
    });
    std::uint64_t total = 0;
    for (std::uint32_t p = 0; p < s.partitions(); ++p) total += s.end_offset(p) - s.begin_offset(p);
    return {total == n ? secs : -1.0, n};
}

result stream_consume() {
    const std::uint64_t n = settings().messages;
    conq::streams<tick> ss;
    auto& s = ss.create("bench", {.partitions = 4});
    for (std::uint64_t i = 0; i < n; ++i) s.append(tick{});
    auto c = s.join("readers");
    std::uint64_t got = 0;
    const double secs = run_threads(1, "stream/consume", [&](int) {
        std::vector<conq::stream_record<tick>> batch;
        while (got < n) {
            batch.clear();
            if (c.poll(batch, 1024, std::chrono::seconds(1)) == 0) break;
            got += batch.size();
        }
    });
    return {got == n ? secs : -1.0, n};
}

result log_append() {
    const std::uint64_t n = settings().messages;
    scratch dir;
    conq::durable_log log(dir.path / "log", {});
    std::string rec;
    conq::codec<tick>::encode(tick{}, rec);
    const double secs = run_threads(1, "stream/log_append", [&](int) {
        for (std::uint64_t i = 0; i < n; ++i) log.append(std::string_view(rec));
    });
    return {log.end_offset() == n ? secs : -1.0, n};
}

void register_benchmarks() {
    for (int w : {1, 2})
        register_case(cat("work/cycle/workers:", std::to_string(w)), [w] {
            conq::work_queues<tick> wq;
            return work_cycles(wq, w);
        });
    register_case("work/cycle_durable/workers:1", [] {
        scratch dir;
        conq::work_queues<tick> wq(dir.path / "jobs", {});
        return work_cycles(wq, 1);
    });
    for (int s : {1, 4}) {
        register_case(cat("pubsub/conq/subs:", std::to_string(s)), [s] { return conq_pubsub(s); });
#if defined(CONQ_BENCH_HAVE_ZMQ)
        register_case(cat("pubsub/zmq_pubsub/subs:", std::to_string(s)), [s] { return zmq_pubsub(s); });
#endif
    }
#if defined(CONQ_BENCH_HAVE_ZMQ)
    register_case("pubsub/zmq_pushpull/pulls:1", [] { return zmq_pushpull(); });
#endif
    register_case("stream/append/memory", [] {
        conq::streams<tick> ss;
        return stream_append(ss, false);
    });
    register_case("stream/append_keyed/memory", [] {
        conq::streams<tick> ss;
        return stream_append(ss, true);
    });
    register_case("stream/consume/memory", [] { return stream_consume(); });
    register_case("stream/append/durable", [] {
        scratch dir;
        conq::streams<tick> ss(dir.path / "streams", {});
        return stream_append(ss, false);
    });
    register_case("stream/log_append/durable", [] { return log_append(); });
}

}  // namespace
}  // namespace conq_bench

int main(int argc, char** argv) {
    conq_bench::program_name = "conq_broker_bench";
    conq_bench::read_settings(argc, argv);
    conq_bench::register_benchmarks();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    conq_bench::add_common_context({});
    benchmark::AddCustomContext("conq_broker_messages", std::to_string(conq_bench::settings().messages));
#if defined(CONQ_BENCH_HAVE_ZMQ)
    int major = 0, minor = 0, patch = 0;
    zmq_version(&major, &minor, &patch);
    benchmark::AddCustomContext("conq_zmq_version", conq_bench::cat(std::to_string(major), ".",
                                                                     std::to_string(minor), ".",
                                                                     std::to_string(patch)));
#endif
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return conq_bench::any_failed.load() ? 1 : 0;
}

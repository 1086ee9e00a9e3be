// Kill -9 of a process using conq::durable_queue (sync::always).
//
// The child pushes, pops and acks from two threads and reports over a pipe
// each push and each ack once it has returned (then it is durable). The
// parent kills it at a random moment and reopens the queue:
//   - no message whose ack was reported is delivered again;
//   - every message whose push was reported and whose ack was not is
//     delivered again (it was in flight or never popped);
//   - every delivered message is byte-exact.
// The directory carries over between iterations (the parent acks everything
// it drains, so each round starts from an empty queue with history).
#include "conq_catch.hpp"
#include "kill9.hpp"
#include "stress_config.hpp"
#include "temp_dir.hpp"

#include <conq/durable/queue.hpp>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

std::string body(std::uint64_t id_hint) {
    return "job-" + std::to_string(id_hint) + std::string(id_hint % 97, static_cast<char>('a' + id_hint % 26));
}

conq::durable_options opts() {
    conq::durable_options o;
    o.segment_size = 64 << 10;
    o.max_record_size = 4096;
    o.sync = conq::sync::always;
    return o;
}

// Reports: an id with bit 63 set was acked (ack returned), with bit 62 set
// is about to be acked (if the kill comes during the ack, either outcome is
// right), with neither was pushed (push returned).
constexpr std::uint64_t ack_flag = std::uint64_t{1} << 63;
constexpr std::uint64_t intent_flag = std::uint64_t{1} << 62;

[[noreturn]] void child(const std::filesystem::path& dir, int fd) {
    try {
        conq::durable_queue q(dir, opts());
        std::mutex report_mu;
        auto report = [&](std::uint64_t v) {
            std::lock_guard<std::mutex> g(report_mu);
            if (::write(fd, &v, sizeof v) != sizeof v) ::_exit(3);
        };
        std::thread producer([&] {
            for (std::uint64_t n = 0;; ++n) {
                // The body names the id it will get: ids are assigned in push
                // order and only this thread pushes.
                const std::uint64_t id = q.messages().end_offset();
                if (q.push(body(id)) != id) ::_exit(4);
                report(id);
            }
        });
        std::thread consumer([&] {
            std::mt19937 rng(7);
            for (;;) {
                auto m = q.pop();
                if (!m) continue;
                if (m->text() != body(m->id)) ::_exit(5);
                if (rng() % 4 == 0) continue;  // left in flight
                report(m->id | intent_flag);
                q.ack(m->id);
                report(m->id | ack_flag);
            }
        });
        producer.join();
        consumer.join();
    } catch (...) {
        ::_exit(2);
    }
    ::_exit(0);
}

}  // namespace

TEST_CASE("durable_queue survives SIGKILL: unacked messages come back, acked never", "[crash][queue]") {
    conq_test::temp_dir dir("conq-qkill");
    const auto qdir = dir.path() / "queue";
    std::mt19937_64 rng(99);
    const std::size_t iterations = 60 * conq_test::stress_scale();
    std::uint64_t redelivered_total = 0;
    for (std::size_t it = 0; it < iterations; ++it) {
        INFO("iteration " << it);
        const auto killed = conq_test::kill_after(std::chrono::microseconds(2000 + rng() % 30000), [&](int fd) {
            return conq_test::fork_child([&] { child(qdir, fd); });
        });

        std::set<std::uint64_t> pushed, acked, maybe_acked;
        for (const std::uint64_t v : killed.reports) {
            if (v & ack_flag) acked.insert(v & ~ack_flag);
            else if (v & intent_flag) maybe_acked.insert(v & ~intent_flag);
            else pushed.insert(v);
        }

        auto o = opts();
        o.prefault = false;
        conq::durable_queue q(qdir, o);
        std::set<std::uint64_t> delivered;
        while (auto m = q.try_pop()) {
            REQUIRE(m->text() == body(m->id));
            REQUIRE_FALSE(acked.count(m->id));  // acked never returns
            delivered.insert(m->id);
            q.ack(m->id);
        }
        for (const std::uint64_t id : pushed)
            if (!maybe_acked.count(id)) {
                INFO("message " << id);
                REQUIRE(delivered.count(id));  // pushed and not acked: back again
            }
        redelivered_total += delivered.size();
    }
    CHECK(redelivered_total > 0);
}

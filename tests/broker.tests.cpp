// Unit tests of the facade conq::broker (include/conq/broker/broker.hpp):
// the three parts share one clock; drain() stops new work but not
// consumers; await_idle() waits for every part; close() wakes the waiters
// of every part; every rejected call is a broker_error that changes
// nothing; a durable broker restarts with its jobs in every state, its
// streams, and its committed offsets. The parts themselves are tested in
// broker_work_queue, broker_topic and broker_stream. No test sleeps.
#include <catch2/catch.hpp>

#include "temp_dir.hpp"
#include "watchdog.hpp"

#include <conq/broker/broker.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using conq::broker_errc;
using conq_test::temp_dir;

namespace {

using broker_t = conq::broker<std::string, conq::manual_clock>;

template <class F>
broker_errc error_of(F&& f) {
    try {
        f();
    } catch (const conq::broker_error& e) {
        CHECK(e.code().category() == conq::broker_category());
        CHECK(e.code() == conq::make_error_code(e.errc()));
        return e.errc();
    }
    FAIL("no broker_error was thrown");
    return broker_errc::closed;
}

/// Waits (yielding, under a watchdog) until `ready()`.
template <class Ready>
void wait_for(Ready ready) {
    const auto give_up = std::chrono::steady_clock::now() + 30s;
    while (!ready()) {
        REQUIRE(std::chrono::steady_clock::now() < give_up);
        std::this_thread::yield();
    }
}

}  // namespace

TEST_CASE("broker: the three parts share the broker's clock", "[broker]") {
    conq::manual_clock clock;
    broker_t b(clock);
    CHECK(&b.clock() == &clock);
    CHECK(&b.work().clock() == &clock);
    CHECK(&b.pubsub().clock() == &clock);
    CHECK(&b.logs().clock() == &clock);

    b.put("q", "later", {.delay = 10s});
    CHECK_FALSE(b.try_reserve({"q"}));
    clock.advance(10s);
    auto j = b.try_reserve({"q"});
    REQUIRE(j);
    CHECK(j->payload() == "later");
    j->remove();

    auto sub = b.subscribe("a.b");
    std::optional<conq::message<std::string>> got;
    std::thread t([&] { got = sub.next_for(5s); });
    wait_for([&] { return sub.stats().waiting_consumers == 1; });
    clock.advance(5s);  // the subscription's time-out is on the same clock
    t.join();
    CHECK_FALSE(got);
}

TEST_CASE("broker: forwards the common calls of each part", "[broker]") {
    conq::manual_clock clock;
    broker_t b(clock);
    const auto id = b.put("emails", "hi", {.priority = 3});
    CHECK(b.peek(id).priority == 3u);
    CHECK(b.peek_ready("emails")->id == id);
    CHECK(b.queue_stats_of("emails")->ready == 1u);
    auto w = b.make_consumer({"emails"});
    auto j = w.try_reserve();
    REQUIRE(j);
    j->bury();
    CHECK(b.peek_buried("emails")->id == id);
    CHECK(b.kick("emails", 5) == 1u);
    b.pause("emails", 1s);
    CHECK_FALSE(w.try_reserve());
    clock.advance(1s);
    CHECK(w.try_reserve());  // released again when the handle goes
    CHECK(b.purge("emails") == 1u);

    auto s = b.subscribe("orders.#");
    CHECK(b.publish("orders.eu.created", "#1") == 1u);
    CHECK(s.try_next()->payload() == "#1");

    auto& st = b.create_stream("clicks", {.partitions = 2});
    CHECK(&b.get_stream("clicks") == &st);
    const auto at = st.append("user-1", "x");
    CHECK(st.end_offset(at.partition) == 1u);

    const auto stats = b.stats();
    CHECK(stats.work.total_jobs == 1u);
    CHECK(stats.pubsub.published == 1u);
    CHECK(stats.streams == 1u);
}

TEST_CASE("broker: drain() refuses new work and lets consumers finish", "[broker]") {
    conq::manual_clock clock;
    broker_t b(clock);
    b.put("q", "queued");
    auto sub = b.subscribe("x");
    b.publish("x", "queued");
    b.drain();

    CHECK(error_of([&] { b.put("q", "late"); }) == broker_errc::draining);
    CHECK(error_of([&] { b.publish("x", "late"); }) == broker_errc::draining);
    CHECK(error_of([&] { (void)b.request("x", "late", 1s); }) == broker_errc::draining);
    CHECK(error_of([&] { b.create_stream("s"); }) == broker_errc::draining);
    CHECK(b.stats().work.total_jobs == 1u);

    auto j = b.try_reserve({"q"});
    REQUIRE(j);
    CHECK(j->payload() == "queued");
    j->remove();
    CHECK(sub.try_next()->payload() == "queued");
    CHECK(b.await_idle(0s));
}

TEST_CASE("broker: await_idle waits for every part", "[broker]") {
    conq::manual_clock clock;
    broker_t b(clock);
    auto sub = b.subscribe("news");
    auto& st = b.create_stream("log");
    auto reader = st.join("g");
    b.put("q", "job");
    b.publish("news", "item");
    st.append("record");
    CHECK_FALSE(b.await_idle(0s));

    std::atomic<bool> idle{false};
    std::thread waiter([&] { idle = b.await_idle(1h); });

    auto j = b.try_reserve({"q"});
    REQUIRE(j);
    j->remove();
    CHECK_FALSE(idle.load());
    REQUIRE(sub.try_next());
    CHECK_FALSE(idle.load());
    std::vector<conq::stream_record<std::string>> batch;
    REQUIRE(reader.poll(batch, 10, 0s) == 1u);
    reader.commit();  // the group has consumed everything: idle
    waiter.join();
    CHECK(idle.load());
}

TEST_CASE("broker: await_idle gives up when its time-out passes on the clock", "[broker]") {
    conq::manual_clock clock;
    broker_t b(clock);
    b.put("q", "never taken");
    const auto start = clock.now();
    std::atomic<int> result{-1};
    std::thread waiter([&] { result = b.await_idle(5s) ? 1 : 0; });
    // The waiter reads the clock when it starts: move time in small steps
    // until it gives up, and check that it did not give up early.
    while (result.load() == -1) {
        clock.advance(100ms);
        std::this_thread::yield();
    }
    waiter.join();
    CHECK(result.load() == 0);
    CHECK(clock.now() - start >= 5s);
}

TEST_CASE("broker: close() wakes the waiters of every part", "[broker]") {
    conq::manual_clock clock;
    broker_t b(clock);
    auto w = b.make_consumer({"q"});
    auto sub = b.subscribe("s");
    auto& st = b.create_stream("log");
    auto reader = st.join("g");

    std::atomic<int> woken{0};
    conq::reserve_status status = conq::reserve_status::reserved;
    std::thread t1([&] {
        status = w.reserve().status;
        ++woken;
    });
    std::thread t2([&] {
        CHECK_FALSE(sub.next());
        ++woken;
    });
    std::thread t3([&] {
        std::vector<conq::stream_record<std::string>> batch;
        CHECK(reader.poll(batch, 10, 1h) == 0u);
        ++woken;
    });
    wait_for([&] {
        return b.work().stats().waiting == 1 && sub.stats().waiting_consumers == 1 &&
               st.stats().waiting_polls == 1;
    });
    b.close();
    t1.join();
    t2.join();
    t3.join();
    CHECK(woken.load() == 3);
    CHECK(status == conq::reserve_status::closed);
    CHECK(b.closed());
    CHECK(error_of([&] { b.put("q", "x"); }) == broker_errc::closed);
    CHECK(error_of([&] { b.publish("s", "x"); }) == broker_errc::closed);
    CHECK(error_of([&] { st.append("x"); }) == broker_errc::closed);
}

TEST_CASE("broker: bad input is a broker_error and changes nothing", "[broker]") {
    conq::manual_clock clock;
    broker_t b(clock, {.work = {.max_payload = 8}, .topics = {.max_payload = 8}});
    b.put("q", "ok");
    auto sub = b.subscribe("a.*");
    const auto before = b.stats();

    CHECK(error_of([&] { b.put("", "x"); }) == broker_errc::invalid_name);
    CHECK(error_of([&] { b.put("-q", "x"); }) == broker_errc::invalid_name);
    CHECK(error_of([&] { b.put("q", "123456789"); }) == broker_errc::payload_too_large);
    CHECK(error_of([&] { b.put("q", "x", {.ttr = 0s}); }) == broker_errc::invalid_argument);
    CHECK(error_of([&] { b.remove(12345); }) == broker_errc::unknown_job);
    CHECK(error_of([&] { (void)b.peek(12345); }) == broker_errc::unknown_job);
    CHECK(error_of([&] { b.pause("nope", 1s); }) == broker_errc::unknown_queue);
    CHECK(error_of([&] { (void)b.subscribe("a*"); }) == broker_errc::invalid_pattern);
    CHECK(error_of([&] { b.publish("a.#", "x"); }) == broker_errc::invalid_name);
    CHECK(error_of([&] { b.publish("a.b", "123456789"); }) == broker_errc::payload_too_large);
    CHECK(error_of([&] { b.create_stream("s", {.partitions = 0}); }) == broker_errc::invalid_argument);
    CHECK(error_of([&] { (void)b.get_stream("nope"); }) == broker_errc::unknown_stream);

    const auto after = b.stats();
    CHECK(after.work.total_jobs == before.work.total_jobs);
    CHECK(after.work.ready == 1u);
    CHECK(after.work.next_id == before.work.next_id);
    CHECK(after.pubsub.published == before.pubsub.published);
    CHECK(after.streams == 0u);
    CHECK(sub.size() == 0u);
}

TEST_CASE("broker durable: a restart keeps jobs in every state, streams and committed offsets",
          "[broker][durable]") {
    temp_dir dir("conq-broker");
    conq::manual_clock clock;
    std::int64_t wall_ns = 1'700'000'000'000'000'000;
    conq::broker_options opts;
    opts.durable.segment_size = 1 << 20;
    opts.durable.max_record_size = 1 << 16;
    opts.durable.prefault = false;
    opts.durable.wall_clock = [&] {
        return std::chrono::system_clock::time_point(std::chrono::nanoseconds(wall_ns));
    };
    conq::job_id ready = 0, delayed = 0, buried = 0, reserved = 0, removed = 0;
    {
        broker_t b(dir.path() / "live", clock, opts);
        ready = b.put("jobs", "ready", {.priority = 7});
        delayed = b.put("jobs", "delayed", {.delay = 60s});
        buried = b.put("jobs", "buried", {.priority = 0});
        reserved = b.put("jobs", "reserved", {.priority = 1});
        removed = b.put("jobs", "removed", {.priority = 2});
        auto w = b.make_consumer({"jobs"});
        w.try_reserve()->bury();       // "buried" (priority 0)
        auto held = w.try_reserve();   // "reserved" (priority 1)
        REQUIRE(held->id() == reserved);
        w.try_reserve()->remove();     // "removed" (priority 2)

        auto& st = b.create_stream("events", {.partitions = 2});
        for (int i = 0; i < 6; ++i) st.append("k" + std::to_string(i % 2), "e" + std::to_string(i));
        auto c = st.join("readers");
        std::vector<conq::stream_record<std::string>> batch;
        c.poll(batch, 100, 0s);
        REQUIRE(batch.size() == 6u);
        c.commit();
        st.append("k0", "after the commit");

        // A crash: the process dies with `held` still reserved. Copy the
        // directory as it is now, since handles must not outlive the broker.
        std::filesystem::create_directories(dir.path() / "crash");
        std::filesystem::copy(dir.path() / "live" / "jobs", dir.path() / "crash" / "jobs",
                              std::filesystem::copy_options::recursive);
        std::filesystem::copy(dir.path() / "live" / "streams", dir.path() / "crash" / "streams",
                              std::filesystem::copy_options::recursive);
        // (The copied lock files hold no lock: flock belongs to open files.)
    }
    wall_ns += std::chrono::nanoseconds(20s).count();
    broker_t b(dir.path() / "crash", clock, opts);
    CHECK(b.peek(ready).state == conq::job_state::ready);
    CHECK(b.peek(ready).priority == 7u);
    CHECK(b.peek(delayed).state == conq::job_state::delayed);
    CHECK(b.peek(delayed).time_left == 40s);  // 20 s of wall time passed while it was down
    CHECK(b.peek(buried).state == conq::job_state::buried);
    CHECK(b.peek(reserved).state == conq::job_state::ready);
    CHECK(b.peek(reserved).reserves == 1u);
    CHECK(error_of([&] { (void)b.peek(removed); }) == broker_errc::unknown_job);
    CHECK(b.stats().work.next_id == removed + 1);

    auto& st = b.get_stream("events");
    CHECK(st.partitions() == 2u);
    CHECK(st.end_offset(0) + st.end_offset(1) == 7u);
    auto c = st.join("readers");
    std::vector<conq::stream_record<std::string>> batch;
    c.poll(batch, 100, 0s);
    REQUIRE(batch.size() == 1u);  // only what came after the commit
    CHECK(batch[0].payload() == "after the commit");
}

// Unit tests of conq::work_queues (include/conq/broker/work_queue.hpp), the
// beanstalkd/SQS-style named work queues: ready order, reserve over several
// queues, watch lists, delays, time-to-run, deadline_soon, release, bury and
// kick, reserve by id, pauses, dead letters, handles that release on
// destruction, removal, statistics, rejected input, close, await_idle,
// move-only payloads and durable mode across restarts.
//
// Time is a conq::manual_clock: nothing here sleeps. A reserve that must
// block runs in a thread; the test waits (yield, under a watchdog) until the
// queue's stats say it is waiting, then acts.
#include "conq_catch.hpp"
#include "temp_dir.hpp"
#include "watchdog.hpp"

#include <conq/broker/work_queue.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using conq_test::temp_dir;

namespace {

using wq_t = conq::work_queues<std::string, conq::manual_clock>;
using conq::broker_errc;
using conq::job_state;
using conq::reserve_status;

/// The broker_errc `f` throws (as a broker_error), or nullopt if it throws nothing.
template <class F>
std::optional<broker_errc> errc_of(F&& f) {
    try {
        f();
    } catch (const conq::broker_error& e) {
        return e.errc();
    }
    return std::nullopt;
}

template <class Pred>
void wait_until(Pred p) {
    while (!p()) std::this_thread::yield();
}

std::string dump(const conq::queue_stats& s) {
    std::ostringstream o;
    o << s.name << " urgent=" << s.urgent << " ready=" << s.ready << " reserved=" << s.reserved
      << " delayed=" << s.delayed << " buried=" << s.buried << " total=" << s.total_jobs
      << " reserves=" << s.reserves << " timeouts=" << s.timeouts << " releases=" << s.releases
      << " buries=" << s.buries << " kicks=" << s.kicks << " deletes=" << s.deletes
      << " dead=" << s.dead_lettered << " pauses=" << s.pauses << " waiting=" << s.waiting
      << " watchers=" << s.watchers << " pause=" << s.pause.count() << " left=" << s.pause_left.count();
    return o.str();
}
std::string dump(const conq::work_stats& s) {
    std::ostringstream o;
    o << "urgent=" << s.urgent << " ready=" << s.ready << " reserved=" << s.reserved << " delayed=" << s.delayed
      << " buried=" << s.buried << " total=" << s.total_jobs << " reserves=" << s.reserves
      << " timeouts=" << s.timeouts << " releases=" << s.releases << " buries=" << s.buries
      << " kicks=" << s.kicks << " deletes=" << s.deletes << " dead=" << s.dead_lettered
      << " queues=" << s.queues << " waiting=" << s.waiting << " next_id=" << s.next_id;
    return o.str();
}
template <class W>
std::string dump_all(const W& w) {
    std::string s = dump(w.stats());
    for (const auto& n : w.queue_names()) {
        s += '\n';  // (not "\n" + dump(): g++ 12 -Wrestrict false positive)
        s += dump(*w.stats(n));
    }
    return s;
}

/// Reserves from `queues` without waiting and removes; returns the id (0 if none).
template <class W>
conq::job_id take(W& w, std::initializer_list<std::string_view> queues) {
    auto j = w.try_reserve(queues);
    if (!j) return 0;
    const conq::job_id id = j->id();
    j->remove();
    return id;
}

/// A wall clock the test moves by hand (for durable mode).
struct wall_clock {
    std::shared_ptr<std::atomic<std::int64_t>> ns =
        std::make_shared<std::atomic<std::int64_t>>(std::int64_t{1'700'000'000} * 1'000'000'000);
    void advance(std::chrono::nanoseconds d) { ns->fetch_add(d.count()); }
    std::function<std::chrono::system_clock::time_point()> fn() const {
        return [p = ns] {
            return std::chrono::system_clock::time_point(
                std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(p->load())));
        };
    }
};

conq::durable_options durable(const wall_clock& wall, std::uint64_t segment = 1 << 20) {
    return conq::durable_options{.segment_size = segment,
                                 .max_record_size = static_cast<std::uint32_t>(segment / 4),
                                 .wall_clock = wall.fn(),
                                 .prefault = false};
}

/// A copy of a durable work queue's directory as it is now: what a process
/// killed at this moment would leave behind (every call has returned).
void snapshot(const std::filesystem::path& from, const std::filesystem::path& to) {
    std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
}

}  // namespace

// ------------------------------------------------------------------ order

TEST_CASE("work_queues: ready order is priority, then age", "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    const auto a = w.put("q", "a", {.priority = 5});
    const auto b = w.put("q", "b", {.priority = 1});
    const auto c = w.put("q", "c", {.priority = 5});
    const auto d = w.put("q", "d", {.priority = 0});
    const auto e = w.put("q", "e", {.priority = 1});
    CHECK(a == 1u);
    CHECK(e == 5u);
    const std::vector<conq::job_id> want{d, b, e, a, c};
    std::vector<std::string> payloads;
    std::vector<conq::job_id> got;
    while (auto j = w.try_reserve({"q"})) {
        got.push_back(j->id());
        payloads.push_back(j->payload());
        j->remove();
    }
    CHECK(got == want);
    CHECK(payloads == std::vector<std::string>{"d", "b", "e", "a", "c"});
    // A job put later with the same priority still comes after older ones,
    // also when the older one was released back.
    const auto f = w.put("q", "f", {.priority = 7});
    const auto g = w.put("q", "g", {.priority = 7});
    {
        auto j = w.try_reserve({"q"});
        REQUIRE(j);
        CHECK(j->id() == f);
        j->release();
    }
    CHECK(take(w, {"q"}) == f);
    CHECK(take(w, {"q"}) == g);
    CHECK(take(w, {"q"}) == 0u);
}

TEST_CASE("work_queues: a reserve over several queues takes the best job of all", "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    const auto a1 = w.put("a", "a1", {.priority = 20});
    const auto b1 = w.put("b", "b1", {.priority = 10});
    const auto c1 = w.put("c", "c1", {.priority = 0});  // not watched
    const auto a2 = w.put("a", "a2", {.priority = 10});
    const auto b2 = w.put("b", "b2", {.priority = 30});
    auto cons = w.make_consumer({"a", "b"});
    std::vector<conq::job_id> got;
    while (auto j = cons.try_reserve()) {
        got.push_back(j->id());
        j->remove();
    }
    // b1 and a2 have the same priority: the older (b1) first.
    CHECK(got == std::vector<conq::job_id>{b1, a2, a1, b2});
    CHECK(w.stats("c")->ready == 1u);
    CHECK(take(w, {"c"}) == c1);
}

TEST_CASE("work_queues: consumer watch and ignore", "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    w.put("b", "in b");
    {
        auto c = w.make_consumer("a");
        CHECK(c.watching() == std::vector<std::string>{"a"});
        CHECK(w.stats("a")->watchers == 1u);
        CHECK_FALSE(c.ignore("a"));  // the last one stays
        CHECK(c.watching() == std::vector<std::string>{"a"});
        CHECK_FALSE(c.try_reserve());
        c.watch("b");
        c.watch("b");  // twice: watched once
        CHECK(c.watching() == std::vector<std::string>{"a", "b"});
        CHECK(w.stats("b")->watchers == 1u);
        CHECK(c.ignore("a"));
        CHECK(c.watching() == std::vector<std::string>{"b"});
        CHECK(w.stats("a")->watchers == 0u);
        CHECK(c.ignore("not-watched"));
        CHECK(c.watching() == std::vector<std::string>{"b"});
        CHECK(errc_of([&] { c.watch("bad name"); }) == broker_errc::invalid_name);
        auto j = c.try_reserve();
        REQUIRE(j);
        CHECK(j->payload() == "in b");
        CHECK(j->queue() == "b");
        j->remove();
        auto c2 = std::move(c);  // the watch list moves with it
        CHECK(w.stats("b")->watchers == 1u);
    }
    CHECK(w.stats("b")->watchers == 0u);
    CHECK(errc_of([&] { (void)w.make_consumer(std::span<const std::string_view>{}); }) ==
          broker_errc::invalid_argument);
    CHECK(errc_of([&] { (void)w.make_consumer({"ok", "-bad"}); }) == broker_errc::invalid_name);
}

// ----------------------------------------------------------------- delays

TEST_CASE("work_queues: a delayed job is reservable once its delay has passed", "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    const auto late = w.put("q", "late", {.priority = 0, .delay = 10s});
    const auto soon = w.put("q", "soon", {.priority = 0, .delay = 5s});
    const auto now = w.put("q", "now", {.priority = 100});
    CHECK(w.stats("q")->delayed == 2u);
    CHECK(w.stats("q")->ready == 1u);
    auto pd = w.peek_delayed("q");
    REQUIRE(pd);
    CHECK(pd->id == soon);
    CHECK(pd->state == job_state::delayed);
    CHECK(pd->time_left == 5s);
    CHECK(pd->delay == 5s);
    CHECK(take(w, {"q"}) == now);
    CHECK(take(w, {"q"}) == 0u);

    clock.advance(4999ms);
    CHECK(take(w, {"q"}) == 0u);
    CHECK(w.peek_delayed("q")->time_left == 1ms);
    clock.advance(1ms);  // exactly due
    CHECK(w.stats("q")->delayed == 1u);
    CHECK(w.peek_delayed("q")->id == late);
    CHECK(w.peek(soon).state == job_state::ready);
    CHECK(take(w, {"q"}) == soon);
    clock.advance(5s);
    CHECK(take(w, {"q"}) == late);
    CHECK_FALSE(w.peek_delayed("q"));
    CHECK_FALSE(w.peek_delayed("nope"));
}

TEST_CASE("work_queues: a blocked reserve_for wakes when the clock passes a delay", "[work_queue]") {
    conq_test::watchdog dog("blocked reserve woken by a delay", std::chrono::seconds(60));
    conq::manual_clock clock;
    wq_t w(clock);
    const auto id = w.put("q", "job", {.delay = 5s});
    auto c = w.make_consumer("q");
    std::optional<wq_t::reserve_result> got;
    std::thread t([&] { got.emplace(c.reserve_for(10s)); });
    wait_until([&] { return w.stats("q")->waiting == 1; });
    clock.advance(5s);
    t.join();
    REQUIRE(got);
    CHECK(got->status == reserve_status::reserved);
    REQUIRE(*got);
    CHECK((*got)->id() == id);
    CHECK((*got)->payload() == "job");
    CHECK(w.stats("q")->waiting == 0u);
    CHECK(w.stats("q")->reserved == 1u);
}

TEST_CASE("work_queues: a blocked reserve_for times out on the clock", "[work_queue]") {
    conq_test::watchdog dog("blocked reserve timing out", std::chrono::seconds(60));
    conq::manual_clock clock;
    wq_t w(clock);
    w.put("q", "too late", {.delay = 20s});  // due after the reserve's time-out
    auto c = w.make_consumer("q");
    std::optional<wq_t::reserve_result> got;
    std::thread t([&] { got.emplace(c.reserve_for(10s)); });
    wait_until([&] { return w.stats("q")->waiting == 1; });
    clock.advance(9s);  // not yet: it goes back to sleep
    clock.advance(1s);
    t.join();
    REQUIRE(got);
    CHECK(got->status == reserve_status::timed_out);
    CHECK_FALSE(*got);
    CHECK(w.stats("q")->waiting == 0u);
    CHECK(w.stats("q")->delayed == 1u);
    // Without waiting: timed_out at once.
    auto r = c.reserve_for(0s);
    CHECK(r.status == reserve_status::timed_out);
    CHECK_FALSE(r);
}

// -------------------------------------------------------------------- TTR

TEST_CASE("work_queues: a job whose time-to-run runs out is ready again; the old handle is stale",
          "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    const auto id = w.put("q", "job", {.ttr = 5s});
    auto old = w.try_reserve({"q"});
    REQUIRE(old);
    CHECK(old->deliveries() == 1u);
    CHECK(old->held());
    CHECK(old->time_left() == 5s);
    CHECK(w.peek(id).state == job_state::reserved);
    CHECK(w.peek(id).time_left == 5s);
    clock.advance(4s);
    CHECK(old->held());
    CHECK(w.stats("q")->reserved == 1u);
    clock.advance(1s);
    CHECK_FALSE(old->held());
    CHECK(old->time_left() == 0s);
    CHECK_FALSE(old->deadline_soon());
    const auto s = *w.stats("q");
    CHECK(s.ready == 1u);
    CHECK(s.reserved == 0u);
    CHECK(s.timeouts == 1u);
    CHECK(s.releases == 0u);
    const auto info = w.peek(id);
    CHECK(info.state == job_state::ready);
    CHECK(info.timeouts == 1u);
    CHECK(info.reserves == 1u);
    CHECK(w.stats().timeouts == 1u);

    CHECK(errc_of([&] { old->remove(); }) == broker_errc::not_reserved);
    CHECK(errc_of([&] { old->release(); }) == broker_errc::not_reserved);
    CHECK(errc_of([&] { old->bury(); }) == broker_errc::not_reserved);
    CHECK(errc_of([&] { old->touch(); }) == broker_errc::not_reserved);
    CHECK(w.peek(id).state == job_state::ready);  // none of them changed anything
    CHECK(w.stats("q")->deletes == 0u);

    // Delivered again; the stale handle cannot touch the new reservation.
    auto again = w.try_reserve({"q"});
    REQUIRE(again);
    CHECK(again->id() == id);
    CHECK(again->deliveries() == 2u);
    CHECK(errc_of([&] { old->remove(); }) == broker_errc::not_reserved);
    CHECK_FALSE(old->held());
    CHECK(again->held());
    old.reset();  // dropping the stale handle releases nothing
    CHECK(again->held());
    CHECK(w.stats("q")->releases == 0u);
    again->remove();
    CHECK_FALSE(again->held());
    CHECK(errc_of([&] { again->remove(); }) == broker_errc::not_reserved);  // decided already
    CHECK(errc_of([&] { (void)w.peek(id); }) == broker_errc::unknown_job);
}

TEST_CASE("work_queues: touch restarts the time-to-run", "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    const auto id = w.put("q", "job", {.ttr = 5s});
    auto j = w.try_reserve({"q"});
    REQUIRE(j);
    clock.advance(4s);
    CHECK(j->time_left() == 1s);
    j->touch();
    CHECK(j->time_left() == 5s);
    CHECK(w.peek(id).time_left == 5s);
    clock.advance(4s);
    CHECK(j->held());  // 8 s after the reserve: touched at 4 s
    clock.advance(1s);
    CHECK_FALSE(j->held());
    CHECK(w.peek(id).timeouts == 1u);
    CHECK(w.peek(id).state == job_state::ready);
}

TEST_CASE("work_queues: deadline_soon for a consumer holding a job near its time-to-run's end",
          "[work_queue]") {
    conq_test::watchdog dog("deadline_soon", std::chrono::seconds(60));
    conq::manual_clock clock;
    wq_t w(clock);  // deadline_margin 1 s
    const auto id = w.put("q", "job", {.ttr = 5s});
    auto c = w.make_consumer("q");
    auto j = c.try_reserve();
    REQUIRE(j);
    CHECK(j->id() == id);
    CHECK_FALSE(j->deadline_soon());
    clock.advance(3s);
    CHECK(j->time_left() == 2s);
    CHECK_FALSE(j->deadline_soon());

    // Blocked in reserve_for(60 s): returns deadline_soon as the clock enters the margin.
    std::optional<wq_t::reserve_result> got;
    std::thread t([&] { got.emplace(c.reserve_for(60s)); });
    wait_until([&] { return w.stats("q")->waiting == 1; });
    clock.advance(1s);  // 1 s left: inside the margin
    t.join();
    REQUIRE(got);
    CHECK(got->status == reserve_status::deadline_soon);
    CHECK_FALSE(*got);
    CHECK(j->deadline_soon());
    CHECK(j->time_left() == 1s);
    CHECK(j->held());

    // And at once, without waiting, while it still holds the job.
    clock.advance(500ms);
    auto r = c.reserve_for(60s);
    CHECK(r.status == reserve_status::deadline_soon);
    CHECK(j->time_left() == 500ms);

    // Something ready is still reserved: deadline_soon is only "instead of waiting".
    const auto other = w.put("q", "other");
    auto r2 = c.reserve_for(60s);
    REQUIRE(r2.status == reserve_status::reserved);
    CHECK(r2->id() == other);
    r2->remove();

    // Touched: far from the end again, and a reserve waits (times out) instead.
    j->touch();
    CHECK_FALSE(j->deadline_soon());
    CHECK(c.reserve_for(0s).status == reserve_status::timed_out);
    // Decided: nothing to warn about.
    clock.advance(4500ms);
    CHECK(j->deadline_soon());
    j->remove();
    CHECK_FALSE(j->deadline_soon());
    CHECK(c.reserve_for(0s).status == reserve_status::timed_out);

    // Another consumer that holds nothing is not told.
    w.put("q", "x", {.ttr = 2s});
    auto mine = c.try_reserve();
    REQUIRE(mine);
    auto other_consumer = w.make_consumer("q");
    CHECK(c.reserve_for(0s).status == reserve_status::timed_out);  // 2 s left, margin 1 s
    clock.advance(1s);
    CHECK(c.reserve_for(0s).status == reserve_status::deadline_soon);
    CHECK(other_consumer.reserve_for(0s).status == reserve_status::timed_out);
    mine->remove();
}

// ---------------------------------------------------- release, bury, kick

TEST_CASE("work_queues: release with a priority and a delay", "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    const auto a = w.put("q", "a", {.priority = 10});
    const auto b = w.put("q", "b", {.priority = 20});
    {
        auto j = w.try_reserve({"q"});
        REQUIRE(j);
        REQUIRE(j->id() == a);
        j->release(30);  // now after b
        CHECK_FALSE(j->held());
        CHECK(errc_of([&] { j->remove(); }) == broker_errc::not_reserved);
    }
    auto info = w.peek(a);
    CHECK(info.state == job_state::ready);
    CHECK(info.priority == 30u);
    CHECK(info.releases == 1u);
    CHECK(info.reserves == 1u);
    CHECK(w.peek_ready("q")->id == b);
    {
        auto j = w.try_reserve({"q"});
        REQUIRE(j);
        REQUIRE(j->id() == b);
        CHECK(errc_of([&] { j->release(std::nullopt, -1ns); }) == broker_errc::invalid_argument);
        CHECK(j->held());  // the rejected release changed nothing
        j->release(5, 2s);
    }
    info = w.peek(b);
    CHECK(info.state == job_state::delayed);
    CHECK(info.priority == 5u);
    CHECK(info.delay == 2s);
    CHECK(info.time_left == 2s);
    CHECK(w.stats("q")->delayed == 1u);
    CHECK(w.stats("q")->releases == 2u);
    CHECK(take(w, {"q"}) == a);  // b is delayed
    clock.advance(2s);
    CHECK(w.peek(b).state == job_state::ready);
    CHECK(w.peek(b).priority == 5u);
    CHECK(take(w, {"q"}) == b);
}

TEST_CASE("work_queues: bury with a priority, peek_buried, kick buried first in burial order",
          "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    const auto a = w.put("q", "a", {.priority = 1});
    const auto b = w.put("q", "b", {.priority = 2});
    const auto c = w.put("q", "c", {.priority = 3});
    const auto d = w.put("q", "d", {.delay = 10s});
    const auto e = w.put("q", "e", {.delay = 5s});
    // Reserve a, b, c; bury b, then a, then c.
    auto ja = w.try_reserve({"q"});
    auto jb = w.try_reserve({"q"});
    auto jc = w.try_reserve({"q"});
    REQUIRE((ja && jb && jc));
    jb->bury(50);
    ja->bury();
    jc->bury(7);
    CHECK_FALSE(jb->held());
    CHECK(errc_of([&] { jb->bury(); }) == broker_errc::not_reserved);
    CHECK(w.peek(b).state == job_state::buried);
    CHECK(w.peek(b).priority == 50u);
    CHECK(w.peek(b).buries == 1u);
    CHECK(w.peek(a).priority == 1u);
    CHECK(w.peek(c).priority == 7u);
    CHECK(w.stats("q")->buried == 3u);
    CHECK(w.stats("q")->buries == 3u);
    CHECK(w.peek_buried("q")->id == b);
    CHECK(take(w, {"q"}) == 0u);  // buried jobs are not reservable

    CHECK(w.kick("q", 2) == 2u);  // b, then a
    CHECK(w.peek(b).state == job_state::ready);
    CHECK(w.peek(a).state == job_state::ready);
    CHECK(w.peek(c).state == job_state::buried);
    CHECK(w.peek(b).kicks == 1u);
    CHECK(w.peek_buried("q")->id == c);
    // Buried jobs left: kick takes only them, not the delayed ones.
    CHECK(w.kick("q", 10) == 1u);
    CHECK(w.peek(c).state == job_state::ready);
    CHECK(w.peek(d).state == job_state::delayed);
    CHECK(w.peek(e).state == job_state::delayed);
    CHECK_FALSE(w.peek_buried("q"));
    // No buried job: kick takes the delayed ones, soonest first.
    CHECK(w.kick("q", 1) == 1u);
    CHECK(w.peek(e).state == job_state::ready);
    CHECK(w.peek(d).state == job_state::delayed);
    CHECK(w.kick("q", 10) == 1u);
    CHECK(w.peek(d).state == job_state::ready);
    CHECK(w.kick("q", 10) == 0u);
    CHECK(w.kick("unknown", 10) == 0u);
    CHECK(errc_of([&] { w.kick("bad name", 1); }) == broker_errc::invalid_name);
    CHECK(w.stats("q")->kicks == 5u);
    // Ready order by the priorities they have now: a (1), c (7), b (50), then
    // d and e (1024) by age.
    std::vector<conq::job_id> order;
    while (const auto id = take(w, {"q"})) order.push_back(id);
    CHECK(order == std::vector<conq::job_id>{a, c, b, d, e});
}

TEST_CASE("work_queues: kick_job makes one buried or delayed job ready", "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    const auto ready = w.put("q", "ready");
    const auto delayed = w.put("q", "delayed", {.delay = 1h});
    const auto buried = w.put("q", "buried", {.priority = 0});
    const auto reserved = w.put("q", "reserved", {.priority = 1});
    auto jb = w.try_reserve({"q"});
    REQUIRE(jb->id() == buried);
    jb->bury();
    auto jr = w.try_reserve({"q"});
    REQUIRE(jr->id() == reserved);

    const auto before = dump_all(w);
    CHECK(errc_of([&] { w.kick_job(ready); }) == broker_errc::unknown_job);
    CHECK(errc_of([&] { w.kick_job(reserved); }) == broker_errc::unknown_job);
    CHECK(errc_of([&] { w.kick_job(999); }) == broker_errc::unknown_job);
    CHECK(dump_all(w) == before);

    w.kick_job(buried);
    CHECK(w.peek(buried).state == job_state::ready);
    CHECK(w.peek(buried).kicks == 1u);
    w.kick_job(delayed);
    CHECK(w.peek(delayed).state == job_state::ready);
    CHECK(w.peek(delayed).kicks == 1u);
    CHECK(w.stats("q")->kicks == 2u);
    CHECK(w.stats("q")->ready == 3u);
    CHECK(errc_of([&] { w.kick_job(buried); }) == broker_errc::unknown_job);  // ready now
}

TEST_CASE("work_queues: reserve_job reserves a job by id in any state but reserved", "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    const auto ready = w.put("q", "ready", {.priority = 9});
    const auto best = w.put("q", "best", {.priority = 0});
    const auto delayed = w.put("q", "delayed", {.delay = 1h, .ttr = 7s});
    const auto buried = w.put("q", "buried", {.priority = 0});
    auto c = w.make_consumer("q");
    {
        auto jb = c.reserve_job(buried);
        jb.bury();
    }
    CHECK(w.peek(buried).state == job_state::buried);

    auto j1 = c.reserve_job(ready);  // not the best one: the one asked for
    CHECK(j1.id() == ready);
    CHECK(j1.payload() == "ready");
    CHECK(w.peek(ready).state == job_state::reserved);
    auto j2 = c.reserve_job(delayed);
    CHECK(j2.time_left() == 7s);
    CHECK(w.peek(delayed).state == job_state::reserved);
    auto j3 = c.reserve_job(buried);
    CHECK(j3.deliveries() == 2u);
    CHECK(w.stats("q")->reserved == 3u);
    CHECK(w.stats("q")->delayed == 0u);
    CHECK(w.stats("q")->buried == 0u);
    CHECK(errc_of([&] { (void)c.reserve_job(ready); }) == broker_errc::unknown_job);  // reserved
    CHECK(errc_of([&] { (void)c.reserve_job(12345); }) == broker_errc::unknown_job);
    j1.remove();
    CHECK(errc_of([&] { (void)c.reserve_job(ready); }) == broker_errc::unknown_job);  // gone
    CHECK(take(w, {"q"}) == best);
    j2.release();
    CHECK(w.peek(delayed).state == job_state::ready);  // released with no delay: ready
}

// ------------------------------------------------------------------ pause

TEST_CASE("work_queues: a paused queue gives nothing until its pause ends", "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    const auto p1 = w.put("p", "p1", {.priority = 0});
    const auto q1 = w.put("q", "q1", {.priority = 5});
    w.pause("p", 10s);
    auto s = *w.stats("p");
    CHECK(s.pause == 10s);
    CHECK(s.pause_left == 10s);
    CHECK(s.pauses == 1u);
    CHECK(s.ready == 1u);
    CHECK(w.peek_ready("p")->id == p1);  // peek ignores the pause
    auto c = w.make_consumer({"p", "q"});
    {
        auto j = c.try_reserve();
        REQUIRE(j);
        CHECK(j->id() == q1);  // p1 is more urgent, but paused
        j->remove();
    }
    CHECK_FALSE(c.try_reserve());
    clock.advance(4s);
    CHECK(w.stats("p")->pause_left == 6s);
    CHECK_FALSE(c.try_reserve());
    clock.advance(6s);
    s = *w.stats("p");
    CHECK(s.pause_left == 0s);
    {
        auto j = c.try_reserve();
        REQUIRE(j);
        CHECK(j->id() == p1);
        j->release();
    }
    // pause(queue, 0) resumes at once.
    w.pause("p", 1h);
    CHECK_FALSE(c.try_reserve());
    w.pause("p", 0s);
    CHECK(w.stats("p")->pauses == 3u);
    CHECK(w.stats("p")->pause_left == 0s);
    CHECK(take(w, {"p"}) == p1);

    CHECK(errc_of([&] { w.pause("nope", 1s); }) == broker_errc::unknown_queue);
    CHECK(errc_of([&] { w.pause("p", -1s); }) == broker_errc::invalid_argument);
    CHECK(errc_of([&] { w.pause("", 1s); }) == broker_errc::invalid_name);
    CHECK_FALSE(w.stats("nope"));
}

TEST_CASE("work_queues: a reserve blocked on a paused queue wakes when it resumes", "[work_queue]") {
    conq_test::watchdog dog("reserve on a paused queue", std::chrono::seconds(60));
    conq::manual_clock clock;
    wq_t w(clock);
    const auto id = w.put("p", "job");
    w.pause("p", 1h);
    auto c = w.make_consumer("p");
    SECTION("pause(queue, 0) from another thread") {
        std::optional<wq_t::reserve_result> got;
        std::thread t([&] { got.emplace(c.reserve_for(2h)); });
        wait_until([&] { return w.stats("p")->waiting == 1; });
        w.pause("p", 0s);
        t.join();
        REQUIRE(got);
        CHECK(got->status == reserve_status::reserved);
        CHECK((*got)->id() == id);
    }
    SECTION("the clock passes the pause") {
        std::optional<wq_t::reserve_result> got;
        std::thread t([&] { got.emplace(c.reserve_for(2h)); });
        wait_until([&] { return w.stats("p")->waiting == 1; });
        clock.advance(1h);
        t.join();
        REQUIRE(got);
        CHECK(got->status == reserve_status::reserved);
        CHECK((*got)->id() == id);
    }
}

// ----------------------------------------------------------- dead letters

TEST_CASE("work_queues: after max_deliveries a job that comes back undecided is dead-lettered",
          "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    w.configure("q", {.max_deliveries = 2, .dead_letter = "dlq"});
    const auto id = w.put("q", "poison", {.ttr = 5s});
    auto first_return = [&](int how) {
        auto j = w.try_reserve({"q"});
        REQUIRE(j);
        REQUIRE(j->id() == id);
        if (how == 0) j->release();
        else if (how == 1) clock.advance(5s);  // TTR runs out
        // how == 2: the handle is dropped undecided
    };
    int how1 = 0, how2 = 0;
    SECTION("release, release") { how1 = 0, how2 = 0; }
    SECTION("time-out, time-out") { how1 = 1, how2 = 1; }
    SECTION("dropped, dropped") { how1 = 2, how2 = 2; }
    SECTION("release, time-out") { how1 = 0, how2 = 1; }
    SECTION("time-out, dropped") { how1 = 1, how2 = 2; }
    first_return(how1);
    CHECK(w.peek(id).queue == "q");  // once: still in q
    CHECK(w.peek(id).state == job_state::ready);
    CHECK(w.stats("q")->dead_lettered == 0u);
    first_return(how2);
    const auto info = w.peek(id);
    CHECK(info.queue == "dlq");
    CHECK(info.state == job_state::ready);
    CHECK(*info.payload == "poison");
    CHECK(info.reserves == 2u);
    const auto sq = *w.stats("q");
    CHECK(sq.dead_lettered == 1u);
    CHECK(sq.ready == 0u);
    CHECK(sq.total_jobs == 1u);
    const auto sd = *w.stats("dlq");
    CHECK(sd.ready == 1u);
    CHECK(sd.total_jobs == 1u);
    CHECK(w.stats().dead_lettered == 1u);
    CHECK(w.stats().ready == 1u);
    CHECK(take(w, {"q"}) == 0u);
    // In the dead-letter queue (no limit there) it can be handled as usual.
    auto j = w.try_reserve({"dlq"});
    REQUIRE(j);
    CHECK(j->id() == id);
    CHECK(j->queue() == "dlq");
    j->release();
    j = w.try_reserve({"dlq"});
    REQUIRE(j);
    j->release();
    CHECK(w.peek(id).queue == "dlq");
}

TEST_CASE("work_queues: without a dead-letter queue the job is buried after max_deliveries", "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    w.configure("q", {.max_deliveries = 2, .dead_letter = ""});
    const auto id = w.put("q", "poison", {.priority = 4});
    for (int i = 0; i < 2; ++i) {
        auto j = w.try_reserve({"q"});
        REQUIRE(j);
        j->release();
    }
    auto info = w.peek(id);
    CHECK(info.state == job_state::buried);
    CHECK(info.queue == "q");
    CHECK(info.buries == 1u);
    CHECK(info.releases == 2u);
    const auto s = *w.stats("q");
    CHECK(s.buried == 1u);
    CHECK(s.dead_lettered == 1u);
    CHECK(s.buries == 1u);
    CHECK(s.ready == 0u);
    // Kicked, it gets max_deliveries deliveries again.
    CHECK(w.kick("q", 1) == 1u);
    {
        auto j = w.try_reserve({"q"});
        REQUIRE(j);
        j->release();
    }
    CHECK(w.peek(id).state == job_state::ready);
    {
        auto j = w.try_reserve({"q"});
        REQUIRE(j);
        j->release();
    }
    CHECK(w.peek(id).state == job_state::buried);
    CHECK(w.stats("q")->dead_lettered == 2u);
    // Decisions (bury, remove) are not returns: no dead letter.
    const auto ok = w.put("q", "fine");
    {
        auto j = w.try_reserve({"q"});
        REQUIRE(j);
        CHECK(j->id() == ok);
        j->bury();
    }
    CHECK(w.peek(ok).state == job_state::buried);
    w.kick_job(ok);
    {
        auto j = w.try_reserve({"q"});  // its 2nd delivery
        REQUIRE(j);
        CHECK(j->id() == ok);
        j->remove();
    }
    CHECK(w.stats("q")->dead_lettered == 2u);
    CHECK(errc_of([&] { w.configure("q", {.max_deliveries = 1, .dead_letter = "bad name"}); }) ==
          broker_errc::invalid_name);
}

// ------------------------------------------------------------------- RAII

TEST_CASE("work_queues: a job handle dropped undecided releases its job; a moved-from one does nothing",
          "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    const auto id = w.put("q", "job", {.priority = 3});
    {
        auto j = w.try_reserve({"q"});
        REQUIRE(j);
        CHECK(w.stats("q")->reserved == 1u);
    }
    CHECK(w.peek(id).state == job_state::ready);
    CHECK(w.peek(id).releases == 1u);
    CHECK(w.peek(id).priority == 3u);
    CHECK(w.stats("q")->releases == 1u);
    {
        auto j = w.try_reserve({"q"});
        REQUIRE(j);
        wq_t::job moved = std::move(*j);
        j.reset();  // the moved-from handle: nothing happens
        CHECK(w.peek(id).state == job_state::reserved);
        CHECK(w.stats("q")->releases == 1u);
        CHECK(moved.held());
        CHECK(moved.id() == id);
        CHECK(moved.payload() == "job");
        moved.remove();
    }
    CHECK(w.stats("q")->releases == 1u);
    CHECK(w.stats("q")->deletes == 1u);
    // Move assignment onto a handle that holds a job releases that job.
    const auto a = w.put("q", "a", {.priority = 1});
    const auto b = w.put("q", "b", {.priority = 2});
    auto ja = w.try_reserve({"q"});
    auto jb = w.try_reserve({"q"});
    REQUIRE((ja && jb));
    *ja = std::move(*jb);
    CHECK(w.peek(a).state == job_state::ready);
    CHECK(w.peek(a).releases == 1u);
    CHECK(w.peek(b).state == job_state::reserved);
    CHECK(ja->id() == b);
    jb.reset();
    CHECK(w.peek(b).state == job_state::reserved);
    ja->remove();
    CHECK(w.stats("q")->releases == 2u);
}

// ----------------------------------------------------------------- removal

TEST_CASE("work_queues: remove by id, purge and drop_queue", "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    const auto ready = w.put("q", "ready");
    const auto delayed = w.put("q", "delayed", {.delay = 1min});
    const auto buried = w.put("q", "buried", {.priority = 0});
    const auto reserved = w.put("q", "reserved", {.priority = 1});
    auto jb = w.try_reserve({"q"});
    REQUIRE(jb->id() == buried);
    jb->bury();
    auto jr = w.try_reserve({"q"});
    REQUIRE(jr->id() == reserved);

    CHECK(errc_of([&] { w.remove(reserved); }) == broker_errc::unknown_job);
    CHECK(errc_of([&] { w.remove(777); }) == broker_errc::unknown_job);
    CHECK(w.peek(reserved).state == job_state::reserved);
    w.remove(ready);
    w.remove(delayed);
    w.remove(buried);
    for (const auto id : {ready, delayed, buried}) {
        CHECK(errc_of([&] { (void)w.peek(id); }) == broker_errc::unknown_job);
        CHECK(errc_of([&] { w.remove(id); }) == broker_errc::unknown_job);
    }
    auto s = *w.stats("q");
    CHECK(s.deletes == 3u);
    CHECK(s.ready + s.delayed + s.buried == 0u);
    CHECK(s.reserved == 1u);

    // purge: ready, delayed and buried go; the reserved one stays.
    w.put("q", "r1");
    w.put("q", "r2");
    w.put("q", "d1", {.delay = 1s});
    const auto b2 = w.put("q", "b2", {.priority = 0});
    {
        auto j = w.try_reserve({"q"});
        REQUIRE(j->id() == b2);
        j->bury();
    }
    CHECK(w.purge("q") == 4u);
    s = *w.stats("q");
    CHECK(s.ready + s.delayed + s.buried == 0u);
    CHECK(s.reserved == 1u);
    CHECK(s.deletes == 7u);
    CHECK(w.purge("q") == 0u);
    CHECK(w.purge("unknown") == 0u);
    CHECK(errc_of([&] { w.purge("bad name"); }) == broker_errc::invalid_name);
    CHECK_FALSE(w.drop_queue("q"));  // a job is reserved
    jr->remove();
    {
        auto c = w.make_consumer("q");
        CHECK_FALSE(w.drop_queue("q"));  // watched
    }
    w.put("q", "left");
    CHECK_FALSE(w.drop_queue("q"));  // holds a job
    CHECK(w.purge("q") == 1u);
    CHECK(w.queue_names() == std::vector<std::string>{"q"});
    CHECK(w.drop_queue("q"));
    CHECK_FALSE(w.stats("q"));
    CHECK(w.queue_names().empty());
    CHECK_FALSE(w.drop_queue("q"));
    CHECK(w.stats().queues == 0u);
    // A new queue of the same name starts from zero; ids go on.
    const auto again = w.put("q", "new");
    CHECK(again == reserved + 6);
    CHECK(w.stats("q")->total_jobs == 1u);
    CHECK(w.stats("q")->deletes == 0u);
}

// ------------------------------------------------------------------ stats

TEST_CASE("work_queues: per-queue, per-job and total statistics", "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    const auto id1 = w.put("s", "a", {.priority = 10});
    const auto id2 = w.put("s", "b", {.priority = 2000});
    const auto id3 = w.put("s", "c", {.priority = 5, .delay = 10s});
    const auto id4 = w.put("s", "d", {.priority = 1});
    const auto id5 = w.put("s", "e", {.priority = 3, .ttr = 2s});
    auto c = w.make_consumer("s");
    {
        auto j = c.try_reserve();
        REQUIRE(j->id() == id4);
        j->bury();
    }
    auto h5 = c.try_reserve();
    REQUIRE(h5->id() == id5);
    clock.advance(2s);  // id5's TTR ends
    {
        auto j = c.try_reserve();
        REQUIRE(j->id() == id5);
        j->release();
    }
    CHECK(w.kick("s", 1) == 1u);  // id4
    const auto id6 = w.put("s", "f");
    w.remove(id6);
    auto h4 = c.try_reserve();
    REQUIRE(h4->id() == id4);
    w.put("t", "other", {.priority = 1023});
    w.pause("t", 3s);

    const auto s = *w.stats("s");
    CHECK(s.name == "s");
    CHECK(s.urgent == 2u);  // id1 (10) and id5 (3); id2 is 2000
    CHECK(s.ready == 3u);
    CHECK(s.reserved == 1u);
    CHECK(s.delayed == 1u);
    CHECK(s.buried == 0u);
    CHECK(s.total_jobs == 6u);
    CHECK(s.reserves == 4u);
    CHECK(s.timeouts == 1u);
    CHECK(s.releases == 1u);
    CHECK(s.buries == 1u);
    CHECK(s.kicks == 1u);
    CHECK(s.deletes == 1u);
    CHECK(s.dead_lettered == 0u);
    CHECK(s.pauses == 0u);
    CHECK(s.waiting == 0u);
    CHECK(s.watchers == 1u);
    CHECK(s.pause == 0s);
    CHECK(s.pause_left == 0s);

    const auto t = *w.stats("t");
    CHECK(t.urgent == 1u);
    CHECK(t.ready == 1u);
    CHECK(t.total_jobs == 1u);
    CHECK(t.watchers == 0u);
    CHECK(t.pause == 3s);
    CHECK(t.pause_left == 3s);
    CHECK(t.pauses == 1u);

    const auto j5 = w.peek(id5);
    CHECK(j5.id == id5);
    CHECK(j5.queue == "s");
    CHECK(j5.state == job_state::ready);
    CHECK(j5.priority == 3u);
    CHECK(j5.age == 2s);
    CHECK(j5.delay == 0s);
    CHECK(j5.ttr == 2s);
    CHECK(j5.time_left == 0s);
    CHECK(j5.reserves == 2u);
    CHECK(j5.timeouts == 1u);
    CHECK(j5.releases == 1u);
    CHECK(j5.buries == 0u);
    CHECK(j5.kicks == 0u);
    CHECK(*j5.payload == "e");

    const auto j4 = w.peek(id4);
    CHECK(j4.state == job_state::reserved);
    CHECK(j4.priority == 1u);
    CHECK(j4.age == 2s);
    CHECK(j4.ttr == 60s);
    CHECK(j4.time_left == 60s);
    CHECK(j4.reserves == 2u);
    CHECK(j4.timeouts == 0u);
    CHECK(j4.releases == 0u);
    CHECK(j4.buries == 1u);
    CHECK(j4.kicks == 1u);

    const auto j3 = w.peek(id3);
    CHECK(j3.state == job_state::delayed);
    CHECK(j3.priority == 5u);
    CHECK(j3.delay == 10s);
    CHECK(j3.time_left == 8s);
    CHECK(j3.age == 2s);
    CHECK(j3.reserves == 0u);

    CHECK(w.peek(id1).time_left == 0s);
    CHECK(w.peek(id2).priority == 2000u);

    const auto all = w.stats();
    CHECK(all.urgent == 3u);
    CHECK(all.ready == 4u);
    CHECK(all.reserved == 1u);
    CHECK(all.delayed == 1u);
    CHECK(all.buried == 0u);
    CHECK(all.total_jobs == 7u);
    CHECK(all.reserves == 4u);
    CHECK(all.timeouts == 1u);
    CHECK(all.releases == 1u);
    CHECK(all.buries == 1u);
    CHECK(all.kicks == 1u);
    CHECK(all.deletes == 1u);
    CHECK(all.dead_lettered == 0u);
    CHECK(all.queues == 2u);
    CHECK(all.waiting == 0u);
    CHECK(all.next_id == 8u);
    CHECK(w.queue_names() == std::vector<std::string>{"s", "t"});
    h4->remove();
    CHECK(w.stats("s")->reserved == 0u);
    CHECK(w.stats("s")->deletes == 2u);
}

// -------------------------------------------------------------- bad input

TEST_CASE("work_queues: rejected input throws the right broker_error and changes nothing", "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock, conq::work_queue_options{.max_payload = 8});
    w.put("q", "12345678");  // exactly max_payload
    w.put("q", "later", {.delay = 5s});
    const auto before = dump_all(w);
    const auto next = w.stats().next_id;
    CHECK(next == 3u);
    auto same = [&] {
        CHECK(dump_all(w) == before);
        CHECK(w.stats().next_id == next);
        CHECK(w.queue_names() == std::vector<std::string>{"q"});
    };
    const std::string name200(200, 'n');
    CHECK(errc_of([&] { w.put("", "x"); }) == broker_errc::invalid_name);
    CHECK(errc_of([&] { w.put(name200 + "n", "x"); }) == broker_errc::invalid_name);
    CHECK(errc_of([&] { w.put("-lead", "x"); }) == broker_errc::invalid_name);
    CHECK(errc_of([&] { w.put("a space", "x"); }) == broker_errc::invalid_name);
    CHECK(errc_of([&] { w.put("q\n", "x"); }) == broker_errc::invalid_name);
    same();
    CHECK(errc_of([&] { w.put("q", "x", {.delay = -1ns}); }) == broker_errc::invalid_argument);
    CHECK(errc_of([&] { w.put("q", "x", {.ttr = 0s}); }) == broker_errc::invalid_argument);
    CHECK(errc_of([&] { w.put("q", "x", {.ttr = -1s}); }) == broker_errc::invalid_argument);
    CHECK(errc_of([&] { w.put("q", "123456789"); }) == broker_errc::payload_too_large);
    CHECK(errc_of([&] { w.put("new", "123456789"); }) == broker_errc::payload_too_large);
    same();
    // Valid names at the edges are accepted.
    CHECK(errc_of([&] { w.put(name200, "x"); }) == std::nullopt);
    CHECK(errc_of([&] { w.put("a-+/;.$_()Z9", "x"); }) == std::nullopt);
    CHECK(w.purge(name200) == 1u);
    CHECK(w.purge("a-+/;.$_()Z9") == 1u);
    CHECK(w.drop_queue(name200));
    CHECK(w.drop_queue("a-+/;.$_()Z9"));

    const auto before2 = dump_all(w);
    const auto next2 = w.stats().next_id;
    w.drain();
    CHECK(errc_of([&] { w.put("q", "x"); }) == broker_errc::draining);
    CHECK(errc_of([&] { w.put("fresh", "x"); }) == broker_errc::draining);
    CHECK(dump_all(w) == before2);
    CHECK(w.stats().next_id == next2);
    // Draining: everything else still works.
    {
        auto j = w.try_reserve({"q"});
        REQUIRE(j);
        CHECK(j->payload() == "12345678");
        j->release();
    }
    const auto before3 = dump_all(w);
    w.close();
    CHECK(w.closed());
    CHECK(errc_of([&] { w.put("q", "x"); }) == broker_errc::closed);
    CHECK(errc_of([&] { w.put("other", "x"); }) == broker_errc::closed);
    CHECK(dump_all(w) == before3);
    CHECK(w.stats().next_id == next2);
    CHECK(errc_of([&] { (void)w.make_consumer("q").reserve_job(1); }) == broker_errc::closed);
    CHECK_FALSE(w.try_reserve({"q"}));
    CHECK(w.make_consumer("q").reserve_for(1s).status == reserve_status::closed);
}

// ------------------------------------------------------------------ close

TEST_CASE("work_queues: close wakes a blocked reserve; decisions on held jobs still work", "[work_queue]") {
    conq_test::watchdog dog("close wakes reserve", std::chrono::seconds(60));
    conq::manual_clock clock;
    wq_t w(clock);
    const auto id = w.put("held", "job");
    auto held = w.try_reserve({"held"});
    REQUIRE(held);
    auto c = w.make_consumer({"a", "b"});
    std::optional<wq_t::reserve_result> got;
    std::thread t([&] { got.emplace(c.reserve()); });  // no time-out at all
    wait_until([&] { return w.stats("a")->waiting == 1; });
    CHECK(w.stats("b")->waiting == 1u);
    w.close();
    t.join();
    REQUIRE(got);
    CHECK(got->status == reserve_status::closed);
    CHECK_FALSE(*got);
    CHECK(w.stats("a")->waiting == 0u);
    CHECK(held->held());
    held->remove();
    CHECK(errc_of([&] { (void)w.peek(id); }) == broker_errc::unknown_job);
    w.close();  // twice: nothing more
}

TEST_CASE("work_queues: several blocked reserves each get one job", "[work_queue]") {
    conq_test::watchdog dog("several blocked reserves", std::chrono::seconds(60));
    conq::manual_clock clock;
    wq_t w(clock);
    constexpr int n = 3;
    std::vector<wq_t::consumer> cs;
    cs.reserve(n);
    for (int i = 0; i < n; ++i) cs.push_back(w.make_consumer("q"));
    std::vector<std::optional<wq_t::reserve_result>> got(n);
    std::vector<std::thread> ts;
    for (int i = 0; i < n; ++i) ts.emplace_back([&, i] { got[i].emplace(cs[i].reserve_for(1h)); });
    wait_until([&] { return w.stats("q")->waiting == static_cast<std::size_t>(n); });
    std::set<conq::job_id> ids;
    for (int i = 0; i < n; ++i) ids.insert(w.put("q", "job " + std::to_string(i)));
    for (auto& t : ts) t.join();
    std::set<conq::job_id> seen;
    for (auto& g : got) {
        REQUIRE(g);
        REQUIRE(g->status == reserve_status::reserved);
        seen.insert((*g)->id());
    }
    CHECK(seen == ids);
    CHECK(w.stats("q")->reserved == static_cast<std::size_t>(n));
}

TEST_CASE("work_queues: blocked reserves are served first come, first served", "[work_queue]") {
    conq_test::watchdog dog("first come, first served", std::chrono::seconds(60));
    conq::manual_clock clock;
    wq_t w(clock);
    auto first = w.make_consumer({"a", "b"});
    auto second = w.make_consumer("b");
    std::optional<wq_t::reserve_result> got1, got2;
    std::thread t1([&] { got1.emplace(first.reserve()); });
    wait_until([&] { return w.stats("b")->waiting == 1; });
    std::thread t2([&] { got2.emplace(second.reserve()); });
    wait_until([&] { return w.stats("b")->waiting == 2; });
    const auto id = w.put("b", "one");
    t1.join();  // the one that waited longest gets it
    REQUIRE(got1);
    CHECK(got1->status == reserve_status::reserved);
    CHECK((*got1)->id() == id);
    CHECK(w.stats("b")->waiting == 1u);
    CHECK(w.stats("a")->waiting == 0u);
    const auto id2 = w.put("b", "two");
    t2.join();
    REQUIRE(got2);
    CHECK(got2->status == reserve_status::reserved);
    CHECK((*got2)->id() == id2);
}

// -------------------------------------------------------------- move-only

TEST_CASE("work_queues: move-only payloads", "[work_queue]") {
    conq::manual_clock clock;
    conq::work_queues<std::unique_ptr<int>, conq::manual_clock> w(clock);
    const auto a = w.put("q", std::make_unique<int>(41), {.priority = 2});
    const auto b = w.put("q", std::make_unique<int>(42), {.priority = 1});
    {
        auto j = w.try_reserve({"q"});
        REQUIRE(j);
        CHECK(j->id() == b);
        CHECK(*j->payload() == 42);
        j->release();
    }
    auto j = w.try_reserve({"q"});
    REQUIRE(j);
    CHECK(**w.peek(a).payload == 41);
    const auto& p = j->shared_payload();
    CHECK(**p == 42);
    j->remove();
    CHECK(**w.peek_ready("q")->payload == 41);
}

// ---------------------------------------------------------------- idleness

TEST_CASE("work_queues: await_idle returns once the last ready or reserved job is removed", "[work_queue]") {
    conq_test::watchdog dog("await_idle", std::chrono::seconds(60));
    conq::manual_clock clock;
    wq_t w(clock);
    CHECK(w.idle());
    CHECK(w.await_idle(0s));
    w.put("q", "delayed", {.delay = 1h});  // delayed and buried jobs do not count
    CHECK(w.idle());
    w.put("q", "one", {.priority = 0});
    w.put("q", "two", {.priority = 1});
    CHECK_FALSE(w.idle());
    auto first = w.try_reserve({"q"});
    REQUIRE(first);
    first->bury();
    auto j = w.try_reserve({"q"});  // "two", held by another thread until it removes it
    REQUIRE(j);
    CHECK_FALSE(w.idle());
    std::atomic<bool> go{false};
    std::thread t([&] {
        while (!go.load()) std::this_thread::yield();
        for (int i = 0; i < 100; ++i) std::this_thread::yield();  // likely blocked by now; right either way
        j->remove();
    });
    go.store(true);
    CHECK(w.await_idle(1h));
    t.join();
    CHECK(w.idle());
    CHECK(w.stats("q")->buried == 1u);
    CHECK(w.stats("q")->delayed == 1u);
}

TEST_CASE("work_queues: await_idle returns false when its clock time-out passes", "[work_queue]") {
    conq_test::watchdog dog("await_idle time-out", std::chrono::seconds(60));
    conq::manual_clock clock;
    wq_t w(clock);
    w.put("q", "ready");
    std::atomic<int> result{-1};
    std::thread t([&] { result.store(w.await_idle(5s) ? 1 : 0); });
    // The waiter's deadline is 5 s after it starts: move the clock until it has given up.
    while (result.load() < 0) {
        clock.advance(1s);
        std::this_thread::yield();
    }
    t.join();
    CHECK(result.load() == 0);
    CHECK_FALSE(w.idle());
    // Closed: false at once.
    w.close();
    CHECK_FALSE(w.await_idle(1h));
}

TEST_CASE("work_queues: options are checked; defaults apply to queues never configured", "[work_queue]") {
    conq::manual_clock clock;
    CHECK(errc_of([&] { wq_t w(clock, {.deadline_margin = -1ns}); }) == broker_errc::invalid_argument);
    CHECK(errc_of([&] { wq_t w(clock, {.defaults = {.max_deliveries = 1, .dead_letter = "no good"}}); }) ==
          broker_errc::invalid_name);
    wq_t w(clock, {.deadline_margin = 2s, .defaults = {.max_deliveries = 1, .dead_letter = "dead"}});
    CHECK(w.options().deadline_margin == 2s);
    const auto id = w.put("any", "job", {.ttr = 3s});
    {
        auto c = w.make_consumer("any");
        auto j = c.try_reserve();
        REQUIRE(j);
        CHECK(c.reserve_for(0s).status == reserve_status::timed_out);  // 3 s left, margin 2 s
        clock.advance(1s);
        CHECK(c.reserve_for(0s).status == reserve_status::deadline_soon);
    }  // dropped after its 1st delivery: dead-lettered by the defaults
    CHECK(w.peek(id).queue == "dead");
    CHECK(w.stats("any")->dead_lettered == 1u);
    // The convenience reserve over a list of queues.
    auto j = w.reserve_for({"any", "dead"}, 0s);
    REQUIRE(j);
    CHECK(j->id() == id);
    CHECK(&w.clock() == &clock);
}

TEST_CASE("work_queues: event-loop hooks: listener, next_event_in, poll_reserve, deadline_soon_in",
          "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    int calls = 0;
    w.set_listener([&] { ++calls; });
    auto c = w.make_consumer("q");
    CHECK(!w.next_event_in());
    CHECK(c.poll_reserve().status == reserve_status::timed_out);

    // A ready job calls the listener; a delayed one plans a timed event.
    const auto a = w.put("q", "a");
    CHECK(calls == 1);
    const auto b = w.put("q", "b", {.delay = 5s});
    CHECK(calls == 2);
    CHECK(w.next_event_in() == 5s);
    clock.advance(2s);
    CHECK(w.next_event_in() == 3s);

    // poll_reserve never waits; the time-to-run is the next event now.
    auto r = c.poll_reserve();
    REQUIRE(r.status == reserve_status::reserved);
    CHECK(r->id() == a);
    CHECK(c.deadline_soon_in() == 59s);  // ttr 60 s, margin 1 s
    CHECK(w.next_event_in() == 3s);
    clock.advance(3s);
    CHECK(w.next_event_in() == 0s);  // b is due: the next call moves it
    const int before = calls;
    CHECK(w.stats("q")->ready == 1u);
    CHECK(calls == before + 1);  // b became ready
    auto r2 = c.poll_reserve();
    REQUIRE(r2.status == reserve_status::reserved);
    CHECK(r2->id() == b);
    clock.advance(55s);
    CHECK(c.deadline_soon_in() == 1s);  // a was reserved at 2 s: its margin starts at 61 s
    clock.advance(1s);
    CHECK(c.deadline_soon_in() == 0s);
    CHECK(c.poll_reserve().status == reserve_status::deadline_soon);

    // abandon() gives a job back without counting a release; the listener
    // hears of it.
    const int before_abandon = calls;
    r.value->abandon();
    CHECK(calls > before_abandon);
    CHECK(w.peek(a).state == job_state::ready);
    CHECK(w.peek(a).releases == 0u);
    r.value.reset();  // a handle given up is decided: dropping it does nothing more
    CHECK(w.peek(a).releases == 0u);

    // close() calls the listener; poll_reserve then reports closed.
    const int before_close = calls;
    w.close();
    CHECK(calls == before_close + 1);
    CHECK(c.poll_reserve().status == reserve_status::closed);
    w.set_listener({});
}

TEST_CASE("work_queues: open_queue, skip_id, and totals that outlive a dropped queue", "[work_queue]") {
    conq::manual_clock clock;
    wq_t w(clock);
    w.open_queue("made");
    CHECK(w.stats("made"));
    CHECK(w.stats("made")->total_jobs == 0u);
    CHECK(errc_of([&] { w.open_queue("-bad"); }) == broker_errc::invalid_name);

    const auto first = w.put("made", "x");
    CHECK(w.skip_id() == first + 1);
    const auto second = w.put("made", "y");
    CHECK(second == first + 2);

    w.remove(first);
    w.remove(second);
    CHECK(w.drop_queue("made"));
    const auto all = w.stats();
    CHECK(all.total_jobs == 2u);
    CHECK(all.deletes == 2u);
    CHECK(all.queues == 0u);
}

// ----------------------------------------------------------------- durable

TEST_CASE("work_queues durable: a restart restores jobs in every state", "[work_queue][durable]") {
    temp_dir dir("conq-wq");
    const auto path = dir / "wq";
    wall_clock wall;
    conq::job_id ready = 0, delayed = 0, buried = 0, reserved = 0, removed = 0, expired = 0, kicked = 0,
                 other = 0;
    {
        conq::manual_clock clock;
        wq_t w(path, durable(wall), clock);
        CHECK(w.journal() != nullptr);
        ready = w.put("q", "ready", {.priority = 7, .ttr = 9s});
        delayed = w.put("q", "delayed", {.priority = 3, .delay = 10s});
        buried = w.put("q", "buried", {.priority = 0});
        reserved = w.put("q", "reserved", {.priority = 1});
        removed = w.put("q", "removed");
        expired = w.put("q", "expired", {.priority = 2, .ttr = 1s});
        kicked = w.put("q", "kicked", {.priority = 2000, .delay = 1h});
        other = w.put("other", std::string(3000, 'o'));
        {
            auto j = w.try_reserve({"q"});
            REQUIRE(j->id() == buried);
            j->bury(9);
        }
        auto h = w.try_reserve({"q"});
        REQUIRE(h->id() == reserved);
        auto e = w.try_reserve({"q"});
        REQUIRE(e->id() == expired);
        w.remove(removed);
        w.kick_job(kicked);
        clock.advance(2s);  // expired's TTR runs out
        wall.advance(2s);
        CHECK(w.peek(expired).state == job_state::ready);
        CHECK(w.peek(reserved).state == job_state::reserved);
        // What a process killed now leaves behind, three times.
        snapshot(path, dir / "crash-a");
        snapshot(path, dir / "crash-b");
        snapshot(path, dir / "crash-c");
    }  // h is dropped (released) before w closes: that release is in "wq"

    SECTION("reopened at once") {
        conq::manual_clock clock;  // a new process: a new clock
        wq_t w(dir / "crash-a", durable(wall), clock);
        auto r = w.peek(ready);
        CHECK(r.state == job_state::ready);
        CHECK(r.queue == "q");
        CHECK(r.priority == 7u);
        CHECK(r.ttr == 9s);
        CHECK(r.age == 2s);
        CHECK(*r.payload == "ready");
        auto d = w.peek(delayed);
        CHECK(d.state == job_state::delayed);
        CHECK(d.priority == 3u);
        CHECK(d.delay == 10s);
        CHECK(d.time_left == 8s);
        auto b = w.peek(buried);
        CHECK(b.state == job_state::buried);
        CHECK(b.priority == 9u);
        CHECK(b.buries == 1u);
        CHECK(b.reserves == 1u);
        auto h = w.peek(reserved);
        CHECK(h.state == job_state::ready);  // was reserved: ready again
        CHECK(h.reserves == 1u);             // its reserve counted
        CHECK(h.releases == 0u);
        CHECK(h.priority == 1u);
        auto e = w.peek(expired);
        CHECK(e.state == job_state::ready);
        CHECK(e.timeouts == 1u);
        CHECK(e.reserves == 1u);
        auto k = w.peek(kicked);
        CHECK(k.state == job_state::ready);
        CHECK(k.kicks == 1u);
        CHECK(errc_of([&] { (void)w.peek(removed); }) == broker_errc::unknown_job);
        CHECK(w.peek(other).queue == "other");
        CHECK(*w.peek(other).payload == std::string(3000, 'o'));
        const auto s = *w.stats("q");
        CHECK(s.ready == 4u);
        CHECK(s.delayed == 1u);
        CHECK(s.buried == 1u);
        CHECK(s.reserved == 0u);
        CHECK(w.queue_names() == std::vector<std::string>{"other", "q"});
        // Ids go on after the highest.
        CHECK(w.stats().next_id == other + 1);
        CHECK(w.put("q", "new") == other + 1);
        // Ready order: reserved (1), expired (2), ready (7), new (1024), kicked (2000).
        std::vector<conq::job_id> order;
        while (const auto id = take(w, {"q"})) order.push_back(id);
        CHECK(order == std::vector<conq::job_id>{reserved, expired, ready, other + 1, kicked});
        // The delay runs on from where it was: 8 s more.
        clock.advance(7s);
        wall.advance(7s);
        CHECK(w.peek(delayed).state == job_state::delayed);
        CHECK(take(w, {"q"}) == 0u);
        clock.advance(1s);
        wall.advance(1s);
        CHECK(take(w, {"q"}) == delayed);
    }
    SECTION("reopened after 5 s of wall-clock time away") {
        wall.advance(5s);
        conq::manual_clock clock;
        wq_t w(dir / "crash-b", durable(wall), clock);
        CHECK(w.peek(delayed).time_left == 3s);
        clock.advance(2999ms);
        wall.advance(2999ms);
        CHECK(w.peek(delayed).state == job_state::delayed);
        clock.advance(1ms);
        wall.advance(1ms);
        CHECK(w.peek(delayed).state == job_state::ready);
        CHECK(w.peek(ready).age == 10s);  // 2 s before, 5 s away, 3 s after
    }
    SECTION("reopened after its due time has passed") {
        wall.advance(1h);
        conq::manual_clock clock;
        wq_t w(dir / "crash-c", durable(wall), clock);
        CHECK(w.peek(delayed).state == job_state::ready);
        CHECK(w.stats("q")->delayed == 0u);
    }
    SECTION("the directory closed normally: the dropped handle's release is kept") {
        conq::manual_clock clock;
        wq_t w(path, durable(wall), clock);
        auto h = w.peek(reserved);
        CHECK(h.state == job_state::ready);
        CHECK(h.reserves == 1u);
        CHECK(h.releases == 1u);
        CHECK(w.stats().next_id == other + 1);
    }
}

TEST_CASE("work_queues durable: ids continue after the highest, removed or not", "[work_queue][durable]") {
    temp_dir dir("conq-wq");
    wall_clock wall;
    conq::manual_clock clock;
    {
        wq_t w(dir.path(), durable(wall), clock);
        for (int i = 1; i <= 5; ++i) CHECK(w.put("q", "job " + std::to_string(i)) == static_cast<conq::job_id>(i));
        w.remove(5);
        auto j = w.try_reserve({"q"});
        REQUIRE(j->id() == 1u);
        j->remove();
    }
    {
        wq_t w(dir.path(), durable(wall), clock);
        CHECK(w.stats().next_id == 6u);
        CHECK(w.stats("q")->ready == 3u);
        CHECK(w.put("q", "six") == 6u);
        w.purge("q");
    }
    wq_t w(dir.path(), durable(wall), clock);
    CHECK(w.stats().ready == 0u);
    CHECK(w.put("q", "seven") == 7u);
}

TEST_CASE("work_queues durable: release with a new priority and delay survives a restart",
          "[work_queue][durable]") {
    temp_dir dir("conq-wq");
    wall_clock wall;
    conq::job_id id = 0, short_delay = 0;
    {
        conq::manual_clock clock;
        wq_t w(dir.path(), durable(wall), clock);
        id = w.put("q", "job", {.priority = 10});
        short_delay = w.put("q", "short", {.priority = 20, .delay = 1s});
        auto j = w.try_reserve({"q"});
        REQUIRE(j->id() == id);
        j->release(4, 30s);
        clock.advance(1s);
        wall.advance(1s);
        auto k = w.try_reserve({"q"});
        REQUIRE(k->id() == short_delay);
        k->release(std::nullopt, 1min);  // longer than the delay it was put with
        CHECK(w.peek(id).time_left == 29s);
        CHECK(w.peek(short_delay).time_left == 60s);
    }
    conq::manual_clock clock;
    wq_t w(dir.path(), durable(wall), clock);
    const auto a = w.peek(id);
    CHECK(a.state == job_state::delayed);
    CHECK(a.priority == 4u);
    CHECK(a.delay == 30s);
    CHECK(a.time_left == 29s);
    CHECK(a.releases == 1u);
    const auto b = w.peek(short_delay);
    CHECK(b.state == job_state::delayed);
    CHECK(b.delay == 60s);
    CHECK(b.time_left == 60s);
    clock.advance(29s);
    wall.advance(29s);
    CHECK(w.peek(id).state == job_state::ready);
    CHECK(w.peek(short_delay).state == job_state::delayed);
    clock.advance(31s);
    wall.advance(31s);
    CHECK(w.peek(short_delay).state == job_state::ready);
}

TEST_CASE("work_queues durable: a reserve by id keeps its reserve count across a restart",
          "[work_queue][durable]") {
    temp_dir dir("conq-wq");
    wall_clock wall;
    conq::job_id id = 0;
    {
        conq::manual_clock clock;
        wq_t w(dir / "wq", durable(wall), clock);
        id = w.put("q", "job", {.delay = 1h});
        auto c = w.make_consumer("q");
        auto j = c.reserve_job(id);
        CHECK(j.deliveries() == 1u);
        snapshot(dir / "wq", dir / "crash");
    }
    conq::manual_clock clock;
    wq_t w(dir / "crash", durable(wall), clock);
    const auto info = w.peek(id);
    CHECK(info.state == job_state::ready);
    CHECK(info.reserves == 1u);
}

TEST_CASE("work_queues durable: a dead-lettered job stays in its new queue after a restart",
          "[work_queue][durable]") {
    temp_dir dir("conq-wq");
    wall_clock wall;
    conq::job_id released = 0, timed_out = 0;
    {
        conq::manual_clock clock;
        wq_t w(dir.path(), durable(wall), clock);
        w.configure("q", {.max_deliveries = 1, .dead_letter = "dlq"});
        released = w.put("q", "released", {.priority = 1});
        timed_out = w.put("q", "timed out", {.priority = 2, .ttr = 1s});
        auto j = w.try_reserve({"q"});
        REQUIRE(j->id() == released);
        j->release();
        auto k = w.try_reserve({"q"});
        REQUIRE(k->id() == timed_out);
        clock.advance(1s);
        CHECK(w.peek(timed_out).queue == "dlq");
        CHECK(w.stats("q")->dead_lettered == 2u);
    }
    conq::manual_clock clock;
    wq_t w(dir.path(), durable(wall), clock);
    CHECK(w.peek(released).queue == "dlq");
    CHECK(w.peek(released).state == job_state::ready);
    CHECK(w.peek(released).releases == 1u);
    CHECK(w.peek(timed_out).queue == "dlq");
    CHECK(w.peek(timed_out).timeouts == 1u);
    CHECK(w.stats("dlq")->ready == 2u);
    CHECK(take(w, {"q"}) == 0u);
    CHECK(take(w, {"dlq"}) == released);
    CHECK(take(w, {"dlq"}) == timed_out);
}

namespace {
struct point {
    std::int32_t x;
    double y;
    char tag[5];
};
}  // namespace

TEST_CASE("work_queues durable: trivially copyable and byte-vector payloads round-trip", "[work_queue][durable]") {
    temp_dir dir("conq-wq");
    wall_clock wall;
    conq::manual_clock clock;
    {
        conq::work_queues<point, conq::manual_clock> w(dir / "points", durable(wall), clock);
        w.put("p", point{-7, 2.5, "abcd"});
        w.put("p", point{1 << 30, -0.125, "wxyz"}, {.priority = 0});
    }
    {
        conq::work_queues<point, conq::manual_clock> w(dir / "points", durable(wall), clock);
        auto j = w.try_reserve({"p"});
        REQUIRE(j);
        CHECK(j->id() == 2u);
        CHECK(j->payload().x == (1 << 30));
        CHECK(j->payload().y == -0.125);
        CHECK(std::string(j->payload().tag) == "wxyz");
        j->remove();
        j = w.try_reserve({"p"});
        REQUIRE(j);
        CHECK(j->payload().x == -7);
        CHECK(j->payload().y == 2.5);
        CHECK(std::string(j->payload().tag) == "abcd");
    }
    using bytes = std::vector<std::byte>;
    std::vector<bytes> sent;
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{255}, std::size_t{70000}}) {
        bytes b(n);
        for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((i * 7 + n) & 0xff);
        sent.push_back(std::move(b));
    }
    {
        conq::work_queues<bytes, conq::manual_clock> w(dir / "bytes", durable(wall), clock);
        for (const auto& b : sent) w.put("b", b);
    }
    conq::work_queues<bytes, conq::manual_clock> w(dir / "bytes", durable(wall), clock);
    std::vector<bytes> got;
    while (auto j = w.try_reserve({"b"})) {
        got.push_back(j->payload());
        j->remove();
    }
    CHECK(got == sent);
}

TEST_CASE("work_queues durable: many put/remove cycles keep the journal small", "[work_queue][durable]") {
    temp_dir dir("conq-wq");
    wall_clock wall;
    conq::manual_clock clock;
    struct live_job {
        std::string payload;
        job_state state;
        std::uint32_t priority;
    };
    std::map<conq::job_id, live_job> live;
    std::size_t most_segments = 0;
    {
        wq_t w(dir.path(), durable(wall, 1 << 16), clock);
        // Long-lived jobs in every resting state.
        for (int i = 0; i < 30; ++i) {
            const std::string p = "keep " + std::to_string(i) + std::string(40, 'k');
            const std::uint32_t pri = 5000 + static_cast<std::uint32_t>(i);
            const auto id = w.put("keep", p, {.priority = pri, .delay = i % 3 == 1 ? 1h : 0s});
            live[id] = {p, i % 3 == 1 ? job_state::delayed : job_state::ready, pri};
        }
        for (int i = 0; i < 5; ++i) {
            auto j = w.try_reserve({"keep"});
            REQUIRE(j);
            live[j->id()].state = job_state::buried;
            j->bury();
        }
        for (int i = 0; i < 20000; ++i) {
            const auto id = w.put("churn", "payload " + std::to_string(i) + std::string(60, 'x'));
            if (i % 2 == 0) {
                w.remove(id);
            } else {
                auto j = w.try_reserve({"churn"});
                REQUIRE(j);
                REQUIRE(j->id() == id);
                j->remove();
            }
            if (i % 100 == 0) most_segments = std::max(most_segments, w.journal()->segment_count());
        }
        // A few jobs that are still there at the end.
        for (int i = 0; i < 3; ++i) {
            const std::string p = "late " + std::to_string(i);
            live[w.put("churn", p, {.priority = 1})] = {p, job_state::ready, 1};
        }
        most_segments = std::max(most_segments, w.journal()->segment_count());
        CHECK(w.stats().next_id == 30u + 20000u + 3u + 1u);
    }
    INFO("most segments " << most_segments);
    // About 4100 records of ~100 bytes between compactions: a handful of 64 KiB segments.
    CHECK(most_segments <= 12u);
    wq_t w(dir.path(), durable(wall, 1 << 16), clock);
    CHECK(w.journal()->segment_count() <= 12u);
    CHECK(w.stats().next_id == 30u + 20000u + 3u + 1u);
    const auto s = w.stats();
    CHECK(s.ready + s.delayed + s.buried == live.size());
    for (const auto& [id, want] : live) {
        INFO("job " << id);
        const auto got = w.peek(id);
        CHECK(*got.payload == want.payload);
        CHECK(got.state == want.state);
        CHECK(got.priority == want.priority);
    }
}

TEST_CASE("work_queues durable: a put the journal refuses adds nothing", "[work_queue][durable]") {
    temp_dir dir("conq-wq");
    wall_clock wall;
    conq::manual_clock clock;
    auto o = durable(wall);
    o.max_record_size = 4096;  // a 5000-byte payload passes max_payload but not the journal
    {
        wq_t w(dir.path(), o, clock);
        const auto first = w.put("q", "first");
        const auto before = dump_all(w);
        CHECK_THROWS_AS(w.put("q", std::string(5000, 'x')), conq::durable_error);
        CHECK(dump_all(w) == before);
        CHECK(w.stats().next_id == first + 1);
        CHECK_FALSE(w.journal()->failed());
        CHECK(w.put("q", "second") == first + 1);
    }
    wq_t w(dir.path(), o, clock);
    CHECK(w.stats().ready == 2u);
    CHECK(*w.peek(1).payload == "first");
    CHECK(*w.peek(2).payload == "second");
    CHECK(w.stats().next_id == 3u);
}

TEST_CASE("work_queues durable: ids are not reused after compaction dropped the highest id's records",
          "[work_queue][durable]") {
    temp_dir dir("conq-wq");
    wall_clock wall;
    conq::manual_clock clock;
    std::size_t begin_moved = 0;
    {
        wq_t w(dir.path(), durable(wall, 1 << 16), clock);
        const auto a = w.put("q", "long-lived");
        const auto b = w.put("q", "gone");
        w.remove(b);
        // Only updates of a from now on: the segments with b's records go.
        for (int i = 0; i < 20000; ++i) {
            auto j = w.try_reserve({"q"});
            REQUIRE(j);
            REQUIRE(j->id() == a);
            j->release();
        }
        begin_moved = w.journal()->begin_offset();
        CHECK(w.journal()->segment_count() <= 12u);
        CHECK(w.peek(a).reserves == 20000u);
    }
    CHECK(begin_moved > 3u);  // the first records (a's and b's) were dropped
    wq_t w(dir.path(), durable(wall, 1 << 16), clock);
    CHECK(w.stats().next_id == 3u);
    CHECK(w.put("q", "new") == 3u);
    CHECK(w.peek(1).reserves == 20000u);
    CHECK(w.peek(1).releases == 20000u);
    CHECK(w.stats("q")->ready == 2u);
}

TEST_CASE("work_queues durable: buried jobs keep their burial order across a restart", "[work_queue][durable]") {
    temp_dir dir("conq-wq");
    wall_clock wall;
    conq::manual_clock clock;
    std::vector<conq::job_id> ids;
    {
        wq_t w(dir.path(), durable(wall), clock);
        for (int i = 0; i < 4; ++i) ids.push_back(w.put("q", "job " + std::to_string(i), {.priority = 10}));
        std::vector<wq_t::job> held;
        for (int i = 0; i < 4; ++i) held.push_back(std::move(*w.try_reserve({"q"})));
        // Buried in the order 3, 1, 0, 2 (not the order they were put).
        for (const int k : {3, 1, 0, 2}) held[static_cast<std::size_t>(k)].bury();
        CHECK(w.peek_buried("q")->id == ids[3]);
    }
    wq_t w(dir.path(), durable(wall), clock);
    std::vector<conq::job_id> kicked;
    while (auto b = w.peek_buried("q")) {
        kicked.push_back(b->id);
        CHECK(w.kick("q", 1) == 1u);
    }
    CHECK(kicked == std::vector<conq::job_id>{ids[3], ids[1], ids[0], ids[2]});
    CHECK(w.peek(ids[0]).buries == 1u);
    CHECK(w.stats("q")->buries == 0u);  // counters of the queue start again; the job's are kept
}

TEST_CASE("work_queues durable: burial order and delivery counts survive compaction and a restart",
          "[work_queue][durable]") {
    temp_dir dir("conq-wq");
    wall_clock wall;
    conq::manual_clock clock;
    std::vector<conq::job_id> ids;
    conq::job_id poison = 0;
    {
        wq_t w(dir.path(), durable(wall, 1 << 16), clock);
        w.configure("work", {.max_deliveries = 2});
        for (int i = 0; i < 4; ++i) ids.push_back(w.put("q", "job " + std::to_string(i), {.priority = 10}));
        std::vector<wq_t::job> held;
        for (int i = 0; i < 4; ++i) held.push_back(std::move(*w.try_reserve({"q"})));
        for (const int k : {2, 0, 3, 1}) held[static_cast<std::size_t>(k)].bury();
        // A job delivered once whose handle is dropped: one attempt left.
        poison = w.put("work", "poison");
        (void)w.try_reserve({"work"});
        // Enough churn that every old full record is rewritten and the
        // segments holding them are deleted.
        const auto first_base = w.journal()->segment_bases().front();
        for (int i = 0; i < 20000; ++i) w.remove(w.put("churn", std::string(60, 'x')));
        REQUIRE(w.journal()->begin_offset() > first_base);
        CHECK(w.peek(poison).reserves == 1u);
    }
    wq_t w(dir.path(), durable(wall, 1 << 16), clock);
    w.configure("work", {.max_deliveries = 2});  // settings are the program's, not the journal's
    std::vector<conq::job_id> kicked;
    while (auto b = w.peek_buried("q")) {
        kicked.push_back(b->id);
        REQUIRE(w.kick("q", 1) == 1u);
    }
    CHECK(kicked == std::vector<conq::job_id>{ids[2], ids[0], ids[3], ids[1]});
    // The second delivery since it entered "work" is its last.
    {
        auto j = w.try_reserve({"work"});
        REQUIRE(j);
        CHECK(j->id() == poison);
        CHECK(j->deliveries() == 2u);
    }
    CHECK(w.peek(poison).state == job_state::buried);
    CHECK(w.stats("work")->dead_lettered == 1u);
}

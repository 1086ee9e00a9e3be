// Unit tests of conq::streams (include/conq/broker/stream.hpp): the fixed
// key-to-partition function, round-robin spreading, dense offsets, reads and
// replay, consumer-group assignment and rebalancing, commits and resuming
// (with redelivery of what was not committed), seeks, retention by bytes and
// by age in memory (manual_clock) and on disk (a hand-moved wall clock),
// restarts of a durable directory, the errors, and blocked polls woken by
// appends, clock advances and close(). No test sleeps.
#include <catch2/catch.hpp>

#include "temp_dir.hpp"
#include "watchdog.hpp"

#include <conq/broker/stream.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <stdexcept>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using conq::broker_errc;
using conq_test::temp_dir;

/// A payload whose codec refuses to decode "poison" (to test decode failures).
struct picky {
    std::string s;
};
template <>
struct conq::codec<picky> {
    static void encode(const picky& v, std::string& out) { out.append(v.s); }
    static picky decode(std::span<const std::byte> in) {
        picky v{std::string(reinterpret_cast<const char*>(in.data()), in.size())};
        if (v.s == "poison") throw std::runtime_error("picky: cannot decode poison");
        return v;
    }
};

namespace {

using mem_streams = conq::streams<std::string, conq::manual_clock>;
using record = conq::stream_record<std::string>;

/// Runs `f` and returns the broker_errc it threw (fails if it threw nothing).
template <class F>
broker_errc error_of(F&& f) {
    try {
        f();
    } catch (const conq::broker_error& e) {
        CHECK(e.code().category() == conq::broker_category());
        return e.errc();
    }
    FAIL("no broker_error was thrown");
    return broker_errc{};
}

/// Everything a consumer can take now (never waits).
template <class C>
std::vector<record> drain(C& c) {
    std::vector<record> out;
    while (c.poll(out, 7, std::chrono::nanoseconds(0)) != 0) {
    }
    return out;
}

std::string value(int i) { return "value-" + std::to_string(i); }

conq::durable_options small_segments() {
    conq::durable_options o;
    o.segment_size = 16 << 10;  // 16 KiB: a few dozen records each
    o.max_record_size = 4096;
    o.prefault = false;
    return o;
}

/// Waits (yielding, under a watchdog) until `n` polls are blocked in `st`.
template <class Stream>
void until_waiting(const Stream& st, std::size_t n) {
    conq_test::watchdog dog("a poll to block", std::chrono::seconds(30));
    while (st.stats().waiting_polls < n) std::this_thread::yield();
}

}  // namespace

// ------------------------------------------------------------------ keys

TEST_CASE("streams: the key-to-partition function is fixed", "[stream][keys]") {
    struct row {
        const char* key;
        std::uint32_t p4, p7, p16;
        std::uint64_t hash;
    };
    // Computed once (and checked against an independent implementation): a
    // change here moves every key of every existing stream.
    const row table[] = {
        {"", 2, 1, 6, 0xefd01f60ba992926ULL},
        {"a", 3, 1, 11, 0x82a2a958a9bece5bULL},
        {"user-1", 1, 2, 5, 0x41a2fca5c68401c5ULL},
        {"user-2", 3, 5, 11, 0xa9f4ad0c2263143bULL},
        {"order/42", 1, 5, 9, 0x2ba27c8297176ee9ULL},
        {"customer-17", 1, 5, 9, 0x6551bef209d8bb69ULL},
        {"hello world", 1, 6, 5, 0x7c6d8c019b6ee5d5ULL},
    };
    for (const auto& r : table) {
        INFO("key \"" << r.key << "\"");
        CHECK(conq::stream_key_hash(r.key) == r.hash);
        CHECK(conq::stream_key_partition(r.key, 4) == r.p4);
        CHECK(conq::stream_key_partition(r.key, 7) == r.p7);
        CHECK(conq::stream_key_partition(r.key, 16) == r.p16);
        CHECK(conq::stream_key_partition(r.key, 1) == 0);
    }
    static_assert(conq::stream_key_partition("user-1", 4) == 1, "usable in constant expressions");

    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("orders", {.partitions = 4});
    for (int i = 0; i < 50; ++i) {
        for (const auto& r : table) {
            const auto at = st.append(r.key, value(i));
            CHECK(at.partition == r.p4);
        }
    }
    // Same key, same partition, in append order; offsets are dense.
    std::map<std::string, int> next;
    for (std::uint32_t p = 0; p < 4; ++p) {
        std::vector<record> out;
        st.read(p, 0, 100000, out);
        for (std::size_t i = 0; i < out.size(); ++i) {
            CHECK(out[i].offset == i);
            CHECK(out[i].partition == p);
            CHECK(out[i].keyed());
            CHECK(conq::stream_key_partition(out[i].key(), 4) == p);
            CHECK(out[i].payload() == value(next[std::string(out[i].key())]++));
        }
    }
    for (const auto& r : table) CHECK(next[r.key] == 50);
}

TEST_CASE("streams: unkeyed appends go round robin, offsets dense per partition", "[stream][keys]") {
    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("events", {.partitions = 4});
    std::vector<std::uint64_t> expect(4, 0);
    std::set<std::uint32_t> window;
    for (int i = 0; i < 400; ++i) {
        const auto at = st.append(value(i));
        CHECK(at.offset == expect[at.partition]++);
        window.insert(at.partition);
        if (i % 4 == 3) {
            CHECK(window.size() == 4);  // each run of four covers every partition
            window.clear();
        }
    }
    for (std::uint32_t p = 0; p < 4; ++p) {
        CHECK(st.begin_offset(p) == 0);
        CHECK(st.end_offset(p) == 100);
        std::vector<record> out;
        CHECK(st.read(p, 0, 1000, out) == 100);
        for (const auto& r : out) CHECK_FALSE(r.keyed());
    }
    const auto stats = st.stats();
    CHECK(stats.appended == 400);
    REQUIRE(stats.partitions.size() == 4);
    CHECK(stats.partitions[2].end_offset == 100);
}

// ----------------------------------------------------------------- reads

TEST_CASE("streams: read in batches, replay from any offset, bounds", "[stream][read]") {
    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("log");
    const int n = 3000;  // several chunks
    for (int i = 0; i < n; ++i) CHECK(st.append(value(i)).offset == static_cast<std::uint64_t>(i));

    std::vector<record> all;
    std::uint64_t at = 0;
    while (const std::size_t got = st.read(0, at, 500, all)) at += got;
    REQUIRE(all.size() == static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        CHECK(all[static_cast<std::size_t>(i)].offset == static_cast<std::uint64_t>(i));
        CHECK(all[static_cast<std::size_t>(i)].payload() == value(i));
    }
    std::vector<record> mid;
    CHECK(st.read(0, 1500, 10, mid) == 10);
    CHECK(mid.front().payload() == value(1500));
    CHECK(mid.back().payload() == value(1509));

    std::vector<record> none;
    CHECK(st.read(0, n, 10, none) == 0);
    CHECK(error_of([&] { st.read(0, n + 1, 10, none); }) == broker_errc::offset_out_of_range);
    CHECK(error_of([&] { st.read(1, 0, 10, none); }) == broker_errc::invalid_argument);
    CHECK(none.empty());

    // Records read earlier stay valid while more is appended.
    for (int i = n; i < 2 * n; ++i) st.append(value(i));
    CHECK(all[1234].payload() == value(1234));
    CHECK(mid[3].payload() == value(1503));
}

// ---------------------------------------------------------------- groups

TEST_CASE("streams: group assignment with 1, 2, 3 and 5 members over 4 partitions", "[stream][groups]") {
    for (const std::size_t members : {1u, 2u, 3u, 5u}) {
        INFO(members << " members");
        conq::manual_clock clock;
        mem_streams s(clock);
        auto& st = s.create("t", {.partitions = 4});
        std::vector<mem_streams::consumer> cs;
        // Joined in reverse name order: the assignment follows names.
        for (std::size_t i = members; i-- > 0;) cs.push_back(st.join("g", "member" + std::to_string(i)));
        std::reverse(cs.begin(), cs.end());
        std::vector<int> owners(4, 0);
        std::size_t most = 0, least = 99;
        for (std::size_t i = 0; i < members; ++i) {
            const auto a = cs[i].assignment();
            most = std::max(most, a.size());
            least = std::min(least, a.size());
            for (const auto p : a) {
                ++owners[p];
                CHECK(p % members == i);  // round robin over the sorted members
            }
        }
        for (const int o : owners) CHECK(o == 1);  // each partition exactly one member
        CHECK(most - least <= 1);
        if (members == 5) CHECK(least == 0);
        CHECK(st.stats().members == members);
    }
}

TEST_CASE("streams: joins, leaves and destruction rebalance the group", "[stream][groups]") {
    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("t", {.partitions = 4});
    auto a = st.join("g", "a");
    const auto g1 = a.generation();
    CHECK(a.assignment() == std::vector<std::uint32_t>{0, 1, 2, 3});
    auto b = st.join("g", "b");
    CHECK(a.generation() == g1 + 1);
    CHECK(a.assignment() == std::vector<std::uint32_t>{0, 2});
    CHECK(b.assignment() == std::vector<std::uint32_t>{1, 3});
    {
        auto c = st.join("g", "c");
        CHECK(c.assignment() == std::vector<std::uint32_t>{2});
        CHECK(a.assignment() == std::vector<std::uint32_t>{0, 3});
        CHECK(b.generation() == g1 + 2);
    }  // c's destruction leaves the group
    CHECK(b.generation() == g1 + 3);
    CHECK(a.assignment() == std::vector<std::uint32_t>{0, 2});

    // A move keeps the membership; the moved-from object leaves nothing.
    auto moved = std::move(b);
    CHECK_FALSE(b.joined());
    CHECK(moved.generation() == g1 + 3);
    CHECK(moved.assignment() == std::vector<std::uint32_t>{1, 3});

    moved.leave();
    CHECK_FALSE(moved.joined());
    CHECK(moved.assignment().empty());
    CHECK(a.assignment() == std::vector<std::uint32_t>{0, 1, 2, 3});
    CHECK(a.generation() == g1 + 4);
    std::vector<record> out;
    CHECK(error_of([&] { moved.poll(out, 1, 0ns); }) == broker_errc::invalid_argument);
    CHECK(error_of([&] { moved.commit(); }) == broker_errc::invalid_argument);
    moved.leave();  // idempotent

    // Another group is independent.
    auto other = st.join("h");
    CHECK(other.assignment() == std::vector<std::uint32_t>{0, 1, 2, 3});
    CHECK(a.generation() == g1 + 4);
    CHECK(st.groups() == std::vector<std::string>{"g", "h"});
}

TEST_CASE("streams: commit and resume; uncommitted records are redelivered after a rebalance",
          "[stream][groups][commit]") {
    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("t", {.partitions = 2});
    for (int i = 0; i < 10; ++i) st.append(value(i));  // 5 per partition

    auto a = st.join("g", "a");
    CHECK(drain(a).size() == 10);
    a.commit();
    CHECK(st.committed("g", 0) == 5);
    CHECK(st.committed("g", 1) == 5);
    for (int i = 10; i < 14; ++i) st.append(value(i));  // offsets 5 and 6 of each
    CHECK(drain(a).size() == 4);                        // returned, not committed
    CHECK(a.position(1) == 7);

    auto b = st.join("g", "b");  // a keeps p0 (and its position), b takes p1
    const auto got = drain(b);
    REQUIRE(got.size() == 2);
    CHECK(got[0].partition == 1);
    CHECK(got[0].offset == 5);  // from the committed offset: redelivered
    CHECK(got[0].payload() == value(11));
    CHECK(got[1].offset == 6);
    CHECK(drain(a).empty());
    CHECK(a.position(0) == 7);
    CHECK(error_of([&] { (void)a.position(1); }) == broker_errc::invalid_argument);

    a.commit();  // commits p0 only: p1 is no longer a's
    CHECK(st.committed("g", 0) == 7);
    CHECK(st.committed("g", 1) == 5);
    b.commit(1, 6);
    CHECK(st.committed("g", 1) == 6);
    CHECK(b.position(1) == 7);  // commit(p, n) does not move the position
    CHECK(error_of([&] { b.commit(0, 1); }) == broker_errc::invalid_argument);
    CHECK(error_of([&] { b.commit(1, 8); }) == broker_errc::offset_out_of_range);
    CHECK(error_of([&] { b.commit(2, 0); }) == broker_errc::invalid_argument);
    CHECK(st.committed("g", 1) == 6);
    CHECK_FALSE(s.idle());

    // Everyone leaves; a new member resumes at the committed offsets.
    a.leave();
    b.leave();
    auto c = st.join("g");
    CHECK(c.position(0) == 7);
    CHECK(c.position(1) == 6);
    const auto rest = drain(c);
    REQUIRE(rest.size() == 1);
    CHECK(rest[0].payload() == value(13));
    c.commit();
    CHECK(s.idle());

    // A group that never committed starts at the beginning.
    CHECK(st.committed("fresh", 0) == 0);
    auto f = st.join("fresh");
    CHECK(drain(f).size() == 14);
    CHECK_FALSE(s.idle());
}

TEST_CASE("streams: a partition taken away and given back while a member looked away restarts at the commit",
          "[stream][groups][commit]") {
    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("t", {.partitions = 2});
    for (int i = 0; i < 10; ++i) st.append(value(i));
    auto a = st.join("g", "a");
    CHECK(drain(a).size() == 10);  // nothing committed
    {
        auto b = st.join("g", "b");  // takes p1 while a does not look
        CHECK(b.assignment() == std::vector<std::uint32_t>{1});
        CHECK(drain(b).size() == 5);
        b.commit(1, 3);
    }  // b leaves: p1 goes back to a
    CHECK(a.assignment() == std::vector<std::uint32_t>{0, 1});
    CHECK(a.position(0) == 5);  // kept all along
    CHECK(a.position(1) == 3);  // from the group's commit, not a's stale 5
    const auto again = drain(a);
    REQUIRE(again.size() == 2);
    CHECK(again[0].offset == 3);
    a.commit();
    a.commit();  // unchanged offsets: nothing new to store
    CHECK(st.committed("g", 0) == 5);
    CHECK(st.committed("g", 1) == 5);
}

TEST_CASE("streams: position, seek and commit(p) answer by the assignment as last learned",
          "[stream][groups][commit]") {
    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("t", {.partitions = 2});
    for (int i = 0; i < 10; ++i) st.append(value(i));  // 5 per partition
    auto a = st.join("g", "a");
    CHECK(drain(a).size() == 10);
    const std::vector<std::uint32_t> seen = a.assignment();
    REQUIRE(seen == std::vector<std::uint32_t>{0, 1});

    auto b = st.join("g", "b");  // takes p1 while a walks its assignment
    for (const std::uint32_t p : seen) CHECK(a.position(p) == 5);  // no throw mid-loop
    a.seek(1, 2);  // still a's as far as a knows: accepted, changes nothing of b's
    CHECK(error_of([&] { a.commit(1, 5); }) == broker_errc::invalid_argument);  // b holds it now
    CHECK(st.committed("g", 1) == 0);
    a.commit(0, 5);  // a's throughout
    CHECK(st.committed("g", 0) == 5);

    b.leave();  // p1 comes back to a, which still has not looked
    CHECK(error_of([&] { a.commit(1, 5); }) == broker_errc::invalid_argument);  // reassigned since
    a.commit();  // learns: p1 restarts at the group's commit (none: 0), which it stores
    CHECK(a.assignment() == std::vector<std::uint32_t>{0, 1});
    CHECK(a.position(1) == 0);  // not the 2 of the stale seek
    a.commit(1, 4);
    CHECK(st.committed("g", 1) == 4);
    CHECK(drain(a).size() == 5);
}

TEST_CASE("streams: seek, replay from the beginning, seek to the end", "[stream][groups]") {
    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("t", {.partitions = 2});
    for (int i = 0; i < 20; ++i) st.append("k", value(i));
    const std::uint32_t p = conq::stream_key_partition("k", 2);
    const std::uint32_t q = 1 - p;
    auto c = st.join("g");
    c.seek(p, 15);
    auto got = drain(c);
    REQUIRE(got.size() == 5);
    CHECK(got[0].payload() == value(15));
    c.seek_to_beginning();
    CHECK(drain(c).size() == 20);
    c.seek(p, 20);
    CHECK(drain(c).empty());
    c.seek_to_beginning();
    c.seek_to_end();
    CHECK(c.position(p) == 20);
    CHECK(drain(c).empty());
    CHECK(error_of([&] { c.seek(p, 21); }) == broker_errc::offset_out_of_range);
    CHECK(error_of([&] { c.seek(7, 0); }) == broker_errc::invalid_argument);
    CHECK(c.position(p) == 20);

    auto d = st.join("g");  // now each holds one partition
    const auto mine = c.assignment();
    REQUIRE(mine.size() == 1);
    const std::uint32_t other = mine[0] == p ? q : p;
    CHECK(error_of([&] { c.seek(other, 0); }) == broker_errc::invalid_argument);
}

// ------------------------------------------------------------- retention

TEST_CASE("streams: retention by bytes in memory drops the oldest, readers keep theirs",
          "[stream][retention]") {
    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("t", {.partitions = 1, .retention_bytes = 100});
    auto c = st.join("g");
    CHECK(c.position(0) == 0);  // learns its partition now, at 0
    std::vector<record> held;
    st.append("0123456789");
    st.read(0, 0, 1, held);
    for (int i = 1; i < 50; ++i) st.append(std::string(10, static_cast<char>('a' + i % 26)));
    CHECK(st.begin_offset(0) == 40);
    CHECK(st.end_offset(0) == 50);
    CHECK(st.stats().partitions[0].bytes == 100);
    CHECK(held[0].payload() == "0123456789");  // still valid

    std::vector<record> out;
    CHECK(error_of([&] { st.read(0, 39, 10, out); }) == broker_errc::offset_out_of_range);
    CHECK(st.read(0, 40, 100, out) == 10);
    // The consumer at 0 moves up to begin and counts what it lost.
    const auto got = drain(c);
    REQUIRE(got.size() == 10);
    CHECK(got[0].offset == 40);
    CHECK(c.skipped() == 40);

    // A record larger than the limit alone still stays (the newest always does).
    st.append(std::string(500, 'x'));
    CHECK(st.begin_offset(0) == 50);
    CHECK(st.end_offset(0) == 51);

    // Thousands of records: whole chunks are released, held ones stay.
    std::vector<record> early;
    for (int i = 0; i < 5000; ++i) {
        st.append(std::to_string(1000000000 + i));  // 10 bytes
        if (i == 100) st.read(0, st.end_offset(0) - 1, 1, early);
    }
    CHECK(st.end_offset(0) - st.begin_offset(0) == 10);
    CHECK(early[0].payload() == "1000000100");
}

TEST_CASE("streams: retention by age in memory reads the manual clock", "[stream][retention]") {
    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("t", {.partitions = 2, .retention_age = std::chrono::seconds(10)});
    for (int i = 0; i < 10; ++i) st.append(value(i));  // t = 0
    clock.advance(6s);
    for (int i = 10; i < 20; ++i) st.append(value(i));  // t = 6 s
    std::vector<record> held;
    st.read(0, 0, 1, held);
    clock.advance(4s);  // the first ten are exactly 10 s old: kept
    st.enforce_retention();
    CHECK(st.begin_offset(0) == 0);
    clock.advance(1ns);  // now older than 10 s
    st.enforce_retention();
    CHECK(st.begin_offset(0) == 5);
    CHECK(st.begin_offset(1) == 5);
    CHECK(held[0].payload() == value(0));
    clock.advance(6s);  // all of them
    const auto at = st.append(value(20));  // appends apply retention too
    CHECK(st.begin_offset(at.partition) == 10);
    st.enforce_retention();
    CHECK(st.begin_offset(0) + st.begin_offset(1) == 20);
    CHECK(st.stats().appended == 21);
}

// -------------------------------------------------------- waiting, close

TEST_CASE("streams: a poll waits on the manual clock and ends when it is advanced", "[stream][wait]") {
    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("t", {.partitions = 2});
    auto c = st.join("g");
    std::vector<record> out;
    CHECK(c.poll(out, 10, 0ns) == 0);  // no waiting with a zero timeout

    std::atomic<bool> returned{false};
    std::size_t got = 99;
    std::int64_t returned_at = 0;
    std::thread t([&] {
        got = c.poll(out, 10, std::chrono::seconds(5));
        returned_at = clock.now().time_since_epoch().count();
        returned = true;
    });
    until_waiting(st, 1);
    clock.advance(4s);
    CHECK_FALSE(returned.load());
    clock.advance(1s);
    t.join();
    CHECK(got == 0);
    CHECK(returned_at >= std::chrono::nanoseconds(5s).count());
    CHECK(st.stats().waiting_polls == 0);
}

TEST_CASE("streams: an append wakes a blocked poll", "[stream][wait]") {
    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("t", {.partitions = 3});
    auto c = st.join("g");
    std::vector<record> out;
    std::size_t got = 0;
    std::thread t([&] { got = c.poll(out, 10, std::chrono::hours(1)); });
    until_waiting(st, 1);
    st.append("key", "hello");
    t.join();
    REQUIRE(got == 1);
    CHECK(out[0].payload() == "hello");
    CHECK(out[0].key() == "key");
}

TEST_CASE("streams: close wakes blocked polls and stops appends", "[stream][wait][close]") {
    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("t", {.partitions = 2});
    auto a = st.join("g");
    auto b = st.join("h");
    std::vector<record> oa, ob;
    std::size_t ga = 9, gb = 9;
    std::thread ta([&] { ga = a.poll(oa, 10, std::chrono::hours(1)); });
    std::thread tb([&] { gb = b.poll(ob, 10, std::chrono::hours(1)); });
    until_waiting(st, 2);
    s.close();
    ta.join();
    tb.join();
    CHECK(ga == 0);
    CHECK(gb == 0);
    CHECK(s.closed());
    CHECK(error_of([&] { st.append("x"); }) == broker_errc::closed);
    CHECK(error_of([&] { st.append("k", "x"); }) == broker_errc::closed);
    CHECK(error_of([&] { s.create("u"); }) == broker_errc::closed);
    CHECK(error_of([&] { (void)st.join("g"); }) == broker_errc::closed);
    CHECK(st.end_offset(0) + st.end_offset(1) == 0);
}

TEST_CASE("streams: after close a poll returns what is left, then 0 without waiting", "[stream][close]") {
    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("t");
    auto c = st.join("g");
    for (int i = 0; i < 3; ++i) st.append(value(i));
    s.close();
    std::vector<record> out;
    CHECK(c.poll(out, 10, std::chrono::hours(1)) == 3);
    CHECK(c.poll(out, 10, std::chrono::hours(1)) == 0);
    c.commit();
    CHECK(st.committed("g", 0) == 3);
    CHECK(s.idle());
}

// ---------------------------------------------------------------- errors

TEST_CASE("streams: rejected calls throw broker_error and change nothing", "[stream][errors]") {
    conq::manual_clock clock;
    mem_streams s(clock);
    auto& st = s.create("t", {.partitions = 2, .max_payload = 16});
    st.append("k", "first");
    auto c = st.join("g");
    const auto before = st.stats();

    CHECK(error_of([&] { s.create(""); }) == broker_errc::invalid_name);
    CHECK(error_of([&] { s.create("-x"); }) == broker_errc::invalid_name);
    CHECK(error_of([&] { s.create("a b"); }) == broker_errc::invalid_name);
    CHECK(error_of([&] { s.create(std::string(201, 'a')); }) == broker_errc::invalid_name);
    CHECK(error_of([&] { s.create("u", {.partitions = 0}); }) == broker_errc::invalid_argument);
    CHECK(error_of([&] { s.create("u", {.max_payload = 0}); }) == broker_errc::invalid_argument);
    CHECK(error_of([&] { s.create("t", {.partitions = 3, .max_payload = 16}); }) == broker_errc::exists);
    CHECK(error_of([&] { s.create("t", {.partitions = 2}); }) == broker_errc::exists);
    CHECK(&s.create("t", {.partitions = 2, .max_payload = 16}) == &st);  // same options: the same stream
    CHECK(error_of([&] { (void)s.get("nope"); }) == broker_errc::unknown_stream);
    CHECK(s.names() == std::vector<std::string>{"t"});
    CHECK_FALSE(s.contains("u"));

    CHECK(error_of([&] { st.append(std::string(17, 'x')); }) == broker_errc::payload_too_large);
    CHECK(error_of([&] { st.append("0123456789", "0123456"); }) == broker_errc::payload_too_large);
    st.append("012345678", "0123456");  // 16 bytes with its key: accepted
    CHECK(st.end_offset(conq::stream_key_partition("012345678", 2)) ==
          before.partitions[conq::stream_key_partition("012345678", 2)].end_offset + 1);

    CHECK(error_of([&] { (void)st.join("bad group"); }) == broker_errc::invalid_name);
    CHECK(error_of([&] { (void)st.begin_offset(2); }) == broker_errc::invalid_argument);
    CHECK(error_of([&] { (void)st.committed("g", 5); }) == broker_errc::invalid_argument);
    const std::uint32_t p = conq::stream_key_partition("k", 2);
    const std::uint64_t pos = c.position(p);
    CHECK(error_of([&] { c.seek(p, 99); }) == broker_errc::offset_out_of_range);
    CHECK(c.position(p) == pos);
    CHECK(error_of([&] { c.commit(p, 99); }) == broker_errc::offset_out_of_range);
    CHECK(st.committed("g", p) == 0);

    const auto after = st.stats();
    CHECK(after.appended == before.appended + 1);
    CHECK(after.groups == before.groups);
    CHECK(after.members == before.members);
    CHECK(c.generation() == 1);
}

// --------------------------------------------------------------- durable

TEST_CASE("streams durable: a restart keeps records, options and committed offsets", "[stream][durable]") {
    temp_dir dir("conq-streams");
    const auto opts = small_segments();
    const conq::stream_options orders_opts{.partitions = 3, .max_payload = 1000};
    std::map<std::string, std::vector<std::pair<std::uint64_t, std::string>>> by_key;
    std::vector<std::uint64_t> ends(3);
    {
        conq::streams<std::string> s(dir.path(), opts);
        auto& st = s.create("orders", orders_opts);
        s.create("a/b", {.partitions = 1});
        s.create(".hidden");
        for (int i = 0; i < 300; ++i) {
            const std::string key = "customer-" + std::to_string(i % 7);
            const auto at = st.append(key, value(i));
            CHECK(at.partition == conq::stream_key_partition(key, 3));
            by_key[key].emplace_back(at.offset, value(i));
        }
        for (int i = 0; i < 5; ++i) st.append("unkeyed-" + std::to_string(i));
        for (std::uint32_t p = 0; p < 3; ++p) ends[p] = st.end_offset(p);

        auto c = st.join("billing");
        std::vector<conq::stream_record<std::string>> out;
        c.poll(out, 50, 0ns);
        c.commit();
        c.commit(0, 7);
        auto other = st.join("audit");
        other.commit(2, ends[2]);
    }
    conq::streams<std::string> s(dir.path(), opts);
    CHECK(s.names() == std::vector<std::string>{".hidden", "a/b", "orders"});
    auto& st = s.get("orders");
    CHECK(st.options() == orders_opts);
    CHECK(st.partitions() == 3);
    CHECK(error_of([&] { s.create("orders", {.partitions = 4}); }) == broker_errc::exists);
    CHECK(&s.create("orders", orders_opts) == &st);
    for (std::uint32_t p = 0; p < 3; ++p) CHECK(st.end_offset(p) == ends[p]);

    // Records, keys and order come back.
    std::map<std::string, std::vector<std::pair<std::uint64_t, std::string>>> seen;
    std::size_t unkeyed = 0;
    for (std::uint32_t p = 0; p < 3; ++p) {
        std::vector<conq::stream_record<std::string>> out;
        std::uint64_t at = 0;
        while (const auto n = st.read(p, at, 64, out)) at += n;
        CHECK(at == ends[p]);
        for (const auto& r : out) {
            CHECK(r.partition == p);
            if (r.keyed())
                seen[std::string(r.key())].emplace_back(r.offset, r.payload());
            else
                ++unkeyed;
        }
    }
    CHECK(seen == by_key);
    CHECK(unkeyed == 5);
    // Names map to directories one to one ('/' as '%', a leading '.' as '!').
    CHECK(std::filesystem::exists(dir.path() / "a%b" / "meta"));
    CHECK(std::filesystem::exists(dir.path() / "!hidden" / "p0"));
    CHECK(std::filesystem::exists(dir.path() / "orders" / "offsets"));

    // Committed offsets, and a new member resumes there.
    CHECK(st.committed("billing", 0) == 7);
    CHECK(st.committed("audit", 2) == ends[2]);
    CHECK(st.committed("audit", 0) == 0);
    CHECK(st.groups() == std::vector<std::string>{"audit", "billing"});
    const std::uint64_t c1 = st.committed("billing", 1), c2 = st.committed("billing", 2);
    CHECK(c1 + c2 + 7 <= 50);
    auto c = st.join("billing");
    CHECK(c.position(0) == 7);
    CHECK(c.position(1) == c1);
    std::vector<conq::stream_record<std::string>> rest;
    while (c.poll(rest, 100, 0ns) != 0) {
    }
    CHECK(rest.size() == (ends[0] - 7) + (ends[1] - c1) + (ends[2] - c2));
    c.commit();
    auto a = st.join("audit");
    while (a.poll(rest, 100, 0ns) != 0) {
    }
    a.commit();
    CHECK(s.idle());
}

TEST_CASE("streams durable: one object per directory; payload limits", "[stream][durable][errors]") {
    temp_dir dir("conq-streams");
    conq::streams<std::uint64_t> s(dir.path(), small_segments());
    try {
        conq::streams<std::uint64_t> again(dir.path(), small_segments());
        FAIL("a second streams object opened the same directory");
    } catch (const conq::durable_error& e) {
        CHECK(e.code() == conq::durable_errc::locked);
    }
    auto& st = s.create("n", {.partitions = 2, .max_payload = 20});
    CHECK(st.append("key", 42).offset == 0);
    CHECK(error_of([&] { st.append(std::string(13, 'k'), 1); }) == broker_errc::payload_too_large);  // 13 + 8
    CHECK(st.end_offset(0) + st.end_offset(1) == 1);
    auto& big = s.create("big", {.max_payload = 1 << 20});
    using bytes = std::vector<char>;
    temp_dir dir2("conq-streams");
    conq::streams<bytes> sb(dir2.path(), small_segments());
    auto& bs = sb.create("b", {.max_payload = 1 << 20});
    CHECK(error_of([&] { bs.append(bytes(5000, 'x')); }) == broker_errc::payload_too_large);  // over max_record_size
    CHECK(bs.append(bytes(4000, 'x')).offset == 0);
    (void)big;
}

TEST_CASE("streams durable: retention by bytes and by age (hand-moved wall clock)", "[stream][durable][retention]") {
    temp_dir dir("conq-streams");
    auto now = std::make_shared<std::atomic<std::int64_t>>(1'700'000'000'000'000'000);
    auto opts = small_segments();
    opts.wall_clock = [now] {
        return std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(now->load())));
    };
    conq::streams<std::string> s(dir.path(), opts);
    auto& by_bytes = s.create("bytes", {.retention_bytes = 4 * opts.segment_size});
    auto& by_age = s.create("age", {.retention_age = std::chrono::hours(1)});
    auto lagging = by_age.join("g");
    CHECK(lagging.assignment().size() == 1);  // learns its partition (at 0) now
    const std::string payload(200, 'p');
    for (int i = 0; i < 1000; ++i) {
        by_bytes.append(payload);
        by_age.append(payload);
    }
    CHECK(by_bytes.begin_offset(0) > 0);
    CHECK(by_bytes.stats().partitions[0].bytes <= 4 * opts.segment_size);
    std::vector<conq::stream_record<std::string>> out;
    CHECK(by_bytes.read(0, by_bytes.begin_offset(0), 10, out) == 10);
    CHECK(error_of([&] { by_bytes.read(0, 0, 10, out); }) == broker_errc::offset_out_of_range);

    CHECK(by_age.begin_offset(0) == 0);
    *now += std::chrono::nanoseconds(std::chrono::minutes(59)).count();
    by_age.enforce_retention();
    CHECK(by_age.begin_offset(0) == 0);
    *now += std::chrono::nanoseconds(std::chrono::minutes(2)).count();
    by_age.enforce_retention();
    const std::uint64_t begin = by_age.begin_offset(0);
    CHECK(begin > 0);
    CHECK(by_age.end_offset(0) == 1000);
    out.clear();
    while (lagging.poll(out, 100, 0ns) != 0) {
    }
    CHECK(lagging.skipped() == begin);
    REQUIRE(!out.empty());
    CHECK(out.front().offset == begin);
    CHECK(out.size() == 1000 - begin);
}

TEST_CASE("streams durable: the offsets log is compacted and survives it", "[stream][durable][commit]") {
    temp_dir dir("conq-streams");
    const auto opts = small_segments();
    {
        conq::streams<std::string> s(dir.path(), opts);
        auto& st = s.create("t", {.partitions = 4});
        for (int i = 0; i < 40; ++i) st.append(value(i));
        auto a = st.join("g");
        auto b = st.join("h");
        for (int round = 0; round < 3000; ++round) {
            const std::uint32_t p = static_cast<std::uint32_t>(round % 4);
            a.commit(p, static_cast<std::uint64_t>(round % 11));
            if (round % 3 == 0) b.commit(p, 10);
        }
    }
    std::size_t segments = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path() / "t" / "offsets"))
        segments += e.path().extension() == ".seg";
    CHECK(segments <= 3);
    conq::streams<std::string> s(dir.path(), opts);
    auto& st = s.get("t");
    for (std::uint32_t p = 0; p < 4; ++p) {
        // The last round that committed p for g was the largest round < 3000 with round % 4 == p.
        const int last = 2996 + static_cast<int>(p);
        CHECK(st.committed("g", p) == static_cast<std::uint64_t>(last % 11));
        CHECK(st.committed("h", p) == 10);
    }
}

TEST_CASE("streams durable: a blocked poll wakes on append; manual clock timeouts", "[stream][durable][wait]") {
    temp_dir dir("conq-streams");
    conq::manual_clock clock;
    conq::streams<std::string, conq::manual_clock> s(dir.path(), small_segments(), clock);
    auto& st = s.create("t", {.partitions = 2});
    auto c = st.join("g");
    std::vector<conq::stream_record<std::string>> out;
    std::size_t got = 0;
    std::thread t([&] { got = c.poll(out, 10, std::chrono::hours(1)); });
    until_waiting(st, 1);
    st.append("k", "hello");
    t.join();
    REQUIRE(got == 1);
    CHECK(out[0].payload() == "hello");
    std::thread t2([&] { got = c.poll(out, 10, std::chrono::seconds(3)); });
    until_waiting(st, 1);
    clock.advance(3s);
    t2.join();
    CHECK(got == 0);
}

TEST_CASE("streams durable: a record that fails to decode stops the poll at its offset", "[stream][durable][errors]") {
    temp_dir dir("conq-streams");
    conq::streams<picky> s(dir.path(), small_segments());
    auto& st = s.create("t");
    for (const char* v : {"a", "b", "c", "poison", "d", "e"}) st.append(picky{v});
    auto c = st.join("g");
    std::vector<conq::stream_record<picky>> out;
    CHECK(c.poll(out, 100, 0ns) == 3);  // the good records before it
    CHECK(c.position(0) == 3);
    CHECK_THROWS_WITH(c.poll(out, 100, 0ns), Catch::Contains("poison"));
    CHECK(c.position(0) == 3);
    c.seek(0, 4);
    CHECK(c.poll(out, 100, 0ns) == 2);
    REQUIRE(out.size() == 5);
    CHECK(out[3].payload().s == "d");
    CHECK(out[4].offset == 5);
}

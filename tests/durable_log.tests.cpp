// Unit tests of conq::durable_log (include/conq/durable/log.hpp): records
// round-trip with dense offsets, segments roll, readers start anywhere and
// tail a log being written, recovery after reopening, retention by size and
// by age (with a hand-moved wall clock), every documented error, faults
// injected through the system-call seam (ENOSPC, EIO), and the background
// preparer's zeros racing several appenders.
#include "conq_catch.hpp"
#include "io_faults.hpp"
#include "temp_dir.hpp"

#include <conq/durable/log.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using conq_test::temp_dir;

namespace {

/// The payload of record `i` in these tests: its length varies (0 to 300
/// bytes), its bytes depend on i.
std::string payload_for(std::uint64_t i) {
    std::string s(static_cast<std::size_t>((i * 37) % 301), '\0');
    std::uint64_t x = i * 0x9e3779b97f4a7c15ULL + 1;
    for (auto& c : s) {
        x ^= x >> 13;
        x ^= x << 7;
        x ^= x >> 17;
        c = static_cast<char>(x);
    }
    return s;
}

conq::durable_options small_segments() {
    conq::durable_options o;
    o.segment_size = 16 << 10;  // 16 KiB: a few dozen records each
    o.max_record_size = 4096;
    o.prefault = false;
    return o;
}

/// Reads the whole log and checks that it holds exactly records [from, to)
/// of payload_for.
void check_contents(const conq::durable_log& log, std::uint64_t from, std::uint64_t to) {
    auto r = log.reader(from);
    std::uint64_t next = from;
    while (auto rec = r.next()) {
        REQUIRE(rec->offset == next);
        REQUIRE(rec->text() == payload_for(next));
        ++next;
    }
    REQUIRE(next == to);
}

conq::durable_errc errc_of(const conq::durable_error& e) {
    REQUIRE(e.code().category() == conq::durable_category());
    return static_cast<conq::durable_errc>(e.code().value());
}

}  // namespace

TEST_CASE("crc32c: standard check values, and hardware and table paths agree", "[crc32c]") {
    using conq::detail::crc32c;
    CHECK(crc32c("123456789", 9) == 0xE3069283u);
    std::vector<unsigned char> zeros(32, 0), ones(32, 0xFF), inc(32);
    for (int i = 0; i < 32; ++i) inc[static_cast<std::size_t>(i)] = static_cast<unsigned char>(i);
    CHECK(crc32c(zeros.data(), 32) == 0x8A9136AAu);  // RFC 3720 B.4
    CHECK(crc32c(ones.data(), 32) == 0x62A8AB43u);
    CHECK(crc32c(inc.data(), 32) == 0x46DD794Eu);
    CHECK(crc32c(nullptr, 0) == 0u);

    std::vector<unsigned char> buf(1100);
    std::uint32_t x = 12345;
    for (auto& b : buf) b = static_cast<unsigned char>(x = x * 1103515245u + 12345u);
    for (std::size_t start = 0; start < 9; ++start)
        for (std::size_t n = 0; n + start <= buf.size(); n += (n < 64 ? 1 : 61)) {
            const auto* p = buf.data() + start;
            const std::uint32_t want = conq::detail::crc32c_portable(p, n);
            CONQ_REQUIRE_EQ(crc32c(p, n), want);
            std::vector<unsigned char> out(n + 1, 0xAA);
            const std::uint32_t copied = conq::detail::crc32c_final(
                conq::detail::crc32c_copy(conq::detail::crc32c_init, out.data(), p, n));
            CONQ_REQUIRE_EQ(copied, want);
            CONQ_REQUIRE(std::equal(p, p + n, out.begin()));
            CONQ_REQUIRE_EQ(out[n], 0xAA);
        }
    // Split updates give the same value as one pass.
    const std::uint32_t a = conq::detail::crc32c_update(conq::detail::crc32c_init, buf.data(), 333);
    CHECK(conq::detail::crc32c_final(conq::detail::crc32c_update(a, buf.data() + 333, 767)) ==
          crc32c(buf.data(), 1100));
}

TEST_CASE("durable_log: records come back byte-exact with dense offsets from 0", "[durable_log]") {
    temp_dir dir;
    conq::durable_log log(dir.path(), small_segments());
    CHECK(log.begin_offset() == 0);
    CHECK(log.end_offset() == 0);
    for (std::uint64_t i = 0; i < 500; ++i) REQUIRE(log.append(payload_for(i)) == i);
    CHECK(log.end_offset() == 500);
    CHECK(log.segment_count() > 3);  // 16 KiB segments: the log rolled
    check_contents(log, 0, 500);

    SECTION("a reader can start at every offset") {
        for (std::uint64_t from = 0; from <= 500; from += 7) check_contents(log, from, 500);
        check_contents(log, 500, 500);
    }
    SECTION("span and string_view payloads, empty and maximal") {
        const std::vector<std::byte> bytes(4096, std::byte{0x5A});
        CHECK(log.append(std::span<const std::byte>(bytes)) == 500);
        CHECK(log.append(std::string_view{}) == 501);
        auto r = log.reader(500);
        auto a = r.next();
        REQUIRE(a);
        CHECK(std::equal(a->payload.begin(), a->payload.end(), bytes.begin(), bytes.end()));
        auto b = r.next();
        REQUIRE(b);
        CHECK(b->offset == 501);
        CHECK(b->payload.empty());
        CHECK_FALSE(r.next());
    }
}

TEST_CASE("durable_log: reopening recovers every record and appends continue", "[durable_log]") {
    temp_dir dir;
    {
        conq::durable_log log(dir.path(), small_segments());
        for (std::uint64_t i = 0; i < 300; ++i) log.append(payload_for(i));
    }
    {
        conq::durable_log log(dir.path(), small_segments());
        CHECK(log.end_offset() == 300);
        CHECK(log.recovery().records == 300);
        CHECK(log.durable_offset() == 300);
        check_contents(log, 0, 300);
        for (std::uint64_t i = 300; i < 400; ++i) REQUIRE(log.append(payload_for(i)) == i);
    }
    conq::durable_log log(dir.path(), small_segments());
    check_contents(log, 0, 400);
    // Opening twice in a row changes nothing (recovery is idempotent).
    CHECK(log.recovery().discarded_segments == 0);
}

TEST_CASE("durable_log: a reopened log with another segment size keeps its old segments", "[durable_log]") {
    temp_dir dir;
    {
        conq::durable_log log(dir.path(), small_segments());
        for (std::uint64_t i = 0; i < 200; ++i) log.append(payload_for(i));
    }
    auto o = small_segments();
    o.segment_size = 64 << 10;
    conq::durable_log log(dir.path(), o);
    for (std::uint64_t i = 200; i < 600; ++i) REQUIRE(log.append(payload_for(i)) == i);
    check_contents(log, 0, 600);
}

TEST_CASE("durable_log: errors are durable_error with a cause", "[durable_log][errors]") {
    temp_dir dir;
    SECTION("a second writer on the same directory") {
        conq::durable_log first(dir.path(), small_segments());
        try {
            conq::durable_log second(dir.path(), small_segments());
            FAIL("a second writer opened the log");
        } catch (const conq::durable_error& e) {
            CHECK(errc_of(e) == conq::durable_errc::locked);
            CHECK(e.path() == dir.path());
        }
    }
    SECTION("the lock goes with the writer") {
        { conq::durable_log first(dir.path(), small_segments()); }
        conq::durable_log again(dir.path(), small_segments());
        CHECK(again.end_offset() == 0);
    }
    SECTION("a directory that cannot be created") {
        std::ofstream(dir / "file") << "x";
        try {
            conq::durable_log log(dir / "file" / "log", small_segments());
            FAIL("opened a log under a regular file");
        } catch (const conq::durable_error& e) {
            CHECK(e.code() == std::make_error_code(std::errc::not_a_directory));
            CHECK(std::string(e.what()).find("file") != std::string::npos);
        }
    }
    SECTION("a record over the maximum appends nothing") {
        conq::durable_log log(dir.path(), small_segments());
        log.append("a");
        try {
            log.append(std::string(4097, 'x'));
            FAIL("an oversized record was accepted");
        } catch (const conq::durable_error& e) {
            CHECK(errc_of(e) == conq::durable_errc::record_too_large);
        }
        CHECK(log.end_offset() == 1);
        CHECK(log.append("b") == 1);
    }
    SECTION("options that cannot work") {
        auto o = small_segments();
        o.segment_size = 4096;
        o.max_record_size = 8192;
        CHECK_THROWS_AS(conq::durable_log(dir.path(), o), conq::durable_error);
        o = small_segments();
        o.sync = conq::sync::every_n(0);
        try {
            conq::durable_log log(dir.path(), o);
            FAIL("every_n(0) accepted");
        } catch (const conq::durable_error& e) {
            CHECK(errc_of(e) == conq::durable_errc::bad_options);
        }
    }
    SECTION("a reader outside the log") {
        conq::durable_log log(dir.path(), small_segments());
        log.append("a");
        try {
            (void)log.reader(2);
            FAIL("reader past the end");
        } catch (const conq::durable_error& e) {
            CHECK(errc_of(e) == conq::durable_errc::offset_out_of_range);
        }
    }
}

TEST_CASE("durable_log: sync policies move durable_offset", "[durable_log][sync]") {
    temp_dir dir;
    SECTION("none: only an explicit sync") {
        conq::durable_log log(dir.path(), small_segments());
        for (int i = 0; i < 10; ++i) log.append(payload_for(static_cast<std::uint64_t>(i)));
        CHECK(log.durable_offset() == 0);
        log.sync();
        CHECK(log.durable_offset() == 10);
    }
    SECTION("always: each append returns durable") {
        auto o = small_segments();
        o.sync = conq::sync::always;
        conq::durable_log log(dir.path(), o);
        for (std::uint64_t i = 0; i < 40; ++i) {
            log.append(payload_for(i));
            CONQ_REQUIRE(log.durable_offset() > i);
        }
    }
    SECTION("every<4>: one sync per four records") {
        auto o = small_segments();
        o.sync = conq::sync::every<4>;
        conq::durable_log log(dir.path(), o);
        for (std::uint64_t i = 0; i < 3; ++i) log.append(payload_for(i));
        CHECK(log.durable_offset() == 0);
        log.append(payload_for(3));
        CHECK(log.durable_offset() == 4);
        for (std::uint64_t i = 4; i < 7; ++i) log.append(payload_for(i));
        CHECK(log.durable_offset() == 4);
    }
    SECTION("interval: a background thread syncs") {
        auto o = small_segments();
        o.sync = conq::sync::interval(std::chrono::milliseconds(1));
        conq::durable_log log(dir.path(), o);
        for (std::uint64_t i = 0; i < 20; ++i) log.append(payload_for(i));
        // Waits for an event, not for a time: the loop ends when the syncer has run.
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (log.durable_offset() < 20 && std::chrono::steady_clock::now() < give_up)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        CHECK(log.durable_offset() == 20);
    }
}

TEST_CASE("durable_log: appends from several threads get dense, unique offsets", "[durable_log][threads]") {
    temp_dir dir;
    constexpr int threads = 4;
    constexpr std::uint64_t per_thread = 2000;
    std::vector<std::vector<std::uint64_t>> got(threads);
    {
        auto o = small_segments();
        o.sync = conq::sync::every<64>;
        conq::durable_log log(dir.path(), o);
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t)
            ts.emplace_back([&, t] {
                for (std::uint64_t i = 0; i < per_thread; ++i) {
                    const std::string p = std::to_string(t) + ":" + std::to_string(i) + ":" +
                                          payload_for(i).substr(0, i % 50);
                    got[static_cast<std::size_t>(t)].push_back(log.append(p));
                }
            });
        for (auto& th : ts) th.join();
        CHECK(log.end_offset() == threads * per_thread);
    }
    std::vector<bool> seen(threads * per_thread);
    for (const auto& v : got)
        for (std::size_t i = 0; i < v.size(); ++i) {
            REQUIRE(v[i] < seen.size());
            REQUIRE_FALSE(seen[v[i]]);
            seen[v[i]] = true;
            if (i > 0) REQUIRE(v[i] > v[i - 1]);  // one thread's records in its order
        }
    conq::durable_log log(dir.path(), small_segments());
    auto r = log.reader(0);
    std::uint64_t n = 0;
    while (auto rec = r.next()) {
        const std::string s(rec->text());
        const auto c1 = s.find(':'), c2 = s.find(':', c1 + 1);
        const int t = std::stoi(s.substr(0, c1));
        const std::uint64_t i = std::stoull(s.substr(c1 + 1, c2 - c1 - 1));
        REQUIRE(got[static_cast<std::size_t>(t)][i] == rec->offset);
        REQUIRE(s.substr(c2 + 1) == payload_for(i).substr(0, i % 50));
        ++n;
    }
    CHECK(n == threads * per_thread);
}

TEST_CASE("durable_log: a reader tails records while other threads append", "[durable_log][threads]") {
    temp_dir dir;
    conq::durable_log log(dir.path(), small_segments());
    constexpr std::uint64_t total = 3000;
    std::atomic<std::uint64_t> appended{0};
    std::thread writer([&] {
        for (std::uint64_t i = 0; i < total; ++i) {
            log.append(payload_for(i));
            appended.store(i + 1, std::memory_order_release);
        }
    });
    auto r = log.reader(0);
    std::uint64_t next = 0;
    while (next < total) {
        if (auto rec = r.next()) {
            REQUIRE(rec->offset == next);
            REQUIRE(rec->text() == payload_for(next));
            ++next;
        } else {
            std::this_thread::yield();
        }
    }
    writer.join();
    CHECK_FALSE(r.next());
}

TEST_CASE("durable_log: the preparer's zeros never land on a record (prefault on, several appenders)",
          "[durable_log][threads][prefault]") {
    // With prefault on and sync::none a background thread writes zeros into
    // the segment ahead of the appenders while they write records through
    // the mapping. Three appenders race it with records of 0 to 4 KiB, a
    // reader tails them, the segments (16 MiB) roll, and the log is reopened
    // half-way, so the preparer also starts in a segment that already holds
    // records. Every record must come back byte-exact.
    temp_dir dir;
    conq::durable_options o;
    o.segment_size = 16 << 20;
    o.max_record_size = 8192;
    o.prefault = true;
    constexpr int threads = 3;
    constexpr std::uint64_t per_round = 4000;  // per thread and round: about 26 MB a round
    auto record = [](int t, std::uint64_t i) {
        std::string p = std::to_string(t) + ":" + std::to_string(i) + ":";
        const std::size_t body = static_cast<std::size_t>((i * 2654435761u + static_cast<std::uint64_t>(t)) % 4000);
        p += payload_for(i * 7 + static_cast<std::uint64_t>(t)).substr(0, body);
        p.resize(p.size() + body, static_cast<char>('a' + t));
        return p;
    };
    std::vector<std::vector<std::uint64_t>> got(threads);
    for (int round = 0; round < 2; ++round) {
        conq::durable_log log(dir.path(), o);
        const std::uint64_t first = log.end_offset();
        std::atomic<int> done{0};
        std::uint64_t tailed = first;
        std::thread reader([&] {
            // A record overwritten by zeros would stop the reader for good:
            // it gives up after 30 s without progress, and the count below fails.
            auto r = log.reader(first);
            auto last_progress = std::chrono::steady_clock::now();
            for (;;) {
                if (auto rec = r.next()) {
                    if (rec->offset != tailed) break;
                    ++tailed;
                    last_progress = std::chrono::steady_clock::now();
                } else if (done.load(std::memory_order_acquire) == threads && tailed == log.end_offset()) {
                    break;
                } else if (std::chrono::steady_clock::now() - last_progress > std::chrono::seconds(30)) {
                    break;
                } else {
                    std::this_thread::yield();
                }
            }
        });
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t)
            ts.emplace_back([&, t] {
                const std::uint64_t from = static_cast<std::uint64_t>(round) * per_round;
                for (std::uint64_t i = from; i < from + per_round; ++i)
                    got[static_cast<std::size_t>(t)].push_back(log.append(record(t, i)));
                done.fetch_add(1, std::memory_order_release);
            });
        for (auto& th : ts) th.join();
        reader.join();
        REQUIRE(tailed == log.end_offset());
    }
    conq::durable_log log(dir.path(), o);
    REQUIRE(log.end_offset() == 2 * threads * per_round);
    CHECK(log.segment_count() >= 3);
    auto r = log.reader(0);
    std::uint64_t n = 0;
    while (auto rec = r.next()) {
        const std::string s(rec->text());
        const auto c1 = s.find(':'), c2 = s.find(':', c1 + 1);
        REQUIRE(c2 != std::string::npos);
        const int t = std::stoi(s.substr(0, c1));
        const std::uint64_t i = std::stoull(s.substr(c1 + 1, c2 - c1 - 1));
        REQUIRE(got[static_cast<std::size_t>(t)][i] == rec->offset);
        REQUIRE(s == record(t, i));
        ++n;
    }
    CHECK(n == 2 * threads * per_round);
}

TEST_CASE("durable_log: open file descriptors do not grow with the number of segments",
          "[durable_log][prefault]") {
    // Segments stay mapped, not open: a log of thousands of segments must
    // not run into the descriptor limit. With prefault on the preparer keeps
    // one file open at a time, plus the spare it is preparing.
    auto open_fds = [] {
        std::size_t n = 0;
        for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
        return n;
    };
    temp_dir dir;
    for (const bool prefault : {false, true}) {
        INFO("prefault " << prefault);
        auto o = small_segments();
        o.prefault = prefault;
        const std::size_t before = open_fds();
        conq::durable_log log(dir.path() / (prefault ? "p" : "n"), o);
        for (std::uint64_t i = 0; i < 12000; ++i) (void)log.append(payload_for(i));
        REQUIRE(log.segment_count() > 100);
        CHECK(open_fds() <= before + 6);
    }
}

TEST_CASE("durable_log: a read-only log follows a writer across segments", "[durable_log][read_only]") {
    temp_dir dir;
    conq::durable_log writer(dir.path(), small_segments());
    writer.append(payload_for(0));
    auto o = small_segments();
    o.read_only = true;
    conq::durable_log ro(dir.path(), o);
    CHECK(ro.end_offset() == 1);
    try {
        ro.append("x");
        FAIL("append on a read-only log");
    } catch (const conq::durable_error& e) {
        CHECK(errc_of(e) == conq::durable_errc::read_only);
    }
    auto r = ro.reader(0);
    std::uint64_t next = 0;
    for (std::uint64_t i = 1; i < 400; ++i) {
        writer.append(payload_for(i));
        while (auto rec = r.next()) {
            REQUIRE(rec->offset == next);
            REQUIRE(rec->text() == payload_for(next));
            ++next;
        }
    }
    CHECK(next == 400);
    CHECK(ro.end_offset() == 400);
    check_contents(ro, 123, 400);
}

TEST_CASE("durable_log: retention by size deletes the oldest sealed segments", "[durable_log][retention]") {
    temp_dir dir;
    auto o = small_segments();
    o.retention_bytes = 4 * o.segment_size;
    conq::durable_log log(dir.path(), o);
    auto lagging = log.reader(0);
    for (std::uint64_t i = 0; i < 2000; ++i) log.append(payload_for(i));
    CHECK(log.segment_count() <= 4);
    CHECK(log.begin_offset() > 0);
    std::size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        files += e.path().extension() == ".seg";
    CHECK(files == log.segment_count());
    check_contents(log, log.begin_offset(), 2000);
    try {
        (void)log.reader(log.begin_offset() - 1);
        FAIL("reader before begin_offset");
    } catch (const conq::durable_error& e) {
        CHECK(errc_of(e) == conq::durable_errc::offset_out_of_range);
    }
    // The reader made before keeps its first segment mapped and then learns
    // that the rest is gone.
    std::uint64_t read = 0;
    try {
        while (lagging.next()) ++read;
        FAIL("a reader behind retention read on");
    } catch (const conq::durable_error& e) {
        CHECK(errc_of(e) == conq::durable_errc::offset_out_of_range);
    }
    CHECK(read > 0);
}

TEST_CASE("durable_log: retention by age uses the newest record's time", "[durable_log][retention]") {
    temp_dir dir;
    auto now = std::make_shared<std::atomic<std::int64_t>>(1'000'000'000'000'000'000);
    auto o = small_segments();
    o.retention_age = std::chrono::hours(1);
    o.wall_clock = [now] {
        return std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(now->load())));
    };
    conq::durable_log log(dir.path(), o);
    for (std::uint64_t i = 0; i < 300; ++i) log.append(payload_for(i));
    const std::size_t before = log.segment_count();
    REQUIRE(before > 3);
    *now += std::chrono::nanoseconds(std::chrono::minutes(59)).count();
    log.enforce_retention();
    CHECK(log.segment_count() == before);
    *now += std::chrono::nanoseconds(std::chrono::minutes(2)).count();
    log.enforce_retention();
    CHECK(log.segment_count() == 1);  // only the segment being written stays
    CHECK(log.begin_offset() == 300 - (log.end_offset() - log.begin_offset()));
    check_contents(log, log.begin_offset(), 300);
}

TEST_CASE("durable_log: ENOSPC when a segment is allocated appends nothing and loses nothing",
          "[durable_log][faults]") {
    temp_dir dir;
    conq::durable_log log(dir.path(), small_segments());
    std::uint64_t n = 0;
    const auto first_segments = log.segment_count();
    while (log.segment_count() == first_segments) log.append(payload_for(n++));
    // Fill the new segment too, then make the next allocation fail.
    const auto two = log.segment_count();
    {
        conq_test::fault_plan full(1, ENOSPC, true, conq::detail::io_op::allocate);
        conq_test::install_hooks on(full);
        for (;;) {
            try {
                log.append(payload_for(n));
                ++n;
            } catch (const conq::durable_error& e) {
                CHECK(e.code() == std::error_code(ENOSPC, std::system_category()));
                break;
            }
        }
        CHECK(log.segment_count() == two);
        CHECK(log.end_offset() == n);
        CHECK_FALSE(log.failed());
        CHECK_THROWS_AS(log.append(payload_for(n)), conq::durable_error);  // still full
        CHECK(full.failures() >= 2);
    }
    // Space again: appends go on at the same offset.
    CHECK(log.append(payload_for(n)) == n);
    ++n;
    log.sync();
    check_contents(log, 0, n);
    CHECK(std::filesystem::directory_iterator(dir.path()) != std::filesystem::directory_iterator());
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        CHECK(e.path().extension() != ".new");  // no half-made file left behind
}

TEST_CASE("durable_log: a failed sync makes the log read-only until it is reopened", "[durable_log][faults]") {
    temp_dir dir;
    std::uint64_t n = 0;
    {
        conq::durable_log log(dir.path(), small_segments());
        for (; n < 50; ++n) log.append(payload_for(n));
        log.sync();
        for (; n < 80; ++n) log.append(payload_for(n));
        {
            conq_test::fault_plan eio(1, EIO, false, conq::detail::io_op::sync_data);
            conq_test::install_hooks on(eio);
            try {
                log.sync();
                FAIL("sync succeeded through EIO");
            } catch (const conq::durable_error& e) {
                CHECK(e.code() == std::error_code(EIO, std::system_category()));
            }
        }
        CHECK(log.failed());
        CHECK(log.durable_offset() == 50);
        // No silent retry: later calls fail even though the disk is back.
        try {
            log.sync();
            FAIL("sync after a failure");
        } catch (const conq::durable_error& e) {
            CHECK(errc_of(e) == conq::durable_errc::failed);
            CHECK(std::string(e.what()).find("Input/output error") != std::string::npos);
        }
        CHECK_THROWS_AS(log.append("x"), conq::durable_error);
        check_contents(log, 0, 80);  // reading still works
    }
    conq::durable_log log(dir.path(), small_segments());
    check_contents(log, 0, 80);
    CHECK(log.append(payload_for(80)) == 80);
}

TEST_CASE("durable_log: the N-th system call fails, for every N: synced records survive",
          "[durable_log][faults]") {
    // SQLite's I/O-error loop: run a workload with the N-th system call of the
    // durable layer failing (once, or from then on), for N = 1, 2, ... until
    // the workload completes untouched. After each run, with the disk healthy
    // again, the log must reopen and hold a dense prefix that includes every
    // record a completed sync() covered, byte-exact.
    for (const bool sticky : {false, true}) {
        for (const int err : {EIO, ENOSPC}) {
            bool completed = false;
            for (std::uint64_t nth = 1; !completed && nth < 500; ++nth) {
                temp_dir dir;
                std::uint64_t synced = 0;
                {
                    conq_test::fault_plan plan(nth, err, sticky);
                    conq_test::install_hooks on(plan);
                    try {
                        conq::durable_log log(dir.path(), small_segments());
                        for (std::uint64_t i = log.end_offset(); i < 400; ++i) {
                            log.append(payload_for(i));
                            if (i % 25 == 24) {
                                log.sync();
                                synced = i + 1;
                            }
                        }
                        completed = plan.failures() == 0;
                    } catch (const conq::durable_error&) {
                    }
                }
                INFO("nth = " << nth << ", sticky = " << sticky << ", errno = " << err);
                conq::durable_log log(dir.path(), small_segments());
                REQUIRE(log.end_offset() >= synced);
                check_contents(log, 0, log.end_offset());
            }
            CHECK(completed);
        }
    }
}

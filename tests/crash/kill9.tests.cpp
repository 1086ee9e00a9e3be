// Kill -9 torture of conq::durable_log.
//
// A child process appends from several threads (sizes from 0 to 16 KiB,
// segments of 256 KiB so that it rolls often) and syncs every few records;
// after each completed sync it writes, over a pipe, the count of records
// that sync covered. The parent kills it with SIGKILL at a random moment,
// reopens the log and checks:
//   (a) every record below the highest reported count is there, byte-exact;
//   (b) every record read back passes its own check (payload derived from
//       its writer, sequence number and length), so nothing torn or stale;
//   (c) per writer thread, the sequence numbers form a gap-free prefix;
//   (d) opening again finds the same log (recovery is idempotent);
//   (e) the log takes appends at once.
// A directory serves 20 iterations in a row: each recovery runs on the
// remains of the previous ones. 200 iterations by default (times
// CONQ_STRESS_SCALE).
#include "conq_catch.hpp"
#include "kill9.hpp"
#include "stress_config.hpp"
#include "temp_dir.hpp"

#include <conq/durable/log.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

// A record: [run u32][writer u32][seq u64][len u32][crc-less body of len bytes]
// whose body is a function of (run, writer, seq).
struct record_key {
    std::uint32_t run;
    std::uint32_t writer;
    std::uint64_t seq;
};

std::uint64_t mix(std::uint64_t x) {
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ULL;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dULL;
    return x ^ (x >> 33);
}

std::size_t body_length(const record_key& k) {
    const std::uint64_t r = mix(k.run * 1000003ULL + k.writer * 7919ULL + k.seq);
    switch (r % 20) {
    case 0: return static_cast<std::size_t>(r >> 8) % 16384;          // up to 16 KiB
    case 1: case 2: case 3: case 4: case 5: return static_cast<std::size_t>(r >> 8) % 2048;
    default: return static_cast<std::size_t>(r >> 8) % 128;
    }
}

std::string make_record(const record_key& k) {
    const std::size_t len = body_length(k);
    std::string s(20 + len, '\0');
    std::memcpy(s.data(), &k.run, 4);
    std::memcpy(s.data() + 4, &k.writer, 4);
    std::memcpy(s.data() + 8, &k.seq, 8);
    const auto l32 = static_cast<std::uint32_t>(len);
    std::memcpy(s.data() + 16, &l32, 4);
    std::uint64_t x = mix(k.run ^ (std::uint64_t{k.writer} << 20) ^ (k.seq << 32)) | 1;
    for (std::size_t i = 0; i < len; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s[20 + i] = static_cast<char>(x);
    }
    return s;
}

/// The key of a record read back, after checking that its bytes are exactly
/// what its writer wrote.
record_key check_record(std::string_view got) {
    REQUIRE(got.size() >= 20);
    record_key k{};
    std::memcpy(&k.run, got.data(), 4);
    std::memcpy(&k.writer, got.data() + 4, 4);
    std::memcpy(&k.seq, got.data() + 8, 8);
    REQUIRE(got == make_record(k));
    return k;
}

conq::durable_options crash_options() {
    conq::durable_options o;
    o.segment_size = 256 << 10;
    o.max_record_size = 20 + 16384;
    return o;
}

constexpr int writers = 3;

/// The child: appends until killed. Never returns.
[[noreturn]] void run_child(const std::filesystem::path& dir, std::uint32_t run, int report_fd) {
    try {
        conq::durable_log log(dir, crash_options());
        std::vector<std::thread> ts;
        for (int w = 0; w < writers; ++w)
            ts.emplace_back([&, w] {
                const int sync_every = 2 + w * 3;
                for (std::uint64_t seq = 0;; ++seq) {
                    const std::uint64_t off =
                        log.append(make_record({run, static_cast<std::uint32_t>(w), seq}));
                    if (seq % static_cast<std::uint64_t>(sync_every) == 0) {
                        log.sync();
                        const std::uint64_t covered = off + 1;
                        if (::write(report_fd, &covered, sizeof covered) != sizeof covered) ::_exit(3);
                    }
                }
            });
        for (auto& t : ts) t.join();
    } catch (...) {
        ::_exit(2);
    }
    ::_exit(0);
}

}  // namespace

TEST_CASE("durable_log survives SIGKILL at random moments", "[crash][kill9]") {
    conq_test::temp_dir dir("conq-kill9");
    const std::size_t iterations = 200 * conq_test::stress_scale();
    std::mt19937_64 rng(0xC0FFEE);
    std::uint64_t total_synced_checked = 0, total_records = 0;

    for (std::uint32_t run = 1; run <= iterations; ++run) {
        const auto log_dir = dir.path() / ("log" + std::to_string(run / 20));
        // Kill at a random moment: often early (during open and recovery),
        // mostly in the middle of appending.
        const auto delay = std::chrono::microseconds(rng() % 4 == 0 ? rng() % 2000 : rng() % 20000);
        INFO("run " << run);
        const auto child = conq_test::kill_after(delay, [&](int fd) {
            return conq_test::fork_child([&] { run_child(log_dir, run, fd); });
        });
        std::uint64_t synced = 0;
        for (const std::uint64_t v : child.reports) synced = std::max(synced, v);

        auto opts = crash_options();
        opts.prefault = false;
        std::uint64_t end = 0;
        {
            conq::durable_log log(log_dir, opts);
            end = log.end_offset();
            REQUIRE(end >= synced);  // (a) the count
            std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint64_t> next_seq;
            auto r = log.reader(log.begin_offset());
            std::uint64_t expect = log.begin_offset();
            while (auto rec = r.next()) {
                REQUIRE(rec->offset == expect);
                const record_key k = check_record(rec->text());  // (a), (b) byte-exact
                if (k.writer == 99) {
                    ++expect;
                    continue;  // the parent's own marker records
                }
                auto& n = next_seq[{k.run, k.writer}];
                REQUIRE(k.seq == n);  // (c) no gap per writer
                ++n;
                ++expect;
            }
            REQUIRE(expect == end);
            total_records = end;
            total_synced_checked += synced;
        }
        {
            conq::durable_log again(log_dir, opts);  // (d)
            REQUIRE(again.end_offset() == end);
            REQUIRE(again.recovery().discarded_bytes == 0);
            REQUIRE(again.recovery().discarded_segments == 0);
            // (e) appends work at once (a marker from the parent).
            REQUIRE(again.append(make_record({run, 99, 0})) == end);
        }
    }
    CHECK(total_records > 0);
    CHECK(total_synced_checked > 0);
}

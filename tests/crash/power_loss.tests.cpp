// Simulated power loss for conq::durable_log.
//
// A shadow disk (tests/support/io_faults.hpp) watches the durable layer's
// system calls and keeps, per file, only the bytes msync made durable, and
// only the directory entries a directory fsync made durable. At random
// moments the test builds the disk a power cut could leave: the shadow,
// plus a random subset of the pages written since their last sync (some cut
// at a 512-byte sector boundary), in a separate directory, and opens a log
// there. Recovery must keep every record below the durable offset the
// writer had reached, byte-exact, return nothing else that is not exactly
// what was appended at that offset, and accept appends at once.
#include "conq_catch.hpp"
#include "io_faults.hpp"
#include "stress_config.hpp"
#include "temp_dir.hpp"

#include <conq/durable/log.hpp>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace {

using conq_test::add_unsynced_pages;
using conq_test::read_all;

std::string payload_for(std::uint64_t i) {
    std::string s(static_cast<std::size_t>((i * 53) % 1500), '\0');
    std::uint64_t x = i * 0x9e3779b97f4a7c15ULL + 7;
    for (auto& c : s) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        c = static_cast<char>(x * 0x2545f4914f6cdd1dULL >> 56);
    }
    return s;
}

}  // namespace

TEST_CASE("durable_log keeps every synced record through a simulated power cut", "[crash][power]") {
    conq_test::temp_dir dir("conq-power");
    const auto live = dir.path() / "live";
    std::mt19937_64 rng(42);
    const std::size_t cuts = 150 * conq_test::stress_scale();

    conq::durable_options opts;
    opts.segment_size = 32 << 10;
    opts.max_record_size = 2048;
    opts.prefault = false;

    conq_test::shadow_disk disk(live);
    std::uint64_t appended = 0;
    std::uint64_t with_unsynced = 0;
    {
        conq_test::install_hooks on(disk);
        conq::durable_log log(live, opts);
        for (std::size_t cut = 0; cut < cuts; ++cut) {
            // Some appends, a sync now and then.
            const auto n = rng() % 40;
            for (std::uint64_t i = 0; i < n; ++i) {
                REQUIRE(log.append(payload_for(appended)) == appended);
                ++appended;
                if (rng() % 16 == 0) log.sync();
            }
            const std::uint64_t durable = log.durable_offset();

            // The power goes out: build the disk it leaves and recover it.
            const auto image = dir.path() / ("cut" + std::to_string(cut));
            disk.write_image(image);
            if (rng() % 2) {
                add_unsynced_pages(live, image, rng);
                ++with_unsynced;
            }
            conq::detail::installed_io_hooks.store(nullptr);  // recovery of the image is not watched
            {
                INFO("cut " << cut << ": durable offset " << durable << ", appended " << appended);
                conq::durable_log rec(image, opts);
                REQUIRE(rec.end_offset() >= durable);
                REQUIRE(rec.end_offset() <= appended);
                auto r = rec.reader(0);
                std::uint64_t next = 0;
                while (auto v = r.next()) {
                    REQUIRE(v->offset == next);
                    REQUIRE(v->text() == payload_for(next));
                    ++next;
                }
                REQUIRE(next == rec.end_offset());
                REQUIRE(rec.append(payload_for(next)) == next);
            }
            conq::detail::installed_io_hooks.store(&disk);
            std::filesystem::remove_all(image);
        }
    }
    CHECK(appended > 1000);
    CHECK(with_unsynced > 10);
}

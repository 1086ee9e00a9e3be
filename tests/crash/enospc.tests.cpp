// A real full filesystem under conq::durable_log: a 1 MiB tmpfs mounted for
// the test (this needs root; elsewhere the test says so and checks nothing).
// Appends fill the segments that fit; the segment that does not fit fails
// its preallocation with ENOSPC, reported as durable_error, never as a
// SIGBUS; every record appended before stays readable, the log is not
// failed, and appends succeed again once space is freed.
#include "conq_catch.hpp"
#include "temp_dir.hpp"

#include <conq/durable/log.hpp>

#include <cerrno>
#include <cstdint>
#include <string>

#include <sys/mount.h>

namespace {

class tmpfs_mount {
public:
    tmpfs_mount(const std::filesystem::path& at, const char* size_option) : at_(at) {
        std::filesystem::create_directories(at);
        mounted_ = ::mount("tmpfs", at.c_str(), "tmpfs", 0, size_option) == 0;
        error_ = errno;
    }
    ~tmpfs_mount() {
        if (mounted_) ::umount2(at_.c_str(), MNT_DETACH);
    }
    tmpfs_mount(const tmpfs_mount&) = delete;
    tmpfs_mount& operator=(const tmpfs_mount&) = delete;
    [[nodiscard]] bool mounted() const noexcept { return mounted_; }
    [[nodiscard]] int error() const noexcept { return error_; }

private:
    std::filesystem::path at_;
    bool mounted_ = false;
    int error_ = 0;
};

std::string payload_for(std::uint64_t i) { return std::string(100 + i % 900, static_cast<char>('a' + i % 26)); }

}  // namespace

TEST_CASE("durable_log on a full filesystem: ENOSPC at preallocation, nothing lost", "[crash][enospc]") {
    conq_test::temp_dir dir("conq-enospc");
    tmpfs_mount fs(dir.path() / "small", "size=1m");
    if (!fs.mounted()) {
        WARN("cannot mount a tmpfs here (" << std::strerror(fs.error()) << "); the real-ENOSPC check is skipped");
        return;
    }
    const auto log_dir = dir.path() / "small" / "log";
    for (const bool prefault : {false, true}) {
        INFO("prefault " << prefault);
        std::filesystem::remove_all(log_dir);
        conq::durable_options o;
        o.segment_size = 256 << 10;
        o.max_record_size = 4096;
        o.prefault = prefault;
        std::uint64_t n = 0;
        {
            conq::durable_log log(log_dir, o);
            for (;;) {
                std::uint64_t at = 0;
                try {
                    at = log.append(payload_for(n));
                } catch (const conq::durable_error& e) {
                    CHECK(e.code() == std::error_code(ENOSPC, std::system_category()));
                    break;
                }
                REQUIRE(at == n);
                ++n;
                REQUIRE(n < 100000);
            }
            CHECK(n > 500);  // three segments of 256 KiB fit in 1 MiB
            CHECK_FALSE(log.failed());
            log.sync();
            CHECK(log.durable_offset() == n);
            auto r = log.reader(0);
            std::uint64_t k = 0;
            while (auto v = r.next()) REQUIRE(v->text() == payload_for(k++));
            CHECK(k == n);
            // Try again: still full, the same error, nothing lost. (With the
            // preparer thread the retry may succeed instead: its own
            // allocation of a spare failed too and gave its blocks back.)
            try {
                const std::uint64_t at = log.append(payload_for(n));  // outside CHECK: it may throw
                CHECK(at == n);
                CHECK(prefault);
                ++n;
            } catch (const conq::durable_error& e) {
                CHECK(e.code() == std::error_code(ENOSPC, std::system_category()));
            }
            CHECK(log.end_offset() == n);
        }
        // Recovery on the full filesystem works, and so do appends once
        // retention has freed space.
        {
            conq::durable_log log(log_dir, o);
            CHECK(log.end_offset() == n);
        }
        auto big = o;
        big.retention_bytes = 2 * o.segment_size;
        conq::durable_log log(log_dir, big);
        log.enforce_retention();
        CHECK(log.append(payload_for(n)) == n);
    }
}

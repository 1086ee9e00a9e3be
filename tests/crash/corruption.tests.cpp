// Damaged files under conq::durable_log: truncation at every byte offset of
// the last segment, flipped bits anywhere, zeroed ranges, garbage files,
// missing and foreign segments. Recovery must never crash, never return a
// record that is not exactly what was appended at its offset, keep the
// longest valid prefix (or, with on_corruption::fail, refuse to open when
// the damage is not at the tail), report what it discarded, and take
// appends afterwards.
#include "conq_catch.hpp"
#include "temp_dir.hpp"

#include <conq/durable/log.hpp>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

std::string payload_for(std::uint64_t i) {
    std::string s(static_cast<std::size_t>((i * 29) % 400), '\0');
    for (std::size_t k = 0; k < s.size(); ++k) s[k] = static_cast<char>((i * 131 + k * 7) & 0xFF);
    return s;
}

conq::durable_options options() {
    conq::durable_options o;
    o.segment_size = 16 << 10;
    o.max_record_size = 1024;
    o.prefault = false;
    return o;
}

struct golden {
    conq_test::temp_dir dir{"conq-golden"};
    std::vector<std::uint64_t> bases;          // segment bases, in order
    std::vector<std::uint64_t> record_end;     // byte where each record of the last segment ends
    std::vector<std::uint64_t> data_end;       // ... and where its payload ends (padding follows)
    std::uint64_t records = 0;
    std::uint64_t last_used = 0;               // bytes of the last segment in use

    golden() {
        conq::durable_log log(dir.path(), options());
        // Two full segments, then about 4 KiB in the third.
        std::uint64_t i = 0;
        while (log.segment_count() < 3) log.append(payload_for(i++));
        std::uint64_t pos = conq::detail::dlog::header_size;
        const std::uint64_t third = i - 1;  // the record that rolled into segment 3
        auto add = [&](std::uint64_t k) {
            const std::uint64_t len = payload_for(k).size();
            data_end.push_back(pos + conq::detail::dlog::frame_size + len);
            record_end.push_back(pos += conq::detail::dlog::record_bytes(len));
        };
        add(third);
        while (pos < 4096) {
            log.append(payload_for(i));
            add(i++);
        }
        records = i;
        last_used = pos;
        for (const auto& e : fs::directory_iterator(dir.path()))
            if (auto b = conq::detail::dlog::parse_segment_name(e.path().filename().string())) bases.push_back(*b);
        std::sort(bases.begin(), bases.end());
        REQUIRE(bases.size() == 3);
        REQUIRE(bases[2] == third);
    }
    fs::path segment(const fs::path& d, std::size_t k) const {
        return d / conq::detail::dlog::segment_name(bases[k]);
    }
    void copy_to(const fs::path& d) const {
        fs::remove_all(d);
        fs::create_directories(d);
        for (const auto& e : fs::directory_iterator(dir.path()))
            if (e.path().extension() == ".seg") fs::copy_file(e.path(), d / e.path().filename());
    }
};

/// Opens the log in `d` and checks it holds exactly records [0, expect),
/// then that it takes one more append (and, reopened, is clean).
void check_prefix(const fs::path& d, std::uint64_t expect) {
    {
        conq::durable_log log(d, options());
        CONQ_REQUIRE_EQ(log.end_offset(), expect);
        auto r = log.reader(0);
        std::uint64_t n = 0;
        while (auto v = r.next()) {
            CONQ_REQUIRE_EQ(v->offset, n);
            CONQ_REQUIRE(v->text() == payload_for(n));
            ++n;
        }
        CONQ_REQUIRE_EQ(n, expect);
        CONQ_REQUIRE_EQ(log.append(payload_for(n)), expect);
    }
    conq::durable_log again(d, options());
    CONQ_REQUIRE(again.recovery().clean());
    CONQ_REQUIRE_EQ(again.end_offset(), expect + 1);
}

/// The records of the log whose frame and payload lie wholly before byte
/// `at` of the last segment (damage at `at` or later cannot touch them; the
/// zero padding after a payload is not part of the record).
std::uint64_t kept_before(const golden& g, std::uint64_t at) {
    std::uint64_t kept = g.bases[2];
    for (const std::uint64_t end : g.data_end)
        if (end <= at) ++kept;
    return kept;
}


void write_at(const fs::path& p, std::uint64_t at, const std::vector<unsigned char>& bytes) {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at));
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

unsigned char byte_at(const fs::path& p, std::uint64_t at) {
    std::ifstream f(p, std::ios::binary);
    f.seekg(static_cast<std::streamoff>(at));
    return static_cast<unsigned char>(f.get());
}

}  // namespace

TEST_CASE("recovery after truncation of the last segment at every byte offset", "[crash][corruption]") {
    golden g;
    conq_test::temp_dir work("conq-trunc");
    const auto d = work.path() / "log";
    for (std::uint64_t at = 0; at <= g.last_used + 64; ++at) {
        INFO("truncated at byte " << at);
        g.copy_to(d);
        fs::resize_file(g.segment(d, 2), at);
        // A file too short for its header is set aside whole; otherwise
        // exactly the records that end before the cut survive.
        const bool header_kept = at >= conq::detail::dlog::header_size + conq::detail::dlog::seal_size;
        check_prefix(d, header_kept ? kept_before(g, at) : g.bases[2]);
    }
}

TEST_CASE("recovery after flipped bits", "[crash][corruption]") {
    golden g;
    conq_test::temp_dir work("conq-flip");
    const auto d = work.path() / "log";
    std::mt19937_64 rng(7);

    SECTION("in the last segment: the prefix before the damaged record") {
        for (int n = 0; n < 600; ++n) {
            const std::uint64_t at = rng() % g.last_used;
            const int bit = static_cast<int>(rng() % 8);
            INFO("bit " << bit << " of byte " << at);
            g.copy_to(d);
            const auto seg = g.segment(d, 2);
            write_at(seg, at, {static_cast<unsigned char>(byte_at(seg, at) ^ (1u << bit))});
            std::uint64_t expect;
            if (at < conq::detail::dlog::header_size) {
                expect = g.bases[2];  // header damaged: the whole segment goes
            } else {
                // The record holding the byte, unless the byte is padding
                // (not covered by the checksum: the payload is intact).
                std::uint64_t start = conq::detail::dlog::header_size, k = 0;
                while (g.record_end[k] <= at) start = g.record_end[k++];
                const std::uint64_t len = payload_for(g.bases[2] + k).size();
                const bool padding = at >= start + conq::detail::dlog::frame_size + len;
                expect = padding ? g.records : g.bases[2] + k;
            }
            check_prefix(d, expect);
        }
    }
    SECTION("in a sealed segment: truncate there by default, refuse with on_corruption::fail") {
        for (int n = 0; n < 200; ++n) {
            const std::uint64_t at = conq::detail::dlog::header_size + rng() % 2048;
            INFO("byte " << at << " of the first segment");
            g.copy_to(d);
            const auto seg = g.segment(d, 0);
            write_at(seg, at, {static_cast<unsigned char>(byte_at(seg, at) ^ 0x10)});
            auto strict = options();
            strict.corruption = conq::on_corruption::fail;
            bool refused = false;
            try {
                conq::durable_log log(d, strict);
            } catch (const conq::durable_error& e) {
                refused = true;
                CONQ_REQUIRE(e.code() == conq::make_error_code(conq::durable_errc::corrupt));
            }
            conq::durable_log log(d, options());
            if (!refused) {
                // The flip hit padding: nothing was lost.
                CONQ_REQUIRE_EQ(log.end_offset(), g.records);
                continue;
            }
            CONQ_REQUIRE(log.end_offset() < g.bases[1]);
            CONQ_REQUIRE_EQ(log.recovery().discarded_segments, 2u);
            CONQ_REQUIRE(!log.recovery().first_problem.empty());
            CONQ_REQUIRE(fs::exists(fs::path(g.segment(d, 1)) += ".discarded"));
            auto r = log.reader(0);
            std::uint64_t k = 0;
            while (auto v = r.next()) {
                CONQ_REQUIRE(v->text() == payload_for(k));
                ++k;
            }
            CONQ_REQUIRE_EQ(k, log.end_offset());
        }
    }
}

TEST_CASE("recovery after zeroed ranges, garbage and missing files", "[crash][corruption]") {
    golden g;
    conq_test::temp_dir work("conq-damage");
    const auto d = work.path() / "log";
    std::mt19937_64 rng(11);

    SECTION("a zeroed range in the last segment") {
        for (int n = 0; n < 200; ++n) {
            const std::uint64_t at = conq::detail::dlog::header_size + rng() % (g.last_used - 64);
            const std::uint64_t len = 1 + rng() % 512;
            g.copy_to(d);
            std::vector<unsigned char> zeros(len, 0);
            std::vector<unsigned char> before(len);
            for (std::uint64_t k = 0; k < len; ++k) before[k] = byte_at(g.segment(d, 2), at + k);
            write_at(g.segment(d, 2), at, zeros);
            if (before == zeros) continue;
            conq::durable_log log(d, options());
            CONQ_REQUIRE(log.end_offset() <= kept_before(g, at + len));
            CONQ_REQUIRE(log.end_offset() >= kept_before(g, at));
            auto r = log.reader(0);
            std::uint64_t k = 0;
            while (auto v = r.next()) CONQ_REQUIRE(v->text() == payload_for(k++));
            CONQ_REQUIRE_EQ(k, log.end_offset());
        }
    }
    SECTION("a tail of random garbage after the last record") {
        g.copy_to(d);
        std::vector<unsigned char> junk(3000);
        for (auto& b : junk) b = static_cast<unsigned char>(rng());
        write_at(g.segment(d, 2), g.last_used, junk);
        {
            conq::durable_log log(d, options());
            CHECK(log.recovery().discarded_bytes > 0);
            CHECK_FALSE(log.recovery().first_problem.empty());
        }
        check_prefix(d, g.records);
    }
    SECTION("a garbage file with a segment's name") {
        g.copy_to(d);
        std::ofstream(d / conq::detail::dlog::segment_name(g.records + 5)) << std::string(20000, 'x');
        {
            conq::durable_log log(d, options());
            CHECK(log.end_offset() == g.records);
            CHECK(log.recovery().discarded_segments == 1);
        }
        check_prefix(d, g.records);
    }
    SECTION("a garbage file that replaces the last segment") {
        g.copy_to(d);
        std::ofstream(g.segment(d, 2), std::ios::trunc) << std::string(16 << 10, '\x7f');
        check_prefix(d, g.bases[2]);
    }
    SECTION("other files are left alone") {
        g.copy_to(d);
        std::ofstream(d / "notes.txt") << "hello";
        std::ofstream(d / "123.seg") << "not twenty digits";
        check_prefix(d, g.records);
        CHECK(fs::exists(d / "notes.txt"));
        CHECK(fs::exists(d / "123.seg"));
    }
    SECTION("a missing middle segment") {
        g.copy_to(d);
        fs::remove(g.segment(d, 1));
        conq::durable_log log(d, options());
        CHECK(log.end_offset() == g.bases[1]);
        CHECK(log.recovery().discarded_segments == 1);
    }
    SECTION("a missing middle segment, on_corruption::fail") {
        g.copy_to(d);
        fs::remove(g.segment(d, 1));
        auto strict = options();
        strict.corruption = conq::on_corruption::fail;
        CHECK_THROWS_AS(conq::durable_log(d, strict), conq::durable_error);
        // Nothing was changed by the refusal.
        CHECK(fs::exists(g.segment(d, 2)));
    }
    SECTION("a segment of a newer format version") {
        g.copy_to(d);
        // Rewrite segment 0's version and fix its header checksum.
        const auto p = g.segment(d, 0);
        conq::detail::dlog::file_header h;
        {
            std::ifstream f(p, std::ios::binary);
            f.read(reinterpret_cast<char*>(&h), sizeof h);
        }
        h.version = 99;
        h.crc = conq::detail::crc32c(&h, offsetof(conq::detail::dlog::file_header, crc));
        std::vector<unsigned char> bytes(sizeof h);
        std::memcpy(bytes.data(), &h, sizeof h);
        write_at(p, 0, bytes);
        auto strict = options();
        strict.corruption = conq::on_corruption::fail;
        try {
            conq::durable_log log(d, strict);
            FAIL("opened a log with a segment of version 99");
        } catch (const conq::durable_error& e) {
            CHECK(std::string(e.what()).find("version 99") != std::string::npos);
        }
    }
}

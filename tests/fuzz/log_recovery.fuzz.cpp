// libFuzzer target: recovery and reading of conq::durable_log segment files
// built from arbitrary bytes.
//
// The first input byte picks a mode. Raw: the input is split into up to
// three segment files, each with a valid header (so that the fuzzer spends
// its time on the frames, not on the header checksum) unless the byte says
// otherwise, and its share of the input as its frames. Structured: real
// frames (valid lengths, offsets, CRCs, seals) for records the input
// describes, then byte damage the input describes. The log is then opened
// read-only, opened for writing (recovery: checks, truncation, zeroing,
// setting segments aside), read back from its first offset, appended to,
// and opened again. Every failure must be a conq::durable_error; anything
// else (a crash, an AddressSanitizer or UBSan report, another exception, a
// second recovery that still finds damage) is a finding.
//
// Build and run: scripts/fuzz.sh (clang++ with -fsanitize=fuzzer,address,undefined).
#include <conq/durable/log.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

namespace fs = std::filesystem;
namespace f = conq::detail::dlog;

const fs::path& work_dir() {
    static const fs::path dir = [] {
        const char* base = std::getenv("CONQ_FUZZ_DIR");
        fs::path d = fs::path(base && *base ? base : "/dev/shm") / ("conq-fuzz-" + std::to_string(::getpid()));
        fs::create_directories(d);  // scripts/fuzz.sh removes it afterwards
        return d;
    }();
    return dir;
}

void write_segment(const fs::path& dir, std::uint64_t base, const std::uint8_t* data, std::size_t n,
                   bool valid_header) {
    const std::uint64_t size = std::max<std::uint64_t>(4096, (f::header_size + n + f::seal_size + 4095) / 4096 * 4096);
    std::vector<std::uint8_t> file(size, 0);
    if (valid_header) {
        f::file_header h{};
        std::memcpy(h.magic, f::file_magic, 8);
        h.version = f::format_version;
        h.header_bytes = f::header_size;
        h.base_offset = base;
        h.segment_size = size;
        h.max_record_size = 1u << 20;
        h.crc = conq::detail::crc32c(&h, offsetof(f::file_header, crc));
        std::memcpy(file.data(), &h, sizeof h);
        if (n) std::memcpy(file.data() + f::header_size, data, n);
    } else if (n) {
        std::memcpy(file.data(), data, std::min<std::size_t>(n, size));
    }
    std::FILE* out = std::fopen((dir / f::segment_name(base)).c_str(), "wb");
    if (!out) std::abort();
    std::fwrite(file.data(), 1, file.size(), out);
    std::fclose(out);
}

/// Structured mode: writes real frames (valid length, offset and CRC) for
/// records whose sizes and bytes come from the input, rolling to a new
/// segment (with a seal) when one is full, then applies the damage the rest
/// of the input describes: (position, xor) pairs over the files.
void write_structured(const fs::path& dir, const std::uint8_t* data, std::size_t n) {
    constexpr std::uint64_t seg_size = 4096;
    std::vector<std::vector<std::uint8_t>> files;
    std::vector<std::uint64_t> bases;
    auto start_segment = [&](std::uint64_t base) {
        files.emplace_back(seg_size, 0);
        bases.push_back(base);
        f::file_header h{};
        std::memcpy(h.magic, f::file_magic, 8);
        h.version = f::format_version;
        h.header_bytes = f::header_size;
        h.base_offset = base;
        h.segment_size = seg_size;
        h.max_record_size = 1024;
        h.crc = conq::detail::crc32c(&h, offsetof(f::file_header, crc));
        std::memcpy(files.back().data(), &h, sizeof h);
    };
    auto put_frame = [&](std::uint64_t pos, std::uint32_t word, std::uint64_t offset, const std::uint8_t* p,
                         std::size_t len) {
        auto& file = files.back();
        const std::uint32_t crc = f::frame_crc(word, offset, reinterpret_cast<const std::byte*>(p), len);
        std::memcpy(file.data() + pos, &word, 4);
        std::memcpy(file.data() + pos + 4, &crc, 4);
        std::memcpy(file.data() + pos + 8, &offset, 8);
        if (len) std::memcpy(file.data() + pos + 16, p, len);
    };
    // The first half of the input: records. The second: damage.
    const std::size_t records_part = n / 2;
    start_segment(0);
    std::uint64_t pos = f::header_size, offset = 0;
    std::size_t i = 0;
    while (i < records_part && files.size() < 4) {
        const std::size_t len = std::min<std::size_t>(data[i] % 200, records_part - i - 1);
        const std::uint8_t* payload = data + i + 1;
        i += 1 + len;
        if (pos + f::record_bytes(len) > seg_size - f::seal_size) {
            const std::int64_t now = 1;
            put_frame(pos, f::committed_bit | f::seal_bit | 8u, offset, reinterpret_cast<const std::uint8_t*>(&now), 8);
            start_segment(offset);
            pos = f::header_size;
        }
        put_frame(pos, f::committed_bit | static_cast<std::uint32_t>(len), offset, payload, len);
        pos += f::record_bytes(len);
        ++offset;
    }
    for (std::size_t k = records_part; k + 3 <= n; k += 3) {
        const std::size_t file = data[k] % files.size();
        const std::size_t where = (static_cast<std::size_t>(data[k + 1]) << 4 | (data[k] >> 4)) % seg_size;
        files[file][where] ^= data[k + 2];
    }
    for (std::size_t k = 0; k < files.size(); ++k) {
        std::FILE* out = std::fopen((dir / f::segment_name(bases[k])).c_str(), "wb");
        if (!out) std::abort();
        std::fwrite(files[k].data(), 1, files[k].size(), out);
        std::fclose(out);
    }
}

conq::durable_options options(bool read_only) {
    conq::durable_options o;
    o.segment_size = 4096;
    o.max_record_size = 1024;
    o.prefault = false;
    o.read_only = read_only;
    return o;
}

std::uint64_t read_all(conq::durable_log& log) {
    auto r = log.reader(log.begin_offset());
    std::uint64_t n = 0;
    while (auto rec = r.next()) {
        if (rec->offset != log.begin_offset() + n) std::abort();
        ++n;
    }
    return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const fs::path dir = work_dir() / "log";
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directories(dir);

    const std::uint8_t flags = data[0];
    ++data;
    --size;
    // Up to three segments, cut where the input says, based where they
    // would be after a few records each (their bases follow from the
    // fuzzed frames only when the fuzzer finds consistent ones).
    if (flags & 0x80) {
        write_structured(dir, data, size);
    } else {
        const std::size_t segments = 1 + flags % 3;
        std::size_t at = 0;
        std::uint64_t base = (flags & 0x10) ? 7 : 0;
        for (std::size_t k = 0; k < segments; ++k) {
            const std::size_t share =
                k + 1 == segments ? size - at : std::min<std::size_t>(size - at, (size / segments));
            write_segment(dir, base, data + at, share, (flags & (0x20 << k)) == 0);
            at += share;
            base += 1 + share / 32;
        }
    }

    try {
        conq::durable_log ro(dir, options(true));
        (void)read_all(ro);
    } catch (const conq::durable_error&) {
    }
    std::uint64_t end = 0;
    try {
        conq::durable_log log(dir, options(false));
        const std::uint64_t n = read_all(log);
        if (log.begin_offset() + n != log.end_offset()) std::abort();  // recovery kept exactly what reads back
        end = log.append("after recovery");
        if (end != log.end_offset() - 1) std::abort();
    } catch (const conq::durable_error&) {
        return 0;  // e.g. every segment set aside and none creatable: acceptable, no crash
    }
    // Recovery is idempotent: a second open finds a clean log that ends
    // after the record appended above.
    conq::durable_log again(dir, options(false));
    if (!again.recovery().clean() || again.end_offset() != end + 1) std::abort();
    if (read_all(again) != again.end_offset() - again.begin_offset()) std::abort();
    return 0;
}

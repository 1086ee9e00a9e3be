// conq/durable/log.hpp
//
// conq::durable_log: an append-only log of byte records in a directory of
// preallocated, memory-mapped segment files, with dense 64-bit offsets.
//
//   conq::durable_log log("/var/lib/app/events", {.sync = conq::sync::every<64>});
//   std::uint64_t at = log.append("hello");    // offset 0, 1, 2, ...
//   log.sync();                                // everything appended so far is on disk
//   auto r = log.reader(0);
//   while (auto rec = r.next()) use(rec->offset, rec->payload);
//
// Appends are safe from any number of threads; each takes a short spin lock
// to claim its offset and bytes, then copies and checksums outside it and
// publishes its frame with one release store, so readers (threads of this
// process, or another process that opened the directory read_only) never
// see a torn record. Recovery on open keeps the longest valid prefix. The
// file format and the guarantee of every sync policy are in
// docs/durability.md.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <sys/uio.h>

#include "conq/detail/crc32c.hpp"
#include "conq/detail/platform.hpp"
#include "conq/detail/posix_file.hpp"
#include "conq/detail/wait.hpp"
#include "conq/durable/options.hpp"

namespace conq {

static_assert(std::endian::native == std::endian::little,
              "conq::durable_log's file format is little-endian; this target is not");

/// One record as a reader returns it. The payload points into the mapped
/// segment: it stays valid until the reader's next call to next() or its
/// destruction.
struct record_view {
    std::uint64_t offset = 0;
    std::span<const std::byte> payload;
    [[nodiscard]] std::string_view text() const noexcept {
        return {reinterpret_cast<const char*>(payload.data()), payload.size()};
    }
};

namespace detail::dlog {

// ---------------------------------------------------------------- format

inline constexpr char file_magic[8] = {'C', 'O', 'N', 'Q', 'L', 'O', 'G', '1'};
inline constexpr std::uint32_t format_version = 1;
inline constexpr std::uint64_t header_size = 64;
inline constexpr std::uint64_t frame_size = 16;
inline constexpr std::uint32_t committed_bit = 1u << 31;
inline constexpr std::uint32_t seal_bit = 1u << 30;
inline constexpr std::uint32_t length_mask = seal_bit - 1;
inline constexpr std::uint64_t seal_size = frame_size + 8;
inline constexpr std::uint64_t max_segment_size = std::uint64_t{1} << 40;
// The preparer keeps this much of the active segment prepared ahead of the
// appenders, asked for again each time they cross a chunk boundary.
inline constexpr std::uint64_t prefault_window = std::uint64_t{16} << 20;
inline constexpr unsigned prefault_chunk_shift = 22;  // 4 MiB
// It writes zeros ahead of the appenders this much at a time, which is also
// the most an appender that catches up with it waits for (about 0.5 ms).
// 1 MiB and 2 MiB chunks measured slower (docs/benchmarks.md).
inline constexpr std::uint64_t zero_chunk = std::uint64_t{1} << prefault_chunk_shift;
// ... and maps the zeroed pages in as well when this far ahead of them.
inline constexpr std::uint64_t zero_lead_to_map = std::uint64_t{4} << 20;

/// The first 64 bytes of a segment file; written once, when it is created.
struct file_header {
    char magic[8];
    std::uint32_t version;
    std::uint32_t header_bytes;
    std::uint64_t base_offset;
    std::uint64_t segment_size;
    std::uint32_t max_record_size;
    std::uint32_t reserved0;
    std::int64_t created_unix_ns;
    std::uint8_t reserved1[12];
    std::uint32_t crc;  // CRC-32C of the 60 bytes before it
};
static_assert(sizeof(file_header) == header_size);

/// The 16 bytes in front of every record. `word` is stored last, with
/// release order: 0 means "nothing here yet".
struct frame {
    std::uint32_t word;    // committed_bit | [seal_bit] | payload length
    std::uint32_t crc;     // CRC-32C of word, offset and payload
    std::uint64_t offset;  // the record's offset; for a seal, the next segment's base
};
static_assert(sizeof(frame) == frame_size);

constexpr std::uint64_t round8(std::uint64_t n) noexcept { return (n + 7) & ~std::uint64_t{7}; }
constexpr std::uint64_t record_bytes(std::uint64_t len) noexcept { return frame_size + round8(len); }

inline std::uint32_t frame_crc(std::uint32_t word, std::uint64_t offset, const std::byte* payload,
                               std::size_t len) noexcept {
    std::uint32_t s = crc32c_update(crc32c_init, &word, 4);
    s = crc32c_update(s, &offset, 8);
    return crc32c_final(crc32c_update(s, payload, len));
}

inline std::uint32_t load_word(const std::byte* at) noexcept {
    return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(const_cast<std::byte*>(at)))
        .load(std::memory_order_acquire);
}
inline void publish_word(std::byte* at, std::uint32_t w) noexcept {
    std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(at)).store(w, std::memory_order_release);
}

/// Writes a frame's crc and offset; the word is left to publish_word (a
/// reader may be loading it at this moment).
inline void write_frame_tail(std::byte* at, std::uint32_t crc, std::uint64_t offset) noexcept {
    std::memcpy(at + 4, &crc, 4);
    std::memcpy(at + 8, &offset, 8);
}

inline std::string segment_name(std::uint64_t base) {
    std::string digits = std::to_string(base);
    return std::string(20 - std::min<std::size_t>(20, digits.size()), '0') + digits + ".seg";
}

/// The base offset in a segment file name, or nullopt for other names.
inline std::optional<std::uint64_t> parse_segment_name(const std::string& name) {
    if (name.size() != 24 || name.compare(20, 4, ".seg") != 0) return std::nullopt;
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(name.data(), name.data() + 20, v);
    if (ec != std::errc() || p != name.data() + 20) return std::nullopt;
    return v;
}

inline std::int64_t unix_ns(std::chrono::system_clock::time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// --------------------------------------------------------------- segment

/// One mapped segment file. Shared by the writer and readers; the mapping
/// lives until the last of them lets go, so deleting the file (retention)
/// never pulls memory from under a reader.
struct segment {
    std::filesystem::path path;
    mapped_file map;
    std::uint64_t base = 0;
    std::uint64_t size = 0;
    std::uint64_t limit = 0;  // a record must end at or before this byte
    // Set when the segment is sealed (under the append lock, or by recovery).
    std::uint64_t sealed_end = 0;   // one past the seal frame; 0 while open
    std::int64_t sealed_unix_ns = 0;
    std::atomic<std::uint64_t> prefaulted{0};  // bytes [0, prefaulted) are faulted in

    // Zeros written ahead of the appenders by the preparer (sync::none): it
    // claims [zeroed, zero_claim) past every byte reserved so far, writes
    // zeros there through the page cache, then moves `zeroed` up to the
    // claim. zero_claim changes under the append lock only (or before the
    // segment is in use); a writer into the mapping reads it under that lock
    // and calls await_zeros first.
    std::uint64_t zero_claim = 0;
    bool zero_stop = false;  // prefault_now() faulted the rest in: no more zeros
    std::atomic<std::uint64_t> zeroed{0};

    /// Before writing [from, to) through the mapping, with `claim` the
    /// zero_claim read under the append lock: waits while the preparer is
    /// still writing zeros into that range (at most one zero_chunk).
    void await_zeros(std::uint64_t claim, std::uint64_t from, std::uint64_t to) const noexcept {
        if (from >= claim) return;  // past the preparer's claims
        const std::uint64_t need = std::min(to, claim);
        for (int spins = 0; zeroed.load(std::memory_order_acquire) < need; ++spins) {
            if (spins < 64) cpu_relax(); else std::this_thread::yield();
        }
    }

    /// Writes zeros into [from, to) of this segment's file, open as `fd`,
    /// with pwritev; false if that failed (the caller then faults the pages
    /// in instead). Only for bytes that no writer can be writing (see
    /// zero_claim).
    static bool write_zeros(const unique_fd& fd, std::uint64_t from, std::uint64_t to) noexcept {
        if (!fd) return false;
        alignas(64) static const std::byte zeros[std::size_t{64} << 10]{};
        while (from < to) {
            iovec iov[16];
            int n = 0;
            for (std::uint64_t left = to - from; n < 16 && left > 0; ++n) {
                const std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(left, sizeof zeros));
                iov[n] = iovec{const_cast<std::byte*>(zeros), len};
                left -= len;
            }
            const ssize_t w = ::pwritev(fd.get(), iov, n, static_cast<off_t>(from));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return false;
            from += static_cast<std::uint64_t>(w);
        }
        return true;
    }

    /// Faults in [from, to) unless done already.
    void prefault_to(std::uint64_t to) {
        to = std::min(to, size);
        const std::uint64_t from = prefaulted.load(std::memory_order_relaxed);
        if (to <= from) return;
        map.prefault(from, to);
        std::uint64_t cur = from;
        while (cur < to && !prefaulted.compare_exchange_weak(cur, to, std::memory_order_relaxed)) {
        }
    }

    [[nodiscard]] std::byte* at(std::uint64_t pos) const noexcept { return map.data() + pos; }
};

/// What a scan of a segment's frames found.
struct scan_result {
    std::uint64_t end = header_size;  // where the valid frames stop
    std::uint64_t records = 0;
    bool sealed = false;
    std::uint64_t next_base = 0;
    std::int64_t sealed_unix_ns = 0;
    std::string problem;  // empty when the scan stopped at a zero word or a seal
};

/// What one frame of a segment holds, checked: nothing yet (a zero word),
/// a record, the seal, or something invalid (`problem` says what).
struct frame_check {
    enum kind_t : std::uint8_t { empty, record, seal, bad } kind = empty;
    const char* problem = nullptr;
    std::uint64_t len = 0;        // payload bytes
    std::uint64_t next_base = 0;  // seal: the next segment's base offset
    const std::byte* payload = nullptr;
};

/// Checks the frame at `pos`, which should hold offset `expect`: length in
/// bounds, the expected offset, the CRC. The word is loaded with acquire
/// order, so a frame another thread or process publishes is whole.
inline frame_check check_frame(const segment& s, std::uint64_t pos, std::uint64_t expect) noexcept {
    frame_check c;
    auto bad = [&](const char* why) {
        c.kind = frame_check::bad;
        c.problem = why;
        return c;
    };
    if (pos + frame_size > s.size) return bad("frames run past the end of the file");
    const std::uint32_t w = load_word(s.at(pos));
    if (w == 0) return c;
    frame f;
    std::memcpy(&f, s.at(pos), sizeof f);
    if (!(w & committed_bit)) return bad("frame without its commit bit");
    c.len = w & length_mask;
    c.payload = s.at(pos + frame_size);
    if (w & seal_bit) {
        if (c.len != 8 || pos + seal_size > s.size) return bad("malformed seal");
        if (f.offset != expect) return bad("seal names the wrong next offset");
        if (f.crc != frame_crc(w, f.offset, c.payload, 8)) return bad("seal checksum mismatch");
        c.kind = frame_check::seal;
        c.next_base = f.offset;
        return c;
    }
    if (pos + record_bytes(c.len) > s.limit) return bad("record length out of bounds");
    if (f.offset != expect) return bad("record holds the wrong offset");
    if (f.crc != frame_crc(w, f.offset, c.payload, c.len)) return bad("record checksum mismatch");
    c.kind = frame_check::record;
    return c;
}

/// Walks the frames from `from` (a frame boundary holding record
/// `first_offset`) until a zero word, the seal or an invalid frame.
inline scan_result scan(const segment& s, std::uint64_t from, std::uint64_t first_offset) {
    scan_result r;
    r.end = from;
    std::uint64_t pos = from;
    std::uint64_t expect = first_offset;
    for (;;) {
        const frame_check c = check_frame(s, pos, expect);
        if (c.kind == frame_check::empty) break;
        if (c.kind == frame_check::bad) {
            r.problem = std::string(c.problem) + " at byte " + std::to_string(pos) + " (offset " +
                        std::to_string(expect) + ")";
            break;
        }
        if (c.kind == frame_check::seal) {
            r.sealed = true;
            r.next_base = c.next_base;
            std::memcpy(&r.sealed_unix_ns, c.payload, 8);
            r.end = pos + seal_size;
            break;
        }
        pos += record_bytes(c.len);
        ++expect;
        ++r.records;
        r.end = pos;
    }
    return r;
}

/// Checks a segment file's header; empty when it is good.
inline std::string check_header(const file_header& h, std::uint64_t expected_base) {
    if (std::memcmp(h.magic, file_magic, 8) != 0) return "not a conq log segment (bad magic)";
    if (h.crc != crc32c(&h, offsetof(file_header, crc))) return "segment header checksum mismatch";
    if (h.version != format_version) return "segment format version " + std::to_string(h.version);
    if (h.header_bytes != header_size) return "unexpected header size";
    if (h.base_offset != expected_base) return "base offset in the header does not match the file name";
    if (h.segment_size < header_size + seal_size || h.segment_size > max_segment_size || h.segment_size % 8 != 0)
        return "segment size in the header is out of range";
    return {};
}

/// An existing segment file, checked and mapped. `problem` is set (and
/// nothing mapped) when its header is bad. A file shorter than its header
/// says (cut by a crash or by hand) is extended with zeros when writable;
/// bytes past that size are ignored.
struct opened_segment {
    std::shared_ptr<segment> seg;
    std::string problem;
    std::string note;
};

inline opened_segment open_segment(const std::filesystem::path& p, std::uint64_t base, bool writable) {
    opened_segment r;
    unique_fd fd = open_file(p, writable ? O_RDWR : O_RDONLY);
    const std::uint64_t actual = file_size(fd, p);
    if (actual < header_size + seal_size) {
        r.problem = "file of " + std::to_string(actual) + " bytes is too short for a segment";
        return r;
    }
    file_header h;
    ssize_t got;
    do {
        got = ::pread(fd.get(), &h, sizeof h, 0);
    } while (got < 0 && errno == EINTR);
    if (got < 0) throw_errno("read", p, errno);
    if (static_cast<std::size_t>(got) != sizeof h) {
        r.problem = "short read of the segment header";
        return r;
    }
    r.problem = check_header(h, base);
    if (!r.problem.empty()) return r;
    std::uint64_t size = h.segment_size;
    if (actual < size) {
        if (writable) {
            allocate(fd, p, size);
            r.note = "file was " + std::to_string(size - actual) + " bytes short; extended with zeros";
        } else {
            size = actual / 8 * 8;
        }
    } else if (actual > size) {
        r.note = std::to_string(actual - size) + " bytes past the segment size ignored";
    }
    auto s = std::make_shared<segment>();
    s->path = p;
    s->base = base;
    s->size = size;
    s->limit = size - seal_size;
    s->map = mapped_file(fd, p, size, writable);
    r.seg = std::move(s);
    return r;
}

// ------------------------------------------------------------- log core

/// The state shared by a log and its readers.
struct core {
    std::filesystem::path dir;
    durable_options opts;

    // Segments in offset order. The writer appends at the back; retention
    // pops at the front. Guarded by segs_mu.
    mutable std::mutex segs_mu;
    std::deque<std::shared_ptr<segment>> segs;
    std::atomic<std::uint64_t> begin{0};

    // The append position: guarded by append_lock.
    alignas(destructive_size) spin_word append_lock;
    segment* active = nullptr;
    std::uint64_t tail_pos = header_size;
    std::uint64_t next_offset = 0;
    alignas(destructive_size) std::atomic<std::uint64_t> end{0};  // == next_offset

    // Durability: records below `durable` are on disk. Guarded by sync_mu.
    alignas(destructive_size) std::mutex sync_mu;
    std::atomic<std::uint64_t> durable{0};
    std::uint64_t synced_base = 0;  // segment where unsynced bytes start
    std::uint64_t synced_pos = 0;   // ... and the byte
    std::atomic<bool> dir_dirty{false};

    // After a failed sync: every write throws. Guarded by fail_mu.
    std::atomic<bool> failed{false};
    mutable std::mutex fail_mu;
    std::string failure;

    // The background syncer of sync::interval.
    std::mutex flusher_mu;
    std::condition_variable flusher_cv;
    bool stopping = false;

    // The background preparer (opts.prefault): keeps one spare segment file
    // allocated with its first prefault_window prepared, and prepares the
    // active segment up to prefault_window ahead of the appenders (not all
    // of it: prepared pages are dirty, and dirty zeros would be written
    // back). Preparing means writing zeros through the page cache
    // (zero_ahead), or faulting pages in where that fails. Guarded by
    // spare_mu.
    std::mutex spare_mu;
    std::condition_variable spare_cv;
    std::shared_ptr<segment> spare;       // unnamed (still *.seg.new), no header
    std::shared_ptr<segment> to_prefault;  // the active segment, when it needs more
    std::uint64_t prefault_upto = 0;       // ... up to here
    std::uint64_t spare_serial = 0;
    bool spare_wanted = false;
    bool spare_stopping = false;

    /// Whether the preparer prepares pages (opts.prefault, sync::none only).
    /// Under a sync policy it only allocates the spare: on ext4, pages
    /// faulted in ahead while msync runs made group commit slower in
    /// trials, by more than the page faults they save, whether faulted in
    /// for writing or for reading (see docs/benchmarks.md).
    [[nodiscard]] bool populating() const noexcept {
        return opts.prefault && opts.sync.kind == sync_policy::mode::none;
    }

    /// Asks the preparer to prepare `s` up to prefault_window past `pos`.
    void request_prefault(std::shared_ptr<segment> s, std::uint64_t pos) {
        std::lock_guard<std::mutex> g(spare_mu);
        to_prefault = std::move(s);
        prefault_upto = pos + prefault_window;
        spare_cv.notify_all();
    }

    // The preparer thread's own: the file of the segment it writes zeros
    // into, open while that segment is active (one descriptor at a time,
    // whatever the number of segments).
    std::shared_ptr<segment> zero_seg;
    unique_fd zero_fd;

    /// The preparer, on the active segment: writes zeros up to `upto`, a
    /// zero_chunk at a time, each chunk claimed under the append lock past
    /// every byte reserved so far (an appender ahead of it is never
    /// overwritten, and one that catches up waits in await_zeros). Writing
    /// zeros costs about half of faulting the same pages in, and the
    /// appenders' faults on pages in the page cache are minor
    /// (docs/benchmarks.md). Stops once `s` is no longer active.
    void zero_ahead(const std::shared_ptr<segment>& sp, std::uint64_t upto) {
        segment& s = *sp;
        const std::uint64_t ps = page_size();
        upto = std::min(upto, s.size) / ps * ps;
        if (zero_seg != sp) {
            zero_fd.reset();
            zero_seg = sp;
            // Not open_file(): a failure here is no error (empty fd: the
            // pages are faulted in instead).
            zero_fd = unique_fd(::open(s.path.c_str(), O_RDWR | O_CLOEXEC));
        }
        for (;;) {
            std::uint64_t from, to, tail;
            {
                std::lock_guard<spin_word> g(append_lock);
                if (active != &s || s.zero_stop) {
                    zero_fd.reset();
                    zero_seg.reset();
                    return;
                }
                tail = tail_pos;
                from = std::max(s.zero_claim, (tail + ps - 1) / ps * ps);
                to = std::min(from + zero_chunk, upto);
                if (from >= to) return;
                s.zero_claim = to;
                s.zeroed.store(from, std::memory_order_release);  // [old claim, from): not ours
            }
            const bool zeroed_ok = segment::write_zeros(zero_fd, from, to);
            s.zeroed.store(to, std::memory_order_release);
            // The appenders still take a minor fault per page; with time to
            // spare (well ahead of them, as with small records) map the
            // pages for them too. Faulting in changes no data, so this may
            // overlap their writes.
            if (!zeroed_ok || from - tail >= zero_lead_to_map) s.map.prefault(from, to);
        }
    }

    /// The preparer, on the spare (no writer sees it yet, `fd` is its
    /// file): zeros up to `upto`.
    static void zero_spare(segment& s, const unique_fd& fd, std::uint64_t upto) {
        upto = std::min(upto, s.size) / page_size() * page_size();
        (void)segment::write_zeros(fd, 0, upto);
        s.map.prefault(0, upto);  // nobody waits for the spare: map it in too
        s.zero_claim = upto;
        s.zeroed.store(upto, std::memory_order_release);
    }

    [[nodiscard]] std::chrono::system_clock::time_point wall_now() const {
        return opts.wall_clock ? opts.wall_clock() : std::chrono::system_clock::now();
    }

    [[noreturn]] void throw_failed(const char* what) const {
        std::lock_guard<std::mutex> g(fail_mu);
        throw durable_error(std::string(what) + " after a failed sync (" + failure + ")", dir, durable_errc::failed);
    }
    void check_writable(const char* what) const {
        if (opts.read_only) throw durable_error(what, dir, durable_errc::read_only);
        if (failed.load(std::memory_order_acquire)) throw_failed(what);
    }
    void fail(const std::exception& e) {
        std::lock_guard<std::mutex> g(fail_mu);
        if (!failed.load(std::memory_order_relaxed)) failure = e.what();
        failed.store(true, std::memory_order_release);
    }

    /// The segment whose base is `base`. A read-only core maps it from the
    /// directory the first time (the writer may have created it since).
    std::shared_ptr<segment> find(std::uint64_t base) {
        std::lock_guard<std::mutex> g(segs_mu);
        auto it = std::lower_bound(segs.begin(), segs.end(), base,
                                   [](const auto& s, std::uint64_t b) { return s->base < b; });
        if (it != segs.end() && (*it)->base == base) return *it;
        if (!opts.read_only) return nullptr;
        const auto p = dir / segment_name(base);
        unique_fd probe = open_if_exists(p, O_RDONLY);
        if (!probe) return nullptr;
        auto o = open_segment(p, base, false);
        if (!o.seg) return nullptr;  // damaged: the writer's recovery deals with it
        return *segs.insert(it, std::move(o.seg));
    }

    /// The segment holding `offset` (the last one whose base is <= offset).
    std::shared_ptr<segment> containing(std::uint64_t offset) {
        std::lock_guard<std::mutex> g(segs_mu);
        auto it = std::upper_bound(segs.begin(), segs.end(), offset,
                                   [](std::uint64_t o, const auto& s) { return o < s->base; });
        if (it == segs.begin()) return nullptr;
        return *std::prev(it);
    }

    /// Waits until every frame in [from, to) of `s` has been published (an
    /// appender that claimed space is still copying) and returns the byte
    /// where the walk stopped (== to).
    static void wait_published(const segment& s, std::uint64_t from, std::uint64_t to) noexcept {
        for (std::uint64_t pos = from; pos < to;) {
            const std::uint32_t w = await_word(s, pos);
            pos += (w & seal_bit) ? seal_size : record_bytes(w & length_mask);
        }
    }

    /// The word of the frame at `pos` of `s`, once an appender that claimed
    /// it has published it (it is copying the payload now).
    static std::uint32_t await_word(const segment& s, std::uint64_t pos) noexcept {
        std::uint32_t w;
        for (int spins = 0; (w = load_word(s.at(pos))) == 0;) {
            if (++spins < 64) cpu_relax();
            else std::this_thread::yield();
        }
        return w;
    }

    // ------------------------------------------------------------ creation

    /// Creates segment `base`: a temporary file is allocated, mapped and given
    /// its header, then renamed into place. The directory entry becomes
    /// durable at the next sync.
    std::shared_ptr<segment> create_segment(std::uint64_t base) {
        std::shared_ptr<segment> s;
        {
            std::lock_guard<std::mutex> g(spare_mu);
            s = std::move(spare);
        }
        if (!s) s = allocate_segment(dir / (segment_name(base) + ".new"));
        name_segment(*s, base);
        if (opts.prefault) {
            std::lock_guard<std::mutex> g(spare_mu);
            spare_wanted = true;
            if (populating()) {
                to_prefault = s;
                prefault_upto = header_size + prefault_window;
            }
            spare_cv.notify_all();
        }
        return s;
    }

    /// A preallocated, mapped file under a temporary name.
    /// With `keep_fd`, the open file is handed back there.
    std::shared_ptr<segment> allocate_segment(const std::filesystem::path& temp_path,
                                              unique_fd* keep_fd = nullptr) {
        auto s = std::make_shared<segment>();
        s->path = temp_path;
        s->size = opts.segment_size;
        s->limit = s->size - seal_size;
        try {
            unique_fd fd = open_file(temp_path, O_RDWR | O_CREAT | O_TRUNC);
            allocate(fd, temp_path, s->size);
            s->map = mapped_file(fd, temp_path, s->size, true);
            if (keep_fd) *keep_fd = std::move(fd);
        } catch (...) {
            std::error_code ignored;
            std::filesystem::remove(temp_path, ignored);
            throw;
        }
        return s;
    }

    /// Gives an allocated file its header and its name: segment `base`.
    void name_segment(segment& s, std::uint64_t base) {
        const auto temp_path = s.path;
        const auto final_path = dir / segment_name(base);
        s.base = base;
        try {
            file_header h{};
            std::memcpy(h.magic, file_magic, 8);
            h.version = format_version;
            h.header_bytes = header_size;
            h.base_offset = base;
            h.segment_size = s.size;
            h.max_record_size = opts.max_record_size;
            h.created_unix_ns = unix_ns(wall_now());
            h.crc = crc32c(&h, offsetof(file_header, crc));
            std::memcpy(s.at(0), &h, sizeof h);
            rename_file(temp_path, final_path);
        } catch (...) {
            std::error_code ignored;
            std::filesystem::remove(temp_path, ignored);
            throw;
        }
        s.path = final_path;
        s.map.rename(final_path);
        dir_dirty.store(true, std::memory_order_release);
    }

    /// The preparer thread's loop.
    void run_preparer() {
        std::unique_lock<std::mutex> lk(spare_mu);
        for (;;) {
            spare_cv.wait(lk, [&] { return spare_stopping || to_prefault || (spare_wanted && !spare); });
            if (spare_stopping) return;
            if (auto s = std::move(to_prefault)) {
                const std::uint64_t upto = prefault_upto;
                lk.unlock();
                zero_ahead(s, upto);
                lk.lock();
                continue;
            }
            spare_wanted = false;
            const auto temp = dir / ("spare-" + std::to_string(++spare_serial) + ".seg.new");
            lk.unlock();
            std::shared_ptr<segment> s;
            try {
                unique_fd fd;
                s = allocate_segment(temp, &fd);
                if (populating()) zero_spare(*s, fd, prefault_window);
            } catch (...) {
                s.reset();  // the next roll allocates in line and reports the error
            }
            lk.lock();
            if (spare_stopping) {
                lk.unlock();
                if (s) {
                    std::error_code ignored;
                    std::filesystem::remove(temp, ignored);
                }
                return;
            }
            spare = std::move(s);
        }
    }

    /// Stops the preparer and deletes an unused spare file.
    void stop_preparer(std::thread& t) {
        {
            std::lock_guard<std::mutex> g(spare_mu);
            spare_stopping = true;
        }
        spare_cv.notify_all();
        if (t.joinable()) t.join();
        zero_fd.reset();  // readers may keep this core alive: let go of the file
        zero_seg.reset();
        if (spare) {
            std::error_code ignored;
            std::filesystem::remove(spare->path, ignored);
            spare.reset();
        }
    }

    /// Writes the seal frame at the end of `s`: the next segment starts at
    /// offset `next_base`.
    void seal(segment& s, std::uint64_t pos, std::uint64_t next_base) {
        const std::int64_t now = unix_ns(wall_now());
        const std::uint32_t w = committed_bit | seal_bit | 8u;
        std::memcpy(s.at(pos + frame_size), &now, 8);
        const std::uint32_t crc = frame_crc(w, next_base, s.at(pos + frame_size), 8);
        write_frame_tail(s.at(pos), crc, next_base);
        publish_word(s.at(pos), w);
        s.sealed_end = pos + seal_size;
        s.sealed_unix_ns = now;
    }

    /// Seals the active segment and starts the next one. Append lock held.
    void roll_locked() {
        auto next = create_segment(next_offset);  // throws before anything changes
        {
            std::lock_guard<std::mutex> g(segs_mu);
            segs.push_back(next);
        }
        active->await_zeros(active->zero_claim, tail_pos, tail_pos + seal_size);
        seal(*active, tail_pos, next_offset);  // readers find the next segment listed
        active = next.get();
        tail_pos = header_size;
        retain_locked();
    }

    // ----------------------------------------------------------- retention

    /// Deletes the oldest sealed segments that retention no longer keeps,
    /// and those whose records all lie below `below`. Append lock held (so
    /// the active segment cannot change).
    void retain_locked(std::uint64_t below = 0) {
        if (opts.retention_bytes == 0 && opts.retention_age.count() == 0 && below == 0) return;
        const std::int64_t now = unix_ns(wall_now());
        for (;;) {
            std::shared_ptr<segment> victim;
            {
                std::lock_guard<std::mutex> g(segs_mu);
                if (segs.size() < 2) return;
                std::uint64_t total = 0;
                for (const auto& s : segs) total += s->size;
                const auto& f = segs.front();
                if (f->sealed_end == 0) return;
                const bool too_big = opts.retention_bytes != 0 && total > opts.retention_bytes;
                const bool too_old = opts.retention_age.count() != 0 &&
                                     now - f->sealed_unix_ns > opts.retention_age.count();
                const bool consumed = segs[1]->base <= below;
                if (!too_big && !too_old && !consumed) return;
                victim = f;
            }
            // An appender may still be copying into it.
            wait_published(*victim, header_size, victim->sealed_end);
            remove_file(victim->path);
            dir_dirty.store(true, std::memory_order_release);
            std::lock_guard<std::mutex> g(segs_mu);
            segs.pop_front();
            begin.store(segs.front()->base, std::memory_order_release);
        }
    }

    // ---------------------------------------------------------------- sync

    /// Makes every record claimed before the call durable. sync_mu held.
    void sync_locked() {
        std::uint64_t target_base, target_pos, target_offset;
        append_lock.lock();
        target_base = active->base;
        target_pos = tail_pos;
        target_offset = next_offset;
        append_lock.unlock();
        if (target_offset <= durable.load(std::memory_order_relaxed) &&
            !dir_dirty.load(std::memory_order_acquire))
            return;
        std::vector<std::shared_ptr<segment>> todo;
        {
            std::lock_guard<std::mutex> g(segs_mu);
            for (const auto& s : segs)
                if (s->base >= synced_base && s->base <= target_base) todo.push_back(s);
        }
        try {
            for (const auto& s : todo) {
                const std::uint64_t from = s->base == synced_base ? synced_pos : 0;
                const std::uint64_t to = s->base == target_base ? target_pos : s->sealed_end;
                wait_published(*s, std::max(from, header_size), to);
                s->map.sync(from, to);
            }
            if (dir_dirty.exchange(false, std::memory_order_acq_rel)) sync_dir(dir);
        } catch (const std::exception& e) {
            fail(e);  // never retried: the kernel may have dropped the failed pages
            throw;
        }
        synced_base = target_base;
        synced_pos = target_pos;
        durable.store(target_offset, std::memory_order_release);
    }

    void sync_through(std::uint64_t offset) {
        std::lock_guard<std::mutex> g(sync_mu);
        if (durable.load(std::memory_order_acquire) > offset) return;
        if (failed.load(std::memory_order_acquire)) throw_failed("sync");
        sync_locked();
    }

    // -------------------------------------------------------------- append

    std::uint64_t append(const std::byte* data, std::size_t len) {
        check_writable("append");
        if (len > opts.max_record_size)
            throw durable_error("append of " + std::to_string(len) + " bytes", dir, durable_errc::record_too_large);
        const std::uint64_t need = record_bytes(len);
        segment* s;
        std::uint64_t pos, offset;
        std::shared_ptr<segment> more;  // set when the preparer should prepare further
        std::uint64_t zero_claim;
        {
            std::lock_guard<spin_word> g(append_lock);
            if (tail_pos + need > active->limit) roll_locked();
            s = active;
            pos = tail_pos;
            zero_claim = s->zero_claim;
            offset = next_offset;
            tail_pos += need;
            next_offset = offset + 1;
            end.store(offset + 1, std::memory_order_release);
            if (((pos ^ tail_pos) >> prefault_chunk_shift) != 0 && populating()) [[unlikely]] {
                std::lock_guard<std::mutex> g2(segs_mu);
                more = segs.back();
            }
        }
        if (more) [[unlikely]] request_prefault(std::move(more), pos);
        s->await_zeros(zero_claim, pos, pos + need);
        const std::uint32_t w = committed_bit | static_cast<std::uint32_t>(len);
        std::byte* at = s->at(pos);
        write_frame_tail(at, crc32c_frame_copy(w, offset, at + frame_size, data, len), offset);
        publish_word(at, w);
        switch (opts.sync.kind) {
        case sync_policy::mode::always: sync_through(offset); break;
        case sync_policy::mode::every:
            if ((offset + 1) % opts.sync.records == 0) sync_through(offset);
            break;
        default: break;
        }
        return offset;
    }
};

}  // namespace detail::dlog

class durable_log;
class durable_queue;

/// Reads a log front to back from a chosen offset, and goes on reading what
/// is appended later (next() returns nullopt when it has caught up; call it
/// again later). One reader is for one thread; make one per thread.
class log_reader {
public:
    /// The next record, or nullopt when there is none yet. Throws
    /// durable_error (durable_errc::corrupt) for a record that fails its checks.
    std::optional<record_view> next() {
        for (;;) {
            if (!seg_) {
                seg_ = core_->find(pending_base_);
                if (!seg_) {
                    if (pending_base_ < core_->begin.load(std::memory_order_acquire))
                        throw durable_error("reader at offset " + std::to_string(next_) +
                                                ": retention deleted the segment it needs next",
                                            core_->dir, durable_errc::offset_out_of_range);
                    return std::nullopt;
                }
                pos_ = detail::dlog::header_size;
            }
            namespace f = detail::dlog;
            const f::frame_check c = f::check_frame(*seg_, pos_, next_);
            if (c.kind == f::frame_check::empty) return std::nullopt;
            if (c.kind == f::frame_check::bad) corrupt(c.problem);
            if (c.kind == f::frame_check::seal) {
                pending_base_ = c.next_base;
                seg_.reset();
                continue;
            }
            record_view v{next_, {c.payload, static_cast<std::size_t>(c.len)}};
            pos_ += f::record_bytes(c.len);
            ++next_;
            return v;
        }
    }

    /// The offset next() returns next.
    [[nodiscard]] std::uint64_t position() const noexcept { return next_; }

private:
    friend class durable_log;
    friend class durable_queue;
    /// Keeps the segment of the record last returned mapped.
    [[nodiscard]] std::shared_ptr<const void> pin() const noexcept { return seg_; }
    log_reader(std::shared_ptr<detail::dlog::core> c, std::shared_ptr<detail::dlog::segment> s,
               std::uint64_t pos, std::uint64_t next)
        : core_(std::move(c)), seg_(std::move(s)), pos_(pos), next_(next), pending_base_(next) {}

    [[noreturn]] void corrupt(const char* why) const {
        throw durable_error(std::string("read at offset ") + std::to_string(next_) + ", byte " +
                                std::to_string(pos_) + ": " + why,
                            seg_->path, durable_errc::corrupt);
    }

    std::shared_ptr<detail::dlog::core> core_;
    std::shared_ptr<detail::dlog::segment> seg_;
    std::uint64_t pos_ = 0;
    std::uint64_t next_ = 0;
    std::uint64_t pending_base_ = 0;
};

/// An append-only durable log. See the top of this file and docs/durability.md.
class durable_log {
public:
    /// Creates the log in `dir` (and the directory), or opens and recovers
    /// the one there. Throws durable_error.
    explicit durable_log(std::filesystem::path dir, durable_options opts = {})
        : core_(std::make_shared<detail::dlog::core>()) {
        core_->dir = std::move(dir);
        core_->opts = std::move(opts);
        validate_options();
        open();
        if (!core_->opts.read_only && core_->opts.sync.kind == sync_policy::mode::interval)
            flusher_ = std::thread([c = core_] { run_flusher(*c); });
        if (!core_->opts.read_only && core_->opts.prefault) {
            preparer_ = std::thread([c = core_] { c->run_preparer(); });
            std::lock_guard<std::mutex> g(core_->spare_mu);
            if (core_->populating()) {
                core_->to_prefault = core_->segs.back();
                core_->prefault_upto = core_->tail_pos + detail::dlog::prefault_window;
            }
            core_->spare_wanted = true;
            core_->spare_cv.notify_all();
        }
    }

    durable_log(durable_log&&) noexcept = default;
    durable_log& operator=(durable_log&&) = delete;
    durable_log(const durable_log&) = delete;
    durable_log& operator=(const durable_log&) = delete;

    /// Stops the background syncer; with a sync policy other than none,
    /// syncs what is left (errors are swallowed: call sync() first to see
    /// them). Readers made from this log stay usable.
    ~durable_log() {
        if (!core_) return;
        if (flusher_.joinable()) {
            {
                std::lock_guard<std::mutex> g(core_->flusher_mu);
                core_->stopping = true;
            }
            core_->flusher_cv.notify_all();
            flusher_.join();
        }
        if (!core_->opts.read_only && core_->opts.sync.kind != sync_policy::mode::none &&
            !core_->failed.load(std::memory_order_acquire)) {
            try {
                sync();
            } catch (...) {
            }
        }
        core_->stop_preparer(preparer_);
    }

    /// Appends one record and returns its offset. Thread-safe. Throws
    /// durable_error: record_too_large, read_only, failed, or the system
    /// error of creating the next segment (ENOSPC: nothing was appended).
    std::uint64_t append(std::span<const std::byte> payload) {
        return core_->append(payload.data(), payload.size());
    }
    std::uint64_t append(std::string_view payload) {
        return core_->append(reinterpret_cast<const std::byte*>(payload.data()), payload.size());
    }

    /// Returns when every record whose append returned before the call is on
    /// disk. A failure leaves the log failed (read-only) and throws.
    void sync() {
        core_->check_writable("sync");
        std::lock_guard<std::mutex> g(core_->sync_mu);
        if (core_->failed.load(std::memory_order_acquire)) core_->throw_failed("sync");
        core_->sync_locked();
    }

    /// Returns when the record at `offset` and every record before it are on
    /// disk (at once if they already are). Callers waiting at the same time
    /// share one sync: a layer above that appends under its own lock syncs
    /// here after releasing it. A failure leaves the log failed and throws.
    void sync_through(std::uint64_t offset) {
        core_->check_writable("sync");
        core_->sync_through(offset);
    }

    /// The oldest offset still in the log (retention moves it forward).
    [[nodiscard]] std::uint64_t begin_offset() const noexcept {
        return core_->begin.load(std::memory_order_acquire);
    }
    /// One past the last record appended (or, read-only, found so far).
    [[nodiscard]] std::uint64_t end_offset() const {
        if (core_->opts.read_only) refresh_read_only_end();
        return core_->end.load(std::memory_order_acquire);
    }
    /// Records below this offset are on disk.
    [[nodiscard]] std::uint64_t durable_offset() const noexcept {
        return core_->durable.load(std::memory_order_acquire);
    }

    /// A reader positioned at `from` (begin_offset() <= from <= end_offset()).
    [[nodiscard]] log_reader reader(std::uint64_t from) const {
        namespace f = detail::dlog;
        const std::uint64_t end = end_offset();
        if (from < begin_offset() || from > end)
            throw durable_error("reader at offset " + std::to_string(from) + " (log holds [" +
                                    std::to_string(begin_offset()) + ", " + std::to_string(end) + "))",
                                core_->dir, durable_errc::offset_out_of_range);
        auto s = core_->containing(from);
        if (!s) throw durable_error("reader at offset " + std::to_string(from), core_->dir, durable_errc::offset_out_of_range);
        // Walk to `from`: frames below end_offset() were claimed, so each is
        // published or about to be.
        std::uint64_t pos = f::header_size;
        for (std::uint64_t o = s->base; o < from;) {
            const std::uint32_t w = f::core::await_word(*s, pos);
            if (w & f::seal_bit) break;  // from == next base: the reader moves on by itself
            pos += f::record_bytes(w & f::length_mask);
            ++o;
        }
        return log_reader(core_, std::move(s), pos, from);
    }

    /// What recovery found when this log was opened.
    [[nodiscard]] const recovery_report& recovery() const noexcept { return report_; }
    /// True after a failed sync: appends and syncs throw until the log is reopened.
    [[nodiscard]] bool failed() const noexcept { return core_->failed.load(std::memory_order_acquire); }
    [[nodiscard]] const std::filesystem::path& directory() const noexcept { return core_->dir; }
    [[nodiscard]] const durable_options& options() const noexcept { return core_->opts; }
    /// Applies retention now (it also runs whenever a segment fills up).
    void enforce_retention() {
        core_->check_writable("retention");
        std::lock_guard<detail::spin_word> g(core_->append_lock);
        core_->retain_locked();
    }
    /// Deletes the whole segments whose records all lie below `offset` (a
    /// consumer is done with them); begin_offset() moves to the first kept
    /// record. The segment being written is never deleted.
    void remove_before(std::uint64_t offset) {
        core_->check_writable("remove_before");
        std::lock_guard<detail::spin_word> g(core_->append_lock);
        core_->retain_locked(offset);
    }
    /// Faults in the rest of the segment being written, now, in the calling
    /// thread, so that the appends that follow do not stop for page faults
    /// (a writer with a latency budget calls it at start-up). With
    /// `prefault` on, a background thread keeps 16 MiB ahead of the
    /// appenders prepared; it leaves this segment alone from now on.
    void prefault_now() {
        core_->check_writable("prefault_now");
        std::shared_ptr<detail::dlog::segment> s;
        std::uint64_t from;
        {
            std::lock_guard<detail::spin_word> g(core_->append_lock);
            from = core_->tail_pos;
            std::lock_guard<std::mutex> g2(core_->segs_mu);
            s = core_->segs.back();
            s->zero_stop = true;  // the preparer writes no zeros over what this faults in
        }
        if (s->prefaulted.load(std::memory_order_relaxed) < from)
            s->prefaulted.store(from, std::memory_order_relaxed);
        s->prefault_to(s->size);
    }
    /// Number of segment files in use.
    [[nodiscard]] std::size_t segment_count() const {
        std::lock_guard<std::mutex> g(core_->segs_mu);
        return core_->segs.size();
    }
    /// The first offset of each segment, oldest first: remove_before(x)
    /// deletes the segments before the last base that is <= x.
    [[nodiscard]] std::vector<std::uint64_t> segment_bases() const {
        std::lock_guard<std::mutex> g(core_->segs_mu);
        std::vector<std::uint64_t> v;
        v.reserve(core_->segs.size());
        for (const auto& s : core_->segs) v.push_back(s->base);
        return v;
    }

private:
    void validate_options() {
        namespace f = detail::dlog;
        auto& o = core_->opts;
        auto bad = [&](const std::string& why) {
            throw durable_error("options: " + why, core_->dir, durable_errc::bad_options);
        };
        if (o.max_record_size > f::length_mask) bad("max_record_size must be below 1 GiB");
        const std::uint64_t ps = detail::page_size();
        o.segment_size = (o.segment_size + ps - 1) / ps * ps;
        if (o.segment_size > f::max_segment_size) bad("segment_size must be at most 1 TiB");
        if (o.segment_size < f::header_size + f::record_bytes(o.max_record_size) + f::seal_size)
            bad("segment_size (" + std::to_string(o.segment_size) + ") must hold a 64-byte header, one record of " +
                "max_record_size (" + std::to_string(o.max_record_size) +
                ") with its 16-byte frame, and a 24-byte seal: raise segment_size or lower max_record_size");
        if (o.sync.kind == sync_policy::mode::every && o.sync.records == 0) bad("sync::every_n(0)");
        if (o.sync.kind == sync_policy::mode::interval && o.sync.period.count() <= 0)
            bad("sync::interval needs a positive period");
    }

    void open() {
        namespace f = detail::dlog;
        auto& c = *core_;
        const bool ro = c.opts.read_only;
        if (!ro) {
            std::error_code ec;
            std::filesystem::create_directories(c.dir, ec);
            if (ec) throw durable_error("create directory", c.dir, ec);
            lock_ = detail::open_file(c.dir / "lock", O_RDWR | O_CREAT);
            detail::lock_exclusive(lock_, c.dir / "lock");
        } else if (!std::filesystem::is_directory(c.dir)) {
            throw durable_error("open read-only", c.dir, std::make_error_code(std::errc::no_such_file_or_directory));
        }

        std::vector<std::uint64_t> bases;
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator(c.dir, ec)) {
            const std::string name = e.path().filename().string();
            if (auto b = f::parse_segment_name(name)) bases.push_back(*b);
            else if (!ro && name.size() > 8 && name.ends_with(".seg.new")) {
                detail::remove_file(e.path());
                ++report_.removed_temporaries;
            }
        }
        if (ec) throw durable_error("list directory", c.dir, ec);
        std::sort(bases.begin(), bases.end());

        std::deque<std::shared_ptr<f::segment>> kept;
        std::uint64_t expect = bases.empty() ? 0 : bases.front();
        std::uint64_t tail = f::header_size;
        bool open_tail = false;  // the last kept segment is not sealed
        std::size_t i = 0;
        for (; i < bases.size(); ++i) {
            const std::uint64_t base = bases[i];
            const auto path = c.dir / f::segment_name(base);
            std::string problem;
            std::shared_ptr<f::segment> s;
            const bool s_expected = base == expect;
            if (!s_expected) {
                problem = "segment " + f::segment_name(base) + " does not start at the expected offset " +
                          std::to_string(expect);
            } else {
                auto o = f::open_segment(path, base, !ro);
                problem = std::move(o.problem);
                s = std::move(o.seg);
                if (!o.note.empty() && report_.first_problem.empty())
                    report_.first_problem = path.filename().string() + ": " + o.note;
            }
            if (!problem.empty()) {
                // A header that never reached the disk can only belong to the
                // newest file; a gap or anything else is damage inside the log.
                stop_at(bases, i, path, problem, s_expected && i + 1 == bases.size());
                break;
            }
            s->map.advise(MADV_SEQUENTIAL);
            const auto r = f::scan(*s, f::header_size, base);
            s->map.advise(MADV_NORMAL);
            report_.records += r.records;
            kept.push_back(s);
            expect = base + r.records;
            if (r.sealed) {
                s->sealed_end = r.end;
                s->sealed_unix_ns = r.sealed_unix_ns;
                continue;
            }
            tail = r.end;
            open_tail = true;
            const bool last = i + 1 == bases.size();
            if (!r.problem.empty() || !last) {
                std::string why = r.problem.empty() ? "segment ends without a seal" : r.problem;
                stop_at(bases, i + 1, path, why, last);
            }
            // Frames past the tail (an appender killed before it published,
            // damage) must never rejoin the log when new records fill the gap.
            if (!ro) report_.discarded_bytes += zero_tail(*s, tail);
            ++i;
            break;
        }
        report_.segments = kept.size();

        c.segs = std::move(kept);
        if (ro) {
            if (c.segs.empty()) throw durable_error("open read-only: no segments", c.dir, durable_errc::bad_format);
            c.active = c.segs.back().get();
            c.tail_pos = open_tail ? tail : c.active->sealed_end - f::seal_size;
            c.next_offset = expect;
            c.end.store(expect);
            c.begin.store(c.segs.front()->base);
            return;
        }
        c.next_offset = expect;
        if (c.segs.empty() || !open_tail) {
            c.segs.push_back(c.create_segment(expect));
            tail = f::header_size;
        }
        c.active = c.segs.back().get();
        c.tail_pos = tail;
        c.active->prefaulted.store(tail, std::memory_order_relaxed);  // written pages are in already
        c.end.store(expect);
        c.begin.store(c.segs.front()->base);
        // Whatever survived is made durable now, so durable_offset() starts true.
        c.synced_base = c.segs.front()->base;
        c.synced_pos = 0;
        c.dir_dirty.store(true);
        {
            std::lock_guard<std::mutex> g(c.sync_mu);
            c.sync_locked();
        }
        c.durable.store(expect);
        std::lock_guard<detail::spin_word> g(c.append_lock);
        c.retain_locked();
    }

    /// Recovery stops at segment bases[from - 1] (or before bases[from] when
    /// its header is bad): everything from bases[from] on is set aside.
    void stop_at(const std::vector<std::uint64_t>& bases, std::size_t from, const std::filesystem::path& where,
                 const std::string& problem, bool tail_only) {
        namespace f = detail::dlog;
        auto& c = *core_;
        if (report_.first_problem.empty()) report_.first_problem = where.filename().string() + ": " + problem;
        if (c.opts.read_only) return;
        if (!tail_only && c.opts.corruption == on_corruption::fail)
            throw durable_error("recovery: " + problem, where, durable_errc::corrupt);
        for (std::size_t j = from; j < bases.size(); ++j) {
            const auto p = c.dir / f::segment_name(bases[j]);
            detail::rename_file(p, std::filesystem::path(p) += ".discarded");
            ++report_.discarded_segments;
        }
        if (from < bases.size()) detail::sync_dir(c.dir);
    }

    /// Zeroes [from, size) of a segment where it is not zero already, and
    /// syncs it: stale frames past the new tail can never rejoin the log.
    static std::uint64_t zero_tail(detail::dlog::segment& s, std::uint64_t from) {
        const std::uint64_t ps = detail::page_size();
        std::uint64_t zeroed = 0;
        std::uint64_t first_dirty = s.size, last_dirty = 0;
        for (std::uint64_t p = from; p < s.size;) {
            const std::uint64_t chunk_end = std::min(s.size, (p / ps + 1) * ps);
            const std::byte* b = s.at(p);
            const std::size_t n = static_cast<std::size_t>(chunk_end - p);
            bool all_zero = true;
            std::size_t k = 0;
            for (; k + 8 <= n && all_zero; k += 8) {
                std::uint64_t v;
                std::memcpy(&v, b + k, 8);
                all_zero = v == 0;
            }
            for (; k < n && all_zero; ++k) all_zero = b[k] == std::byte{0};
            if (!all_zero) {
                std::memset(s.at(p), 0, n);
                zeroed += n;
                first_dirty = std::min(first_dirty, p);
                last_dirty = chunk_end;
            }
            p = chunk_end;
        }
        if (zeroed) s.map.sync(first_dirty, last_dirty);
        return zeroed;
    }

    /// Read-only: follows the frames past the last known end.
    void refresh_read_only_end() const {
        namespace f = detail::dlog;
        auto& c = *core_;
        std::lock_guard<detail::spin_word> g(c.append_lock);
        for (;;) {
            const f::frame_check fc = f::check_frame(*c.active, c.tail_pos, c.next_offset);
            // Nothing more yet, or a damaged tail (the writer's recovery cuts it).
            if (fc.kind == f::frame_check::empty || fc.kind == f::frame_check::bad) return;
            if (fc.kind == f::frame_check::seal) {
                auto next = c.find(fc.next_base);
                if (!next) return;
                c.active = next.get();
                c.tail_pos = f::header_size;
                continue;
            }
            c.tail_pos += f::record_bytes(fc.len);
            c.next_offset += 1;
            c.end.store(c.next_offset, std::memory_order_release);
        }
    }

    static void run_flusher(detail::dlog::core& c) {
        std::unique_lock<std::mutex> lk(c.flusher_mu);
        while (!c.stopping) {
            c.flusher_cv.wait_for(lk, c.opts.sync.period);
            if (c.stopping) break;
            lk.unlock();
            try {
                if (c.end.load(std::memory_order_acquire) > c.durable.load(std::memory_order_acquire))
                    c.sync_through(c.end.load(std::memory_order_acquire) - 1);
            } catch (...) {
                return;  // the log is failed; writers see it
            }
            lk.lock();
        }
    }

    std::shared_ptr<detail::dlog::core> core_;
    detail::unique_fd lock_;
    std::thread flusher_;
    std::thread preparer_;
    recovery_report report_;
};

}  // namespace conq

// benchmarks/durable.bench.cpp
//
// conq_durable_bench: conq::durable_log next to the raw limits of the same
// machine (a pre-faulted file mapping, framed write() calls, fdatasync) and
// next to what a user would pick instead (LMDB, SQLite in WAL mode,
// RocksDB), all in one run so that every ratio comes from the same machine
// at the same moment.
//
// Benchmarks (<size> is 64B or 1KiB; one writer thread unless stated):
//
//   log_append/<size>/<sync>    conq::durable_log::append of N records into
//                               a fresh log with default options (64 MiB
//                               segments, prefault on); <sync> is
//                               none        sync::none
//                               none_prefaulted  sync::none, one segment
//                                           big enough for all records,
//                                           faulted in by prefault_now()
//                                           before the clock starts (the
//                                           method of raw_mmap_copy)
//                               none+sync   sync::none, and the time
//                                           includes a final log.sync()
//                               every_1MiB  sync::every_n(records per MiB
//                                           of payload: 16384 or 1024)
//                               every_1MiB_prefaulted  the same into one
//                                           segment faulted in first (the
//                                           method of raw_mmap_msync_1MiB)
//                               always      sync::always (fewer records)
//   raw_mmap_copy/<size>        records copied into a MAP_SHARED mapping of
//                               a fallocated file, faulted in beforehand
//                               (MADV_POPULATE_WRITE, not timed): an 8-byte
//                               header stored last with release order,
//                               8-byte aligned records, no checksum
//   raw_write_crc/<size>        frames (u32 length, u32 CRC-32C of the
//                               payload, payload) packed into a 64 KiB
//                               buffer and write()n to an O_APPEND file
//   raw_mmap_msync_1MiB/<size>  raw_mmap_copy with msync(MS_SYNC) of the
//                               newly written range after every MiB of
//                               payload (as sync::every_n, the records
//                               after the last full MiB are not synced)
//   raw_page/<method>           the pages of a fresh 64 MiB fallocated file
//                               mapped MAP_SHARED (a new segment), per page
//                               (records = pages; counter ns_per_page):
//                               populate_write  madvise(MADV_POPULATE_WRITE)
//                               zero_pwritev    zeros written with pwritev,
//                                               16 x 64 KiB per call
//                               first_write     one store per page through
//                                               the mapping (a fault each)
//                               first_write_after_zero  the same after
//                                               zero_pwritev (untimed)
//   fdatasync_64B               write() of 64 bytes to an O_APPEND file,
//                               then fdatasync, S times: counters p50_us,
//                               p90_us, p99_us and max_us of each pair
//   log_recovery/<size>         opening (recovering) a log that holds this
//                               much 1 KiB payload, its files in the page
//                               cache; built and opened once before the
//                               first timed open (neither timed). Time per
//                               open; bytes_per_second is payload scanned
//   log_tail_latency/64B        one thread appends 64-byte records, each
//                               carrying a steady_clock time stamp, paced at
//                               one per GAP ns (busy wait); another tails the
//                               log with a reader spinning on next() and
//                               takes now - stamp: counters p50_ns, p90_ns,
//                               p99_ns, p999_ns, max_ns (the first 1 % of
//                               the records is left out as warm-up). The two
//                               threads are pinned to the first two CPUs
//   lmdb_append/<size>          MDB_NOSYNC | MDB_WRITEMAP | MDB_NOMETASYNC,
//                               8 GiB map, big-endian u64 keys put with
//                               MDB_APPEND, one write transaction per 1000
//   sqlite_wal_append/<size>    journal_mode=WAL, synchronous=OFF, a
//                               prepared INSERT into (id INTEGER PRIMARY KEY,
//                               v BLOB), BEGIN/COMMIT every 1000 rows
//   rocksdb_put/<size>          default Options (create_if_missing), one
//                               Put per record with sync=false (WAL on),
//                               big-endian u64 keys
//
// Every rate is records per second (items_per_second) and payload bytes
// per second (bytes_per_second); keys, frames and headers are not counted.
// The time runs from the first record to the return of the last append,
// write() or commit (manual time, one run per repetition); opening and
// closing are not timed. Each peer is compiled in only when CMake finds it.
//
// Payloads are incompressible pseudo-random bytes made before any timing:
// record i takes its bytes from a 16 MiB pool at (i mod (16 MiB / size)) *
// size, so that the source is not cache-resident either.
//
// Each case starts in a fresh directory under the scratch directory, after
// a syncfs() of its file system (so that no write-back from an earlier case
// overlaps it), and removes the directory afterwards. The conq cases then
// wait SETTLE ms before the clock starts, so that the log's preparer thread
// has faulted in the first segment and the spare, as it would have long
// before in a log that has been open for a while (raw_mmap_copy faults its
// mapping in before the clock starts too).
//
// Checks (a failed one reports an error and makes the program exit with
// status 1): the conq cases check end_offset(), durable_offset() against
// the sync policy and the bytes of the last record read back; the raw cases
// check headers and payloads (or frames and CRCs) of the first, middle and
// last records and the file size; recovery checks the record count, a clean
// recovery report and the last record; the tail reader checks that every
// record arrives once, in order; the peers check the final count and the
// last record's value.
//
// Settings (flag, else environment variable, else default):
//
//   --conq_records_64=N       CONQ_BENCH_DURABLE_RECORDS_64      2000000  records of 64 B
//   --conq_records_1k=N       CONQ_BENCH_DURABLE_RECORDS_1K      500000   records of 1 KiB
//   --conq_records_always=N   CONQ_BENCH_DURABLE_RECORDS_ALWAYS  2000     records under sync::always
//   --conq_fsync_samples=N    CONQ_BENCH_DURABLE_FSYNC_SAMPLES   1000     write + fdatasync pairs
//   --conq_recovery_mib=N     CONQ_BENCH_DURABLE_RECOVERY_MIB    1024     payload of the recovered log
//   --conq_tail_records=N     CONQ_BENCH_DURABLE_TAIL_RECORDS    200000   records of log_tail_latency
//   --conq_tail_gap_ns=N      CONQ_BENCH_DURABLE_TAIL_GAP_NS     2000     pacing of log_tail_latency
//   --conq_settle_ms=N        CONQ_BENCH_DURABLE_SETTLE_MS       200      wait after opening a log
//   --conq_dir=PATH           CONQ_BENCH_DIR                     /tmp     scratch directory
//   --conq_cpus=0,1,...       CONQ_BENCH_CPUS                    the CPUs this process may use
//   --conq_timeout_s=N        CONQ_BENCH_TIMEOUT_S               120      abort a tail run that hangs
//
// Peak scratch space: the recovered log (about 1.1 GB by default) plus the
// largest case (about 0.6 GB; LMDB's data file has an apparent size of
// 8 GiB but is sparse).

#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "bench_common.hpp"
#include "conq/detail/crc32c.hpp"
#include "conq/durable/log.hpp"

#if defined(CONQ_BENCH_HAVE_LMDB)
#include <lmdb.h>
#endif
#if defined(CONQ_BENCH_HAVE_SQLITE)
#include <sqlite3.h>
#endif
#if defined(CONQ_BENCH_HAVE_ROCKSDB)
#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/status.h>
#include <rocksdb/version.h>
#endif

namespace conq_bench {
namespace {

namespace fs = std::filesystem;

// ------------------------------------------------------------ configuration

struct config {
    std::uint64_t records_64 = 2'000'000;
    std::uint64_t records_1k = 500'000;
    std::uint64_t records_always = 2'000;
    std::uint64_t fsync_samples = 1'000;
    std::uint64_t recovery_mib = 1'024;
    std::uint64_t tail_records = 200'000;
    std::uint64_t tail_gap_ns = 2'000;
    std::uint64_t settle_ms = 200;
    std::string dir = "/tmp";
    std::vector<int> cpus;
    int timeout_s = 120;
};

config& settings() {
    static config c;
    return c;
}

void read_settings(int& argc, char** argv) {
    config& c = settings();
    c.cpus = allowed_cpus();
    auto apply = [&c](const std::string& key, const std::string& value) {
        if (key == "records_64")
            c.records_64 = parse_count("records_64", value, 1);
        else if (key == "records_1k")
            c.records_1k = parse_count("records_1k", value, 1);
        else if (key == "records_always")
            c.records_always = parse_count("records_always", value, 1);
        else if (key == "fsync_samples")
            c.fsync_samples = parse_count("fsync_samples", value, 1);
        else if (key == "recovery_mib")
            c.recovery_mib = parse_count("recovery_mib", value, 1);
        else if (key == "tail_records")
            c.tail_records = parse_count("tail_records", value, 1);
        else if (key == "tail_gap_ns")
            c.tail_gap_ns = parse_count("tail_gap_ns", value, 0);
        else if (key == "settle_ms")
            c.settle_ms = parse_count("settle_ms", value, 0);
        else if (key == "dir") {
            if (value.empty()) usage_error("dir must name a directory");
            c.dir = value;
        } else if (key == "cpus")
            c.cpus = parse_cpus("cpus", value);
        else if (key == "timeout_s")
            c.timeout_s = static_cast<int>(parse_count("timeout_s", value, 1));
        else
            return false;
        return true;
    };
    read_flags(argc, argv,
               {{"records_64", "CONQ_BENCH_DURABLE_RECORDS_64"},
                {"records_1k", "CONQ_BENCH_DURABLE_RECORDS_1K"},
                {"records_always", "CONQ_BENCH_DURABLE_RECORDS_ALWAYS"},
                {"fsync_samples", "CONQ_BENCH_DURABLE_FSYNC_SAMPLES"},
                {"recovery_mib", "CONQ_BENCH_DURABLE_RECOVERY_MIB"},
                {"tail_records", "CONQ_BENCH_DURABLE_TAIL_RECORDS"},
                {"tail_gap_ns", "CONQ_BENCH_DURABLE_TAIL_GAP_NS"},
                {"settle_ms", "CONQ_BENCH_DURABLE_SETTLE_MS"},
                {"dir", "CONQ_BENCH_DIR"},
                {"cpus", "CONQ_BENCH_CPUS"},
                {"timeout_s", "CONQ_BENCH_TIMEOUT_S"}},
               apply);
}

/// Thread i of a pinned pair runs on the i-th CPU of the list; with fewer
/// than two CPUs nothing is pinned.
int worker_cpu(int i) {
    const auto& cpus = settings().cpus;
    if (cpus.size() < 2) return -1;
    return cpus[static_cast<std::size_t>(i) % cpus.size()];
}

std::uint64_t records_for(std::size_t len) {
    return len <= 64 ? settings().records_64 : settings().records_1k;
}

std::string size_name(std::size_t len) {
    return len % 1024 == 0 ? cat(std::to_string(len / 1024), "KiB") : cat(std::to_string(len), "B");
}

constexpr std::uint64_t mib = std::uint64_t{1} << 20;

// ------------------------------------------------------------------ helpers

std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               clock_type::now().time_since_epoch())
        .count();
}

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

std::string errno_text(const char* what, int e) {
    return cat(what, ": ", std::generic_category().message(e));
}

/// A file descriptor closed on every way out.
class fd_guard {
public:
    explicit fd_guard(int fd) noexcept : fd_(fd) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() {
        if (fd_ >= 0) ::close(fd_);
    }
    [[nodiscard]] int get() const noexcept { return fd_; }

private:
    int fd_;
};

/// xorshift64*, seeded through splitmix64.
class xorshift {
public:
    explicit xorshift(std::uint64_t seed) noexcept {
        std::uint64_t z = seed + 0x9e3779b97f4a7c15ULL;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        s_ = z != 0 ? z : 1;
    }
    std::uint64_t operator()() noexcept {
        s_ ^= s_ >> 12;
        s_ ^= s_ << 25;
        s_ ^= s_ >> 27;
        return s_ * 0x2545f4914f6cdd1dULL;
    }

private:
    std::uint64_t s_;
};

/// The payloads of one record size: 16 MiB of pseudo-random bytes, record i
/// at slot i mod slots. Larger than the last-level cache of the machines we
/// measure on, so a copy reads its source from memory, as it would for a
/// stream of distinct records.
class payload_pool {
public:
    static constexpr std::size_t pool_bytes = 16 * mib;

    explicit payload_pool(std::size_t len)
        : len_(len), slots_(pool_bytes / len), bytes_(slots_ * len) {
        xorshift rng(0x5eed0000 + len);
        for (std::size_t i = 0; i + 8 <= bytes_.size(); i += 8) {
            const std::uint64_t v = rng();
            std::memcpy(bytes_.data() + i, &v, 8);
        }
    }
    [[nodiscard]] const std::byte* at(std::uint64_t i) const noexcept {
        return bytes_.data() + static_cast<std::size_t>(i % slots_) * len_;
    }
    [[nodiscard]] std::span<const std::byte> record(std::uint64_t i) const noexcept {
        return {at(i), len_};
    }
    [[nodiscard]] std::size_t size() const noexcept { return len_; }
    [[nodiscard]] bool matches(std::uint64_t i, const void* data, std::size_t n) const noexcept {
        return n == len_ && std::memcmp(at(i), data, n) == 0;
    }

private:
    std::size_t len_;
    std::size_t slots_;
    std::vector<std::byte> bytes_;
};

const payload_pool& payloads(std::size_t len) {
    static const payload_pool p64(64);
    static const payload_pool p1k(1024);
    return len <= 64 ? p64 : p1k;
}

/// The first, the middle and the last index of [0, n): what the checks read back.
std::vector<std::uint64_t> probes(std::uint64_t n) {
    std::vector<std::uint64_t> out{0, n / 2, n - 1};
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

/// Nearest-rank percentile of sorted samples.
double percentile(const std::vector<std::int64_t>& sorted, double p) {
    if (sorted.empty()) return 0;
    const double n = static_cast<double>(sorted.size());
    auto k = static_cast<std::size_t>(std::ceil(p * n));
    k = std::clamp<std::size_t>(k, 1, sorted.size());
    return static_cast<double>(sorted[k - 1]);
}

[[maybe_unused]] void store_be64(std::uint64_t v, unsigned char* out) noexcept {
    for (int b = 0; b < 8; ++b) out[b] = static_cast<unsigned char>(v >> (56 - 8 * b));
}

// ---------------------------------------------------------- scratch space

/// The program's own directory under the scratch directory: made on first
/// use, removed by main() at the end.
std::optional<fs::path>& scratch_root_slot() {
    static std::optional<fs::path> root;
    return root;
}

const fs::path& scratch_root() {
    auto& root = scratch_root_slot();
    if (!root) {
        std::string templ = cat(settings().dir, "/conq-durable-bench-XXXXXX");
        if (::mkdtemp(templ.data()) == nullptr) {
            std::fprintf(stderr, "%s: cannot make a directory in %s: %s\n", program_name,
                         settings().dir.c_str(), std::strerror(errno));
            std::exit(2);
        }
        root = fs::path(templ);
    }
    return *root;
}

void remove_scratch_root() {
    if (!scratch_root_slot()) return;
    std::error_code ignored;
    fs::remove_all(*scratch_root_slot(), ignored);
}

/// Writes back whatever is dirty on the scratch file system, so that no
/// write-back left by an earlier case runs during the next one.
void quiesce() {
    const int fd = ::open(scratch_root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)::syncfs(fd);
    ::close(fd);
}

/// A fresh directory for one case, removed with everything in it at the end.
class scratch_dir {
public:
    explicit scratch_dir(const std::string& name) {
        static std::atomic<std::uint64_t> serial{0};
        path_ = scratch_root() / cat(name, "-", std::to_string(serial.fetch_add(1)));
        fs::create_directories(path_);
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
    ~scratch_dir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    [[nodiscard]] const fs::path& path() const noexcept { return path_; }

private:
    fs::path path_;
};

const char* file_system_name(const fs::path& p) {
    struct statfs s {};
    if (::statfs(p.c_str(), &s) != 0) return "unknown";
    switch (static_cast<unsigned long>(s.f_type)) {
        case 0xEF53UL: return "ext4 (or ext2/3)";
        case 0x58465342UL: return "xfs";
        case 0x9123683EUL: return "btrfs";
        case 0x01021994UL: return "tmpfs";
        case 0x794C7630UL: return "overlayfs";
        case 0x2FC12FC1UL: return "zfs";
        default: return "other";
    }
}

// ------------------------------------------------------------------ results

struct case_result {
    double seconds = 0;
    std::uint64_t records = 0;
    std::uint64_t bytes = 0;
    std::vector<std::pair<std::string, double>> counters;
    std::string error;
};

case_result failed(std::string why) {
    case_result r;
    r.error = std::move(why);
    return r;
}

// ------------------------------------------------------ conq::durable_log

enum class policy { none, none_prefaulted, none_then_sync, every_mib, every_mib_prefaulted, always };

bool prefaulted(policy p) { return p == policy::none_prefaulted || p == policy::every_mib_prefaulted; }

const char* policy_name(policy p) {
    switch (p) {
        case policy::none: return "none";
        case policy::none_prefaulted: return "none_prefaulted";
        case policy::none_then_sync: return "none+sync";
        case policy::every_mib: return "every_1MiB";
        case policy::every_mib_prefaulted: return "every_1MiB_prefaulted";
        case policy::always: return "always";
    }
    return "?";
}

void settle() {
    std::this_thread::sleep_for(std::chrono::milliseconds(settings().settle_ms));
}

/// Reads record `at` back through a reader and compares it with the pool.
std::string check_record(const conq::durable_log& log, const payload_pool& pool, std::uint64_t at) {
    auto r = log.reader(at);
    const auto rec = r.next();
    if (!rec) return cat("record ", std::to_string(at), " cannot be read back");
    if (rec->offset != at) return cat("reader at ", std::to_string(at), " returned offset ",
                                      std::to_string(rec->offset));
    if (!pool.matches(at, rec->payload.data(), rec->payload.size()))
        return cat("record ", std::to_string(at), " reads back different bytes");
    return {};
}

case_result log_append(std::size_t len, policy p) {
    const payload_pool& pool = payloads(len);
    const std::uint64_t n = p == policy::always ? settings().records_always : records_for(len);
    const std::uint64_t group = mib / len;  // records per MiB of payload
    conq::durable_options opts;
    switch (p) {
        case policy::none:
        case policy::none_prefaulted:
        case policy::none_then_sync: opts.sync = conq::sync::none; break;
        case policy::every_mib:
        case policy::every_mib_prefaulted: opts.sync = conq::sync::every_n(group); break;
        case policy::always: opts.sync = conq::sync::always; break;
    }
    if (prefaulted(p)) {
        // One segment holds every record, and it is faulted in before the
        // clock starts: the method of raw_mmap_copy, so the two compare the
        // append path itself (lock, frame, checksum, copy, publication).
        opts.segment_size = n * conq::detail::dlog::record_bytes(len) + mib;
        opts.max_record_size = static_cast<std::uint32_t>(len);
    }
    quiesce();
    scratch_dir dir("log_append");
    case_result r;
    conq::durable_log log(dir.path() / "log", opts);
    if (prefaulted(p)) log.prefault_now();
    settle();
    const auto t0 = clock_type::now();
    for (std::uint64_t i = 0; i < n; ++i) log.append(pool.record(i));
    auto t1 = clock_type::now();
    if (p == policy::none_then_sync) {
        log.sync();
        const auto t2 = clock_type::now();
        r.counters.emplace_back("final_sync_ms", seconds_between(t1, t2) * 1e3);
        t1 = t2;
    }
    r.seconds = seconds_between(t0, t1);
    r.records = n;
    r.bytes = n * len;
    r.counters.emplace_back("segments", static_cast<double>(log.segment_count()));
    if (p == policy::every_mib || p == policy::every_mib_prefaulted)
        r.counters.emplace_back("sync_every", static_cast<double>(group));

    if (log.end_offset() != n)
        return failed(cat("end_offset() is ", std::to_string(log.end_offset()), " after ",
                          std::to_string(n), " appends"));
    std::uint64_t durable_min = 0;
    if (p == policy::none_then_sync || p == policy::always) durable_min = n;
    if (p == policy::every_mib || p == policy::every_mib_prefaulted) durable_min = n / group * group;
    if (log.durable_offset() < durable_min)
        return failed(cat("durable_offset() is ", std::to_string(log.durable_offset()),
                          ", expected at least ", std::to_string(durable_min)));
    for (std::uint64_t at : probes(n)) {
        if (auto e = check_record(log, pool, at); !e.empty()) return failed(std::move(e));
    }
    return r;
}

// -------------------------------------------------------------- raw limits

/// A fallocated file mapped MAP_SHARED, faulted in writable before use
/// (unless `populate_now` is false).
class raw_mapping {
public:
    raw_mapping(const fs::path& file, std::size_t size, bool populate_now = true) : size_(size) {
        fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd_ < 0) throw std::runtime_error(errno_text("open", errno));
        if (const int e = ::posix_fallocate(fd_, 0, static_cast<off_t>(size)); e != 0) {
            release();
            throw std::runtime_error(errno_text("posix_fallocate", e));
        }
        void* a = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
        if (a == MAP_FAILED) {
            const int e = errno;
            release();
            throw std::runtime_error(errno_text("mmap", e));
        }
        base_ = static_cast<std::byte*>(a);
        if (populate_now) populate();
    }
    raw_mapping(const raw_mapping&) = delete;
    raw_mapping& operator=(const raw_mapping&) = delete;
    ~raw_mapping() { release(); }
    [[nodiscard]] std::byte* data() const noexcept { return base_; }
    [[nodiscard]] int fd() const noexcept { return fd_; }
    void populate() {
#if defined(MADV_POPULATE_WRITE)
        if (::madvise(base_, size_, MADV_POPULATE_WRITE) == 0) return;
#endif
        // Kernels before 5.14: a write fault on every page does the same.
        const std::size_t ps = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        for (std::size_t p = 0; p < size_; p += ps)
            std::atomic_ref<std::byte>(base_[p]).store(std::byte{0}, std::memory_order_relaxed);
    }

private:
    void release() noexcept {
        if (base_ != nullptr) ::munmap(base_, size_);
        if (fd_ >= 0) ::close(fd_);
        base_ = nullptr;
        fd_ = -1;
    }

    int fd_ = -1;
    std::byte* base_ = nullptr;
    std::size_t size_;
};

constexpr std::uint64_t raw_header(std::uint64_t index, std::size_t len) noexcept {
    return (index << 32) | (std::uint64_t{1} << 31) | len;
}

/// raw_mmap_copy and raw_mmap_msync_1MiB: the payload first, then the
/// header word with one release store (what a tailing reader waits for).
template <std::size_t Len>
case_result raw_mmap(bool msync_each_mib) {
    static_assert(Len % 8 == 0, "records stay 8-byte aligned");
    constexpr std::size_t rec = 8 + Len;
    const payload_pool& pool = payloads(Len);
    const std::uint64_t n = records_for(Len);
    const std::size_t ps = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::size_t size = (n * rec + ps - 1) / ps * ps;
    quiesce();
    scratch_dir dir(msync_each_mib ? "raw_mmap_msync" : "raw_mmap_copy");
    raw_mapping map(dir.path() / "data", size);
    std::byte* const base = map.data();

    std::uint64_t syncs = 0;
    const auto t0 = clock_type::now();
    std::size_t pos = 0, synced = 0, unsynced_payload = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
        std::memcpy(base + pos + 8, pool.at(i), Len);
        std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(base + pos))
            .store(raw_header(i, Len), std::memory_order_release);
        pos += rec;
        if (msync_each_mib) {
            unsynced_payload += Len;
            if (unsynced_payload >= mib) {
                const std::size_t from = synced / ps * ps;
                if (::msync(base + from, pos - from, MS_SYNC) != 0)
                    return failed(errno_text("msync", errno));
                synced = pos;
                unsynced_payload = 0;
                ++syncs;
            }
        }
    }
    const auto t1 = clock_type::now();

    for (std::uint64_t at : probes(n)) {
        std::uint64_t h;
        std::memcpy(&h, base + at * rec, 8);
        if (h != raw_header(at, Len) || !pool.matches(at, base + at * rec + 8, Len))
            return failed(cat("record ", std::to_string(at), " has a wrong header or payload"));
    }
    case_result r;
    r.seconds = seconds_between(t0, t1);
    r.records = n;
    r.bytes = n * Len;
    if (msync_each_mib) r.counters.emplace_back("syncs", static_cast<double>(syncs));
    return r;
}

/// What the log's preparer can do to the pages of a new segment before the
/// appenders reach them, and what the appenders pay for each page; see
/// raw_page/<method> in the header.
enum class page_method { populate_write, zero_pwritev, first_write, first_write_after_zero };

const char* page_method_name(page_method m) {
    switch (m) {
        case page_method::populate_write: return "populate_write";
        case page_method::zero_pwritev: return "zero_pwritev";
        case page_method::first_write: return "first_write";
        case page_method::first_write_after_zero: return "first_write_after_zero";
    }
    return "?";
}

case_result raw_page(page_method m) {
    constexpr std::size_t size = std::size_t{64} << 20;  // the log's default segment
    const std::size_t ps = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    quiesce();
    scratch_dir dir(cat("raw_page_", page_method_name(m)));
    raw_mapping map(dir.path() / "data", size, false);
    std::byte* const base = map.data();
    // The log's preparer's own call: pwritev, 16 x 64 KiB at a time.
    const conq::detail::unique_fd fd(::dup(map.fd()));
    auto write_zeros = [&]() -> std::string {
        if (conq::detail::dlog::segment::write_zeros(fd, 0, size)) return {};
        return errno_text("pwritev", errno);
    };
    if (m == page_method::first_write_after_zero) {
        if (auto e = write_zeros(); !e.empty()) return failed(e);
    }
    const auto t0 = clock_type::now();
    switch (m) {
        case page_method::populate_write:
            map.populate();
            break;
        case page_method::zero_pwritev:
            if (auto e = write_zeros(); !e.empty()) return failed(e);
            break;
        case page_method::first_write:
        case page_method::first_write_after_zero:
            for (std::size_t p = 0; p < size; p += ps)
                std::atomic_ref<std::byte>(base[p]).store(std::byte{1}, std::memory_order_relaxed);
            break;
    }
    const auto t1 = clock_type::now();
    const bool wrote = m == page_method::first_write || m == page_method::first_write_after_zero;
    for (std::size_t p = 0; p < size; p += ps * 997) {
        if (base[p] != (wrote ? std::byte{1} : std::byte{0}) || base[p + ps - 1] != std::byte{0})
            return failed(cat("page at ", std::to_string(p), " does not read back as expected"));
    }
    case_result r;
    r.seconds = seconds_between(t0, t1);
    r.records = size / ps;
    r.bytes = size;
    r.counters.emplace_back("ns_per_page", r.seconds * 1e9 / static_cast<double>(r.records));
    return r;
}

std::string write_all(int fd, const std::byte* p, std::size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno_text("write", errno);
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return {};
}

/// raw_write_crc: u32 length, u32 CRC-32C(payload), payload; 64 KiB writes.
template <std::size_t Len>
case_result raw_write_crc() {
    constexpr std::size_t frame = 8 + Len;
    constexpr std::size_t buffer_bytes = 64 * 1024;
    const payload_pool& pool = payloads(Len);
    const std::uint64_t n = records_for(Len);
    quiesce();
    scratch_dir dir("raw_write_crc");
    const fs::path file = dir.path() / "data";
    fd_guard fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644));
    if (fd.get() < 0) return failed(errno_text("open", errno));
    std::vector<std::byte> buffer(buffer_bytes);

    const auto t0 = clock_type::now();
    std::size_t used = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
        if (used + frame > buffer_bytes) {
            if (auto e = write_all(fd.get(), buffer.data(), used); !e.empty()) return failed(e);
            used = 0;
        }
        const std::byte* payload = pool.at(i);
        const std::uint32_t length = Len;
        const std::uint32_t crc = conq::detail::crc32c(payload, Len);
        std::memcpy(buffer.data() + used, &length, 4);
        std::memcpy(buffer.data() + used + 4, &crc, 4);
        std::memcpy(buffer.data() + used + 8, payload, Len);
        used += frame;
    }
    if (auto e = write_all(fd.get(), buffer.data(), used); !e.empty()) return failed(e);
    const auto t1 = clock_type::now();

    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return failed(errno_text("fstat", errno));
    if (static_cast<std::uint64_t>(st.st_size) != n * frame)
        return failed(cat("file holds ", std::to_string(st.st_size), " bytes, expected ",
                          std::to_string(n * frame)));
    fd_guard in(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (in.get() < 0) return failed(errno_text("open", errno));
    std::vector<std::byte> back(frame);
    for (std::uint64_t at : probes(n)) {
        if (::pread(in.get(), back.data(), frame, static_cast<off_t>(at * frame)) !=
            static_cast<ssize_t>(frame))
            return failed(cat("short read of frame ", std::to_string(at)));
        std::uint32_t length, crc;
        std::memcpy(&length, back.data(), 4);
        std::memcpy(&crc, back.data() + 4, 4);
        if (length != Len || crc != conq::detail::crc32c(back.data() + 8, Len) ||
            !pool.matches(at, back.data() + 8, Len))
            return failed(cat("frame ", std::to_string(at), " reads back wrong"));
    }
    case_result r;
    r.seconds = seconds_between(t0, t1);
    r.records = n;
    r.bytes = n * Len;
    return r;
}

/// fdatasync_64B: the latency of one small durable append with write().
case_result fdatasync_latency() {
    constexpr std::size_t len = 64;
    const payload_pool& pool = payloads(len);
    const std::uint64_t n = settings().fsync_samples;
    quiesce();
    scratch_dir dir("fdatasync");
    fd_guard fd(::open((dir.path() / "data").c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644));
    if (fd.get() < 0) return failed(errno_text("open", errno));
    std::vector<std::int64_t> ns;
    ns.reserve(static_cast<std::size_t>(n));
    double total = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
        const auto t0 = clock_type::now();
        if (auto e = write_all(fd.get(), pool.at(i), len); !e.empty()) return failed(e);
        if (::fdatasync(fd.get()) != 0) return failed(errno_text("fdatasync", errno));
        const auto t1 = clock_type::now();
        ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
        total += seconds_between(t0, t1);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return failed(errno_text("fstat", errno));
    if (static_cast<std::uint64_t>(st.st_size) != n * len)
        return failed(cat("file holds ", std::to_string(st.st_size), " bytes, expected ",
                          std::to_string(n * len)));
    std::sort(ns.begin(), ns.end());
    case_result r;
    r.seconds = total;
    r.records = n;
    r.bytes = n * len;
    r.counters.emplace_back("p50_us", percentile(ns, 0.50) / 1e3);
    r.counters.emplace_back("p90_us", percentile(ns, 0.90) / 1e3);
    r.counters.emplace_back("p99_us", percentile(ns, 0.99) / 1e3);
    r.counters.emplace_back("max_us", static_cast<double>(ns.back()) / 1e3);
    return r;
}

// ---------------------------------------------------------------- recovery

/// The log that log_recovery opens: built once, on first use, with 1 KiB
/// records, closed, then opened once (untimed) so that its files are synced
/// and in the page cache before the first timed open.
struct recovery_fixture {
    fs::path dir;
    std::uint64_t records = 0;
    std::string error;
};

const recovery_fixture& recovery_log() {
    static const recovery_fixture f = [] {
        recovery_fixture r;
        constexpr std::size_t len = 1024;
        const payload_pool& pool = payloads(len);
        r.dir = scratch_root() / "recovery-log";
        r.records = settings().recovery_mib * mib / len;
        try {
            {
                conq::durable_log log(r.dir);
                for (std::uint64_t i = 0; i < r.records; ++i) log.append(pool.record(i));
            }
            conq::durable_log warm(r.dir);
            if (warm.end_offset() != r.records)
                r.error = cat("the built log holds ", std::to_string(warm.end_offset()),
                              " records, expected ", std::to_string(r.records));
        } catch (const std::exception& e) {
            r.error = cat("building the log: ", e.what());
        }
        return r;
    }();
    return f;
}

case_result log_recovery() {
    const recovery_fixture& f = recovery_log();
    if (!f.error.empty()) return failed(f.error);
    const payload_pool& pool = payloads(1024);
    quiesce();
    const auto t0 = clock_type::now();
    conq::durable_log log(f.dir);
    const auto t1 = clock_type::now();
    const conq::recovery_report& rep = log.recovery();
    if (!rep.clean()) return failed(cat("recovery was not clean: ", rep.first_problem));
    if (log.end_offset() != f.records || rep.records != f.records)
        return failed(cat("recovered ", std::to_string(log.end_offset()), " records (report: ",
                          std::to_string(rep.records), "), expected ", std::to_string(f.records)));
    if (auto e = check_record(log, pool, f.records - 1); !e.empty()) return failed(std::move(e));
    case_result r;
    r.seconds = seconds_between(t0, t1);
    r.records = f.records;
    r.bytes = f.records * 1024;
    r.counters.emplace_back("open_s", r.seconds);
    r.counters.emplace_back("segments", static_cast<double>(rep.segments));
    return r;
}

// ------------------------------------------------------------ tail latency

case_result log_tail_latency(const std::string& name) {
    constexpr std::size_t len = 64;
    const payload_pool& pool = payloads(len);
    const std::uint64_t n = settings().tail_records;
    const auto gap = std::chrono::nanoseconds(settings().tail_gap_ns);
    quiesce();
    scratch_dir dir("log_tail");
    // Opened here, unpinned: the preparer thread it starts inherits this
    // thread's CPU mask, and must not be confined to a measuring CPU.
    conq::durable_log log(dir.path() / "log");
    settle();

    std::vector<std::int64_t> latency(static_cast<std::size_t>(n));
    std::string writer_error, reader_error;
    std::atomic<bool> writer_failed{false};
    clock_type::time_point writer_start, writer_end;
    start_gate gate(2);
    finish_line finish(2, settings().timeout_s);

    std::thread reader([&] {
        pin_this_thread(worker_cpu(1));
        try {
            auto r = log.reader(0);
            gate.arrive_and_wait();
            for (std::uint64_t got = 0; got < n;) {
                const auto rec = r.next();
                if (!rec) {
                    if (writer_failed.load(std::memory_order_relaxed)) break;
                    continue;
                }
                const std::int64_t now = now_ns();
                std::int64_t seq = 0, stamp = 0;
                if (rec->payload.size() != len) {
                    reader_error = cat("record ", std::to_string(got), " has the wrong size");
                    break;
                }
                std::memcpy(&seq, rec->payload.data(), 8);
                std::memcpy(&stamp, rec->payload.data() + 8, 8);
                if (rec->offset != got || static_cast<std::uint64_t>(seq) != got) {
                    reader_error = cat("expected record ", std::to_string(got), ", got offset ",
                                       std::to_string(rec->offset), " holding ",
                                       std::to_string(seq));
                    break;
                }
                latency[static_cast<std::size_t>(got)] = now - stamp;
                ++got;
            }
        } catch (const std::exception& e) {
            reader_error = e.what();
        }
        finish.cross();
    });
    std::thread writer([&] {
        pin_this_thread(worker_cpu(0));
        std::byte buf[len];
        std::memcpy(buf, pool.at(0), len);
        gate.arrive_and_wait();
        try {
            writer_start = clock_type::now();
            auto next = writer_start;
            for (std::uint64_t i = 0; i < n; ++i) {
                auto now = clock_type::now();
                while (now < next) now = clock_type::now();
                // After a stall the writer goes on at the same pace instead
                // of catching up in a burst.
                next = std::max(next + gap, now);
                const std::int64_t seq = static_cast<std::int64_t>(i);
                const std::int64_t stamp = now_ns();
                std::memcpy(buf, &seq, 8);
                std::memcpy(buf + 8, &stamp, 8);
                log.append(std::span<const std::byte>(buf, len));
            }
            writer_end = clock_type::now();
        } catch (const std::exception& e) {
            writer_error = e.what();
            writer_failed.store(true, std::memory_order_relaxed);
        }
        finish.cross();
    });
    gate.open();
    finish.wait_or_abort(name);
    reader.join();
    writer.join();
    if (!writer_error.empty()) return failed(cat("writer: ", writer_error));
    if (!reader_error.empty()) return failed(cat("reader: ", reader_error));
    if (log.end_offset() != n)
        return failed(cat("end_offset() is ", std::to_string(log.end_offset()), ", expected ",
                          std::to_string(n)));

    // The first 1 % is warm-up (first touches of the reader's pages, thread start).
    std::vector<std::int64_t> kept(latency.begin() + static_cast<std::ptrdiff_t>(n / 100),
                                   latency.end());
    std::sort(kept.begin(), kept.end());
    case_result r;
    r.seconds = seconds_between(writer_start, writer_end);
    r.records = n;
    r.bytes = n * len;
    r.counters.emplace_back("p50_ns", percentile(kept, 0.50));
    r.counters.emplace_back("p90_ns", percentile(kept, 0.90));
    r.counters.emplace_back("p99_ns", percentile(kept, 0.99));
    r.counters.emplace_back("p999_ns", percentile(kept, 0.999));
    r.counters.emplace_back("max_ns", kept.empty() ? 0.0 : static_cast<double>(kept.back()));
    r.counters.emplace_back("gap_ns", static_cast<double>(settings().tail_gap_ns));
    return r;
}

// ------------------------------------------------------------------- peers

[[maybe_unused]] constexpr std::uint64_t peer_batch = 1000;  // records per transaction (LMDB, SQLite)

#if defined(CONQ_BENCH_HAVE_LMDB)

std::string lmdb_error(const char* what, int rc) { return cat(what, ": ", mdb_strerror(rc)); }

case_result lmdb_append(std::size_t len) {
    const payload_pool& pool = payloads(len);
    const std::uint64_t n = records_for(len);
    quiesce();
    scratch_dir dir("lmdb");
    MDB_env* env = nullptr;
    if (int rc = mdb_env_create(&env); rc != 0) return failed(lmdb_error("mdb_env_create", rc));
    std::unique_ptr<MDB_env, void (*)(MDB_env*)> env_guard(env, mdb_env_close);
    if (int rc = mdb_env_set_mapsize(env, std::size_t{8} << 30); rc != 0)
        return failed(lmdb_error("mdb_env_set_mapsize", rc));
    if (int rc = mdb_env_open(env, dir.path().c_str(), MDB_NOSYNC | MDB_WRITEMAP | MDB_NOMETASYNC,
                              0644);
        rc != 0)
        return failed(lmdb_error("mdb_env_open", rc));
    MDB_dbi dbi = 0;
    {
        MDB_txn* txn = nullptr;
        if (int rc = mdb_txn_begin(env, nullptr, 0, &txn); rc != 0)
            return failed(lmdb_error("mdb_txn_begin", rc));
        if (int rc = mdb_dbi_open(txn, nullptr, 0, &dbi); rc != 0) {
            mdb_txn_abort(txn);
            return failed(lmdb_error("mdb_dbi_open", rc));
        }
        if (int rc = mdb_txn_commit(txn); rc != 0) return failed(lmdb_error("mdb_txn_commit", rc));
    }

    const auto t0 = clock_type::now();
    MDB_txn* txn = nullptr;
    for (std::uint64_t i = 0; i < n; ++i) {
        if (txn == nullptr) {
            if (int rc = mdb_txn_begin(env, nullptr, 0, &txn); rc != 0)
                return failed(lmdb_error("mdb_txn_begin", rc));
        }
        unsigned char key[8];
        store_be64(i, key);
        MDB_val k{8, key};
        MDB_val v{len, const_cast<std::byte*>(pool.at(i))};
        if (int rc = mdb_put(txn, dbi, &k, &v, MDB_APPEND); rc != 0) {
            mdb_txn_abort(txn);
            return failed(lmdb_error("mdb_put", rc));
        }
        if ((i + 1) % peer_batch == 0 || i + 1 == n) {
            const int rc = mdb_txn_commit(txn);
            txn = nullptr;
            if (rc != 0) return failed(lmdb_error("mdb_txn_commit", rc));
        }
    }
    const auto t1 = clock_type::now();

    MDB_stat st{};
    if (int rc = mdb_env_stat(env, &st); rc != 0) return failed(lmdb_error("mdb_env_stat", rc));
    if (st.ms_entries != n)
        return failed(cat("LMDB holds ", std::to_string(st.ms_entries), " entries, expected ",
                          std::to_string(n)));
    {
        MDB_txn* rt = nullptr;
        if (int rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &rt); rc != 0)
            return failed(lmdb_error("mdb_txn_begin (read)", rc));
        unsigned char key[8];
        store_be64(n - 1, key);
        MDB_val k{8, key}, v{};
        const int rc = mdb_get(rt, dbi, &k, &v);
        const bool same = rc == 0 && pool.matches(n - 1, v.mv_data, v.mv_size);
        mdb_txn_abort(rt);
        if (!same) return failed("LMDB: the last record reads back wrong");
    }
    case_result r;
    r.seconds = seconds_between(t0, t1);
    r.records = n;
    r.bytes = n * len;
    return r;
}

#endif  // CONQ_BENCH_HAVE_LMDB

#if defined(CONQ_BENCH_HAVE_SQLITE)

std::string sqlite_error(sqlite3* db, const char* what) {
    return cat(what, ": ", db != nullptr ? sqlite3_errmsg(db) : "out of memory");
}

case_result sqlite_wal_append(std::size_t len) {
    const payload_pool& pool = payloads(len);
    const std::uint64_t n = records_for(len);
    quiesce();
    scratch_dir dir("sqlite");
    sqlite3* db = nullptr;
    const std::string file = (dir.path() / "bench.db").string();
    const int open_rc = sqlite3_open_v2(file.c_str(), &db,
                                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    std::unique_ptr<sqlite3, int (*)(sqlite3*)> db_guard(db, sqlite3_close);
    if (open_rc != SQLITE_OK) return failed(sqlite_error(db, "sqlite3_open_v2"));
    auto exec = [db](const char* sql) {
        return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
    };
    if (!exec("PRAGMA journal_mode=WAL") || !exec("PRAGMA synchronous=OFF") ||
        !exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"))
        return failed(sqlite_error(db, "setup"));
    sqlite3_stmt* insert = nullptr;
    if (sqlite3_prepare_v2(db, "INSERT INTO t(id, v) VALUES(?1, ?2)", -1, &insert, nullptr) !=
        SQLITE_OK)
        return failed(sqlite_error(db, "prepare"));
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> insert_guard(insert, sqlite3_finalize);

    const auto t0 = clock_type::now();
    bool open_txn = false;
    for (std::uint64_t i = 0; i < n; ++i) {
        if (!open_txn) {
            if (!exec("BEGIN")) return failed(sqlite_error(db, "BEGIN"));
            open_txn = true;
        }
        sqlite3_bind_int64(insert, 1, static_cast<sqlite3_int64>(i));
        sqlite3_bind_blob(insert, 2, pool.at(i), static_cast<int>(len), SQLITE_STATIC);
        if (sqlite3_step(insert) != SQLITE_DONE) return failed(sqlite_error(db, "INSERT"));
        sqlite3_reset(insert);
        if ((i + 1) % peer_batch == 0 || i + 1 == n) {
            if (!exec("COMMIT")) return failed(sqlite_error(db, "COMMIT"));
            open_txn = false;
        }
    }
    const auto t1 = clock_type::now();

    sqlite3_stmt* q = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT count(*), max(id) FROM t", -1, &q, nullptr) != SQLITE_OK)
        return failed(sqlite_error(db, "prepare count"));
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> q_guard(q, sqlite3_finalize);
    if (sqlite3_step(q) != SQLITE_ROW) return failed(sqlite_error(db, "count"));
    const auto count = static_cast<std::uint64_t>(sqlite3_column_int64(q, 0));
    const auto max_id = static_cast<std::uint64_t>(sqlite3_column_int64(q, 1));
    if (count != n || max_id != n - 1)
        return failed(cat("SQLite holds ", std::to_string(count), " rows (max id ",
                          std::to_string(max_id), "), expected ", std::to_string(n)));
    sqlite3_stmt* last = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT v FROM t WHERE id = ?1", -1, &last, nullptr) != SQLITE_OK)
        return failed(sqlite_error(db, "prepare select"));
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> last_guard(last, sqlite3_finalize);
    sqlite3_bind_int64(last, 1, static_cast<sqlite3_int64>(n - 1));
    if (sqlite3_step(last) != SQLITE_ROW ||
        !pool.matches(n - 1, sqlite3_column_blob(last, 0),
                      static_cast<std::size_t>(sqlite3_column_bytes(last, 0))))
        return failed("SQLite: the last row reads back wrong");
    case_result r;
    r.seconds = seconds_between(t0, t1);
    r.records = n;
    r.bytes = n * len;
    return r;
}

#endif  // CONQ_BENCH_HAVE_SQLITE

#if defined(CONQ_BENCH_HAVE_ROCKSDB)

case_result rocksdb_put(std::size_t len) {
    const payload_pool& pool = payloads(len);
    const std::uint64_t n = records_for(len);
    quiesce();
    scratch_dir dir("rocksdb");
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(options, (dir.path() / "db").string(), &raw);
    if (!s.ok()) return failed(cat("DB::Open: ", s.ToString()));
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteOptions wo;
    wo.sync = false;

    const auto t0 = clock_type::now();
    for (std::uint64_t i = 0; i < n; ++i) {
        char key[8];
        store_be64(i, reinterpret_cast<unsigned char*>(key));
        s = db->Put(wo, rocksdb::Slice(key, 8),
                    rocksdb::Slice(reinterpret_cast<const char*>(pool.at(i)), len));
        if (!s.ok()) return failed(cat("Put: ", s.ToString()));
    }
    const auto t1 = clock_type::now();

    // Count every key (not an estimate) and check the last value.
    std::uint64_t count = 0;
    {
        rocksdb::ReadOptions ro;
        ro.fill_cache = false;
        std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
        for (it->SeekToFirst(); it->Valid(); it->Next()) ++count;
        if (!it->status().ok()) return failed(cat("iterate: ", it->status().ToString()));
    }
    if (count != n)
        return failed(cat("RocksDB holds ", std::to_string(count), " keys, expected ",
                          std::to_string(n)));
    char key[8];
    store_be64(n - 1, reinterpret_cast<unsigned char*>(key));
    std::string value;
    s = db->Get(rocksdb::ReadOptions(), rocksdb::Slice(key, 8), &value);
    if (!s.ok() || !pool.matches(n - 1, value.data(), value.size()))
        return failed("RocksDB: the last record reads back wrong");
    s = db->Close();
    if (!s.ok()) return failed(cat("Close: ", s.ToString()));
    case_result r;
    r.seconds = seconds_between(t0, t1);
    r.records = n;
    r.bytes = n * len;
    return r;
}

#endif  // CONQ_BENCH_HAVE_ROCKSDB

// ------------------------------------------------------------- registration

void register_case(const std::string& name, const std::string& label,
                   std::function<case_result()> run) {
    common(benchmark::RegisterBenchmark(
               name.c_str(),
               [=](benchmark::State& state) {
                   case_result r;
                   for (auto _ : state) {
                       try {
                           r = run();
                       } catch (const std::exception& e) {
                           r = failed(e.what());
                       }
                       if (!r.error.empty()) {
                           fail(state, cat(name, ": ", r.error));
                           break;
                       }
                       state.SetIterationTime(r.seconds);
                   }
                   if (!r.error.empty()) return;
                   state.SetItemsProcessed(static_cast<std::int64_t>(r.records));
                   state.SetBytesProcessed(static_cast<std::int64_t>(r.bytes));
                   state.counters["records"] = static_cast<double>(r.records);
                   for (const auto& [key, value] : r.counters) state.counters[key] = value;
                   state.SetLabel(label);
               }),
           benchmark::kMillisecond);
}

std::string recovery_name() {
    const std::uint64_t m = settings().recovery_mib;
    return m % 1024 == 0 ? cat(std::to_string(m / 1024), "GiB") : cat(std::to_string(m), "MiB");
}

void register_benchmarks() {
    const std::size_t sizes[] = {64, 1024};
    for (std::size_t len : sizes) {
        for (policy p : {policy::none, policy::none_prefaulted, policy::none_then_sync, policy::every_mib,
                         policy::every_mib_prefaulted, policy::always}) {
            std::string label = cat("conq::durable_log, sync::", policy_name(p));
            if (p == policy::none_then_sync) label = "conq::durable_log, sync::none, then sync()";
            if (p == policy::none_prefaulted)
                label = "conq::durable_log, sync::none, one segment faulted in first (prefault_now)";
            if (p == policy::every_mib_prefaulted)
                label = cat("conq::durable_log, sync::every_n(", std::to_string(mib / len),
                            "), one segment faulted in first (prefault_now)");
            if (p == policy::every_mib)
                label = cat("conq::durable_log, sync::every_n(", std::to_string(mib / len), ")");
            register_case(cat("log_append/", size_name(len), "/", policy_name(p)), label,
                          [len, p] { return log_append(len, p); });
        }
    }
    register_case("raw_mmap_copy/64B", "pre-faulted MAP_SHARED file, header stored last",
                  [] { return raw_mmap<64>(false); });
    register_case("raw_mmap_copy/1KiB", "pre-faulted MAP_SHARED file, header stored last",
                  [] { return raw_mmap<1024>(false); });
    register_case("raw_write_crc/64B", "len + CRC-32C frames, 64 KiB write() to O_APPEND",
                  [] { return raw_write_crc<64>(); });
    register_case("raw_write_crc/1KiB", "len + CRC-32C frames, 64 KiB write() to O_APPEND",
                  [] { return raw_write_crc<1024>(); });
    register_case("raw_mmap_msync_1MiB/64B", "raw_mmap_copy + msync(MS_SYNC) per MiB of payload",
                  [] { return raw_mmap<64>(true); });
    register_case("raw_mmap_msync_1MiB/1KiB", "raw_mmap_copy + msync(MS_SYNC) per MiB of payload",
                  [] { return raw_mmap<1024>(true); });
    for (page_method m : {page_method::populate_write, page_method::zero_pwritev,
                          page_method::first_write, page_method::first_write_after_zero}) {
        const char* label = "";
        switch (m) {
            case page_method::populate_write: label = "64 MiB fallocated file: madvise(MADV_POPULATE_WRITE)"; break;
            case page_method::zero_pwritev: label = "64 MiB fallocated file: pwritev of zeros, 1 MiB per call"; break;
            case page_method::first_write: label = "64 MiB fallocated file: first store to each page of the mapping"; break;
            case page_method::first_write_after_zero:
                label = "64 MiB fallocated file, zeros written first (untimed): first store to each page";
                break;
        }
        register_case(cat("raw_page/", page_method_name(m)), label, [m] { return raw_page(m); });
    }
    register_case("fdatasync_64B", "write() 64 B to O_APPEND + fdatasync, per pair",
                  [] { return fdatasync_latency(); });
    register_case(cat("log_recovery/", recovery_name()),
                  "conq::durable_log constructor on a cached log of 1 KiB records",
                  [] { return log_recovery(); });
    const std::string tail = "log_tail_latency/64B";
    register_case(tail, "append -> log_reader::next() across threads, paced",
                  [tail] { return log_tail_latency(tail); });
    for (std::size_t len : sizes) {
        (void)len;
#if defined(CONQ_BENCH_HAVE_LMDB)
        register_case(cat("lmdb_append/", size_name(len)),
                      "LMDB NOSYNC|WRITEMAP|NOMETASYNC, MDB_APPEND, txn per 1000",
                      [len] { return lmdb_append(len); });
#endif
#if defined(CONQ_BENCH_HAVE_SQLITE)
        register_case(cat("sqlite_wal_append/", size_name(len)),
                      "SQLite WAL, synchronous=OFF, INSERT, txn per 1000",
                      [len] { return sqlite_wal_append(len); });
#endif
#if defined(CONQ_BENCH_HAVE_ROCKSDB)
        register_case(cat("rocksdb_put/", size_name(len)),
                      "RocksDB default options, Put, sync=false (WAL on)",
                      [len] { return rocksdb_put(len); });
#endif
    }
}

void add_context() {
    const config& c = settings();
    std::vector<std::string> peers;
#if defined(CONQ_BENCH_HAVE_LMDB)
    peers.push_back(cat("LMDB ", std::to_string(MDB_VERSION_MAJOR), ".",
                        std::to_string(MDB_VERSION_MINOR), ".", std::to_string(MDB_VERSION_PATCH)));
#endif
#if defined(CONQ_BENCH_HAVE_SQLITE)
    peers.push_back(cat("SQLite ", sqlite3_libversion()));
#endif
#if defined(CONQ_BENCH_HAVE_ROCKSDB)
    peers.push_back(cat("RocksDB ", std::to_string(ROCKSDB_MAJOR), ".",
                        std::to_string(ROCKSDB_MINOR), ".", std::to_string(ROCKSDB_PATCH)));
#endif
    std::vector<int> pinned;
    if (worker_cpu(0) >= 0) pinned = {worker_cpu(0), worker_cpu(1)};
    add_common_context(pinned);
    benchmark::AddCustomContext("conq_durable_records_64", std::to_string(c.records_64));
    benchmark::AddCustomContext("conq_durable_records_1k", std::to_string(c.records_1k));
    benchmark::AddCustomContext("conq_durable_records_always", std::to_string(c.records_always));
    benchmark::AddCustomContext("conq_durable_fsync_samples", std::to_string(c.fsync_samples));
    benchmark::AddCustomContext("conq_durable_recovery_mib", std::to_string(c.recovery_mib));
    benchmark::AddCustomContext("conq_durable_tail_records", std::to_string(c.tail_records));
    benchmark::AddCustomContext("conq_durable_tail_gap_ns", std::to_string(c.tail_gap_ns));
    benchmark::AddCustomContext("conq_durable_settle_ms", std::to_string(c.settle_ms));
    benchmark::AddCustomContext("conq_scratch_dir", c.dir);
    benchmark::AddCustomContext("conq_scratch_fs", file_system_name(c.dir));
    benchmark::AddCustomContext("conq_crc32c",
                                conq::detail::crc32c_hardware() ? "hardware" : "table");
    struct utsname u {};
    if (::uname(&u) == 0) benchmark::AddCustomContext("conq_kernel", u.release);
    benchmark::AddCustomContext("conq_peers", peers.empty() ? "none" : join(peers, ", "));
}

}  // namespace
}  // namespace conq_bench

int main(int argc, char** argv) {
    conq_bench::program_name = "conq_durable_bench";
    conq_bench::read_settings(argc, argv);
    conq_bench::register_benchmarks();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    conq_bench::add_context();
    (void)conq_bench::scratch_root();  // a scratch directory that cannot be made ends the program here
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    conq_bench::remove_scratch_root();
    return conq_bench::any_failed.load() ? 1 : 0;
}

// conq/broker/stream.hpp
//
// conq::streams<T, Clock>: the log part of the broker, after Kafka. A
// stream is a named, partitioned, append-only log of T. Each partition
// numbers its records 0, 1, 2, ... (dense offsets); records stay readable
// until retention drops them; consumers either read a partition directly
// from any offset, or join a consumer group, whose members share the
// partitions and commit how far they got.
//
//   conq::streams<std::string> s;                        // in memory
//   // conq::streams<std::string> s("/var/lib/app/streams"); // or durable
//   auto& orders = s.create("orders", {.partitions = 4});
//   orders.append("customer-17", "created #1");          // same key, same partition
//   auto c = orders.join("billing");                     // a member of group "billing"
//   std::vector<conq::stream_record<std::string>> batch;
//   while (c.poll(batch, 100, std::chrono::seconds(1)) != 0) {
//       for (const auto& r : batch) bill(r.key(), r.payload());
//       batch.clear();
//       c.commit();                                      // at-least-once
//   }
//
// Guarantees:
// - Keys: a keyed record goes to partition stream_key_partition(key, n), a
//   fixed function (FNV-1a 64 then a 64-bit finalizer, modulo n): the same
//   on every run and machine. Records of one key keep their append order.
//   Unkeyed records go round robin over the partitions.
// - Groups: each partition is read by exactly one member of a group at a
//   time. Partitions are dealt round robin over the members sorted by
//   (member name, join order): partition p goes to member p % members, so
//   counts differ by at most one and members beyond the partition count get
//   none. Every join and leave (a consumer's destruction included) deals
//   them again and bumps the group's generation. A member learns its
//   assignment when it joins, then again in poll(), commit(), assignment(),
//   generation() and seek_to_beginning()/seek_to_end(); position(p),
//   seek(p, o) and commit(p, o) answer by the assignment as last learned, so
//   a loop over assignment() sees the same partitions throughout, whatever
//   other members do meanwhile. A partition a member newly receives starts
//   at the group's committed offset (else at the partition's begin), so
//   what was returned but not committed is delivered again (at-least-once).
//   Groups are independent of each other.
// - Retention (per partition, by payload bytes and by age) drops the oldest
//   records whole and never frees a record that a stream_record still
//   holds. A consumer whose position fell below the retained range moves up
//   to its begin (consumer::skipped() counts what it lost).
// - Durable mode (a directory): every record and every committed offset
//   survives the destruction of the streams object and a process crash
//   (a machine crash too, as far as durable_options::sync says), and the
//   streams, with their options, are found again when the directory is
//   reopened.
// - Errors: a rejected call throws conq::broker_error and changes nothing.
//   Failures of the files below a durable stream are conq::durable_error.
//
// Threads: the streams object and its streams may be used from any number
// of threads. A consumer is for one thread at a time (as a Kafka consumer).
// An append happens-before the poll or read that returns its record.
//
// How it works. In memory, a partition is a deque of chunks of 16 to 1024
// record slots (shared_ptr: a record returned pins its chunk) and a mutex
// held for the few stores of an append, or by a reader only to pin chunks;
// retention advances the partition's begin and lets go of chunks it passed.
// Durable, a partition is a durable_log whose offsets are the stream's
// offsets; a record is varint(tag) key payload, tag 0 for no key and k+1 for
// a key of k bytes (varint: LEB128), the payload in codec<T> bytes. The
// directory holds dir/<name>/meta (the options, as text, replaced
// atomically), dir/<name>/p<N>/ (partition N) and dir/<name>/offsets/ (a
// durable_log of commits: u8 version 1, u16 group length, group, u32 count,
// count x (u32 partition, u64 offset), little-endian; replayed on open, the
// last value of a (group, partition) winning, and compacted every 1024
// commits by writing the table again and deleting the segments before it).
// Group state (members, owners, committed offsets) sits under one mutex per
// stream; under sync::always or every<N> a commit syncs offsets/ after
// releasing it (commits waiting at once share one sync), so no call waits for
// the disk behind another member's commit (but for the sync before a
// compaction deletes segments, once per 1024 commits). A partition append
// takes no stream lock: its log's own sync is shared the same way. A member
// compares its group's generation (an atomic) in each call that learns the
// assignment and takes that mutex only when it changed. A blocked poll sleeps on the stream's condition
// variable, which appends signal only while somebody sleeps (one seq_cst load
// otherwise); with conq::manual_clock its timeout runs on the manual time and
// advance() wakes it. There is one condition variable per stream: while polls
// sleep, every append to the stream wakes all of them, also those whose
// partitions it did not touch (they check and sleep again), which suits a
// handful of consumers per stream.
//
// Lifetimes: stream references are valid while the streams object lives.
// Consumers and stream_records must not outlive it. A stream_record keeps
// the storage of its payload alive (it pins its chunk, or its decoded
// batch): it stays valid and unchanged while it lives, whatever retention
// and appenders do.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "conq/broker/common.hpp"
#include "conq/detail/posix_file.hpp"
#include "conq/detail/wait.hpp"
#include "conq/durable/log.hpp"
#include "conq/durable/options.hpp"
#include "conq/policy.hpp"

namespace conq {

// ---------------------------------------------------------------- options

/// How a stream is made. Compared whole by streams::create.
struct stream_options {
    /// Number of partitions, 1 to 65536 (else broker_error invalid_argument).
    std::uint32_t partitions = 1;
    /// Per partition; 0 = unlimited. In memory: the oldest records are dropped
    /// while the partition's payload bytes (payload_size plus key bytes) are
    /// above this, the newest record always staying. Durable: the partition
    /// log's on-disk bytes, whole segments (durable_options::retention_bytes).
    std::uint64_t retention_bytes = 0;
    /// 0 = unlimited. In memory: records older than this on Clock are dropped.
    /// Durable: sealed segments whose newest record is older than this on the
    /// wall clock (durable_options::retention_age and wall_clock) are deleted.
    std::chrono::nanoseconds retention_age{0};
    /// The largest record (payload_size plus key bytes; durable: encoded
    /// bytes plus key bytes, which with up to 5 bytes of framing must also
    /// fit durable_options::max_record_size); a larger one is rejected with
    /// broker_error(payload_too_large) and nothing is appended.
    std::size_t max_payload = std::size_t{1} << 20;

    friend bool operator==(const stream_options&, const stream_options&) = default;
};

/// Where append put a record.
struct append_result {
    std::uint32_t partition = 0;
    std::uint64_t offset = 0;
    friend bool operator==(const append_result&, const append_result&) = default;
};

/// One partition in stream::stats().
struct stream_partition_stats {
    std::uint64_t begin_offset = 0;
    std::uint64_t end_offset = 0;
    /// In memory: payload bytes retained. Durable: bytes of segment files in use.
    std::uint64_t bytes = 0;
};

/// A snapshot of a stream, read without stopping appenders (each field is
/// exact at some moment during the call, not all at the same one).
struct stream_stats {
    std::vector<stream_partition_stats> partitions;
    /// Records appended through this streams object (in memory: ever; durable:
    /// since the directory was opened).
    std::uint64_t appended = 0;
    /// Consumer groups known (durable: including those found on disk).
    std::size_t groups = 0;
    /// Members of all groups.
    std::size_t members = 0;
    /// Polls blocked waiting for records right now.
    std::size_t waiting_polls = 0;
};

template <class T, class Clock>
class streams;

/// One record as poll and read return it. `partition` and `offset` say
/// where it is; payload() and key() refer to storage that this object
/// keeps alive (copies share it), so they stay valid while it lives, which
/// must not be longer than the streams object.
template <class T>
struct stream_record {
    std::uint32_t partition = 0;
    std::uint64_t offset = 0;

    [[nodiscard]] const T& payload() const noexcept { return *payload_; }
    /// The key given to append, empty for an unkeyed record.
    [[nodiscard]] std::string_view key() const noexcept { return key_; }
    /// Whether the record was appended with a key (an empty key counts).
    [[nodiscard]] bool keyed() const noexcept { return keyed_; }

private:
    template <class, class>
    friend class streams;
    stream_record(std::uint32_t p, std::uint64_t o, const T* v, std::string_view k, bool keyed,
                  std::shared_ptr<const void> pin) noexcept
        : partition(p), offset(o), payload_(v), key_(k), keyed_(keyed), pin_(std::move(pin)) {}

    const T* payload_ = nullptr;
    std::string_view key_;
    bool keyed_ = false;
    std::shared_ptr<const void> pin_;
};

// ------------------------------------------------------------- key hashing

/// The fixed 64-bit hash of a key: FNV-1a 64 over its bytes, then the
/// MurmurHash3 finalizer (so that the low bits, which the modulo keeps, mix
/// every byte). Never changes between versions: keys stay on their partition.
[[nodiscard]] constexpr std::uint64_t stream_key_hash(std::string_view key) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const char c : key) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/// The partition of `key` in a stream of `partitions` partitions.
[[nodiscard]] constexpr std::uint32_t stream_key_partition(std::string_view key,
                                                           std::uint32_t partitions) noexcept {
    return partitions == 0 ? 0 : static_cast<std::uint32_t>(stream_key_hash(key) % partitions);
}

// ---------------------------------------------------------------- details

namespace detail::strm {

inline constexpr std::uint32_t max_partitions = 65536;

/// In memory, a partition is a deque of these: `capacity` record slots,
/// constructed in order by the appender (under the partition's mutex) and
/// destroyed with the chunk, which readers pin through shared_ptr.
template <class T>
struct chunk {
    struct slot {
        T value;
        std::string key;
        std::uint64_t bytes;  // what the record counts for in retention by bytes
        std::int64_t stamp;   // clock time of the append (0 without retention by age)
        bool keyed;
    };
    static constexpr std::uint32_t capacity =
        static_cast<std::uint32_t>(std::clamp<std::size_t>((std::size_t{128} << 10) / sizeof(slot), 16, 1024));

    explicit chunk(std::uint64_t b) noexcept : base(b) {}
    chunk(const chunk&) = delete;
    chunk& operator=(const chunk&) = delete;
    ~chunk() {
        for (std::uint32_t i = 0; i < n; ++i) at(i)->~slot();
    }
    [[nodiscard]] void* raw(std::uint32_t i) noexcept { return storage + std::size_t{i} * sizeof(slot); }
    [[nodiscard]] slot* at(std::uint32_t i) noexcept { return std::launder(static_cast<slot*>(raw(i))); }

    const std::uint64_t base;  // offset of slot 0
    std::uint32_t n = 0;       // slots constructed
    alignas(slot) std::byte storage[sizeof(slot) * capacity];
};

/// A partition, in memory or durable. The first cache line holds what every
/// append touches.
template <class T>
struct alignas(destructive_size) partition {
    // A spin lock: held for the few stores of an append, or by a reader to
    // pin chunks (a mutex costs an append a second atomic to unlock).
    spin_word mu;
    // In memory (guarded by mu): chunks.front()->base <= begin <= end.
    std::deque<std::shared_ptr<chunk<T>>> chunks;
    std::uint64_t begin = 0;
    std::uint64_t bytes = 0;
    // One past the last record. Stored under mu, seq_cst: a poller that
    // registered as a waiter and then reads it, and an appender that stores
    // it and then reads the waiter count, cannot both miss each other.
    std::atomic<std::uint64_t> end{0};

    // Durable: the log, and a count of appends that returned (the same role
    // as `end` for waking pollers: bumped after the record is published).
    std::optional<durable_log> log;
    std::atomic<std::uint64_t> published{0};
    // stream::read keeps one reader per partition, reused when the next read
    // starts where the last one stopped.
    std::mutex read_mu;
    std::optional<log_reader> read_cache;
};

/// The decoded records of one durable batch; stream_records pin it.
template <class T>
struct log_batch {
    struct key_ref {
        std::size_t at;
        std::size_t len;
        bool keyed;
    };
    std::vector<T> values;
    std::vector<key_ref> keys;
    std::string key_bytes;
};

// Durable record framing: varint(tag) key payload, where tag 0 means no key
// and tag k+1 a key of k bytes; varint is LEB128 (7 bits a byte, low first).
inline void put_varint(std::string& out, std::uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7f) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}

/// Parses the framing of a durable record; false if it is malformed.
inline bool split_record(std::span<const std::byte> in, bool& keyed, std::string_view& key,
                         std::span<const std::byte>& payload) noexcept {
    std::uint64_t tag = 0;
    std::size_t i = 0;
    for (unsigned shift = 0;; shift += 7) {
        if (i >= in.size() || shift > 35) return false;
        const auto b = static_cast<std::uint8_t>(in[i++]);
        tag |= std::uint64_t{b & 0x7fu} << shift;
        if ((b & 0x80u) == 0) break;
    }
    keyed = tag != 0;
    const std::uint64_t klen = keyed ? tag - 1 : 0;
    if (klen > in.size() - i) return false;
    key = std::string_view(reinterpret_cast<const char*>(in.data() + i), static_cast<std::size_t>(klen));
    payload = in.subspan(i + static_cast<std::size_t>(klen));
    return true;
}

template <class U>
inline void put_le(std::string& out, U v) {
    char b[sizeof(U)];
    std::memcpy(b, &v, sizeof(U));
    out.append(b, sizeof(U));
}
template <class U>
inline bool get_le(std::span<const std::byte>& in, U& v) noexcept {
    if (in.size() < sizeof(U)) return false;
    std::memcpy(&v, in.data(), sizeof(U));
    in = in.subspan(sizeof(U));
    return true;
}

/// A stream's directory name: its name with '/' written as '%' and a
/// leading '.' as '!' (neither is allowed in a name, so the mapping is one
/// to one, and "." or ".." never name a directory).
inline std::string dir_name(std::string_view name) {
    std::string s(name);
    for (char& c : s)
        if (c == '/') c = '%';
    if (!s.empty() && s.front() == '.') s.front() = '!';
    return s;
}

/// Writes `text` to `path` so that a crash leaves the old file or the new
/// one: a temporary file, synced, renamed over `path`, directory synced.
inline void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    {
        unique_fd fd = open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC);
        std::size_t done = 0;
        while (done < text.size()) {
            const ::ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
            if (n < 0) {
                if (errno == EINTR) continue;
                throw_errno("write", tmp, errno);
            }
            done += static_cast<std::size_t>(n);
        }
        if (int e = injected(io_op::sync_data, tmp)) throw_errno("fsync", tmp, e);
        if (::fsync(fd.get()) != 0) throw_errno("fsync", tmp, errno);
    }
    rename_file(tmp, path);
    sync_dir(path.parent_path());
}

inline std::string meta_text(std::string_view name, const stream_options& o) {
    std::string s = "conq-stream 1\nname=";
    s.append(name);
    s += "\npartitions=" + std::to_string(o.partitions);
    s += "\nretention_bytes=" + std::to_string(o.retention_bytes);
    s += "\nretention_age_ns=" + std::to_string(o.retention_age.count());
    s += "\nmax_payload=" + std::to_string(o.max_payload);
    s += "\n";
    return s;
}

/// Reads a meta file written by meta_text; throws durable_error(bad_format).
inline std::pair<std::string, stream_options> read_meta(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) throw durable_error("read stream metadata", path, std::error_code(errno, std::system_category()));
    auto bad = [&](const std::string& why) -> durable_error {
        return durable_error("stream metadata: " + why, path, durable_errc::bad_format);
    };
    std::string line;
    if (!std::getline(in, line) || line != "conq-stream 1") throw bad("first line is not \"conq-stream 1\"");
    std::map<std::string, std::string> kv;
    while (std::getline(in, line)) {
        const auto eq = line.find('=');
        if (eq == std::string::npos) throw bad("line without '='");
        kv[line.substr(0, eq)] = line.substr(eq + 1);
    }
    auto num = [&](const char* key) -> std::uint64_t {
        const auto it = kv.find(key);
        if (it == kv.end()) throw bad(std::string("no ") + key);
        std::uint64_t v = 0;
        const auto& t = it->second;
        const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        if (ec != std::errc() || p != t.data() + t.size()) throw bad(std::string("bad ") + key);
        return v;
    };
    const auto name = kv.find("name");
    if (name == kv.end() || !valid_queue_name(name->second)) throw bad("missing or invalid name");
    stream_options o;
    const std::uint64_t parts = num("partitions");
    if (parts == 0 || parts > max_partitions) throw bad("partitions out of range");
    o.partitions = static_cast<std::uint32_t>(parts);
    o.retention_bytes = num("retention_bytes");
    o.retention_age = std::chrono::nanoseconds(static_cast<std::int64_t>(num("retention_age_ns")));
    o.max_payload = static_cast<std::size_t>(num("max_payload"));
    return {name->second, o};
}

}  // namespace detail::strm

// ----------------------------------------------------------------- streams

/// A set of named streams of T, in memory or in a directory. See the top of
/// this file. Neither copyable nor movable.
template <class T, class Clock = steady_clock>
class streams {
    static_assert(clock_type<Clock>,
                  "conq::streams: Clock must be a steady clock object with now(); use conq::steady_clock "
                  "or conq::manual_clock.");
    static_assert(std::is_move_constructible_v<T> && std::is_destructible_v<T>,
                  "conq::streams: T must be move constructible.");

    using partition_t = detail::strm::partition<T>;
    using chunk_t = detail::strm::chunk<T>;
    using slot_t = typename chunk_t::slot;

public:
    class stream;
    class consumer;
    using record = stream_record<T>;

    /// In memory, on a default-constructed Clock.
    streams() requires std::is_default_constructible_v<Clock> : clock_() {}
    /// In memory, on `clock` (which must outlive this object).
    explicit streams(Clock& clock) : clock_(clock) {}
    /// Durable, in `dir` (created if absent): each stream lives in
    /// dir/<name>/ (a '/' in the name is written '%', a leading '.' as '!'):
    /// `meta` (its options), p0/, p1/, ... (one durable_log per partition,
    /// each record holding the key and the codec<T> bytes) and offsets/ (a
    /// durable_log of the groups' commits). Streams found there are opened.
    /// `base` configures every log (sync policy, segment size, wall clock...);
    /// retention comes from each stream's options instead. One streams
    /// object per directory (dir/.lock): another gets durable_error(locked).
    /// Throws durable_error, or broker_error(invalid_argument) for
    /// base.read_only (not supported). Each partition log has its own
    /// background threads as durable_options says (prefault, interval sync).
    streams(std::filesystem::path dir, durable_options base, Clock& clock) requires has_codec<T>
        : clock_(clock) {
        open_dir(std::move(dir), std::move(base));
    }
    explicit streams(std::filesystem::path dir, durable_options base = {})
        requires(has_codec<T> && std::is_default_constructible_v<Clock>)
        : clock_() {
        open_dir(std::move(dir), std::move(base));
    }

    streams(const streams&) = delete;
    streams& operator=(const streams&) = delete;
    ~streams() = default;

    /// Creates the stream `name` (valid_queue_name rules), or returns the
    /// existing one when `opts` equal its options. Throws broker_error:
    /// invalid_name, invalid_argument (partitions outside [1, 65536], a
    /// max_payload of 0, a negative retention_age), exists (same name, other
    /// options), closed. Durable: the options are stored (written atomically)
    /// before create returns. Thread-safe.
    stream& create(std::string_view name, stream_options opts = {}) {
        detail::check_queue_name(name, "create");
        if (opts.partitions == 0 || opts.partitions > detail::strm::max_partitions)
            throw broker_error(broker_errc::invalid_argument, "create", "partitions must be 1 to 65536");
        if (opts.max_payload == 0)
            throw broker_error(broker_errc::invalid_argument, "create", "max_payload must be at least 1");
        if (opts.retention_age.count() < 0)
            throw broker_error(broker_errc::invalid_argument, "create", "negative retention_age");
        std::lock_guard<std::mutex> g(mu_);
        if (closed_.load(std::memory_order_acquire)) throw broker_error(broker_errc::closed, "create", name);
        if (const auto it = streams_.find(name); it != streams_.end()) {
            if (it->second->opts_ == opts) return *it->second;
            throw broker_error(broker_errc::exists, "create", name);
        }
        std::unique_ptr<stream> s(new stream(*this, std::string(name), opts));
        if (durable_)
            detail::strm::write_file_atomically(s->dir_ / "meta", detail::strm::meta_text(name, opts));
        auto& ref = *s;
        streams_.emplace(std::string(name), std::move(s));
        return ref;
    }

    /// The stream `name`; broker_error(unknown_stream) if there is none.
    [[nodiscard]] stream& get(std::string_view name) {
        std::lock_guard<std::mutex> g(mu_);
        const auto it = streams_.find(name);
        if (it == streams_.end()) throw broker_error(broker_errc::unknown_stream, "get", name);
        return *it->second;
    }
    [[nodiscard]] const stream& get(std::string_view name) const {
        return const_cast<streams*>(this)->get(name);
    }
    [[nodiscard]] bool contains(std::string_view name) const {
        std::lock_guard<std::mutex> g(mu_);
        return streams_.find(name) != streams_.end();
    }
    /// The names of all streams, sorted.
    [[nodiscard]] std::vector<std::string> names() const {
        std::lock_guard<std::mutex> g(mu_);
        std::vector<std::string> v;
        v.reserve(streams_.size());
        for (const auto& [n, s] : streams_) v.push_back(n);
        return v;
    }

    /// From now on append, create and join throw broker_error(closed), and
    /// poll never waits: it returns the records already there, then 0.
    /// Blocked polls wake and return 0. Reads, commits and seeks still work.
    /// Idempotent; thread-safe.
    void close() {
        std::lock_guard<std::mutex> g(mu_);
        closed_.store(true, std::memory_order_seq_cst);
        for (auto& [n, s] : streams_) s->wake_all();
    }
    [[nodiscard]] bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

    /// True when every consumer group of every stream has committed up to
    /// the end of every partition (true with no groups at all).
    [[nodiscard]] bool idle() const {
        std::lock_guard<std::mutex> g(mu_);
        for (const auto& [n, s] : streams_)
            if (!s->idle()) return false;
        return true;
    }

    /// Whether this object keeps its streams in a directory.
    [[nodiscard]] bool durable() const noexcept { return durable_; }
    /// The clock that poll timeouts and in-memory retention by age read.
    [[nodiscard]] Clock& clock() const noexcept { return clock_.get(); }

    // ============================================================ stream

    /// A named stream. References stay valid while the streams object lives.
    /// Every call is thread-safe.
    class stream {
    public:
        stream(const stream&) = delete;
        stream& operator=(const stream&) = delete;
        ~stream() {
            // Under always and every<N> the offsets log is opened with
            // sync::none (see offsets_options), so its destructor would not
            // sync what is left: do it here, errors swallowed as there.
            if (offsets_ && syncs_offsets_itself()) {
                try {
                    offsets_->sync();
                } catch (...) {
                }
            }
        }

        /// Appends `payload` with `key` to partition stream_key_partition(key,
        /// partitions()). Throws broker_error: payload_too_large, closed;
        /// durable: durable_error from the log. Nothing is appended when it
        /// throws. In memory: one short lock of the partition, no allocation
        /// but one chunk per 16 to 1024 records (and the key's string when it
        /// is longer than the small-string buffer).
        append_result append(std::string_view key, T payload) {
            return append_to(stream_key_partition(key, partitions()), true, key, std::move(payload));
        }
        /// Appends an unkeyed record; successive calls go round robin over
        /// the partitions (exactly from one thread; appenders racing may
        /// now and then pick the same partition: the counter is bumped
        /// without a locked instruction).
        append_result append(T payload) {
            std::uint32_t p = 0;
            if (partitions() > 1) {
                const std::uint64_t n = rr_.load(std::memory_order_relaxed);
                rr_.store(n + 1, std::memory_order_relaxed);
                p = static_cast<std::uint32_t>(n % partitions());
            }
            return append_to(p, false, {}, std::move(payload));
        }

        [[nodiscard]] std::uint32_t partitions() const noexcept { return opts_.partitions; }
        [[nodiscard]] const std::string& name() const noexcept { return name_; }
        [[nodiscard]] const stream_options& options() const noexcept { return opts_; }

        /// The oldest offset retained in partition p. Throws
        /// broker_error(invalid_argument) for p >= partitions().
        [[nodiscard]] std::uint64_t begin_offset(std::uint32_t p) const {
            check_partition(p, "begin_offset");
            return begin_of(p);
        }
        /// One past the newest record of partition p (durable: claimed;
        /// the newest may still be being written for a moment).
        [[nodiscard]] std::uint64_t end_offset(std::uint32_t p) const {
            check_partition(p, "end_offset");
            return end_of(p);
        }

        /// Appends to `out` up to `max` records of partition p from `offset`
        /// on, and returns how many: fewer when they are not all there, and
        /// at most a few thousand per call (4 chunks in memory, 4096 records
        /// durable); call again from offset + the count for more.
        /// Throws broker_error: invalid_argument (p), offset_out_of_range
        /// (offset below begin_offset or above end_offset). Never waits.
        std::size_t read(std::uint32_t p, std::uint64_t offset, std::size_t max,
                         std::vector<record>& out) const {
            check_partition(p, "read");
            auto& part = *parts_[p];
            if (!owner_->durable_) {
                std::uint64_t pos = offset;
                return take_memory(p, pos, max, out, nullptr);
            }
            std::lock_guard<std::mutex> g(part.read_mu);
            const std::uint64_t b = part.log->begin_offset(), e = part.log->end_offset();
            if (offset < b || offset > e) throw out_of_range("read", offset, b, e);
            std::uint64_t pos = offset, skipped = 0;
            return take_log(p, pos, max, out, part.read_cache, skipped);
        }

        /// Applies retention to every partition now (appends also apply it
        /// in memory; durable logs apply it when a segment fills up).
        void enforce_retention() {
            if (owner_->durable_) {
                for (auto& part : parts_) part->log->enforce_retention();
                return;
            }
            const std::int64_t now = owner_->clock_.now_ns();
            for (auto& part : parts_) {
                std::lock_guard<detail::spin_word> g(part->mu);
                retain_locked(*part, now);
            }
        }

        /// Joins consumer group `group` (valid_queue_name rules) as a new
        /// member; `member` names it for the order of assignment (members
        /// are sorted by name, then by join order). The group is rebalanced.
        /// Throws broker_error: invalid_name, closed.
        [[nodiscard]] consumer join(std::string_view group, std::string_view member = {}) {
            detail::check_queue_name(group, "join");
            if (owner_->closed()) throw broker_error(broker_errc::closed, "join", name_);
            group_state* g;
            std::uint64_t id;
            {
                std::lock_guard<std::mutex> lk(groups_mu_);
                g = &group_locked(group);
                id = ++next_member_;
                member_entry m{std::string(member), id};
                auto at = std::upper_bound(g->members.begin(), g->members.end(), m, member_less);
                g->members.insert(at, std::move(m));
                rebalance_locked(*g);
            }
            wake_all();
            try {
                return consumer(*this, *g, id);
            } catch (...) {  // out of memory: the member must not stay behind
                leave(*g, id);
                throw;
            }
        }

        /// The offset group `group` committed for partition p: the next one
        /// it will read there. begin_offset(p) when it committed none.
        /// Throws broker_error(invalid_argument) for p >= partitions().
        [[nodiscard]] std::uint64_t committed(std::string_view group, std::uint32_t p) const {
            check_partition(p, "committed");
            std::lock_guard<std::mutex> lk(groups_mu_);
            const auto it = groups_.find(group);
            if (it == groups_.end() || !it->second->has[p]) return begin_of(p);
            return it->second->committed[p];
        }

        /// The names of the consumer groups known to this stream, sorted.
        [[nodiscard]] std::vector<std::string> groups() const {
            std::lock_guard<std::mutex> lk(groups_mu_);
            std::vector<std::string> v;
            for (const auto& [n, g] : groups_) v.push_back(n);
            return v;
        }

        /// Offsets, bytes and counts of this stream (see stream_stats).
        [[nodiscard]] stream_stats stats() const {
            stream_stats s;
            s.partitions.reserve(parts_.size());
            for (std::uint32_t p = 0; p < partitions(); ++p) {
                auto& part = *parts_[p];
                stream_partition_stats ps;
                if (owner_->durable_) {
                    ps.begin_offset = part.log->begin_offset();
                    ps.end_offset = part.log->end_offset();
                    ps.bytes = part.log->segment_count() * part.log->options().segment_size;
                    s.appended += part.published.load(std::memory_order_relaxed);
                } else {
                    std::lock_guard<detail::spin_word> g(part.mu);
                    ps.begin_offset = part.begin;
                    ps.end_offset = part.end.load(std::memory_order_relaxed);
                    ps.bytes = part.bytes;
                    s.appended += ps.end_offset;
                }
                s.partitions.push_back(ps);
            }
            {
                std::lock_guard<std::mutex> lk(groups_mu_);
                s.groups = groups_.size();
                for (const auto& [n, g] : groups_) s.members += g->members.size();
            }
            s.waiting_polls = waiters_.load(std::memory_order_relaxed);
            return s;
        }

    private:
        friend class streams;
        friend class consumer;

        struct member_entry {
            std::string name;
            std::uint64_t id;
        };
        static bool member_less(const member_entry& a, const member_entry& b) noexcept {
            return a.name != b.name ? a.name < b.name : a.id < b.id;
        }
        /// A consumer group: members, who owns which partition, and the
        /// committed offsets. Guarded by groups_mu_ but `generation`, which
        /// members read without the lock to see whether to look again.
        struct group_state {
            group_state(std::string n, std::uint32_t parts)
                : name(std::move(n)), owner(parts, 0), since(parts, 0), committed(parts, 0), has(parts, 0) {}
            std::string name;
            std::vector<member_entry> members;  // sorted by member_less
            std::vector<std::uint64_t> owner;   // member id per partition, 0: none
            std::vector<std::uint64_t> since;   // the generation that gave the partition to its owner
            std::vector<std::uint64_t> committed;
            std::vector<char> has;  // a commit was made for that partition
            std::atomic<std::uint64_t> generation{0};
        };

        stream(streams& owner, std::string name, stream_options opts)
            : owner_(&owner), name_(std::move(name)), opts_(opts), cv_(owner.clock_, wait_mu_) {
            parts_.reserve(opts_.partitions);
            for (std::uint32_t p = 0; p < opts_.partitions; ++p) parts_.push_back(std::make_unique<partition_t>());
            if (owner_->durable_) open_logs();
        }

        // ------------------------------------------------------- append

        append_result append_to(std::uint32_t p, bool keyed, std::string_view key, T&& payload) {
            if (owner_->closed_.load(std::memory_order_acquire))
                throw broker_error(broker_errc::closed, "append", name_);
            if constexpr (has_codec<T>) {
                if (owner_->durable_) return append_log(p, keyed, key, payload);
            }
            const std::size_t size = payload_size(payload);
            if (size > opts_.max_payload || key.size() > opts_.max_payload - size)
                throw broker_error(broker_errc::payload_too_large, "append", name_);
            return append_memory(p, keyed, key, std::move(payload), size + key.size());
        }

        append_result append_memory(std::uint32_t p, bool keyed, std::string_view key, T&& payload,
                                    std::uint64_t bytes) {
            auto& part = *parts_[p];
            const bool by_age = opts_.retention_age.count() != 0;
            const std::int64_t stamp = by_age ? owner_->clock_.now_ns() : 0;
            std::string k = keyed ? std::string(key) : std::string();  // allocates outside the lock
            std::uint64_t off;
            {
                std::lock_guard<detail::spin_word> g(part.mu);
                off = part.end.load(std::memory_order_relaxed);
                if (part.chunks.empty() || part.chunks.back()->n == chunk_t::capacity)
                    part.chunks.push_back(std::make_shared<chunk_t>(off));
                chunk_t& c = *part.chunks.back();
                // An exception from T's move leaves an empty slot unclaimed:
                // nothing changed.
                ::new (c.raw(c.n)) slot_t{std::move(payload), std::move(k), bytes, stamp, keyed};
                ++c.n;
                part.bytes += bytes;
                part.end.store(off + 1, std::memory_order_seq_cst);
                if (opts_.retention_bytes != 0 || by_age) retain_locked(part, stamp);
            }
            wake_appended();
            return {p, off};
        }

        /// Drops the oldest records that retention no longer keeps. part.mu held.
        void retain_locked(partition_t& part, std::int64_t now) {
            const std::uint64_t end = part.end.load(std::memory_order_relaxed);
            const std::int64_t age = opts_.retention_age.count();
            while (part.begin < end) {
                chunk_t& f = *part.chunks.front();
                const slot_t& s = *f.at(static_cast<std::uint32_t>(part.begin - f.base));
                const bool too_big = opts_.retention_bytes != 0 && part.bytes > opts_.retention_bytes &&
                                     part.begin + 1 < end;
                const bool too_old = age != 0 && now - s.stamp > age;
                if (!too_big && !too_old) break;
                part.bytes -= s.bytes;
                ++part.begin;
                if (part.begin - f.base == chunk_t::capacity) part.chunks.pop_front();  // readers may pin it
            }
        }

        append_result append_log(std::uint32_t p, bool keyed, std::string_view key, const T& payload)
            requires has_codec<T>
        {
            auto& part = *parts_[p];
            // One buffer per thread, reused: no allocation once it has grown.
            thread_local std::string buf;
            buf.clear();
            detail::strm::put_varint(buf, keyed ? key.size() + 1 : 0);
            const std::size_t framing = buf.size();
            buf.append(key);
            codec<T>::encode(payload, buf);
            constexpr std::size_t keep = std::size_t{4} << 20;  // a buffer above this is not kept
            if (buf.size() - framing > opts_.max_payload || buf.size() > part.log->options().max_record_size) {
                if (buf.capacity() > keep) buf = std::string();
                throw broker_error(broker_errc::payload_too_large, "append", name_);
            }
            const std::uint64_t off = part.log->append(std::string_view(buf));
            if (buf.capacity() > keep) buf = std::string();
            part.published.fetch_add(1, std::memory_order_seq_cst);
            wake_appended();
            return {p, off};
        }

        // ------------------------------------------------------ waiting

        /// After an append: wakes blocked polls, if there are any. The
        /// seq_cst load pairs with the waiter's seq_cst increment (see
        /// partition::end).
        void wake_appended() {
            if (waiters_.load(std::memory_order_seq_cst) == 0) return;
            std::lock_guard<std::mutex> g(wait_mu_);
            cv_.notify_all();
        }
        /// After a rebalance or close: wakes every blocked poll.
        void wake_all() {
            std::lock_guard<std::mutex> g(wait_mu_);
            cv_.notify_all();
        }

        /// What a poller waits to change: the appends to its partitions.
        [[nodiscard]] std::uint64_t events(const std::vector<std::uint32_t>& ps) const noexcept {
            std::uint64_t sum = 0;
            for (const std::uint32_t p : ps)
                sum += owner_->durable_ ? parts_[p]->published.load(std::memory_order_seq_cst)
                                        : parts_[p]->end.load(std::memory_order_seq_cst);
            return sum;
        }

        /// Sleeps until the events of `ps` differ from `seen`, the group's
        /// generation from `gen`, the streams close, or the clock reaches
        /// `deadline`. False on the deadline.
        bool wait_change(const std::vector<std::uint32_t>& ps, std::uint64_t seen, const group_state& g,
                         std::uint64_t gen, std::int64_t deadline) {
            std::unique_lock<std::mutex> lk(wait_mu_);
            waiters_.fetch_add(1, std::memory_order_seq_cst);
            bool changed = false;
            for (;;) {
                if (owner_->closed_.load(std::memory_order_seq_cst) ||
                    g.generation.load(std::memory_order_seq_cst) != gen || events(ps) != seen) {
                    changed = true;
                    break;
                }
                if (owner_->clock_.now_ns() >= deadline) break;
                cv_.wait_until(lk, deadline);
            }
            waiters_.fetch_sub(1, std::memory_order_relaxed);
            return changed;
        }

        // -------------------------------------------------------- reads

        [[nodiscard]] std::uint64_t begin_of(std::uint32_t p) const {
            auto& part = *parts_[p];
            if (owner_->durable_) return part.log->begin_offset();
            std::lock_guard<detail::spin_word> g(part.mu);
            return part.begin;
        }
        [[nodiscard]] std::uint64_t end_of(std::uint32_t p) const {
            auto& part = *parts_[p];
            return owner_->durable_ ? part.log->end_offset() : part.end.load(std::memory_order_acquire);
        }

        /// In memory: appends up to `max` records of p from `pos` to `out`
        /// and advances `pos`. With `skipped`, a pos below begin moves up to
        /// it (counted); without, it is an error. The lock is held only to
        /// pin the chunks (at most 4 per call).
        std::size_t take_memory(std::uint32_t p, std::uint64_t& pos, std::size_t max, std::vector<record>& out,
                                std::uint64_t* skipped) const {
            auto& part = *parts_[p];
            std::array<std::shared_ptr<chunk_t>, 4> pins;
            std::uint64_t first_base = 0, from = pos;
            std::size_t n = 0;
            {
                std::lock_guard<detail::spin_word> g(part.mu);
                const std::uint64_t end = part.end.load(std::memory_order_relaxed);
                if (from < part.begin || from > end) {
                    if (!skipped) throw out_of_range("read", from, part.begin, end);
                    if (from < part.begin) {
                        *skipped += part.begin - from;
                        from = part.begin;
                    }
                }
                if (from >= end || max == 0) {
                    pos = from;
                    return 0;
                }
                first_base = part.chunks.front()->base;
                const std::size_t ci = static_cast<std::size_t>((from - first_base) / chunk_t::capacity);
                const std::uint64_t reach = first_base + std::uint64_t{chunk_t::capacity} * (ci + pins.size());
                n = static_cast<std::size_t>(std::min<std::uint64_t>({max, end - from, reach - from}));
                const std::size_t last = static_cast<std::size_t>((from + n - 1 - first_base) / chunk_t::capacity);
                for (std::size_t i = ci; i <= last; ++i) pins[i - ci] = part.chunks[i];
                first_base = pins[0]->base;
            }
            pos = from;  // the skip stands even if what follows throws
            out.reserve(out.size() + n);
            for (std::size_t i = 0; i < n; ++i) {
                const std::uint64_t off = from + i;
                const auto& c = pins[static_cast<std::size_t>((off - first_base) / chunk_t::capacity)];
                const slot_t& s = *c->at(static_cast<std::uint32_t>(off - c->base));
                out.push_back(record(p, off, &s.value, s.key, s.keyed, c));
            }
            pos = from + n;
            return n;
        }

        /// Durable: the same through a log_reader kept by the caller (reused
        /// when it stands at pos). A pos below begin moves up (counted in
        /// `skipped`).
        std::size_t take_log(std::uint32_t p, std::uint64_t& pos, std::size_t max, std::vector<record>& out,
                             std::optional<log_reader>& rd, std::uint64_t& skipped) const {
            if constexpr (!has_codec<T>) {
                (void)p, (void)pos, (void)max, (void)out, (void)rd, (void)skipped;
                return 0;
            } else {
                auto& log = *parts_[p]->log;
                for (int attempt = 0;; ++attempt) {
                    const std::uint64_t b = log.begin_offset();
                    if (pos < b) {
                        skipped += b - pos;
                        pos = b;
                        rd.reset();
                    }
                    const std::uint64_t e = log.end_offset();
                    if (pos >= e || max == 0) return 0;
                    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>({max, e - pos, 4096}));
                    try {
                        if (!rd || rd->position() != pos) {
                            rd.reset();
                            rd.emplace(log.reader(pos));
                        }
                        auto batch = std::make_shared<detail::strm::log_batch<T>>();
                        batch->values.reserve(want);
                        batch->keys.reserve(want);
                        while (batch->values.size() < want) {
                            const auto rec = rd->next();
                            if (!rec) break;
                            bool keyed = false;
                            std::string_view key;
                            std::span<const std::byte> body;
                            try {
                                if (!detail::strm::split_record(rec->payload, keyed, key, body))
                                    throw durable_error("stream record at offset " + std::to_string(rec->offset) +
                                                            ": bad key framing",
                                                        log.directory(), durable_errc::corrupt);
                                batch->values.push_back(codec<T>::decode(body));
                            } catch (...) {
                                // Return the good records before it; the next call throws at it.
                                if (batch->values.empty()) throw;
                                rd.reset();
                                break;
                            }
                            batch->keys.push_back({batch->key_bytes.size(), key.size(), keyed});
                            batch->key_bytes.append(key);
                        }
                        const std::size_t n = batch->values.size();
                        out.reserve(out.size() + n);
                        std::shared_ptr<const void> pin = batch;
                        for (std::size_t i = 0; i < n; ++i) {
                            const auto& k = batch->keys[i];
                            out.push_back(record(p, pos + i, &batch->values[i],
                                                 std::string_view(batch->key_bytes).substr(k.at, k.len), k.keyed,
                                                 pin));
                        }
                        pos += n;
                        return n;
                    } catch (const durable_error& err) {
                        rd.reset();
                        // Retention deleted what the reader needed next: start again at begin.
                        if (err.code() == durable_errc::offset_out_of_range && attempt < 8) continue;
                        throw;
                    } catch (...) {
                        rd.reset();
                        throw;
                    }
                }
            }
        }

        // ------------------------------------------------------- groups

        /// The group `name`, made if it is new. groups_mu_ held.
        group_state& group_locked(std::string_view name) {
            auto it = groups_.find(name);
            if (it == groups_.end())
                it = groups_.emplace(std::string(name), std::make_unique<group_state>(std::string(name), partitions()))
                         .first;
            return *it->second;
        }

        /// Deals the partitions round robin over the sorted members and bumps
        /// the generation. groups_mu_ held.
        void rebalance_locked(group_state& g) {
            const std::size_t n = g.members.size();
            const std::uint64_t gen = g.generation.load(std::memory_order_relaxed) + 1;
            for (std::uint32_t p = 0; p < partitions(); ++p) {
                const std::uint64_t to = n ? g.members[p % n].id : 0;
                if (g.owner[p] != to) g.since[p] = gen;
                g.owner[p] = to;
            }
            g.generation.store(gen, std::memory_order_seq_cst);
        }

        void leave(group_state& g, std::uint64_t id) {
            {
                std::lock_guard<std::mutex> lk(groups_mu_);
                const auto it = std::find_if(g.members.begin(), g.members.end(),
                                             [&](const member_entry& m) { return m.id == id; });
                if (it == g.members.end()) return;
                g.members.erase(it);
                rebalance_locked(g);
            }
            wake_all();
        }

        /// Where a partition newly given to a member starts. groups_mu_ held.
        [[nodiscard]] std::uint64_t start_offset(const group_state& g, std::uint32_t p) const {
            const std::uint64_t b = begin_of(p), e = end_of(p);
            if (!g.has[p]) return b;
            return std::clamp(g.committed[p], b, std::max(b, e));
        }

        /// Stores the commits `entries` (partition, next offset) of member
        /// `id`, which learned the group's assignment at generation `gen`: a
        /// partition the member does not hold now, or got (again) after
        /// `gen`, is left alone, and with `strict` (one partition) refused.
        /// Durable: one record in offsets/ first; nothing
        /// changes if that append throws. The sync that sync::always (or
        /// every<N>) asks for comes after groups_mu_ is released (see
        /// offsets_options): commits waiting at the same time share one sync,
        /// and other members' calls never wait for the disk. So another
        /// thread may see the new offset (committed(), a rebalance) a moment
        /// before it is on disk; this commit returns only once it is. If that
        /// sync fails, the commit stays in memory, the offsets log is failed
        /// (later commits throw) and the durable_error is thrown here.
        void store_commits(group_state& g, std::uint64_t id, std::uint64_t gen,
                           std::vector<std::pair<std::uint32_t, std::uint64_t>>& entries, bool strict) {
            std::uint64_t at = 0;  // the offset of this commit's record in offsets/
            {
                std::lock_guard<std::mutex> lk(groups_mu_);
                const auto held = [&](std::uint32_t p) { return g.owner[p] == id && g.since[p] <= gen; };
                if (strict && !held(entries.front().first))
                    throw broker_error(broker_errc::invalid_argument, "commit",
                                       "partition " + std::to_string(entries.front().first) +
                                           " not assigned (or reassigned since this member last looked)");
                // Partitions no longer this member's are left alone; unchanged
                // offsets are not written again.
                std::erase_if(entries, [&](const auto& e) {
                    return !held(e.first) || (g.has[e.first] && g.committed[e.first] == e.second);
                });
                if (entries.empty()) return;
                if (owner_->durable_) {
                    if (commits_since_compact_ >= compact_every(groups_.size())) compact_offsets_locked();
                    std::string rec;
                    encode_commit(rec, g.name, entries);
                    at = offsets_->append(std::string_view(rec));
                    ++commits_since_compact_;
                }
                for (const auto& [p, off] : entries) {
                    g.committed[p] = off;
                    g.has[p] = 1;
                }
            }
            if (!owner_->durable_) return;
            // The sync the log's append would have done (under groups_mu_)
            // had it been opened with the user's policy.
            const sync_policy& sp = owner_->base_.sync;
            if (sp.kind == sync_policy::mode::always ||
                (sp.kind == sync_policy::mode::every && (at + 1) % sp.records == 0))
                offsets_->sync_through(at);
        }

        [[nodiscard]] bool idle() const {
            std::lock_guard<std::mutex> lk(groups_mu_);
            for (const auto& [n, g] : groups_)
                for (std::uint32_t p = 0; p < partitions(); ++p) {
                    const std::uint64_t c = g->has[p] ? g->committed[p] : begin_of(p);
                    if (c < end_of(p)) return false;
                }
            return true;
        }

        // ------------------------------------------------------ durable

        // offsets/ record: u8 version (1), u16 group length, group,
        // u32 count, then count times (u32 partition, u64 next offset); all
        // little-endian. The last value of each (group, partition) wins.
        static void encode_commit(std::string& out, std::string_view group,
                                  const std::vector<std::pair<std::uint32_t, std::uint64_t>>& entries) {
            out.push_back(1);
            detail::strm::put_le(out, static_cast<std::uint16_t>(group.size()));
            out.append(group);
            detail::strm::put_le(out, static_cast<std::uint32_t>(entries.size()));
            for (const auto& [p, off] : entries) {
                detail::strm::put_le(out, p);
                detail::strm::put_le(out, off);
            }
        }

        /// Whether the stream, not the offsets log, does the syncs that the
        /// sync policy asks for (always, every<N>).
        [[nodiscard]] bool syncs_offsets_itself() const noexcept {
            const auto k = owner_->base_.sync.kind;
            return k == sync_policy::mode::always || k == sync_policy::mode::every;
        }

        static std::size_t compact_every(std::size_t groups) noexcept { return std::max<std::size_t>(1024, 8 * groups); }

        /// The offsets log's options: the base options, but under sync::always
        /// and every<N> the log itself never syncs (an append syncing there
        /// would wait for the disk while holding groups_mu_); store_commits
        /// syncs after releasing it, and ~stream syncs what is left.
        [[nodiscard]] durable_options offsets_options() const {
            durable_options o = owner_->base_;
            if (syncs_offsets_itself()) o.sync = conq::sync::none;
            o.retention_bytes = 0;
            o.retention_age = std::chrono::nanoseconds(0);
            o.prefault = false;
            const std::uint64_t rec = 16 + 256 + std::uint64_t{12} * partitions();
            o.max_record_size = static_cast<std::uint32_t>((rec + 4095) / 4096 * 4096);
            o.segment_size = std::max<std::uint64_t>(std::uint64_t{64} << 10, 4 * (o.max_record_size + 64));
            return o;
        }

        /// Opens (or creates) the logs in dir/<name>/ and replays offsets/.
        void open_logs() {
            dir_ = owner_->dir_ / detail::strm::dir_name(name_);
            durable_options po = owner_->base_;
            po.retention_bytes = opts_.retention_bytes;
            po.retention_age = opts_.retention_age;
            for (std::uint32_t p = 0; p < partitions(); ++p) {
                auto& part = *parts_[p];
                std::string sub = "p";  // (not "p" + to_string: g++ 12 -Wrestrict false positive)
                sub += std::to_string(p);
                part.log.emplace(dir_ / sub, po);
            }
            offsets_.emplace(dir_ / "offsets", offsets_options());
            auto r = offsets_->reader(offsets_->begin_offset());
            while (const auto rec = r.next()) {
                std::span<const std::byte> in = rec->payload;
                auto bad = [&](const char* why) {
                    return durable_error(std::string("commit record at offset ") + std::to_string(rec->offset) +
                                             ": " + why,
                                         dir_ / "offsets", durable_errc::corrupt);
                };
                std::uint8_t version = 0;
                std::uint16_t glen = 0;
                if (!detail::strm::get_le(in, version) || version != 1) throw bad("unknown version");
                if (!detail::strm::get_le(in, glen) || in.size() < glen) throw bad("truncated");
                const std::string gname(reinterpret_cast<const char*>(in.data()), glen);
                in = in.subspan(glen);
                if (!valid_queue_name(gname)) throw bad("invalid group name");
                std::uint32_t count = 0;
                if (!detail::strm::get_le(in, count) || in.size() != std::size_t{count} * 12) throw bad("truncated");
                auto& g = group_locked(gname);
                for (std::uint32_t i = 0; i < count; ++i) {
                    std::uint32_t p = 0;
                    std::uint64_t off = 0;
                    detail::strm::get_le(in, p);
                    detail::strm::get_le(in, off);
                    if (p >= partitions()) throw bad("partition out of range");
                    g.committed[p] = off;
                    g.has[p] = 1;
                }
                ++commits_since_compact_;
            }
        }

        /// Writes the current table (one record per group) and deletes the
        /// offsets/ segments that lie wholly before it. groups_mu_ held.
        void compact_offsets_locked() {
            const std::uint64_t first = offsets_->end_offset();
            std::size_t written = 0;
            std::string rec;
            for (const auto& [n, g] : groups_) {
                std::vector<std::pair<std::uint32_t, std::uint64_t>> entries;
                for (std::uint32_t p = 0; p < partitions(); ++p)
                    if (g->has[p]) entries.emplace_back(p, g->committed[p]);
                if (entries.empty()) continue;
                rec.clear();
                encode_commit(rec, n, entries);
                offsets_->append(std::string_view(rec));
                ++written;
            }
            // The table must be on disk before the segments it replaces go
            // (the offsets log syncs nothing by itself under always and
            // every<N>, see offsets_options). Rare: once per 1024 commits.
            if (owner_->base_.sync.kind != sync_policy::mode::none) offsets_->sync();
            offsets_->remove_before(first);
            commits_since_compact_ = written;
        }

        // ----------------------------------------------------- checking

        void check_partition(std::uint32_t p, const char* call) const {
            if (p >= partitions())
                throw broker_error(broker_errc::invalid_argument, call,
                                   name_ + " partition " + std::to_string(p) + " of " + std::to_string(partitions()));
        }
        [[nodiscard]] broker_error out_of_range(const char* call, std::uint64_t off, std::uint64_t b,
                                                std::uint64_t e) const {
            return broker_error(broker_errc::offset_out_of_range, call,
                                name_ + " offset " + std::to_string(off) + " not in [" + std::to_string(b) + ", " +
                                    std::to_string(e) + "]");
        }

        streams* owner_;
        const std::string name_;
        const stream_options opts_;
        std::filesystem::path dir_;  // durable: dir/<name>/
        std::vector<std::unique_ptr<partition_t>> parts_;
        alignas(detail::destructive_size) std::atomic<std::uint64_t> rr_{0};

        // Blocked polls wait here. A leaf lock: nothing else is taken under it.
        alignas(detail::destructive_size) std::mutex wait_mu_;
        detail::clock_cv<Clock> cv_;
        std::atomic<std::size_t> waiters_{0};

        // Groups. Lock order: streams::mu_, then groups_mu_, then a partition's mu.
        mutable std::mutex groups_mu_;
        std::map<std::string, std::unique_ptr<group_state>, std::less<>> groups_;
        std::uint64_t next_member_ = 0;
        std::optional<durable_log> offsets_;
        std::size_t commits_since_compact_ = 0;
    };

    // ========================================================== consumer

    /// A member of a consumer group of one stream, made by stream::join.
    /// Move-only; its destruction leaves the group. For one thread at a
    /// time. Must not outlive the streams object.
    class consumer {
    public:
        consumer(consumer&& o) noexcept { take(std::move(o)); }
        consumer& operator=(consumer&& o) noexcept {
            if (this != &o) {
                leave();
                take(std::move(o));
            }
            return *this;
        }
        consumer(const consumer&) = delete;
        consumer& operator=(const consumer&) = delete;
        ~consumer() { leave(); }

        /// The partitions this member reads now (after learning of any
        /// rebalance), ascending. Empty after leave().
        [[nodiscard]] std::vector<std::uint32_t> assignment() const {
            if (!s_) return {};
            refresh();
            return assigned_;
        }

        /// Appends to `out` up to `max` records of the assigned partitions,
        /// each partition from this member's position there (which it then
        /// advances), taking the partitions in turn. With nothing to return
        /// it waits, up to `timeout` on Clock, for an append to an assigned
        /// partition, a rebalance or close(). Returns how many it appended:
        /// 0 on time-out, and after close() once nothing is left. Throws
        /// broker_error(invalid_argument) after leave(); durable:
        /// durable_error from the logs, or what codec<T>::decode throws (the
        /// position stays at that record: seek past it to go on).
        std::size_t poll(std::vector<record>& out, std::size_t max, typename Clock::duration timeout) {
            check_joined("poll");
            if (max == 0) return 0;
            std::int64_t deadline = 0;
            bool have_deadline = false;
            for (;;) {
                const bool was_closed = s_->owner_->closed_.load(std::memory_order_seq_cst);
                refresh();
                const std::uint64_t seen = s_->events(assigned_);
                const std::uint64_t gen = gen_;
                if (const std::size_t n = take_assigned(out, max)) return n;
                if (was_closed) return 0;
                if (!have_deadline) {
                    if (timeout.count() <= 0) return 0;
                    deadline = detail::add_sat(s_->owner_->clock_.now_ns(), detail::saturating_ns(timeout));
                    have_deadline = true;
                }
                if (!s_->wait_change(assigned_, seen, *g_, gen, deadline)) return 0;
            }
        }

        /// Commits this member's position in every partition it is assigned
        /// (after learning of any rebalance): the group resumes there. Throws
        /// broker_error(invalid_argument) after leave(); durable:
        /// durable_error (if writing the commit failed, nothing was
        /// committed; if only the sync after it failed, the commit stands in
        /// memory, may be lost by a crash, and later commits throw).
        void commit() {
            check_joined("commit");
            refresh();
            std::vector<std::pair<std::uint32_t, std::uint64_t>> entries;
            entries.reserve(assigned_.size());
            for (const std::uint32_t p : assigned_) entries.emplace_back(p, pos_[p]);
            s_->store_commits(*g_, id_, gen_, entries, false);
        }
        /// Commits `next_offset` (the next record to read) for partition p,
        /// which must be assigned to this member, both as it last learned
        /// and still in the group. Throws broker_error: invalid_argument (p
        /// unknown or not assigned; also when a rebalance this member has not
        /// learned yet took p away, even if it gave p back since: what the
        /// member read of p may have been read again by another member, as
        /// Kafka's CommitFailedException; nothing is committed, and the
        /// next poll() learns the new assignment), offset_out_of_range
        /// (next_offset above end_offset(p)). Does not move the position.
        void commit(std::uint32_t p, std::uint64_t next_offset) {
            check_assigned(p, "commit");
            const std::uint64_t e = s_->end_of(p);
            if (next_offset > e) throw s_->out_of_range("commit", next_offset, 0, e);
            std::vector<std::pair<std::uint32_t, std::uint64_t>> entries{{p, next_offset}};
            s_->store_commits(*g_, id_, gen_, entries, true);
        }

        /// Moves the position in partition p, assigned as last learned, to
        /// `offset`, in [begin_offset(p), end_offset(p)]. Throws
        /// broker_error: invalid_argument (p), offset_out_of_range. (If a
        /// rebalance took p away meanwhile, the next poll() learns it and
        /// the seek has no effect; if p came back, it restarts at the
        /// group's committed offset.)
        void seek(std::uint32_t p, std::uint64_t offset) {
            check_assigned(p, "seek");
            const std::uint64_t b = s_->begin_of(p), e = s_->end_of(p);
            if (offset < b || offset > e) throw s_->out_of_range("seek", offset, b, e);
            set_position(p, offset);
        }
        /// Every assigned partition to its begin_offset (replay what is retained).
        void seek_to_beginning() {
            check_joined("seek_to_beginning");
            refresh();
            for (const std::uint32_t p : assigned_) set_position(p, s_->begin_of(p));
        }
        /// Every assigned partition to its end_offset (only new records).
        void seek_to_end() {
            check_joined("seek_to_end");
            refresh();
            for (const std::uint32_t p : assigned_) set_position(p, s_->end_of(p));
        }
        /// The next offset poll reads in partition p. Throws
        /// broker_error(invalid_argument) if p is not assigned as this
        /// member last learned (does not learn of rebalances itself: see
        /// assignment()).
        [[nodiscard]] std::uint64_t position(std::uint32_t p) const {
            check_assigned(p, "position");
            return pos_[p];
        }
        /// The group's generation as this member last learned it (each join
        /// or leave in the group bumps it).
        [[nodiscard]] std::uint64_t generation() const {
            if (!s_) return gen_;
            refresh();
            return gen_;
        }
        /// Records this member skipped because retention dropped them before
        /// it read them.
        [[nodiscard]] std::uint64_t skipped() const noexcept { return skipped_; }
        [[nodiscard]] const std::string& group() const noexcept {
            static const std::string none;
            return g_ ? g_->name : none;
        }
        [[nodiscard]] bool joined() const noexcept { return s_ != nullptr; }

        /// Leaves the group (rebalancing it) without committing. Later calls
        /// but assignment(), generation() and leave() throw. Idempotent.
        void leave() noexcept {
            if (!s_) return;
            try {
                s_->leave(*g_, id_);
            } catch (...) {  // only a failed mutex lock could get here
            }
            s_ = nullptr;
            assigned_.clear();
            readers_.clear();
        }

    private:
        friend class stream;
        consumer(stream& s, typename stream::group_state& g, std::uint64_t id)
            : s_(&s), g_(&g), id_(id), owned_(s.partitions(), 0), pos_(s.partitions(), 0) {
            if (s.owner_->durable_) readers_.resize(s.partitions());
            refresh();  // the assignment at join
        }

        void take(consumer&& o) noexcept {
            s_ = std::exchange(o.s_, nullptr);
            g_ = o.g_;
            id_ = o.id_;
            gen_ = o.gen_;
            assigned_ = std::move(o.assigned_);
            owned_ = std::move(o.owned_);
            pos_ = std::move(o.pos_);
            readers_ = std::move(o.readers_);
            next_ = o.next_;
            skipped_ = o.skipped_;
        }

        void check_joined(const char* call) const {
            if (!s_) throw broker_error(broker_errc::invalid_argument, call, "consumer has left its group");
        }
        void check_assigned(std::uint32_t p, const char* call) const {
            check_joined(call);
            s_->check_partition(p, call);
            if (!owned_[p])
                throw broker_error(broker_errc::invalid_argument, call,
                                   "partition " + std::to_string(p) + " is not assigned to this member");
        }

        /// Learns the group's assignment if it changed since last time. A
        /// partition newly assigned (or taken away and given back since the
        /// last look) starts at the group's committed offset.
        void refresh() const {
            if (g_->generation.load(std::memory_order_acquire) == gen_) return;
            std::lock_guard<std::mutex> lk(s_->groups_mu_);
            const std::uint64_t seen = gen_;
            gen_ = g_->generation.load(std::memory_order_relaxed);
            std::vector<std::uint32_t> now;
            for (std::uint32_t p = 0; p < s_->partitions(); ++p) {
                const bool mine = g_->owner[p] == id_;
                if (mine) now.push_back(p);
                if (mine && (!owned_[p] || g_->since[p] > seen)) {
                    pos_[p] = s_->start_offset(*g_, p);
                    if (!readers_.empty()) readers_[p].reset();
                }
                owned_[p] = mine;
            }
            assigned_ = std::move(now);
        }

        void set_position(std::uint32_t p, std::uint64_t off) {
            pos_[p] = off;
            if (!readers_.empty() && readers_[p] && readers_[p]->position() != off) readers_[p].reset();
        }

        std::size_t take_assigned(std::vector<record>& out, std::size_t max) {
            std::size_t got = 0;
            const std::size_t n = assigned_.size();
            const std::size_t start = next_++;
            for (std::size_t i = 0; i < n && got < max; ++i) {
                const std::uint32_t p = assigned_[(start + i) % n];
                try {
                    got += s_->owner_->durable_ ? s_->take_log(p, pos_[p], max - got, out, readers_[p], skipped_)
                                                : s_->take_memory(p, pos_[p], max - got, out, &skipped_);
                } catch (...) {
                    // Records already taken are returned (their positions
                    // moved); the error comes back on a later poll.
                    if (got == 0) throw;
                    break;
                }
            }
            return got;
        }

        stream* s_ = nullptr;
        typename stream::group_state* g_ = nullptr;
        std::uint64_t id_ = 0;
        // The assignment as last learned (refresh is const: assignment() and
        // generation() learn of rebalances too).
        mutable std::uint64_t gen_ = UINT64_MAX;
        mutable std::vector<std::uint32_t> assigned_;
        mutable std::vector<char> owned_;
        mutable std::vector<std::uint64_t> pos_;
        mutable std::vector<std::optional<log_reader>> readers_;  // durable: per partition
        std::size_t next_ = 0;  // which assigned partition poll starts with
        std::uint64_t skipped_ = 0;
    };

private:
    void open_dir(std::filesystem::path dir, durable_options base) {
        if (base.read_only)
            throw broker_error(broker_errc::invalid_argument, "streams", "durable_options::read_only is not supported");
        durable_ = true;
        dir_ = std::move(dir);
        base_ = std::move(base);
        std::error_code ec;
        std::filesystem::create_directories(dir_, ec);
        if (ec) throw durable_error("create directory", dir_, ec);
        lock_ = detail::open_file(dir_ / ".lock", O_RDWR | O_CREAT);
        detail::lock_exclusive(lock_, dir_ / ".lock");
        for (const auto& e : std::filesystem::directory_iterator(dir_)) {
            if (!e.is_directory() || !std::filesystem::exists(e.path() / "meta")) continue;
            auto [name, opts] = detail::strm::read_meta(e.path() / "meta");
            if (detail::strm::dir_name(name) != e.path().filename().string())
                throw durable_error("stream metadata names \"" + name + "\"", e.path() / "meta",
                                    durable_errc::bad_format);
            std::unique_ptr<stream> s(new stream(*this, name, opts));
            streams_.emplace(std::move(name), std::move(s));
        }
    }

    detail::clock_ref<Clock> clock_;
    bool durable_ = false;
    std::filesystem::path dir_;
    durable_options base_;
    detail::unique_fd lock_;
    mutable std::mutex mu_;
    std::map<std::string, std::unique_ptr<stream>, std::less<>> streams_;
    std::atomic<bool> closed_{false};
};

}  // namespace conq

// conq/durable/options.hpp
//
// What the durable log and queue are configured with, and what they throw.
//
//   conq::durable_options opts;
//   opts.sync = conq::sync::every<64>;        // group commit: one sync per 64 records
//   opts.segment_size = 256 << 20;            // 256 MiB segment files
//   opts.retention_bytes = 8ull << 30;        // keep about 8 GiB
//   conq::durable_log log("/var/lib/app/events", opts);
//
// Every failure is a conq::durable_error: what() names the operation, the
// path and the cause; code() is an errno value (std::system_category) for a
// failed system call, or a conq::durable_errc.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace conq {

// ------------------------------------------------------------------ errors

/// Causes that are not a failed system call.
enum class durable_errc {
    locked = 1,           ///< another process or object is writing to this directory
    record_too_large,     ///< a payload above durable_options::max_record_size
    corrupt,              ///< a file that fails its checks where truncation is not allowed
    failed,               ///< an earlier sync failed: the log is read-only until reopened
    read_only,            ///< a write to a log opened with read_only
    bad_options,          ///< options that cannot work together (the message says which)
    offset_out_of_range,  ///< a reader asked for an offset that is not in the log
    bad_format,           ///< a file of another format or version
};

namespace detail {
class durable_category_impl final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "conq.durable"; }
    [[nodiscard]] std::string message(int c) const override {
        switch (static_cast<durable_errc>(c)) {
        case durable_errc::locked: return "another writer holds the lock on this directory";
        case durable_errc::record_too_large: return "record larger than max_record_size";
        case durable_errc::corrupt: return "corrupt data";
        case durable_errc::failed: return "an earlier sync failed; reopen the log to recover";
        case durable_errc::read_only: return "opened read-only";
        case durable_errc::bad_options: return "invalid options";
        case durable_errc::offset_out_of_range: return "offset out of range";
        case durable_errc::bad_format: return "unknown file format or version";
        }
        return "unknown error";
    }
};
}  // namespace detail

inline const std::error_category& durable_category() noexcept {
    static const detail::durable_category_impl c;
    return c;
}
inline std::error_code make_error_code(durable_errc e) noexcept {
    return {static_cast<int>(e), durable_category()};
}

/// The one exception type of the durable layer.
class durable_error : public std::runtime_error {
public:
    durable_error(std::string what_failed, std::filesystem::path path, std::error_code code)
        : std::runtime_error(compose(what_failed, path, code)), path_(std::move(path)), code_(code) {}
    durable_error(std::string what_failed, std::filesystem::path path, durable_errc e)
        : durable_error(std::move(what_failed), std::move(path), make_error_code(e)) {}

    /// The file or directory concerned.
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    /// errno (system_category) or a durable_errc (durable_category).
    [[nodiscard]] std::error_code code() const noexcept { return code_; }

private:
    static std::string compose(const std::string& what_failed, const std::filesystem::path& p,
                               std::error_code c) {
        std::string s = "conq: " + what_failed;
        if (!p.empty()) s += " (" + p.string() + ")";
        s += ": " + c.message();
        return s;
    }
    std::filesystem::path path_;
    std::error_code code_;
};

// ------------------------------------------------------------ sync policy

/// When appended records are forced to disk (fdatasync-class msync). The
/// guarantees of each are in docs/durability.md.
struct sync_policy {
    enum class mode : std::uint8_t { none, every, interval, always };
    mode kind = mode::none;
    std::uint64_t records = 0;          ///< mode::every: one sync per this many records
    std::chrono::nanoseconds period{};  ///< mode::interval: at most this long unsynced

    friend constexpr bool operator==(const sync_policy&, const sync_policy&) = default;
};

namespace sync {
/// Page cache only: a crashed process loses nothing, a crashed machine may
/// lose what was not synced by an explicit sync() call.
inline constexpr sync_policy none{sync_policy::mode::none, 0, {}};
/// append returns after its record (and every earlier one) is on disk.
/// Appenders that wait at the same time share one sync (group commit).
inline constexpr sync_policy always{sync_policy::mode::always, 0, {}};
/// The append that completes each N-th record syncs everything before it.
template <std::uint64_t N>
inline constexpr sync_policy every = [] {
    static_assert(N > 0, "conq::sync::every<N>: N must be at least 1 (sync::always is every<1>)");
    return sync_policy{sync_policy::mode::every, N, {}};
}();
/// The same with N chosen at run time (0 is rejected when the log opens).
constexpr sync_policy every_n(std::uint64_t n) noexcept { return {sync_policy::mode::every, n, {}}; }
/// A background thread syncs whatever is unsynced once per period.
template <class Rep, class Period>
constexpr sync_policy interval(std::chrono::duration<Rep, Period> d) noexcept {
    return {sync_policy::mode::interval, 0, std::chrono::duration_cast<std::chrono::nanoseconds>(d)};
}
}  // namespace sync

// ---------------------------------------------------------------- options

/// What recovery does with a damaged segment that is not the log's tail.
enum class on_corruption : std::uint8_t {
    truncate,  ///< keep the valid prefix; later segments are renamed *.discarded
    fail,      ///< throw durable_error (durable_errc::corrupt) and change nothing
};

struct durable_options {
    /// Size of each segment file, preallocated when it is created.
    std::uint64_t segment_size = std::uint64_t{64} << 20;
    /// Largest payload append accepts; must fit a segment with its framing.
    std::uint32_t max_record_size = 1u << 20;
    sync_policy sync = conq::sync::none;
    /// Retention: the oldest sealed segments are deleted while the log is
    /// larger than this many bytes (0: no limit). The segment being written
    /// is never deleted.
    std::uint64_t retention_bytes = 0;
    /// Retention: sealed segments whose newest record is older than this are
    /// deleted (0: no limit).
    std::chrono::nanoseconds retention_age{0};
    /// The wall clock that retention by age reads (tests pass a manual one).
    std::function<std::chrono::system_clock::time_point()> wall_clock{};
    /// A background thread allocates the next segment file and, under
    /// sync::none, prepares its first pages and those of the current one
    /// ahead of the appenders, so that an append rarely waits for the
    /// kernel (docs/durability.md).
    bool prefault = true;
    /// Open without the writer lock and without repairing anything: for
    /// readers in another process. append() and sync() throw.
    bool read_only = false;
    on_corruption corruption = on_corruption::truncate;
};

/// What recovery found when a log was opened.
struct recovery_report {
    std::uint64_t segments = 0;            ///< segment files kept
    std::uint64_t records = 0;             ///< records in the kept segments
    std::uint64_t discarded_bytes = 0;     ///< bytes after the valid prefix that were zeroed
    std::uint64_t discarded_segments = 0;  ///< later segments set aside (renamed *.discarded)
    std::uint64_t removed_temporaries = 0; ///< unfinished segment files removed
    std::string first_problem;             ///< what ended the valid prefix, empty if nothing
    [[nodiscard]] bool clean() const noexcept {
        return discarded_bytes == 0 && discarded_segments == 0 && first_problem.empty();
    }
};

}  // namespace conq

template <>
struct std::is_error_code_enum<conq::durable_errc> : std::true_type {};

// conq/detail/posix_file.hpp
//
// The POSIX calls of the durable layer, each wrapped once: a failure becomes
// a conq::durable_error that names the call, the path and errno.
//
// Every call passes through one seam, `io_hooks`: tests install hooks that
// fail the N-th call of a kind with an errno of their choice (ENOSPC, EIO)
// and that watch what was made durable (the data handed to msync, the
// directory syncs), from which they build the disk a power cut would leave.
// With no hooks installed the seam is one relaxed load per system call.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conq/durable/options.hpp"

namespace conq::detail {

/// The kinds of call a test can fail.
enum class io_op : std::uint8_t { open, allocate, map, sync_data, sync_dir, rename, remove, lock };

/// The test seam. Not part of the public interface: no compatibility promise.
class io_hooks {
public:
    virtual ~io_hooks() = default;
    /// Called before each call; a non-zero errno makes the call fail with it.
    virtual int inject(io_op, const std::filesystem::path&) { return 0; }
    /// After msync(MS_SYNC) succeeded: bytes [file_offset, file_offset+len)
    /// of `file` are on disk and now hold `data`.
    virtual void synced(const std::filesystem::path& /*file*/, std::uint64_t /*file_offset*/,
                        const std::byte* /*data*/, std::size_t /*len*/) {}
    /// After fsync of a directory succeeded: its entries are on disk.
    virtual void synced_dir(const std::filesystem::path&) {}
};

inline std::atomic<io_hooks*> installed_io_hooks{nullptr};

inline int injected(io_op op, const std::filesystem::path& p) {
    io_hooks* h = installed_io_hooks.load(std::memory_order_acquire);
    return h ? h->inject(op, p) : 0;
}

[[noreturn]] inline void throw_errno(const char* what, const std::filesystem::path& p, int err) {
    throw durable_error(what, p, std::error_code(err, std::system_category()));
}

/// An owned file descriptor.
class unique_fd {
public:
    unique_fd() = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    unique_fd& operator=(unique_fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    ~unique_fd() { reset(); }
    void reset() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    [[nodiscard]] int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }

private:
    int fd_ = -1;
};

/// open(2) through the seam; with `absent_ok`, a missing file gives an
/// empty unique_fd instead of an error.
inline unique_fd open_file(const std::filesystem::path& p, int flags, mode_t mode = 0644, bool absent_ok = false) {
    if (int e = injected(io_op::open, p)) throw_errno("open", p, e);
    int fd;
    do {
        fd = ::open(p.c_str(), flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0 && absent_ok && errno == ENOENT) return {};
    if (fd < 0) throw_errno("open", p, errno);
    return unique_fd(fd);
}

/// Like open_file, but an absent file gives an empty unique_fd.
inline unique_fd open_if_exists(const std::filesystem::path& p, int flags) {
    return open_file(p, flags, 0, true);
}

inline std::uint64_t file_size(const unique_fd& fd, const std::filesystem::path& p) {
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw_errno("fstat", p, errno);
    return static_cast<std::uint64_t>(st.st_size);
}

/// Gives the file real blocks for [0, len): a full disk shows here as ENOSPC,
/// never later as SIGBUS when a mapped page is first written.
inline void allocate(const unique_fd& fd, const std::filesystem::path& p, std::uint64_t len) {
    if (int e = injected(io_op::allocate, p)) throw_errno("posix_fallocate", p, e);
    int e;
    do {
        e = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(len));
    } while (e == EINTR);
    if (e != 0) throw_errno("posix_fallocate", p, e);
}

/// Takes the exclusive advisory lock on `fd` without waiting.
inline void lock_exclusive(const unique_fd& fd, const std::filesystem::path& p) {
    if (int e = injected(io_op::lock, p)) throw_errno("flock", p, e);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return;
    if (errno == EWOULDBLOCK)
        throw durable_error("open for writing", p.parent_path(), durable_errc::locked);
    throw_errno("flock", p, errno);
}

/// fsync of a directory: the entries created, renamed or removed in it are on disk.
inline void sync_dir(const std::filesystem::path& dir) {
    if (int e = injected(io_op::sync_dir, dir)) throw_errno("fsync (directory)", dir, e);
    unique_fd fd = open_file(dir, O_RDONLY | O_DIRECTORY);
    if (::fsync(fd.get()) != 0) throw_errno("fsync (directory)", dir, errno);
    if (io_hooks* h = installed_io_hooks.load(std::memory_order_acquire)) h->synced_dir(dir);
}

inline void rename_file(const std::filesystem::path& from, const std::filesystem::path& to) {
    if (int e = injected(io_op::rename, to)) throw_errno("rename", to, e);
    if (::rename(from.c_str(), to.c_str()) != 0) throw_errno("rename", to, errno);
}

inline void remove_file(const std::filesystem::path& p) {
    if (int e = injected(io_op::remove, p)) throw_errno("unlink", p, e);
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) throw_errno("unlink", p, errno);
}

inline std::size_t page_size() noexcept {
    static const std::size_t s = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    return s;
}

/// A shared mapping of a whole file.
class mapped_file {
public:
    mapped_file() = default;
    mapped_file(const unique_fd& fd, const std::filesystem::path& p, std::size_t len, bool writable)
        : path_(p), len_(len) {
        if (int e = injected(io_op::map, p)) throw_errno("mmap", p, e);
        const int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
        void* a = ::mmap(nullptr, len, prot, MAP_SHARED, fd.get(), 0);
        if (a == MAP_FAILED) throw_errno("mmap", p, errno);
        base_ = static_cast<std::byte*>(a);
    }
    mapped_file(mapped_file&& o) noexcept
        : path_(std::move(o.path_)), base_(std::exchange(o.base_, nullptr)), len_(std::exchange(o.len_, 0)) {}
    mapped_file& operator=(mapped_file&& o) noexcept {
        if (this != &o) {
            unmap();
            path_ = std::move(o.path_);
            base_ = std::exchange(o.base_, nullptr);
            len_ = std::exchange(o.len_, 0);
        }
        return *this;
    }
    mapped_file(const mapped_file&) = delete;
    mapped_file& operator=(const mapped_file&) = delete;
    ~mapped_file() { unmap(); }

    [[nodiscard]] std::byte* data() const noexcept { return base_; }
    [[nodiscard]] std::size_t size() const noexcept { return len_; }
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    /// The file was renamed: errors and hooks name it by its new path.
    void rename(std::filesystem::path p) { path_ = std::move(p); }

    /// msync(MS_SYNC) of the pages holding [from, to): those bytes are on disk.
    void sync(std::uint64_t from, std::uint64_t to) const {
        if (from >= to) return;
        const std::uint64_t ps = page_size();
        const std::uint64_t start = from / ps * ps;
        const std::uint64_t end = to > len_ ? len_ : to;
        if (int e = injected(io_op::sync_data, path_)) throw_errno("msync", path_, e);
        if (::msync(base_ + start, end - start, MS_SYNC) != 0) throw_errno("msync", path_, errno);
        if (io_hooks* h = installed_io_hooks.load(std::memory_order_acquire))
            h->synced(path_, start, base_ + start, end - start);
    }
    /// Faults in [from, to) writable ahead of the writer, so that appends do
    /// not stop for page faults. Only a hint: errors are ignored.
    void prefault(std::uint64_t from, std::uint64_t to) const noexcept {
        if (!base_ || from >= to) return;
        const std::uint64_t ps = page_size();
        const std::uint64_t start = from / ps * ps;
        const std::uint64_t end = to > len_ ? len_ : to;
#if defined(MADV_POPULATE_WRITE)
        if (::madvise(base_ + start, end - start, MADV_POPULATE_WRITE) == 0) return;
#endif
        // Older kernels: read faults at least map the page cache pages.
        for (std::uint64_t p = start; p < end; p += ps)
            (void)std::atomic_ref<std::byte>(base_[p]).load(std::memory_order_relaxed);
    }
    /// An madvise hint (MADV_SEQUENTIAL while recovery reads, then MADV_NORMAL).
    void advise(int advice) const noexcept {
        if (base_) (void)::madvise(base_, len_, advice);
    }

private:
    void unmap() noexcept {
        if (base_) ::munmap(base_, len_);
        base_ = nullptr;
    }
    std::filesystem::path path_;
    std::byte* base_ = nullptr;
    std::size_t len_ = 0;
};

}  // namespace conq::detail

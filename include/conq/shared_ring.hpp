// conq/shared_ring.hpp
//
// conq::shared_ring<Ring>: a ring placed in memory that several processes
// map, a POSIX shared-memory object (shm_open) or a file, so that one
// process pushes and another pops.
//
//   using ticks = conq::spsc_ring<Tick, conq::shared_memory, conq::blocking>;
//   // process A
//   auto q = conq::shared_ring<ticks>::create("/ticks", 4096, conq::shared_role::producer);
//   q.push(Tick{...});
//   // process B
//   auto q = conq::shared_ring<ticks>::open("/ticks", conq::shared_role::consumer);
//   while (auto t = q.pop()) use(*t);
//
// The ring is any spsc_ring or mpmc_ring (or conq::queue) with the
// conq::shared_memory policy; T must be trivially copyable. The memory
// starts with a header that says what the ring is (format version, the
// ring's type, sizes, capacity); open() refuses an object whose header does
// not match the ring type of the caller, with a message that says what
// differs.
//
// Each process that attaches says whether it produces, consumes or both,
// and holds a lock for that role on the object (an OFD lock, released by the
// kernel when the process dies, however it dies). The waiting calls of the
// handle (push, push_for, pop, pop_for) look at these locks while they wait:
// once every producer that ever attached is gone, pop drains what was
// completely pushed and then returns nullopt, as after close(); once every
// consumer is gone, push returns false. peer_gone() tells which happened.
// Nothing waits forever on a dead process.
//
// What a killed process can cost: a producer killed inside a push leaves
// that one slot unfilled (the item was never acknowledged); with several
// producers, items pushed after it by others wait behind it until every
// producer is gone. A consumer killed inside a pop loses that one item.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conq/detail/platform.hpp"
#include "conq/detail/storage.hpp"
#include "conq/detail/wait.hpp"
#include "conq/policy.hpp"

namespace conq {

/// What a process attached to a shared ring does with it.
enum class shared_role : std::uint8_t { producer = 1, consumer = 2, both = 3 };

/// The error of making or opening a shared ring. code() is an errno value
/// (std::system_category) for a failed system call, or one of
/// shared_ring_error::mismatch (the object holds another kind of ring, or
/// another format version) and shared_ring_error::not_ready (its creator
/// never finished making it).
class shared_ring_error : public std::runtime_error {
public:
    static constexpr int mismatch = -1;
    static constexpr int not_ready = -2;

    shared_ring_error(const std::string& what_failed, const std::string& where, int code)
        : std::runtime_error(compose(what_failed, where, code)), where_(where), code_(code) {}
    /// The object's name or the file's path.
    [[nodiscard]] const std::string& where() const noexcept { return where_; }
    /// errno (> 0), mismatch or not_ready.
    [[nodiscard]] int code() const noexcept { return code_; }

private:
    static std::string compose(const std::string& what_failed, const std::string& where, int code) {
        std::string s = "conq::shared_ring: " + what_failed + " (" + where + ")";
        if (code > 0) s += ": " + std::system_category().message(code);
        return s;
    }
    std::string where_;
    int code_;
};

namespace detail::shm {

inline constexpr char magic[8] = {'C', 'O', 'N', 'Q', 'S', 'H', 'M', '1'};
inline constexpr std::uint32_t format_version = 1;
inline constexpr std::size_t header_bytes = 256;
inline constexpr std::uint32_t state_ready = 0x52454459;  // set last by the creator

/// The first 256 bytes of the memory: what the ring is.
struct header {
    char magic[8];
    std::uint32_t version;
    std::uint32_t header_size;
    std::uint64_t total_bytes;
    std::uint64_t capacity;
    std::uint64_t ring_bytes;  // sizeof(Ring)
    std::uint64_t type_hash;
    std::uint32_t element_size;
    std::uint32_t element_align;
    std::atomic<std::uint32_t> state;
    std::atomic<std::uint32_t> producers_seen;
    std::atomic<std::uint32_t> consumers_seen;
    std::int32_t creator_pid;
    char type_name[176];
};
static_assert(sizeof(header) <= header_bytes);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

/// The name of a type as the compiler spells it (g++ and clang agree for
/// ordinary class templates; both sides of a ring should use one compiler).
template <class T>
constexpr std::string_view type_name() noexcept {
    std::string_view f = __PRETTY_FUNCTION__;
    const auto at = f.find("T = ");
    if (at == std::string_view::npos) return f;
    f.remove_prefix(at + 4);
    const auto end = f.find_first_of(";]");
    return end == std::string_view::npos ? f : f.substr(0, end);
}

constexpr std::uint64_t fnv1a(std::string_view s) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    return h;
}

inline std::string shm_name(std::string_view name) {
    // append() only: g++ 12 at -O3 warns falsely (-Wrestrict, GCC bug
    // 105651) about "/" + std::string.
    std::string out;
    out.reserve(name.size() + 1);
    if (name.empty() || name.front() != '/') out.push_back('/');
    out.append(name);
    return out;
}

}  // namespace detail::shm

template <class Ring>
class shared_ring {
    using set = typename Ring::policies;
    static_assert(set::shared,
                  "conq::shared_ring: the ring type needs the conq::shared_memory policy, e.g. "
                  "conq::spsc_ring<T, conq::shared_memory>.");

public:
    using ring_type = Ring;
    using value_type = typename Ring::value_type;

    /// How long a waiting call sleeps between two looks at the peers.
    static constexpr std::chrono::milliseconds liveness_period{20};

    /// Creates the POSIX shared-memory object `name` ("/name"; a missing
    /// slash is added) holding an empty ring of `capacity` items (rounded up
    /// to a power of two), and attaches to it in `role`. Fails with EEXIST
    /// when the object exists (remove() it first).
    static shared_ring create(std::string_view name, std::size_t capacity, shared_role role)
        requires(!set::inline_storage)
    {
        return make(detail::shm::shm_name(name), false, capacity, role);
    }
    /// The same for a ring with capacity<N>.
    static shared_ring create(std::string_view name, shared_role role) requires(set::inline_storage) {
        return make(detail::shm::shm_name(name), false, 0, role);
    }
    /// Attaches to the ring in shared-memory object `name`. Waits up to a
    /// second for its creator to finish making it.
    static shared_ring open(std::string_view name, shared_role role) {
        return attach(detail::shm::shm_name(name), false, role);
    }
    /// The same in a file (its content is the ring; a file on a tmpfs such
    /// as /dev/shm never goes to disk).
    static shared_ring create_file(const std::filesystem::path& path, std::size_t capacity, shared_role role)
        requires(!set::inline_storage)
    {
        return make(path.string(), true, capacity, role);
    }
    static shared_ring create_file(const std::filesystem::path& path, shared_role role)
        requires(set::inline_storage)
    {
        return make(path.string(), true, 0, role);
    }
    static shared_ring open_file(const std::filesystem::path& path, shared_role role) {
        return attach(path.string(), true, role);
    }
    /// Removes the shared-memory object's name; processes attached keep it.
    static bool remove(std::string_view name) noexcept {
        return ::shm_unlink(detail::shm::shm_name(name).c_str()) == 0;
    }

    shared_ring(shared_ring&& o) noexcept
        : where_(std::move(o.where_)), fd_(std::exchange(o.fd_, -1)), base_(std::exchange(o.base_, nullptr)),
          bytes_(std::exchange(o.bytes_, 0)), role_(o.role_) {}
    shared_ring& operator=(shared_ring&& o) noexcept {
        if (this != &o) {
            release();
            where_ = std::move(o.where_);
            fd_ = std::exchange(o.fd_, -1);
            base_ = std::exchange(o.base_, nullptr);
            bytes_ = std::exchange(o.bytes_, 0);
            role_ = o.role_;
        }
        return *this;
    }
    shared_ring(const shared_ring&) = delete;
    shared_ring& operator=(const shared_ring&) = delete;
    /// Detaches (the role lock goes with it). The object stays until remove().
    ~shared_ring() { release(); }

    /// The ring itself: every call of spsc_ring / mpmc_ring. Its own waiting
    /// calls do not watch the peers; the handle's below do.
    [[nodiscard]] Ring& ring() noexcept { return *ring_ptr(); }
    [[nodiscard]] Ring* operator->() noexcept { return ring_ptr(); }

    /// Pushes, waiting while full. False when the ring is closed or every
    /// consumer has gone.
    bool push(const value_type& v) { return push_until(v, detail::no_deadline); }
    template <class Rep, class Period>
    bool push_for(const value_type& v, std::chrono::duration<Rep, Period> timeout) {
        return push_until(v, detail::deadline_after(timeout));
    }
    bool try_push(const value_type& v) { return ring().try_push(v); }

    /// Pops, waiting while empty. nullopt once the ring is closed, or every
    /// producer has gone, and what was pushed has been popped.
    std::optional<value_type> pop() { return pop_until(detail::no_deadline); }
    template <class Rep, class Period>
    std::optional<value_type> pop_for(std::chrono::duration<Rep, Period> timeout) {
        return pop_until(detail::deadline_after(timeout));
    }
    std::optional<value_type> try_pop() { return ring().try_pop(); }
    bool try_pop(value_type& out) { return ring().try_pop(out); }

    /// Closes the ring for every process attached.
    void close() noexcept { ring().close(); }
    [[nodiscard]] bool closed() const noexcept { return ring_ptr()->closed(); }

    /// True when every process of the other role that ever attached has gone
    /// (consumers, for a producer; producers, for a consumer; either, for both).
    [[nodiscard]] bool peer_gone() const {
        const bool producing = (static_cast<int>(role_) & 1) != 0;
        const bool consuming = (static_cast<int>(role_) & 2) != 0;
        if (producing && !consuming && consumers_gone()) return true;
        if (consuming && !producing && producers_gone()) return true;
        return false;
    }
    [[nodiscard]] bool producers_gone() const { return gone(0, hdr()->producers_seen); }
    [[nodiscard]] bool consumers_gone() const { return gone(1, hdr()->consumers_seen); }

    /// The name or path the ring was made or opened with.
    [[nodiscard]] const std::string& where() const noexcept { return where_; }

private:
    shared_ring(std::string where, int fd, void* base, std::size_t bytes, shared_role role)
        : where_(std::move(where)), fd_(fd), base_(base), bytes_(bytes), role_(role) {}

    [[nodiscard]] detail::shm::header* hdr() const noexcept { return static_cast<detail::shm::header*>(base_); }
    [[nodiscard]] Ring* ring_ptr() const noexcept {
        return std::launder(reinterpret_cast<Ring*>(static_cast<std::byte*>(base_) + detail::shm::header_bytes));
    }

    static std::size_t total_bytes(std::size_t capacity) {
        if constexpr (set::inline_storage) return detail::shm::header_bytes + Ring::shared_bytes(0);
        else return detail::shm::header_bytes + Ring::shared_bytes(capacity);
    }
    static std::uint64_t ring_capacity(std::size_t requested) {
        if constexpr (set::inline_storage) return detail::round_up_pow2(set::capacity::value);
        else return detail::checked_capacity("conq::shared_ring", requested);
    }

    static int open_fd(const std::string& where, bool file, int flags) {
        int fd;
        do {
            fd = file ? ::open(where.c_str(), flags | O_CLOEXEC, 0600) : ::shm_open(where.c_str(), flags, 0600);
        } while (fd < 0 && errno == EINTR);
        return fd;
    }

    static shared_ring make(const std::string& where, bool file, std::size_t requested, shared_role role) {
        (void)detail::shared_barrier_init();  // before this process touches any shared ring
        const std::uint64_t capacity = ring_capacity(requested);
        const std::size_t bytes = total_bytes(static_cast<std::size_t>(capacity));
        const int fd = open_fd(where, file, O_RDWR | O_CREAT | O_EXCL);
        if (fd < 0) throw shared_ring_error("create", where, errno);
        auto fail = [&](const char* what, int err) {
            ::close(fd);
            if (file) ::unlink(where.c_str()); else ::shm_unlink(where.c_str());
            throw shared_ring_error(what, where, err);
        };
        // Real pages for all of it now: a full tmpfs is an error here, not a
        // SIGBUS later.
        if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) fail("ftruncate", errno);
        if (const int e = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes)); e != 0) fail("posix_fallocate", e);
        void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED) fail("mmap", errno);
        auto* h = ::new (base) detail::shm::header{};
        std::memcpy(h->magic, detail::shm::magic, 8);
        h->version = detail::shm::format_version;
        h->header_size = detail::shm::header_bytes;
        h->total_bytes = bytes;
        h->capacity = capacity;
        h->ring_bytes = sizeof(Ring);
        constexpr std::string_view tn = detail::shm::type_name<Ring>();
        h->type_hash = detail::shm::fnv1a(tn);
        h->element_size = sizeof(value_type);
        h->element_align = alignof(value_type);
        h->creator_pid = static_cast<std::int32_t>(::getpid());
        std::memcpy(h->type_name, tn.data(), std::min(tn.size(), sizeof(h->type_name) - 1));
        void* at = static_cast<std::byte*>(base) + detail::shm::header_bytes;
        if constexpr (set::inline_storage) ::new (at) Ring(detail::shared_placement);
        else ::new (at) Ring(detail::shared_placement, static_cast<std::size_t>(capacity));
        h->state.store(detail::shm::state_ready, std::memory_order_release);
        shared_ring r(where, fd, base, bytes, role);
        r.take_role();
        return r;
    }

    static shared_ring attach(const std::string& where, bool file, shared_role role) {
        (void)detail::shared_barrier_init();  // before this process touches any shared ring
        const int fd = open_fd(where, file, O_RDWR);
        if (fd < 0) throw shared_ring_error("open", where, errno);
        auto fail = [&](const std::string& what, int err) {
            ::close(fd);
            throw shared_ring_error(what, where, err);
        };
        // The creator sizes the object right after creating it: wait for that.
        struct stat st {};
        for (int i = 0;; ++i) {
            if (::fstat(fd, &st) != 0) fail("fstat", errno);
            if (static_cast<std::size_t>(st.st_size) >= detail::shm::header_bytes) break;
            if (i == 1000) fail("the object is smaller than a ring header; its creator did not finish",
                                shared_ring_error::not_ready);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        const auto bytes = static_cast<std::size_t>(st.st_size);
        void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED) fail("mmap", errno);
        auto unmap_fail = [&](const std::string& what, int err) {
            ::munmap(base, bytes);
            fail(what, err);
        };
        auto* h = static_cast<detail::shm::header*>(base);
        for (int i = 0; h->state.load(std::memory_order_acquire) != detail::shm::state_ready; ++i) {
            if (i == 1000) unmap_fail("its creator did not finish making the ring", shared_ring_error::not_ready);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (std::memcmp(h->magic, detail::shm::magic, 8) != 0)
            unmap_fail("not a conq shared ring (bad magic)", shared_ring_error::mismatch);
        if (h->version != detail::shm::format_version)
            unmap_fail("format version " + std::to_string(h->version) + ", this build reads version " +
                           std::to_string(detail::shm::format_version),
                       shared_ring_error::mismatch);
        constexpr std::string_view tn = detail::shm::type_name<Ring>();
        const std::string theirs(h->type_name, ::strnlen(h->type_name, sizeof(h->type_name)));
        if (h->type_hash != detail::shm::fnv1a(tn) || h->ring_bytes != sizeof(Ring))
            unmap_fail("it holds a " + theirs + ", not a " + std::string(tn), shared_ring_error::mismatch);
        if (h->element_size != sizeof(value_type) || h->element_align != alignof(value_type))
            unmap_fail("element size or alignment differs", shared_ring_error::mismatch);
        if (h->total_bytes != bytes || total_bytes(static_cast<std::size_t>(h->capacity)) != bytes)
            unmap_fail("size " + std::to_string(bytes) + " does not match capacity " + std::to_string(h->capacity),
                       shared_ring_error::mismatch);
        shared_ring r(where, fd, base, bytes, role);
        r.take_role();
        return r;
    }

    /// Takes a shared OFD lock on byte 0 (producers) and/or 1 (consumers);
    /// the kernel drops it when this process closes the object or dies.
    void take_role() {
        const auto bits = static_cast<int>(role_);
        if (bits & 1) {
            lock_byte(0);
            hdr()->producers_seen.fetch_add(1, std::memory_order_acq_rel);
        }
        if (bits & 2) {
            lock_byte(1);
            hdr()->consumers_seen.fetch_add(1, std::memory_order_acq_rel);
        }
    }
    void lock_byte(off_t at) {
        struct flock fl {};
        fl.l_type = F_RDLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = at;
        fl.l_len = 1;
        if (::fcntl(fd_, F_OFD_SETLK, &fl) != 0) throw shared_ring_error("fcntl(F_OFD_SETLK)", where_, errno);
    }
    /// True when some process of the role of lock byte `at` has attached and
    /// none holds the byte now.
    bool gone(off_t at, const std::atomic<std::uint32_t>& seen) const {
        if (seen.load(std::memory_order_acquire) == 0) return false;  // nobody came yet
        struct flock fl {};
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = at;
        fl.l_len = 1;
        if (::fcntl(fd_, F_OFD_GETLK, &fl) != 0) return false;
        if (fl.l_type != F_UNLCK) return false;  // someone holds it
        // Our own lock never conflicts with us: if we hold this role, it lives.
        return (static_cast<int>(role_) & (1 << at)) == 0;
    }

    template <class V>
    bool push_until(const V& v, detail::deadline_t deadline) {
        if constexpr (std::is_same_v<typename set::overflow, reject>) {
            (void)deadline;
            return ring().try_push(v);  // reject never waits
        }
        if (ring().try_push(v)) return true;  // the common case reads no clock
        for (;;) {
            const auto slice = std::min(deadline, detail::deadline_after(liveness_period));
            if (ring().push_for(v, slice - detail::wait_clock::now())) return true;
            if (ring().closed()) return false;
            if (consumers_gone() && !ring().try_push(v)) return false;
            if (deadline != detail::no_deadline && detail::wait_clock::now() >= deadline) return false;
        }
    }

    std::optional<value_type> pop_until(detail::deadline_t deadline) {
        if (auto v = ring().try_pop()) return v;  // the common case reads no clock
        for (;;) {
            const auto slice = std::min(deadline, detail::deadline_after(liveness_period));
            if (auto v = ring().pop_for(slice - detail::wait_clock::now())) return v;
            if (ring().closed() || producers_gone()) {
                // Take what was completely pushed; a slot a dead producer
                // claimed but never filled ends the drain.
                for (;;) {
                    if (auto v = ring().try_pop()) return v;
                    if (ring().size_approx() == 0 || producers_gone()) return std::nullopt;
                    std::this_thread::yield();  // a live producer's push is landing
                }
            }
            if (deadline != detail::no_deadline && detail::wait_clock::now() >= deadline) return std::nullopt;
        }
    }

    void release() noexcept {
        if (base_) ::munmap(base_, bytes_);
        if (fd_ >= 0) ::close(fd_);
        base_ = nullptr;
        fd_ = -1;
    }

    std::string where_;
    int fd_ = -1;
    void* base_ = nullptr;
    std::size_t bytes_ = 0;
    shared_role role_ = shared_role::both;
};

}  // namespace conq

// tests/support/counted.hpp
//
// Element types for conqueue's tests:
//
//   counted      counts constructions, copies, moves, destructions and live
//                objects in process-wide atomics, and catches a destroy (or
//                a read) of an object that is not alive;
//   may_throw    copy and move throw on demand (single-threaded tests of the
//                strong exception guarantee);
//   no_default   has no default constructor.
//
// Counters use relaxed atomics so that they add no synchronisation a
// ThreadSanitizer run could mistake for the ring's own.
#pragma once

#include <atomic>
#include <cstdint>
#include <ostream>
#include <stdexcept>
#include <utility>

namespace conq_test {

/// A value that counts its lives. Moving from a `counted` leaves
/// `moved_from_value` behind, so a moved-from object that is delivered again
/// is visible in the value.
class counted {
public:
    static constexpr std::uint64_t moved_from_value = 0xdead'0000'dead'0000ULL;

    static inline std::atomic<long> constructions{0};  // every constructor
    static inline std::atomic<long> copies{0};         // copy constructions and assignments
    static inline std::atomic<long> moves{0};          // move constructions and assignments
    static inline std::atomic<long> destructions{0};
    static inline std::atomic<long> live{0};
    static inline std::atomic<long> errors{0};  // a dead object destroyed, copied or moved

    /// Zeroes every counter (call only while no counted object exists).
    static void reset() noexcept {
        for (auto* c : {&constructions, &copies, &moves, &destructions, &live, &errors}) {
            c->store(0, std::memory_order_relaxed);
        }
    }

    counted() noexcept { born(); }
    explicit counted(std::uint64_t v) noexcept : value_(v) { born(); }
    counted(const counted& o) noexcept : value_(o.get()) {
        born();
        copies.fetch_add(1, std::memory_order_relaxed);
    }
    counted(counted&& o) noexcept : value_(o.get()) {
        o.value_ = moved_from_value;
        born();
        moves.fetch_add(1, std::memory_order_relaxed);
    }
    counted& operator=(const counted& o) noexcept {
        check();
        value_ = o.get();
        copies.fetch_add(1, std::memory_order_relaxed);
        return *this;
    }
    counted& operator=(counted&& o) noexcept {
        check();
        value_ = o.get();
        if (&o != this) o.value_ = moved_from_value;
        moves.fetch_add(1, std::memory_order_relaxed);
        return *this;
    }
    ~counted() {
        check();
        // An atomic store: the compiler may not drop it as a dead store at
        // the end of the object's lifetime, so a second destroy is seen.
        magic_.store(dead_magic, std::memory_order_relaxed);
        destructions.fetch_add(1, std::memory_order_relaxed);
        live.fetch_sub(1, std::memory_order_relaxed);
    }

    /// The value; counts an error if the object is not alive.
    [[nodiscard]] std::uint64_t get() const noexcept {
        check();
        return value_;
    }

    friend bool operator==(const counted& a, const counted& b) noexcept {
        return a.get() == b.get();
    }
    friend std::ostream& operator<<(std::ostream& os, const counted& c) {
        return os << "counted{" << c.value_ << "}";
    }

private:
    static constexpr std::uint32_t alive_magic = 0xa11ce5ed;
    static constexpr std::uint32_t dead_magic = 0xdeadbeef;

    void born() noexcept {
        magic_.store(alive_magic, std::memory_order_relaxed);
        constructions.fetch_add(1, std::memory_order_relaxed);
        live.fetch_add(1, std::memory_order_relaxed);
    }
    void check() const noexcept {
        if (magic_.load(std::memory_order_relaxed) != alive_magic) {
            errors.fetch_add(1, std::memory_order_relaxed);
        }
    }

    std::uint64_t value_ = 0;
    std::atomic<std::uint32_t> magic_{0};
};

/// The exception `may_throw` throws.
struct injected_error : std::runtime_error {
    injected_error() : std::runtime_error("conq_test: injected copy/move failure") {}
};

/// A value whose copies and moves (construction and assignment) throw on
/// demand: after `arm(n)`, the n+1-th copy or move from then on throws
/// before it changes anything. Not thread-safe: single-threaded tests only.
class may_throw {
public:
    static inline int countdown = -1;  // -1: never throw
    static inline long live = 0;

    static void arm(int n) noexcept { countdown = n; }
    static void disarm() noexcept { countdown = -1; }

    explicit may_throw(int v) : value(v) { ++live; }
    /// Throws when `fail` is true (for try_emplace).
    may_throw(int v, bool fail) : value(v) {
        if (fail) throw injected_error();
        ++live;
    }
    may_throw(const may_throw& o) : value(o.value) {
        tick();
        ++live;
    }
    may_throw(may_throw&& o) : value(o.value) {
        tick();
        o.value = -1;
        ++live;
    }
    may_throw& operator=(const may_throw& o) {
        tick();
        value = o.value;
        return *this;
    }
    may_throw& operator=(may_throw&& o) {
        tick();
        value = o.value;
        o.value = -1;
        return *this;
    }
    ~may_throw() { --live; }

    friend std::ostream& operator<<(std::ostream& os, const may_throw& m) {
        return os << "may_throw{" << m.value << "}";
    }

    int value;

private:
    static void tick() {
        if (countdown < 0) return;
        if (countdown-- == 0) throw injected_error();
    }
};

/// A value whose constructor from (int, bool) throws when the bool is true,
/// while its copy and move never throw: emplacing it is allowed with any
/// number of producers and consumers.
struct throwing_ctor {
    throwing_ctor(int v, bool fail) : value(v) {
        if (fail) throw injected_error();
    }
    throwing_ctor(const throwing_ctor&) noexcept = default;
    throwing_ctor(throwing_ctor&&) noexcept = default;
    throwing_ctor& operator=(const throwing_ctor&) noexcept = default;
    throwing_ctor& operator=(throwing_ctor&&) noexcept = default;
    int value;
};

/// A value without a default constructor.
struct no_default {
    explicit no_default(int v) noexcept : value(v) {}
    no_default(const no_default&) = default;
    no_default(no_default&&) noexcept = default;
    no_default& operator=(const no_default&) = default;
    no_default& operator=(no_default&&) noexcept = default;
    int value;
};

}  // namespace conq_test

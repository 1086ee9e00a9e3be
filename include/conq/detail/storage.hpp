// conq/detail/storage.hpp
//
// Raw, aligned storage for ring slots: inside the object for capacity<N>,
// on the heap (allocated once, in the constructor) otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>

#include "conq/detail/platform.hpp"
#include "conq/policy.hpp"

namespace conq::detail {

/// Tag of the constructors that place a ring in shared memory.
struct shared_placement_t {
    explicit shared_placement_t() = default;
};
inline constexpr shared_placement_t shared_placement{};

/// Validates a runtime capacity and rounds it up to a power of two.
inline std::size_t checked_capacity(const char* who, std::size_t requested) {
    if (requested == 0) {
        throw std::invalid_argument(std::string(who) + ": capacity must be greater than zero");
    }
    if (requested > max_capacity) {
        throw std::length_error(std::string(who) + ": capacity must be at most 2^40");
    }
    return round_up_pow2(requested);
}

/// Validates a runtime capacity of an ordered queue (priority, delay): exact,
/// no rounding.
inline std::size_t checked_bound(const char* who, std::size_t requested) {
    if (requested == 0) {
        throw std::invalid_argument(std::string(who) + ": capacity must be greater than zero");
    }
    return requested;
}

/// `Count` slots of type `Slot`, padded on both sides by a destructive-size
/// gap so that neighbouring objects never share a line with the first or
/// last slot. `Count == 0` selects heap storage sized at construction.
template <class Slot, std::size_t Count>
class slot_storage {
public:
    static constexpr std::size_t pad_slots = (destructive_size + sizeof(Slot) - 1) / sizeof(Slot);
    explicit slot_storage(std::size_t) noexcept {}
    Slot* data() noexcept { return reinterpret_cast<Slot*>(bytes_ + pad_slots * sizeof(Slot)); }
    const Slot* data() const noexcept {
        return reinterpret_cast<const Slot*>(bytes_ + pad_slots * sizeof(Slot));
    }

private:
    alignas(destructive_size) std::byte bytes_[(Count + 2 * pad_slots) * sizeof(Slot)];
};

template <class Slot>
class slot_storage<Slot, 0> {
public:
    static constexpr std::size_t pad_slots = (destructive_size + sizeof(Slot) - 1) / sizeof(Slot);
    static constexpr std::align_val_t align{destructive_size > alignof(Slot) ? destructive_size
                                                                             : alignof(Slot)};
    explicit slot_storage(std::size_t count)
        : bytes_(static_cast<std::byte*>(
              ::operator new((count + 2 * pad_slots) * sizeof(Slot), align))) {}
    ~slot_storage() { ::operator delete(bytes_, align); }
    slot_storage(const slot_storage&) = delete;
    slot_storage& operator=(const slot_storage&) = delete;

    Slot* data() noexcept { return reinterpret_cast<Slot*>(bytes_ + pad_slots * sizeof(Slot)); }
    const Slot* data() const noexcept {
        return reinterpret_cast<const Slot*>(bytes_ + pad_slots * sizeof(Slot));
    }

private:
    std::byte* bytes_;
};

/// Slots placed right after the ring object, in memory the ring does not
/// own: a mapping shared between processes, sized by bytes_after(count).
/// Nothing in it is a pointer, so every process that maps the memory at
/// any address sees the same ring.
template <class Slot>
class trailing_slot_storage {
public:
    static constexpr std::size_t pad_slots = (destructive_size + sizeof(Slot) - 1) / sizeof(Slot);
    explicit trailing_slot_storage(std::size_t) noexcept {}
    /// Bytes the slots need after the end of the object holding this member.
    static constexpr std::size_t bytes_after(std::size_t count) noexcept {
        return destructive_size + (count + 2 * pad_slots) * sizeof(Slot);
    }
    Slot* data() noexcept { return reinterpret_cast<Slot*>(first_byte() + pad_slots * sizeof(Slot)); }
    const Slot* data() const noexcept {
        return const_cast<trailing_slot_storage*>(this)->data();
    }

private:
    std::byte* first_byte() noexcept {
        const auto end = reinterpret_cast<std::uintptr_t>(this) + sizeof(*this);
        const auto aligned = (end + destructive_size - 1) / destructive_size * destructive_size;
        return reinterpret_cast<std::byte*>(aligned);
    }
};

/// Raw storage for one T; lifetime managed by the ring.
template <class T>
struct alignas(T) raw_item {
    std::byte bytes[sizeof(T)];
    T* ptr() noexcept { return std::launder(reinterpret_cast<T*>(bytes)); }
    const T* ptr() const noexcept { return std::launder(reinterpret_cast<const T*>(bytes)); }
};

}  // namespace conq::detail

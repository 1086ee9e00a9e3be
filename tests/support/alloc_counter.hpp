// tests/support/alloc_counter.hpp
//
// Replaces the global operator new and delete with versions that count
// allocations, so a test can prove that a section of code allocated nothing.
//
// Include this header in exactly one translation unit of an executable (the
// replacement functions are ordinary, non-inline definitions, as the
// standard requires of replacements).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace conq_test {

/// Allocations made through any form of the global operator new so far.
inline std::atomic<long> allocation_counter{0};

[[nodiscard]] inline long allocations() noexcept {
    return allocation_counter.load(std::memory_order_relaxed);
}

namespace alloc_detail {
inline void* allocate(std::size_t n) noexcept {
    allocation_counter.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n == 0 ? 1 : n);
}
inline void* allocate_aligned(std::size_t n, std::align_val_t a) noexcept {
    allocation_counter.fetch_add(1, std::memory_order_relaxed);
    std::size_t align = static_cast<std::size_t>(a);
    if (align < sizeof(void*)) align = sizeof(void*);
    void* p = nullptr;
    return posix_memalign(&p, align, n == 0 ? 1 : n) == 0 ? p : nullptr;
}
// Out of line: g++ would otherwise see an inlined operator delete call
// free() on a pointer from operator new and warn (-Wmismatched-new-delete).
[[gnu::noinline]] inline void release(void* p) noexcept { std::free(p); }
}  // namespace alloc_detail

}  // namespace conq_test

void* operator new(std::size_t n) {
    if (void* p = conq_test::alloc_detail::allocate(n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    if (void* p = conq_test::alloc_detail::allocate(n)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
    if (void* p = conq_test::alloc_detail::allocate_aligned(n, a)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
    if (void* p = conq_test::alloc_detail::allocate_aligned(n, a)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    return conq_test::alloc_detail::allocate(n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    return conq_test::alloc_detail::allocate(n);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return conq_test::alloc_detail::allocate_aligned(n, a);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return conq_test::alloc_detail::allocate_aligned(n, a);
}

void operator delete(void* p) noexcept {
    conq_test::alloc_detail::release(p);
}
void operator delete[](void* p) noexcept {
    conq_test::alloc_detail::release(p);
}
void operator delete(void* p, std::size_t) noexcept {
    conq_test::alloc_detail::release(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    conq_test::alloc_detail::release(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
    conq_test::alloc_detail::release(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
    conq_test::alloc_detail::release(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    conq_test::alloc_detail::release(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
    conq_test::alloc_detail::release(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    conq_test::alloc_detail::release(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    conq_test::alloc_detail::release(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    conq_test::alloc_detail::release(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    conq_test::alloc_detail::release(p);
}

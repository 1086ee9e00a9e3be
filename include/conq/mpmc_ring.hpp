// conq/mpmc_ring.hpp
//
// conq::mpmc_ring<T, Policies...>: a bounded FIFO ring for several producer
// threads and/or several consumer threads. The concurrency policy picks the
// configuration: mpmc (the default), mpsc, spmc, or spsc. A side that is
// single pays no read-modify-write; a shared side claims tickets with one
// compare-and-swap per operation (per batch for try_push_n / try_pop_n).
//
// How it works (per-slot turn numbers, ticket claiming, the cache-line bit
// swap, the close protocol) is described in conq/detail/slot_ring.hpp and
// docs/design-rings.md.
//
// Progress: try_* calls never block; with a shared side they are lock-free
// (a thread fails its compare-and-swap only because another one succeeded),
// with a single side wait-free. push/pop wait according to the wait policy.
// Requirements on T: with several producers or consumers, or drop_oldest,
// T's move constructor must be noexcept (a thread that claimed a slot could
// not hand it back if the move threw); a single side gives the strong
// guarantee for throwing moves.
#pragma once

#include "conq/detail/slot_ring.hpp"
#include "conq/policy.hpp"

namespace conq {

template <class T, class... Policies>
class mpmc_ring
    : public detail::slot_ring<T, typename detail::policy_set<Policies...>::concurrency,
                               Policies...> {
    using base =
        detail::slot_ring<T, typename detail::policy_set<Policies...>::concurrency, Policies...>;

public:
    /// `mpmc_ring()` with capacity<N>; `explicit mpmc_ring(std::size_t
    /// capacity)` otherwise (rounded up to a power of two; 0 throws
    /// std::invalid_argument, more than 2^40 std::length_error).
    using base::base;
};

}  // namespace conq

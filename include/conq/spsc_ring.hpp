// conq/spsc_ring.hpp
//
// conq::spsc_ring<T, Policies...>: a bounded FIFO ring for exactly one
// producer thread and one consumer thread at a time.
//
// The two sides share nothing but the slots: each keeps its own ticket
// counter, and each slot carries a turn number that says whether it is free
// or holds an item (see conq/detail/slot_ring.hpp). A push is a check of the
// slot's turn, a construction and a release store; a pop is a check, a move
// and a release store; no read-modify-write, no shared index line. Batch
// calls check and fill a run of slots in one go.
//
// Progress: try_* calls are wait-free; push/pop wait per the wait policy.
// A throwing move or constructor leaves the ring unchanged (strong
// guarantee). With drop_oldest the producer pops the oldest item itself, so
// the consumer side then claims items with a compare-and-swap and T's move
// constructor must be noexcept.
#pragma once

#include <type_traits>

#include "conq/detail/slot_ring.hpp"
#include "conq/policy.hpp"

namespace conq {

template <class T, class... Policies>
class spsc_ring : public detail::slot_ring<T, spsc, Policies...> {
    using set = detail::policy_set<Policies...>;
    using base = detail::slot_ring<T, spsc, Policies...>;
    static_assert(std::is_same_v<typename set::concurrency, spsc> || !set::has_concurrency,
                  "conq::spsc_ring: only conq::spsc is allowed here; for several producers or "
                  "consumers use conq::mpmc_ring<T, conq::mpsc/spmc/mpmc> or conq::queue.");

public:
    /// `spsc_ring()` with capacity<N>; `explicit spsc_ring(std::size_t
    /// capacity)` otherwise (rounded up to a power of two; 0 throws
    /// std::invalid_argument, more than 2^40 std::length_error).
    using base::base;
};

}  // namespace conq

// conq/queue.hpp
//
// conq::queue<T, Policies...>: the front door. It reads the policy list
// (any order, each family at most once) and derives from the container that
// serves it:
//
//   spsc                                    -> spsc_ring
//   mpsc, spmc, mpmc (the default)          -> mpmc_ring in that configuration
//   priority_order / delay_order            -> not yet available (compile error)
//
// and the aliases spsc_queue, mpsc_queue, spmc_queue, mpmc_queue, which fix
// the concurrency policy and take the rest.
#pragma once

#include <cstddef>
#include <type_traits>

#include "conq/mpmc_ring.hpp"
#include "conq/policy.hpp"
#include "conq/spsc_ring.hpp"

namespace conq {

namespace detail {

template <class Order>
inline constexpr bool is_fifo_order = std::is_same_v<Order, fifo>;

template <class T, class... Policies>
struct queue_container {
    using set = policy_set<Policies...>;
    static_assert(is_fifo_order<typename set::order>,
                  "conq::queue: priority_order and delay_order are not yet available; use fifo "
                  "(the default) until conq/priority_queue.hpp and conq/delay_queue.hpp land.");
    using type = std::conditional_t<std::is_same_v<typename set::concurrency, spsc>,
                                    spsc_ring<T, Policies...>, mpmc_ring<T, Policies...>>;
};

}  // namespace detail

/// A concurrent queue of T configured by `Policies` (see conq/policy.hpp).
/// It is the container chosen above and has its whole interface: try_push,
/// try_emplace, push, push_for, try_pop, pop, pop_for, try_push_n,
/// try_pop_n, close, closed, capacity, size_approx. Neither copyable nor
/// movable. Without capacity<N> the constructor takes the capacity.
template <class T, class... Policies>
class queue : public detail::queue_container<T, Policies...>::type {
    using base = typename detail::queue_container<T, Policies...>::type;

public:
    using container_type = base;
    using base::base;
};

/// One producer thread, one consumer thread.
template <class T, class... Policies>
using spsc_queue = queue<T, spsc, Policies...>;
/// Several producer threads, one consumer thread.
template <class T, class... Policies>
using mpsc_queue = queue<T, mpsc, Policies...>;
/// One producer thread, several consumer threads.
template <class T, class... Policies>
using spmc_queue = queue<T, spmc, Policies...>;
/// Several producer threads, several consumer threads.
template <class T, class... Policies>
using mpmc_queue = queue<T, mpmc, Policies...>;

static_assert(concurrent_queue<queue<int, spsc>> && concurrent_queue<queue<int, mpmc>>);

}  // namespace conq

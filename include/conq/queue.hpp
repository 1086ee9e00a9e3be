// conq/queue.hpp
//
// conq::queue<T, Policies...>: the front door. It reads the policy list
// (any order, each family at most once) and derives from the container that
// serves it:
//
//   fifo (default), spsc                    -> spsc_ring
//   fifo, mpsc, spmc, mpmc (the default)    -> mpmc_ring in that configuration
//   priority_order<Cmp>                     -> priority_queue<T, Cmp, ...>
//   delay_order<Clock>                      -> delay_queue<T, ...> on that clock
//
// Combinations that make no sense (spsc with priority_order, drop_oldest
// with priority_order or delay_order, spin with delay_order, ...) fail to
// compile with the container's sentence.
//
// and the aliases spsc_queue, mpsc_queue, spmc_queue, mpmc_queue, which fix
// the concurrency policy and take the rest.
#pragma once

#include <cstddef>
#include <type_traits>

#include "conq/delay_queue.hpp"
#include "conq/mpmc_ring.hpp"
#include "conq/policy.hpp"
#include "conq/priority_queue.hpp"
#include "conq/spsc_ring.hpp"

namespace conq {

namespace detail {

template <class T, class Order, class... Policies>
struct queue_for_order {
    using type = std::conditional_t<
        std::is_same_v<typename policy_set<Policies...>::concurrency, spsc>,
        spsc_ring<T, Policies...>, mpmc_ring<T, Policies...>>;
};
template <class T, class Compare, class... Policies>
struct queue_for_order<T, priority_order<Compare>, Policies...> {
    using type = priority_queue<T, Compare, Policies...>;
};
template <class T, class Clock, class... Policies>
struct queue_for_order<T, delay_order<Clock>, Policies...> {
    using type = delay_queue<T, Policies...>;
};

template <class T, class... Policies>
struct queue_container {
    using type =
        typename queue_for_order<T, typename policy_set<Policies...>::order, Policies...>::type;
};

}  // namespace detail

/// A concurrent queue of T configured by `Policies` (see conq/policy.hpp).
/// It is the container chosen above and has its whole interface: try_push,
/// try_emplace, push, push_for, try_pop, pop, pop_for, try_push_n,
/// try_pop_n, close, closed, capacity, size_approx (plus schedule/cancel
/// with delay_order). Neither copyable nor movable. A FIFO ring without
/// capacity<N> takes its capacity in the constructor; priority and delay
/// queues without one are unbounded.
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

static_assert(concurrent_queue<queue<int, spsc>> && concurrent_queue<queue<int, mpmc>> &&
              concurrent_queue<queue<int, priority_order<>>> &&
              concurrent_queue<queue<int, mpsc, delay_order<>>>);

}  // namespace conq

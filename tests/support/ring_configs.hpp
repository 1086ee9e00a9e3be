// tests/support/ring_configs.hpp
//
// Policy bundles for TEMPLATE_LIST_TEST_CASE: `config<Container, P...>`
// names a container template and a policy list, and builds that container
// for any element type, so one test body checks every configuration with
// u64, counted, move-only and throwing elements alike.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include <conq/policy.hpp>

namespace conq_test {

/// A container template (spsc_ring, mpmc_ring, queue, an alias) and its policies.
template <template <class, class...> class Container, class... Policies>
struct config {
    template <class T>
    using ring = Container<T, Policies...>;

    // From the container, so that aliases (spsc_queue<T, P...>) count the
    // policy they add.
    using set = typename Container<int, Policies...>::policies;
    using overflow = typename set::overflow;
    using wait = typename set::wait;
    static constexpr bool inline_storage = set::inline_storage;
    static constexpr bool drops = std::is_same_v<overflow, conq::drop_oldest>;
    static constexpr bool rejects = std::is_same_v<overflow, conq::reject>;
    static constexpr bool blocks = std::is_same_v<overflow, conq::block>;
    static constexpr bool multi_producer = set::concurrency::multi_producer;
    static constexpr bool multi_consumer = set::concurrency::multi_consumer;
};

/// The ring of element type T that config C describes.
template <class C, class T>
using ring_t = typename C::template ring<T>;

/// Builds a ring: default-constructed with capacity<N>, else with
/// `runtime_capacity`. Rings are neither copyable nor movable, hence the
/// unique_ptr.
template <class Q>
[[nodiscard]] std::unique_ptr<Q> make_ring(std::size_t runtime_capacity) {
    if constexpr (Q::policies::inline_storage) {
        (void)runtime_capacity;
        return std::make_unique<Q>();
    } else {
        return std::make_unique<Q>(runtime_capacity);
    }
}

/// The spelling of a type, for test messages (g++ and clang).
template <class T>
[[nodiscard]] std::string type_name() {
    std::string_view p = __PRETTY_FUNCTION__;
    const auto start = p.find("T = ");
    if (start == std::string_view::npos) return std::string(p);
    p.remove_prefix(start + 4);
    const auto end = p.find_first_of(";]");
    return std::string(p.substr(0, end));
}

}  // namespace conq_test

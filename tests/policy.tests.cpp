// Unit tests of conq/policy.hpp: policy lookup with defaults and in any
// order, the clock concept, manual_clock, capacity<N>, the
// concurrent_queue concept, and which container conq::queue picks.
#include <conq/policy.hpp>
#include <conq/queue.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include "conq_catch.hpp"
#include "counted.hpp"

namespace {

using conq::detail::policy_set;
using namespace std::chrono_literals;

template <class A, class B>
constexpr bool same_set =
    std::is_same_v<typename A::concurrency, typename B::concurrency> &&
    std::is_same_v<typename A::capacity, typename B::capacity> &&
    std::is_same_v<typename A::wait, typename B::wait> &&
    std::is_same_v<typename A::overflow, typename B::overflow> &&
    std::is_same_v<typename A::order, typename B::order> &&
    std::is_same_v<typename A::clock, typename B::clock> &&
    A::has_concurrency == B::has_concurrency && A::has_clock == B::has_clock &&
    A::inline_storage == B::inline_storage;

struct by_value {
    constexpr bool operator()(int a, int b) const noexcept { return a < b; }
};

// A clock that is not steady, and types that are not clocks.
struct wall_clock {
    using duration = std::chrono::nanoseconds;
    using time_point = std::chrono::time_point<wall_clock, duration>;
    static constexpr bool is_steady = false;
    time_point now() const noexcept { return time_point(); }
};
struct no_now {
    using duration = std::chrono::nanoseconds;
    using time_point = std::chrono::time_point<no_now, duration>;
    [[maybe_unused]] static constexpr bool is_steady = true;
};
struct wrong_now {
    using duration = std::chrono::nanoseconds;
    using time_point = std::chrono::time_point<wrong_now, duration>;
    [[maybe_unused]] static constexpr bool is_steady = true;
    int now() const noexcept { return 0; }
};

}  // namespace

TEST_CASE("policy_set: defaults", "[policy]") {
    using d = policy_set<>;
    STATIC_REQUIRE(std::is_same_v<d::concurrency, conq::mpmc>);
    STATIC_REQUIRE(std::is_same_v<d::capacity, conq::detail::runtime_capacity>);
    STATIC_REQUIRE(std::is_same_v<d::wait, conq::backoff>);
    STATIC_REQUIRE(std::is_same_v<d::overflow, conq::block>);
    STATIC_REQUIRE(std::is_same_v<d::order, conq::fifo>);
    STATIC_REQUIRE(std::is_same_v<d::clock, conq::steady_clock>);
    STATIC_REQUIRE_FALSE(d::has_concurrency);
    STATIC_REQUIRE_FALSE(d::has_clock);
    STATIC_REQUIRE_FALSE(d::inline_storage);
    STATIC_REQUIRE(d::capacity::value == 0);
}

TEST_CASE("policy_set: each family found, the others defaulted", "[policy]") {
    STATIC_REQUIRE(std::is_same_v<policy_set<conq::spsc>::concurrency, conq::spsc>);
    STATIC_REQUIRE(std::is_same_v<policy_set<conq::mpsc>::concurrency, conq::mpsc>);
    STATIC_REQUIRE(std::is_same_v<policy_set<conq::spmc>::concurrency, conq::spmc>);
    STATIC_REQUIRE(policy_set<conq::mpmc>::has_concurrency);
    STATIC_REQUIRE(std::is_same_v<policy_set<conq::capacity<64>>::capacity, conq::capacity<64>>);
    STATIC_REQUIRE(policy_set<conq::capacity<64>>::inline_storage);
    STATIC_REQUIRE(std::is_same_v<policy_set<conq::spin>::wait, conq::spin>);
    STATIC_REQUIRE(std::is_same_v<policy_set<conq::yield>::wait, conq::yield>);
    STATIC_REQUIRE(std::is_same_v<policy_set<conq::blocking>::wait, conq::blocking>);
    STATIC_REQUIRE(std::is_same_v<policy_set<conq::reject>::overflow, conq::reject>);
    STATIC_REQUIRE(std::is_same_v<policy_set<conq::drop_oldest>::overflow, conq::drop_oldest>);
    STATIC_REQUIRE(std::is_same_v<policy_set<conq::priority_order<by_value>>::order,
                                  conq::priority_order<by_value>>);
    STATIC_REQUIRE(std::is_same_v<policy_set<conq::delay_order<conq::manual_clock>>::order,
                                  conq::delay_order<conq::manual_clock>>);
    STATIC_REQUIRE(std::is_same_v<policy_set<conq::manual_clock>::clock, conq::manual_clock>);
    STATIC_REQUIRE(policy_set<conq::manual_clock>::has_clock);
    // One family given leaves the others at their defaults.
    using s = policy_set<conq::blocking>;
    STATIC_REQUIRE(std::is_same_v<s::concurrency, conq::mpmc>);
    STATIC_REQUIRE(std::is_same_v<s::overflow, conq::block>);
    STATIC_REQUIRE_FALSE(s::inline_storage);
}

TEST_CASE("policy_set: the order of the list does not matter", "[policy]") {
    using a = policy_set<conq::spsc, conq::capacity<16>, conq::blocking, conq::reject, conq::fifo,
                         conq::manual_clock>;
    using b = policy_set<conq::manual_clock, conq::reject, conq::fifo, conq::blocking,
                         conq::capacity<16>, conq::spsc>;
    using c = policy_set<conq::blocking, conq::manual_clock, conq::spsc, conq::fifo, conq::reject,
                         conq::capacity<16>>;
    STATIC_REQUIRE(same_set<a, b>);
    STATIC_REQUIRE(same_set<a, c>);
    STATIC_REQUIRE(std::is_same_v<a::concurrency, conq::spsc>);
    STATIC_REQUIRE(std::is_same_v<a::capacity, conq::capacity<16>>);
    STATIC_REQUIRE(std::is_same_v<a::wait, conq::blocking>);
    STATIC_REQUIRE(std::is_same_v<a::overflow, conq::reject>);
    STATIC_REQUIRE(std::is_same_v<a::clock, conq::manual_clock>);
    STATIC_REQUIRE(same_set<policy_set<conq::mpsc, conq::drop_oldest>,
                            policy_set<conq::drop_oldest, conq::mpsc>>);
    STATIC_REQUIRE(same_set<policy_set<conq::yield, conq::capacity<3>>,
                            policy_set<conq::capacity<3>, conq::yield>>);
    // Naming a default equals leaving it out (apart from has_*).
    STATIC_REQUIRE(std::is_same_v<policy_set<conq::backoff, conq::block, conq::fifo>::wait,
                                  policy_set<>::wait>);
}

TEST_CASE("capacity<N>::value is N", "[policy]") {
    STATIC_REQUIRE(conq::capacity<1>::value == 1);
    STATIC_REQUIRE(conq::capacity<5>::value == 5);  // the ring rounds, the tag does not
    STATIC_REQUIRE(conq::capacity<4096>::value == 4096);
    STATIC_REQUIRE(conq::capacity<(std::size_t{1} << 40)>::value == std::size_t{1} << 40);
    STATIC_REQUIRE(conq::priority_order<by_value>::compare{}(1, 2));
    STATIC_REQUIRE(std::is_same_v<conq::priority_order<>::compare, std::less<>>);
    STATIC_REQUIRE(std::is_same_v<conq::delay_order<>::clock, conq::steady_clock>);
}

TEST_CASE("clock_type: steady clocks only", "[policy]") {
    STATIC_REQUIRE(conq::clock_type<conq::steady_clock>);
    STATIC_REQUIRE(conq::clock_type<conq::manual_clock>);
    STATIC_REQUIRE(conq::clock_type<std::chrono::steady_clock>);
    STATIC_REQUIRE_FALSE(conq::clock_type<std::chrono::system_clock>);
    STATIC_REQUIRE_FALSE(conq::clock_type<wall_clock>);
    STATIC_REQUIRE_FALSE(conq::clock_type<no_now>);
    STATIC_REQUIRE_FALSE(conq::clock_type<wrong_now>);
    STATIC_REQUIRE_FALSE(conq::clock_type<int>);
}

TEST_CASE("steady_clock: now() follows std::chrono::steady_clock", "[policy]") {
    const conq::steady_clock c;
    const auto a = std::chrono::steady_clock::now();
    const auto b = c.now();
    const auto d = std::chrono::steady_clock::now();
    REQUIRE(a <= b);
    REQUIRE(b <= d);
}

TEST_CASE("manual_clock: moves only when advanced, never backwards", "[policy]") {
    conq::manual_clock c;
    using tp = conq::manual_clock::time_point;
    REQUIRE(c.now() == tp{});
    REQUIRE(c.now() == c.now());
    c.advance(5ms);
    REQUIRE(c.now() == tp(5ms));
    c.advance(std::chrono::nanoseconds(1));
    REQUIRE(c.now() == tp(5ms + std::chrono::nanoseconds(1)));
    c.advance(-3ms);  // ignored
    REQUIRE(c.now() == tp(5ms + std::chrono::nanoseconds(1)));
    c.advance(0ms);
    REQUIRE(c.now() == tp(5ms + std::chrono::nanoseconds(1)));
    c.advance(std::chrono::hours(24));
    REQUIRE(c.now() - tp{} == std::chrono::hours(24) + 5ms + std::chrono::nanoseconds(1));

    const conq::manual_clock started(tp(std::chrono::seconds(100)));
    REQUIRE(started.now() == tp(std::chrono::seconds(100)));
}

TEST_CASE("manual_clock: advance from several threads adds up", "[policy]") {
    conq::manual_clock c;
    constexpr int per_thread = 10000;
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
        threads.emplace_back([&c] {
            for (int i = 0; i < per_thread; ++i) {
                c.advance(std::chrono::nanoseconds(1));
                c.advance(std::chrono::nanoseconds(-1));
            }
        });
    }
    for (auto& t : threads) t.join();
    REQUIRE(c.now().time_since_epoch() == std::chrono::nanoseconds(3 * per_thread));
}

TEST_CASE("concurrent_queue: every queue and ring satisfies it", "[policy]") {
    using u64 = std::uint64_t;
    using conq_test::counted;
    STATIC_REQUIRE(conq::concurrent_queue<conq::spsc_ring<u64>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::spsc_ring<u64, conq::capacity<8>, conq::reject>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::spsc_ring<std::unique_ptr<int>, conq::blocking>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::mpmc_ring<u64>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::mpmc_ring<counted, conq::mpsc, conq::spin>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::mpmc_ring<u64, conq::spmc, conq::drop_oldest>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::mpmc_ring<u64, conq::spsc, conq::capacity<4>>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::queue<u64>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::spsc_queue<u64, conq::yield>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::mpsc_queue<std::string, conq::blocking>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::spmc_queue<u64, conq::reject, conq::capacity<2>>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::mpmc_queue<std::unique_ptr<int>>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::queue<counted, conq::spsc, conq::drop_oldest>>);
    // Things that are not queues.
    STATIC_REQUIRE_FALSE(conq::concurrent_queue<std::vector<int>>);
    STATIC_REQUIRE_FALSE(conq::concurrent_queue<int>);
}

TEST_CASE("queue: the container conq::queue picks (spsc: spsc_ring, else mpmc_ring)",
          "[policy][queue]") {
    using conq::capacity;
    using conq::mpmc_ring;
    using conq::spsc_ring;
    STATIC_REQUIRE(std::is_same_v<conq::queue<int, conq::spsc>::container_type,
                                  spsc_ring<int, conq::spsc>>);
    STATIC_REQUIRE(std::is_same_v<conq::queue<int, conq::spsc, conq::reject>::container_type,
                                  spsc_ring<int, conq::spsc, conq::reject>>);
    STATIC_REQUIRE(std::is_same_v<conq::queue<int, capacity<8>, conq::spsc>::container_type,
                                  spsc_ring<int, capacity<8>, conq::spsc>>);
    // spsc_ring serves drop_oldest too (its producer then pops the oldest).
    STATIC_REQUIRE(std::is_same_v<conq::queue<int, conq::spsc, conq::drop_oldest>::container_type,
                                  spsc_ring<int, conq::spsc, conq::drop_oldest>>);
    STATIC_REQUIRE(std::is_same_v<conq::queue<int, conq::mpsc>::container_type,
                                  mpmc_ring<int, conq::mpsc>>);
    STATIC_REQUIRE(std::is_same_v<conq::queue<int, conq::spmc>::container_type,
                                  mpmc_ring<int, conq::spmc>>);
    STATIC_REQUIRE(std::is_same_v<conq::queue<int, conq::mpmc>::container_type,
                                  mpmc_ring<int, conq::mpmc>>);
    STATIC_REQUIRE(std::is_same_v<conq::queue<int>::container_type, mpmc_ring<int>>);
    STATIC_REQUIRE(std::is_same_v<conq::spsc_queue<int>::container_type,
                                  spsc_ring<int, conq::spsc>>);
    STATIC_REQUIRE(std::is_same_v<conq::spsc_queue<int, conq::drop_oldest>::container_type,
                                  spsc_ring<int, conq::spsc, conq::drop_oldest>>);
    STATIC_REQUIRE(std::is_same_v<conq::mpsc_queue<int>::container_type,
                                  mpmc_ring<int, conq::mpsc>>);
    STATIC_REQUIRE(std::is_same_v<conq::spmc_queue<int>::container_type,
                                  mpmc_ring<int, conq::spmc>>);
    STATIC_REQUIRE(std::is_same_v<conq::mpmc_queue<int, conq::drop_oldest>::container_type,
                                  mpmc_ring<int, conq::mpmc, conq::drop_oldest>>);
}

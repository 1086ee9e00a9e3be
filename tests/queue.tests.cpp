// Unit tests of conq/queue.hpp: conq::queue picks the right container for
// each policy list (rings, priority_queue for priority_order, delay_queue for
// delay_order), and every alias keeps the single-threaded contract.
#include <conq/conq.hpp>  // the umbrella header, which must bring in conq/queue.hpp

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

#include "conq_catch.hpp"
#include "no_allocation.hpp"
#include "ring_configs.hpp"
#include "ring_contract.hpp"

namespace {

using conq_test::config;
namespace contract = conq_test::contract;

using fifo_configs = std::tuple<                                          //
    config<conq::queue, conq::spsc>,                                      //
    config<conq::spsc_queue, conq::capacity<8>, conq::blocking>,          //
    config<conq::mpsc_queue, conq::spin>,                                 //
    config<conq::mpsc_queue, conq::capacity<8>, conq::reject>,            //
    config<conq::spmc_queue, conq::blocking>,                             //
    config<conq::mpmc_queue>,                                             //
    config<conq::queue, conq::yield, conq::capacity<8>, conq::mpmc, conq::reject>,  //
    config<conq::queue>>;                                                 // every default

using drop_configs = std::tuple<                                          //
    config<conq::spsc_queue, conq::drop_oldest>,                          //
    config<conq::mpmc_queue, conq::drop_oldest, conq::spin>>;

using all_configs = decltype(std::tuple_cat(fifo_configs{}, drop_configs{}));

using runtime_configs = std::tuple<                           //
    config<conq::spsc_queue>,                                 //
    config<conq::spmc_queue, conq::reject>,                   //
    config<conq::mpmc_queue, conq::blocking>,                 //
    config<conq::spsc_queue, conq::drop_oldest>>;

using reject_configs = std::tuple<                              //
    config<conq::spsc_queue, conq::reject, conq::yield>,        //
    config<conq::mpsc_queue, conq::capacity<8>, conq::reject>,  //
    config<conq::queue, conq::yield, conq::capacity<8>, conq::mpmc, conq::reject>>;

using throwing_configs = std::tuple<                                           //
    config<conq::spsc_queue>,                                                  //
    config<conq::spsc_queue, conq::capacity<8>, conq::blocking, conq::reject>>;

template <class Q>
using container_of = typename Q::container_type;

}  // namespace

TEST_CASE("queue: picks spsc_ring for spsc and mpmc_ring for the others", "[queue]") {
    using conq::capacity;
    using conq::mpmc_ring;
    using conq::queue;
    using conq::spsc_ring;
    STATIC_REQUIRE(
        std::is_same_v<container_of<queue<int, conq::spsc>>, spsc_ring<int, conq::spsc>>);
    STATIC_REQUIRE(std::is_same_v<container_of<conq::spsc_queue<int, capacity<8>, conq::reject>>,
                                  spsc_ring<int, conq::spsc, capacity<8>, conq::reject>>);
    STATIC_REQUIRE(std::is_same_v<container_of<queue<int, conq::spsc, conq::drop_oldest>>,
                                  spsc_ring<int, conq::spsc, conq::drop_oldest>>);
    STATIC_REQUIRE(
        std::is_same_v<container_of<queue<int, conq::mpsc>>, mpmc_ring<int, conq::mpsc>>);
    STATIC_REQUIRE(
        std::is_same_v<container_of<queue<int, conq::spmc>>, mpmc_ring<int, conq::spmc>>);
    STATIC_REQUIRE(
        std::is_same_v<container_of<queue<int, conq::mpmc>>, mpmc_ring<int, conq::mpmc>>);
    STATIC_REQUIRE(std::is_same_v<container_of<queue<int>>, mpmc_ring<int>>);  // default mpmc
    STATIC_REQUIRE(std::is_same_v<container_of<conq::mpmc_queue<int, conq::blocking>>,
                                  mpmc_ring<int, conq::mpmc, conq::blocking>>);
    // The queue is its container (same interface, same behaviour).
    STATIC_REQUIRE(std::is_base_of_v<container_of<queue<int, conq::spsc>>, queue<int, conq::spsc>>);
    STATIC_REQUIRE(std::is_base_of_v<container_of<queue<int>>, queue<int>>);
    // The policies the container sees are the queue's.
    STATIC_REQUIRE(std::is_same_v<conq::spsc_queue<int>::policies::concurrency, conq::spsc>);
    STATIC_REQUIRE(std::is_same_v<conq::mpsc_queue<int>::policies::concurrency, conq::mpsc>);
    STATIC_REQUIRE(std::is_same_v<conq::spmc_queue<int>::policies::concurrency, conq::spmc>);
    STATIC_REQUIRE(std::is_same_v<conq::mpmc_queue<int>::policies::concurrency, conq::mpmc>);
}

TEMPLATE_LIST_TEST_CASE("queue: interface, copy and move rules", "[queue]", all_configs) {
    contract::traits<TestType>();
}

TEMPLATE_LIST_TEST_CASE("queue: FIFO, try_push fails exactly at capacity", "[queue]",
                        all_configs) {
    contract::fill_and_drain<TestType>();
}

TEMPLATE_LIST_TEST_CASE("queue: every call against a model", "[queue]", all_configs) {
    for (std::uint32_t seed = 11; seed <= 13; ++seed) contract::model_check<TestType>(seed, 3000);
}

TEMPLATE_LIST_TEST_CASE("queue: batches", "[queue]", fifo_configs) {
    contract::batches<TestType>();
}

TEMPLATE_LIST_TEST_CASE("queue: move-only elements", "[queue]", all_configs) {
    contract::move_only<TestType>();
}

TEMPLATE_LIST_TEST_CASE("queue: elements without a default constructor", "[queue]", all_configs) {
    contract::non_default_constructible<TestType>();
}

TEMPLATE_LIST_TEST_CASE("queue: a throwing try_emplace changes nothing", "[queue]",
                        all_configs) {
    contract::emplace_throws<TestType>();
}

TEMPLATE_LIST_TEST_CASE("queue: copies lvalues, moves rvalues, failed pushes keep the argument",
                        "[queue]", all_configs) {
    contract::copy_and_move<TestType>();
}

TEMPLATE_LIST_TEST_CASE("queue: owns exactly the items inside", "[queue]", all_configs) {
    contract::lifetime<TestType>();
}

TEMPLATE_LIST_TEST_CASE("queue: close fails pushes and drains pops", "[queue]", all_configs) {
    contract::close_drains<TestType>();
}

TEMPLATE_LIST_TEST_CASE("queue: push_for and pop_for time out", "[queue]", all_configs) {
    contract::timeouts<TestType>();
}

TEMPLATE_LIST_TEST_CASE("queue: reject never waits", "[queue]", reject_configs) {
    contract::reject_never_waits<TestType>();
}

TEMPLATE_LIST_TEST_CASE("queue: drop_oldest keeps the newest items", "[queue]", drop_configs) {
    contract::drop_oldest_keeps_newest<TestType>();
}

TEMPLATE_LIST_TEST_CASE("queue: runtime capacity is rounded up, 1 works, 0 is an error",
                        "[queue]", runtime_configs) {
    contract::runtime_capacities<TestType>();
}

TEMPLATE_LIST_TEST_CASE("queue: a throwing copy or move changes nothing", "[queue]",
                        throwing_configs) {
    contract::strong_guarantee<TestType>();
}

TEMPLATE_LIST_TEST_CASE("queue: no allocation after construction", "[queue][alloc]",
                        all_configs) {
    contract::no_allocation_after_construction<TestType>();
}

TEST_CASE("queue: the README examples", "[queue]") {
    struct tick {
        double price;
        int size;
    };
    conq::queue<tick, conq::spsc, conq::capacity<4096>> ticks;  // inline storage
    REQUIRE(ticks.capacity() == 4096);
    REQUIRE(ticks.try_push(tick{1.5, 10}));
    auto t = ticks.try_pop();
    REQUIRE(t.has_value());
    REQUIRE(t->size == 10);

    conq::queue<std::uint64_t, conq::mpmc, conq::blocking> orders(1000);  // runtime, rounded up
    REQUIRE(orders.capacity() == 1024);
    REQUIRE(orders.push(42));
    REQUIRE(orders.pop() == std::optional<std::uint64_t>(42));
    orders.close();
    REQUIRE_FALSE(orders.pop().has_value());
}

// ------------------------------------------------- priority and delay orders

namespace {

/// Ranks by closeness to 10: the closest is the greatest, so it comes first.
struct closest_to_ten {
    bool operator()(int a, int b) const noexcept { return std::abs(a - 10) > std::abs(b - 10); }
};

template <class Q>
std::vector<int> pop_all(Q& q) {
    std::vector<int> out;
    while (auto v = q.try_pop()) out.push_back(*v);
    return out;
}

}  // namespace

TEST_CASE("queue: priority_order<Cmp> is a priority_queue with that Cmp", "[queue][priority]") {
    using conq::priority_order;
    using by_less = conq::queue<int, conq::mpmc, priority_order<std::less<>>>;
    using by_greater = conq::queue<int, conq::mpmc, priority_order<std::greater<>>>;
    using by_ten = conq::mpsc_queue<int, priority_order<closest_to_ten>, conq::capacity<4>,
                                    conq::reject>;
    STATIC_REQUIRE(std::is_same_v<container_of<by_less>,
                                  conq::priority_queue<int, std::less<>, conq::mpmc,
                                                       priority_order<std::less<>>>>);
    STATIC_REQUIRE(std::is_base_of_v<conq::priority_queue<int, std::less<>, conq::mpmc,
                                                          priority_order<std::less<>>>,
                                     by_less>);
    STATIC_REQUIRE(std::is_base_of_v<container_of<by_ten>, by_ten>);
    STATIC_REQUIRE(std::is_same_v<typename by_greater::value_compare, std::greater<>>);
    STATIC_REQUIRE(std::is_same_v<typename by_ten::value_compare, closest_to_ten>);
    STATIC_REQUIRE(std::is_same_v<container_of<conq::queue<int, priority_order<>>>,
                                  conq::priority_queue<int, std::less<>, priority_order<>>>);
    STATIC_REQUIRE(conq::concurrent_queue<by_less> && conq::concurrent_queue<by_ten>);
    STATIC_REQUIRE_FALSE(std::is_base_of_v<conq::mpmc_ring<int>, by_less>);

    by_less big_first;
    by_greater small_first;
    for (const int v : {5, 1, 9, 3, 7}) {
        REQUIRE(big_first.try_push(v));
        REQUIRE(small_first.push(v));
    }
    CHECK(pop_all(big_first) == std::vector<int>{9, 7, 5, 3, 1});
    CHECK(pop_all(small_first) == std::vector<int>{1, 3, 5, 7, 9});

    by_ten near_ten;  // capacity<4>, reject
    CHECK(near_ten.capacity() == 4);
    for (const int v : {30, 11, 0, 10}) REQUIRE(near_ten.try_push(v));
    CHECK_FALSE(near_ten.try_push(9));
    CHECK_FALSE(near_ten.push(9));  // reject: never waits
    CHECK(near_ten.pop() == std::optional<int>(10));
    CHECK(pop_all(near_ten) == std::vector<int>{11, 0, 30});
}

TEST_CASE("queue: delay_order<Clock> is a delay_queue on that clock", "[queue][delay]") {
    using namespace std::chrono_literals;
    using conq::delay_order;
    using conq::manual_clock;
    using Q = conq::queue<int, conq::mpsc, delay_order<manual_clock>>;
    STATIC_REQUIRE(std::is_same_v<container_of<Q>,
                                  conq::delay_queue<int, conq::mpsc, delay_order<manual_clock>>>);
    STATIC_REQUIRE(
        std::is_base_of_v<conq::delay_queue<int, conq::mpsc, delay_order<manual_clock>>, Q>);
    STATIC_REQUIRE(std::is_same_v<typename Q::clock_type, manual_clock>);
    STATIC_REQUIRE(std::is_same_v<typename conq::mpsc_queue<int, delay_order<>>::clock_type,
                                  conq::steady_clock>);
    STATIC_REQUIRE(std::is_same_v<
                   container_of<conq::mpmc_queue<int, delay_order<>, conq::timer_wheel<>>>,
                   conq::delay_queue<int, conq::mpmc, delay_order<>, conq::timer_wheel<>>>);
    STATIC_REQUIRE(conq::concurrent_queue<Q>);
    STATIC_REQUIRE_FALSE(std::is_base_of_v<conq::mpmc_ring<int, conq::mpsc>, Q>);

    SECTION("on a clock of its own") {
        Q q;
        REQUIRE(q.schedule_after(2, 2s));
        REQUIRE(q.schedule_after(1, 1s));
        CHECK(q.capacity() == Q::unbounded);
        CHECK_FALSE(q.try_pop().has_value());
        q.clock().advance(1s);
        CHECK(q.try_pop() == std::optional<int>(1));
        CHECK_FALSE(q.try_pop().has_value());
        q.clock().advance(1s);
        CHECK(q.pop() == std::optional<int>(2));
    }
    SECTION("on a clock given to the constructor, bounded") {
        manual_clock clock;
        conq::mpsc_queue<int, delay_order<manual_clock>, conq::capacity<2>> q(clock);
        CHECK(&q.clock() == &clock);
        CHECK(q.capacity() == 2);
        const auto h = q.schedule_after(1, 5ms);
        REQUIRE(h);
        REQUIRE(q.try_push(0));  // due now
        CHECK_FALSE(q.schedule_after(2, 1ms));  // full
        CHECK(q.try_pop() == std::optional<int>(0));
        CHECK(q.cancel(h));
        clock.advance(5ms);
        CHECK_FALSE(q.try_pop().has_value());
    }
}

TEST_CASE("queue: fifo is still a ring next to the ordered containers", "[queue]") {
    STATIC_REQUIRE(
        std::is_base_of_v<conq::mpmc_ring<int, conq::mpmc>, conq::queue<int, conq::mpmc>>);
    STATIC_REQUIRE(std::is_same_v<container_of<conq::queue<int, conq::mpmc, conq::fifo>>,
                                  conq::mpmc_ring<int, conq::mpmc, conq::fifo>>);
    STATIC_REQUIRE(std::is_base_of_v<conq::spsc_ring<int, conq::spsc>, conq::spsc_queue<int>>);
    conq::queue<int, conq::mpmc> q(4);
    CHECK(q.capacity() == 4);
    REQUIRE(q.try_push(2));
    REQUIRE(q.try_push(1));
    CHECK(q.try_pop() == std::optional<int>(2));  // first in, first out
}

TEST_CASE("queue: conq/conq.hpp brings in every public header", "[queue]") {
    // This file includes only the umbrella header from include/.
    STATIC_REQUIRE(conq::concurrent_queue<conq::spsc_ring<int, conq::capacity<4>>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::mpmc_ring<int, conq::capacity<4>>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::priority_queue<int>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::delay_queue<int, conq::manual_clock>>);
    STATIC_REQUIRE(conq::concurrent_queue<conq::queue<int>>);
    STATIC_REQUIRE(conq::version_major == CONQ_VERSION_MAJOR);
    STATIC_REQUIRE(CONQ_VERSION == conq::version_major * 10000 + conq::version_minor * 100 +
                                       conq::version_patch);
}

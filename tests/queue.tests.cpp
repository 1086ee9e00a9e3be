// Unit tests of conq/queue.hpp: conq::queue picks the right container for
// each policy list, and every alias keeps the single-threaded contract.
#include <conq/queue.hpp>

#include <cstdint>
#include <tuple>
#include <type_traits>

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

// Unit tests of conq/spsc_ring.hpp: the single-threaded contract in every
// configuration spsc_ring accepts (wait policy x inline/runtime capacity x
// block/reject/drop_oldest), exceptions, lifetimes and allocation.
#include <conq/spsc_ring.hpp>

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

using fifo_configs = std::tuple<                                                //
    config<conq::spsc_ring>,                                                    // runtime, backoff
    config<conq::spsc_ring, conq::spin, conq::capacity<8>>,                     // inline
    config<conq::spsc_ring, conq::yield, conq::spsc>,                           // spsc named
    config<conq::spsc_ring, conq::blocking, conq::capacity<5>>,                 // rounded to 8
    config<conq::spsc_ring, conq::reject>,                                      //
    config<conq::spsc_ring, conq::capacity<8>, conq::reject, conq::blocking>>;

using drop_configs = std::tuple<                                                //
    config<conq::spsc_ring, conq::drop_oldest>,                                 //
    config<conq::spsc_ring, conq::drop_oldest, conq::capacity<8>, conq::blocking>>;

using all_configs = decltype(std::tuple_cat(fifo_configs{}, drop_configs{}));

// No drop_oldest: the configurations that accept a T whose copy and move
// may throw.
using throwing_configs = fifo_configs;

using runtime_configs = std::tuple<                   //
    config<conq::spsc_ring>,                          //
    config<conq::spsc_ring, conq::blocking>,          //
    config<conq::spsc_ring, conq::reject, conq::yield>,  //
    config<conq::spsc_ring, conq::drop_oldest>>;

using reject_configs = std::tuple<          //
    config<conq::spsc_ring, conq::reject>,  //
    config<conq::spsc_ring, conq::capacity<8>, conq::reject, conq::blocking>>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("spsc_ring: interface, copy and move rules", "[spsc_ring]", all_configs) {
    contract::traits<TestType>();
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: FIFO, try_push fails exactly at capacity", "[spsc_ring]",
                        all_configs) {
    contract::fill_and_drain<TestType>();
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: every call against a model", "[spsc_ring]", all_configs) {
    for (std::uint32_t seed = 1; seed <= 4; ++seed) contract::model_check<TestType>(seed, 3000);
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: batches", "[spsc_ring]", fifo_configs) {
    contract::batches<TestType>();
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: move-only elements", "[spsc_ring]", all_configs) {
    contract::move_only<TestType>();
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: elements without a default constructor", "[spsc_ring]",
                        all_configs) {
    contract::non_default_constructible<TestType>();
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: a throwing try_emplace changes nothing", "[spsc_ring]",
                        all_configs) {
    contract::emplace_throws<TestType>();
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: copies lvalues, moves rvalues, failed pushes keep the argument",
                        "[spsc_ring]", all_configs) {
    contract::copy_and_move<TestType>();
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: owns exactly the items inside", "[spsc_ring]", all_configs) {
    contract::lifetime<TestType>();
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: close fails pushes and drains pops", "[spsc_ring]",
                        all_configs) {
    contract::close_drains<TestType>();
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: push_for and pop_for time out", "[spsc_ring]", all_configs) {
    contract::timeouts<TestType>();
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: reject never waits", "[spsc_ring]", reject_configs) {
    contract::reject_never_waits<TestType>();
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: drop_oldest keeps the newest items", "[spsc_ring]",
                        drop_configs) {
    contract::drop_oldest_keeps_newest<TestType>();
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: runtime capacity is rounded up, 0 is an error", "[spsc_ring]",
                        runtime_configs) {
    contract::runtime_capacities<TestType>();
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: a throwing copy or move changes nothing", "[spsc_ring]",
                        throwing_configs) {
    contract::strong_guarantee<TestType>();
}

TEMPLATE_LIST_TEST_CASE("spsc_ring: no allocation after construction", "[spsc_ring][alloc]",
                        all_configs) {
    contract::no_allocation_after_construction<TestType>();
}

TEST_CASE("spsc_ring: capacity<N> is rounded up and stored inline", "[spsc_ring]") {
    conq::spsc_ring<int, conq::capacity<1>, conq::drop_oldest> one_drop;
    REQUIRE(one_drop.try_push(1));
    REQUIRE(one_drop.try_push(2));
    REQUIRE(one_drop.dropped() == 1);
    REQUIRE(one_drop.try_pop() == std::optional<int>(2));

    conq::spsc_ring<int, conq::capacity<1>> one;
    REQUIRE(one.capacity() == 1);
    REQUIRE(one.try_push(1));
    REQUIRE_FALSE(one.try_push(2));
    REQUIRE(one.try_pop() == std::optional<int>(1));
    REQUIRE(one.try_push(3));
    REQUIRE(one.try_pop() == std::optional<int>(3));
    REQUIRE_FALSE(one.try_pop().has_value());

    conq::spsc_ring<int, conq::capacity<5>> five;
    REQUIRE(five.capacity() == 8);
    conq::spsc_ring<int, conq::capacity<1024>> big;
    REQUIRE(big.capacity() == 1024);
    STATIC_REQUIRE(sizeof(conq::spsc_ring<int, conq::capacity<1024>>) >= 1024 * sizeof(int));
}

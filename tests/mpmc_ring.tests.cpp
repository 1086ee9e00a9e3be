// Unit tests of conq/mpmc_ring.hpp: the single-threaded contract in every
// configuration (spsc/mpsc/spmc/mpmc x wait policy x inline/runtime
// capacity x block/reject/drop_oldest), exceptions where T may throw (one
// producer and one consumer), lifetimes and allocation.
#include <conq/mpmc_ring.hpp>

#include <cstdint>
#include <optional>
#include <tuple>

#include "conq_catch.hpp"
#include "no_allocation.hpp"
#include "ring_configs.hpp"
#include "ring_contract.hpp"

namespace {

using conq_test::config;
namespace contract = conq_test::contract;

// block and reject. (mpmc_ring<T, spsc> is the same code as spsc_ring,
// which spsc_ring.tests.cpp covers in full.)
using fifo_configs = std::tuple<                                                //
    config<conq::mpmc_ring>,                                                    // mpmc, backoff
    config<conq::mpmc_ring, conq::mpmc, conq::capacity<8>, conq::spin>,         //
    config<conq::mpmc_ring, conq::blocking, conq::mpmc>,                        //
    config<conq::mpmc_ring, conq::mpmc, conq::yield, conq::reject>,             //
    config<conq::mpmc_ring, conq::mpsc>,                                        //
    config<conq::mpmc_ring, conq::mpsc, conq::capacity<8>, conq::blocking>,     //
    config<conq::mpmc_ring, conq::spmc, conq::spin>,                            //
    config<conq::mpmc_ring, conq::spmc, conq::capacity<5>, conq::yield, conq::reject>,  //
    config<conq::mpmc_ring, conq::spsc, conq::blocking>>;

using drop_configs = std::tuple<                                                //
    config<conq::mpmc_ring, conq::drop_oldest>,                                 //
    config<conq::mpmc_ring, conq::mpsc, conq::drop_oldest, conq::capacity<8>, conq::blocking>,  //
    config<conq::mpmc_ring, conq::spmc, conq::drop_oldest, conq::spin>>;

using all_configs = decltype(std::tuple_cat(fifo_configs{}, drop_configs{}));

using runtime_configs = std::tuple<                          //
    config<conq::mpmc_ring>,                                 //
    config<conq::mpmc_ring, conq::mpsc, conq::blocking>,     //
    config<conq::mpmc_ring, conq::spmc, conq::reject>,       //
    config<conq::mpmc_ring, conq::spsc, conq::spin>,         //
    config<conq::mpmc_ring, conq::drop_oldest>,              //
    config<conq::mpmc_ring, conq::spsc, conq::drop_oldest>>;

using reject_configs = std::tuple<                                         //
    config<conq::mpmc_ring, conq::mpmc, conq::yield, conq::reject>,        //
    config<conq::mpmc_ring, conq::reject, conq::mpsc, conq::spin>,         //
    config<conq::mpmc_ring, conq::spmc, conq::capacity<5>, conq::reject>>;

// One producer, one consumer, no drop_oldest: the only configurations that
// accept a T whose copy and move may throw.
using throwing_configs = std::tuple<                                         //
    config<conq::mpmc_ring, conq::spsc>,                                     //
    config<conq::mpmc_ring, conq::spsc, conq::capacity<8>, conq::blocking>>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("mpmc_ring: interface, copy and move rules", "[mpmc_ring]", all_configs) {
    contract::traits<TestType>();
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: FIFO, try_push fails exactly at capacity", "[mpmc_ring]",
                        all_configs) {
    contract::fill_and_drain<TestType>();
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: every call against a model", "[mpmc_ring]", all_configs) {
    for (std::uint32_t seed = 1; seed <= 4; ++seed) contract::model_check<TestType>(seed, 3000);
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: batches", "[mpmc_ring]", fifo_configs) {
    contract::batches<TestType>();
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: move-only elements", "[mpmc_ring]", all_configs) {
    contract::move_only<TestType>();
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: elements without a default constructor", "[mpmc_ring]",
                        all_configs) {
    contract::non_default_constructible<TestType>();
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: a throwing try_emplace changes nothing", "[mpmc_ring]",
                        all_configs) {
    contract::emplace_throws<TestType>();
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: copies lvalues, moves rvalues, failed pushes keep the argument",
                        "[mpmc_ring]", all_configs) {
    contract::copy_and_move<TestType>();
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: owns exactly the items inside", "[mpmc_ring]", all_configs) {
    contract::lifetime<TestType>();
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: close fails pushes and drains pops", "[mpmc_ring]",
                        all_configs) {
    contract::close_drains<TestType>();
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: push_for and pop_for time out", "[mpmc_ring]", all_configs) {
    contract::timeouts<TestType>();
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: reject never waits", "[mpmc_ring]", reject_configs) {
    contract::reject_never_waits<TestType>();
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: drop_oldest keeps the newest items", "[mpmc_ring]",
                        drop_configs) {
    contract::drop_oldest_keeps_newest<TestType>();
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: runtime capacity is rounded up, 1 works, 0 is an error",
                        "[mpmc_ring]", runtime_configs) {
    contract::runtime_capacities<TestType>();
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: a throwing copy or move changes nothing", "[mpmc_ring]",
                        throwing_configs) {
    contract::strong_guarantee<TestType>();
}

TEMPLATE_LIST_TEST_CASE("mpmc_ring: no allocation after construction", "[mpmc_ring][alloc]",
                        all_configs) {
    contract::no_allocation_after_construction<TestType>();
}

TEST_CASE("mpmc_ring: capacity<N> is rounded up and stored inline", "[mpmc_ring]") {
    conq::mpmc_ring<int, conq::capacity<1>> one;
    REQUIRE(one.capacity() == 1);
    for (int lap = 0; lap < 4; ++lap) {
        REQUIRE(one.try_push(lap));
        REQUIRE_FALSE(one.try_push(100));
        REQUIRE(one.size_approx() == 1);
        REQUIRE(one.try_pop() == std::optional<int>(lap));
        REQUIRE_FALSE(one.try_pop().has_value());
    }
    conq::mpmc_ring<int, conq::capacity<1>, conq::drop_oldest, conq::spsc> one_drop;
    REQUIRE(one_drop.try_push(1));
    REQUIRE(one_drop.try_push(2));
    REQUIRE(one_drop.dropped() == 1);
    REQUIRE(one_drop.try_pop() == std::optional<int>(2));

    conq::mpmc_ring<int, conq::capacity<5>> five;
    REQUIRE(five.capacity() == 8);
    conq::mpmc_ring<int, conq::capacity<1024>, conq::spsc> big;
    REQUIRE(big.capacity() == 1024);
    STATIC_REQUIRE(sizeof(conq::mpmc_ring<int, conq::capacity<1024>>) >= 1024 * sizeof(int));
}

TEST_CASE("mpmc_ring: large rings keep FIFO across the slot spreading", "[mpmc_ring]") {
    // Consecutive tickets go to different cache lines; the order must not
    // notice. Several sizes of element and ring, several laps.
    auto check = [](auto& r, auto make) {
        const std::size_t cap = r.capacity();
        for (std::size_t lap = 0; lap < 3; ++lap) {
            for (std::size_t i = 0; i < cap; ++i) REQUIRE(r.try_push(make(lap * cap + i)));
            REQUIRE_FALSE(r.try_push(make(0)));
            for (std::size_t i = 0; i < cap; ++i) {
                auto v = r.try_pop();
                REQUIRE(v.has_value());
                REQUIRE(*v == make(lap * cap + i));
            }
            REQUIRE_FALSE(r.try_pop().has_value());
        }
    };
    conq::mpmc_ring<std::uint8_t> bytes(256);
    check(bytes, [](std::size_t i) { return static_cast<std::uint8_t>(i * 7); });
    conq::mpmc_ring<std::uint64_t, conq::spsc> words(512);
    check(words, [](std::size_t i) { return std::uint64_t{i}; });
    conq::mpmc_ring<std::uint32_t, conq::mpsc, conq::capacity<64>> inl;
    check(inl, [](std::size_t i) { return static_cast<std::uint32_t>(i); });
}

// tests/support/no_allocation.hpp
//
// The check that a ring allocates nothing after construction. It replaces
// the global operator new (alloc_counter.hpp), so include it in exactly one
// translation unit of an executable.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "alloc_counter.hpp"
#include "conq_catch.hpp"
#include "ring_configs.hpp"

namespace conq_test::contract {

/// Pushes, pops, batches, time-outs and close on a ring of u64 built with a
/// runtime capacity (or capacity<N>): not one allocation after the
/// constructor. No Catch assertion runs inside the measured section (Catch
/// itself allocates); the results are checked after it.
template <class C>
void no_allocation_after_construction() {
    using namespace std::chrono_literals;
    using u64 = std::uint64_t;
    auto r = make_ring<ring_t<C, u64>>(8);
    const std::size_t cap = r->capacity();
    std::array<u64, 16> out{};
    const std::array<u64, 4> in{1, 2, 3, 4};
    bool ok = true;
    std::size_t pushed = 0, popped = 0;

    const long before = allocations();
    for (int lap = 0; lap < 50; ++lap) {
        const u64 lv = 7;
        ok = r->try_push(lv) && ok;
        ok = r->try_push(u64{1}) && ok;
        ok = r->try_emplace(u64{2}) && ok;
        ok = r->push(u64{3}) && ok;
        ok = r->push_for(u64{4}, 1ms) && ok;
        pushed += 5 + r->try_push_n(in.begin(), in.begin() + 3);
        u64 x = 0;
        ok = r->try_pop(x) && ok;
        ok = r->try_pop().has_value() && ok;
        ok = r->pop().has_value() && ok;
        ok = r->pop_for(1ms).has_value() && ok;
        popped += 4 + r->try_pop_n(out.data(), out.size());
        ok = r->size_approx() == 0 && ok;
    }
    // Time-outs: empty, then full (drop_oldest never is).
    const bool timed_pop = r->pop_for(2ms).has_value();
    std::size_t filled = 0;
    while (filled < cap && r->try_push(u64{5})) ++filled;
    bool timed_push = false;
    if constexpr (!C::drops) timed_push = r->push_for(u64{6}, 2ms);
    r->close();
    const bool closed_push = r->push(u64{8}) || r->try_push(u64{9});
    std::size_t drained = 0;
    while (r->pop().has_value()) ++drained;
    const bool popped_after = r->pop_for(1h).has_value();
    const long after = allocations();

    CONQ_CHECK_EQ(after - before, 0);
    CONQ_CHECK(ok);
    CONQ_CHECK_EQ(pushed, popped);
    CONQ_CHECK_FALSE(timed_pop);
    CONQ_CHECK_EQ(filled, cap);
    CONQ_CHECK_FALSE(timed_push);
    CONQ_CHECK_FALSE(closed_push);
    CONQ_CHECK_EQ(drained, cap);
    CONQ_CHECK_FALSE(popped_after);
}

}  // namespace conq_test::contract

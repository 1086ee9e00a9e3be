// expect: move constructor must be noexcept
//
// spsc_ring with drop_oldest: the producer pops the oldest item itself, so
// the consumer side is shared and T's move constructor must not throw (as
// with several consumers).
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <conq/spsc_ring.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
#define CONQ_CASE_NOEXCEPT true
#else
#define CONQ_CASE_NOEXCEPT false
#endif

struct item {
    int value = 0;
    item() = default;
    explicit item(int v) noexcept : value(v) {}
    item(item&& other) noexcept(CONQ_CASE_NOEXCEPT) : value(other.value) {}
    item& operator=(item&& other) noexcept(CONQ_CASE_NOEXCEPT) {
        value = other.value;
        return *this;
    }
};

using ring_type = conq::spsc_ring<item, conq::drop_oldest>;

bool compile_fail_case() {
    ring_type r(8);
    return r.try_emplace(1) && r.try_pop().has_value();
}

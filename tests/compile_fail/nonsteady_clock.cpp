// expect: Clock must be steady
//
// delay_order with a clock that may run backwards (std::chrono::system_clock).
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <chrono>

#include <conq/policy.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using order_type = conq::delay_order<conq::steady_clock>;
#else
using order_type = conq::delay_order<std::chrono::system_clock>;
#endif

bool compile_fail_case() {
    [[maybe_unused]] order_type order{};
    order_type::clock clock{};
    return clock.now().time_since_epoch().count() >= 0;
}

// expect: conq::spsc_ring: only conq::spsc is allowed here
//
// spsc_ring given a multi-producer, multi-consumer policy.
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <conq/spsc_ring.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using ring_type = conq::spsc_ring<int, conq::spsc>;
#else
using ring_type = conq::spsc_ring<int, conq::mpmc>;
#endif

bool compile_fail_case() {
    ring_type r(8);
    return r.try_push(1) && r.try_pop().has_value();
}

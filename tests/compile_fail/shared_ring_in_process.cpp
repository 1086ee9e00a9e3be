// expect: conq::shared_ring: the ring type needs the conq::shared_memory policy
//
// A ring without shared_memory given to shared_ring.
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with the
// policy added must compile (tests/CMakeLists.txt checks both).
#include <conq/shared_ring.hpp>
#include <conq/spsc_ring.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using ring_type = conq::spsc_ring<int, conq::shared_memory>;
#else
using ring_type = conq::spsc_ring<int>;
#endif

bool compile_fail_case() {
    auto q = conq::shared_ring<ring_type>::open("/conq-compile-fail", conq::shared_role::both);
    return q.try_push(1);
}

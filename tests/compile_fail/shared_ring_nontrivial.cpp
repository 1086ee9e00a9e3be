// expect: a ring in shared memory holds only trivially copyable T
//
// A std::string in a ring placed in shared memory (its characters would
// live on one process's heap).
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// element type must compile (tests/CMakeLists.txt checks both).
#include <string>

#include <conq/shared_ring.hpp>
#include <conq/spsc_ring.hpp>

struct plain {
    char text[32];
};

#ifdef CONQ_COMPILE_FAIL_CONTROL
using ring_type = conq::spsc_ring<plain, conq::shared_memory>;
#else
using ring_type = conq::spsc_ring<std::string, conq::shared_memory>;
#endif

bool compile_fail_case() {
    auto q = conq::shared_ring<ring_type>::create("/conq-compile-fail", 8, conq::shared_role::both);
    return q->capacity() == 8;
}

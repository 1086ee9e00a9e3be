// expect: has no capacity<N> policy, so its capacity is given to the constructor
//
// A default-constructed queue without capacity<N>: nothing sizes the ring.
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <conq/queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::mpmc_queue<int, conq::capacity<8>>;
#else
using queue_type = conq::mpmc_queue<int>;
#endif

bool compile_fail_case() {
    queue_type q;
    return q.try_push(1) && q.try_pop().has_value();
}

// expect: capacity<N>: N must be greater than zero
//
// capacity<0> is rejected with a sentence, not a division by zero.
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <conq/queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::queue<int, conq::spsc, conq::capacity<1>>;
#else
using queue_type = conq::queue<int, conq::spsc, conq::capacity<0>>;
#endif

bool compile_fail_case() {
    queue_type q;
    return q.try_push(1) && q.try_pop().has_value();
}

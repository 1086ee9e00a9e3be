// expect: more than one capacity<N> was given
//
// Two capacity<N> policies in one list.
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <conq/queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::queue<int, conq::spsc, conq::capacity<8>>;
#else
using queue_type = conq::queue<int, conq::spsc, conq::capacity<8>, conq::capacity<16>>;
#endif

bool compile_fail_case() {
    queue_type q;
    return q.try_push(1) && q.try_pop().has_value();
}

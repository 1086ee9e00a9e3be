// expect: a delay queue sleeps until the next due time; spin and yield do not apply
//
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <conq/queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::queue<int, conq::mpsc, conq::delay_order<>, conq::blocking>;
#else
using queue_type = conq::queue<int, conq::mpsc, conq::delay_order<>, conq::spin>;
#endif

bool compile_fail_case() {
    queue_type q;
    return q.try_push(1) && q.try_pop().has_value();
}

// expect: drop_oldest has no meaning for a delay order
//
// A delay queue cannot "drop the oldest" item to make room: the oldest is
// not the one due last. Built with CONQ_COMPILE_FAIL_CONTROL defined, the
// same code with a valid policy list must compile (tests/CMakeLists.txt
// checks both).
#include <conq/queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::queue<int, conq::mpsc, conq::delay_order<>, conq::reject>;
#else
using queue_type = conq::queue<int, conq::mpsc, conq::delay_order<>, conq::drop_oldest>;
#endif

bool compile_fail_case() {
    queue_type q(8);
    return q.try_push(1) && q.try_pop().has_value();
}

// expect: conq::queue: priority_order and delay_order are not yet available
//
// priority_order is named in policy.hpp but no container serves it yet.
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <conq/queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::queue<int, conq::fifo>;
#else
using queue_type = conq::queue<int, conq::priority_order<>>;
#endif

bool compile_fail_case() {
    queue_type q(8);
    return q.try_push(1) && q.try_pop().has_value();
}

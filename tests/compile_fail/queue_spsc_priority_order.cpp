// expect: spsc ring storage cannot keep a priority order
//
// conq::queue with priority_order selects conq::priority_queue, which has no
// single-producer single-consumer form. Built with CONQ_COMPILE_FAIL_CONTROL
// defined, the same code with a valid policy list must compile
// (tests/CMakeLists.txt checks both).
#include <conq/queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::queue<int, conq::mpsc, conq::priority_order<>>;
#else
using queue_type = conq::queue<int, conq::spsc, conq::priority_order<>>;
#endif

bool compile_fail_case() {
    queue_type q;
    return q.try_push(1) && q.try_pop().has_value();
}

// expect: a clock policy only applies to delay_order
//
// A clock policy without delay_order (rings time their waits with std::chrono).
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <conq/queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::queue<int, conq::mpsc>;
#else
using queue_type = conq::queue<int, conq::mpsc, conq::manual_clock>;
#endif

bool compile_fail_case() {
    queue_type q(8);
    return q.try_push(1) && q.try_pop().has_value();
}

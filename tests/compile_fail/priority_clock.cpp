// expect: conq::priority_queue: a clock policy only applies to delay_order
//
// A clock policy on a priority_queue (it orders by Compare, not by time).
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <functional>

#include <conq/priority_queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::priority_queue<int, std::less<>, conq::blocking>;
#else
using queue_type = conq::priority_queue<int, std::less<>, conq::blocking, conq::manual_clock>;
#endif

bool compile_fail_case() {
    queue_type q;
    return q.try_push(1) && q.try_pop().has_value();
}

// expect: strict, relaxed and stable apply to priority queues; a delay queue is always exact and stable
//
// A delay queue has no priority mode and no tie policy: it always delivers
// the earliest due item, and equal due times in schedule order. Built with
// CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid policy list
// must compile (tests/CMakeLists.txt checks both).
#include <conq/delay_queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::delay_queue<int, conq::manual_clock, conq::timer_wheel<>>;
using stable_type = conq::delay_queue<int, conq::manual_clock, conq::timer_heap>;
#else
using queue_type = conq::delay_queue<int, conq::manual_clock, conq::strict>;
using stable_type = conq::delay_queue<int, conq::manual_clock, conq::stable>;
#endif

bool compile_fail_case() {
    queue_type q;
    stable_type s;
    return q.try_push(1) && q.try_pop().has_value() && s.try_push(2);
}

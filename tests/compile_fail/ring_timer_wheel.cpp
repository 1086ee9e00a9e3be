// expect: timer_heap and timer_wheel apply to priority and delay queues, not to rings
//
// Timer storage is a delay queue's policy; a FIFO ring has no timers. Built
// with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid policy
// list must compile (tests/CMakeLists.txt checks both).
#include <conq/mpmc_ring.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::mpmc_ring<int, conq::mpsc>;
#else
using queue_type = conq::mpmc_ring<int, conq::mpsc, conq::timer_wheel<>>;
#endif

bool compile_fail_case() {
    queue_type q(8);
    return q.try_push(1) && q.try_pop().has_value();
}

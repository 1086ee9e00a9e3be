// expect: more than one wait policy was given
//
// Two wait policies in one list.
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <conq/queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::queue<int, conq::mpmc, conq::blocking>;
#else
using queue_type = conq::queue<int, conq::mpmc, conq::spin, conq::blocking>;
#endif

bool compile_fail_case() {
    queue_type q(8);
    return q.try_push(1) && q.try_pop().has_value();
}

// expect: is not a conqueue policy
//
// A type that is not one of the policy tags (here a user struct) after T.
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <conq/queue.hpp>

struct my_policy {};

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::queue<int, conq::mpmc>;
#else
using queue_type = conq::queue<int, conq::mpmc, my_policy>;
#endif

bool compile_fail_case() {
    queue_type q(8);
    return q.try_push(1) && q.try_pop().has_value();
}

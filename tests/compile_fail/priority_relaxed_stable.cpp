// expect: conq::priority_queue: relaxed<...> cannot keep equal priorities in push order
//
// stable with relaxed<...> (a MultiQueue has no global push order to keep).
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <functional>

#include <conq/priority_queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::priority_queue<int, std::less<>, conq::strict, conq::stable>;
#else
using queue_type = conq::priority_queue<int, std::less<>, conq::relaxed<>, conq::stable>;
#endif

bool compile_fail_case() {
    queue_type q;
    return q.try_push(1) && q.try_pop().has_value();
}

// expect: conq::priority_queue: drop_oldest has no meaning for a priority order
//
// drop_oldest on a priority_queue (which element is "oldest" is not what it orders by).
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <functional>

#include <conq/priority_queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::priority_queue<int, std::less<>, conq::capacity<8>, conq::reject>;
#else
using queue_type = conq::priority_queue<int, std::less<>, conq::capacity<8>, conq::drop_oldest>;
#endif

bool compile_fail_case() {
    queue_type q;
    return q.try_push(1) && q.try_pop().has_value();
}

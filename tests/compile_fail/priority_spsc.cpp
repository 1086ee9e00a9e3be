// expect: conq::priority_queue: spsc ring storage cannot keep a priority order
//
// spsc on a priority_queue (there is no single-producer single-consumer variant).
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <functional>

#include <conq/priority_queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::priority_queue<int, std::less<>, conq::mpsc>;
#else
using queue_type = conq::priority_queue<int, std::less<>, conq::spsc>;
#endif

bool compile_fail_case() {
    queue_type q;
    return q.try_push(1) && q.try_pop().has_value();
}

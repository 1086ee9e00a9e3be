// expect: conq::priority_queue: shared_memory applies to rings only
//
// shared_memory on a priority_queue (its heap grows on one process's heap).
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code without it
// must compile (tests/CMakeLists.txt checks both).
#include <functional>

#include <conq/priority_queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::priority_queue<int, std::less<>, conq::blocking>;
#else
using queue_type = conq::priority_queue<int, std::less<>, conq::blocking, conq::shared_memory>;
#endif

bool compile_fail_case() {
    queue_type q;
    return q.try_push(1) && q.try_pop().has_value();
}

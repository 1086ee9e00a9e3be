// expect: conq::priority_queue: Compare must be callable as bool
//
// A Compare that cannot compare two T (here: it takes strings, T is int*).
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <functional>
#include <string>

#include <conq/priority_queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::priority_queue<int*, std::less<int*>>;
#else
using queue_type = conq::priority_queue<int*, std::less<std::string>>;
#endif

bool compile_fail_case() {
    queue_type q;
    int x = 1;
    return q.try_push(&x) && q.try_pop().has_value();
}

// expect: move constructor must be noexcept
//
// mpmc_queue of a type whose move constructor may throw: a thread that
// claimed a slot could not give it back.
// Built with CONQ_COMPILE_FAIL_CONTROL defined, the same code with a valid
// policy list must compile (tests/CMakeLists.txt checks both).
#include <conq/queue.hpp>

#ifdef CONQ_COMPILE_FAIL_CONTROL
#define CONQ_CASE_NOEXCEPT true
#else
#define CONQ_CASE_NOEXCEPT false
#endif

struct item {
    int value = 0;
    item() = default;
    explicit item(int v) noexcept : value(v) {}
    item(item&& other) noexcept(CONQ_CASE_NOEXCEPT) : value(other.value) {}
    item& operator=(item&& other) noexcept(CONQ_CASE_NOEXCEPT) {
        value = other.value;
        return *this;
    }
};

using queue_type = conq::mpmc_queue<item>;

bool compile_fail_case() {
    queue_type q(8);
    return q.try_emplace(1) && q.try_pop().has_value();
}

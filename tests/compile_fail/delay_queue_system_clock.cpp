// expect: the clock must be steady
//
// A wall clock can jump (beanstalkd's gettimeofday deadlines release or hold
// jobs wrongly after a clock step), so a delay queue refuses one. Built with
// CONQ_COMPILE_FAIL_CONTROL defined, the same code with a steady clock must
// compile (tests/CMakeLists.txt checks both).
#include <chrono>
#include <conq/delay_queue.hpp>

// An object clock over the system clock: it has now(), but it is not steady.
struct wall_clock {
    using conq_policy_family = conq::detail::clock_family;
    using duration = std::chrono::system_clock::duration;
    using time_point = std::chrono::system_clock::time_point;
    static constexpr bool is_steady = false;
    time_point now() const noexcept { return std::chrono::system_clock::now(); }
};

#ifdef CONQ_COMPILE_FAIL_CONTROL
using queue_type = conq::delay_queue<int, conq::steady_clock>;
#else
using queue_type = conq::delay_queue<int, wall_clock>;
#endif

bool compile_fail_case() {
    queue_type q;
    return q.try_push(1) && q.try_pop().has_value();
}

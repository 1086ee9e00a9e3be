// tests/support/stress_config.hpp
//
// Sizes of the stress tests: small by default (the whole suite runs in
// seconds on two cores, under ThreadSanitizer too), multiplied by the
// environment variable CONQ_STRESS_SCALE (a positive integer, default 1).
#pragma once

#include <cstddef>
#include <cstdlib>

#if defined(__SANITIZE_THREAD__)
#define CONQ_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CONQ_TEST_TSAN 1
#endif
#endif

namespace conq_test {

/// Whether this build runs under ThreadSanitizer.
#if defined(CONQ_TEST_TSAN)
inline constexpr bool thread_sanitizer = true;
#else
inline constexpr bool thread_sanitizer = false;
#endif

/// CONQ_STRESS_SCALE, or 1 when it is unset, empty or not a positive integer.
[[nodiscard]] inline std::size_t stress_scale() noexcept {
    static const std::size_t scale = [] {
        const char* text = std::getenv("CONQ_STRESS_SCALE");
        if (text == nullptr || *text == '\0') return std::size_t{1};
        char* end = nullptr;
        const unsigned long long v = std::strtoull(text, &end, 10);
        if (*end != '\0' || v == 0 || v > 1'000'000) return std::size_t{1};
        return static_cast<std::size_t>(v);
    }();
    return scale;
}

/// `base` items scaled by CONQ_STRESS_SCALE.
[[nodiscard]] inline std::size_t scaled(std::size_t base) noexcept { return base * stress_scale(); }

/// The share of `n` that a busy-waiting (spin) configuration runs: a 16th,
/// a 128th under ThreadSanitizer, but at least `floor` (or `n` if smaller).
/// A thread that spins while the thread it waits for is not running burns
/// its whole time slice, so on a loaded two-core machine every hand-over
/// costs milliseconds (seconds' worth under ThreadSanitizer, whose atomics
/// are far slower). The ring code that spin runs is the same as for yield
/// and backoff, which get the full sizes.
[[nodiscard]] inline std::size_t for_busy_wait(std::size_t n, bool busy_waits,
                                               std::size_t floor = 32) noexcept {
    if (!busy_waits) return n;
    const std::size_t share = n / (thread_sanitizer ? 128 : 16);
    if (share >= floor) return share;
    return n < floor ? n : floor;
}

}  // namespace conq_test

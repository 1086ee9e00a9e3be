// tests/support/conq_catch.hpp
//
// Catch2 as conqueue's tests use it: std::optional values print in failure
// messages, and a set of light assertion macros for check functions that
// are instantiated for many configurations.
//
// Why light macros: every Catch assertion expands to an assertion handler
// inside a try block. A contract check instantiated for thirty policy
// bundles holds thousands of them, and under AddressSanitizer +
// UndefinedBehaviorSanitizer with -g that tripled the compile time of a test
// file (3 minutes instead of 1 on the two-core reference machine). The
// light macros compile to a comparison and a call on failure only; the
// failure is still reported through Catch with file, line, expression and,
// for the _EQ forms, both values. Successes are not counted as assertions.
//
//   CONQ_REQUIRE(expr)         CONQ_REQUIRE_FALSE(expr)   CONQ_REQUIRE_EQ(a, b)
//   CONQ_CHECK(expr)           CONQ_CHECK_FALSE(expr)     CONQ_CHECK_EQ(a, b)
//
// REQUIRE forms end the test case on failure, CHECK forms carry on.
// Include this instead of <catch2/catch.hpp>.
#pragma once

#ifndef CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#endif
#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>
#include <string>
#include <type_traits>

namespace conq_test::detail {

template <class T>
struct is_atomic : std::false_type {};
template <class T>
struct is_atomic<std::atomic<T>> : std::true_type {};

/// A value as Catch would print it (atomics by their current value).
template <class T>
std::string describe(const T& v) {
    if constexpr (is_atomic<T>::value) {
        return Catch::Detail::stringify(v.load());
    } else {
        return Catch::Detail::stringify(v);
    }
}

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
/// a == b, without sign-compare warnings (as Catch's own comparisons).
template <class A, class B>
bool equal(const A& a, const B& b) {
    return a == b;
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/// Reports a failed light assertion through Catch; ends the test case
/// (through Catch's exception) when `stop` is true.
[[gnu::cold, gnu::noinline]] inline void light_failure(const char* macro, const char* expr,
                                                       const std::string& values,
                                                       const char* file, int line, bool stop) {
    Catch::AssertionHandler handler(
        macro, Catch::SourceLineInfo(file, static_cast<std::size_t>(line)), Catch::StringRef(expr),
        stop ? Catch::ResultDisposition::Normal : Catch::ResultDisposition::ContinueOnFailure);
    handler.handleMessage(Catch::ResultWas::ExpressionFailed,
                          values.empty() ? std::string() : "with values: " + values);
    handler.complete();
}

template <class A, class B>
[[gnu::cold, gnu::noinline]] void light_eq_failure(const char* macro, const char* expr,
                                                   const A& a, const B& b, const char* file,
                                                   int line, bool stop) {
    light_failure(macro, expr, describe(a) + " == " + describe(b), file, line, stop);
}

template <class A, class B>
inline void light_eq(const char* macro, const char* expr, const A& a, const B& b,
                     const char* file, int line, bool stop) {
    if (!equal(a, b)) light_eq_failure(macro, expr, a, b, file, line, stop);
}

}  // namespace conq_test::detail

#define CONQ_LIGHT_TEST_(macro, stop, expected, ...)                                            \
    do {                                                                                        \
        if (static_cast<bool>(__VA_ARGS__) != (expected)) {                                     \
            ::conq_test::detail::light_failure(macro, #__VA_ARGS__, std::string(), __FILE__,   \
                                               __LINE__, stop);                                 \
        }                                                                                       \
    } while (false)

// One call, so that temporaries in a and b live until the comparison and
// the report are done (and each is evaluated once).
#define CONQ_LIGHT_EQ_(macro, stop, a, b)                                                       \
    ::conq_test::detail::light_eq(macro, #a " == " #b, a, b, __FILE__, __LINE__, stop)

#define CONQ_REQUIRE(...) CONQ_LIGHT_TEST_("REQUIRE", true, true, __VA_ARGS__)
#define CONQ_REQUIRE_FALSE(...) CONQ_LIGHT_TEST_("REQUIRE_FALSE", true, false, __VA_ARGS__)
#define CONQ_CHECK(...) CONQ_LIGHT_TEST_("CHECK", false, true, __VA_ARGS__)
#define CONQ_CHECK_FALSE(...) CONQ_LIGHT_TEST_("CHECK_FALSE", false, false, __VA_ARGS__)
/// a and b are each one macro argument: parenthesise one that has a comma.
#define CONQ_REQUIRE_EQ(a, b) CONQ_LIGHT_EQ_("REQUIRE", true, a, b)
#define CONQ_CHECK_EQ(a, b) CONQ_LIGHT_EQ_("CHECK", false, a, b)

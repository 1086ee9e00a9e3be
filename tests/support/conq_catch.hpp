// tests/support/conq_catch.hpp
//
// Catch2 as conqueue's tests use it: std::optional values print in failure
// messages. Include this instead of <catch2/catch.hpp>.
#pragma once

#ifndef CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#endif
#include <catch2/catch.hpp>

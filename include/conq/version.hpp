// conq/version.hpp
//
// The library version, as macros and as constants.
#pragma once

#define CONQ_VERSION_MAJOR 0
#define CONQ_VERSION_MINOR 1
#define CONQ_VERSION_PATCH 0
/// major * 10000 + minor * 100 + patch
#define CONQ_VERSION (CONQ_VERSION_MAJOR * 10000 + CONQ_VERSION_MINOR * 100 + CONQ_VERSION_PATCH)

namespace conq {
inline constexpr int version_major = CONQ_VERSION_MAJOR;
inline constexpr int version_minor = CONQ_VERSION_MINOR;
inline constexpr int version_patch = CONQ_VERSION_PATCH;
}  // namespace conq

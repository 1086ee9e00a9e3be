# `cmake --install` of a conqueue build tree into a fresh prefix, then a check
# that the package files are there (cmake -P script; the fixture of the
# packaging tests that need an installed conqueue).
#
#   -DBUILD_DIR=<build tree> -DPREFIX=<prefix> -DCONFIG=<config> [-DCLEAN=<a|b>]
foreach(var BUILD_DIR PREFIX)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "install.cmake: -D${var}=... is required")
    endif()
endforeach()

# A stale prefix, or a consumer that cached the old one, would hide mistakes.
file(REMOVE_RECURSE "${PREFIX}")
string(REPLACE "|" ";" clean "${CLEAN}")
foreach(dir IN LISTS clean)
    file(REMOVE_RECURSE "${dir}")
endforeach()

set(config_args "")
if(CONFIG)
    set(config_args --config "${CONFIG}")
endif()
execute_process(
    COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}" ${config_args}
    RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cmake --install failed (${rc})")
endif()

# `*` stands for one or two path components (lib, lib/x86_64-linux-gnu, share).
file(GLOB_RECURSE installed RELATIVE "${PREFIX}" "${PREFIX}/*")
set(missing "")
foreach(pattern
        "include/conq/conq.hpp"
        "include/conq/queue.hpp"
        "include/conq/detail/platform.hpp"
        "*/cmake/conq/conq-config.cmake"
        "*/cmake/conq/conq-config-version.cmake"
        "*/cmake/conq/conq-targets.cmake"
        "*/pkgconfig/conq.pc")
    string(REPLACE "*" "[^/]+(/[^/]+)?" regex "${pattern}")
    set(hits "${installed}")
    list(FILTER hits INCLUDE REGEX "^${regex}$")
    if(NOT hits)
        list(APPEND missing "${pattern}")
    endif()
endforeach()
if(missing)
    message(FATAL_ERROR "installed tree in ${PREFIX} lacks: ${missing}")
endif()
message(STATUS "conqueue installed into ${PREFIX}")

# Compiles and runs a consumer with nothing but `pkg-config --cflags --libs
# conq` from an installed prefix (cmake -P script).
#
#   -DPKG_CONFIG=<pkg-config> -DCXX=<c++> -DPREFIX=<prefix> -DPC_DIR=<dir of conq.pc>
#   -DSOURCE=<main.cpp> -DWORK_DIR=<scratch dir> -DVERSION=<expected version>
foreach(var PKG_CONFIG CXX PREFIX PC_DIR SOURCE WORK_DIR VERSION)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "pkg_config.cmake: -D${var}=... is required")
    endif()
endforeach()

set(ENV{PKG_CONFIG_PATH} "${PC_DIR}")

function(pkg_config out)
    execute_process(COMMAND "${PKG_CONFIG}" ${ARGN} conq
        RESULT_VARIABLE rc OUTPUT_VARIABLE text ERROR_VARIABLE err
        OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "pkg-config ${ARGN} conq failed:\n${err}")
    endif()
    set(${out} "${text}" PARENT_SCOPE)
endfunction()

pkg_config(version --modversion)
if(NOT version STREQUAL VERSION)
    message(FATAL_ERROR "pkg-config says conq ${version}, expected ${VERSION}")
endif()

# The include directory must be the installed one (conq.pc finds its prefix
# relative to itself, so the tree can move).
pkg_config(includedir --variable=includedir)
file(REAL_PATH "${includedir}" includedir)
file(REAL_PATH "${PREFIX}" prefix)
string(FIND "${includedir}/" "${prefix}/" at)
if(NOT at EQUAL 0 OR NOT EXISTS "${includedir}/conq/queue.hpp")
    message(FATAL_ERROR "conq.pc points at ${includedir}, not at the headers under ${prefix}")
endif()

pkg_config(cflags --cflags)
pkg_config(libs --libs)
message(STATUS "pkg-config --cflags conq: ${cflags}")
message(STATUS "pkg-config --libs conq:   ${libs}")
separate_arguments(cflags UNIX_COMMAND "${cflags}")
separate_arguments(libs UNIX_COMMAND "${libs}")

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(exe "${WORK_DIR}/consumer")
execute_process(
    COMMAND "${CXX}" ${cflags} -Wall -Wextra -Werror "${SOURCE}" -o "${exe}" ${libs}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "compiling with the pkg-config flags failed:\n${out}")
endif()
execute_process(COMMAND "${exe}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message(STATUS "${out}")
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the consumer built with pkg-config flags failed (${rc})")
endif()

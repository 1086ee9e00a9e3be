# Compiles sources one by one with another compiler (cmake -P script).
#
#   -DCOMPILER=<c++>  -DFLAGS=<a|b|c>  -DSOURCES=<x.cpp|y.cpp>  -DMODE=<mode>
#
# MODE=compile       every source must compile
# MODE=compile_fail  every source must fail to compile, with the sentence of
#                    its first line `// expect: <regex>` in the diagnostics;
#                    with CONQ_COMPILE_FAIL_CONTROL defined it must compile
foreach(var COMPILER FLAGS SOURCES MODE)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "check.cmake: -D${var}=... is required")
    endif()
endforeach()
string(REPLACE "|" ";" flags "${FLAGS}")
string(REPLACE "|" ";" sources "${SOURCES}")

set(failures 0)
foreach(source IN LISTS sources)
    if(MODE STREQUAL "compile")
        execute_process(COMMAND "${COMPILER}" ${flags} "${source}"
            RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
        if(rc EQUAL 0)
            message(STATUS "ok      ${source}")
        else()
            message(STATUS "FAILED  ${source}\n${out}")
            math(EXPR failures "${failures} + 1")
        endif()
    elseif(MODE STREQUAL "compile_fail")
        file(STRINGS "${source}" first_line LIMIT_COUNT 1)
        if(NOT first_line MATCHES "^// expect: (.+)$")
            message(FATAL_ERROR "${source}: the first line must be `// expect: <regex>`")
        endif()
        set(expected "${CMAKE_MATCH_1}")
        execute_process(COMMAND "${COMPILER}" ${flags} -DCONQ_COMPILE_FAIL_CONTROL "${source}"
            RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
        if(NOT rc EQUAL 0)
            message(STATUS "FAILED  ${source}: the control (CONQ_COMPILE_FAIL_CONTROL) does not compile\n${out}")
            math(EXPR failures "${failures} + 1")
            continue()
        endif()
        execute_process(COMMAND "${COMPILER}" ${flags} "${source}"
            RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
        if(rc EQUAL 0)
            message(STATUS "FAILED  ${source}: compiled, but must fail with \"${expected}\"")
            math(EXPR failures "${failures} + 1")
        elseif(NOT out MATCHES "${expected}")
            message(STATUS "FAILED  ${source}: failed without \"${expected}\"\n${out}")
            math(EXPR failures "${failures} + 1")
        else()
            message(STATUS "ok      ${source}: \"${expected}\"")
        endif()
    else()
        message(FATAL_ERROR "check.cmake: unknown MODE \"${MODE}\"")
    endif()
endforeach()

if(failures GREATER 0)
    message(FATAL_ERROR "${failures} of the sources above failed the check")
endif()

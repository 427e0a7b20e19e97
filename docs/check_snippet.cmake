# Runs one documentation snippet and compares its standard output, byte for
# byte, with the committed expected output. Used by the snippet_* tests.
#
#   cmake -DCOMMAND=<program> [-DARG=<argument>] -DEXPECTED=<file.expected>
#         -DACTUAL=<file to write the output to> -P check_snippet.cmake
#
# The snippet's standard error passes through. The actual output is always
# written to ACTUAL, so a changed output can be inspected, and adopted with
#   cp <ACTUAL> <EXPECTED>
# after checking it by hand.
foreach(_var COMMAND EXPECTED ACTUAL)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "check_snippet.cmake: -D${_var}=... is required")
  endif()
endforeach()

set(_cmd "${COMMAND}")
if(DEFINED ARG)
  list(APPEND _cmd "${ARG}")
endif()
execute_process(COMMAND ${_cmd}
                OUTPUT_VARIABLE _out
                RESULT_VARIABLE _rc)
file(WRITE "${ACTUAL}" "${_out}")

if(NOT _rc EQUAL 0)
  message("${_out}")
  message(FATAL_ERROR "snippet ${_cmd} exited with status ${_rc}")
endif()
if(NOT EXISTS "${EXPECTED}")
  message(FATAL_ERROR "missing expected output ${EXPECTED}; the actual output is in ${ACTUAL}")
endif()
file(READ "${EXPECTED}" _want)
if(NOT _out STREQUAL _want)
  execute_process(COMMAND diff -u "${EXPECTED}" "${ACTUAL}")
  message(FATAL_ERROR "the output of ${_cmd} differs from ${EXPECTED} (diff above; actual output in ${ACTUAL})")
endif()
message(STATUS "output matches ${EXPECTED}")

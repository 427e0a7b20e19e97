# Runs Doxygen and fails on any warning (an undocumented public symbol, a broken
# \ref, a bad \param ...). Used by the `docs` target and the `docs_build` test.
#
#   cmake -DDOXYGEN=<doxygen> -DDOXYFILE=<Doxyfile> -DLOG=<warnings log> -P run_doxygen.cmake
#
# Doxygen writes its warnings to LOG (WARN_LOGFILE in the Doxyfile); they are
# echoed here so that they show up in the build or test output.
foreach(_var DOXYGEN DOXYFILE LOG)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "run_doxygen.cmake: -D${_var}=... is required")
  endif()
endforeach()

file(REMOVE "${LOG}")
get_filename_component(_dir "${DOXYFILE}" DIRECTORY)
execute_process(COMMAND "${DOXYGEN}" "${DOXYFILE}"
                WORKING_DIRECTORY "${_dir}"
                RESULT_VARIABLE _rc)

set(_warnings "")
if(EXISTS "${LOG}")
  file(READ "${LOG}" _warnings)
  string(STRIP "${_warnings}" _warnings)
endif()

if(NOT _warnings STREQUAL "")
  message("${_warnings}")
  message(FATAL_ERROR "Doxygen reported warnings (listed above); the docs must build without any. "
                      "Full log: ${LOG}")
endif()
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "Doxygen failed with exit status ${_rc}")
endif()
message(STATUS "Doxygen: no warnings; HTML in ${_dir}/html/index.html")

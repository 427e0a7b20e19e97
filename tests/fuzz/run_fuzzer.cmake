# Runs one fuzzer for a bounded time (see CMakeLists.txt): cmake -DFUZZER=...
# -DWORK=... -DCORPUS=... -DARTIFACTS=... -DSECONDS=... -DOPTIONS=... -P run_fuzzer.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
execute_process(
  COMMAND ${FUZZER} -max_total_time=${SECONDS} -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
          -artifact_prefix=${ARTIFACTS} ${OPTIONS} ${WORK} ${CORPUS}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (exit ${rc}); the reproducer is in ${ARTIFACTS}")
endif()

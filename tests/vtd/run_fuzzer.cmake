# Runs the fuzz_vtd libFuzzer binary for a bounded time on a copy of the
# checked-in corpus (the source tree is never written):
#   cmake -DFUZZER=bin -DCORPUS=dir -DWORKDIR=dir -DSECONDS=n -P run_fuzzer.cmake
# What the run finds stays in WORKDIR/corpus; crash reproducers go to WORKDIR/.
foreach(var FUZZER CORPUS WORKDIR SECONDS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzzer.cmake: -D${var}=... missing")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORKDIR}")
file(MAKE_DIRECTORY "${WORKDIR}/corpus")
file(GLOB seeds "${CORPUS}/*")
file(COPY ${seeds} DESTINATION "${WORKDIR}/corpus")
execute_process(
  COMMAND "${FUZZER}" -seed=1 -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048
          -print_final_stats=1 -artifact_prefix=${WORKDIR}/ "${WORKDIR}/corpus"
  RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "fuzz_vtd exited with ${status}; reproducers in ${WORKDIR}")
endif()

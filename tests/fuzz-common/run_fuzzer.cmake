# Runs a libFuzzer binary for a bounded time on a fresh copy of a corpus.
#   cmake -DFUZZER=bin -DCORPUS=dir -DWORKDIR=dir -DSECONDS=n -P run_fuzzer.cmake
# The copy (WORKDIR/corpus) collects what the run finds; reproducers of a
# crash go to WORKDIR/ (crash-*, leak-*, timeout-*, oom-*). The source tree
# is never written.
foreach(v FUZZER CORPUS WORKDIR SECONDS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_fuzzer.cmake: -D${v}=... missing")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORKDIR}")
file(MAKE_DIRECTORY "${WORKDIR}")
file(COPY "${CORPUS}/" DESTINATION "${WORKDIR}/corpus")

execute_process(
  COMMAND "${FUZZER}"
    -seed=1
    -max_total_time=${SECONDS}
    -rss_limit_mb=2048
    -timeout=10
    -print_final_stats=1
    -artifact_prefix=${WORKDIR}/
    "${WORKDIR}/corpus"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  get_filename_component(name "${FUZZER}" NAME)
  message(FATAL_ERROR "${name} exited with ${rc}; reproducers in ${WORKDIR}")
endif()

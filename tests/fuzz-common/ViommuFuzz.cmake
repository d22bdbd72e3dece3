# viommu_add_fuzz_target(): one fuzz target, the same way everywhere.
#
#   viommu_add_fuzz_target(NAME name
#     SOURCES a.c ...          # the target: defines LLVMFuzzerTestOneInput
#     CORPUS dir               # checked-in corpus (never written)
#     [TIME seconds]           # bounded run length (default 30; cache var)
#     [REPLAY_LIBS lib ...]    # what the replay links (default viommu_static)
#     [FUZZ_SOURCES x.c ...]   # extra sources the libFuzzer binary compiles
#                              # itself, instrumented (code outside libviommu)
#     [INCLUDES dir ...])      # extra include directories
#
# Targets include fuzz_check.h (this directory) for their FAIL and CHECK.
#
# Every build: NAME_replay runs the corpus through the target in name order
# (test NAME_corpus, label fuzz). With VIOMMU_FUZZ (clang): NAME is the
# libFuzzer binary over a coverage-instrumented copy of the library (one copy,
# viommu_fuzz_obj, shared by every target), with ASan and UBSan, and test
# NAME_run fuzzes for TIME seconds with a fixed seed on a copy of the corpus.
set(VIOMMU_FUZZ_COMMON_DIR ${CMAKE_CURRENT_LIST_DIR})

function(viommu_fuzz_lib_obj)
  if(TARGET viommu_fuzz_obj)
    return()
  endif()
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "VIOMMU_FUZZ needs clang (libFuzzer); configure with CC=clang")
  endif()
  get_target_property(srcs viommu_obj SOURCES)
  set(paths "")
  foreach(src IN LISTS srcs)
    if(IS_ABSOLUTE "${src}")
      list(APPEND paths "${src}")
    else()
      list(APPEND paths "${PROJECT_SOURCE_DIR}/${src}")
    endif()
  endforeach()
  add_library(viommu_fuzz_obj OBJECT ${paths})
  target_include_directories(viommu_fuzz_obj PRIVATE $<TARGET_PROPERTY:viommu_obj,INCLUDE_DIRECTORIES>)
  target_compile_definitions(viommu_fuzz_obj PRIVATE $<TARGET_PROPERTY:viommu_obj,COMPILE_DEFINITIONS>)
  target_compile_options(viommu_fuzz_obj PRIVATE -fsanitize=fuzzer-no-link ${VIOMMU_FUZZ_SAN})
endfunction()

# The top level adds ASan/UBSan to everything under VIOMMU_SANITIZE.
if(VIOMMU_SANITIZE)
  set(VIOMMU_FUZZ_SAN "")
else()
  set(VIOMMU_FUZZ_SAN -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
endif()

function(viommu_add_fuzz_target)
  cmake_parse_arguments(F "" "NAME;CORPUS;TIME" "SOURCES;REPLAY_LIBS;FUZZ_SOURCES;INCLUDES" ${ARGN})
  if(NOT F_NAME OR NOT F_SOURCES OR NOT F_CORPUS)
    message(FATAL_ERROR "viommu_add_fuzz_target: NAME, SOURCES and CORPUS are required")
  endif()
  if(NOT F_REPLAY_LIBS)
    set(F_REPLAY_LIBS viommu_static)
  endif()
  if(NOT F_TIME)
    set(F_TIME 30)
  endif()
  find_package(Threads REQUIRED)

  add_executable(${F_NAME}_replay ${F_SOURCES} ${VIOMMU_FUZZ_COMMON_DIR}/replay_main.c)
  target_link_libraries(${F_NAME}_replay PRIVATE ${F_REPLAY_LIBS})
  # fuzz_check.h (FAIL, CHECK) for every target, and the target's own.
  target_include_directories(${F_NAME}_replay PRIVATE ${VIOMMU_FUZZ_COMMON_DIR} ${F_INCLUDES})
  add_test(NAME ${F_NAME}_corpus COMMAND ${F_NAME}_replay ${F_CORPUS})
  set_tests_properties(${F_NAME}_corpus PROPERTIES LABELS fuzz TIMEOUT 300)

  if(NOT VIOMMU_FUZZ)
    return()
  endif()
  viommu_fuzz_lib_obj()
  add_executable(${F_NAME} ${F_SOURCES} ${F_FUZZ_SOURCES} $<TARGET_OBJECTS:viommu_fuzz_obj>)
  target_include_directories(${F_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/include ${VIOMMU_FUZZ_COMMON_DIR} ${F_INCLUDES})
  target_compile_options(${F_NAME} PRIVATE -fsanitize=fuzzer ${VIOMMU_FUZZ_SAN})
  target_link_options(${F_NAME} PRIVATE -fsanitize=fuzzer ${VIOMMU_FUZZ_SAN})
  target_link_libraries(${F_NAME} PRIVATE Threads::Threads)

  string(TOUPPER "${F_NAME}" upper)
  set(${upper}_TIME ${F_TIME} CACHE STRING "Seconds test ${F_NAME}_run fuzzes for")
  add_test(NAME ${F_NAME}_run
    COMMAND ${CMAKE_COMMAND}
      -DFUZZER=$<TARGET_FILE:${F_NAME}>
      -DCORPUS=${F_CORPUS}
      -DWORKDIR=${CMAKE_CURRENT_BINARY_DIR}/${F_NAME}_run
      -DSECONDS=${${upper}_TIME}
      -P ${VIOMMU_FUZZ_COMMON_DIR}/run_fuzzer.cmake)
  math(EXPR timeout "${${upper}_TIME} * 2 + 60")
  set_tests_properties(${F_NAME}_run PROPERTIES LABELS fuzz TIMEOUT ${timeout})
endfunction()

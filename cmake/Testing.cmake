# synthpert_test_suite(NAME SOURCES ... LIBS ... [SLOW] [GPU] [MAIN file] [FILTER spec])
#
# One Catch2 executable per folder. It is registered with CTest as:
#   NAME       every test case without the [slow] or [gpu] tag (label "fast"),
#              or those FILTER selects
#   NAME_slow  the [slow] cases (label "slow"), only if SLOW is given
#   NAME_gpu   the [gpu] cases (label "gpu"), only if GPU is given; the suite's
#              main exits 77 after printing "skipped: no CUDA device" when there
#              is none, which CTest reports as skipped.
find_package(Catch2 REQUIRED)

# The interpreter of the python oracles (tests/reference/, needs torch, numpy,
# sklearn): Debian's, where scripts/install-deps.sh puts python3-torch; a GPU
# host passes its own (scripts/gpu-verify.sh).
set(SYNTHPERT_REFERENCE_PYTHON /usr/bin/python3 CACHE FILEPATH "python3 that runs the tests' reference scripts")

add_library(synthpert_catch_main OBJECT ${PROJECT_SOURCE_DIR}/tests/catch_main.cpp)
target_link_libraries(synthpert_catch_main PUBLIC Catch2::Catch2)

function(synthpert_test_suite name)
  cmake_parse_arguments(ARG "SLOW;GPU" "MAIN;FILTER" "SOURCES;LIBS" ${ARGN})
  if(NOT ARG_FILTER)
    set(ARG_FILTER "~[slow]~[gpu]")
  endif()
  if(ARG_MAIN)
    add_executable(${name} ${ARG_SOURCES} ${ARG_MAIN})
    target_link_libraries(${name} PRIVATE Catch2::Catch2 ${ARG_LIBS})
  else()
    add_executable(${name} ${ARG_SOURCES})
    target_link_libraries(${name} PRIVATE synthpert_catch_main ${ARG_LIBS})
  endif()
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_definitions(${name} PRIVATE
    SYNTHPERT_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    SYNTHPERT_BINARY_DIR="${PROJECT_BINARY_DIR}"
    SYNTHPERT_REFERENCE_PYTHON="${SYNTHPERT_REFERENCE_PYTHON}")
  add_test(NAME ${name} COMMAND ${name} "${ARG_FILTER}")
  set_tests_properties(${name} PROPERTIES LABELS fast)
  if(ARG_SLOW)
    add_test(NAME ${name}_slow COMMAND ${name} "[slow]~[gpu]")
    set_tests_properties(${name}_slow PROPERTIES LABELS slow)
  endif()
  if(ARG_GPU)
    add_test(NAME ${name}_gpu COMMAND ${name} "[gpu]")
    set_tests_properties(${name}_gpu PROPERTIES LABELS gpu SKIP_RETURN_CODE 77)
  endif()
endfunction()

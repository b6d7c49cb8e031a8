# bench_attention: attention fwd/bwd TFLOP/s against torch SDPA (flash backend,
# measured by benchmarks/peer_attention.py in the same run). Needs kernels/.
if(SYNTHPERT_BUILD_KERNELS AND TARGET synthpert_kernels)
  add_executable(bench_attention ${CMAKE_CURRENT_LIST_DIR}/bench_attention.cpp)
  target_link_libraries(bench_attention PRIVATE synthpert_kernels nlohmann_json::nlohmann_json)
  target_include_directories(bench_attention PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_definitions(bench_attention PRIVATE SYNTHPERT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()

# bench_kernels: memory-bound kernels (RMSNorm, RoPE, SwiGLU) in GB/s against
# HBM peak and torch eager / torch.compile (benchmarks/peer_kernels.py); the
# fused CE; sections in their own files (bench_<op>.cpp + peer_<op>.py).
if(SYNTHPERT_BUILD_KERNELS AND TARGET synthpert_kernels)
  add_executable(bench_kernels ${CMAKE_CURRENT_LIST_DIR}/bench_kernels.cpp ${CMAKE_CURRENT_LIST_DIR}/bench_nf4.cpp
                               ${CMAKE_CURRENT_LIST_DIR}/bench_adamw.cpp
                               ${CMAKE_CURRENT_LIST_DIR}/bench_lora.cpp ${CMAKE_CURRENT_LIST_DIR}/bench_decode.cpp
                               ${CMAKE_CURRENT_LIST_DIR}/bench_continued.cpp)
  target_include_directories(bench_kernels PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(bench_kernels PRIVATE synthpert_kernels nlohmann_json::nlohmann_json)
  target_compile_definitions(bench_kernels PRIVATE SYNTHPERT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()

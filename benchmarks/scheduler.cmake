# bench_scheduler: the decode stall a long joining prompt causes, by prefill chunk.
add_executable(bench_scheduler ${CMAKE_CURRENT_LIST_DIR}/bench_scheduler.cpp)
target_link_libraries(bench_scheduler PRIVATE synthpert_engine)
target_precompile_headers(bench_scheduler PRIVATE ${PROJECT_SOURCE_DIR}/engine/torch_compat.h)

# bench_engine: CPU prefill and decode throughput of the engine.
add_executable(bench_engine ${CMAKE_CURRENT_LIST_DIR}/bench_engine.cpp)
target_link_libraries(bench_engine PRIVATE synthpert_engine)
target_precompile_headers(bench_engine PRIVATE ${PROJECT_SOURCE_DIR}/engine/torch_compat.h)

# bench_text_stream: streaming detokenization of a long reply, windowed vs whole-list (run_text_stream_cpu.sh).
add_executable(bench_text_stream ${CMAKE_CURRENT_LIST_DIR}/bench_text_stream.cpp)
target_include_directories(bench_text_stream PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_definitions(bench_text_stream PRIVATE SYNTHPERT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
target_link_libraries(bench_text_stream PRIVATE synthpert_server)

# bench_tokenizer: single-thread encode MB/s of the tokenizers (run_tokenizer_cpu.sh).
add_executable(bench_tokenizer ${CMAKE_CURRENT_LIST_DIR}/bench_tokenizer.cpp ${PROJECT_SOURCE_DIR}/tests/tokenizer/text_corpus.cpp)
target_include_directories(bench_tokenizer PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_definitions(bench_tokenizer PRIVATE SYNTHPERT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
target_link_libraries(bench_tokenizer PRIVATE synthpert_tokenizer)

# bench_score: PerturbQA answer scoring with and without the shared prompt prefix (run_score_cpu.sh).
add_executable(bench_score ${CMAKE_CURRENT_LIST_DIR}/bench_score.cpp)
target_include_directories(bench_score PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(bench_score PRIVATE synthpert_perturb_eval)
target_precompile_headers(bench_score PRIVATE ${PROJECT_SOURCE_DIR}/engine/torch_compat.h)

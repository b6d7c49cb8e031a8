# bench_train: trainer tokens/s and peak memory (peers: peer_train.py on a GPU, peer_train_eager.py on the CPU).
add_executable(bench_train ${CMAKE_CURRENT_LIST_DIR}/bench_train.cpp)
target_link_libraries(bench_train PRIVATE synthpert_trainer)
target_precompile_headers(bench_train PRIVATE ${PROJECT_SOURCE_DIR}/engine/torch_compat.h)

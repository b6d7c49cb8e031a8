# Third-party dependencies, all from Debian packages (scripts/install-deps.sh)
# or, on an offline GPU host, from the prefix made by scripts/bundle-offline-deps.sh
# (passed through CMAKE_PREFIX_PATH beside the host PyTorch's libtorch).

# A GPU host's libtorch (PyTorch 2.x) configures CUDA itself: it enables the
# CUDA language (so nvcc must be known first; /usr/local/cuda is the usual
# place) and appends -gencode flags for the GPU it sees to CMAKE_CUDA_FLAGS.
# kernels/ names its own architectures, so those flags are undone here; kept,
# every kernel would also be compiled a second time for plain sm_90.
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
set(_synthpert_cuda_flags "${CMAKE_CUDA_FLAGS}")
find_package(Torch REQUIRED)
set(CMAKE_CUDA_FLAGS "${_synthpert_cuda_flags}")
# PyTorch wheels' libtorch_cpu.so carries a static copy of libstdc++'s
# std::filesystem and exports its recursive_directory_iterator functions
# (pytorch/pytorch#133437). A binary that names libtorch before libstdc++
# binds libstdc++'s own calls to those copies, and std::filesystem::remove_all
# on a non-empty folder then mixes two builds of the iterator and crashes:
# the test of the engine's CUDA paths did, at the end, on an H200 host
# (docs/gpu-host.md), and the trainer prunes checkpoints with remove_all.
# libstdc++ first in every executable's search order keeps one copy in use
# (tests/check_link_order.sh checks the order).
add_link_options("LINKER:--push-state,--no-as-needed,-lstdc++,--pop-state")
# PyTorch's headers need C++20 from 2.12 on.
if(Torch_VERSION VERSION_GREATER_EQUAL 2.12)
  set(CMAKE_CXX_STANDARD 20)
endif()
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
# Debian ships cpp-httplib as a compiled library found through pkg-config.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
find_package(Threads REQUIRED)

# libtorch's CMake config adds its flags to TORCH_CXX_FLAGS (the C++11 ABI
# setting must match the library). Apply them to our C++ code only.
separate_arguments(_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:${_torch_flags}>")

# The engine dispatches to kernels/ when libtorch was built with CUDA (the
# libtorch of a GPU host's PyTorch); Debian's libtorch is CPU-only.
if(TORCH_CUDA_LIBRARIES OR TARGET torch_cuda)
  set(SYNTHPERT_TORCH_HAS_CUDA ON)
else()
  set(SYNTHPERT_TORCH_HAS_CUDA OFF)
endif()
message(STATUS "synthpert: libtorch ${Torch_VERSION}, CUDA in libtorch: ${SYNTHPERT_TORCH_HAS_CUDA}")

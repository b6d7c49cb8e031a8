# Third-party dependencies, all from Debian packages (scripts/install-deps.sh)
# or, on an offline GPU host, from the prefix made by scripts/bundle-offline-deps.sh
# (passed through CMAKE_PREFIX_PATH beside the host PyTorch's libtorch).

find_package(Torch REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
# Debian ships cpp-httplib as a compiled library found through pkg-config.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)

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

# Decides whether kernels/ is built and turns on the CUDA language for it
# (cmake/Dependencies.cmake has already pointed CMAKE_CUDA_COMPILER at
# /usr/local/cuda/bin/nvcc when nothing else names one).
include(CheckLanguage)
check_language(CUDA)
if(SYNTHPERT_KERNELS STREQUAL "AUTO")
  if(CMAKE_CUDA_COMPILER)
    set(SYNTHPERT_BUILD_KERNELS ON)
  else()
    set(SYNTHPERT_BUILD_KERNELS OFF)
    message(WARNING "synthpert: nvcc not found; kernels/ is not built (set CMAKE_CUDA_COMPILER)")
  endif()
else()
  set(SYNTHPERT_BUILD_KERNELS ${SYNTHPERT_KERNELS})
endif()
if(SYNTHPERT_BUILD_KERNELS)
  # Architectures are given as explicit -gencode flags in kernels/CMakeLists.txt
  # (sm_90a needs the arch-specific target, which not every CMake spells).
  set(CMAKE_CUDA_ARCHITECTURES OFF)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
endif()
# The CUDA engine path needs both: kernels and a CUDA libtorch.
if(SYNTHPERT_BUILD_KERNELS AND SYNTHPERT_TORCH_HAS_CUDA)
  set(SYNTHPERT_ENGINE_CUDA ON)
else()
  set(SYNTHPERT_ENGINE_CUDA OFF)
endif()
message(STATUS "synthpert: kernels ${SYNTHPERT_BUILD_KERNELS}, CUDA engine ${SYNTHPERT_ENGINE_CUDA}")

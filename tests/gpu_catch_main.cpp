// Catch2 main for GPU test suites: without a usable CUDA device it prints
// "skipped: no CUDA device" and exits 77, which CTest reports as skipped
// (cmake/Testing.cmake sets SKIP_RETURN_CODE 77 on the *_gpu tests).
// CPU-only test cases in the same binary ([cpu] tag, run by the fast entry)
// still run without a device.
#define CATCH_CONFIG_RUNNER
#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  bool wants_gpu = false;
  for (int i = 1; i < argc; ++i)
    if (std::strstr(argv[i], "[gpu]") && !std::strstr(argv[i], "~[gpu]")) wants_gpu = true;
  if (wants_gpu) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
      std::printf("skipped: no CUDA device (%s)\n",
                  err != cudaSuccess ? cudaGetErrorString(err) : "device count 0");
      return 77;
    }
  }
  return Catch::Session().run(argc, argv);
}

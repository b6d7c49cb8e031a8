// device_has_kernel_image against CUDA's binary compatibility rule, the
// oracle: a cubin for sm_XY runs on compute capability X.Z with Z >= Y; an
// sm_90a cubin on 9.0 alone. The default build (SYNTHPERT_CUDA_ARCHS 80;90a,
// cubins only) thus loads on 8.x and 9.0 and nowhere else; the list is the
// build's (tests/kernels/CMakeLists.txt passes it). [gpu]: skipped without a
// device.
#ifndef SYNTHPERT_NO_KERNELS

#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <sstream>
#include <string>

#include "kernels/device_support.h"

namespace {

// Whether an architecture list such as "80,90a" holds a cubin that runs on
// compute capability major.minor.
bool archs_cover(const std::string& archs, int major, int minor) {
  std::istringstream in(archs);
  std::string arch;
  while (std::getline(in, arch, ',')) {
    const bool specific = !arch.empty() && arch.back() == 'a';
    const int number = std::stoi(specific ? arch.substr(0, arch.size() - 1) : arch);
    const int arch_major = number / 10, arch_minor = number % 10;
    if (major == arch_major && (specific ? minor == arch_minor : minor >= arch_minor)) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("the architecture rule of the oracle itself", "[cpu][device]") {
  CHECK(archs_cover("80,90a", 8, 0));
  CHECK(archs_cover("80,90a", 8, 9));
  CHECK(archs_cover("80,90a", 9, 0));
  CHECK_FALSE(archs_cover("80,90a", 7, 5));
  CHECK_FALSE(archs_cover("80,90a", 10, 0));
  CHECK_FALSE(archs_cover("80,90a", 12, 0));
  CHECK_FALSE(archs_cover("86", 8, 0));
  CHECK_FALSE(archs_cover("90a", 9, 1));
}

TEST_CASE("the kernels' image loads exactly on the devices the built architectures cover", "[gpu][device]") {
  int count = 0;
  REQUIRE(cudaGetDeviceCount(&count) == cudaSuccess);
  int current = -1;
  REQUIRE(cudaGetDevice(&current) == cudaSuccess);
  for (int d = 0; d < count; ++d) {
    int major = 0, minor = 0;
    REQUIRE(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d) == cudaSuccess);
    REQUIRE(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, d) == cudaSuccess);
    INFO("cuda:" << d << " compute capability " << major << "." << minor);
    const bool expected = archs_cover(SYNTHPERT_CUDA_ARCHS_LIST, major, minor);
    CHECK(synthpert::kernels::device_has_kernel_image(d) == expected);
    // The current device and the last error are left as they were.
    int now = -1;
    CHECK(cudaGetDevice(&now) == cudaSuccess);
    CHECK(now == current);
    CHECK(cudaGetLastError() == cudaSuccess);
  }
  // An ordinal past the last device is no device.
  CHECK_FALSE(synthpert::kernels::device_has_kernel_image(count));
  CHECK(cudaGetLastError() == cudaSuccess);
}

#endif  // SYNTHPERT_NO_KERNELS

// Helpers shared by the attention and paged-decode GPU tests: device buffers,
// strided host<->device staging through libtorch CPU tensors, and the
// tolerance rule of DESIGN.md section 5.
//
// Tolerance rule. A kernel in dtype X (bf16 or f16) passes when its max abs
// error against the fp64 reference is at most 2x the max abs error of the
// same computation done the way eager PyTorch does it in X: fp32 math with
// every op's result rounded to X (matmul, scale, softmax, ...), computed with
// libtorch CPU ops and .to(X) after each op (test_attention_peer.h). The only addition is a
// floor of half an X-ulp at the largest reference magnitude of the call's
// outputs: the resolution of the output format itself, which matters only
// where the peer is exact by algebraic accident (e.g. a one-token softmax,
// where dq and dk are exactly 0 for the peer but carry fp32 rounding for any
// fused kernel).
#pragma once

#ifndef SYNTHPERT_NO_KERNELS

#include <ATen/ATen.h>
#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/common.cuh"
#include "tests/kernels/test_attention_peer.h"

namespace synthpert::test {

inline void cuda_ok(cudaError_t e, const char* what) {
  INFO(what << ": " << cudaGetErrorString(e));
  REQUIRE(e == cudaSuccess);
}

// Owns one cudaMalloc allocation (256-byte aligned by the driver).
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes_ > 0) cuda_ok(cudaMalloc(&ptr_, bytes_), "cudaMalloc");
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  void upload(const void* src, size_t n) { cuda_ok(cudaMemcpy(ptr_, src, n, cudaMemcpyHostToDevice), "upload"); }
  void download(void* dst, size_t n) const {
    cuda_ok(cudaMemcpy(dst, ptr_, n, cudaMemcpyDeviceToHost), "download");
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

inline at::ScalarType torch_dtype(kernels::DType t) {
  return t == kernels::DType::kBF16 ? at::kBFloat16 : at::kHalf;
}

// A [rows, heads, D] tensor placed in a device buffer with the given strides
// (elements; D contiguous). The host mirror keeps the same storage so the
// strided view can be uploaded and read back as a whole.
struct StridedDeviceTensor {
  int64_t rows, heads, dim, token_stride, head_stride;
  at::ScalarType dtype;
  at::Tensor host_storage;  // 1-D, dtype, the whole strided extent
  DeviceBuffer device;

  StridedDeviceTensor(int64_t rows_, int64_t heads_, int64_t dim_, int64_t token_stride_, int64_t head_stride_,
                      at::ScalarType dtype_)
      : rows(rows_), heads(heads_), dim(dim_), token_stride(token_stride_), head_stride(head_stride_), dtype(dtype_),
        host_storage(at::zeros({extent()}, dtype_)), device(static_cast<size_t>(extent()) * 2),
        poison(next_poison(dtype_)) {
    // Poison the padding so a kernel that reads or writes outside the view
    // produces visibly wrong results.
    host_storage.view(at::kShort).fill_(poison);
  }
  // A signalling NaN with a payload of its own per tensor: arithmetic only
  // makes quiet NaNs, and a kernel that copies one tensor's padding into
  // another's changes the payload, so download() can tell the poison from
  // any NaN a kernel writes.
  int16_t poison;
  static int16_t next_poison(at::ScalarType dtype) {
    static int serial = 0;
    ++serial;
    // bf16: exponent 0x7F80, f16: 0x7C00; the mantissa's top (quiet) bit clear, the rest not all zero.
    return dtype == at::kBFloat16 ? int16_t(0x7F80 | (1 + serial % 63)) : int16_t(0x7C00 | (1 + serial % 511));
  }
  int64_t extent() const { return rows == 0 ? 8 : (rows - 1) * token_stride + (heads - 1) * head_stride + dim + 8; }
  at::Tensor view() { return host_storage.as_strided({rows, heads, dim}, {token_stride, head_stride, 1}); }
  void upload(const at::Tensor& values_rhd) {
    view().copy_(values_rhd.to(dtype));
    device.upload(host_storage.data_ptr(), static_cast<size_t>(extent()) * 2);
  }
  // Output buffers: upload the NaN-poisoned storage so any element the kernel
  // fails to write reads back as NaN.
  void upload_poison() {
    host_storage.view(at::kShort).fill_(poison);
    device.upload(host_storage.data_ptr(), static_cast<size_t>(extent()) * 2);
  }
  // Also checks that every element outside the view still holds this
  // tensor's poison, bit for bit: a kernel that writes past a row (into the
  // padding) fails here, whatever it writes.
  at::Tensor download() {
    device.download(host_storage.data_ptr(), static_cast<size_t>(extent()) * 2);
    at::Tensor outside = at::ones({extent()}, at::kBool);
    outside.as_strided({rows, heads, dim}, {token_stride, head_stride, 1}).fill_(false);
    const int64_t overwritten = host_storage.view(at::kShort).masked_select(outside).ne(poison).sum().item<int64_t>();
    INFO("elements outside the [" << rows << ", " << heads << ", " << dim << "] view that the kernel overwrote");
    CHECK(overwritten == 0);
    return view().to(at::kDouble);
  }
};

// The rule from the header comment, with a readable failure message.
inline void check_within_peer(const char* name, double kernel_err, double peer_err, double floor) {
  const double bound = 2.0 * peer_err + floor;
  INFO(name << ": kernel max abs err " << kernel_err << ", peer (torch-style rounding) err " << peer_err
            << ", output half-ulp floor " << floor << ", bound " << bound);
  CHECK(std::isfinite(kernel_err));
  CHECK(kernel_err <= bound);
}

}  // namespace synthpert::test

#endif  // SYNTHPERT_NO_KERNELS

// What the engine's kernel entries share: whether the kernels of kernels/ run
// a tensor configuration at all, and, where they are compiled
// (SYNTHPERT_HAVE_KERNELS), torch's current stream, a cuBLAS handle, the
// device selection and the dtype tag of a launch. Without a CUDA libtorch (the CI
// compile check) the stream is the legacy default stream.
#pragma once

#include "engine/torch_compat.h"

#if defined(SYNTHPERT_HAVE_KERNELS)
#include <cublas_v2.h>
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

#include "kernels/common.cuh"
#endif

namespace synthpert::engine {

// True where the engine's kernel entries can launch: a CUDA tensor in bf16 or
// f16, in a build with the kernels and a CUDA libtorch, on a device the
// kernels hold code for (else torch's ops run, after one warning). Ops with
// further limits (attention's head dims) add their own.
bool kernels_apply(torch::Device device, torch::ScalarType dtype);

#if defined(SYNTHPERT_HAVE_KERNELS)
// The stream torch is using now on t's device.
cudaStream_t kernel_stream(const torch::Tensor& t);

// One cuBLAS handle per device and thread, made on first use and kept for the process
// (kernels set its stream before they use it).
cublasHandle_t kernel_cublas(const torch::Tensor& t);

// Streaming multiprocessors of t's device (sizes split-K launches).
int kernel_sm_count(const torch::Tensor& t);

// kBF16, kF16 or kF32 for t's dtype.
kernels::DType kernel_dtype(const torch::Tensor& t);

// Scratch memory for a launch on `like`'s device: `bytes` bytes from `ptr`,
// which starts on a 256-byte boundary (the kernels' workspace rule) whatever
// the allocator's alignment is; `storage` owns it and must outlive the launch.
struct KernelWorkspace {
  torch::Tensor storage;
  void* ptr = nullptr;
};
inline KernelWorkspace kernel_workspace(const torch::Tensor& like, size_t bytes) {
  KernelWorkspace w;
  w.storage = torch::empty({static_cast<int64_t>(bytes) + 255}, like.options().dtype(torch::kUInt8));
  const auto addr = reinterpret_cast<uintptr_t>(w.storage.data_ptr());
  w.ptr = reinterpret_cast<void*>((addr + 255) / 256 * 256);
  return w;
}

// t as a [rows, width] view that the row kernels and cuBLAS take: unit
// column stride and a row stride of at least the width (cuBLAS's
// leading-dimension rule, which binds a single row too). Anything else, such
// as the (0, 1) strides of a gradient broadcast from one row, is copied;
// `contiguous()` alone would keep a one-row view, whose row stride torch
// ignores.
inline torch::Tensor kernel_rows(const torch::Tensor& t) {
  if (t.stride(1) == 1 && t.stride(0) >= t.size(1)) return t;
  return t.clone(at::MemoryFormat::Contiguous);
}

// t as a [tokens, heads, D] view that the attention kernels take
// (kernels/attention.cu checks it): they stage rows with 16-byte loads, so a
// 16-byte aligned base, token and head strides that are multiples of 8
// elements, heads that do not overlap, tokens that advance, and a contiguous
// D axis. Anything else (a gradient broadcast along tokens, a view at an odd
// offset) is copied.
inline torch::Tensor kernel_heads(const torch::Tensor& t) {
  const int64_t tokens = t.size(0), heads = t.size(1), D = t.size(2);
  const bool fits = t.stride(2) == 1 && reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0 && t.stride(0) % 8 == 0 &&
                    t.stride(1) % 8 == 0 && (t.stride(1) >= D || heads == 1) && (t.stride(0) > 0 || tokens <= 1);
  return fits ? t : t.clone(at::MemoryFormat::Contiguous);
}

// Makes t's device the calling thread's current one for the launches that
// follow, and leaves it so. Restoring the previous device after each launch
// would open a CUDA context (hundreds of MB) on it, device 0 in a fresh
// thread, in every process of a multi-GPU run; the engine computes on one
// device per process, and torch's own ops set theirs.
void use_kernel_device(const torch::Tensor& t);
#endif

}  // namespace synthpert::engine

// Warp-level building blocks shared by the attention kernels on top of the
// PTX primitives of attention_ptx.cuh (mma.sync.m16n8k16, ldmatrix,
// cp.async): the tile loader that stages [rows, D] slices in shared memory,
// register pairs and quad reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/attention_ptx.cuh"
#include "kernels/common.cuh"

namespace synthpert::kernels::attn {

// Two consecutive 16-bit values as one register (address must be 4-byte aligned).
template <typename T>
__device__ __forceinline__ uint32_t load_pair(const T* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

// Stages rows [0, kRows) of one head of a [N, heads, D] tensor, 16 bytes at
// a time, to the shared-memory addresses `chunk_at(row, col)` gives (col a
// multiple of 8); rows at or past `rows_valid` are zero-filled so that
// out-of-range tokens contribute exact zeros. `src` points at the tile's first
// token. Uses all kThreads threads of the block.
template <typename T, int kRows, int D, int kThreads, typename ChunkAt>
__device__ __forceinline__ void stage_rows_async(const T* src, int64_t token_stride, int rows_valid,
                                                 ChunkAt chunk_at) {
  constexpr int kChunksPerRow = D / 8;  // 16-byte chunks
  for (int c = threadIdx.x; c < kRows * kChunksPerRow; c += kThreads) {
    const int row = c / kChunksPerRow;
    const int col = (c % kChunksPerRow) * 8;
    void* d = chunk_at(row, col);
    if (row < rows_valid)
      cp_async_16(d, src + row * token_stride + col);
    else
      *reinterpret_cast<uint4*>(d) = make_uint4(0, 0, 0, 0);
  }
}

// The same into a row-major tile `dst` ([kRows][kPitch] elements).
template <typename T, int kRows, int D, int kPitch, int kThreads>
__device__ __forceinline__ void load_tile_async(T* dst, const T* src, int64_t token_stride, int rows_valid) {
  stage_rows_async<T, kRows, D, kThreads>(src, token_stride, rows_valid,
                                          [dst](int row, int col) { return dst + row * kPitch + col; });
}

// Sum and max across the four lanes of a quad (the lanes sharing one row of
// an mma C fragment).
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

constexpr float kLog2e = 1.4426950408889634f;

}  // namespace synthpert::kernels::attn

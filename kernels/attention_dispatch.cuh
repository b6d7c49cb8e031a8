// Declarations of the attention template instances (defined one per
// translation unit in kernels/generated/, written by
// scripts/gen_attention_instances.py) and the *_SWITCH helpers that turn the
// runtime head dim / causal flag into those compile-time parameters (the
// dtype: SPK_HALF_DTYPE_SWITCH of kernels/common.cuh).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/attention.h"
#include "kernels/common.cuh"  // SPK_HALF_DTYPE_SWITCH

namespace synthpert::kernels::attn {

template <typename T, int D, bool kCausal>
void run_attention_fwd(const AttentionForwardArgs& args, cudaStream_t stream);

template <typename T, int D, bool kCausal>
void run_attention_fwd_sm90(const AttentionForwardArgs& args, cudaStream_t stream);

template <typename T, int D, bool kCausal>
void run_attention_bwd(const AttentionBackwardArgs& args, cudaStream_t stream);

template <typename T, int D, bool kCausal>
void run_attention_bwd_sm90(const AttentionBackwardArgs& args, cudaStream_t stream);

// Backward workspace layout: dQ_acc [N, H, D] fp32, then Delta [H, N] fp32,
// each starting at a 256-byte boundary.
inline size_t align256(size_t x) { return (x + 255) / 256 * 256; }
inline size_t dq_acc_bytes(int64_t n, int heads, int d) { return align256(size_t(n) * heads * d * sizeof(float)); }

}  // namespace synthpert::kernels::attn

// Each helper runs the trailing lambda body with a constexpr alias in scope;
// unsupported values throw (the launchers validate before dispatching).
#define SPK_ATTN_HEADDIM_SWITCH(head_dim, CONST_NAME, ...)                                 \
  [&] {                                                                                    \
    if ((head_dim) == 64) {                                                                \
      constexpr int CONST_NAME = 64;                                                       \
      return __VA_ARGS__();                                                                \
    } else if ((head_dim) == 128) {                                                        \
      constexpr int CONST_NAME = 128;                                                      \
      return __VA_ARGS__();                                                                \
    }                                                                                      \
    throw ::synthpert::kernels::KernelError("attention: head_dim must be 64 or 128");      \
  }()

#define SPK_BOOL_SWITCH(cond, CONST_NAME, ...) \
  [&] {                                        \
    if (cond) {                                \
      constexpr bool CONST_NAME = true;        \
      return __VA_ARGS__();                    \
    } else {                                   \
      constexpr bool CONST_NAME = false;       \
      return __VA_ARGS__();                    \
    }                                          \
  }()

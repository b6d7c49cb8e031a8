// FlashAttention-style attention forward and backward over packed
// variable-length sequences (self-attention; causal or not; GQA).
//
// Legend: N total packed tokens (cu_seqlens[B]), B sequences, H query heads,
// Hkv key/value heads (H % Hkv == 0; query head h reads kv head h / (H/Hkv)),
// D head dim (64 or 128).
//   q, o, do, dq   [N, H, D]     viewed through (token_stride, head_stride)
//   k, v, dk, dv   [N, Hkv, D]   viewed through (token_stride, head_stride)
//   lse_HN         [H, N] fp32   log(sum_j exp(scale * q.k_j)), contiguous
//   cu_seqlens     [B + 1] int32 on the device; sequence b owns tokens
//                  [cu_seqlens[b], cu_seqlens[b+1]) and attends only to them
// Strides are in elements; the D axis is always contiguous. Causal masking is
// relative to each sequence's start: query i sees key j iff j <= i.
//
// Keys apart from the queries (forward only; continuing a sequence whose
// earlier keys and values sit in a KV cache): with cu_seqlens_k set, k and v
// hold Nk tokens (total_keys) and sequence b's keys are
//   [cu_seqlens_k[b], cu_seqlens_k[b] + seqused_k[b])   (seqused_k null: up to cu_seqlens_k[b+1])
// The queries are the sequence's last tokens: causal query i of sequence b
// sees key j iff j <= i + (keys_b - queries_b), the bottom-right alignment of
// FlashAttention's varlen kernels. Causal sequences need keys_b >= queries_b
// (nothing checks device data). The queries of a sequence with no keys get
// out 0 and lse -inf.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/common.cuh"

namespace synthpert::kernels {

// A [N, heads, D] tensor with a contiguous last axis.
struct HeadsView {
  const void* data = nullptr;
  int64_t token_stride = 0;  // elements between token n and n + 1
  int64_t head_stride = 0;   // elements between head h and h + 1
};
struct MutableHeadsView {
  void* data = nullptr;
  int64_t token_stride = 0;
  int64_t head_stride = 0;
};

// Shape and options shared by forward and backward.
struct AttentionProblem {
  DType dtype = DType::kBF16;  // kBF16 or kF16; accumulation is always fp32
  int head_dim = 128;          // D: 64 or 128
  bool causal = true;
  float softmax_scale = 0.f;   // usually 1/sqrt(D)
  int batch = 0;               // B
  int heads = 0;               // H
  int kv_heads = 0;            // Hkv
  int64_t total_tokens = 0;    // N
  int max_seqlen = 0;          // host-side upper bound of any sequence's query count
  const int32_t* cu_seqlens = nullptr;  // device [B + 1]
  // Forward only; see the legend. Null: k and v are packed like q.
  const int32_t* cu_seqlens_k = nullptr;  // device [B + 1], non-decreasing
  const int32_t* seqused_k = nullptr;     // device [B] or null; needs cu_seqlens_k
  int64_t total_keys = 0;                 // Nk: tokens of k and v, with cu_seqlens_k
};

// Which kernel runs. kMmaSync: mma.sync.m16n8k16 tiles (sm_80 and later).
// kWgmma: warpgroup wgmma tiles reading operands from swizzled shared memory
// (sm_90a builds on sm_90 devices only; attention_wgmma_available()).
// kAuto: the faster of the two where it was measured, see
// attention_forward_choice() and attention_backward_path().
enum class AttentionPath { kAuto, kMmaSync, kWgmma };

struct AttentionForwardArgs {
  AttentionProblem problem;
  AttentionPath path = AttentionPath::kAuto;
  int wgmma_warpgroups = 2;  // kWgmma only: 64-row warpgroups per block, 1 or 2
  int wgmma_key_block = 64;  // kWgmma only: keys per step, 64 or 128 (S as m64n64k16 or m64n128k16)
  // kWgmma with 2 warpgroups only: a third, producer warpgroup loads the
  // tiles through mbarrier-tracked stages while the two compute warpgroups
  // take turns on the tensor cores (FlashAttention-3's warp specialisation
  // and ping-pong; kernels/attention_fwd_sm90_ws_impl.cuh).
  bool wgmma_pingpong = false;
  // wgmma_pingpong only: the producer loads with TMA tile copies (one thread
  // issues them, the tensor memory accelerator swizzles and counts the bytes
  // on the stage's mbarrier) instead of cp.async by its 128 threads. Needs
  // token-major q, k and v (token_stride >= heads * head_stride). Rows past a
  // sequence's end are then the next sequence's tokens (masked, weighted 0),
  // not zeros, so a non-finite v in one packed sequence reaches the outputs
  // of the sequence before it; with seqused_k, a non-finite v in a region's
  // unused slots likewise reaches its own sequence.
  bool wgmma_tma = false;
  HeadsView q, k, v;
  MutableHeadsView out;
  float* lse_HN = nullptr;  // device [H, N], written for every valid token
};

struct AttentionBackwardArgs {
  AttentionProblem problem;
  // Keys per thread block of the main kernel: 64 (4 warps) or 128 (8 warps:
  // each staged query tile and each dQ atomic serves twice the keys, one block
  // per SM instead of two); 0 lets attention_backward_key_block() choose.
  // The wgmma kernel always takes 128 keys (two warpgroups of 64) and
  // accepts 0 or 128 here.
  int key_block = 0;
  AttentionPath path = AttentionPath::kAuto;
  HeadsView q, k, v, out, dout;
  const float* lse_HN = nullptr;  // from attention_forward
  MutableHeadsView dq, dk, dv;
  void* workspace = nullptr;      // attention_backward_workspace_bytes(), 256-byte aligned
};

// fp32 dQ accumulator [N, H, D] and the row dot products D_i = dO_i . O_i [H, N].
size_t attention_backward_workspace_bytes(int64_t total_tokens, int heads, int head_dim);

// True when the current device is compute capability 9.0 and this build
// carries sm_90a code, i.e. when AttentionPath::kWgmma can run here.
bool attention_wgmma_available();

// The forward kernel attention_forward runs for `args`: the path asked for,
// or for kAuto, on a device where kWgmma can run and at head dim 128, the
// wgmma kernel (one warpgroup per block below 2048 tokens of max_seqlen, two
// from there on), else kMmaSync. On an H200 that choice was 1.15-1.22x
// the mma.sync one at head dim 128, causal, 512-16k tokens, one warpgroup
// ahead up to 1024 tokens and two from 4096
// (benchmarks/results/attention-nvidia-h200-2026-12-04.md); head dim 64 has
// not been measured and stays on mma.sync.
// The 128-key wgmma tile and the ping-pong kernel (with either loader) have
// not been measured, so kAuto keeps 64 keys and no ping-pong.
struct AttentionForwardChoice {
  AttentionPath path;    // kMmaSync or kWgmma
  int wgmma_warpgroups;  // kWgmma: 1 or 2
  int wgmma_key_block;   // kWgmma: 64 or 128
  bool wgmma_pingpong;   // kWgmma with 2 warpgroups
  bool wgmma_tma;        // with wgmma_pingpong
};
AttentionForwardChoice attention_forward_choice(const AttentionForwardArgs& args);

// The backward kernel attention_backward runs: the path asked for, or for
// kAuto kMmaSync, the kernel measured on the H200 (2026-12-04); the wgmma
// backward has not been timed on a GPU yet (bench_attention has a row for it).
AttentionPath attention_backward_path(const AttentionBackwardArgs& args);

// The key block attention_backward runs: the one asked for, or for 0, 128 on
// the wgmma path and 64 on mma.sync (the kernel the H200 measurements of
// 2026-12-04 rest on; bench_attention times both to settle the choice).
int attention_backward_key_block(const AttentionBackwardArgs& args);

// Computes out and lse_HN. Throws KernelError on a violated precondition or a
// failed launch. Asynchronous on `stream`.
void attention_forward(const AttentionForwardArgs& args, cudaStream_t stream);

// Computes dq, dk, dv from q, k, v, out, dout and the forward's lse_HN.
void attention_backward(const AttentionBackwardArgs& args, cudaStream_t stream);

}  // namespace synthpert::kernels

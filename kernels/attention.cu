// Launchers for attention forward/backward: validate every precondition,
// then dispatch to the generated template instance for (dtype, D, causal).
#include "kernels/attention.h"

#include <cudaTypedefs.h>

#include <array>
#include <atomic>
#include <cmath>
#include <string>

#include "kernels/attention_dispatch.cuh"
#include "kernels/attention_tensor_map.h"

namespace synthpert::kernels {
namespace {

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

void check_problem(const AttentionProblem& p, const char* op) {
  SPK_REQUIRE(p.dtype == DType::kBF16 || p.dtype == DType::kF16, op,
              std::string("dtype must be bf16 or f16, got ") + dtype_name(p.dtype));
  SPK_REQUIRE(p.head_dim == 64 || p.head_dim == 128, op,
              "head_dim must be 64 or 128, got " + std::to_string(p.head_dim));
  SPK_REQUIRE(std::isfinite(p.softmax_scale) && p.softmax_scale > 0.f, op, "softmax_scale must be finite and > 0");
  SPK_REQUIRE(p.batch >= 0 && p.batch <= 65535, op, "batch must be in [0, 65535]");
  SPK_REQUIRE(p.heads > 0 && p.heads <= 65535, op, "heads must be in [1, 65535]");
  SPK_REQUIRE(p.kv_heads > 0 && p.heads % p.kv_heads == 0, op,
              "heads (" + std::to_string(p.heads) + ") must be a positive multiple of kv_heads (" +
                  std::to_string(p.kv_heads) + ")");
  SPK_REQUIRE(p.total_tokens >= 0 && p.max_seqlen >= 0, op, "total_tokens and max_seqlen must be >= 0");
  SPK_REQUIRE(p.max_seqlen <= p.total_tokens, op, "max_seqlen must not exceed total_tokens");
  SPK_REQUIRE(p.batch == 0 || p.cu_seqlens != nullptr, op, "cu_seqlens must be a device array of batch + 1 int32");
  SPK_REQUIRE(p.seqused_k == nullptr || p.cu_seqlens_k != nullptr, op,
              "seqused_k needs cu_seqlens_k (the key regions it counts from)");
  SPK_REQUIRE(p.cu_seqlens_k == nullptr || p.total_keys >= 0, op, "total_keys must be >= 0");
}

// The tokens k and v hold: their own with cu_seqlens_k, else q's.
int64_t key_tokens(const AttentionProblem& p) { return p.cu_seqlens_k ? p.total_keys : p.total_tokens; }

// q/k/v/o/dO are staged with 16-byte cp.async and outputs written as 2-element
// words: base pointers 16-byte aligned, strides multiples of 8 elements.
template <typename View>
void check_view(const View& v, const AttentionProblem& p, int heads, int64_t tokens, const char* op,
                const char* name) {
  const std::string n(name);
  SPK_REQUIRE(v.data != nullptr, op, n + " must not be null");
  SPK_REQUIRE(aligned16(v.data), op, n + " must be 16-byte aligned");
  SPK_REQUIRE(v.token_stride % 8 == 0 && v.head_stride % 8 == 0, op,
              n + " token_stride and head_stride must be multiples of 8 elements");
  SPK_REQUIRE(v.head_stride >= p.head_dim || heads == 1, op, n + " head_stride must be >= head_dim");
  SPK_REQUIRE(v.token_stride > 0 || tokens <= 1, op, n + " token_stride must be > 0");
}

bool nothing_to_do(const AttentionProblem& p) { return p.batch == 0 || p.total_tokens == 0 || p.max_seqlen == 0; }

// Checks what both directions share: the problem, then (when there is work)
// the q, k, v and out views. Returns false when there is nothing to compute.
template <typename Args>
bool check_attention_inputs(const Args& a, const char* op) {
  const AttentionProblem& p = a.problem;
  check_problem(p, op);
  if (nothing_to_do(p)) return false;
  check_view(a.q, p, p.heads, p.total_tokens, op, "q");
  check_view(a.k, p, p.kv_heads, key_tokens(p), op, "k");
  check_view(a.v, p, p.kv_heads, key_tokens(p), op, "v");
  check_view(a.out, p, p.heads, p.total_tokens, op, "out");
  return true;
}

void check_wgmma_runs_here(bool wgmma, const char* op) {
  SPK_REQUIRE(!wgmma || attention_wgmma_available(), op,
              "the wgmma path needs a compute capability 9.0 device and a build with sm_90a code");
}

// Compiled like every kernel of the library: the architecture of the code the
// runtime picks for it on this device is the architecture the attention
// instances run as.
__global__ void architecture_probe_kernel() {}

}  // namespace

namespace {

bool query_wgmma_available(int device) {
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  if (major != 9 || minor != 0) return false;
  cudaFuncAttributes attr{};
  if (cudaFuncGetAttributes(&attr, architecture_probe_kernel) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.binaryVersion == 90;  // sm_90a SASS (an sm_80 build reports 80)
}

}  // namespace

bool attention_wgmma_available() {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();  // no device: clear the sticky error, report unavailable
    return false;
  }
  // Asked on every kWgmma launch: remembered per device (0 unknown, 1 no, 2 yes).
  static std::array<std::atomic<int>, 64> known{};
  if (device < 0 || device >= static_cast<int>(known.size())) return query_wgmma_available(device);
  const int seen = known[static_cast<size_t>(device)].load(std::memory_order_relaxed);
  if (seen != 0) return seen == 2;
  const bool yes = query_wgmma_available(device);
  known[static_cast<size_t>(device)].store(yes ? 2 : 1, std::memory_order_relaxed);
  return yes;
}

namespace attn {

CUtensorMap encode_heads_tensor_map(const HeadsView& view, const AttentionProblem& p, int heads, int64_t tokens,
                                    int box_rows, const char* tensor) {
  const char* op = "attention_forward";
  const std::string name(tensor);
  SPK_REQUIRE(view.head_stride >= p.head_dim && view.token_stride >= int64_t(heads) * view.head_stride, op,
              "wgmma_tma needs " + name + " token-major (token_stride >= heads * head_stride, head_stride >= head_dim), got " +
                  "token_stride " + std::to_string(view.token_stride) + ", head_stride " +
                  std::to_string(view.head_stride));
  // The driver's encoder, through the runtime (no link to libcuda), once.
  static PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    const cudaError_t err = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault,
                                                             &found);
    return err == cudaSuccess && found == cudaDriverEntryPointSuccess
               ? reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn)
               : nullptr;
  }();
  SPK_REQUIRE(encode != nullptr, op, "the driver has no cuTensorMapEncodeTiled (wgmma_tma needs CUDA 12 or later)");
  const cuuint64_t elem = 2;  // bf16 or f16
  const cuuint64_t dims[3] = {cuuint64_t(p.head_dim), cuuint64_t(heads), cuuint64_t(tokens)};
  const cuuint64_t strides[2] = {cuuint64_t(view.head_stride) * elem, cuuint64_t(view.token_stride) * elem};
  const cuuint32_t box[3] = {64, 1, cuuint32_t(box_rows)};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  CUtensorMap map;
  const CUresult res =
      encode(&map, p.dtype == DType::kBF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 3,
             const_cast<void*>(view.data), dims, strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
             CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  SPK_REQUIRE(res == CUDA_SUCCESS, op,
              "cuTensorMapEncodeTiled refused the map of " + name + " (CUresult " + std::to_string(int(res)) + ")");
  return map;
}

}  // namespace attn

size_t attention_backward_workspace_bytes(int64_t total_tokens, int heads, int head_dim) {
  return attn::dq_acc_bytes(total_tokens, heads, head_dim) +
         attn::align256(size_t(total_tokens) * heads * sizeof(float));
}

AttentionForwardChoice attention_forward_choice(const AttentionForwardArgs& a) {
  switch (a.path) {
    case AttentionPath::kMmaSync:
      return {AttentionPath::kMmaSync, a.wgmma_warpgroups, a.wgmma_key_block, a.wgmma_pingpong, a.wgmma_tma};
    case AttentionPath::kWgmma:
      return {AttentionPath::kWgmma, a.wgmma_warpgroups, a.wgmma_key_block, a.wgmma_pingpong, a.wgmma_tma};
    case AttentionPath::kAuto: break;
  }
  if (a.problem.head_dim == 128 && attention_wgmma_available())
    return {AttentionPath::kWgmma, a.problem.max_seqlen >= 2048 ? 2 : 1, 64, false, false};
  return {AttentionPath::kMmaSync, a.wgmma_warpgroups, a.wgmma_key_block, a.wgmma_pingpong, a.wgmma_tma};
}

void attention_forward(const AttentionForwardArgs& args, cudaStream_t stream) {
  AttentionForwardArgs a = args;
  const AttentionForwardChoice choice = attention_forward_choice(args);
  a.path = choice.path;
  a.wgmma_warpgroups = choice.wgmma_warpgroups;
  a.wgmma_key_block = choice.wgmma_key_block;
  a.wgmma_pingpong = choice.wgmma_pingpong;
  a.wgmma_tma = choice.wgmma_tma;
  const char* op = "attention_forward";
  const AttentionProblem& p = a.problem;
  if (!check_attention_inputs(a, op)) return;
  SPK_REQUIRE(a.lse_HN != nullptr, op, "lse_HN must be a device array of heads * total_tokens floats");
  const bool wgmma = a.path == AttentionPath::kWgmma;
  check_wgmma_runs_here(wgmma, op);
  SPK_REQUIRE(!wgmma || a.wgmma_warpgroups == 1 || a.wgmma_warpgroups == 2, op,
              "wgmma_warpgroups must be 1 or 2, got " + std::to_string(a.wgmma_warpgroups));
  SPK_REQUIRE(!wgmma || a.wgmma_key_block == 64 || a.wgmma_key_block == 128, op,
              "wgmma_key_block must be 64 or 128, got " + std::to_string(a.wgmma_key_block));
  SPK_REQUIRE(!wgmma || !a.wgmma_pingpong || a.wgmma_warpgroups == 2, op,
              "wgmma_pingpong needs wgmma_warpgroups 2 (its two compute warpgroups), got " +
                  std::to_string(a.wgmma_warpgroups));
  SPK_REQUIRE(!wgmma || !a.wgmma_tma || a.wgmma_pingpong, op,
              "wgmma_tma needs wgmma_pingpong (TMA loads are the producer warpgroup's)");
  SPK_HALF_DTYPE_SWITCH(p.dtype, op, T, [&] {
    SPK_ATTN_HEADDIM_SWITCH(p.head_dim, kD, [&] {
      SPK_BOOL_SWITCH(p.causal, kCausal, [&] {
        if (wgmma)
          attn::run_attention_fwd_sm90<T, kD, kCausal>(a, stream);
        else
          attn::run_attention_fwd<T, kD, kCausal>(a, stream);
      });
    });
  });
}

AttentionPath attention_backward_path(const AttentionBackwardArgs& a) {
  return a.path == AttentionPath::kAuto ? AttentionPath::kMmaSync : a.path;
}

int attention_backward_key_block(const AttentionBackwardArgs& a) {
  if (a.key_block != 0) return a.key_block;
  return attention_backward_path(a) == AttentionPath::kWgmma ? 128 : 64;
}

void attention_backward(const AttentionBackwardArgs& args, cudaStream_t stream) {
  const char* op = "attention_backward";
  SPK_REQUIRE(args.key_block == 0 || args.key_block == 64 || args.key_block == 128, op,
              "key_block must be 0 (choose), 64 or 128, got " + std::to_string(args.key_block));
  AttentionBackwardArgs a = args;
  a.path = attention_backward_path(args);
  a.key_block = attention_backward_key_block(args);
  const bool wgmma = a.path == AttentionPath::kWgmma;
  SPK_REQUIRE(!wgmma || a.key_block == 128, op,
              "the wgmma backward takes 128 keys per block: key_block must be 0 or 128, got " +
                  std::to_string(args.key_block));
  const AttentionProblem& p = a.problem;
  SPK_REQUIRE(p.cu_seqlens_k == nullptr && p.seqused_k == nullptr, op,
              "keys apart from the queries (cu_seqlens_k, seqused_k) are forward only");
  if (!check_attention_inputs(a, op)) return;
  check_view(a.dout, p, p.heads, p.total_tokens, op, "dout");
  check_view(a.dq, p, p.heads, p.total_tokens, op, "dq");
  check_view(a.dk, p, p.kv_heads, p.total_tokens, op, "dk");
  check_view(a.dv, p, p.kv_heads, p.total_tokens, op, "dv");
  SPK_REQUIRE(a.lse_HN != nullptr, op, "lse_HN must be the forward's [heads, total_tokens] logsumexp");
  SPK_REQUIRE(a.workspace != nullptr && reinterpret_cast<uintptr_t>(a.workspace) % 256 == 0, op,
              "workspace must be 256-byte aligned and hold attention_backward_workspace_bytes()");
  check_wgmma_runs_here(wgmma, op);
  SPK_HALF_DTYPE_SWITCH(p.dtype, op, T, [&] {
    SPK_ATTN_HEADDIM_SWITCH(p.head_dim, kD, [&] {
      SPK_BOOL_SWITCH(p.causal, kCausal, [&] {
        if (wgmma)
          attn::run_attention_bwd_sm90<T, kD, kCausal>(a, stream);
        else
          attn::run_attention_bwd<T, kD, kCausal>(a, stream);
      });
    });
  });
}

}  // namespace synthpert::kernels

// Fused linear + cross-entropy: chunk loop, row kernel and cuBLAS calls (see
// fused_linear_ce.h). cuBLAS is column-major; a row-major [R, K] matrix with
// row stride ld is, to cuBLAS, a column-major [K, R] matrix with the same ld,
// which is how every call below is set up:
//   logits[M, V] = h[M, C] W[V, C]^T   ->  gemm(T, N, V, M, C, W, h) into fp32
//   dh[M, C]     = g[M, V] W[V, C]     ->  gemm(N, N, C, M, V, W, g)
//   dW[V, C]    += g[M, V]^T h[M, C]   ->  gemm(N, T, C, V, M, h, g), beta = 1
// All GEMMs accumulate in fp32 (CUBLAS_COMPUTE_32F).
#include "kernels/fused_linear_ce.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/rowwise.cuh"

namespace synthpert::kernels {
namespace {

constexpr int kThreads = 512;

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

// (max, sum of exp(x - max)) pairs merged without overflow.
struct MaxSum {
  float m, s;
};
__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  // A NaN logit makes the row's logsumexp NaN wherever it sits, as torch's
  // does (fmaxf would drop a thread's first one against the -inf start).
  if (a.m != a.m || b.m != b.m) return {NAN, NAN};
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return {m, 0.f};
  return {m, a.s * __expf(a.m - m) + b.s * __expf(b.m - m)};
}

// V consecutive fp32 logits (V = 4: one 16-byte load; the row starts are
// 16-byte aligned when vocab % 4 == 0, the workspace being 256-byte aligned).
template <int V>
__device__ __forceinline__ void load_logits(const float* p, float (&x)[V]) {
  if constexpr (V == 4) {
    const float4 f = *reinterpret_cast<const float4*>(p);
    x[0] = f.x, x[1] = f.y, x[2] = f.z, x[3] = f.w;
  } else {
    x[0] = p[0];
  }
}

// V gradient values rounded to T (V = 4: one 8-byte store).
template <typename T, int V>
__device__ __forceinline__ void store_grad(T* p, const float (&g)[V]) {
  if constexpr (V == 4) {
    uint2 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) e[i] = from_float<T>(g[i]);
    *reinterpret_cast<uint2*>(p) = raw;
  } else {
    p[0] = from_float<T>(g[0]);
  }
}

// Adds V logits to a thread's running (max, sum): one exponential per logit
// and one per V for the rescale (merge() per logit would take two each).
// NaNs are only noted here (fmaxf would drop them) and applied at the end.
template <int V>
__device__ __forceinline__ void absorb(MaxSum& acc, bool& saw_nan, const float (&x)[V]) {
  float mx = acc.m;
#pragma unroll
  for (int i = 0; i < V; ++i) {
    mx = fmaxf(mx, x[i]);
    saw_nan |= x[i] != x[i];
  }
  if (mx == -INFINITY) return;  // every logit so far -inf: the sum stays 0
  float s = acc.s * __expf(acc.m - mx);
#pragma unroll
  for (int i = 0; i < V; ++i) s += __expf(x[i] - mx);
  acc = {mx, s};
}

// One block per token of the chunk: logsumexp over V fp32 logits, the loss,
// and optionally the logits' gradient (softmax - onehot) * scale in T. kVec
// logits per access (4 where vocab % 4 == 0, else 1).
template <typename T, int kVec>
__global__ void __launch_bounds__(kThreads)
    ce_rows_kernel(const float* logits_MV, int64_t vocab, const int64_t* targets, int64_t ignore_index, float* loss,
                   float* lse_out, T* grad_MV, float grad_scale) {
  __shared__ MaxSum warp_parts[32];
  const int64_t row = blockIdx.x;
  const float* l = logits_MV + row * vocab;
  MaxSum acc{-INFINITY, 0.f};
  bool saw_nan = false;
  for (int64_t v = int64_t(threadIdx.x) * kVec; v < vocab; v += int64_t(blockDim.x) * kVec) {
    float x[kVec];
    load_logits<kVec>(l + v, x);
    absorb<kVec>(acc, saw_nan, x);
  }
  // A NaN logit makes the row's logsumexp NaN wherever it sits, as torch's does.
  if (saw_nan) acc = {NAN, NAN};
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    acc = merge(acc, MaxSum{__shfl_xor_sync(0xffffffffu, acc.m, o), __shfl_xor_sync(0xffffffffu, acc.s, o)});
  if (threadIdx.x % 32 == 0) warp_parts[threadIdx.x / 32] = acc;
  __syncthreads();
  MaxSum total{-INFINITY, 0.f};
  for (int w = 0; w < int(blockDim.x / 32); ++w) total = merge(total, warp_parts[w]);
  const float lse = total.m + logf(total.s);
  const int64_t t = targets[row];
  const bool ignored = t == ignore_index;
  const bool valid = !ignored && t >= 0 && t < vocab;
  if (threadIdx.x == 0) {
    loss[row] = ignored ? 0.f : (valid ? lse - l[t] : NAN);
    if (lse_out) lse_out[row] = lse;
  }
  if (!grad_MV) return;
  T* g = grad_MV + row * vocab;
  const float scale = ignored ? 0.f : grad_scale;
  for (int64_t v = int64_t(threadIdx.x) * kVec; v < vocab; v += int64_t(blockDim.x) * kVec) {
    float x[kVec];
    load_logits<kVec>(l + v, x);
#pragma unroll
    for (int i = 0; i < kVec; ++i) x[i] = (__expf(x[i] - lse) - (v + i == t ? 1.f : 0.f)) * scale;
    store_grad<T, kVec>(g + v, x);
  }
}

cudaDataType_t cuda_type(DType t) { return t == DType::kBF16 ? CUDA_R_16BF : CUDA_R_16F; }

void check_cublas(cublasStatus_t s, const char* op, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw KernelError(std::string(op) + ": " + what + " failed with cuBLAS status " + std::to_string(int(s)));
}

}  // namespace

size_t fused_linear_ce_workspace_bytes(int64_t chunk_tokens, int64_t vocab) {
  const size_t n = size_t(std::max<int64_t>(chunk_tokens, 0)) * size_t(std::max<int64_t>(vocab, 0));
  return align256(n * sizeof(float)) + align256(n * 2);
}

void fused_linear_cross_entropy(const FusedLinearCrossEntropyArgs& a, cudaStream_t stream) {
  const char* op = "fused_linear_cross_entropy";
  rowwise::check_half_dtype(a.dtype, op);
  SPK_REQUIRE(a.tokens >= 0, op, "tokens must be >= 0");
  SPK_REQUIRE(a.hidden_size > 0 && a.vocab > 0, op, "hidden_size and vocab must be > 0");
  SPK_REQUIRE(a.hidden_size <= INT32_MAX && a.vocab <= INT32_MAX, op, "hidden_size and vocab must fit cuBLAS int sizes");
  SPK_REQUIRE(a.chunk_tokens > 0 && a.chunk_tokens <= 65535, op, "chunk_tokens must be in [1, 65535]");
  SPK_REQUIRE(std::isfinite(a.grad_scale), op, "grad_scale must be finite");
  if (a.tokens == 0) return;
  SPK_REQUIRE(a.hidden != nullptr && a.hidden_row_stride >= a.hidden_size, op,
              "hidden must be a [tokens, hidden_size] view with row stride >= hidden_size");
  SPK_REQUIRE(a.weight != nullptr && a.weight_row_stride >= a.hidden_size, op,
              "weight must be a [vocab, hidden_size] view with row stride >= hidden_size");
  SPK_REQUIRE(a.targets != nullptr, op, "targets must be a device [tokens] int64 array");
  SPK_REQUIRE(a.loss != nullptr, op, "loss must be a device [tokens] fp32 array");
  SPK_REQUIRE(a.dhidden == nullptr || a.dhidden_row_stride >= a.hidden_size, op,
              "dhidden row stride must be >= hidden_size");
  SPK_REQUIRE(a.workspace != nullptr && reinterpret_cast<uintptr_t>(a.workspace) % 256 == 0, op,
              "workspace must be 256-byte aligned and hold fused_linear_ce_workspace_bytes(chunk_tokens, vocab)");
  SPK_REQUIRE(a.cublas != nullptr, op, "cublas must be a cuBLAS handle");
  check_cublas(cublasSetStream(a.cublas, stream), op, "cublasSetStream");

  const bool want_grad = a.dhidden != nullptr || a.dweight != nullptr;
  const int64_t M = std::min(a.chunk_tokens, a.tokens);
  float* logits = static_cast<float*>(a.workspace);
  void* grad = static_cast<char*>(a.workspace) + align256(size_t(M) * size_t(a.vocab) * sizeof(float));
  const cudaDataType_t t = cuda_type(a.dtype);
  const int V = int(a.vocab), C = int(a.hidden_size);
  const size_t elem = 2;
  const float one = 1.f, zero = 0.f;
  for (int64_t n0 = 0; n0 < a.tokens; n0 += M) {
    const int m = int(std::min(M, a.tokens - n0));
    const void* h = static_cast<const char*>(a.hidden) + size_t(n0) * size_t(a.hidden_row_stride) * elem;
    check_cublas(cublasGemmEx(a.cublas, CUBLAS_OP_T, CUBLAS_OP_N, V, m, C, &one, a.weight, t, int(a.weight_row_stride),
                              h, t, int(a.hidden_row_stride), &zero, logits, CUDA_R_32F, V, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT),
                 op, "logits GEMM");
    SPK_HALF_DTYPE_SWITCH(a.dtype, op, T, [&] {
      auto kernel = a.vocab % 4 == 0 ? ce_rows_kernel<T, 4> : ce_rows_kernel<T, 1>;
      kernel<<<unsigned(m), kThreads, 0, stream>>>(logits, a.vocab, a.targets + n0, a.ignore_index, a.loss + n0,
                                                   a.lse ? a.lse + n0 : nullptr,
                                                   want_grad ? static_cast<T*>(grad) : nullptr, a.grad_scale);
    });
    SPK_CHECK_LAUNCH(op);
    if (a.dhidden) {
      void* dh = static_cast<char*>(a.dhidden) + size_t(n0) * size_t(a.dhidden_row_stride) * elem;
      check_cublas(cublasGemmEx(a.cublas, CUBLAS_OP_N, CUBLAS_OP_N, C, m, V, &one, a.weight, t,
                                int(a.weight_row_stride), grad, t, V, &zero, dh, t, int(a.dhidden_row_stride),
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   op, "dhidden GEMM");
    }
    if (a.dweight) {
      check_cublas(cublasGemmEx(a.cublas, CUBLAS_OP_N, CUBLAS_OP_T, C, V, m, &one, h, t, int(a.hidden_row_stride),
                                grad, t, V, &one, a.dweight, CUDA_R_32F, C, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   op, "dweight GEMM");
    }
  }
}

}  // namespace synthpert::kernels

// LoRA training GEMMs (cuBLAS) and the multi-adapter serving kernels (see
// lora.h). cuBLAS is column-major; a row-major [r, c] matrix with row stride
// ld is, to cuBLAS, a column-major [c, r] matrix with the same ld, so a
// row-major product C[m, n] = A[m, k] B[k, n] is cuBLAS's C^T = B^T A^T. Each
// call below is written in row-major terms through `gemm_rm`.
#include "kernels/lora.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/rowwise.cuh"

namespace synthpert::kernels {
namespace {

constexpr int kThreads = 256;

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

cudaDataType_t cuda_type(DType t) { return t == DType::kBF16 ? CUDA_R_16BF : CUDA_R_16F; }

// A row-major operand: pointer, element type, row stride, and whether the
// product uses it transposed.
struct Operand {
  const void* ptr;
  cudaDataType_t type;
  int64_t ld;
  bool transposed;
};

// Row-major C[m, n] = alpha * op(A)[m, k] op(B)[k, n] + beta * C.
void gemm_rm(cublasHandle_t h, int64_t m, int64_t n, int64_t k, float alpha, const Operand& a, const Operand& b,
             float beta, void* c, cudaDataType_t c_type, int64_t ldc, const char* op, const char* what) {
  const cublasStatus_t st = cublasGemmEx(
      h, b.transposed ? CUBLAS_OP_T : CUBLAS_OP_N, a.transposed ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m), int(k),
      &alpha, b.ptr, b.type, int(b.ld), a.ptr, a.type, int(a.ld), &beta, c, c_type, int(ldc), CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS)
    throw KernelError(std::string(op) + ": " + what + " GEMM failed with cuBLAS status " + std::to_string(int(st)));
}

void check_matrix(const void* p, int64_t rows, int64_t cols, int64_t ld, const char* op, const char* name) {
  rowwise::check_rows(p, rows, cols, ld, op, name);
  SPK_REQUIRE(ld <= INT32_MAX, op, std::string(name) + " row stride must fit a cuBLAS int");
}

void check_sizes(DType dtype, int64_t rows, int64_t k, int64_t o, int64_t r, const char* op) {
  rowwise::check_half_dtype(dtype, op);
  SPK_REQUIRE(rows >= 0 && rows <= INT32_MAX, op, "rows must be in [0, 2^31)");
  SPK_REQUIRE(k > 0 && o > 0 && r > 0, op, "in_features, out_features and rank must be > 0");
  SPK_REQUIRE(k <= INT32_MAX && o <= INT32_MAX && r <= INT32_MAX, op, "sizes must fit cuBLAS int sizes");
}

// ---- serving kernels ----

// xa[n, r] = x[n] . A_i[r] for the row's adapter i, one block per row, warps
// over r, lanes over K (8-wide 16-byte loads when VEC).
template <typename T, bool VEC>
__global__ void __launch_bounds__(kThreads) shrink_kernel(LoraMultiArgs a, float* xa_NR) {
  const int64_t n = blockIdx.x;
  const int32_t i = a.row_adapter[n];
  if (i < 0 || i >= a.num_adapters) return;  // no adapter (or a bad index: expand marks the row)
  const T* x = static_cast<const T*>(a.x) + n * a.x_row_stride;
  const T* A = static_cast<const T*>(a.lora_a) + i * a.lora_a_adapter_stride;
  const int lane = threadIdx.x % 32;
  for (int64_t r = threadIdx.x / 32; r < a.rank; r += kThreads / 32) {
    const T* ar = A + r * a.lora_a_row_stride;
    float acc = 0.f;
    if constexpr (VEC) {
      for (int64_t k = int64_t(lane) * 8; k < a.in_features; k += 32 * 8) {
        float xv[8], av[8];
        rowwise::load<T, 8>(x + k, xv);
        rowwise::load<T, 8>(ar + k, av);
#pragma unroll
        for (int j = 0; j < 8; ++j) acc = fmaf(xv[j], av[j], acc);
      }
    } else {
      for (int64_t k = lane; k < a.in_features; k += 32) acc = fmaf(to_float(x[k]), to_float(ar[k]), acc);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) xa_NR[n * a.rank + r] = acc;
  }
}

// y[n, o] = round(y[n, o] + s_i * xa[n] . B_i[o]): blockIdx.x is the row,
// blockIdx.y a tile of 256 outputs; xa of the row is staged in shared memory.
template <typename T, bool VEC>
__global__ void __launch_bounds__(kThreads) expand_kernel(LoraMultiArgs a, const float* xa_NR) {
  __shared__ float xs[kLoraMaxServingRank];
  const int64_t n = blockIdx.x;
  const int64_t o = int64_t(blockIdx.y) * kThreads + threadIdx.x;
  const int32_t i = a.row_adapter[n];
  if (i == -1) return;
  T* y = static_cast<T*>(a.y) + n * a.y_row_stride;
  if (i < -1 || i >= a.num_adapters) {
    if (o < a.out_features) y[o] = from_float<T>(NAN);
    return;
  }
  for (int64_t r = threadIdx.x; r < a.rank; r += kThreads) xs[r] = xa_NR[n * a.rank + r];
  __syncthreads();
  if (o >= a.out_features) return;
  const T* br = static_cast<const T*>(a.lora_b) + i * a.lora_b_adapter_stride + o * a.lora_b_row_stride;
  float acc = 0.f;
  if constexpr (VEC) {
    for (int64_t r = 0; r < a.rank; r += 8) {
      float bv[8];
      rowwise::load<T, 8>(br + r, bv);
#pragma unroll
      for (int j = 0; j < 8; ++j) acc = fmaf(xs[r + j], bv[j], acc);
    }
  } else {
    for (int64_t r = 0; r < a.rank; ++r) acc = fmaf(xs[r], to_float(br[r]), acc);
  }
  y[o] = from_float<T>(to_float(y[o]) + a.scales[i] * acc);
}

}  // namespace

size_t lora_backward_workspace_bytes(int64_t rows, int64_t rank) {
  return align256(size_t(std::max<int64_t>(rows, 0)) * size_t(std::max<int64_t>(rank, 0)) * 2);
}

size_t lora_multi_workspace_bytes(int64_t rows, int64_t rank) {
  return align256(size_t(std::max<int64_t>(rows, 0)) * size_t(std::max<int64_t>(rank, 0)) * sizeof(float));
}

void lora_forward(const LoraForwardArgs& a, cudaStream_t stream) {
  const char* op = "lora_forward";
  check_sizes(a.dtype, a.rows, a.in_features, a.out_features, a.rank, op);
  SPK_REQUIRE(std::isfinite(a.scale), op, "scale must be finite");
  if (a.rows == 0) return;
  const int64_t N = a.rows, K = a.in_features, O = a.out_features, R = a.rank;
  check_matrix(a.x, N, K, a.x_row_stride, op, "x");
  check_matrix(a.weight, O, K, a.weight_row_stride, op, "weight");
  check_matrix(a.lora_a, R, K, a.lora_a_row_stride, op, "lora_a");
  check_matrix(a.lora_b, O, R, a.lora_b_row_stride, op, "lora_b");
  check_matrix(a.y, N, O, a.y_row_stride, op, "y");
  check_matrix(a.xa, N, R, R, op, "xa");
  SPK_REQUIRE(a.cublas != nullptr, op, "cublas must be a cuBLAS handle");
  SPK_REQUIRE(cublasSetStream(a.cublas, stream) == CUBLAS_STATUS_SUCCESS, op, "cublasSetStream failed");
  const cudaDataType_t t = cuda_type(a.dtype);
  const Operand x{a.x, t, a.x_row_stride, false};
  gemm_rm(a.cublas, N, R, K, 1.f, x, {a.lora_a, t, a.lora_a_row_stride, true}, 0.f, a.xa, t, R, op, "xa = x A^T");
  gemm_rm(a.cublas, N, O, K, 1.f, x, {a.weight, t, a.weight_row_stride, true}, 0.f, a.y, t, a.y_row_stride, op,
          "y = x W^T");
  gemm_rm(a.cublas, N, O, R, a.scale, {a.xa, t, R, false}, {a.lora_b, t, a.lora_b_row_stride, true}, 1.f, a.y, t,
          a.y_row_stride, op, "y += s xa B^T");
}

void lora_backward(const LoraBackwardArgs& a, cudaStream_t stream) {
  const char* op = "lora_backward";
  check_sizes(a.dtype, a.rows, a.in_features, a.out_features, a.rank, op);
  SPK_REQUIRE(std::isfinite(a.scale), op, "scale must be finite");
  const int64_t N = a.rows, K = a.in_features, O = a.out_features, R = a.rank;
  SPK_REQUIRE(a.grad_a != nullptr && a.grad_b != nullptr, op, "grad_a [rank, in] and grad_b [out, rank] are required");
  SPK_REQUIRE(a.cublas != nullptr, op, "cublas must be a cuBLAS handle");
  if (N == 0) {
    // No rows: the gradients are zero (or unchanged when accumulating).
    if (!a.accumulate) {
      check_cuda(cudaMemsetAsync(a.grad_a, 0, size_t(R * K) * 4, stream), op, "zero grad_a");
      check_cuda(cudaMemsetAsync(a.grad_b, 0, size_t(O * R) * 4, stream), op, "zero grad_b");
    }
    return;
  }
  check_matrix(a.x, N, K, a.x_row_stride, op, "x");
  check_matrix(a.weight, O, K, a.weight_row_stride, op, "weight");
  check_matrix(a.lora_a, R, K, a.lora_a_row_stride, op, "lora_a");
  check_matrix(a.lora_b, O, R, a.lora_b_row_stride, op, "lora_b");
  check_matrix(a.xa, N, R, R, op, "xa");
  check_matrix(a.dy, N, O, a.dy_row_stride, op, "dy");
  if (a.dx) check_matrix(a.dx, N, K, a.dx_row_stride, op, "dx");
  SPK_REQUIRE(a.workspace != nullptr && reinterpret_cast<uintptr_t>(a.workspace) % 256 == 0, op,
              "workspace must be 256-byte aligned and hold lora_backward_workspace_bytes(rows, rank)");
  SPK_REQUIRE(cublasSetStream(a.cublas, stream) == CUBLAS_STATUS_SUCCESS, op, "cublasSetStream failed");
  const cudaDataType_t t = cuda_type(a.dtype);
  const float beta_grad = a.accumulate ? 1.f : 0.f;
  const Operand dy{a.dy, t, a.dy_row_stride, false}, dy_t{a.dy, t, a.dy_row_stride, true};
  const Operand dxa{a.workspace, t, R, false}, dxa_t{a.workspace, t, R, true};
  gemm_rm(a.cublas, O, R, N, a.scale, dy_t, {a.xa, t, R, false}, beta_grad, a.grad_b, CUDA_R_32F, R, op,
          "dB = s dy^T xa");
  gemm_rm(a.cublas, N, R, O, a.scale, dy, {a.lora_b, t, a.lora_b_row_stride, false}, 0.f, a.workspace, t, R, op,
          "dxa = s dy B");
  gemm_rm(a.cublas, R, K, N, 1.f, dxa_t, {a.x, t, a.x_row_stride, false}, beta_grad, a.grad_a, CUDA_R_32F, K, op,
          "dA = dxa^T x");
  if (!a.dx) return;
  gemm_rm(a.cublas, N, K, O, 1.f, dy, {a.weight, t, a.weight_row_stride, false}, 0.f, a.dx, t, a.dx_row_stride, op,
          "dx = dy W");
  gemm_rm(a.cublas, N, K, R, 1.f, dxa, {a.lora_a, t, a.lora_a_row_stride, false}, 1.f, a.dx, t, a.dx_row_stride, op,
          "dx += dxa A");
}

void lora_multi_apply(const LoraMultiArgs& a, cudaStream_t stream) {
  const char* op = "lora_multi_apply";
  check_sizes(a.dtype, a.rows, a.in_features, a.out_features, a.rank, op);
  SPK_REQUIRE(a.rank <= kLoraMaxServingRank, op, "rank must be <= " + std::to_string(kLoraMaxServingRank));
  SPK_REQUIRE(a.num_adapters >= 1 && a.num_adapters <= INT32_MAX, op, "num_adapters must be in [1, 2^31)");
  if (a.rows == 0) return;
  const int64_t N = a.rows, K = a.in_features, O = a.out_features, R = a.rank;
  rowwise::check_rows(a.x, N, K, a.x_row_stride, op, "x");
  rowwise::check_rows(a.y, N, O, a.y_row_stride, op, "y");
  rowwise::check_rows(a.lora_a, R, K, a.lora_a_row_stride, op, "lora_a");
  rowwise::check_rows(a.lora_b, O, R, a.lora_b_row_stride, op, "lora_b");
  SPK_REQUIRE(a.num_adapters == 1 || a.lora_a_adapter_stride >= (R - 1) * a.lora_a_row_stride + K, op,
              "lora_a adapter stride must be >= (rank - 1) * row stride + in_features so adapters do not overlap");
  SPK_REQUIRE(a.num_adapters == 1 || a.lora_b_adapter_stride >= (O - 1) * a.lora_b_row_stride + R, op,
              "lora_b adapter stride must be >= (out - 1) * row stride + rank so adapters do not overlap");
  SPK_REQUIRE(a.scales != nullptr && a.row_adapter != nullptr, op,
              "scales [num_adapters] and row_adapter [rows] must be device arrays");
  SPK_REQUIRE(a.workspace != nullptr && reinterpret_cast<uintptr_t>(a.workspace) % 256 == 0, op,
              "workspace must be 256-byte aligned and hold lora_multi_workspace_bytes(rows, rank)");
  SPK_REQUIRE(ceil_div(O, kThreads) <= 65535u, op, "out_features must be <= 65535 * 256");
  float* xa = static_cast<float*>(a.workspace);
  const bool shrink_vec = K % 8 == 0 && rowwise::vec8_ok(a.x, a.x_row_stride, K) &&
                          rowwise::vec8_ok(a.lora_a, a.lora_a_row_stride, K) && a.lora_a_adapter_stride % 8 == 0;
  const bool expand_vec = R % 8 == 0 && rowwise::vec8_ok(a.lora_b, a.lora_b_row_stride, R) &&
                          a.lora_b_adapter_stride % 8 == 0;
  SPK_HALF_DTYPE_SWITCH(a.dtype, op, T, [&] {
    if (shrink_vec) shrink_kernel<T, true><<<unsigned(N), kThreads, 0, stream>>>(a, xa);
    else shrink_kernel<T, false><<<unsigned(N), kThreads, 0, stream>>>(a, xa);
    SPK_CHECK_LAUNCH(op);
    const dim3 grid(unsigned(N), ceil_div(O, kThreads));
    if (expand_vec) expand_kernel<T, true><<<grid, kThreads, 0, stream>>>(a, xa);
    else expand_kernel<T, false><<<grid, kThreads, 0, stream>>>(a, xa);
  });
  SPK_CHECK_LAUNCH(op);
}

}  // namespace synthpert::kernels

// RoPE kernel, launcher and host inverse-frequency helpers (see rope.h).
//
// One thread per (token, V consecutive pair indices): it computes their cos/sin
// once and rotates those pairs of every head of the token, so the
// trigonometry is amortised over H heads and the kernel stays bound by memory
// traffic. Consecutive threads take consecutive pairs, so each warp reads
// contiguous runs of both halves of a head. V = 8 (16-byte accesses) where
// half the head dim, the pointers and the strides allow it, else V = 1: on an
// H200 the one-pair (2-byte) version moved 45% of HBM peak at 16384 tokens x
// 32 heads x 128 (benchmarks/results/kernels-nvidia-h200-2026-12-04.md); the
// 8-pair one is not yet measured. Both compute the same values.
#include "kernels/rope.h"

#include <cmath>
#include <string>

#include "kernels/rowwise.cuh"

namespace synthpert::kernels {
namespace {

constexpr int kThreads = 128;

template <typename T, int V>
__global__ void __launch_bounds__(kThreads) rope_kernel(RopeArgs a) {
  const int half = a.head_dim / 2;
  const int groups = half / V;  // threads per token
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= a.tokens * groups) return;
  const int64_t n = t / groups;
  const int i0 = int(t % groups) * V;
  float s[V], c[V];
  const float position = float(a.positions[n]);
#pragma unroll
  for (int v = 0; v < V; ++v) {
    // fp32 angle, as the reference implementations form it.
    sincosf(position * a.inv_freq[i0 + v], &s[v], &c[v]);
    if (a.inverse) s[v] = -s[v];
  }
  const T* x = static_cast<const T*>(a.x) + n * a.x_token_stride + i0;
  T* y = static_cast<T*>(a.y) + n * a.y_token_stride + i0;
  for (int h = 0; h < a.heads; ++h) {
    float x1[V], x2[V], y1[V], y2[V];
    rowwise::load<T, V>(x + h * a.x_head_stride, x1);
    rowwise::load<T, V>(x + h * a.x_head_stride + half, x2);
#pragma unroll
    for (int v = 0; v < V; ++v) {
      y1[v] = x1[v] * c[v] - x2[v] * s[v];
      y2[v] = x2[v] * c[v] + x1[v] * s[v];
    }
    rowwise::store<T, V>(y + h * a.y_head_stride, y1);
    rowwise::store<T, V>(y + h * a.y_head_stride + half, y2);
  }
}

}  // namespace

void rope_apply(const RopeArgs& a, cudaStream_t stream) {
  const char* op = a.inverse ? "rope_backward" : "rope_forward";
  rowwise::check_half_dtype(a.dtype, op);
  SPK_REQUIRE(a.tokens >= 0, op, "tokens must be >= 0");
  SPK_REQUIRE(a.heads > 0, op, "heads must be > 0");
  SPK_REQUIRE(a.head_dim > 0 && a.head_dim % 2 == 0, op,
              "head_dim must be even and > 0, got " + std::to_string(a.head_dim));
  if (a.tokens == 0) return;
  SPK_REQUIRE(a.x != nullptr && a.y != nullptr, op, "x and y must not be null");
  SPK_REQUIRE(a.positions != nullptr, op, "positions must be a device [tokens] int64 array");
  SPK_REQUIRE(a.inv_freq != nullptr, op, "inv_freq must be a device [head_dim / 2] fp32 array");
  SPK_REQUIRE(a.heads == 1 || (a.x_head_stride >= a.head_dim && a.y_head_stride >= a.head_dim), op,
              "x and y head_stride must be >= head_dim");
  SPK_REQUIRE(a.tokens == 1 || (a.x_token_stride >= int64_t(a.heads - 1) * a.x_head_stride + a.head_dim &&
                                a.y_token_stride >= int64_t(a.heads - 1) * a.y_head_stride + a.head_dim),
              op, "x and y token_stride must cover all heads of a token (no overlapping tokens)");
  const bool aliased = a.x == a.y;
  SPK_REQUIRE(!aliased || (a.x_token_stride == a.y_token_stride && a.x_head_stride == a.y_head_stride), op,
              "in-place use (y == x) needs identical strides");
  // Eight pairs per thread when every access of 8 elements is 16-byte aligned.
  const bool vec8 = (a.head_dim / 2) % 8 == 0 && rowwise::vec8_ok(a.x, a.x_token_stride, 8) &&
                    rowwise::vec8_ok(a.y, a.y_token_stride, 8) && a.x_head_stride % 8 == 0 && a.y_head_stride % 8 == 0;
  const int64_t threads = a.tokens * (a.head_dim / 2) / (vec8 ? 8 : 1);
  SPK_REQUIRE(ceil_div(threads, kThreads) <= 0x7fffffffu, op, "tokens * head_dim / 2 is too large for one launch");
  SPK_HALF_DTYPE_SWITCH(a.dtype, op, T, [&] {
    SPK_VEC_SWITCH(vec8, V, [&] { rope_kernel<T, V><<<ceil_div(threads, kThreads), kThreads, 0, stream>>>(a); });
  });
  SPK_CHECK_LAUNCH(op);
}

std::vector<float> rope_inv_freq(int head_dim, double theta) {
  SPK_REQUIRE(head_dim > 0 && head_dim % 2 == 0, "rope_inv_freq", "head_dim must be even and > 0");
  SPK_REQUIRE(theta > 0, "rope_inv_freq", "theta must be > 0");
  std::vector<float> f(size_t(head_dim / 2));
  // fp32 throughout, in the order of Hugging Face's default RoPE init.
  for (int i = 0; i < head_dim / 2; ++i)
    f[size_t(i)] = 1.0f / std::pow(float(theta), float(2 * i) / float(head_dim));
  return f;
}

std::vector<float> rope_inv_freq_llama3(int head_dim, double theta, const RopeLlama3Scaling& s) {
  const char* op = "rope_inv_freq_llama3";
  SPK_REQUIRE(s.factor > 0 && s.original_max_position_embeddings > 0, op,
              "factor and original_max_position_embeddings must be > 0");
  SPK_REQUIRE(s.high_freq_factor > s.low_freq_factor, op, "high_freq_factor must exceed low_freq_factor");
  std::vector<float> f = rope_inv_freq(head_dim, theta);
  const double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
  for (float& v : f) {
    const float wavelen = float(2 * M_PI / v);
    const float scaled = wavelen > low_wavelen ? float(v / s.factor) : v;
    if (wavelen < high_wavelen || wavelen > low_wavelen) {
      v = scaled;
    } else {
      const float smooth = float((s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                                 (s.high_freq_factor - s.low_freq_factor));
      v = float((1 - smooth) * scaled / s.factor + smooth * scaled);
    }
  }
  return f;
}

}  // namespace synthpert::kernels

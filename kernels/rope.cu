// RoPE kernel, launcher and host inverse-frequency helpers (see rope.h).
//
// One thread per (token, pair index i): it computes cos/sin once and rotates
// pair i of every head of the token, so the trigonometry is amortised over H
// heads and the kernel stays bound by memory traffic. Consecutive threads take
// consecutive i, so each warp reads contiguous runs of both halves of a head.
#include "kernels/rope.h"

#include <cmath>
#include <string>

#include "kernels/rowwise.cuh"

namespace synthpert::kernels {
namespace {

constexpr int kThreads = 128;

template <typename T>
__global__ void __launch_bounds__(kThreads) rope_kernel(RopeArgs a) {
  const int half = a.head_dim / 2;
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= a.tokens * half) return;
  const int64_t n = t / half;
  const int i = int(t % half);
  // fp32 angle, as the reference implementations form it.
  const float angle = float(a.positions[n]) * a.inv_freq[i];
  float s, c;
  sincosf(angle, &s, &c);
  if (a.inverse) s = -s;
  const T* x = static_cast<const T*>(a.x) + n * a.x_token_stride + i;
  T* y = static_cast<T*>(a.y) + n * a.y_token_stride + i;
  for (int h = 0; h < a.heads; ++h) {
    const float x1 = to_float(x[h * a.x_head_stride]);
    const float x2 = to_float(x[h * a.x_head_stride + half]);
    y[h * a.y_head_stride] = from_float<T>(x1 * c - x2 * s);
    y[h * a.y_head_stride + half] = from_float<T>(x2 * c + x1 * s);
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
  const int64_t threads = a.tokens * (a.head_dim / 2);
  SPK_REQUIRE(ceil_div(threads, kThreads) <= 0x7fffffffu, op, "tokens * head_dim / 2 is too large for one launch");
  SPK_HALF_DTYPE_SWITCH(a.dtype, op, T, [&] {
    rope_kernel<T><<<ceil_div(threads, kThreads), kThreads, 0, stream>>>(a);
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

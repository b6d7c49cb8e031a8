// The attention references checked against independent oracles on CPU:
// libtorch fp64 ops (matmul, softmax, logsumexp, autograd) on odd shapes, and
// central finite differences for the backward on tiny fp64 shapes.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "tests/reference/kernels/attention_ref.h"

using synthpert::reference::AttentionShape;

namespace {

std::vector<double> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = dist(rng);
  return v;
}

at::Tensor as_tensor(const std::vector<double>& v, at::IntArrayRef shape) {
  return at::tensor(v, at::TensorOptions().dtype(at::kDouble)).reshape(shape);
}

double max_abs_diff(const std::vector<double>& a, const at::Tensor& b) {
  const at::Tensor bc = b.contiguous();
  REQUIRE(static_cast<int64_t>(a.size()) == bc.numel());
  const double* p = bc.data_ptr<double>();
  double m = 0.0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - p[i]));
  return m;
}

// Torch oracle for one packed batch: per sequence, expands kv heads to query
// heads and runs matmul/softmax; gradients come from autograd.
struct TorchAttention {
  at::Tensor out, lse, dq, dk, dv;
};

TorchAttention torch_attention(const AttentionShape& s, const std::vector<double>& q,
                               const std::vector<double>& k, const std::vector<double>& v,
                               const std::vector<double>& dout) {
  const int64_t N = s.tokens();
  const int H = s.heads, Hkv = s.kv_heads, D = s.head_dim;
  at::Tensor tq = as_tensor(q, {N, H, D}).set_requires_grad(true);
  at::Tensor tk = as_tensor(k, {N, Hkv, D}).set_requires_grad(true);
  at::Tensor tv = as_tensor(v, {N, Hkv, D}).set_requires_grad(true);
  std::vector<at::Tensor> outs, lses;
  for (size_t b = 0; b + 1 < s.cu_seqlens.size(); ++b) {
    const int64_t begin = s.cu_seqlens[b], len = s.cu_seqlens[b + 1] - begin;
    if (len == 0) continue;
    // (T, H, D) -> (H, T, D); kv heads repeated to match query heads (GQA).
    at::Tensor qs = tq.narrow(0, begin, len).transpose(0, 1);
    at::Tensor ks = tk.narrow(0, begin, len).transpose(0, 1).repeat_interleave(H / Hkv, 0);
    at::Tensor vs = tv.narrow(0, begin, len).transpose(0, 1).repeat_interleave(H / Hkv, 0);
    at::Tensor scores = at::matmul(qs, ks.transpose(1, 2)) * s.scale;  // (H, T, T)
    if (s.causal) {
      at::Tensor mask = at::ones({len, len}, at::kBool).triu(1);
      scores = scores.masked_fill(mask, -std::numeric_limits<double>::infinity());
    }
    lses.push_back(at::logsumexp(scores, -1));                      // (H, T)
    outs.push_back(at::matmul(at::softmax(scores, -1), vs).transpose(0, 1));  // (T, H, D)
  }
  TorchAttention r;
  r.out = at::cat(outs, 0);
  r.lse = at::cat(lses, 1);
  (r.out * as_tensor(dout, {N, H, D})).sum().backward();
  r.dq = tq.grad();
  r.dk = tk.grad();
  r.dv = tv.grad();
  return r;
}

}  // namespace

TEST_CASE("attention reference matches libtorch fp64 on odd shapes", "[cpu][attention]") {
  struct Case {
    int H, Hkv, D;
    bool causal;
    std::vector<int32_t> cu;
  };
  const std::vector<Case> cases = {
      {1, 1, 8, false, {0, 1}},
      {3, 1, 5, true, {0, 5}},
      {6, 3, 16, true, {0, 7, 7, 8, 31}},  // zero-length and length-1 sequences
      {5, 5, 12, false, {0, 3, 26, 27}},
      {4, 2, 64, true, {0, 123}},
  };
  uint32_t seed = 1;
  for (const Case& c : cases) {
    AttentionShape s;
    s.heads = c.H;
    s.kv_heads = c.Hkv;
    s.head_dim = c.D;
    s.causal = c.causal;
    s.scale = 1.0 / std::sqrt(static_cast<double>(c.D));
    s.cu_seqlens = c.cu;
    const size_t N = static_cast<size_t>(s.tokens());
    const auto q = random_values(N * c.H * c.D, seed++);
    const auto k = random_values(N * c.Hkv * c.D, seed++);
    const auto v = random_values(N * c.Hkv * c.D, seed++);
    const auto dout = random_values(N * c.H * c.D, seed++);
    INFO("H=" << c.H << " Hkv=" << c.Hkv << " D=" << c.D << " causal=" << c.causal << " N=" << N);

    const auto fwd = synthpert::reference::attention_forward_ref(s, q, k, v);
    const auto grads = synthpert::reference::attention_backward_ref(s, q, k, v, dout);
    const TorchAttention t = torch_attention(s, q, k, v, dout);
    // Both sides are fp64 with different summation orders: agreement to a few
    // hundred ulps of O(1) values is the expected outcome.
    CHECK(max_abs_diff(fwd.out_NHD, t.out) < 1e-12);
    CHECK(max_abs_diff(fwd.lse_HN, t.lse) < 1e-12);
    CHECK(max_abs_diff(grads.dq_NHD, t.dq) < 1e-12);
    CHECK(max_abs_diff(grads.dk_NHD, t.dk) < 1e-12);
    CHECK(max_abs_diff(grads.dv_NHD, t.dv) < 1e-12);
  }
}

TEST_CASE("attention reference backward matches central finite differences", "[cpu][attention]") {
  AttentionShape s;
  s.heads = 3;
  s.kv_heads = 1;
  s.head_dim = 4;
  s.scale = 0.7;
  s.cu_seqlens = {0, 3, 4, 8};
  for (bool causal : {false, true}) {
    s.causal = causal;
    const size_t N = static_cast<size_t>(s.tokens());
    auto q = random_values(N * s.heads * s.head_dim, 11);
    auto k = random_values(N * s.kv_heads * s.head_dim, 12);
    auto v = random_values(N * s.kv_heads * s.head_dim, 13);
    const auto dout = random_values(N * s.heads * s.head_dim, 14);
    const auto grads = synthpert::reference::attention_backward_ref(s, q, k, v, dout);

    // L(q, k, v) = sum(out * dout); dL/dx by central differences per element.
    auto loss = [&]() {
      const auto out = synthpert::reference::attention_forward_ref(s, q, k, v).out_NHD;
      double acc = 0.0;
      for (size_t i = 0; i < out.size(); ++i) acc += out[i] * dout[i];
      return acc;
    };
    const double h = 1e-6;
    auto check_grad = [&](std::vector<double>& x, const std::vector<double>& analytic, const char* name) {
      double worst = 0.0;
      for (size_t i = 0; i < x.size(); ++i) {
        const double saved = x[i];
        x[i] = saved + h;
        const double up = loss();
        x[i] = saved - h;
        const double down = loss();
        x[i] = saved;
        worst = std::max(worst, std::abs((up - down) / (2 * h) - analytic[i]));
      }
      INFO(name << " causal=" << causal);
      // Central differences carry O(h^2) truncation (~1e-12) and O(eps/h)
      // rounding (~1e-10) error for O(1) values.
      CHECK(worst < 1e-8);
    };
    check_grad(q, grads.dq_NHD, "dq");
    check_grad(k, grads.dk_NHD, "dk");
    check_grad(v, grads.dv_NHD, "dv");
  }
}

TEST_CASE("attention reference rejects malformed shapes", "[cpu][attention]") {
  AttentionShape s;
  s.heads = 3;
  s.kv_heads = 2;
  s.head_dim = 4;
  s.cu_seqlens = {0, 2};
  std::vector<double> q(2 * 3 * 4), kv(2 * 2 * 4);
  CHECK_THROWS_WITH(synthpert::reference::attention_forward_ref(s, q, kv, kv),
                    Catch::Contains("multiple of kv_heads"));
  s.kv_heads = 1;
  s.cu_seqlens = {0, 2, 1};
  CHECK_THROWS_WITH(synthpert::reference::attention_forward_ref(s, q, std::vector<double>(8), std::vector<double>(8)),
                    Catch::Contains("non-decreasing"));
}

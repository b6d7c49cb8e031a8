// RMSNorm, RoPE and SwiGLU computed with libtorch CPU ops in two ways, for
// the tolerance rule of DESIGN.md section 5 (see test_attention_common.h):
//   *_peer   the eager PyTorch way in bf16/f16, as engine/model.cpp and
//            engine/rope.cpp compute them, gradients by autograd
//   *_model  the kernels' rounding points: fp32 math, one rounding per
//            output (and, for RMSNorm, the model's inner rounding of x*rstd)
// Inputs are fp64 tensors holding dtype-exact values; outputs are fp64.
#pragma once

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "tests/kernels/test_attention_peer.h"

namespace synthpert::test {

struct RowwiseResult {
  at::Tensor out, grad_a, grad_b;  // op-specific: see each function
};

// out = y, grad_a = dx, grad_b = dw.
inline RowwiseResult rmsnorm_peer(const at::Tensor& x, const at::Tensor& w, const at::Tensor& dy, double eps,
                                  at::ScalarType dt) {
  torch::Tensor tx = x.to(dt).set_requires_grad(true), tw = w.to(dt).set_requires_grad(true);
  const torch::Tensor xf = tx.to(torch::kFloat32);
  const torch::Tensor normed = (xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps)).to(dt);
  const torch::Tensor y = tw * normed;
  y.backward(dy.to(dt));
  return {y.detach().to(at::kDouble), tx.grad().to(at::kDouble), tw.grad().to(at::kDouble)};
}

inline RowwiseResult rmsnorm_model(const at::Tensor& x, const at::Tensor& w, const at::Tensor& dy, double eps,
                                   at::ScalarType dt) {
  const at::Tensor xf = x.to(at::kFloat), wf = w.to(at::kFloat), dyf = dy.to(at::kFloat);
  const at::Tensor rstd = at::rsqrt(xf.pow(2).mean(-1, true) + eps);
  const at::Tensor n = xf * rstd, n_rounded = rnd(n, dt);
  const at::Tensor y = rnd(wf * n_rounded, dt);
  const at::Tensor mean_dot = (dyf * wf * n).mean(-1, true);
  const at::Tensor dx = rnd(rstd * (dyf * wf - n * mean_dot), dt);
  const at::Tensor dw = (dyf * n_rounded).sum(0);  // fp32 output
  return {y.to(at::kDouble), dx.to(at::kDouble), dw.to(at::kDouble)};
}

// out = silu(gate) * up, grad_a = dgate, grad_b = dup.
inline RowwiseResult swiglu_peer(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& dout,
                                 at::ScalarType dt) {
  torch::Tensor g = gate.to(dt).set_requires_grad(true), u = up.to(dt).set_requires_grad(true);
  // Eager CUDA evaluates silu (and its backward) in fp32 and stores the
  // result in the dtype; spelled out here because libtorch 1.13's CPU silu
  // has no f16 kernel.
  const torch::Tensor out = torch::silu(g.to(torch::kFloat32)).to(dt) * u;
  out.backward(dout.to(dt));
  return {out.detach().to(at::kDouble), g.grad().to(at::kDouble), u.grad().to(at::kDouble)};
}

inline RowwiseResult swiglu_model(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& dout,
                                  at::ScalarType dt) {
  const at::Tensor g = gate.to(at::kFloat), u = up.to(at::kFloat), d = dout.to(at::kFloat);
  const at::Tensor s = at::sigmoid(g);
  return {rnd(g * s * u, dt).to(at::kDouble), rnd(d * u * s * (1 + g * (1 - s)), dt).to(at::kDouble),
          rnd(d * g * s, dt).to(at::kDouble)};
}

// Angles [N, D/2] formed in fp32 as the model does.
inline at::Tensor rope_angles(const std::vector<int64_t>& pos, const std::vector<float>& inv_freq) {
  const int64_t N = int64_t(pos.size()), half = int64_t(inv_freq.size());
  return at::tensor(pos, at::kLong).to(at::kFloat).view({N, 1}) * at::tensor(inv_freq, at::kFloat).view({1, half});
}

// x [N, H, D]; out = rotated x, grad_a = the gradient for dy (inverse rotation).
inline RowwiseResult rope_peer(const at::Tensor& x, const at::Tensor& dy, const std::vector<int64_t>& pos,
                               const std::vector<float>& inv_freq, at::ScalarType dt) {
  const at::Tensor angle = rope_angles(pos, inv_freq);
  const at::Tensor emb = at::cat({angle, angle}, -1).unsqueeze(1);  // (N, 1, D) fp32
  const at::Tensor cos = emb.cos().to(dt), sin = emb.sin().to(dt);
  const int64_t half = x.size(2) / 2;
  torch::Tensor tx = x.to(dt).set_requires_grad(true);
  const torch::Tensor rotated = torch::cat({-tx.narrow(-1, half, half), tx.narrow(-1, 0, half)}, -1);
  const torch::Tensor y = tx * cos + rotated * sin;
  y.backward(dy.to(dt));
  return {y.detach().to(at::kDouble), tx.grad().to(at::kDouble), at::Tensor()};
}

inline RowwiseResult rope_model(const at::Tensor& x, const at::Tensor& dy, const std::vector<int64_t>& pos,
                                const std::vector<float>& inv_freq, at::ScalarType dt) {
  const at::Tensor angle = rope_angles(pos, inv_freq).unsqueeze(1);  // (N, 1, D/2) fp32
  const at::Tensor c = angle.cos(), s = angle.sin();
  const int64_t half = x.size(2) / 2;
  auto rotate = [&](const at::Tensor& v, const at::Tensor& sn) {
    const at::Tensor v1 = v.to(at::kFloat).narrow(-1, 0, half), v2 = v.to(at::kFloat).narrow(-1, half, half);
    return rnd(at::cat({v1 * c - v2 * sn, v2 * c + v1 * sn}, -1), dt).to(at::kDouble);
  };
  return {rotate(x, s), rotate(dy, -s), at::Tensor()};
}

// Shapes shared by the GPU tests and the CPU check that the bound is achievable.
struct RowsCase {
  int64_t rows, width;
  bool strided;  // rows padded by 24 elements (the padding is NaN on the GPU)
};
inline const std::vector<RowsCase>& rmsnorm_cases() {
  static const std::vector<RowsCase> all = {{1, 4096, false}, {5, 123, true},   {123, 1000, true},
                                            {1023, 64, false}, {1023, 100, true}, {7, 12288, false},
                                            {300, 2056, false}};
  return all;
}
inline const std::vector<RowsCase>& swiglu_cases() {
  static const std::vector<RowsCase> all = {{1, 11008, false}, {5, 123, true}, {123, 1000, true},
                                            {1023, 100, false}, {1023, 64, true}};
  return all;
}
struct RopeCase {
  int64_t tokens;
  int heads, head_dim;
  bool strided, llama3;
};
inline const std::vector<RopeCase>& rope_cases() {
  static const std::vector<RopeCase> all = {{1, 1, 64, false, false},  {5, 3, 128, true, true},
                                            {123, 6, 64, false, true}, {1023, 2, 128, false, false},
                                            {17, 5, 80, true, false},  {1023, 3, 6, true, true}};
  return all;
}
// Positions out of order and up to 128k, as packed long-context batches have.
inline std::vector<int64_t> rope_positions(int64_t tokens) {
  std::vector<int64_t> pos(static_cast<size_t>(tokens));
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = int64_t((i * 7919 + 13) % 131072);
  return pos;
}

}  // namespace synthpert::test

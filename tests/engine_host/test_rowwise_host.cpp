// The kernel branches of engine/rowwise_ops.cpp (RMSNorm, SwiGLU, RoPE), run
// on CPU against host emulations of their launchers (host_rowwise.cpp): bf16
// inputs, outputs and gradients against autograd through the plain
// expressions in fp64.
// libtorch before Catch: c10 defines its own CHECK, and Catch's must be the
// one these tests use.
#include "engine/config.h"
#include "engine/kernel_launch.h"
#include "engine/rope.h"
#include "engine/rowwise_ops.h"

#include "tests/engine_host/host_test_util.h"

#include <catch2/catch.hpp>

using namespace synthpert::engine;
using synthpert::test::rel_err;

TEST_CASE("RMSNorm, SwiGLU and RoPE kernel branches marshal the kernels' arguments", "[engine_host]") {
  REQUIRE(kernels_apply(torch::kCPU, torch::kBFloat16));  // the host emulation build
  torch::manual_seed(9);
  const auto bf = [](const torch::Tensor& t) { return t.to(torch::kBFloat16); };
  const double tol = 2e-2;  // a few bf16 steps of an fp64 result

  // RMSNorm over (2, 7, 24), weight trained.
  const auto x_bf = bf(torch::randn({2, 7, 24}) * 2), w_bf = bf(torch::randn({24})), dy = torch::randn({2, 7, 24});
  auto xr = x_bf.to(torch::kFloat64).requires_grad_(true), wr = w_bf.to(torch::kFloat64).requires_grad_(true);
  const auto var = xr.pow(2).mean(-1, true);
  const auto ref = wr * (xr * torch::rsqrt(var + 1e-5));
  (ref * dy.to(torch::kFloat64)).sum().backward();
  auto x = x_bf.clone().requires_grad_(true), w = w_bf.clone().requires_grad_(true);
  const auto y = rms_norm_op(x, w, 1e-5);
  (y.to(torch::kFloat64) * dy.to(torch::kFloat64)).sum().backward();
  CHECK(rel_err(y, ref.detach()) < tol);
  CHECK(rel_err(x.grad(), xr.grad()) < tol);
  CHECK(rel_err(w.grad(), wr.grad()) < tol);

  // SwiGLU over (3, 5, 40).
  const auto g_bf = bf(torch::randn({3, 5, 40}) * 3), u_bf = bf(torch::randn({3, 5, 40}));
  auto gr = g_bf.to(torch::kFloat64).requires_grad_(true), ur = u_bf.to(torch::kFloat64).requires_grad_(true);
  const auto sref = torch::silu(gr) * ur;
  const auto d = torch::randn({3, 5, 40}, torch::kFloat64);
  (sref * d).sum().backward();
  auto g = g_bf.clone().requires_grad_(true), u = u_bf.clone().requires_grad_(true);
  const auto s = swiglu_op(g, u);
  (s.to(torch::kFloat64) * d).sum().backward();
  CHECK(rel_err(s, sref.detach()) < tol);
  CHECK(rel_err(g.grad(), gr.grad()) < tol);
  CHECK(rel_err(u.grad(), ur.grad()) < tol);

  // RoPE on a (2, 6, 3, 16) view with a padded head stride, positions up to 900.
  ModelConfig c;
  c.head_dim = 16;
  c.rope_theta = 10000;
  const auto inv_freq = rope_inv_freq(c);
  const auto q_store = bf(torch::randn({2, 6, 3, 20}));
  const auto q_bf = q_store.narrow(3, 0, 16);
  const auto positions = torch::tensor({0, 1, 2, 3, 4, 5, 7, 100, 101, 899, 900, 3}, torch::kInt64).view({2, 6});
  auto qr = q_bf.to(torch::kFloat64).requires_grad_(true);
  auto [cos, sin] = rope_cos_sin(inv_freq, positions);
  const auto half = 8;
  const auto x1 = qr.narrow(-1, 0, half), x2 = qr.narrow(-1, half, half);
  const auto rot = torch::cat({-x2, x1}, -1);
  const auto rref = qr * cos.unsqueeze(2).to(torch::kFloat64) + rot * sin.unsqueeze(2).to(torch::kFloat64);
  const auto dr = torch::randn({2, 6, 3, 16}, torch::kFloat64);
  (rref * dr).sum().backward();
  auto q = q_bf.detach().requires_grad_(true);
  const auto rq = rope_op(q, positions, inv_freq);
  (rq.to(torch::kFloat64) * dr).sum().backward();
  CHECK(rel_err(rq, rref.detach()) < tol);
  CHECK(rel_err(q.grad(), qr.grad()) < tol);

  // Batch 1, output transposed to (B, H, T, D) and copied, as the dense
  // attention path does: the gradient comes back with strides
  // (H*T*D, D, T*D, 1), and its (tokens, heads, head_dim) reshape is a view
  // whose token stride does not span a token's heads.
  const auto k_bf = bf(torch::randn({1, 6, 3, 16}));
  const auto pos1 = positions.narrow(0, 0, 1);
  auto [cos1, sin1] = rope_cos_sin(inv_freq, pos1);
  auto kr = k_bf.to(torch::kFloat64).requires_grad_(true);
  const auto k1 = kr.narrow(-1, 0, half), k2 = kr.narrow(-1, half, half);
  const auto kref = kr * cos1.unsqueeze(2).to(torch::kFloat64) +
                    torch::cat({-k2, k1}, -1) * sin1.unsqueeze(2).to(torch::kFloat64);
  const auto dk = torch::randn({1, 3, 6, 16}, torch::kFloat64);
  (kref.transpose(1, 2).contiguous() * dk).sum().backward();
  auto k = k_bf.detach().requires_grad_(true);
  (rope_op(k, pos1, inv_freq).transpose(1, 2).contiguous().to(torch::kFloat64) * dk).sum().backward();
  CHECK(rel_err(k.grad(), kr.grad()) < tol);
}

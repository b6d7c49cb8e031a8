// rms_norm_op and swiglu_op (engine/rowwise_ops.h) on CPU: forward and
// explicit backward against torch autograd through the plain expressions in
// float64, and the engine with the fused ops against the engine without them.
// On CUDA the ops call kernels/rmsnorm and kernels/swiglu (checked against
// their references in tests/kernels); this tests the wiring.
#include <catch2/catch.hpp>

#include "engine/rope.h"
#include "engine/rowwise_ops.h"
#include "engine_test_util.h"

using namespace synthpert;
using namespace synthpert::engine;

namespace {
double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}
}  // namespace

TEST_CASE("rms_norm_op matches autograd through the Hugging Face expression", "[engine][rowwise]") {
  torch::manual_seed(3);
  for (const auto& shape : {std::vector<int64_t>{1, 1}, {3, 5, 7}, {2, 3, 4, 24}}) {
    INFO("shape " << torch::IntArrayRef(shape));
    const int64_t C = shape.back();
    const auto x64 = torch::randn(shape, torch::kFloat64) * 3, w64 = torch::randn({C}, torch::kFloat64);
    const auto up64 = torch::randn(shape, torch::kFloat64);
    auto xr = x64.clone().requires_grad_(true), wr = w64.clone().requires_grad_(true);
    const auto ref = rms_norm(xr, wr, 1e-5);
    (ref * up64).sum().backward();
    for (bool train_weight : {true, false}) {
      auto x = x64.to(torch::kFloat32).requires_grad_(true), w = w64.to(torch::kFloat32).requires_grad_(train_weight);
      const auto y = rms_norm_op(x, w, 1e-5);
      CHECK(y.sizes() == x.sizes());
      (y * up64.to(torch::kFloat32)).sum().backward();
      CHECK(max_diff(y, ref) < 1e-5);
      CHECK(max_diff(x.grad(), xr.grad()) < 1e-4);
      if (train_weight) {
        CHECK(max_diff(w.grad(), wr.grad()) < 1e-4);
      } else {
        CHECK_FALSE(w.grad().defined());
      }
    }
  }
}

TEST_CASE("swiglu_op matches autograd through silu(gate) * up", "[engine][rowwise]") {
  torch::manual_seed(4);
  for (const auto& shape : {std::vector<int64_t>{1, 1}, {2, 9, 13}}) {
    const auto g64 = torch::randn(shape, torch::kFloat64) * 4, u64 = torch::randn(shape, torch::kFloat64);
    const auto d64 = torch::randn(shape, torch::kFloat64);
    auto gr = g64.clone().requires_grad_(true), ur = u64.clone().requires_grad_(true);
    const auto ref = torch::silu(gr) * ur;
    (ref * d64).sum().backward();
    auto g = g64.to(torch::kFloat32).requires_grad_(true), u = u64.to(torch::kFloat32).requires_grad_(true);
    const auto out = swiglu_op(g, u);
    (out * d64.to(torch::kFloat32)).sum().backward();
    CHECK(max_diff(out, ref) < 1e-5);
    CHECK(max_diff(g.grad(), gr.grad()) < 1e-5);
    CHECK(max_diff(u.grad(), ur.grad()) < 1e-5);
  }
  CHECK_THROWS(swiglu_op(torch::randn({2, 3}), torch::randn({3, 2})));
  CHECK_THROWS(rms_norm_op(torch::randn({2, 3}), torch::randn({2}), 1e-6));
}

TEST_CASE("the engine with the fused row-wise ops equals the engine without them", "[engine][rowwise]") {
  for (Arch arch : {Arch::kLlama, Arch::kQwen3}) {
    SECTION(arch_name(arch)) {
      test::TempDir dir("rowwise");
      const auto c = test::small_test_config(arch);
      auto m = test::small_test_model(dir.path, c, 5);
      const auto batch = ForwardBatch::from_ids(torch::tensor(test::random_ids(22, c.vocab_size, 6)).view({2, 11}));
      torch::Tensor hidden[2], grads[2][3];
      for (int fused = 0; fused < 2; ++fused) {
        m.rowwise_path = fused ? RowwisePath::kFused : RowwisePath::kTorch;
        std::vector<torch::Tensor*> params = {&m.layers[0].input_norm, &m.layers[1].post_attention_norm,
                                              &m.layers[1].gate_proj.weight};
        for (auto* t : params) *t = t->detach().requires_grad_(true);
        const auto h = m.hidden_states(batch, nullptr, true);
        torch::manual_seed(8);
        (h * torch::randn(h.sizes())).sum().backward();
        hidden[fused] = h.detach();
        for (size_t i = 0; i < params.size(); ++i) grads[fused][i] = params[i]->grad().clone();
        for (auto* t : params) *t = t->detach();
      }
      CHECK(max_diff(hidden[1], hidden[0]) < 2e-5);
      for (int i = 0; i < 3; ++i) {
        INFO("gradient " << i);
        CHECK(grads[0][i].abs().max().item<double>() > 0);
        CHECK(max_diff(grads[1][i], grads[0][i]) < 2e-5 * std::max(1.0, grads[0][i].abs().max().item<double>()));
      }
    }
  }
}

TEST_CASE("rope_op matches autograd through apply_rope with llama3 frequencies", "[engine][rowwise]") {
  auto c = preset_config(Arch::kLlama, "tiny");
  c.head_dim = 12;
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8;
  c.rope_scaling.low_freq_factor = 1;
  c.rope_scaling.high_freq_factor = 4;
  c.rope_scaling.original_max_position_embeddings = 64;
  const auto inv_freq = rope_inv_freq(c);
  torch::manual_seed(12);
  const int64_t B = 2, T = 7, H = 3, D = 12;
  const auto x64 = torch::randn({B, T, H, D}, torch::kFloat64), dy64 = torch::randn({B, T, H, D}, torch::kFloat64);
  // Positions far apart (up to 3000) so the angle's fp32 rounding matters.
  const auto positions = torch::tensor({0, 1, 2, 3, 500, 501, 2999, 5, 0, 7, 1023, 1024, 64, 65}, torch::kInt64)
                             .view({B, T});
  auto xr = x64.to(torch::kFloat32).requires_grad_(true);
  auto [cos, sin] = rope_cos_sin(inv_freq, positions);
  const auto ref = apply_rope(xr.transpose(1, 2), cos, sin).transpose(1, 2);
  (ref * dy64.to(torch::kFloat32)).sum().backward();
  auto x = x64.to(torch::kFloat32).requires_grad_(true);
  const auto y = rope_op(x, positions, inv_freq);
  (y * dy64.to(torch::kFloat32)).sum().backward();
  CHECK(max_diff(y, ref) < 1e-5);
  CHECK(max_diff(x.grad(), xr.grad()) < 1e-5);
  CHECK_THROWS(rope_op(x, positions, inv_freq.narrow(0, 0, 5)));
}

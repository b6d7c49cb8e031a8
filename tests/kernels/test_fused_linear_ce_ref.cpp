// The linear + cross-entropy reference against libtorch fp64 (mm,
// cross_entropy with ignore_index, autograd) and finite differences ([cpu]).
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "tests/kernels/ref_test_util.h"
#include "tests/reference/kernels/fused_linear_ce_ref.h"

using namespace synthpert::test;
using synthpert::reference::linear_cross_entropy_ref;

namespace {

// Every third token ignored (the first one kept), targets spread over the vocab.
std::vector<int64_t> make_targets(int64_t n, int64_t vocab, int64_t ignore) {
  std::vector<int64_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[size_t(i)] = (i % 3 == 2) ? ignore : (i * 7 + 3) % vocab;
  return t;
}

}  // namespace

TEST_CASE("linear cross-entropy reference matches libtorch fp64 and autograd", "[cpu][fused_ce]") {
  const int64_t ignore = -100;
  for (auto [N, C, V] : {std::tuple<int64_t, int64_t, int64_t>{1, 3, 5}, {5, 7, 11}, {123, 16, 100}, {40, 9, 1000}}) {
    INFO("N=" << N << " C=" << C << " V=" << V);
    const auto h = randn(size_t(N * C), 71), w = randn(size_t(V * C), 72, 0.5);
    const auto targets = make_targets(N, V, ignore);
    const double scale = 0.37;
    torch::Tensor th = tensor_of(h, {N, C}).set_requires_grad(true), tw = tensor_of(w, {V, C}).set_requires_grad(true);
    const torch::Tensor tt = torch::tensor(targets, torch::kLong);
    const torch::Tensor logits = th.mm(tw.t());
    const torch::Tensor loss = torch::nn::functional::cross_entropy(
        logits, tt, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(ignore).reduction(torch::kNone));
    (loss.sum() * scale).backward();
    const auto r = linear_cross_entropy_ref(h, w, targets, C, ignore, scale);
    CHECK(max_abs_diff(r.loss_N, loss) < 1e-10);
    CHECK(max_abs_diff(r.lse_N, torch::logsumexp(logits, -1)) < 1e-10);
    CHECK(max_abs_diff(r.dhidden_NC, th.grad()) < 1e-10);
    CHECK(max_abs_diff(r.dweight_VC, tw.grad()) < 1e-10);
  }
}

TEST_CASE("linear cross-entropy reference backward matches finite differences", "[cpu][fused_ce]") {
  const int64_t N = 4, C = 3, V = 6;
  const auto h = randn(size_t(N * C), 81), w = randn(size_t(V * C), 82);
  const auto targets = make_targets(N, V, -1);
  const double scale = 0.5;
  auto total = [&](const std::vector<double>& hv, const std::vector<double>& wv) {
    const auto r = linear_cross_entropy_ref(hv, wv, targets, C, -1, scale);
    double s = 0.0;
    for (double l : r.loss_N) s += scale * l;
    return s;
  };
  const auto r = linear_cross_entropy_ref(h, w, targets, C, -1, scale);
  CHECK(max_abs_diff(r.dhidden_NC, finite_difference([&](const std::vector<double>& v) { return total(v, w); }, h)) <
        1e-8);
  CHECK(max_abs_diff(r.dweight_VC, finite_difference([&](const std::vector<double>& v) { return total(h, v); }, w)) <
        1e-8);
  // The ignored token (index 2) has zero loss and contributes no gradient.
  CHECK(r.loss_N[2] == 0.0);
  for (int64_t c = 0; c < C; ++c) CHECK(r.dhidden_NC[size_t(2 * C + c)] == 0.0);
}

// linear_cross_entropy_sum (engine/linear_cross_entropy.h) on CPU: loss and
// gradients of hidden and weight against torch autograd through log_softmax
// in float64, with ignored targets, an upstream gradient other than 1, and
// more tokens than one chunk. On CUDA the op calls kernels/fused_linear_ce
// (checked against its reference in tests/kernels); this tests the wiring.
#include <catch2/catch.hpp>

#include "engine/linear_cross_entropy.h"

using namespace synthpert::engine;

TEST_CASE("linear_cross_entropy_sum matches autograd through log_softmax", "[engine][fused_ce]") {
  torch::manual_seed(13);
  struct Case {
    int64_t tokens, hidden, vocab;
  };
  // The last case spans two chunks (745 tokens each at this vocabulary).
  for (const Case c : {Case{1, 5, 7}, Case{37, 12, 53}, Case{1000, 8, 60001}}) {
    INFO("N=" << c.tokens << " C=" << c.hidden << " V=" << c.vocab);
    const auto h64 = torch::randn({c.tokens, c.hidden}, torch::kFloat64);
    const auto w64 = torch::randn({c.vocab, c.hidden}, torch::kFloat64) * 0.5;
    auto t = torch::randint(c.vocab, {c.tokens}, torch::kInt64);
    if (c.tokens > 1) t.index_put_({torch::arange(0, c.tokens, 3)}, -100);  // every third ignored

    auto ho = h64.clone().requires_grad_(true), wo = w64.clone().requires_grad_(true);
    const auto counted = t.ne(-100);
    const auto logp = torch::log_softmax(torch::matmul(ho, wo.t()), -1);
    const auto ref = -(logp.gather(1, torch::where(counted, t, torch::zeros_like(t)).unsqueeze(1)).squeeze(1) *
                       counted).sum();
    (ref * 2.5).backward();

    for (bool train_weight : {false, true}) {
      INFO("weight trained " << train_weight);
      auto h = h64.to(torch::kFloat32).requires_grad_(true);
      auto w = w64.to(torch::kFloat32).requires_grad_(train_weight);
      const auto loss = linear_cross_entropy_sum(h, w, t);
      CHECK(loss.scalar_type() == torch::kFloat32);
      (loss * 2.5).backward();
      const double scale = std::max(1.0, ref.abs().item<double>());
      CHECK(std::abs(loss.item<double>() - ref.item<double>()) < 1e-5 * scale);
      CHECK((h.grad().to(torch::kFloat64) - ho.grad()).abs().max().item<double>() < 1e-4);
      if (train_weight) {
        CHECK((w.grad().to(torch::kFloat64) - wo.grad()).abs().max().item<double>() < 1e-4);
      } else {
        CHECK_FALSE(w.grad().defined());
      }
    }
  }
}

TEST_CASE("linear_cross_entropy_sum refuses mismatched shapes and counts nothing for no tokens",
          "[engine][fused_ce]") {
  const auto h = torch::randn({4, 6}), w = torch::randn({9, 6});
  CHECK_THROWS(linear_cross_entropy_sum(h, torch::randn({9, 5}), torch::zeros({4}, torch::kInt64)));
  CHECK_THROWS(linear_cross_entropy_sum(h, w, torch::zeros({3}, torch::kInt64)));
  CHECK(linear_cross_entropy_sum(torch::randn({0, 6}), w, torch::zeros({0}, torch::kInt64)).item<float>() == 0.f);
}

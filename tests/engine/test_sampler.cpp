// Sampling: greedy and filters by definition, and the sampled distribution
// against the softmax it should follow (chi-square, seeded so never flaky).
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <map>

#include "common/error.h"
#include "engine/sampler.h"

using namespace synthpert;
using namespace synthpert::engine;

TEST_CASE("greedy picks the argmax, lowest id on ties", "[sampling]") {
  Sampler s({}, 0);
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 2.0f, 0.5f};
  CHECK(s.sample(logits.data(), 5) == 1);
}

TEST_CASE("NaN logits are never picked; a temperature too small to invert is greedy", "[sampling]") {
  const float nan = std::nanf("");
  std::vector<float> logits = {nan, 0.5f, nan, 2.0f, 1.0f};
  CHECK(Sampler({}, 0).sample(logits.data(), 5) == 3);  // NaN first must not stick as the "best"
  Sampler warm({1.0, 0, 1.0, 3}, 0);
  for (int i = 0; i < 200; ++i) {
    const int64_t t = warm.sample(logits.data(), 5);
    CHECK((t == 1 || t == 3 || t == 4));
  }
  // 1 / 1e-310 overflows to inf: the limit of T -> 0 is the argmax, not the
  // lowest-probability token that 0 * inf = NaN would give.
  Sampler tiny({1e-310, 0, 1.0, 3}, 0);
  for (int i = 0; i < 20; ++i) CHECK(tiny.sample(logits.data(), 5) == 3);
  std::vector<float> all_nan(4, nan);
  CHECK_THROWS_WITH(Sampler({}, 0).sample(all_nan.data(), 4), Catch::Contains("every logit is NaN"));
  CHECK_THROWS_WITH(Sampler({0.7, 0, 1.0, 3}, 0).sample(all_nan.data(), 4), Catch::Contains("no finite logit"));
}

TEST_CASE("top-k 1 and a tiny top-p both reduce to greedy", "[sampling]") {
  std::vector<float> logits = {0.3f, -0.2f, 1.7f, 1.6f, 0.0f};
  SamplingParams k1{1.0, 1, 1.0, 7};
  SamplingParams p0{1.0, 0, 1e-6, 7};
  Sampler a(k1, 0), b(p0, 0);
  for (int i = 0; i < 50; ++i) {
    CHECK(a.sample(logits.data(), 5) == 2);
    CHECK(b.sample(logits.data(), 5) == 2);
  }
}

TEST_CASE("samples follow softmax(logits / temperature)", "[sampling]") {
  std::vector<float> logits = {1.0f, 0.0f, -0.5f, 2.0f, 0.7f, -3.0f};
  const double T = 0.8;
  SamplingParams p{T, 0, 1.0, 42};
  Sampler s(p, 3);
  const int n = 60000;
  std::vector<int> counts(6);
  for (int i = 0; i < n; ++i) counts[s.sample(logits.data(), 6)]++;
  double z = 0;
  for (float l : logits) z += std::exp(l / T);
  double chi2 = 0;
  for (int i = 0; i < 6; ++i) {
    const double expect = n * std::exp(logits[i] / T) / z;
    chi2 += (counts[i] - expect) * (counts[i] - expect) / expect;
  }
  // 5 degrees of freedom: P(chi2 > 20.5) = 0.001.
  CHECK(chi2 < 20.5);
}

TEST_CASE("top-p keeps the smallest prefix reaching the mass, top-k the k best", "[sampling]") {
  // probs ~ {0.5, 0.3, 0.15, 0.05} at temperature 1.
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingParams p{1.0, 0, 0.75, 5};
  Sampler s(p, 0);
  std::map<int64_t, int> seen;
  for (int i = 0; i < 4000; ++i) seen[s.sample(logits.data(), 4)]++;
  CHECK(seen.size() == 2);  // 0.5 + 0.3 >= 0.75
  CHECK(seen.count(0) == 1);
  CHECK(seen.count(1) == 1);
  SamplingParams k{1.0, 3, 1.0, 5};
  Sampler t(k, 0);
  seen.clear();
  for (int i = 0; i < 4000; ++i) seen[t.sample(logits.data(), 4)]++;
  CHECK(seen.size() == 3);
  CHECK(seen.count(3) == 0);
}

TEST_CASE("top-p over a large vocabulary draws from exactly the nucleus a full sort gives", "[sampling]") {
  // A flat distribution over 5000 ids in scrambled order puts the nucleus
  // past the first prefixes the sampler sorts, so its growth is exercised.
  const int64_t V = 5000;
  std::vector<float> logits(V);
  for (int64_t i = 0; i < V; ++i) logits[i] = 0.5f * std::sin(static_cast<float>(i) * 0.37f);
  const double top_p = 0.9;
  std::vector<int64_t> order(V);
  for (int64_t i = 0; i < V; ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  double z = 0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  int64_t nucleus = 0;
  for (double cum = 0; cum < top_p * z;) cum += std::exp(static_cast<double>(logits[order[nucleus++]]));
  REQUIRE(nucleus > 2048);
  std::vector<int64_t> rank(V);
  for (int64_t r = 0; r < V; ++r) rank[order[r]] = r;
  // top_k 0 (off) and a top_k past the vocabulary (a no-op filter) alike.
  for (int64_t top_k : {int64_t{0}, V + 5}) {
    Sampler s({1.0, top_k, top_p, 11}, 0);
    int64_t deepest = 0;
    for (int i = 0; i < 40000; ++i) deepest = std::max(deepest, rank[s.sample(logits.data(), V)]);
    CHECK(deepest < nucleus);        // nothing outside the nucleus
    CHECK(deepest >= nucleus - 20);  // and its least likely members are reached
  }
}

TEST_CASE("top-k keeps every token tied with the k-th, as transformers' filter", "[sampling]") {
  // transformers removes only logits below the k-th largest, so k = 2 here
  // keeps the three tokens tied at 1.0: which survive must not depend on ids.
  std::vector<float> logits = {1.0f, 2.0f, 1.0f, -1.0f, 1.0f};
  Sampler s({1.0, 2, 1.0, 9}, 0);
  std::map<int64_t, int> seen;
  for (int i = 0; i < 4000; ++i) seen[s.sample(logits.data(), 5)]++;
  CHECK(seen.size() == 4);
  CHECK(seen.count(3) == 0);
  for (int64_t tied : {0, 2, 4}) CHECK(seen[tied] > 500);  // each expects 4000 e / (e^2 + 3e) = 700
}

TEST_CASE("same seed and stream give the same tokens; streams differ", "[sampling]") {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = std::sin(i * 1.7f);
  SamplingParams p{1.0, 0, 0.9, 123};
  Sampler a(p, 0), b(p, 0), c(p, 1);
  std::vector<int64_t> ta, tb, tc;
  for (int i = 0; i < 40; ++i) {
    ta.push_back(a.sample(logits.data(), 50));
    tb.push_back(b.sample(logits.data(), 50));
    tc.push_back(c.sample(logits.data(), 50));
  }
  CHECK(ta == tb);
  CHECK(ta != tc);
}

TEST_CASE("invalid sampling parameters are refused with the flag named", "[sampling]") {
  CHECK_THROWS_WITH(validate_sampling({-1.0, 0, 1.0, 0}), Catch::Contains("--temperature"));
  CHECK_THROWS_WITH(validate_sampling({1.0, -2, 1.0, 0}), Catch::Contains("--top-k"));
  CHECK_THROWS_WITH(validate_sampling({1.0, 0, 0.0, 0}), Catch::Contains("--top-p"));
}

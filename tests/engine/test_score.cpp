// Candidate scoring against log-softmax of full recomputation, one pair at a time.
#include <catch2/catch.hpp>

#include "engine/score.h"
#include "engine_test_util.h"

using namespace synthpert;
using namespace synthpert::engine;

namespace {

// log p(candidate | prompt) from one full forward over prompt + candidate.
double recomputed_logp(const Transformer& model, const std::vector<int64_t>& prompt,
                       const std::vector<int64_t>& candidate) {
  InferenceGuard g;
  std::vector<int64_t> seq = prompt;
  seq.insert(seq.end(), candidate.begin(), candidate.end());
  auto logp = torch::log_softmax(model.forward(ForwardBatch::from_ids(torch::tensor(seq).unsqueeze(0)))[0], -1);
  double sum = 0;
  for (size_t j = 0; j < candidate.size(); ++j) sum += logp[prompt.size() + j - 1][candidate[j]].item<double>();
  return sum;
}

}  // namespace

TEST_CASE("scored continuations equal log-likelihoods from full recompute", "[engine][score]") {
  test::TempDir dir("score");
  auto c = preset_config(Arch::kQwen3, "tiny");
  c.vocab_size = 89;
  InitOptions io;
  io.seed = 5;
  io.jitter = true;
  init_model(c, dir.path, io);
  const auto model = Transformer::load(dir.path);
  const std::vector<std::vector<int64_t>> prompts = {
      test::random_ids(7, c.vocab_size, 1), test::random_ids(2, c.vocab_size, 2),
      test::random_ids(11, c.vocab_size, 3)};
  const std::vector<std::vector<int64_t>> cands = {{5}, {17, 3, 44}, {60, 2}};
  const auto got = score_continuations(model, prompts, cands);
  for (size_t b = 0; b < prompts.size(); ++b)
    for (size_t k = 0; k < cands.size(); ++k)
      CHECK(got[b][k] == Approx(recomputed_logp(model, prompts[b], cands[k])).margin(1e-4));
}

TEST_CASE("the shared prefix is the prompts' common start, each keeping its last token", "[engine][score]") {
  CHECK(shared_prefix_length({}) == 0);
  CHECK(shared_prefix_length({{1, 2, 3}}) == 2);
  CHECK(shared_prefix_length({{1, 2, 3, 4}, {1, 2, 5}}) == 2);
  CHECK(shared_prefix_length({{1, 2, 3, 4}, {1, 2, 3}}) == 2);  // the shorter keeps its 3
  CHECK(shared_prefix_length({{1, 2, 3}, {1, 2, 3}}) == 2);
  CHECK(shared_prefix_length({{7, 2}, {1, 2}}) == 0);
  CHECK(shared_prefix_length({{1}, {1, 2, 3}}) == 0);
  CHECK(shared_prefix_length({{4, 7}, {4, 7, 9}}) == 1);
}

TEST_CASE("a shared prompt prefix run once scores as the full recompute", "[engine][score]") {
  // Mistral with a window shorter than the prompts: the tails' keys must come
  // from the right slots for the window to cut in the same place.
  const auto arch = GENERATE(Arch::kQwen3, Arch::kMistral);
  CAPTURE(arch_name(arch));
  test::TempDir dir("score-prefix");
  auto c = preset_config(arch, "tiny");
  c.vocab_size = 89;
  if (arch == Arch::kMistral) c.sliding_window = 9;
  InitOptions io;
  io.seed = 9;
  io.jitter = true;
  init_model(c, dir.path, io);
  const auto model = Transformer::load(dir.path);
  const auto prefix = test::random_ids(12, c.vocab_size, 4);
  auto with_tail = [&](std::vector<int64_t> tail) {
    std::vector<int64_t> p = prefix;
    p.insert(p.end(), tail.begin(), tail.end());
    return p;
  };
  // Tails of 1 to 7 tokens; the second and third share a longer prefix.
  const std::vector<std::vector<int64_t>> prompts = {with_tail(test::random_ids(5, c.vocab_size, 5)),
                                                     with_tail({3, 8, 1}), with_tail({3, 8, 1, 40, 2, 6, 7}),
                                                     with_tail({61})};
  REQUIRE(shared_prefix_length(prompts) == 12);
  // Candidates with no common start, and with one (it runs once per row,
  // after the prompt): up to every candidate's last token but one.
  const auto cands = GENERATE(std::vector<std::vector<int64_t>>{{5}, {17, 3, 44}, {60, 2}},
                              std::vector<std::vector<int64_t>>{{4, 7, 9}, {4, 7, 3, 1}, {4, 7, 2}},
                              std::vector<std::vector<int64_t>>{{4, 7}, {4, 7, 9}, {4, 7, 9, 9, 9}});
  CAPTURE(cands);
  ScoreOptions shared, unshared;
  shared.min_shared_prefix = 12;
  unshared.min_shared_prefix = 13;
  const auto a = score_continuations(model, prompts, cands, shared);
  const auto b = score_continuations(model, prompts, cands, unshared);
  for (size_t r = 0; r < prompts.size(); ++r)
    for (size_t k = 0; k < cands.size(); ++k) {
      CAPTURE(r, k);
      const double expect = recomputed_logp(model, prompts[r], cands[k]);
      CHECK(a[r][k] == Approx(expect).margin(1e-4));
      CHECK(b[r][k] == Approx(expect).margin(1e-4));
    }
}

TEST_CASE("candidate ids outside the vocabulary are refused, the last one too", "[engine][score]") {
  test::TempDir dir("score-oov");
  auto c = preset_config(Arch::kLlama, "tiny");
  c.vocab_size = 97;
  init_model(c, dir.path, InitOptions{});
  const auto model = Transformer::load(dir.path);
  const std::vector<std::vector<int64_t>> prompts = {{1, 2, 3}};
  // The last id of a candidate is read from the log-softmax without ever
  // being fed to the model, so only this check stands between it and a read
  // past the row.
  CHECK_THROWS_WITH(score_continuations(model, prompts, {{5, 96}, {5, 97}}),
                    Catch::Contains("candidate 1 has token id 97, outside the vocabulary of 97"));
  CHECK_THROWS_WITH(score_continuations(model, prompts, {{150}}), Catch::Contains("token id 150"));
  CHECK_THROWS_WITH(score_continuations(model, prompts, {{-1}}), Catch::Contains("token id -1"));
  CHECK(score_continuations(model, prompts, {{96}}).size() == 1);
}

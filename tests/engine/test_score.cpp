// Candidate scoring against log-softmax of full recomputation, one pair at a time.
#include <catch2/catch.hpp>

#include "engine/score.h"
#include "engine_test_util.h"

using namespace synthpert;
using namespace synthpert::engine;

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
  InferenceGuard g;
  for (size_t b = 0; b < prompts.size(); ++b) {
    for (size_t k = 0; k < cands.size(); ++k) {
      std::vector<int64_t> seq = prompts[b];
      seq.insert(seq.end(), cands[k].begin(), cands[k].end());
      auto logp = torch::log_softmax(
          model.forward(ForwardBatch::from_ids(torch::tensor(seq).unsqueeze(0)))[0], -1);
      double expect = 0;
      for (size_t j = 0; j < cands[k].size(); ++j)
        expect += logp[prompts[b].size() + j - 1][cands[k][j]].item<double>();
      CHECK(got[b][k] == Approx(expect).margin(1e-4));
    }
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

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

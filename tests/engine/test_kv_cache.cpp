// KV-cache decode and left-padded batches must equal full recomputation.
#include <catch2/catch.hpp>

#include "engine/generate.h"
#include "engine_test_util.h"

using namespace synthpert;
using namespace synthpert::engine;

namespace {

Transformer make_model(const test::TempDir& dir, Arch arch) {
  auto c = test::small_test_config(arch);
  if (arch == Arch::kMistral) c.sliding_window = 4;
  return test::small_test_model(dir.path, c, 21);
}

}  // namespace

TEST_CASE("token-by-token decode with the cache equals full recompute", "[engine][kv]") {
  for (Arch arch : {Arch::kLlama, Arch::kQwen3, Arch::kMistral}) {
    SECTION(arch_name(arch)) {
      test::TempDir dir("kv");
      const auto model = make_model(dir, arch);
      InferenceGuard g;
      const auto ids = test::random_ids(13, model.config().vocab_size, 2);
      auto full = model.forward(ForwardBatch::from_ids(torch::tensor(ids).unsqueeze(0)))[0];
      // Prefill 5 tokens, then one at a time.
      auto cache = KVCache::create(model.config(), 1, 16, torch::kFloat32, torch::kCPU);
      std::vector<int64_t> head(ids.begin(), ids.begin() + 5);
      auto pre = model.forward(ForwardBatch::from_ids(torch::tensor(head).unsqueeze(0)), &cache)[0];
      CHECK((pre - full.narrow(0, 0, 5)).abs().max().item<float>() < 1e-5f);
      for (size_t t = 5; t < ids.size(); ++t) {
        ForwardBatch b;
        b.ids = torch::tensor({ids[t]}).view({1, 1});
        b.positions = torch::tensor({static_cast<int64_t>(t)}).view({1, 1});
        auto step = model.forward(b, &cache)[0][0];
        CHECK((step - full[t]).abs().max().item<float>() < 1e-5f);
      }
    }
  }
}

TEST_CASE("left-padded batched generation equals one-by-one generation", "[engine][kv]") {
  test::TempDir dir("batch");
  const auto model = make_model(dir, Arch::kLlama);
  const int64_t V = model.config().vocab_size;
  std::vector<std::vector<int64_t>> prompts = {test::random_ids(3, V, 1), test::random_ids(9, V, 2),
                                               test::random_ids(1, V, 3), test::random_ids(6, V, 4)};
  GenerateOptions opts;
  opts.max_new_tokens = 7;
  const auto batched = generate(model, prompts, opts);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto single = generate(model, {prompts[i]}, opts);
    CHECK(batched[i].tokens == single[0].tokens);
    CHECK(batched[i].finish_reason == "length");
  }
}

TEST_CASE("greedy generation continues with the argmax of full recompute", "[engine][kv]") {
  test::TempDir dir("greedy");
  const auto model = make_model(dir, Arch::kQwen2);
  auto ids = test::random_ids(4, model.config().vocab_size, 7);
  GenerateOptions opts;
  opts.max_new_tokens = 6;
  const auto out = generate(model, {ids}, opts)[0].tokens;
  REQUIRE(out.size() == 6);
  InferenceGuard g;
  for (int64_t tok : out) {
    auto logits = model.forward(ForwardBatch::from_ids(torch::tensor(ids).unsqueeze(0)))[0];
    CHECK(logits[logits.size(0) - 1].argmax().item<int64_t>() == tok);
    ids.push_back(tok);
  }
}

TEST_CASE("generation stops at stop tokens and respects the seed", "[engine][sampling]") {
  test::TempDir dir("stop");
  const auto model = make_model(dir, Arch::kLlama);
  const auto prompt = test::random_ids(5, model.config().vocab_size, 11);
  GenerateOptions opts;
  opts.max_new_tokens = 12;
  opts.sampling.temperature = 1.3;
  opts.sampling.seed = 99;
  const auto a = generate(model, {prompt}, opts)[0];
  const auto b = generate(model, {prompt}, opts)[0];
  CHECK(a.tokens == b.tokens);
  opts.sampling.seed = 100;
  const auto c = generate(model, {prompt}, opts)[0];
  CHECK(a.tokens != c.tokens);
  // Stop at the third token of the seeded run: output is the first two.
  REQUIRE(a.tokens.size() >= 3);
  opts.sampling.seed = 99;
  opts.stop_ids = {a.tokens[2]};
  const auto stopped = generate(model, {prompt}, opts)[0];
  const auto first_stop = std::find(a.tokens.begin(), a.tokens.end(), a.tokens[2]) - a.tokens.begin();
  CHECK(stopped.finish_reason == "stop");
  CHECK(stopped.tokens == std::vector<int64_t>(a.tokens.begin(), a.tokens.begin() + first_stop));
}

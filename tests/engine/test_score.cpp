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
  const auto arch = GENERATE(Arch::kQwen3, Arch::kMistral);
  CAPTURE(arch_name(arch));
  test::TempDir dir("score-prefix");
  const auto model = test::tiny_model(arch, dir.path, 9);
  const int64_t V = model.config().vocab_size;
  const auto prefix = test::random_ids(12, V, 4);
  auto with_tail = [&](const std::vector<int64_t>& tail) { return test::joined(prefix, tail); };
  // Tails of 1 to 7 tokens; the second and third share a longer prefix.
  const std::vector<std::vector<int64_t>> prompts = {with_tail(test::random_ids(5, V, 5)), with_tail({3, 8, 1}),
                                                     with_tail({3, 8, 1, 40, 2, 6, 7}), with_tail({61})};
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

TEST_CASE("a vocabulary large enough to chunk the head scores as the full recompute", "[engine][score]") {
  // On the CPU the head runs 16 MiB of float32 logits at a time: 29 rows at
  // this vocabulary, so 40 rows whose last column predicts a candidate's
  // first token and the 120 candidate positions after it take 2 and 5 chunks.
  test::TempDir dir("score-chunks");
  auto c = preset_config(Arch::kLlama, "tiny");
  c.vocab_size = 140000;
  InitOptions io;
  io.seed = 8;
  io.jitter = true;
  init_model(c, dir.path, io);
  const auto model = Transformer::load(dir.path);
  std::vector<std::vector<int64_t>> prompts;
  for (uint64_t b = 0; b < 40; ++b) prompts.push_back(test::random_ids(3 + b % 4, c.vocab_size, 20 + b));
  const std::vector<std::vector<int64_t>> cands = {{139999, 7, 8}, {11, 0}};
  const auto got = score_continuations(model, prompts, cands);
  for (size_t b = 0; b < prompts.size(); ++b)
    for (size_t k = 0; k < cands.size(); ++k) {
      CAPTURE(b, k);
      CHECK(got[b][k] == Approx(recomputed_logp(model, prompts[b], cands[k])).margin(1e-4));
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

TEST_CASE("a prefix store carries prompt prefixes from one scoring call to the next", "[engine][score]") {
  const auto arch = GENERATE(Arch::kQwen3, Arch::kMistral);
  CAPTURE(arch_name(arch));
  test::TempDir dir("score-store");
  const auto model = test::tiny_model(arch, dir.path, 13);
  const int64_t V = model.config().vocab_size;
  const auto opening = test::random_ids(12, V, 40);
  const std::vector<std::vector<int64_t>> cands = {{4, 7, 9}, {4, 7, 3, 1}, {4, 8}};
  PrefixStore store;
  ScoreOptions opts;
  opts.prefixes = &store;
  opts.min_shared_prefix = 4;
  auto check = [&](const std::vector<std::vector<int64_t>>& prompts, int64_t reused, int64_t kept) {
    const auto before = store.stats();
    const auto got = score_continuations(model, prompts, cands, opts);
    CHECK(store.stats().tokens_reused - before.tokens_reused == reused);
    CHECK(store.stats().tokens_kept - before.tokens_kept == kept);
    for (size_t r = 0; r < prompts.size(); ++r)
      for (size_t k = 0; k < cands.size(); ++k) {
        CAPTURE(r, k);
        CHECK(got[r][k] == Approx(recomputed_logp(model, prompts[r], cands[k])).margin(1e-4));
      }
  };
  // An empty store: the batch's shared 12 tokens run and are kept.
  check(
      {test::joined(opening, {3, 8, 1}), test::joined(opening, {5}), test::joined(opening, test::random_ids(6, V, 41))},
      0, 12);
  // Prompts that leave the opening after 8 tokens: 8 are copied, the other
  // 6 shared ones run, and the 14 are kept.
  const std::vector<int64_t> first8(opening.begin(), opening.begin() + 8);
  const auto other = test::joined(first8, test::random_ids(6, V, 42));
  check({test::joined(other, {2, 2}), test::joined(other, {9, 1, 1})}, 8, 14);
  CHECK(store.size() == 2);
  // One prompt: all of it but its last token is its own shared prefix; the
  // opening's 12 are copied, the rest runs, and the 17 are kept.
  const auto single = test::joined(opening, {6, 6, 2, 5, 1, 30});
  check({single}, 12, 17);
  // The same prompt again: the 17 come from the store and only its last
  // token runs. The entry of 17 replaced the opening's 12, which it covers.
  CHECK(store.size() == 2);
  check({single}, 17, 0);
  // Too few new shared tokens to run apart: the stored 12 are copied and the
  // rest runs with the tails; the 14 shared ones are kept all the same.
  opts.min_shared_prefix = 100;
  check({test::joined(opening, {3, 8, 1, 44}), test::joined(opening, {3, 8, 2})}, 12, 14);
  // A store holds one model's keys and values.
  const auto other_model = Transformer::load(dir.path);
  CHECK_THROWS_WITH(score_continuations(other_model, {single}, cands, opts), Catch::Contains("another model"));
}

TEST_CASE("a prefix store keeps within its token budget, dropping the least recently used", "[engine][score]") {
  test::TempDir dir("prefix-store");
  auto c = preset_config(Arch::kLlama, "tiny");
  c.vocab_size = 61;
  init_model(c, dir.path, InitOptions{});
  const auto model = Transformer::load(dir.path);
  InferenceGuard g;
  // Keys and values of 20 tokens in a cache row; entries keep their starts.
  const auto ids = test::random_ids(20, c.vocab_size, 50);
  KVCache cache = KVCache::create(c, 1, 20, model.dtype(), model.device());
  model.hidden_states(ForwardBatch::from_ids(torch::tensor(ids).unsqueeze(0)), &cache);
  auto start = [&](int64_t n) { return std::vector<int64_t>(ids.begin(), ids.begin() + n); };
  PrefixStore store(13);
  store.keep(model, start(5), -1, cache, 0);
  store.keep(model, start(9), -1, cache, 0);  // covers the 5
  CHECK(store.size() == 1);
  CHECK(store.tokens_held() == 9);
  store.keep(model, start(6), -1, cache, 0);  // the 9 hold these already
  CHECK(store.size() == 1);
  CHECK(store.stats().tokens_kept == 5 + 9);
  store.keep(model, start(3), 0, cache, 0);  // another adapter
  CHECK(store.size() == 2);
  CHECK(store.tokens_held() == 12);
  CHECK(store.longest_match(model, start(20), -1).length == 9);
  CHECK(store.longest_match(model, start(7), -1).length == 7);
  CHECK(store.longest_match(model, start(20), 1).length == 0);
  CHECK(store.longest_match(model, {ids[0] + 1 == c.vocab_size ? 0 : ids[0] + 1}, -1).length == 0);
  // The adapter-0 entry was used least recently: 4 more tokens evict it.
  const auto elsewhere = test::random_ids(4, c.vocab_size, 51);
  KVCache other = KVCache::create(c, 1, 4, model.dtype(), model.device());
  model.hidden_states(ForwardBatch::from_ids(torch::tensor(elsewhere).unsqueeze(0)), &other);
  store.keep(model, elsewhere, -1, other, 0);
  CHECK(store.size() == 2);
  CHECK(store.tokens_held() == 13);
  CHECK(store.longest_match(model, start(3), 0).length == 0);
  // What comes back is what was kept: the slots of the original row.
  const auto match = store.longest_match(model, start(20), -1);
  REQUIRE(match.length == 9);
  KVCache into = KVCache::create(c, 2, 16, model.dtype(), model.device());
  store.restore(match, 6, into, 1);
  CHECK(into.lengths == std::vector<int64_t>{0, 6});
  for (size_t l = 0; l < cache.k.size(); ++l) {
    CHECK(torch::equal(into.by_token(into.k[l])[1].narrow(0, 0, 6), cache.by_token(cache.k[l])[0].narrow(0, 0, 6)));
    CHECK(torch::equal(into.by_token(into.v[l])[1].narrow(0, 0, 6), cache.by_token(cache.v[l])[0].narrow(0, 0, 6)));
  }
  CHECK_THROWS(store.restore(match, 10, into, 0));
  // More than the budget: the first 13 tokens are kept, and the entries
  // before them make room.
  store.keep(model, start(20), 1, cache, 0);
  CHECK(store.size() == 1);
  CHECK(store.tokens_held() == 13);
  CHECK(store.longest_match(model, start(20), 1).length == 13);
  CHECK(store.longest_match(model, start(20), -1).length == 0);
  const auto long_match = store.longest_match(model, start(20), 1);
  store.restore(long_match, 13, into, 0);
  for (size_t l = 0; l < cache.k.size(); ++l)
    CHECK(torch::equal(into.by_token(into.v[l])[0].narrow(0, 0, 13), cache.by_token(cache.v[l])[0].narrow(0, 0, 13)));
  CHECK_THROWS_WITH(PrefixStore(0), Catch::Contains("at least one token"));
}

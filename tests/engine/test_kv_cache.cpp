// KV-cache decode and left-padded batches must equal full recomputation.
#include <catch2/catch.hpp>
#include <limits>

#include "common/error.h"
#include "engine/batch_scheduler.h"
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

// The dense path on a head-major cache (the CPU default), then the kernel
// paths' ops (their torch math here) on a token-major cache (the GPU's) and
// on a head-major one.
struct LayoutRun {
  AttentionPath path;
  KVLayout layout;
};
const std::vector<LayoutRun>& dense_then_kernel_layouts() {
  static const std::vector<LayoutRun> runs = {{AttentionPath::kDense, KVLayout::kHeadMajor},
                                              {AttentionPath::kPacked, KVLayout::kTokenMajor},
                                              {AttentionPath::kPacked, KVLayout::kHeadMajor}};
  return runs;
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

TEST_CASE("per-row budgets and sampling in one batch equal each row run alone", "[engine][kv][sampling]") {
  test::TempDir dir("rows");
  const auto model = make_model(dir, Arch::kLlama);
  const int64_t V = model.config().vocab_size;
  const std::vector<std::vector<int64_t>> prompts = {test::random_ids(4, V, 21), test::random_ids(8, V, 22),
                                                     test::random_ids(2, V, 23)};
  GenerateOptions opts;
  opts.row_max_new_tokens = {5, 0, 9};
  opts.row_sampling = {{0.0, 0, 1.0, 0}, {1.1, 0, 0.9, 7}, {1.3, 5, 1.0, 8}};
  // The second row has no budget and finishes before the prefill. on_finish
  // sees each row once, with its final result.
  std::vector<int> finished(prompts.size(), 0);
  std::vector<std::vector<int64_t>> streamed(prompts.size());
  opts.on_token = [&](size_t row, int64_t tok) {
    streamed[row].push_back(tok);
    return true;
  };
  std::vector<GenerateResult> seen(prompts.size());
  opts.on_finish = [&](size_t row, const GenerateResult& r) {
    ++finished[row];
    seen[row] = r;
  };
  const auto batched = generate(model, prompts, opts);
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerateOptions alone;
    alone.max_new_tokens = opts.row_max_new_tokens[i];
    alone.sampling = opts.row_sampling[i];
    const auto single = generate(model, {prompts[i]}, alone)[0];
    CHECK(batched[i].tokens == single.tokens);
    CHECK(batched[i].finish_reason == "length");
    CHECK(finished[i] == 1);
    CHECK(seen[i].tokens == batched[i].tokens);
    CHECK(streamed[i] == batched[i].tokens);
  }
  CHECK(batched[0].tokens.size() == 5);
  CHECK(batched[1].tokens.empty());
  CHECK(batched[2].tokens.size() == 9);

  // A callback returning false ends its row with "stop", keeping the token.
  opts.on_token = [](size_t row, int64_t) { return row != 2; };
  opts.on_finish = nullptr;
  const auto cut = generate(model, prompts, opts);
  CHECK(cut[2].finish_reason == "stop");
  CHECK(cut[2].stop_token == -1);  // the callback ended it, not a stop id
  CHECK(cut[2].tokens == std::vector<int64_t>{batched[2].tokens[0]});
  CHECK(cut[0].tokens == batched[0].tokens);
  opts.row_sampling.pop_back();
  CHECK_THROWS_WITH(generate(model, prompts, opts), Catch::Contains("2 sampling settings for 3 prompts"));
}

TEST_CASE("continuous batching: sequences joining and leaving mid-run equal each run alone", "[engine][kv]") {
  test::TempDir dir("sched");
  for (auto arch : {Arch::kLlama, Arch::kMistral}) {  // Mistral: sliding-window layers read key positions
    const auto model = make_model(dir, arch);
    const int64_t V = model.config().vocab_size;
    // Two rows for five sequences: rows are reused after a finished sequence
    // is replaced by the last running one (KVCache::move_row), and the fifth
    // joins after the run has started.
    BatchScheduler s(model, 2, 24, {});
    const std::vector<std::vector<int64_t>> prompts = {test::random_ids(5, V, 31), test::random_ids(2, V, 32),
                                                       test::random_ids(9, V, 33), test::random_ids(1, V, 34),
                                                       test::random_ids(4, V, 35)};
    const std::vector<int64_t> budgets = {6, 2, 8, 4, 5};
    const std::vector<double> temperature = {0.0, 0.0, 1.2, 0.0, 0.9};
    std::vector<GenerateResult> got(prompts.size());
    std::vector<int> finished(prompts.size(), 0);
    auto request = [&](size_t i) {
      SequenceRequest r;
      r.prompt = prompts[i];
      r.max_new_tokens = budgets[i];
      r.sampling.temperature = temperature[i];
      r.sampling.seed = 40 + i;
      r.on_finish = [&, i](const GenerateResult& g) {
        got[i] = g;
        ++finished[i];
      };
      return r;
    };
    for (size_t i = 0; i < 4; ++i) s.add(request(i));
    int64_t most = 0;
    for (int step = 0; !s.idle(); ++step) {
      if (step == 3) s.add(request(4));
      s.step();
      most = std::max(most, s.last_step_rows());
      CHECK(s.running() <= 2);
    }
    CHECK(most == 2);
    for (size_t i = 0; i < prompts.size(); ++i) {
      GenerateOptions alone;
      alone.max_new_tokens = budgets[i];
      alone.row_sampling = {{temperature[i], 0, 1.0, 40 + i}};
      CHECK(finished[i] == 1);
      CHECK(got[i].tokens == generate(model, {prompts[i]}, alone)[0].tokens);
      CHECK(got[i].finish_reason == "length");
    }
    // A sequence that cannot fit a row (24 slots, rounded up to 32) is refused.
    SequenceRequest too_long = request(0);
    too_long.prompt = test::random_ids(30, V, 36);
    CHECK_THROWS_WITH(s.add(too_long), Catch::Contains("exceeds the cache's 32 slots per row"));
    SequenceRequest endless = request(0);
    endless.max_new_tokens = std::numeric_limits<int64_t>::max();  // would wrap if added to the prompt
    CHECK_THROWS_WITH(s.add(endless), Catch::Contains("exceeds the cache's 32 slots per row"));
    // A bad id is refused before it joins a batch, where it would fail every row.
    SequenceRequest bad_id = request(0);
    bad_id.prompt[1] = V;
    CHECK_THROWS_WITH(s.add(bad_id), Catch::Contains("token id " + std::to_string(V) + " is outside the vocabulary"));
    // Failing the scheduler reports every sequence it holds, running or waiting.
    std::vector<std::string> errors;
    for (size_t i = 0; i < 3; ++i) {
      SequenceRequest r = request(i);
      r.on_error = [&](const std::string& m) { errors.push_back(m); };
      s.add(std::move(r));
    }
    s.step();
    CHECK(s.running() == 2);
    CHECK(s.waiting() == 1);
    s.fail_all("gone");
    CHECK(errors == std::vector<std::string>{"gone", "gone", "gone"});
    CHECK(s.idle());
  }
}

TEST_CASE("a sequence whose callback throws ends alone, reported through on_error", "[engine][kv]") {
  test::TempDir dir("sched-throw");
  const auto model = make_model(dir, Arch::kLlama);
  const int64_t V = model.config().vocab_size;
  // Three rows: one whose on_token throws at its third token, one whose
  // on_finish throws (as a reply that cannot be decoded does), and one that
  // runs to the end beside them and must equal its run alone.
  BatchScheduler s(model, 3, 24, {});
  const std::vector<std::vector<int64_t>> prompts = {test::random_ids(4, V, 51), test::random_ids(6, V, 52),
                                                     test::random_ids(3, V, 53)};
  std::vector<std::string> errors(3);
  std::vector<int> finished(3, 0);
  GenerateResult survivor;
  for (size_t i = 0; i < 3; ++i) {
    SequenceRequest r;
    r.prompt = prompts[i];
    r.max_new_tokens = 7;
    int seen = 0;
    if (i == 0)
      r.on_token = [seen](int64_t) mutable {
        if (++seen == 3) throw InputError("token id 9999 is outside the vocabulary");
        return true;
      };
    r.on_finish = [&, i](const GenerateResult& g) {
      ++finished[i];
      if (i == 1) throw std::runtime_error("cannot decode");
      survivor = g;
    };
    r.on_error = [&, i](const std::string& m) { errors[i] = m; };
    s.add(std::move(r));
  }
  for (int step = 0; !s.idle() && step < 50; ++step) s.step();
  CHECK(s.idle());
  CHECK(errors[0] == "token id 9999 is outside the vocabulary");
  CHECK(finished[0] == 0);
  CHECK(errors[1] == "cannot decode");
  CHECK(finished[1] == 1);
  CHECK(errors[2].empty());
  CHECK(finished[2] == 1);
  GenerateOptions alone;
  alone.max_new_tokens = 7;
  CHECK(survivor.tokens == generate(model, {prompts[2]}, alone)[0].tokens);
}

TEST_CASE("generate() reports a sequence that failed instead of returning it empty", "[engine][kv]") {
  test::TempDir dir("generate-throw");
  const auto model = make_model(dir, Arch::kLlama);
  const int64_t V = model.config().vocab_size;
  const std::vector<std::vector<int64_t>> prompts = {test::random_ids(4, V, 61), test::random_ids(5, V, 62)};
  GenerateOptions opts;
  opts.max_new_tokens = 6;
  std::vector<size_t> finished;
  opts.on_token = [](size_t row, int64_t) {
    if (row == 1) throw std::runtime_error("every logit is NaN");
    return true;
  };
  opts.on_finish = [&](size_t row, const GenerateResult&) { finished.push_back(row); };
  CHECK_THROWS_WITH(generate(model, prompts, opts), "generate: sequence 1: every logit is NaN");
  CHECK(finished == std::vector<size_t>{0});  // the other row ran to its end
}

TEST_CASE("chunked prefill: a long prompt goes in over several steps while other rows decode", "[engine][kv]") {
  test::TempDir dir("sched-chunk");
  for (auto arch : {Arch::kLlama, Arch::kMistral}) {  // Mistral: chunks cross the sliding window
    const auto model = make_model(dir, arch);
    const int64_t V = model.config().vocab_size;
    // Three prompt tokens per row per prefill step. Sequence 0 decodes while
    // 1-3 are prefilled: 1 takes four chunks (11 tokens), 2 is in after one
    // and decodes from then on, 3 finishes on its first token. Sequence 4
    // arrives halfway, takes the row 2 left, and is prefilled beside 1 and 3
    // (its cache empty, theirs six tokens long) instead of waiting for 1.
    BatchScheduler s(model, 4, 40, {}, {/*prefill_chunk=*/3});
    const std::vector<std::vector<int64_t>> prompts = {test::random_ids(2, V, 51), test::random_ids(11, V, 52),
                                                       test::random_ids(1, V, 53), test::random_ids(7, V, 54),
                                                       test::random_ids(2, V, 55)};
    const std::vector<int64_t> budgets = {14, 4, 3, 1, 3};
    const std::vector<double> temperature = {0.0, 0.0, 0.8, 0.0, 0.7};
    std::vector<GenerateResult> got(prompts.size());
    std::vector<std::vector<int>> token_steps(prompts.size());  // the step at which each token came
    int step = 0;
    auto request = [&](size_t i) {
      SequenceRequest r;
      r.prompt = prompts[i];
      r.max_new_tokens = budgets[i];
      r.sampling.temperature = temperature[i];
      r.sampling.seed = 60 + i;
      r.on_token = [&, i](int64_t) {
        token_steps[i].push_back(step);
        return true;
      };
      r.on_finish = [&, i](const GenerateResult& g) { got[i] = g; };
      return r;
    };
    s.add(request(0));
    s.step();  // 0 is prefilled (two tokens: one chunk) and has its first token
    CHECK(s.decoding() == 1);
    for (size_t i = 1; i < 4; ++i) s.add(request(i));
    bool saw_prefill_beside_decode = false;
    for (step = 1; !s.idle(); ++step) {
      if (step == 6) s.add(request(4));
      s.step();
      saw_prefill_beside_decode = saw_prefill_beside_decode || (s.running() > s.decoding() && s.decoding() > 0);
      CHECK(s.running() <= 4);
    }
    CHECK(saw_prefill_beside_decode);
    // Steps alternate while prompts are prefilled: decode at 1 (right after
    // 0's prefill), chunks at 2, 4, 6, 8 (11 tokens in chunks of 3), decode
    // steps in between; from 9 on all decode together.
    REQUIRE(token_steps[1].size() == 4);
    CHECK(token_steps[1].front() == 8);
    CHECK(token_steps[2] == std::vector<int>{2, 3, 5});  // in after the first chunk, then decodes at once
    CHECK(token_steps[3] == std::vector<int>{6});
    CHECK(token_steps[4] == std::vector<int>{6, 7, 9});  // prefilled on arrival, beside 1 and 3
    CHECK(token_steps[0] == std::vector<int>{0, 1, 3, 5, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17});
    for (size_t i = 0; i < prompts.size(); ++i) {
      INFO("sequence " << i);
      GenerateOptions alone;
      alone.max_new_tokens = budgets[i];
      alone.row_sampling = {{temperature[i], 0, 1.0, 60 + i}};
      CHECK(got[i].tokens == generate(model, {prompts[i]}, alone)[0].tokens);
      CHECK(got[i].finish_reason == "length");
    }
  }
  test::TempDir other("sched-chunk-bad");
  const auto model = make_model(other, Arch::kLlama);
  CHECK_THROWS_WITH(BatchScheduler(model, 2, 8, {}, {-1}), Catch::Contains("prefill chunk must be >= 0"));
  // An adapter index the model does not hold is refused as the sequence is
  // added, before it can fail a batch.
  BatchScheduler s(model, 2, 8, {});
  SequenceRequest r;
  r.prompt = {1, 2};
  r.max_new_tokens = 2;
  r.adapter = 0;
  CHECK_THROWS_WITH(s.add(r), Catch::Contains("adapter index 0 but the model holds 0 adapters"));
  r.adapter = -2;
  CHECK_THROWS_WITH(s.add(r), Catch::Contains("adapter index -2"));
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

TEST_CASE("generation stops at the model's context, whatever the budget", "[engine][kv]") {
  test::TempDir dir("context"), wide_dir("context-wide");
  auto c = test::small_test_config(Arch::kLlama);
  c.max_position_embeddings = 12;
  const auto model = test::small_test_model(dir.path, c, 21);
  c.max_position_embeddings = 64;
  const auto wide = test::small_test_model(wide_dir.path, c, 21);  // the same weights, a longer context
  const std::vector<std::vector<int64_t>> prompts = {test::random_ids(5, c.vocab_size, 1),
                                                     test::random_ids(9, c.vocab_size, 2)};
  GenerateOptions opts;
  opts.max_new_tokens = 1000;  // a cache of prompt + 1000 slots per row is never made
  const auto got = generate(model, prompts, opts);
  opts.max_new_tokens = 10;
  const auto longer = generate(wide, prompts, opts);
  for (size_t i = 0; i < prompts.size(); ++i) {
    INFO("prompt " << i);
    const size_t room = 12 - prompts[i].size();
    REQUIRE(got[i].tokens.size() == room);
    CHECK(got[i].finish_reason == "length");
    CHECK(got[i].tokens == std::vector<int64_t>(longer[i].tokens.begin(), longer[i].tokens.begin() + room));
  }
  CHECK_THROWS_WITH(generate(model, {test::random_ids(12, c.vocab_size, 3)}, opts),
                    Catch::Contains("prompt 0 has 12 tokens, which fills the model's context of 12"));
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
  CHECK(stopped.stop_token == a.tokens[2]);
  CHECK(a.stop_token == -1);  // the budget ended it
}

namespace {

// Row `row` of a padded batch as its own unpadded sequence, through the
// model without a cache: the oracle for what a cached row must produce.
torch::Tensor row_alone(const Transformer& m, const std::vector<int64_t>& ids) {
  return m.hidden_states(ForwardBatch::from_ids(torch::tensor(ids).unsqueeze(0)))[0];
}

}  // namespace

TEST_CASE("the cache keeps only valid tokens, compactly per row", "[engine][kv]") {
  test::TempDir dir("compact");
  auto m = make_model(dir, Arch::kLlama);
  m.attention_path = AttentionPath::kDense;
  InferenceGuard g;
  const int64_t V = m.config().vocab_size;
  // Row 0: 2 padding tokens then 4; row 1: 5 tokens then 1 padding.
  const auto r0 = test::random_ids(4, V, 31), r1 = test::random_ids(5, V, 32);
  ForwardBatch pre;
  pre.ids = torch::tensor(std::vector<int64_t>{0, 0, r0[0], r0[1], r0[2], r0[3], r1[0], r1[1], r1[2], r1[3], r1[4], 0})
                .view({2, 6});
  pre.valid = torch::tensor({0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0}).view({2, 6}).to(torch::kBool);
  pre.positions = torch::tensor({0, 0, 0, 1, 2, 3, 0, 1, 2, 3, 4, 0}).view({2, 6});
  for (KVLayout layout : {KVLayout::kHeadMajor, KVLayout::kTokenMajor}) {
    INFO("token-major " << (layout == KVLayout::kTokenMajor));
    auto cache = KVCache::create(m.config(), 2, 9, torch::kFloat32, torch::kCPU, layout);
    CHECK(cache.capacity == 16);  // whole pages
    const auto h = m.hidden_states(pre, &cache);
    CHECK(cache.lengths == std::vector<int64_t>{4, 5});
    CHECK(torch::equal(cache.key_position[0].narrow(0, 0, 4), torch::arange(4)));
    CHECK(torch::isfinite(h).all().item<bool>());  // padding positions too
    CHECK((h[0].narrow(0, 2, 4) - row_alone(m, r0)).abs().max().item<float>() < 1e-5f);
    CHECK((h[1].narrow(0, 0, 5) - row_alone(m, r1)).abs().max().item<float>() < 1e-5f);
    // A decode step: each row's token lands right after its own last one; a
    // step whose token is invalid for row 0 leaves that row as it was.
    auto seq0 = r0, seq1 = r1;
    for (int step = 0; step < 2; ++step) {
      const int64_t t0 = (7 * step + 3) % V, t1 = (11 * step + 5) % V;
      ForwardBatch d;
      d.ids = torch::tensor({t0, t1}).view({2, 1});
      d.positions = torch::tensor({static_cast<int64_t>(seq0.size()), static_cast<int64_t>(seq1.size())}).view({2, 1});
      d.valid = torch::tensor({step == 0, true}).view({2, 1});
      const auto o = m.hidden_states(d, &cache);
      if (step == 0) seq0.push_back(t0);
      seq1.push_back(t1);
      CHECK(cache.lengths == std::vector<int64_t>{static_cast<int64_t>(seq0.size()), static_cast<int64_t>(seq1.size())});
      if (step == 0) CHECK((o[0][0] - row_alone(m, seq0)[-1]).abs().max().item<float>() < 1e-5f);
      CHECK((o[1][0] - row_alone(m, seq1)[-1]).abs().max().item<float>() < 1e-5f);
    }
    // Past the capacity: refused, the cache unchanged.
    ForwardBatch big;
    big.ids = torch::zeros({2, 10}, torch::kInt64);
    big.positions = torch::arange(10).repeat({2, 1});
    CHECK_THROWS_WITH(m.hidden_states(big, &cache), Catch::Contains("KV cache full: row 1"));
    CHECK(cache.lengths == std::vector<int64_t>{5, 7});
  }
}

TEST_CASE("decode steps through the paged op equal the dense masked path", "[engine][kv][paged]") {
  for (Arch arch : {Arch::kLlama, Arch::kQwen3, Arch::kMistral}) {
    SECTION(arch_name(arch)) {
      test::TempDir dir("paged");
      auto m = make_model(dir, arch);
      InferenceGuard g;
      const int64_t V = m.config().vocab_size, T = 7;
      ForwardBatch pre;
      pre.ids = torch::tensor(test::random_ids(3 * T, V, 41)).view({3, T});
      // Left padding, right padding, none.
      pre.valid = torch::tensor({0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1}).view({3, T}).to(
          torch::kBool);
      pre.positions = torch::tensor({0, 0, 0, 0, 1, 2, 3, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6}).view({3, T});
      // Dense, then paged (dense_then_kernel_layouts).
      const auto& runs = dense_then_kernel_layouts();
      std::vector<std::vector<torch::Tensor>> outs(runs.size());
      std::vector<std::vector<int64_t>> lengths(runs.size());
      for (size_t r = 0; r < runs.size(); ++r) {
        m.attention_path = runs[r].path;
        auto cache = KVCache::create(m.config(), 3, T + 20, torch::kFloat32, torch::kCPU, runs[r].layout);
        CHECK(cache.token_major == (runs[r].layout == KVLayout::kTokenMajor));
        outs[r].push_back(m.hidden_states(pre, &cache).masked_select(pre.valid.unsqueeze(-1)));
        std::vector<int64_t> next = {4, 2, 7};
        for (int64_t step = 0; step < 20; ++step) {
          ForwardBatch d;
          d.ids = torch::tensor({(3 + step) % V, (50 + step) % V, (9 * step + 1) % V}).view({3, 1});
          d.positions = torch::tensor(next).view({3, 1});
          d.valid = torch::tensor({true, step % 5 != 2, true}).view({3, 1});  // row 1 skips some steps
          const auto o = m.hidden_states(d, &cache);
          outs[r].push_back(o.masked_select(d.valid.unsqueeze(-1)));
          for (int64_t b = 0; b < 3; ++b) next[b] += d.valid[b][0].item<bool>();
        }
        lengths[r] = cache.lengths;
      }
      for (size_t r = 1; r < runs.size(); ++r) {
        INFO("run " << r);
        CHECK(lengths[r] == lengths[0]);
        for (size_t i = 0; i < outs[0].size(); ++i) {
          INFO("call " << i);
          CHECK((outs[r][i] - outs[0][i]).abs().max().item<float>() < 2e-5f);
        }
      }
      CHECK(lengths[0] == std::vector<int64_t>{24, 18, 27});
    }
  }
}

TEST_CASE("prefill continued on a filled cache through cached attention equals the dense masked path",
          "[engine][kv][cached]") {
  for (Arch arch : {Arch::kLlama, Arch::kQwen3}) {
    SECTION(arch_name(arch)) {
      test::TempDir dir("cached");
      auto m = make_model(dir, arch);
      InferenceGuard g;
      const int64_t V = m.config().vocab_size;
      // A first prefill (left padding, right padding, none), two continued
      // chunks (a row with no new token; padding on either side), then
      // decode steps on top.
      std::vector<ForwardBatch> calls;
      std::vector<int64_t> next = {0, 0, 0};
      auto add = [&](int64_t T, const std::vector<int>& valid, uint64_t seed) {
        ForwardBatch f;
        f.ids = torch::tensor(test::random_ids(3 * T, V, seed)).view({3, T});
        f.valid = torch::tensor(valid).view({3, T}).to(torch::kBool);
        std::vector<int64_t> pos;
        for (int64_t b = 0; b < 3; ++b)
          for (int64_t t = 0; t < T; ++t) {
            pos.push_back(next[b]);
            next[b] += valid[b * T + t];
          }
        f.positions = torch::tensor(pos).view({3, T});
        calls.push_back(f);
      };
      add(7, {0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1}, 41);
      add(5, {1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0}, 42);
      add(9, {0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 43);
      for (int step = 0; step < 3; ++step) add(1, {1, 1, 1}, 50 + step);
      // Dense, then cached attention (dense_then_kernel_layouts).
      const auto& runs = dense_then_kernel_layouts();
      std::vector<std::vector<torch::Tensor>> outs(runs.size());
      for (size_t r = 0; r < runs.size(); ++r) {
        m.attention_path = runs[r].path;
        auto cache = KVCache::create(m.config(), 3, 40, torch::kFloat32, torch::kCPU, runs[r].layout);
        for (size_t i = 0; i < calls.size(); ++i) {
          // The first call fills an empty cache (packed or dense); the rest continue.
          CHECK(m.continues_packed(&cache) == (i > 0 && runs[r].path == AttentionPath::kPacked));
          outs[r].push_back(m.hidden_states(calls[i], &cache).masked_select(calls[i].valid.unsqueeze(-1)));
        }
        CHECK(cache.lengths == next);
      }
      // Against the dense path, and against recomputing each row's tokens
      // so far from scratch without a cache.
      for (size_t r = 1; r < runs.size(); ++r) {
        INFO("run " << r);
        for (size_t i = 0; i < calls.size(); ++i) {
          INFO("call " << i);
          CHECK((outs[r][i] - outs[0][i]).abs().max().item<float>() < 2e-5f);
        }
      }
      m.attention_path = AttentionPath::kDense;
      for (int64_t b = 0; b < 3; ++b) {
        std::vector<int64_t> ids;
        for (const auto& f : calls)
          for (int64_t t = 0; t < f.ids.size(1); ++t)
            if (f.valid[b][t].item<bool>()) ids.push_back(f.ids[b][t].item<int64_t>());
        const auto full = m.hidden_states(ForwardBatch::from_ids(torch::tensor(ids).view({1, -1})))[0];
        int64_t seen = 0;
        for (size_t i = 0; i < calls.size(); ++i) {
          const auto mine = calls[i].valid[b];
          const int64_t n = mine.sum().item<int64_t>();
          if (n == 0) continue;
          INFO("row " << b << ", call " << i);
          const auto got = outs[1][i].view({-1, m.config().hidden_size});
          // Row b's tokens among the call's valid ones: after the earlier rows'.
          int64_t before = 0;
          for (int64_t c = 0; c < b; ++c) before += calls[i].valid[c].sum().item<int64_t>();
          CHECK((got.narrow(0, before, n) - full.narrow(0, seen, n)).abs().max().item<float>() < 2e-5f);
          seen += n;
        }
      }
    }
  }
}

TEST_CASE("a row range of the cache pool addresses the pool's own pages", "[engine][kv][paged]") {
  // The paged kernel reads page block_table[r][p] of the view, counted from
  // the view's first element in whole pages; the CPU paged path ignores the
  // table, so its arithmetic is checked here directly.
  test::TempDir dir("range");
  const auto m = make_model(dir, Arch::kLlama);
  auto pool = KVCache::create(m.config(), 5, 40, torch::kFloat32, torch::kCPU, KVLayout::kTokenMajor);
  REQUIRE(pool.capacity == 48);
  const int64_t page = KVCache::kPageSize, pages = pool.capacity / page;
  for (auto& t : pool.k) t.copy_(torch::randn(t.sizes()));
  for (int64_t begin : {0, 2, 4}) {
    const int64_t count = 5 - begin;
    INFO("rows [" << begin << ", 5)");
    const KVCache view = pool.row_range(begin, count);
    REQUIRE(view.block_table.sizes() == torch::IntArrayRef({count, pages}));
    const auto& k = view.k[1];
    CHECK(k.data_ptr() == pool.k[1][begin].data_ptr());  // a view, no copy
    const auto view_pages = k.reshape({-1, page, k.size(2), k.size(3)});
    for (int64_t r = 0; r < count; ++r)
      for (int64_t p = 0; p < pages; ++p) {
        const int64_t at = view.block_table[r][p].item<int32_t>();
        REQUIRE(at >= 0);
        REQUIRE(at < view_pages.size(0));
        CHECK(torch::equal(view_pages[at], pool.k[1][begin + r].narrow(0, p * page, page)));
      }
  }
}

TEST_CASE("greedy decoding never picks a NaN logit; a row of NaN logits fails alone", "[engine][kv][sampling]") {
  test::TempDir dir("sched-nan");
  auto model = make_model(dir, Arch::kLlama);
  const int64_t V = model.config().vocab_size;
  const auto prompt = test::random_ids(5, V, 61);
  InferenceGuard g;
  const torch::Tensor clean = model.forward(ForwardBatch::from_ids(torch::tensor(prompt).unsqueeze(0)))[0][-1];
  const int64_t best = clean.argmax().item<int64_t>();
  const int64_t runner_up = clean.clone().index_fill_(0, torch::tensor({best}), -INFINITY).argmax().item<int64_t>();
  // The best token's logit becomes NaN for every row (its lm_head row), and a
  // token absent from `prompt` turns a whole row's activations into NaN (its
  // embedding). Clones first: the two may share storage.
  model.lm_head = model.lm_head.clone();
  model.embed_tokens = model.embed_tokens.clone();
  model.lm_head[best].fill_(NAN);
  int64_t poison = 0;
  while (std::find(prompt.begin(), prompt.end(), poison) != prompt.end() || poison == best) ++poison;
  model.embed_tokens[poison].fill_(NAN);

  BatchScheduler s(model, 2, 16, {});
  std::vector<std::string> errors(2);
  std::vector<GenerateResult> results(2);
  const std::vector<std::vector<int64_t>> prompts = {prompt, {prompt[0], poison, prompt[1]}};
  for (size_t i = 0; i < 2; ++i) {
    SequenceRequest r;
    r.prompt = prompts[i];
    r.max_new_tokens = 4;
    r.on_finish = [&, i](const GenerateResult& res) { results[i] = res; };
    r.on_error = [&, i](const std::string& m) { errors[i] = m; };
    s.add(std::move(r));
  }
  for (int step = 0; !s.idle() && step < 20; ++step) s.step();
  CHECK(s.idle());
  CHECK(errors[0].empty());
  REQUIRE(results[0].tokens.size() == 4);
  CHECK(results[0].tokens[0] == runner_up);
  CHECK(std::find(results[0].tokens.begin(), results[0].tokens.end(), best) == results[0].tokens.end());
  CHECK(errors[1] == kAllLogitsNan);
  CHECK(results[1].tokens.empty());
}

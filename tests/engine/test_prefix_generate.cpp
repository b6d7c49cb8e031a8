// Generation that copies prompt prefixes from a store (engine/prefix_store.h)
// instead of running them: its greedy tokens must be the argmax of one full
// forward over the prompt and the tokens so far, with no cache at all.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/batch_scheduler.h"
#include "engine/generate.h"
#include "engine_test_util.h"

using namespace synthpert;
using namespace synthpert::engine;

namespace {

std::vector<int64_t> recomputed_greedy(const Transformer& model, std::vector<int64_t> ids, int64_t n) {
  InferenceGuard g;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    const auto logits = model.forward(ForwardBatch::from_ids(torch::tensor(ids).unsqueeze(0)))[0];
    out.push_back(logits[logits.size(0) - 1].argmax().item<int64_t>());
    ids.push_back(out.back());
  }
  return out;
}

// Generates through opts (and its store), checks how many tokens the store
// gave and kept, and each row's tokens against the full recompute.
std::vector<GenerateResult> generate_checked(const Transformer& model, const std::vector<std::vector<int64_t>>& prompts,
                                             const GenerateOptions& opts, int64_t reused, int64_t kept) {
  const auto before = opts.prefixes->stats();
  const auto got = generate(model, prompts, opts);
  CHECK(opts.prefixes->stats().tokens_reused - before.tokens_reused == reused);
  CHECK(opts.prefixes->stats().tokens_kept - before.tokens_kept == kept);
  for (size_t r = 0; r < prompts.size(); ++r) {
    CAPTURE(r);
    CHECK(got[r].tokens == recomputed_greedy(model, prompts[r], opts.max_new_tokens));
  }
  return got;
}

// The largest difference between the keys and values the store holds for
// `tokens` (base model) and those a fresh forward over them writes.
double stored_kv_error(const Transformer& model, PrefixStore& store, const std::vector<int64_t>& tokens) {
  const auto n = static_cast<int64_t>(tokens.size());
  const auto match = store.longest_match(model, tokens, -1);
  REQUIRE(match.length == n);
  InferenceGuard g;
  auto fresh = KVCache::create(model.config(), 1, n, model.dtype(), model.device());
  model.hidden_states(ForwardBatch::from_ids(torch::tensor(tokens).unsqueeze(0)), &fresh);
  const KVCache& kept = *match.cache;
  double worst = 0;
  auto slots = [n](const KVCache& c, const torch::Tensor& t) { return c.by_token(t).select(0, 0).narrow(0, 0, n); };
  for (size_t l = 0; l < fresh.k.size(); ++l) {
    worst = std::max(worst, (slots(kept, kept.k[l]) - slots(fresh, fresh.k[l])).abs().max().item<double>());
    worst = std::max(worst, (slots(kept, kept.v[l]) - slots(fresh, fresh.v[l])).abs().max().item<double>());
  }
  return worst;
}

}  // namespace

TEST_CASE("generation copies stored prompt prefixes and continues as the full recompute", "[engine][kv][prefix]") {
  const auto arch = GENERATE(Arch::kLlama, Arch::kQwen3, Arch::kMistral);
  CAPTURE(arch_name(arch));
  test::TempDir dir("gen-store");
  const auto model = test::tiny_model(arch, dir.path, 17);
  const int64_t V = model.config().vocab_size;
  const auto opening = test::random_ids(12, V, 50);
  PrefixStore store;
  GenerateOptions opts;
  opts.max_new_tokens = 5;
  opts.prefixes = &store;
  auto check = [&](const std::vector<std::vector<int64_t>>& prompts, int64_t reused, int64_t kept) {
    return generate_checked(model, prompts, opts, reused, kept);
  };
  // Each row keeps its prompt once it is in, then the prompt and the 4 reply
  // tokens its cache holds when it ends (the fifth is never fed back); that
  // entry covers the prompt's, which goes.
  // An empty store: both prompts run whole.
  const auto a = test::joined(opening, {3, 8, 1});
  const auto b = test::joined(opening, {7, 7, 2, 40, 11, 6});
  check({a, b}, 0, 15 + 18 + 19 + 22);
  CHECK(store.size() == 2);
  // A new prompt with the same opening copies the 12.
  const auto c = test::joined(opening, {5, 6, 2, 5, 1, 30});
  const auto c_reply = check({c}, 12, 18 + 22)[0].tokens;
  // The same prompt again: all but its last token is copied, nothing kept.
  check({c}, 17, 0);
  // The next turn (the prompt, its reply, new tokens) copies the prompt and
  // the reply's first 4 tokens.
  const auto turn = test::joined(test::joined(c, c_reply), {9, 9});
  check({turn}, 22, 25 + 29);
  CHECK(store.size() == 3);
  CHECK(stored_kv_error(model, store, turn) < 1e-5);
  // One call whose rows copy different lengths, so the prefill batch holds
  // rows that start at different positions: a's twin (14 of its 15) and a
  // prompt that leaves the opening after 8 tokens (8).
  std::vector<int64_t> early(opening.begin(), opening.begin() + 8);
  early = test::joined(early, {(opening[8] + 1) % V, 2, 4});
  check({a, early}, 14 + 8, 11 + 15);
}

TEST_CASE("the prompts of one call run the start they share once", "[engine][kv][prefix]") {
  test::TempDir dir("gen-store-shared");
  const auto model = test::tiny_model(Arch::kQwen3, dir.path, 19);
  const int64_t V = model.config().vocab_size;
  PrefixStore store;
  GenerateOptions opts;
  opts.max_new_tokens = 4;
  opts.prefixes = &store;
  auto check = [&](const std::vector<std::vector<int64_t>>& prompts, int64_t reused, int64_t kept) {
    return generate_checked(model, prompts, opts, reused, kept);
  };
  // An empty store: the 20 shared tokens run once, are kept, and every row
  // copies them; then each row keeps its prompt, and its prompt and 3 reply
  // tokens when it ends.
  const auto opening = test::random_ids(20, V, 90);
  check({test::joined(opening, {1, 2}), test::joined(opening, {3}), test::joined(opening, {4, 5, 6})}, 3 * 20,
        20 + (22 + 21 + 23) + (25 + 24 + 26));
  // Fewer new shared tokens than min_shared_prefix: nothing runs apart.
  opts.min_shared_prefix = 21;
  const auto other = test::random_ids(20, V, 91);
  check({test::joined(other, {1}), test::joined(other, {2})}, 0, 2 * 21 + 2 * 24);
  // A start 16 tokens past a stored one: the stored 20 are copied, the 16
  // run at positions 20-35, and both rows copy the 36.
  opts.min_shared_prefix = 16;
  const auto longer = test::joined(opening, test::random_ids(16, V, 92));
  check({test::joined(longer, {7}), test::joined(longer, {8, 9})}, 20 + 2 * 36, 36 + (37 + 38) + (40 + 41));
  CHECK(stored_kv_error(model, store, longer) < 1e-5);
}

TEST_CASE("a copied prompt joins a chunked prefill beside rows halfway through theirs", "[engine][kv][prefix]") {
  test::TempDir dir("gen-store-chunk");
  const auto model = test::tiny_model(Arch::kMistral, dir.path, 23);
  const int64_t V = model.config().vocab_size;
  const auto opening = test::random_ids(12, V, 70);
  PrefixStore store;
  BatchScheduler s(model, 3, 48, {}, {/*prefill_chunk=*/4, &store});
  const std::vector<std::vector<int64_t>> prompts = {test::joined(opening, {1, 2, 3}), test::random_ids(21, V, 71),
                                                     test::random_ids(2, V, 72),
                                                     test::joined(opening, {6, 5, 4, 3, 2})};
  const std::vector<int64_t> budgets = {3, 6, 9, 4};
  std::vector<GenerateResult> got(prompts.size());
  auto add = [&](size_t i) {
    SequenceRequest r;
    r.prompt = prompts[i];
    r.max_new_tokens = budgets[i];
    r.on_finish = [&got, i](const GenerateResult& g) { got[i] = g; };
    s.add(std::move(r));
  };
  add(0);
  while (!s.idle()) s.step();
  CHECK(store.tokens_held() == 15 + 2);  // the prompt and the reply but its last token
  // The long prompt goes in over six prefill steps; the short one decodes
  // meanwhile. The opening's twin arrives after the long one's first chunk:
  // it copies 12 tokens and prefills its last 5 in two chunks beside it.
  add(1);
  add(2);
  s.step();
  add(3);
  while (!s.idle()) s.step();
  CHECK(store.stats().tokens_reused == 12);
  for (size_t i = 0; i < prompts.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i].tokens == recomputed_greedy(model, prompts[i], budgets[i]));
  }
  // The two prompts with the opening part after it, so neither covers the
  // other: the store holds all four sequences.
  CHECK(store.size() == 4);
}

TEST_CASE("a row whose logits are NaN leaves nothing in the prefix store", "[engine][kv][prefix]") {
  test::TempDir dir("gen-store-nan");
  auto model = test::tiny_model(Arch::kLlama, dir.path, 29);
  const int64_t V = model.config().vocab_size;
  const auto prompt = test::random_ids(6, V, 80);
  int64_t poison = 0;
  while (std::find(prompt.begin(), prompt.end(), poison) != prompt.end()) ++poison;
  // A token whose embedding is NaN turns its row's activations, and so the
  // keys and values of every token after it, into NaN.
  model.embed_tokens = model.embed_tokens.clone();
  model.embed_tokens[poison].fill_(NAN);
  PrefixStore store;
  BatchScheduler s(model, 2, 32, {}, {0, &store});
  const std::vector<std::vector<int64_t>> prompts = {prompt, test::joined({prompt[0], poison}, prompt)};
  std::vector<std::string> errors(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    SequenceRequest r;
    r.prompt = prompts[i];
    r.max_new_tokens = 2;
    r.on_error = [&errors, i](const std::string& m) { errors[i] = m; };
    s.add(std::move(r));
  }
  while (!s.idle()) s.step();
  CHECK(errors[0].empty());
  CHECK(errors[1] == kAllLogitsNan);
  CHECK(store.size() == 1);
  CHECK(store.tokens_held() == static_cast<int64_t>(prompt.size()) + 1);
  // Two prompts that join together share a start of 19 tokens or more with the
  // poison in it: that start runs apart, and is not kept either.
  const auto start = test::joined(test::joined(test::random_ids(8, V, 81), {poison}), test::random_ids(10, V, 82));
  REQUIRE(start.size() >= static_cast<size_t>(kMinSharedPrefix));
  std::vector<std::string> burst_errors(2);
  for (size_t i = 0; i < 2; ++i) {
    SequenceRequest r;
    r.prompt = test::joined(start, {prompt[i], prompt[i + 1]});
    r.max_new_tokens = 2;
    r.on_error = [&burst_errors, i](const std::string& m) { burst_errors[i] = m; };
    s.add(std::move(r));
  }
  while (!s.idle()) s.step();
  CHECK(burst_errors == std::vector<std::string>(2, kAllLogitsNan));
  CHECK(store.size() == 1);
}

TEST_CASE("requests that join at one step run the starts they share once", "[engine][kv][prefix]") {
  const int64_t chunk = GENERATE(0, 16);
  CAPTURE(chunk);
  test::TempDir dir("gen-store-burst");
  const auto model = test::tiny_model(Arch::kLlama, dir.path, 31);
  const int64_t V = model.config().vocab_size;
  const auto opening = test::random_ids(20, V, 95);
  const auto longer = test::joined(opening, test::random_ids(16, V, 96));
  // Three prompts open alike, two of them for 16 tokens more, and one shares
  // nothing with the others (a server's burst from several clients).
  const std::vector<std::vector<int64_t>> prompts = {test::joined(longer, {1, 2}), test::random_ids(7, V, 97),
                                                     test::joined(opening, {3}), test::joined(longer, {4})};
  PrefixStore store;
  BatchScheduler s(model, 4, 48, {}, {chunk, &store});
  std::vector<GenerateResult> got(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    SequenceRequest r;
    r.prompt = prompts[i];
    r.max_new_tokens = 3;
    r.on_finish = [&got, i](const GenerateResult& g) { got[i] = g; };
    s.add(std::move(r));
  }
  s.step();
  if (chunk == 0) {
    // The 20 run, then the 16 after them (copying the 20); three rows copy
    // the 20 or the 36 they open with; the lone prompt copies nothing.
    CHECK(store.stats().tokens_reused == 20 + (36 + 20 + 36));
  } else {
    // Both starts are cut to their first 16 tokens, which run once.
    CHECK(store.stats().tokens_reused == 3 * 16);
    CHECK(s.last_step_rows() == 4);
  }
  while (!s.idle()) s.step();
  for (size_t i = 0; i < prompts.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i].tokens == recomputed_greedy(model, prompts[i], 3));
  }
}

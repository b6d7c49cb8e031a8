// Adapter banks (engine/lora_bank.h): rows of one batch served with different
// LoRA adapters must equal each row run alone on a model holding only its
// adapter (the single-adapter path, itself checked against python torch and
// PEFT), and the op must equal a plain fp64 loop over rows.
#include <catch2/catch.hpp>

#include <algorithm>

#include "common/error.h"
#include "engine/generate.h"
#include "engine/peft_adapter.h"
#include "engine/score.h"
#include "engine_test_util.h"

using namespace synthpert;
using namespace synthpert::engine;

namespace {

// Random non-zero A and B on the modules `spec` targets, saved in PEFT's
// format to dir; the model is left without adapters.
void write_random_adapter(const std::string& dir, Transformer& model, const LoraSpec& spec, uint64_t seed) {
  torch::manual_seed(seed);
  for (auto& [name, lin] : model.named_linears()) {
    const std::string short_name = name.substr(name.find_last_of('.') + 1);
    if (std::find(spec.target_modules.begin(), spec.target_modules.end(), short_name) == spec.target_modules.end())
      continue;
    auto w = std::make_shared<LoraWeights>();
    w->A = torch::randn({spec.r, lin->in_features()}) * 0.3;
    w->B = torch::randn({lin->out_features(), spec.r}) * 0.3;
    lin->lora = w;
  }
  save_peft_adapter(dir, model, spec, "test-base");
  for (auto& [name, lin] : model.named_linears()) lin->lora.reset();
}

struct Fixture {
  test::TempDir base_dir{"bank-base"}, a_dir{"bank-a"}, b_dir{"bank-b"};
  Fixture() {
    auto model = test::small_test_model(base_dir.path, test::small_test_config(Arch::kLlama), 5);
    LoraSpec a;
    a.r = 3, a.alpha = 6, a.target_modules = {"q_proj", "v_proj", "down_proj"};
    write_random_adapter(a_dir.path, model, a, 1);
    LoraSpec b;
    b.r = 6, b.alpha = 4, b.rslora = true;
    b.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    write_random_adapter(b_dir.path, model, b, 2);
  }
  Transformer base() const { return Transformer::load(base_dir.path); }
  Transformer single(const std::string& dir) const {
    auto m = base();
    load_peft_adapter(dir, m);
    return m;
  }
  Transformer banked() const {
    auto m = base();
    load_peft_adapter_bank({{"a", a_dir.path}, {"b", b_dir.path}}, m);
    return m;
  }
};

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST_CASE("apply_lora_bank adds each row's adapter update as an fp64 loop does", "[engine][lora_bank]") {
  // Odd sizes; adapter 1 has rank 3 of the bank's 5 (zero-padded), rows use
  // every adapter and none.
  const int64_t N = 37, K = 19, O = 23, R = 5, M = 3;
  torch::manual_seed(3);
  LoraBank bank;
  bank.A = torch::randn({M, R, K});
  bank.B = torch::randn({M, O, R});
  bank.A[1].narrow(0, 3, 2).zero_();
  bank.B[1].narrow(1, 3, 2).zero_();
  bank.scale_values = {0.5, 2.0, -1.25};
  bank.scales = torch::tensor(bank.scale_values, torch::kFloat32);
  const auto x = torch::randn({N, K});
  const auto y0 = torch::randn({N, O});
  std::vector<int64_t> rows;
  for (int64_t n = 0; n < N; ++n) rows.push_back((n * 7) % (M + 1) - 1);  // -1, 2, 1, 0, ...
  const auto routing = AdapterRouting::for_rows(rows, 1, M, torch::kCPU);
  auto y = y0.clone();
  apply_lora_bank(y, x, bank, routing);

  auto ref = y0.to(torch::kFloat64);
  const auto xd = x.to(torch::kFloat64), Ad = bank.A.to(torch::kFloat64), Bd = bank.B.to(torch::kFloat64);
  auto r = ref.accessor<double, 2>();
  const auto xa = xd.accessor<double, 2>();
  const auto aa = Ad.accessor<double, 3>();
  const auto ba = Bd.accessor<double, 3>();
  for (int64_t n = 0; n < N; ++n) {
    const int64_t i = rows[n];
    if (i < 0) continue;
    for (int64_t o = 0; o < O; ++o) {
      double acc = 0;
      for (int64_t k = 0; k < R; ++k) {
        double xk = 0;
        for (int64_t c = 0; c < K; ++c) xk += xa[n][c] * aa[i][k][c];
        acc += xk * ba[i][o][k];
      }
      r[n][o] += bank.scale_values[i] * acc;
    }
  }
  CHECK(max_diff(y.to(torch::kFloat64), ref) < 1e-4);
  // Rows without an adapter are untouched, bit for bit.
  for (int64_t n = 0; n < N; ++n)
    if (rows[n] < 0) CHECK(torch::equal(y[n], y0[n]));

  SECTION("an index outside [-1, M) is refused, naming the row") {
    CHECK_THROWS_WITH(AdapterRouting::for_rows({0, 3}, 2, M, torch::kCPU),
                      Catch::Contains("row 1 asks for adapter 3, outside [-1, 3)"));
    CHECK_THROWS_AS(AdapterRouting::for_rows({-2}, 1, M, torch::kCPU), InputError);
  }
}

TEST_CASE("a batch with per-row adapters equals each row run alone with its adapter", "[engine][lora_bank]") {
  Fixture f;
  const auto bank = f.banked();
  REQUIRE(bank.adapter_names == std::vector<std::string>{"a", "b"});
  const Transformer alone[] = {f.single(f.a_dir.path), f.single(f.b_dir.path), f.base()};
  auto model_of = [&](int64_t adapter) -> const Transformer& { return alone[adapter < 0 ? 2 : adapter]; };
  InferenceGuard g;
  const int64_t V = bank.config().vocab_size;
  const std::vector<std::vector<int64_t>> prompts = {test::random_ids(5, V, 1), test::random_ids(9, V, 2),
                                                     test::random_ids(2, V, 3), test::random_ids(7, V, 4)};
  const std::vector<int64_t> adapters = {1, -1, 0, 1};

  SECTION("forward of a left-padded batch") {
    const int64_t B = 4, L = 9;
    auto ids = torch::zeros({B, L}, torch::kInt64), pos = torch::zeros({B, L}, torch::kInt64);
    auto valid = torch::zeros({B, L}, torch::kBool);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = prompts[b].size();
      ids[b].narrow(0, L - n, n).copy_(torch::tensor(prompts[b]));
      pos[b].narrow(0, L - n, n).copy_(torch::arange(n));
      valid[b].narrow(0, L - n, n).fill_(true);
    }
    const ForwardBatch batch{ids, pos, valid, {}, adapters};
    const auto logits = bank.forward(batch);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = prompts[b].size();
      const auto solo = model_of(adapters[b]).forward(ForwardBatch::from_ids(torch::tensor(prompts[b]).unsqueeze(0)))[0];
      CHECK(max_diff(logits[b].narrow(0, L - n, n), solo) < 1e-5);
      // The adapters change the logits, so the comparison can fail.
      if (adapters[b] >= 0) {
        const auto plain = f.base().forward(ForwardBatch::from_ids(torch::tensor(prompts[b]).unsqueeze(0)))[0];
        CHECK(max_diff(solo, plain) > 1e-2);
      }
    }
  }

  SECTION("greedy generation with the KV cache") {
    GenerateOptions opts;
    opts.max_new_tokens = 6;
    opts.adapters = adapters;
    const auto batched = generate(bank, prompts, opts);
    opts.adapters.clear();
    for (size_t i = 0; i < prompts.size(); ++i) {
      const auto single = generate(model_of(adapters[i]), {prompts[i]}, opts);
      CHECK(batched[i].tokens == single[0].tokens);
    }
  }
}

TEST_CASE("scoring continuations with per-row adapters equals scoring each row alone", "[engine][lora_bank]") {
  Fixture f;
  const auto bank = f.banked();
  const Transformer alone[] = {f.single(f.a_dir.path), f.single(f.b_dir.path), f.base()};
  const int64_t V = bank.config().vocab_size;
  const std::vector<std::vector<int64_t>> prompts = {test::random_ids(6, V, 11), test::random_ids(3, V, 12),
                                                     test::random_ids(8, V, 13)};
  // Candidates of one and of three tokens: the second runs the continuation batch.
  const std::vector<std::vector<int64_t>> candidates = {{4}, {7, 1, 9}, {2, 2}};
  const std::vector<int64_t> adapters = {0, 1, -1};
  ScoreOptions opts;
  opts.adapters = adapters;
  const auto got = score_continuations(bank, prompts, candidates, opts);
  for (size_t b = 0; b < prompts.size(); ++b) {
    const auto solo = score_continuations(alone[adapters[b] < 0 ? 2 : adapters[b]], {prompts[b]}, candidates);
    for (size_t k = 0; k < candidates.size(); ++k) CHECK(std::abs(got[b][k] - solo[0][k]) < 1e-4);
  }
  // Prompts with a common start: the prefix runs once per adapter (its keys
  // and values differ with the adapters of k_proj and v_proj), each row
  // continuing from its own adapter's copy.
  std::vector<std::vector<int64_t>> shared;
  for (int64_t r = 0; r < 5; ++r) {
    shared.push_back(test::random_ids(10, V, 20));
    const auto tail = test::random_ids(1 + r, V, 30 + static_cast<uint64_t>(r));
    shared.back().insert(shared.back().end(), tail.begin(), tail.end());
  }
  REQUIRE(shared_prefix_length(shared) >= 10);
  ScoreOptions shared_opts;
  shared_opts.adapters = {1, -1, 0, 1, -1};
  shared_opts.min_shared_prefix = 10;
  // The candidates' common start (4, 7) runs once per row, with its adapter.
  const std::vector<std::vector<int64_t>> answers = {{4, 7, 1}, {4, 7, 9, 9}, {4, 7, 2}};
  const auto got_shared = score_continuations(bank, shared, answers, shared_opts);
  for (size_t b = 0; b < shared.size(); ++b) {
    const int64_t a = shared_opts.adapters[b];
    const auto solo = score_continuations(alone[a < 0 ? 2 : a], {shared[b]}, answers);
    for (size_t k = 0; k < answers.size(); ++k) CHECK(std::abs(got_shared[b][k] - solo[0][k]) < 1e-4);
  }
  opts.adapters = {0};
  CHECK_THROWS_WITH(score_continuations(bank, prompts, candidates, opts),
                    Catch::Contains("1 adapter choices for 3 prompts"));
}

TEST_CASE("a prefix store keeps each adapter's keys and values apart", "[engine][lora_bank]") {
  Fixture f;
  const auto bank = f.banked();
  const Transformer alone[] = {f.single(f.a_dir.path), f.single(f.b_dir.path), f.base()};
  const int64_t V = bank.config().vocab_size;
  const auto opening = test::random_ids(10, V, 60);
  auto prompt = [&](uint64_t seed) {
    auto p = opening;
    const auto tail = test::random_ids(3, V, seed);
    p.insert(p.end(), tail.begin(), tail.end());
    return p;
  };
  const std::vector<std::vector<int64_t>> answers = {{4, 7, 1}, {4, 9}, {5}};
  PrefixStore store;
  ScoreOptions opts;
  opts.prefixes = &store;
  opts.min_shared_prefix = 10;
  auto check = [&](const std::vector<std::vector<int64_t>>& prompts, const std::vector<int64_t>& adapters,
                   int64_t reused) {
    const auto before = store.stats().tokens_reused;
    opts.adapters = adapters;
    const auto got = score_continuations(bank, prompts, answers, opts);
    CHECK(store.stats().tokens_reused - before == reused);
    for (size_t b = 0; b < prompts.size(); ++b) {
      const int64_t a = adapters[b];
      const auto solo = score_continuations(alone[a < 0 ? 2 : a], {prompts[b]}, answers);
      for (size_t k = 0; k < answers.size(); ++k) CHECK(std::abs(got[b][k] - solo[0][k]) < 1e-4);
    }
  };
  check({prompt(61), prompt(62)}, {1, -1}, 0);  // keeps the opening under adapters 1 and none
  // Adapter 0 has no entry yet: its row runs the opening and keeps it, the
  // other two copy theirs. A store that reran the opening for every adapter
  // once one lacked it would copy nothing.
  check({prompt(63), prompt(64), prompt(65)}, {0, 1, -1}, 2 * 10);
  CHECK(store.size() == 3);
  // Now every adapter's own copy: a store that matched across adapters would
  // hand a row another adapter's keys and values.
  check({prompt(66), prompt(67), prompt(68)}, {0, 0, 1}, 2 * 10);
  check({prompt(69)}, {-1}, 10);
  // Each adapter copies what it holds of a new opening, however much: none
  // under a, its first 6 tokens under b, all 10 under the base model. a's row
  // runs the 10 and b's the last 4 beside it, at positions 6-9.
  const auto next = test::random_ids(10, V, 70);
  const std::vector<int64_t> next6(next.begin(), next.begin() + 6);
  check({test::joined(next6, {(next[6] + 1) % V})}, {1}, 0);
  check({test::joined(next, {3})}, {-1}, 0);
  check({test::joined(next, {1, 2}), test::joined(next, {3}), test::joined(next, {4, 5, 6})}, {0, 1, -1}, 6 + 10);
}

TEST_CASE("generation keeps and copies each adapter's prompt prefixes apart", "[engine][lora_bank][prefix]") {
  Fixture f;
  const auto bank = f.banked();
  const Transformer alone[] = {f.single(f.a_dir.path), f.single(f.b_dir.path), f.base()};
  const int64_t V = bank.config().vocab_size;
  const auto opening = test::random_ids(10, V, 90);
  PrefixStore store;
  GenerateOptions opts;
  opts.max_new_tokens = 5;
  opts.prefixes = &store;
  auto check = [&](const std::vector<std::vector<int64_t>>& prompts, const std::vector<int64_t>& adapters,
                   int64_t reused) {
    const auto before = store.stats().tokens_reused;
    opts.adapters = adapters;
    const auto got = generate(bank, prompts, opts);
    CHECK(store.stats().tokens_reused - before == reused);
    GenerateOptions solo;
    solo.max_new_tokens = opts.max_new_tokens;
    for (size_t b = 0; b < prompts.size(); ++b) {
      const int64_t a = adapters[b];
      CHECK(got[b].tokens == generate(alone[a < 0 ? 2 : a], {prompts[b]}, solo)[0].tokens);
    }
  };
  // The same prompt under adapter a, then under b and the base model: the
  // second call finds a's entry only for a's row. A store that matched
  // across adapters would hand the others a's keys and values.
  const auto p = test::joined(opening, {1, 2, 3});
  check({p}, {0}, 0);
  check({p, p, p}, {0, 1, -1}, 12);
  check({test::joined(opening, {4}), test::joined(opening, {5, 6})}, {1, -1}, 2 * 10);
  CHECK(store.size() == 5);  // p under each adapter, and the last two prompts
  // Two rows under a share a new start of 16 tokens, run once under a; the
  // base model's lone row runs its prompt whole.
  const auto start = test::random_ids(16, V, 91);
  check({test::joined(start, {1}), test::joined(start, {2, 3}), test::joined(start, {4})}, {0, 0, -1}, 2 * 16);
}

TEST_CASE("adapter banks refuse bad input with clear errors", "[engine][lora_bank]") {
  Fixture f;
  auto model = f.base();
  InferenceGuard g;
  ForwardBatch batch = ForwardBatch::from_ids(torch::tensor(std::vector<int64_t>{1, 2, 3}).unsqueeze(0));
  batch.adapter = {0};
  CHECK_THROWS_WITH(model.forward(batch), Catch::Contains("outside [-1, 0)"));
  load_peft_adapter_bank({{"a", f.a_dir.path}}, model);
  batch.adapter = {0, 0};
  CHECK_THROWS_WITH(model.forward(batch), Catch::Contains("names adapters for 2 rows, it has 1"));
  CHECK_THROWS_WITH(load_peft_adapter_bank({{"b", f.b_dir.path}}, model), Catch::Contains("already holds an adapter bank"));
  auto other = f.base();
  CHECK_THROWS_WITH(load_peft_adapter_bank({{"a", f.a_dir.path}, {"a", f.b_dir.path}}, other),
                    Catch::Contains("two adapters are named 'a'"));
  CHECK_THROWS_WITH(load_peft_adapter_bank({{"a", f.a_dir.path}, {"c", f.base_dir.path}}, other),
                    Catch::Contains("adapter_config.json"));
  CHECK(other.adapter_names.empty());
  GenerateOptions opts;
  opts.adapters = {0, 0};
  CHECK_THROWS_WITH(generate(model, {{1, 2}}, opts), Catch::Contains("2 adapter choices for 1 prompts"));
}

// Transformer forward against the python reference (tests/reference/llama_ref.py)
// on random checkpoints of every supported architecture with odd sizes.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "engine_test_util.h"

using namespace synthpert;
using namespace synthpert::engine;

namespace {

struct Case {
  const char* name;
  ModelConfig config;
};

ModelConfig odd_config(Arch arch) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 101;
  c.hidden_size = 72;
  c.intermediate_size = 100;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 3;
  c.num_key_value_heads = 1;
  c.head_dim = 24;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  if (arch == Arch::kQwen2) c.attention_bias = true;
  if (arch == Arch::kQwen3) c.qk_norm = true;
  return c;
}

std::vector<Case> parity_cases() {
  std::vector<Case> cases;
  cases.push_back({"llama untied", odd_config(Arch::kLlama)});
  auto tied = odd_config(Arch::kLlama);
  tied.tie_word_embeddings = true;
  cases.push_back({"llama tied", tied});
  auto l3 = odd_config(Arch::kLlama);
  l3.rope_theta = 500000.0;
  l3.rope_scaling.type = "llama3";
  l3.rope_scaling.factor = 8.0;
  l3.rope_scaling.low_freq_factor = 1.0;
  l3.rope_scaling.high_freq_factor = 4.0;
  // A short original context puts the head dim's frequencies in all three
  // llama3 bands (kept, blended, scaled).
  l3.rope_scaling.original_max_position_embeddings = 64;
  cases.push_back({"llama3 rope scaling", l3});
  auto lin = odd_config(Arch::kLlama);
  lin.rope_scaling.type = "linear";
  lin.rope_scaling.factor = 2.5;
  lin.attention_bias = true;
  lin.o_proj_bias = true;
  lin.mlp_bias = true;
  cases.push_back({"llama linear rope + all biases", lin});
  cases.push_back({"qwen2", odd_config(Arch::kQwen2)});
  auto q3 = odd_config(Arch::kQwen3);
  q3.head_dim = 20;  // Qwen3 decouples head_dim from hidden / heads
  q3.num_key_value_heads = 3;
  q3.tie_word_embeddings = true;
  cases.push_back({"qwen3", q3});
  auto mis = odd_config(Arch::kMistral);
  mis.sliding_window = 5;
  cases.push_back({"mistral sliding window", mis});
  auto q2w = odd_config(Arch::kQwen2);
  q2w.num_hidden_layers = 3;
  q2w.sliding_window = 4;
  q2w.max_window_layers = 1;  // layer 0 full attention, layers 1-2 windowed
  cases.push_back({"qwen2 sliding window from layer 1", q2w});
  return cases;
}

}  // namespace

TEST_CASE("forward matches the python reference for every architecture", "[engine][parity]") {
  for (const auto& tc : parity_cases()) {
    SECTION(tc.name) {
      test::TempDir dir("parity");
      InitOptions io;
      io.seed = 11;
      io.jitter = true;
      init_model(tc.config, dir.path, io);
      const auto ids = test::random_ids(23, tc.config.vocab_size, 5);
      const auto ref = test::reference_logits(dir.path, ids);
      const auto model = Transformer::load(dir.path);
      InferenceGuard g;
      auto logits = model.forward(ForwardBatch::from_ids(torch::tensor(ids).unsqueeze(0)));
      REQUIRE(logits.numel() == static_cast<int64_t>(ref.size()));
      CHECK(test::max_abs_diff(logits, ref) <= 1e-4f);
    }
  }
}

TEST_CASE("parity check detects a perturbed weight", "[engine][parity]") {
  // The oracle comparison must be able to fail: perturb one element of one
  // layer's v_proj by 1e-2 and the logits move beyond the tolerance.
  test::TempDir dir("perturbed");
  auto c = odd_config(Arch::kLlama);
  InitOptions io;
  io.seed = 2;
  io.jitter = true;
  init_model(c, dir.path, io);
  const auto ids = test::random_ids(17, c.vocab_size, 9);
  const auto ref = test::reference_logits(dir.path, ids);
  auto model = Transformer::load(dir.path);
  InferenceGuard g;
  model.layers[1].v_proj.weight[3][7] += 1e-2f;
  auto logits = model.forward(ForwardBatch::from_ids(torch::tensor(ids).unsqueeze(0)));
  CHECK(test::max_abs_diff(logits, ref) > 1e-4f);
}

TEST_CASE("forward refuses token ids outside the vocabulary, naming the id", "[engine]") {
  test::TempDir dir("vocab-range");
  const auto model = test::small_test_model(dir.path, test::small_test_config(Arch::kLlama), 3);
  InferenceGuard g;
  const int64_t V = model.config().vocab_size;
  auto run = [&](std::vector<int64_t> ids) { model.forward(ForwardBatch::from_ids(torch::tensor(ids).unsqueeze(0))); };
  CHECK_NOTHROW(run({0, V - 1}));
  CHECK_THROWS_WITH(run({3, V, 5}), Catch::Contains("token id " + std::to_string(V) + " is outside the vocabulary"));
  CHECK_THROWS_WITH(run({-1, 4}), Catch::Contains("token id -1 is outside the vocabulary"));
}

TEST_CASE("sharded checkpoints load like single-file ones", "[engine][safetensors]") {
  test::TempDir one("single"), many("sharded");
  auto c = odd_config(Arch::kQwen2);
  InitOptions io;
  io.seed = 4;
  io.jitter = true;
  init_model(c, one.path, io);
  io.max_shard_bytes = 20000;  // forces several shards
  init_model(c, many.path, io);
  REQUIRE(std::filesystem::exists(many.path + "/model.safetensors.index.json"));
  REQUIRE_FALSE(std::filesystem::exists(many.path + "/model.safetensors"));
  const auto a = Transformer::load(one.path), b = Transformer::load(many.path);
  InferenceGuard g;
  const auto ids = torch::tensor(test::random_ids(9, c.vocab_size, 1)).unsqueeze(0);
  CHECK(torch::equal(a.forward(ForwardBatch::from_ids(ids)), b.forward(ForwardBatch::from_ids(ids))));
}

TEST_CASE("bf16 checkpoints load and stay close to f32", "[engine]") {
  test::TempDir f32("f32"), bf16("bf16");
  auto c = odd_config(Arch::kLlama);
  InitOptions io;
  io.seed = 8;
  init_model(c, f32.path, io);
  io.dtype = StDType::BF16;
  init_model(c, bf16.path, io);
  const auto a = Transformer::load(f32.path), b = Transformer::load(bf16.path);
  InferenceGuard g;
  const auto ids = torch::tensor(test::random_ids(12, c.vocab_size, 3)).unsqueeze(0);
  auto la = a.forward(ForwardBatch::from_ids(ids)), lb = b.forward(ForwardBatch::from_ids(ids));
  // bf16 keeps 8 mantissa bits: weights differ by <= 2^-9 relative.
  CHECK((la - lb).abs().max().item<float>() < 0.05f);
  CHECK_FALSE(torch::equal(la, lb));
}

TEST_CASE("f16 on the CPU either runs or is refused at load, never deep inside a forward", "[engine]") {
  test::TempDir dir("f16-cpu");
  auto c = odd_config(Arch::kLlama);
  init_model(c, dir.path, InitOptions{});
  LoadOptions lo;
  lo.dtype = torch::kFloat16;
  bool refused = false;
  try {
    const auto m = Transformer::load(dir.path, lo);
    InferenceGuard g;
    const auto ids = torch::tensor(test::random_ids(5, c.vocab_size, 1)).unsqueeze(0);
    // A libtorch with float16 CPU kernels (newer than Debian's 1.13): it must work.
    CHECK(torch::isfinite(m.forward(ForwardBatch::from_ids(ids))).all().item<bool>());
  } catch (const InputError& e) {
    refused = true;
    CHECK_THAT(std::string(e.what()), Catch::Contains("no float16 matrix multiply") && Catch::Contains("use bf16"));
  }
  // Which of the two happened is the library's to decide; say which.
  WARN((refused ? "f16 refused on this libtorch's CPU" : "f16 ran on this libtorch's CPU"));
}

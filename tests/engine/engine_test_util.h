// Helpers for engine tests: temporary folders, random checkpoints, and the
// python reference (tests/reference/llama_ref.py) as an oracle.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/init_model.h"
#include "engine/model.h"
#include "tests/test_util.h"

namespace synthpert::test {

inline std::string join_ids(const std::vector<int64_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

// Runs the python reference on one sequence; returns (T * V) float32 logits.
inline std::vector<float> reference_logits(const std::string& model_dir,
                                           const std::vector<int64_t>& ids) {
  const std::string out = model_dir + "/ref-logits.bin";
  const std::string cmd = std::string(SYNTHPERT_REFERENCE_PYTHON " ") + SYNTHPERT_SOURCE_DIR +
                          "/tests/reference/llama_ref.py --model " + model_dir + " --ids " +
                          join_ids(ids) + " --out " + out;
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("reference failed: " + cmd);
  std::ifstream f(out, std::ios::binary);
  std::vector<float> v;
  float x;
  while (f.read(reinterpret_cast<char*>(&x), sizeof x)) v.push_back(x);
  return v;
}

// The "tiny" preset reshaped to odd sizes: vocab 97, hidden 60, 6 query heads
// over 2 kv heads of dim 10 (GQA 3:1).
inline engine::ModelConfig small_test_config(engine::Arch arch) {
  auto c = engine::preset_config(arch, "tiny");
  c.vocab_size = 97;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.hidden_size = 60;
  c.head_dim = 10;
  return c;
}

// Writes a jittered random checkpoint of `c` to dir and loads it (float32, CPU).
inline engine::Transformer small_test_model(const std::string& dir, const engine::ModelConfig& c, uint64_t seed) {
  engine::InitOptions io;
  io.seed = seed;
  io.jitter = true;
  engine::init_model(c, dir, io);
  return engine::Transformer::load(dir);
}

// A jittered "tiny" model of `arch` with 89 tokens, loaded from dir. Mistral's
// window (9) is shorter than the prompts of the prefix-store tests, so keys a
// row reuses must sit in the right slots for the window to cut in the same
// place.
inline engine::Transformer tiny_model(engine::Arch arch, const std::string& dir, uint64_t seed) {
  auto c = engine::preset_config(arch, "tiny");
  c.vocab_size = 89;
  if (arch == engine::Arch::kMistral) c.sliding_window = 9;
  return small_test_model(dir, c, seed);
}

inline std::vector<int64_t> joined(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Deterministic pseudo-random token ids in [0, vocab).
inline std::vector<int64_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<int64_t> ids;
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    ids.push_back(static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(vocab)));
  }
  return ids;
}

inline float max_abs_diff(const torch::Tensor& a, const std::vector<float>& b) {
  auto bt = torch::from_blob(const_cast<float*>(b.data()), {static_cast<int64_t>(b.size())},
                             torch::kFloat32);
  return (a.reshape({-1}) - bt).abs().max().item<float>();
}

}  // namespace synthpert::test

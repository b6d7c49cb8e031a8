// Model configuration read from a Hugging Face config.json.
//
// Supported: Llama (incl. Llama-3.x "llama3" RoPE scaling), Qwen2 (q/k/v bias),
// Qwen3 (per-head RMSNorm on q and k), Mistral (optional sliding window).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace synthpert::engine {

enum class Arch { kLlama, kQwen2, kQwen3, kMistral };

const char* arch_name(Arch a);           // "llama", "qwen2", ...
Arch parse_arch(const std::string& name);  // accepts model_type names; throws InputError

struct RopeScaling {
  std::string type = "default";  // "default" (none), "linear" or "llama3"
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Arch arch = Arch::kLlama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // bias on q, k, v (and o for Llama's attention_bias)
  bool o_proj_bias = false;
  bool mlp_bias = false;
  bool qk_norm = false;         // Qwen3
  int64_t sliding_window = 0;   // 0: full attention
  // Qwen2/Qwen3: only layers with index >= max_window_layers use the window
  // (when use_sliding_window is set); Mistral windows every layer.
  int64_t max_window_layers = 0;
  double initializer_range = 0.02;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype = "float32";

  // Attention window of layer i (0: full attention).
  int64_t layer_window(int64_t i) const { return i >= max_window_layers ? sliding_window : 0; }
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  // Parameter count (for presets and benchmarks).
  int64_t num_parameters() const;
};

// Parses config.json contents; `source` names the file in error messages.
ModelConfig parse_config(const nlohmann::json& j, const std::string& source);
ModelConfig load_config(const std::string& model_dir);
// Serialises to the Hugging Face config.json shape of the config's architecture.
nlohmann::json to_hf_json(const ModelConfig& c);

}  // namespace synthpert::engine

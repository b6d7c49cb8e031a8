// adapter_config.json of a PEFT LoRA adapter folder: what the adapter is
// (rank, alpha, dropout, targets), read and written without libtorch so the
// reader can be fuzzed on its own. The folder's weights: engine/peft_adapter.h.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace synthpert::engine {

struct LoraSpec {
  int64_t r = 32;
  double alpha = 32.0;
  double dropout = 0.0;
  bool rslora = false;  // scale alpha / sqrt(r) instead of alpha / r
  // Hugging Face module short names (q_proj, ..., down_proj).
  std::vector<std::string> target_modules;
  // PEFT's exclude_modules (a list): modules left out although targeted.
  std::vector<std::string> exclude_modules;

  double scale() const;
};

// DIR/adapter_model.safetensors and DIR/adapter_config.json.
std::string peft_weights_path(const std::string& dir);
std::string peft_config_path(const std::string& dir);

// The adapter_config.json PEFT's LoraConfig reads for `spec`; the fields
// left out take PEFT's defaults. `base_model` goes into
// base_model_name_or_path.
nlohmann::json peft_config_json(const LoraSpec& spec, const std::string& base_model);

// The spec of a parsed adapter_config.json, checked to be a plain LoRA
// adapter this engine applies; `where` names the file in errors (InputError).
LoraSpec parse_peft_config(const nlohmann::json& j, const std::string& where);

// Reads and parses DIR/adapter_config.json.
LoraSpec read_peft_config(const std::string& dir);

}  // namespace synthpert::engine

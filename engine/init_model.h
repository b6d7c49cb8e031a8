// Random-initialised checkpoints in Hugging Face layout (config.json,
// generation_config.json, safetensors), for tests, benchmarks and students
// trained from scratch.
//
// Values come from a counter-based generator keyed by (seed, tensor name,
// element index), so a checkpoint is identical on every machine and libtorch
// version, and tensors are produced one at a time while streaming to disk:
// an 8B-parameter preset never needs more memory than its largest tensor.
#pragma once

#include <string>
#include <vector>

#include "engine/config.h"
#include "engine/safetensors.h"

namespace synthpert::engine {

// Known presets: "tiny" (any arch), "small" (~20M, the demo's student),
// "llama3-1b", "llama3-8b" (Llama-3.2-1B and Llama-3.1-8B shapes; llama only).
ModelConfig preset_config(Arch arch, const std::string& preset);
std::vector<std::string> preset_names();

struct InitOptions {
  uint64_t seed = 0;
  StDType dtype = StDType::F32;
  // Norm weights 1 and biases 0 as Hugging Face initialises them; `jitter`
  // draws them randomly too so tests exercise every parameter.
  bool jitter = false;
  uint64_t max_shard_bytes = 5ull << 30;
};

// Writes the checkpoint folder. Returns the number of parameters written.
int64_t init_model(const ModelConfig& config, const std::string& out_dir, const InitOptions& opts);

}  // namespace synthpert::engine

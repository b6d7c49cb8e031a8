// Batched generation on the CPU path: prompts are left-padded to a common
// length, prefilled in one forward pass, then decoded one token per step with
// a KV cache. Finished sequences stop being reported but keep their slot.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/sampler.h"

namespace synthpert::engine {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  SamplingParams sampling;
  std::vector<int64_t> stop_ids;  // e.g. the model's EOS ids; not included in the output
  // Per prompt: the index of the adapter (Transformer::adapter_names) it runs
  // with, -1 for the base model; empty: every prompt runs without the bank.
  std::vector<int64_t> adapters;
  // Called for every new token of every unfinished sequence, in order.
  std::function<void(size_t sequence, int64_t token)> on_token;
};

struct GenerateResult {
  std::vector<int64_t> tokens;
  std::string finish_reason;  // "stop" or "length"
};

std::vector<GenerateResult> generate(const Transformer& model,
                                     const std::vector<std::vector<int64_t>>& prompts,
                                     const GenerateOptions& opts);

}  // namespace synthpert::engine

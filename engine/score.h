// Log-likelihood of candidate continuations after a prompt, for classification
// by scoring (PerturbQA's three answers): the prompt is run once per row with a
// KV cache, then every candidate continues from a copy of that row's cache.
#pragma once

#include <vector>

#include "engine/model.h"

namespace synthpert::engine {

// Returns (rows x candidates) summed log-probabilities log p(candidate | prompt)
// in float64. Every row is scored against the same candidate list; candidates
// must be non-empty token sequences. Rows run in one batch (left-padded).
// `adapters`: per row, the adapter of the model's bank it runs with (-1:
// none; ForwardBatch::adapter); empty: no row uses the bank.
std::vector<std::vector<double>> score_continuations(
    const Transformer& model, const std::vector<std::vector<int64_t>>& prompts,
    const std::vector<std::vector<int64_t>>& candidates, const std::vector<int64_t>& adapters = {});

}  // namespace synthpert::engine

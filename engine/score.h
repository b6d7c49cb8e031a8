// Log-likelihood of candidate continuations after a prompt, for classification
// by scoring (PerturbQA's three answers): the prompt is run once per row with a
// KV cache, then every candidate continues from a copy of that row's cache.
//
// Prompts built from one template share their opening (chat header, system
// prompt, instructions): that prefix is run once per distinct adapter of the
// batch and its keys and values copied to every row, so each row runs only
// its own tail. With a PrefixStore, the opening also carries over from one
// call to the next.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model.h"
#include "engine/prefix_store.h"

namespace synthpert::engine {

struct ScoreOptions {
  // Per row: the adapter of the model's bank it runs with (-1: none;
  // ForwardBatch::adapter); empty: no row uses the bank.
  std::vector<int64_t> adapters;
  // The prompts' common prefix is run once when it has at least this many
  // tokens and the batch has two or more rows. Every row keeps at least its
  // last token to run.
  int64_t min_shared_prefix = kMinSharedPrefix;
  // Optional: prefixes computed by earlier calls on this model. The longest
  // stored start of the prompts' shared prefix (per adapter; for a single
  // prompt, all of it but its last token) is copied, not run, and the
  // shared prefix is kept for the calls to come.
  PrefixStore* prefixes = nullptr;
};

// Returns (rows x candidates) summed log-probabilities log p(candidate | prompt)
// in float64. Every row is scored against the same candidate list; candidates
// must be non-empty token sequences. Rows run in one batch (left-padded).
std::vector<std::vector<double>> score_continuations(const Transformer& model,
                                                     const std::vector<std::vector<int64_t>>& prompts,
                                                     const std::vector<std::vector<int64_t>>& candidates,
                                                     const ScoreOptions& options = {});

}  // namespace synthpert::engine

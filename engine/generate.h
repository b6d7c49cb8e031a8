// Batched generation of a fixed set of prompts through the continuous-batching
// scheduler (engine/batch_scheduler.h): every prompt has a row of the KV cache
// from the start, prompts are prefilled right-padded in one forward pass, then
// decoded one token per step; a finished row leaves the batch at once.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/prefix_store.h"
#include "engine/sampler.h"

namespace synthpert::engine {

struct GenerateResult {
  std::vector<int64_t> tokens;  // without the stop id that ended them
  std::string finish_reason;    // "stop" or "length"
  // The stop id sampled last, when one ended the sequence (-1 otherwise:
  // the budget ran out, or on_token said stop).
  int64_t stop_token = -1;
};

struct GenerateOptions {
  // At most this many new tokens per prompt, and never past the model's
  // context (max_position_embeddings): a row that reaches it ends with
  // finish_reason "length". A prompt that fills the context is an InputError.
  int64_t max_new_tokens = 128;
  SamplingParams sampling;
  // Per prompt, overriding the two above (empty: every prompt uses them), so
  // requests with different budgets and sampling share one batch (serving).
  // With row_sampling a row's tokens depend on its own seed alone, not on its
  // place in the batch (with the shared one, each row draws its own stream).
  std::vector<int64_t> row_max_new_tokens;
  std::vector<SamplingParams> row_sampling;
  std::vector<int64_t> stop_ids;  // e.g. the model's EOS ids; not included in the output
  // Per prompt: the index of the adapter (Transformer::adapter_names) it runs
  // with, -1 for the base model; empty: every prompt runs without the bank.
  std::vector<int64_t> adapters;
  // Called for every new token of every unfinished sequence, in order. Returning
  // false ends that sequence with finish_reason "stop" (a stop string was
  // written, the client went away); the token stays in its output.
  std::function<bool(size_t sequence, int64_t token)> on_token;
  // Called once per sequence as soon as it finishes, so a caller can answer it
  // while the rest of the batch goes on.
  std::function<void(size_t sequence, const GenerateResult& result)> on_finish;
  // Prompt prefixes kept from earlier calls (engine/prefix_store.h): each
  // prompt copies the longest start the store holds and leaves its own
  // there (and with its reply, once that ends). A run that generates batch
  // after batch from one template keeps one store for all of them. A start
  // that prompts of one adapter share, of which the store lacks at least
  // min_shared_prefix tokens, runs once, first (the rows all start together
  // and would find nothing of each other's; engine/batch_scheduler.h).
  PrefixStore* prefixes = nullptr;
  int64_t min_shared_prefix = kMinSharedPrefix;
};

// A sequence that fails (every logit NaN: the activations overflowed; on_token
// or on_finish threw) lets the others finish, then generate() throws, naming
// the first that failed.
std::vector<GenerateResult> generate(const Transformer& model,
                                     const std::vector<std::vector<int64_t>>& prompts,
                                     const GenerateOptions& opts);

}  // namespace synthpert::engine

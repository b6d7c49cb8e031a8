#include "engine/generate.h"

#include <algorithm>

#include "common/error.h"
#include "engine/batch_scheduler.h"

namespace synthpert::engine {

std::vector<GenerateResult> generate(const Transformer& model,
                                     const std::vector<std::vector<int64_t>>& prompts,
                                     const GenerateOptions& opts) {
  SP_CHECK_INPUT(!prompts.empty(), "generate: no prompts");
  const int64_t B = static_cast<int64_t>(prompts.size());
  SP_CHECK_INPUT(opts.adapters.empty() || static_cast<int64_t>(opts.adapters.size()) == B, "generate: ",
                 opts.adapters.size(), " adapter choices for ", B, " prompts");
  SP_CHECK_INPUT(opts.row_max_new_tokens.empty() || static_cast<int64_t>(opts.row_max_new_tokens.size()) == B,
                 "generate: ", opts.row_max_new_tokens.size(), " token budgets for ", B, " prompts");
  SP_CHECK_INPUT(opts.row_sampling.empty() || static_cast<int64_t>(opts.row_sampling.size()) == B, "generate: ",
                 opts.row_sampling.size(), " sampling settings for ", B, " prompts");
  std::vector<int64_t> budget = opts.row_max_new_tokens;
  if (budget.empty()) budget.assign(static_cast<size_t>(B), opts.max_new_tokens);
  // Each row stops at the model's context (finish reason "length"), so the
  // cache never holds more than max_position_embeddings slots per row,
  // whatever budget was asked for.
  const int64_t context = model.config().max_position_embeddings;
  int64_t L = 0, max_budget = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(prompts[b].size());
    SP_CHECK_INPUT(n > 0, "generate: prompt ", b, " is empty");
    SP_CHECK_INPUT(n < context, "generate: prompt ", b, " has ", n, " tokens, which fills the model's context of ",
                   context, " (max_position_embeddings) and leaves no room for a new token");
    budget[b] = std::min(budget[b], context - n);
    L = std::max(L, n);
    max_budget = std::max(max_budget, budget[b]);
  }

  // Every prompt gets a row of its own from the start; rows leave the batch
  // as they finish.
  SchedulerOptions so;
  so.prefixes = opts.prefixes;
  so.min_shared_prefix = opts.min_shared_prefix;
  BatchScheduler scheduler(model, B, L + std::max<int64_t>(max_budget, 1), opts.stop_ids, so);
  std::vector<GenerateResult> results(B);
  // A row that fails (every logit NaN, a callback that throws) leaves the
  // batch alone; generate() has no partial answer to give, so it reports it.
  std::string failure;
  for (int64_t b = 0; b < B; ++b) {
    SequenceRequest r;
    r.prompt = prompts[b];
    r.max_new_tokens = budget[b];
    r.sampling = opts.row_sampling.empty() ? opts.sampling : opts.row_sampling[b];
    // Shared settings: one seed, a stream per row. Per-row settings: each row's
    // own seed decides its tokens wherever it sits in the batch, as if alone.
    r.sampler_stream = opts.row_sampling.empty() ? static_cast<uint64_t>(b) : 0;
    r.adapter = opts.adapters.empty() ? -1 : opts.adapters[b];
    const size_t row = static_cast<size_t>(b);
    r.on_token = [&opts, row](int64_t token) { return !opts.on_token || opts.on_token(row, token); };
    r.on_finish = [&opts, &results, row](const GenerateResult& g) {
      results[row] = g;
      if (opts.on_finish) opts.on_finish(row, g);
    };
    r.on_error = [&failure, row](const std::string& message) {
      if (failure.empty()) failure = str_cat("generate: sequence ", row, ": ", message);
    };
    scheduler.add(std::move(r));
  }
  while (!scheduler.idle()) scheduler.step();
  if (!failure.empty()) throw std::runtime_error(failure);
  return results;
}

}  // namespace synthpert::engine

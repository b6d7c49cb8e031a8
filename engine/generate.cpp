#include "engine/generate.h"

#include <algorithm>

#include "common/error.h"

namespace synthpert::engine {

std::vector<GenerateResult> generate(const Transformer& model,
                                     const std::vector<std::vector<int64_t>>& prompts,
                                     const GenerateOptions& opts) {
  InferenceGuard no_grad;
  SP_CHECK_INPUT(!prompts.empty(), "generate: no prompts");
  const int64_t B = static_cast<int64_t>(prompts.size());
  SP_CHECK_INPUT(opts.adapters.empty() || static_cast<int64_t>(opts.adapters.size()) == B, "generate: ",
                 opts.adapters.size(), " adapter choices for ", B, " prompts");
  SP_CHECK_INPUT(opts.row_max_new_tokens.empty() || static_cast<int64_t>(opts.row_max_new_tokens.size()) == B,
                 "generate: ", opts.row_max_new_tokens.size(), " token budgets for ", B, " prompts");
  SP_CHECK_INPUT(opts.row_sampling.empty() || static_cast<int64_t>(opts.row_sampling.size()) == B, "generate: ",
                 opts.row_sampling.size(), " sampling settings for ", B, " prompts");
  std::vector<int64_t> budget(B, opts.max_new_tokens);
  std::vector<SamplingParams> sampling(B, opts.sampling);
  if (!opts.row_max_new_tokens.empty()) budget = opts.row_max_new_tokens;
  if (!opts.row_sampling.empty()) sampling = opts.row_sampling;
  int64_t L = 0, max_budget = 0;
  bool greedy = true;
  for (int64_t b = 0; b < B; ++b) {
    SP_CHECK_INPUT(!prompts[b].empty(), "generate: prompt ", b, " is empty");
    SP_CHECK_INPUT(budget[b] >= 0, "--max-new-tokens must be >= 0");
    validate_sampling(sampling[b]);
    L = std::max<int64_t>(L, prompts[b].size());
    max_budget = std::max(max_budget, budget[b]);
    greedy = greedy && sampling[b].temperature == 0.0;
  }
  const int64_t V = model.config().vocab_size;

  // Left padding: row b's prompt occupies slots [L - len_b, L).
  auto ids = torch::zeros({B, L}, torch::kInt64);
  auto valid = torch::zeros({B, L}, torch::kBool);
  auto positions = torch::zeros({B, L}, torch::kInt64);
  std::vector<int64_t> next_pos(B);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = prompts[b].size(), pad = L - len;
    auto id_acc = ids.accessor<int64_t, 2>();
    auto pos_acc = positions.accessor<int64_t, 2>();
    auto val_acc = valid.accessor<bool, 2>();
    for (int64_t j = 0; j < len; ++j) {
      id_acc[b][pad + j] = prompts[b][j];
      pos_acc[b][pad + j] = j;
      val_acc[b][pad + j] = true;
    }
    next_pos[b] = len;
  }
  const torch::Device dev = model.device();
  KVCache cache = KVCache::create(model.config(), B, L + std::max<int64_t>(max_budget, 1), model.dtype(), dev);
  std::vector<Sampler> samplers;
  // Shared settings: one seed, a stream per row. Per-row settings: each row's
  // own seed decides its tokens wherever it sits in the batch, as if alone.
  for (int64_t b = 0; b < B; ++b) samplers.emplace_back(sampling[b], opts.row_sampling.empty() ? b : 0);
  std::vector<GenerateResult> results(B);
  std::vector<bool> done(B, false);
  auto finish = [&](int64_t b, const char* reason) {
    done[b] = true;
    results[b].finish_reason = reason;
    if (opts.on_finish) opts.on_finish(b, results[b]);
  };
  for (int64_t b = 0; b < B; ++b)
    if (budget[b] == 0) finish(b, "length");

  ForwardBatch batch;
  batch.ids = ids.to(dev);
  batch.positions = positions.to(dev);
  batch.valid = valid.to(dev);
  batch.adapter = opts.adapters;
  for (int64_t step = 0; step < max_budget; ++step) {
    auto hidden = model.hidden_states(batch, &cache);
    const auto last = model.logits(hidden.select(1, hidden.size(1) - 1));  // (B, V) float32
    // An all-greedy batch picks on the device (argmax: the lowest id on ties,
    // as the Sampler) and copies B ids; otherwise every row goes through its
    // Sampler on the host, one (B, V) copy per step.
    torch::Tensor picked, logits;
    if (greedy) picked = last.argmax(-1).to(torch::kCPU);
    else logits = last.to(torch::kCPU).contiguous();
    const int64_t* pick = greedy ? picked.data_ptr<int64_t>() : nullptr;
    const float* lp = greedy ? nullptr : logits.data_ptr<float>();
    auto next = torch::zeros({B, 1}, torch::kInt64);
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      const int64_t tok = greedy ? pick[b] : samplers[b].sample(lp + b * V, V);
      next[b][0] = tok;
      if (std::find(opts.stop_ids.begin(), opts.stop_ids.end(), tok) != opts.stop_ids.end()) {
        finish(b, "stop");
        continue;
      }
      results[b].tokens.push_back(tok);
      if (opts.on_token && !opts.on_token(b, tok)) finish(b, "stop");
      else if (static_cast<int64_t>(results[b].tokens.size()) == budget[b]) finish(b, "length");
      all_done = all_done && done[b];
    }
    if (all_done) break;
    batch.ids = next.to(dev);
    batch.positions = torch::tensor(next_pos, torch::kInt64).view({B, 1}).to(dev);
    batch.valid = torch::Tensor();  // every row's token counts (no mask, no host sync)
    for (auto& p : next_pos) ++p;
  }
  return results;
}

}  // namespace synthpert::engine

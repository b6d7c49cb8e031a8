#include "engine/generate.h"

#include <algorithm>

#include "common/error.h"

namespace synthpert::engine {

std::vector<GenerateResult> generate(const Transformer& model,
                                     const std::vector<std::vector<int64_t>>& prompts,
                                     const GenerateOptions& opts) {
  InferenceGuard no_grad;
  validate_sampling(opts.sampling);
  SP_CHECK_INPUT(!prompts.empty(), "generate: no prompts");
  SP_CHECK_INPUT(opts.max_new_tokens >= 0, "--max-new-tokens must be >= 0");
  const int64_t B = static_cast<int64_t>(prompts.size());
  int64_t L = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    SP_CHECK_INPUT(!prompts[i].empty(), "generate: prompt ", i, " is empty");
    L = std::max<int64_t>(L, prompts[i].size());
  }
  const int64_t V = model.config().vocab_size;
  SP_CHECK_INPUT(opts.adapters.empty() || static_cast<int64_t>(opts.adapters.size()) == B, "generate: ",
                 opts.adapters.size(), " adapter choices for ", B, " prompts");

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
  const bool greedy = opts.sampling.temperature == 0.0;
  KVCache cache = KVCache::create(model.config(), B, L + std::max<int64_t>(opts.max_new_tokens, 1),
                                  model.dtype(), dev);
  std::vector<Sampler> samplers;
  for (int64_t b = 0; b < B; ++b) samplers.emplace_back(opts.sampling, b);
  std::vector<GenerateResult> results(B);
  std::vector<bool> done(B, opts.max_new_tokens == 0);
  if (opts.max_new_tokens == 0)
    for (auto& r : results) r.finish_reason = "length";

  ForwardBatch batch;
  batch.ids = ids.to(dev);
  batch.positions = positions.to(dev);
  batch.valid = valid.to(dev);
  batch.adapter = opts.adapters;
  for (int64_t step = 0; step < opts.max_new_tokens; ++step) {
    auto hidden = model.hidden_states(batch, &cache);
    const auto last = model.logits(hidden.select(1, hidden.size(1) - 1));  // (B, V) float32
    // Greedy picks on the device (argmax: the lowest id on ties, as the
    // Sampler) and copies B ids; sampling runs on the host (Sampler), one
    // (B, V) copy per step.
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
        done[b] = true;
        results[b].finish_reason = "stop";
        continue;
      }
      results[b].tokens.push_back(tok);
      if (opts.on_token) opts.on_token(b, tok);
      if (static_cast<int64_t>(results[b].tokens.size()) == opts.max_new_tokens) {
        done[b] = true;
        results[b].finish_reason = "length";
      }
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

#include "engine/score.h"

#include <algorithm>

#include "common/error.h"

namespace synthpert::engine {

std::vector<std::vector<double>> score_continuations(
    const Transformer& model, const std::vector<std::vector<int64_t>>& prompts,
    const std::vector<std::vector<int64_t>>& candidates, const std::vector<int64_t>& adapters) {
  InferenceGuard no_grad;
  SP_CHECK_INPUT(!prompts.empty(), "score: no prompts");
  SP_CHECK_INPUT(!candidates.empty(), "score: no candidates");
  const int64_t B = prompts.size(), K = candidates.size();
  SP_CHECK_INPUT(adapters.empty() || static_cast<int64_t>(adapters.size()) == B, "score: ", adapters.size(),
                 " adapter choices for ", B, " prompts");
  int64_t L = 0, M = 0;  // longest prompt, longest candidate
  for (const auto& p : prompts) {
    SP_CHECK_INPUT(!p.empty(), "score: empty prompt");
    L = std::max<int64_t>(L, p.size());
  }
  // Every candidate id indexes the log-softmax rows below, and a candidate's
  // last id never passes through the model's own vocabulary check.
  const int64_t V = model.config().vocab_size;
  for (size_t k = 0; k < candidates.size(); ++k) {
    SP_CHECK_INPUT(!candidates[k].empty(), "score: empty candidate");
    for (const int64_t id : candidates[k])
      SP_CHECK_INPUT(id >= 0 && id < V, "score: candidate ", k, " has token id ", id, ", outside the vocabulary of ",
                     V);
    M = std::max<int64_t>(M, candidates[k].size());
  }
  const torch::Device dev = model.device();
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);

  // 1. Prompts, left-padded, into a cache with room for the candidates.
  auto ids = torch::zeros({B, L}, i64);
  auto pos = torch::zeros({B, L}, i64);
  auto valid = torch::zeros({B, L}, torch::kBool);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = prompts[b].size(), pad = L - n;
    for (int64_t j = 0; j < n; ++j) {
      ids[b][pad + j] = prompts[b][j];
      pos[b][pad + j] = j;
      valid[b][pad + j] = true;
    }
  }
  KVCache cache = KVCache::create(model.config(), B, L + M, model.dtype(), dev);
  ForwardBatch batch{ids.to(dev), pos.to(dev), valid.to(dev), {}, adapters};
  auto last = model.hidden_states(batch, &cache).select(1, L - 1);                // (B, C)
  auto first_logp = torch::log_softmax(model.logits(last), -1).to(torch::kCPU);  // (B, V)

  std::vector<std::vector<double>> out(B, std::vector<double>(K, 0.0));
  auto flp = first_logp.accessor<float, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) out[b][k] = flp[b][candidates[k][0]];
  if (M == 1) return out;

  // 2. Every (row, candidate) pair continues from its row's cache: feed the
  // candidate's tokens but the last, right-padded to M - 1, and read the
  // log-probability of each next candidate token.
  auto rows = torch::arange(B, i64).repeat_interleave(K).to(dev);  // row b*K + k
  cache.select_rows(rows);
  auto cids = torch::zeros({B * K, M - 1}, i64);
  auto cpos = torch::zeros({B * K, M - 1}, i64);
  auto cvalid = torch::zeros({B * K, M - 1}, torch::kBool);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j + 1 < static_cast<int64_t>(candidates[k].size()); ++j) {
        cids[b * K + k][j] = candidates[k][j];
        cpos[b * K + k][j] = static_cast<int64_t>(prompts[b].size()) + j;
        cvalid[b * K + k][j] = true;
      }
  // Row b * K + k continues row b, with its adapter.
  std::vector<int64_t> cont_adapters;
  for (const int64_t a : adapters) cont_adapters.insert(cont_adapters.end(), static_cast<size_t>(K), a);
  ForwardBatch cont{cids.to(dev), cpos.to(dev), cvalid.to(dev), {}, cont_adapters};
  auto logp = torch::log_softmax(model.logits(model.hidden_states(cont, &cache)), -1)
                  .to(torch::kCPU);  // (B*K, M-1, V)
  auto lp = logp.accessor<float, 3>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 1; j < static_cast<int64_t>(candidates[k].size()); ++j)
        out[b][k] += lp[b * K + k][j - 1][candidates[k][j]];
  return out;
}

}  // namespace synthpert::engine

#include "engine/prefix_store.h"

#include <algorithm>

#include "common/error.h"

namespace synthpert::engine {

int64_t shared_prefix_length(const std::vector<std::vector<int64_t>>& prompts) {
  if (prompts.empty()) return 0;
  const auto& first = prompts.front();
  size_t n = first.empty() ? 0 : first.size() - 1;
  for (const auto& p : prompts) {
    n = std::min(n, p.empty() ? size_t(0) : p.size() - 1);
    n = static_cast<size_t>(
        std::mismatch(first.begin(), first.begin() + static_cast<std::ptrdiff_t>(n), p.begin()).first - first.begin());
  }
  return static_cast<int64_t>(n);
}

PrefixStore::PrefixStore(int64_t max_tokens) : max_tokens_(max_tokens) {
  SP_CHECK_INPUT(max_tokens >= 1, "a prefix store needs room for at least one token");
}

void PrefixStore::bind(const Transformer& model) {
  if (!model_) model_ = &model;
  SP_CHECK(model_ == &model, "a prefix store holds one model's keys and values; this call passed another model");
}

PrefixStore::Match PrefixStore::longest_match(const Transformer& model, const std::vector<int64_t>& tokens,
                                              int64_t adapter) {
  bind(model);
  ++stats_.lookups;
  Entry* best = nullptr;
  int64_t best_length = 0;
  for (auto& e : entries_) {
    if (e.adapter != adapter) continue;
    const size_t n = std::min(e.tokens.size(), tokens.size());
    const auto length = static_cast<int64_t>(
        std::mismatch(e.tokens.begin(), e.tokens.begin() + n, tokens.begin()).first - e.tokens.begin());
    if (length > best_length) best = &e, best_length = length;
  }
  if (!best) return {};
  best->last_use = ++clock_;
  return {&best->kv, best_length};
}

void PrefixStore::restore(const Match& match, int64_t n, KVCache& into, int64_t row) {
  SP_CHECK(match.cache && n <= match.length, "prefix store: ", n, " tokens restored from a match of ", match.length);
  into.copy_row_from(*match.cache, 0, row, n);
  stats_.tokens_reused += n;
}

void PrefixStore::keep(const Transformer& model, const std::vector<int64_t>& tokens, int64_t adapter,
                       const KVCache& cache, int64_t row) {
  bind(model);
  // A sequence longer than the whole budget keeps its start: a later prompt
  // that opens with it (a long document asked about again) copies that much.
  const auto n = std::min(static_cast<int64_t>(tokens.size()), max_tokens_);
  if (n == 0) return;
  const std::vector<int64_t> start(tokens.begin(), tokens.begin() + n);
  for (auto& e : entries_)  // one that starts with the new tokens holds them already
    if (e.adapter == adapter && e.tokens.size() >= start.size() &&
        std::equal(start.begin(), start.end(), e.tokens.begin())) {
      e.last_use = ++clock_;
      return;
    }
  const auto covered = [&](const Entry& e) {  // the new entry answers every lookup this one did
    return e.adapter == adapter && e.tokens.size() <= start.size() &&
           std::equal(e.tokens.begin(), e.tokens.end(), start.begin());
  };
  const auto drop = [&](std::vector<Entry>::iterator e) {
    tokens_held_ -= static_cast<int64_t>(e->tokens.size());
    return entries_.erase(e);
  };
  for (auto e = entries_.begin(); e != entries_.end();) e = covered(*e) ? drop(e) : e + 1;
  while (tokens_held_ + n > max_tokens_)
    drop(std::min_element(entries_.begin(), entries_.end(),
                          [](const Entry& a, const Entry& b) { return a.last_use < b.last_use; }));
  KVCache kv = KVCache::create(model.config(), 1, n, model.dtype(), model.device(),
                               cache.token_major ? KVLayout::kTokenMajor : KVLayout::kHeadMajor);
  kv.copy_row_from(cache, row, 0, n);
  entries_.push_back(Entry{adapter, start, std::move(kv), ++clock_});
  tokens_held_ += n;
  stats_.tokens_kept += n;
}

void PrefixStore::fill(const Transformer& model, const std::vector<int64_t>& all, int64_t adapter, int64_t min_new) {
  // Beyond the budget nothing would be kept: those tokens need not run.
  const std::vector<int64_t> tokens(all.begin(), all.begin() + std::min(static_cast<int64_t>(all.size()), max_tokens_));
  const auto n = static_cast<int64_t>(tokens.size());
  const Match match = longest_match(model, tokens, adapter);
  if (n - match.length < std::max<int64_t>(min_new, 1)) return;
  const torch::Device dev = model.device();
  KVCache cache = KVCache::create(model.config(), 1, n, model.dtype(), dev);
  if (match.length > 0) restore(match, match.length, cache, 0);
  ForwardBatch rest;
  rest.ids = torch::tensor(std::vector<int64_t>(tokens.begin() + match.length, tokens.end()), torch::kInt64)
                 .unsqueeze(0)
                 .to(dev);
  rest.positions = torch::arange(match.length, n, torch::kInt64).unsqueeze(0).to(dev);
  if (adapter >= 0) rest.adapter = {adapter};
  InferenceGuard no_grad;
  // A key or value that is not finite (an overflowed activation) makes its
  // own position's output, and so its hidden state, non-finite too: such a
  // start is not kept, or every prompt that copied it would fail.
  if (model.hidden_states(rest, &cache).isfinite().all().item<bool>()) keep(model, tokens, adapter, cache, 0);
}

void PrefixStore::clear() {
  entries_.clear();
  tokens_held_ = 0;
  model_ = nullptr;
}

}  // namespace synthpert::engine

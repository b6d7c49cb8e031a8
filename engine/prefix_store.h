// Keys and values of prompt prefixes kept from one scoring call to the next.
//
// Every PerturbQA prompt of a template opens the same way (chat header,
// system prompt, instructions: about 145 of 172 tokens under the reasoning
// template), so a run that scores batch after batch, or a server that scores
// request after request, would compute that opening again each time. A
// store keeps the opening's keys and values (one row per adapter) and the
// next call copies the longest stored start of its prompts instead of
// running it.
//
// A store belongs to one model whose weights and adapters stay as they are
// while it lives (clear() after changing them), and to one thread. It holds
// at most max_tokens tokens' keys and values (about 128 KB a token for an
// 8B Llama in bf16, 64 KB for a 1B one in f32).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/model.h"

namespace synthpert::engine {

// Below this many shared tokens, the extra forward of a shared prefix costs
// more than it saves.
inline constexpr int64_t kMinSharedPrefix = 16;

// The number of leading tokens every prompt shares, at most the shortest
// prompt's length minus one (0 for no prompts).
int64_t shared_prefix_length(const std::vector<std::vector<int64_t>>& prompts);

class PrefixStore {
 public:
  // Room for the openings of a run's named and name-blind views under
  // several adapters (PerturbQA templates open with 100-200 tokens).
  static constexpr int64_t kDefaultTokens = 4096;

  explicit PrefixStore(int64_t max_tokens = kDefaultTokens);

  // The stored entry under `adapter` (-1: none) that shares the longest
  // start with `tokens`, and the length of that start (0 and null: none).
  struct Match {
    const KVCache* cache = nullptr;  // row 0 holds the entry's keys and values
    int64_t length = 0;
  };
  Match longest_match(const Transformer& model, const std::vector<int64_t>& tokens, int64_t adapter);

  // Row `row` of `into` becomes the first n tokens of a match (n at most
  // its length).
  void restore(const Match& match, int64_t n, KVCache& into, int64_t row);

  // Keeps the first tokens.size() slots of `cache`'s row `row` as the keys
  // and values of `tokens` under `adapter`, unless an entry of the same
  // adapter starts with them (it holds them already). An entry of the same
  // adapter whose tokens start the new ones is dropped (the new one answers
  // all it did); then the least recently matched or kept entries go until
  // the new one fits. Of a sequence longer than max_tokens, the first
  // max_tokens tokens are kept.
  void keep(const Transformer& model, const std::vector<int64_t>& tokens, int64_t adapter, const KVCache& cache,
            int64_t row);

  // Makes the store hold `tokens` (at most its first max_tokens) under
  // `adapter` when it lacks at least `min_new` of them: copies the longest
  // start it holds, runs the rest in one forward of one row, and keeps the
  // whole, unless an activation of it was not finite.
  void fill(const Transformer& model, const std::vector<int64_t>& tokens, int64_t adapter, int64_t min_new = 1);

  void clear();
  size_t size() const { return entries_.size(); }
  int64_t tokens_held() const { return tokens_held_; }

  struct Stats {
    int64_t lookups = 0;        // longest_match calls
    int64_t tokens_reused = 0;  // tokens restored (copied instead of run)
    int64_t tokens_kept = 0;    // tokens of the entries kept
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Entry {
    int64_t adapter;
    std::vector<int64_t> tokens;
    KVCache kv;  // one row
    uint64_t last_use;
  };
  // The store's model (its address), set by the first call; a call for
  // another model is a bug.
  void bind(const Transformer& model);

  int64_t max_tokens_;
  int64_t tokens_held_ = 0;
  const Transformer* model_ = nullptr;
  std::vector<Entry> entries_;
  uint64_t clock_ = 0;
  Stats stats_;
};

}  // namespace synthpert::engine

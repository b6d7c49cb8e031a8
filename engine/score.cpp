#include "engine/score.h"

#include <algorithm>
#include <numeric>

#include "common/error.h"

namespace synthpert::engine {

namespace {

// The batch's rows grouped by adapter: a prefix's keys and values depend on
// the adapters of k_proj and v_proj, so it runs once per distinct adapter.
struct AdapterGroups {
  std::vector<int64_t> distinct;  // in order of first use; empty: no row uses the bank
  std::vector<int64_t> source;    // per row: its adapter's index in distinct

  AdapterGroups(const std::vector<int64_t>& adapters, int64_t rows) : source(static_cast<size_t>(rows), 0) {
    for (size_t b = 0; b < adapters.size(); ++b) {
      const auto it = std::find(distinct.begin(), distinct.end(), adapters[b]);
      source[b] = it - distinct.begin();
      if (it == distinct.end()) distinct.push_back(adapters[b]);
    }
  }
  int64_t count() const { return std::max<int64_t>(1, static_cast<int64_t>(distinct.size())); }
  int64_t adapter(int64_t g) const { return distinct.empty() ? -1 : distinct[static_cast<size_t>(g)]; }
};

// Rows of token ids padded to one width, with their RoPE positions and
// validity, built on the host and sent to the device in one copy each.
struct TokenRows {
  int64_t width;
  torch::Tensor ids, positions, valid;

  TokenRows(int64_t rows, int64_t width_)
      : width(width_),
        ids(torch::zeros({rows, width_}, torch::kInt64)),
        positions(torch::zeros({rows, width_}, torch::kInt64)),
        valid(torch::zeros({rows, width_}, torch::kBool)) {}

  // Row r holds `tokens` at positions first, first + 1, ..., at the row's
  // end (left_pad) or start.
  void put(int64_t r, const std::vector<int64_t>& tokens, int64_t first, bool left_pad) {
    auto ia = ids.accessor<int64_t, 2>();
    auto pa = positions.accessor<int64_t, 2>();
    auto va = valid.accessor<bool, 2>();
    const int64_t n = static_cast<int64_t>(tokens.size()), col = left_pad ? width - n : 0;
    for (int64_t j = 0; j < n; ++j) {
      ia[r][col + j] = tokens[static_cast<size_t>(j)];
      pa[r][col + j] = first + j;
      va[r][col + j] = true;
    }
  }

  ForwardBatch batch(torch::Device dev, const std::vector<int64_t>& adapters) const {
    return ForwardBatch{ids.to(dev), positions.to(dev), valid.to(dev), {}, adapters};
  }
};

// A cache with a row per row of the batch (room for `capacity` tokens each)
// that all hold the keys and values of `prefix` at positions 0..P-1, each
// row its adapter's. Group g's row starts from the first have[g] tokens of
// stored[g] (none without a store), and the groups with tokens left run the
// rest together, so a group the store holds whole runs nothing.
KVCache prefix_cache(const Transformer& model, const std::vector<int64_t>& prefix, const AdapterGroups& groups,
                     int64_t capacity, PrefixStore* store, const std::vector<PrefixStore::Match>& stored,
                     const std::vector<int64_t>& have) {
  const int64_t R = groups.count(), P = static_cast<int64_t>(prefix.size());
  const torch::Device dev = model.device();
  // Cache rows: the groups with tokens to run first, as one range of rows.
  std::vector<int64_t> group_at(static_cast<size_t>(R)), row_of(static_cast<size_t>(R));
  std::iota(group_at.begin(), group_at.end(), 0);
  const int64_t running =
      std::stable_partition(group_at.begin(), group_at.end(), [&](int64_t g) { return have[g] < P; }) -
      group_at.begin();
  KVCache cache = KVCache::create(model.config(), R, capacity, model.dtype(), dev);
  int64_t first = P;  // the fewest tokens a running group holds
  for (int64_t row = 0; row < R; ++row) {
    const auto g = static_cast<size_t>(group_at[static_cast<size_t>(row)]);
    row_of[g] = row;
    if (have[g] > 0) store->restore(stored[g], have[g], cache, row);
    if (row < running) first = std::min(first, have[g]);
  }
  if (running > 0) {
    TokenRows rest(running, P - first);
    std::vector<int64_t> adapters;
    for (int64_t row = 0; row < running; ++row) {
      const int64_t g = group_at[static_cast<size_t>(row)], n = have[static_cast<size_t>(g)];
      rest.put(row, {prefix.begin() + n, prefix.end()}, n, /*left_pad=*/false);
      if (!groups.distinct.empty()) adapters.push_back(groups.adapter(g));
    }
    KVCache view = cache.row_range(0, running);
    model.hidden_states(rest.batch(dev, adapters), &view);
    std::copy(view.lengths.begin(), view.lengths.end(), cache.lengths.begin());
  }
  std::vector<int64_t> rows;  // per row of the batch: its group's cache row
  for (const int64_t g : groups.source) rows.push_back(row_of[static_cast<size_t>(g)]);
  cache.select_rows(torch::tensor(rows, torch::kInt64).to(dev));
  return cache;
}

// Rows of the head's logits per chunk. On a GPU, 256 (a (256, V) float32
// block is 131 MB at Llama-3's V = 128,256). On the CPU, as many as keep the
// block, and logsumexp's temporary of the same size, under 16 MiB: below
// the 32 MiB up to which keep_large_allocations_on_heap() keeps blocks on
// the heap. A larger block is a fresh mapping that page-faults on first touch
// in every chunk, which made batches of 8 and 32 rows score slower per row
// than single rows (bench_score, small preset with Llama-3's vocabulary).
int64_t head_chunk_rows(const Transformer& model) {
  if (!model.device().is_cpu()) return 256;
  constexpr int64_t kHostBlockBytes = int64_t{16} << 20;
  return std::max<int64_t>(1, kHostBlockBytes / (model.config().vocab_size * int64_t{4}));
}

// log p(targets[i][k] | hidden row i) for hidden (N, C) and targets (N, K),
// as float64 on the host, without materialising the (N, V) log-softmax: the
// head runs on a chunk of rows at a time, and only each row's log-sum-exp
// and its targets' logits leave the device.
torch::Tensor head_logprobs(const Transformer& model, const torch::Tensor& hidden, const torch::Tensor& targets) {
  const int64_t n = hidden.size(0), chunk = head_chunk_rows(model);
  std::vector<torch::Tensor> parts;
  for (int64_t c = 0; c < n; c += chunk) {
    const int64_t len = std::min(chunk, n - c);
    const auto logits = model.logits(hidden.narrow(0, c, len));  // (len, V) float32
    parts.push_back(logits.gather(1, targets.narrow(0, c, len)) - logits.logsumexp(1, /*keepdim=*/true));
  }
  return torch::cat(parts).to(torch::kCPU, torch::kFloat64).contiguous();
}

// log p(next[i] | position at[i]) for rows `at` of hidden (N, C).
std::vector<double> next_token_logprobs(const Transformer& model, const torch::Tensor& hidden,
                                        const std::vector<int64_t>& at, const std::vector<int64_t>& next) {
  const int64_t n = static_cast<int64_t>(at.size());
  const auto rows = torch::tensor(at, torch::kInt64).to(hidden.device());
  const auto targets = torch::tensor(next, torch::kInt64).to(hidden.device()).unsqueeze(1);
  const auto lp = head_logprobs(model, hidden.index_select(0, rows), targets);
  return std::vector<double>(lp.data_ptr<double>(), lp.data_ptr<double>() + n);
}

}  // namespace

std::vector<std::vector<double>> score_continuations(const Transformer& model,
                                                     const std::vector<std::vector<int64_t>>& prompts,
                                                     const std::vector<std::vector<int64_t>>& candidates,
                                                     const ScoreOptions& options) {
  InferenceGuard no_grad;
  SP_CHECK_INPUT(!prompts.empty(), "score: no prompts");
  SP_CHECK_INPUT(!candidates.empty(), "score: no candidates");
  const int64_t B = prompts.size(), K = candidates.size();
  const auto& adapters = options.adapters;
  SP_CHECK_INPUT(adapters.empty() || static_cast<int64_t>(adapters.size()) == B, "score: ", adapters.size(),
                 " adapter choices for ", B, " prompts");
  int64_t L = 0, M = 0;  // longest prompt, longest candidate
  for (const auto& p : prompts) {
    SP_CHECK_INPUT(!p.empty(), "score: empty prompt");
    L = std::max<int64_t>(L, p.size());
  }
  // Every candidate id is gathered from the head's logits below, and a candidate's
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

  // 1. The prompts' shared prefix (if worth it) into a cache with room for
  // the candidates, then every row's tail followed by the candidates' common
  // start (e.g. the "<answer>" every answer opens with), which is the same
  // for all of a row's candidates and so runs once per row.
  // With a store, each adapter's longest stored start of the shared prefix
  // is copied; the rest runs apart if some adapter lacks enough of it and
  // two rows or more share it, else joins the tails (from the start every
  // adapter holds). A single prompt's shared prefix is all of it but its
  // last token.
  PrefixStore* store = options.prefixes;
  const AdapterGroups groups(adapters, B);
  const int64_t shared = B > 1 || store ? shared_prefix_length(prompts) : 0;
  const std::vector<int64_t> prefix(prompts[0].begin(), prompts[0].begin() + shared);
  std::vector<PrefixStore::Match> stored;
  std::vector<int64_t> held(static_cast<size_t>(groups.count()), 0);  // per group: stored tokens of the prefix
  for (int64_t g = 0; g < groups.count() && store && shared > 0; ++g) {
    stored.push_back(store->longest_match(model, prefix, groups.adapter(g)));
    held[static_cast<size_t>(g)] = stored.back().length;
  }
  const int64_t reused = *std::min_element(held.begin(), held.end());
  const int64_t P = B > 1 && shared - reused >= options.min_shared_prefix ? shared : reused;
  const int64_t Q = shared_prefix_length(candidates);  // every candidate keeps a token after it
  const std::vector<int64_t> common(candidates[0].begin(), candidates[0].begin() + Q);
  std::vector<int64_t> have(held.size());
  for (size_t g = 0; g < held.size(); ++g) have[g] = std::min(held[g], P);
  KVCache cache = P > 0 ? prefix_cache(model, std::vector<int64_t>(prefix.begin(), prefix.begin() + P), groups, L + M,
                                       store, stored, have)
                        : KVCache::create(model.config(), B, L + M, model.dtype(), dev);
  TokenRows tails(B, L - P + Q);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int64_t> tail(prompts[b].begin() + P, prompts[b].end());
    tail.insert(tail.end(), common.begin(), common.end());
    tails.put(b, tail, P, /*left_pad=*/true);
  }
  const auto hidden = model.hidden_states(tails.batch(dev, adapters), &cache);  // (B, T, C)
  // Each row's cache now starts with the shared prefix: kept from the first
  // row of each adapter that lacked some of it, for the calls to come.
  for (int64_t g = 0; g < groups.count() && store; ++g) {
    if (held[static_cast<size_t>(g)] == shared) continue;
    const auto row = std::find(groups.source.begin(), groups.source.end(), g) - groups.source.begin();
    store->keep(model, prefix, groups.adapter(g), cache, row);
  }
  const int64_t T = tails.width;
  // Column T - 1 - Q + j (the prompt's last token, then the common tokens)
  // predicts common[j]; column T - 1 predicts each candidate's token Q.
  std::vector<double> common_logp(static_cast<size_t>(B), 0.0);
  if (Q > 0) {
    std::vector<int64_t> at, next;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < Q; ++j) {
        at.push_back(b * T + T - 1 - Q + j);
        next.push_back(common[static_cast<size_t>(j)]);
      }
    const auto lp = next_token_logprobs(model, hidden.reshape({B * T, -1}), at, next);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < Q; ++j) common_logp[static_cast<size_t>(b)] += lp[static_cast<size_t>(b * Q + j)];
  }
  // Column T - 1: every row's log-probability of each candidate's token Q.
  std::vector<int64_t> first_ids;
  for (int64_t k = 0; k < K; ++k) first_ids.push_back(candidates[k][Q]);
  const auto first_BK = torch::tensor(first_ids, torch::kInt64).to(dev).unsqueeze(0).expand({B, K});
  const auto last_logp = head_logprobs(model, hidden.select(1, T - 1), first_BK);  // (B, K)
  std::vector<std::vector<double>> out(B, std::vector<double>(K, 0.0));
  auto dlp = last_logp.accessor<double, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) out[b][k] = common_logp[b] + dlp[b][k];
  if (M - Q == 1) return out;

  // 2. Every (row, candidate) pair continues from its row's cache: feed the
  // candidate's tokens after the common start but the last, right-padded,
  // and read the log-probability of each next candidate token.
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  cache.select_rows(torch::arange(B, i64).repeat_interleave(K).to(dev));  // row b * K + k continues row b
  TokenRows cont(B * K, M - Q - 1);
  std::vector<int64_t> fed, next;  // flat index (row * width + j) of each fed token, and the token it predicts
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) {
      const auto& c = candidates[k];
      cont.put(b * K + k, std::vector<int64_t>(c.begin() + Q, c.end() - 1), static_cast<int64_t>(prompts[b].size()) + Q,
               /*left_pad=*/false);
      for (size_t j = Q; j + 1 < c.size(); ++j) {
        fed.push_back((b * K + k) * cont.width + static_cast<int64_t>(j) - Q);
        next.push_back(c[j + 1]);
      }
    }
  std::vector<int64_t> cont_adapters;  // with its row's adapter
  for (const int64_t a : adapters) cont_adapters.insert(cont_adapters.end(), static_cast<size_t>(K), a);
  const auto cont_hidden = model.hidden_states(cont.batch(dev, cont_adapters), &cache);
  const auto lp = next_token_logprobs(model, cont_hidden.reshape({B * K * cont.width, -1}), fed, next);
  size_t at = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k)
      for (size_t j = Q + 1; j < candidates[k].size(); ++j) out[b][k] += lp[at++];
  return out;
}

}  // namespace synthpert::engine

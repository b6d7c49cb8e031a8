#include "engine/batch_scheduler.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "common/error.h"

namespace synthpert::engine {

BatchScheduler::BatchScheduler(const Transformer& model, int64_t max_rows, int64_t capacity,
                               std::vector<int64_t> stop_ids, SchedulerOptions options)
    : model_(model),
      max_rows_(max_rows),
      stop_ids_(std::move(stop_ids)),
      pool_(KVCache::create(model.config(), std::max<int64_t>(max_rows, 1), std::max<int64_t>(capacity, 1),
                            model.dtype(), model.device())),
      prefill_chunk_(options.prefill_chunk),
      prefixes_(options.prefixes),
      min_shared_prefix_(options.min_shared_prefix) {
  SP_CHECK_INPUT(max_rows >= 1, "a batch needs at least one row");
  SP_CHECK_INPUT(prefill_chunk_ >= 0, "the prefill chunk must be >= 0 tokens (0: whole prompts), got ", prefill_chunk_);
}

void BatchScheduler::add(SequenceRequest r) {
  SP_CHECK_INPUT(!r.prompt.empty(), "a sequence needs a non-empty prompt");
  SP_CHECK_INPUT(r.max_new_tokens >= 0, "--max-new-tokens must be >= 0");
  // Checked here, alone: inside a batched forward a bad index would fail
  // every row in the batch.
  SP_CHECK_INPUT(r.adapter >= -1 && r.adapter < static_cast<int64_t>(model_.adapter_names.size()),
                 "adapter index ", r.adapter, " but the model holds ", model_.adapter_names.size(), " adapters");
  const int64_t vocab = model_.config().vocab_size;
  for (const int64_t id : r.prompt)
    SP_CHECK_INPUT(id >= 0 && id < vocab, "token id ", id, " is outside the vocabulary (", vocab, " tokens)");
  validate_sampling(r.sampling);
  // Compared without adding, so a budget near INT64_MAX cannot wrap around.
  const int64_t prompt = static_cast<int64_t>(r.prompt.size());
  SP_CHECK_INPUT(prompt < pool_.capacity && std::max<int64_t>(r.max_new_tokens, 1) <= pool_.capacity - prompt,
                 "a prompt of ", r.prompt.size(), " tokens plus ", r.max_new_tokens,
                 " new ones exceeds the cache's ", pool_.capacity, " slots per row");
  if (r.max_new_tokens == 0) {
    if (r.on_finish) r.on_finish({{}, "length"});
    return;
  }
  waiting_.push_back(std::move(r));
}

void BatchScheduler::step() {
  InferenceGuard no_grad;
  const bool prefilling = rows_.size() > decoding_;
  const bool can_admit = !waiting_.empty() && running() < max_rows_;
  // Prefill when prompts are under way or sequences wait and rows are free,
  // but not twice in a row while others decode: a steady stream of arrivals
  // or a long prompt must not stall decoding.
  const bool prefill_now = (prefilling || can_admit) && (decoding_ == 0 || !prefilled_last_);
  prefilled_last_ = prefill_now;
  if (prefill_now) {
    if (can_admit) admit_waiting();
    prefill();
    promote_prefilled();
  } else if (decoding_ > 0) {
    decode();
  }
  compact();
}

std::vector<int64_t> BatchScheduler::adapters(size_t begin, size_t end) const {
  std::vector<int64_t> out;
  bool any = false;
  for (size_t i = begin; i < end; ++i) {
    out.push_back(rows_[i].request.adapter);
    any = any || out.back() >= 0;
  }
  if (!any) out.clear();  // the plain forward, no bank routing
  return out;
}

void BatchScheduler::run_forward(size_t begin, size_t count, const ForwardBatch& batch, torch::Tensor* hidden_out) {
  last_step_rows_ = static_cast<int64_t>(count);
  KVCache view = pool_.row_range(static_cast<int64_t>(begin), static_cast<int64_t>(count));
  *hidden_out = model_.hidden_states(batch, &view);
  std::copy(view.lengths.begin(), view.lengths.end(), pool_.lengths.begin() + static_cast<int64_t>(begin));
}

void BatchScheduler::admit_waiting() {
  const size_t begin = rows_.size();
  const size_t k = std::min<size_t>(waiting_.size(), static_cast<size_t>(max_rows_) - begin);
  for (size_t i = 0; i < k; ++i) {
    SequenceRequest r = std::move(waiting_.front());
    waiting_.pop_front();
    Sampler sampler(r.sampling, r.sampler_stream);
    rows_.push_back(Row{std::move(r), std::move(sampler), {}});
    pool_.lengths[static_cast<int64_t>(begin + i)] = 0;
  }
  if (!prefixes_) return;
  store_shared_starts(begin, begin + k);
  for (size_t i = begin; i < begin + k; ++i) {
    Row& row = rows_[i];
    const int64_t at = static_cast<int64_t>(i);
    const auto match = prefixes_->longest_match(model_, row.request.prompt, row.request.adapter);
    row.stored = match.length;
    // The prompt's last token always runs: its logits give the first new one.
    row.prefilled = std::min<int64_t>(match.length, static_cast<int64_t>(row.request.prompt.size()) - 1);
    if (row.prefilled > 0) prefixes_->restore(match, row.prefilled, pool_, at);
  }
}

void BatchScheduler::store_shared_starts(size_t begin, size_t end) {
  // In lexical order (adapter first), the longest start a prompt shares with
  // any other is the one it shares with a neighbour.
  std::vector<const SequenceRequest*> sorted;
  for (size_t i = begin; i < end; ++i) sorted.push_back(&rows_[i].request);
  std::sort(sorted.begin(), sorted.end(), [](const SequenceRequest* a, const SequenceRequest* b) {
    return a->adapter != b->adapter ? a->adapter < b->adapter : a->prompt < b->prompt;
  });
  std::vector<std::pair<int64_t, std::vector<int64_t>>> starts;  // (adapter, tokens)
  for (size_t i = 0; i + 1 < sorted.size(); ++i) {
    const SequenceRequest &a = *sorted[i], &b = *sorted[i + 1];
    if (a.adapter != b.adapter) continue;
    int64_t n = shared_prefix_length({a.prompt, b.prompt});
    if (prefill_chunk_ > 0) n = std::min(n, prefill_chunk_);
    if (n >= min_shared_prefix_)
      starts.emplace_back(a.adapter, std::vector<int64_t>(a.prompt.begin(), a.prompt.begin() + n));
  }
  // Shorter first, so a longer start that extends one runs only its own
  // tokens (and only when there are enough of them).
  std::stable_sort(starts.begin(), starts.end(),
                   [](const auto& a, const auto& b) { return a.second.size() < b.second.size(); });
  for (const auto& [adapter, tokens] : starts) prefixes_->fill(model_, tokens, adapter, min_shared_prefix_);
}

void BatchScheduler::prefill() {
  const size_t begin = decoding_, k = rows_.size() - decoding_;
  // Each row's next piece of its prompt, right-padded: row i's tokens at
  // [0, take_i) of this step, positions continuing from what its cache holds;
  // the cache stores only valid tokens. Rows admitted at this step start at
  // position 0 beside rows halfway through their prompts.
  std::vector<int64_t> take(k);
  int64_t T = 0;
  for (size_t i = 0; i < k; ++i) {
    const Row& row = rows_[begin + i];
    const int64_t left = static_cast<int64_t>(row.request.prompt.size()) - row.prefilled;
    take[i] = prefill_chunk_ > 0 ? std::min(left, prefill_chunk_) : left;
    T = std::max(T, take[i]);
  }
  const int64_t K = static_cast<int64_t>(k);
  auto ids = torch::zeros({K, T}, torch::kInt64);
  auto positions = torch::zeros({K, T}, torch::kInt64);
  auto valid = torch::zeros({K, T}, torch::kBool);
  std::vector<size_t> completed;        // rows whose prompt ends in this step
  std::vector<int64_t> completed_at;    // (their index among the prefilling rows, last token's column), flattened
  bool padded = false;
  {
    auto id_acc = ids.accessor<int64_t, 2>();
    auto pos_acc = positions.accessor<int64_t, 2>();
    auto val_acc = valid.accessor<bool, 2>();
    for (int64_t i = 0; i < K; ++i) {
      Row& row = rows_[begin + i];
      const auto& p = row.request.prompt;
      for (int64_t j = 0; j < take[i]; ++j) {
        id_acc[i][j] = p[row.prefilled + j];
        pos_acc[i][j] = row.prefilled + j;
        val_acc[i][j] = true;
      }
      padded = padded || take[i] < T;
      row.prefilled += take[i];
      if (take[i] > 0 && row.prefilled == static_cast<int64_t>(p.size())) {
        completed.push_back(begin + i);
        completed_at.push_back(i);
        completed_at.push_back(take[i] - 1);
      }
    }
  }
  const torch::Device dev = model_.device();
  ForwardBatch batch;
  batch.ids = ids.to(dev);
  batch.positions = positions.to(dev);
  if (padded) batch.valid = valid.to(dev);
  batch.adapter = adapters(begin, begin + k);
  torch::Tensor hidden;  // (K, T, C)
  run_forward(begin, k, batch, &hidden);
  if (completed.empty()) return;
  const auto at = torch::tensor(completed_at, torch::kInt64).view({-1, 2}).to(dev);
  advance(completed, model_.logits(hidden.index({at.select(1, 0), at.select(1, 1)})));
  // After sampling, so a row whose logits were NaN (an overflowed
  // activation) leaves nothing for later prompts to copy.
  for (const size_t r : completed) keep_in_store(r);
}

void BatchScheduler::keep_in_store(size_t r) {
  Row& row = rows_[r];
  const int64_t n = pool_.lengths[r];
  if (!prefixes_ || row.failed || n <= row.stored) return;
  // The cache holds the prompt and the reply but its last token (sampled,
  // never fed back), or the whole reply when a stop id ended it.
  std::vector<int64_t> tokens = row.request.prompt;
  tokens.insert(tokens.end(), row.result.tokens.begin(), row.result.tokens.end());
  tokens.resize(static_cast<size_t>(n));
  prefixes_->keep(model_, tokens, row.request.adapter, pool_, static_cast<int64_t>(r));
  row.stored = n;
}

void BatchScheduler::promote_prefilled() {
  // The row at decoding_ has been looked at already (it stays prefilling, or
  // is done and left to compact), so swapping it back to i is safe.
  for (size_t i = decoding_; i < rows_.size(); ++i) {
    const Row& row = rows_[i];
    if (row.done || row.prefilled < static_cast<int64_t>(row.request.prompt.size())) continue;
    if (i != decoding_) {
      pool_.swap_rows(static_cast<int64_t>(i), static_cast<int64_t>(decoding_));
      std::swap(rows_[i], rows_[decoding_]);
    }
    ++decoding_;  // it decodes from the next step on
  }
}

void BatchScheduler::decode() {
  const int64_t R = decoding();
  auto ids = torch::zeros({R, 1}, torch::kInt64);
  auto positions = torch::zeros({R, 1}, torch::kInt64);
  auto id_acc = ids.accessor<int64_t, 2>();
  auto pos_acc = positions.accessor<int64_t, 2>();
  for (int64_t i = 0; i < R; ++i) {
    id_acc[i][0] = rows_[i].next_token;
    pos_acc[i][0] = pool_.lengths[i];  // compact rows: a row's length is its next position
  }
  const torch::Device dev = model_.device();
  ForwardBatch batch;
  batch.ids = ids.to(dev);
  batch.positions = positions.to(dev);
  batch.adapter = adapters(0, decoding_);  // no validity mask: every row's token counts, no host sync
  torch::Tensor hidden;  // (R, 1, C)
  run_forward(0, decoding_, batch, &hidden);
  std::vector<size_t> all(decoding_);
  for (size_t i = 0; i < decoding_; ++i) all[i] = i;
  advance(all, model_.logits(hidden.select(1, 0)));
}

void BatchScheduler::advance(const std::vector<size_t>& rows, const torch::Tensor& logits_RV) {
  const int64_t R = logits_RV.size(0), V = logits_RV.size(1);
  bool greedy = true;
  for (int64_t i = 0; i < R; ++i) greedy = greedy && rows_[rows[i]].request.sampling.temperature == 0.0;
  // An all-greedy batch picks on the device (argmax: the lowest id on ties,
  // as the Sampler) and copies R ids; otherwise every row goes through its
  // Sampler on the host, one (R, V) copy.
  torch::Tensor picked, logits;
  if (greedy) {
    // NaN (an overflowed fp16 activation) is never picked, as on the host;
    // torch's argmax would take it as the maximum. Only the picked logit is
    // checked afterwards: it is NaN only when no entry beats -inf, a row the
    // host resolves below (-1 when every entry is NaN).
    constexpr double kInf = std::numeric_limits<double>::infinity();
    const torch::Tensor argmax = logits_RV.nan_to_num(-kInf, kInf, -kInf).argmax(-1, /*keepdim=*/true);
    const torch::Tensor at_pick = logits_RV.gather(-1, argmax);
    picked = torch::where(at_pick.isnan(), torch::full_like(argmax, -1), argmax).squeeze(-1).to(torch::kCPU);
    for (int64_t i = 0; i < R; ++i) {
      int64_t& id = picked.data_ptr<int64_t>()[i];
      if (id >= 0) continue;
      // The host rule: the lowest id that is not NaN (here every such is -inf).
      const torch::Tensor not_nan = logits_RV[i].isnan().logical_not().nonzero();
      if (not_nan.size(0) > 0) id = not_nan[0][0].item<int64_t>();
    }
  } else {
    logits = logits_RV.to(torch::kCPU, torch::kFloat32).contiguous();
  }
  for (int64_t i = 0; i < R; ++i) {
    Row& row = rows_[rows[i]];
    int64_t tok = -1;
    try {
      if (!greedy) tok = row.sampler.sample(logits.data_ptr<float>() + i * V, V);
      else if ((tok = picked.data_ptr<int64_t>()[i]) < 0)
        throw std::runtime_error(kAllLogitsNan);
    } catch (const std::exception& e) {
      fail(row, e.what());  // this row alone: the others' logits are fine
      continue;
    }
    if (std::find(stop_ids_.begin(), stop_ids_.end(), tok) != stop_ids_.end()) {
      row.result.stop_token = tok;
      finish(row, "stop");
      continue;
    }
    row.result.tokens.push_back(tok);
    row.next_token = tok;
    bool go_on = true;
    try {
      go_on = !row.request.on_token || row.request.on_token(tok);
    } catch (const std::exception& e) {
      fail(row, e.what());
      continue;
    }
    if (!go_on) finish(row, "stop");
    else if (static_cast<int64_t>(row.result.tokens.size()) == row.request.max_new_tokens) finish(row, "length");
  }
  for (const size_t r : rows)
    if (rows_[r].done) keep_in_store(r);
}

void BatchScheduler::finish(Row& row, const char* reason) {
  row.done = true;
  row.result.finish_reason = reason;
  try {
    if (row.request.on_finish) row.request.on_finish(row.result);
  } catch (const std::exception& e) {
    fail(row, e.what());
  }
}

void BatchScheduler::fail(Row& row, const std::string& message) {
  row.done = true;
  row.failed = true;
  if (row.request.on_error) row.request.on_error(message);
}

void BatchScheduler::move(size_t from, size_t to) {
  pool_.move_row(static_cast<int64_t>(from), static_cast<int64_t>(to));
  rows_[to] = std::move(rows_[from]);
}

void BatchScheduler::compact() {
  // A finished decoding row takes the last decoding row; the hole that leaves
  // at the end of the decoding range takes the last prefilling row.
  size_t i = 0;
  while (i < decoding_) {
    if (!rows_[i].done) {
      ++i;
      continue;
    }
    const size_t last = decoding_ - 1, end = rows_.size() - 1;
    if (i != last) move(last, i);
    if (end != last) move(end, last);
    --decoding_;
    pool_.lengths[end] = 0;
    rows_.pop_back();
  }
  // A prefilling row that finished on its first token takes the last prefilling row.
  i = decoding_;
  while (i < rows_.size()) {
    if (!rows_[i].done) {
      ++i;
      continue;
    }
    const size_t end = rows_.size() - 1;
    if (i != end) move(end, i);
    pool_.lengths[end] = 0;
    rows_.pop_back();
  }
}

void BatchScheduler::fail_all(const std::string& message) {
  auto fail = [&](SequenceRequest& r) {
    if (r.on_error) r.on_error(message);
  };
  for (auto& r : waiting_) fail(r);
  for (auto& row : rows_)
    if (!row.done) fail(row.request);
  waiting_.clear();
  rows_.clear();
  decoding_ = 0;
  std::fill(pool_.lengths.begin(), pool_.lengths.end(), 0);
}

}  // namespace synthpert::engine

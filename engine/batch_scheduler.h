// Continuous batching: sequences join and leave a running batch between
// forward passes, so a short request is not held by a long one and a new one
// does not wait for the batch to end.
//
// The KV cache is a pool of `max_rows` rows of `capacity` slots. Decoding
// sequences occupy rows [0, decoding); the sequences being prefilled sit
// right after them (the cache keeps each row compact, engine/model.h). A
// forward runs on either range as a view of the pool, so nothing is copied to
// form a batch. A step either prefills (one forward over the prefilling
// rows, prompts right-padded, positions continuing from what each row's cache
// holds; a row whose prompt is then in samples its first token from its last
// prompt position) or decodes one token for every decoding row; two prefill
// steps never follow each other while rows decode.
//
// Chunked prefill (`prefill_chunk` > 0): a prefill step feeds each row at
// most that many prompt tokens, so a long prompt is prefilled over several
// steps with decode steps between them, and the rows already decoding keep
// producing tokens meanwhile. Waiting sequences join the prefilling rows at
// any prefill step with a free row, and a row joins the decoding rows as soon
// as its own prompt is in: neither a short prompt nor a new arrival waits for
// a long prompt ahead of it.
// A finished row is replaced by the last decoding row, and the hole that
// leaves by the last prefilling row (one row copied each), so both ranges
// stay contiguous.
//
// Prefix reuse (`prefixes` set): a joining row takes the longest start of its
// prompt that the store holds under its adapter (all of it but the last
// token at most, whose logits give the first new token) as copied keys and
// values, and prefills only the rest. A row whose prompt is in leaves its
// prompt in the store, and a finished row its prompt and reply, so a later
// request with the same system prompt, or the next turn of a chat, runs only
// what is new. Rows that join at the same step would find nothing of each
// other's, so the starts their prompts share with others of the same adapter
// run first, once each, into the store (those the store lacks at least
// min_shared_prefix tokens of), and the rows copy them: a burst of requests
// with a new system prompt runs it once. Under chunked prefill each start is
// cut to one chunk, as no forward of a prompt may be longer.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "engine/generate.h"
#include "engine/model.h"
#include "engine/prefix_store.h"
#include "engine/sampler.h"

namespace synthpert::engine {

struct SequenceRequest {
  std::vector<int64_t> prompt;
  int64_t max_new_tokens = 128;
  SamplingParams sampling;
  uint64_t sampler_stream = 0;  // Sampler stream (sampler.h)
  int64_t adapter = -1;         // Transformer::adapter_names index; -1: base model
  // Every new token, in order; returning false ends the sequence ("stop").
  std::function<bool(int64_t token)> on_token;
  // Once, when the sequence finishes.
  std::function<void(const GenerateResult&)> on_finish;
  // Instead of on_finish when the scheduler is failed (fail_all), when this
  // sequence's logits have nothing to sample (all NaN), or when its own
  // on_token throws: that ends the sequence alone (a reply that cannot be
  // decoded), the others go on. Also after an on_finish that threw, which
  // therefore must not have delivered the result.
  std::function<void(const std::string& message)> on_error;
};

struct SchedulerOptions {
  int64_t prefill_chunk = 0;  // prompt tokens per row per prefill step (0: whole prompts)
  // A store of this model's prompt prefixes (none: every prompt runs whole);
  // used from the calling thread only, it must outlive the scheduler.
  PrefixStore* prefixes = nullptr;
  // Rows joining at one step run a start they share apart when the store
  // lacks at least this many of its tokens.
  int64_t min_shared_prefix = kMinSharedPrefix;
};

class BatchScheduler {
 public:
  BatchScheduler(const Transformer& model, int64_t max_rows, int64_t capacity, std::vector<int64_t> stop_ids,
                 SchedulerOptions options = {});

  // Queues a sequence; it joins at the next step with a free row. Its prompt
  // plus budget must fit a row's capacity (InputError otherwise).
  void add(SequenceRequest request);
  // Runs one forward (prefill of waiting sequences, else one decode token).
  void step();
  // Calls on_error of every waiting and running sequence and drops them.
  void fail_all(const std::string& message);

  bool idle() const { return waiting_.empty() && rows_.empty(); }
  // Rows in use: decoding, plus those being prefilled.
  int64_t running() const { return static_cast<int64_t>(rows_.size()); }
  int64_t decoding() const { return static_cast<int64_t>(decoding_); }
  int64_t waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t max_rows() const { return max_rows_; }
  int64_t capacity() const { return pool_.capacity; }
  int64_t last_step_rows() const { return last_step_rows_; }  // rows in the latest forward

 private:
  struct Row {
    SequenceRequest request;
    Sampler sampler;
    GenerateResult result;
    int64_t prefilled = 0;   // prompt tokens in the cache
    int64_t next_token = 0;  // sampled, not yet in the cache
    int64_t stored = 0;      // tokens of this row the store holds (at admission, or kept since)
    bool done = false;
    bool failed = false;  // ended by fail(): NaN logits, or a callback threw
  };

  // Moves waiting sequences into free rows after the prefilling ones, each
  // with what the prefix store holds of its prompt.
  void admit_waiting();
  // Runs into the prefix store the starts that prompts of rows [begin, end)
  // share with another of the same adapter.
  void store_shared_starts(size_t begin, size_t end);
  void prefill();
  // Moves the prefilling rows whose prompt is in to the end of the decoding range.
  void promote_prefilled();
  void decode();
  // Samples the next token of each listed row from its row of `logits_RV`
  // (one per listed row, in order) and applies it.
  void advance(const std::vector<size_t>& rows, const torch::Tensor& logits_RV);
  void finish(Row& row, const char* reason);
  // Keeps what row r's cache holds (its prompt once in, then the reply too
  // when it finishes) in the prefix store, unless it failed or the store
  // holds it already.
  void keep_in_store(size_t r);
  void fail(Row& row, const std::string& message);
  // Moves row `from` (state and cache) to the free row `to`.
  void move(size_t from, size_t to);
  void compact();
  std::vector<int64_t> adapters(size_t begin, size_t end) const;
  void run_forward(size_t begin, size_t count, const ForwardBatch& batch, torch::Tensor* hidden_out);

  const Transformer& model_;
  int64_t max_rows_;
  std::vector<int64_t> stop_ids_;
  KVCache pool_;
  int64_t prefill_chunk_;
  PrefixStore* prefixes_;
  int64_t min_shared_prefix_;
  std::deque<SequenceRequest> waiting_;
  std::vector<Row> rows_;  // row i sits in pool row i: [0, decoding_) decode, the rest prefill
  size_t decoding_ = 0;
  int64_t last_step_rows_ = 0;
  bool prefilled_last_ = false;
};

}  // namespace synthpert::engine

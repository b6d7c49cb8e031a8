// Continuous batching: sequences join and leave a running batch between
// forward passes, so a short request is not held by a long one and a new one
// does not wait for the batch to end.
//
// The KV cache is a pool of `max_rows` rows of `capacity` slots. Running
// sequences occupy rows [0, running) (the cache keeps each row compact,
// engine/model.h); a forward runs on that range as a view of the pool, so
// nothing is copied to form a batch. A step either prefills every waiting
// sequence that fits (one forward over the next free rows, prompts
// right-padded, each row's first token sampled from its last prompt
// position) or decodes one token for every running row; two prefills never
// follow each other while rows are running.
// A finished row is replaced by the last running row (one row copied), so
// the running range stays contiguous.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "engine/generate.h"
#include "engine/model.h"
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
  // Instead of on_finish when the scheduler is failed (fail_all).
  std::function<void(const std::string& message)> on_error;
};

class BatchScheduler {
 public:
  BatchScheduler(const Transformer& model, int64_t max_rows, int64_t capacity, std::vector<int64_t> stop_ids);

  // Queues a sequence; it joins at the next step with a free row. Its prompt
  // plus budget must fit a row's capacity (InputError otherwise).
  void add(SequenceRequest request);
  // Runs one forward (prefill of waiting sequences, else one decode token).
  void step();
  // Calls on_error of every waiting and running sequence and drops them.
  void fail_all(const std::string& message);

  bool idle() const { return waiting_.empty() && rows_.empty(); }
  int64_t running() const { return static_cast<int64_t>(rows_.size()); }
  int64_t waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t max_rows() const { return max_rows_; }
  int64_t capacity() const { return pool_.capacity; }
  int64_t last_step_rows() const { return last_step_rows_; }  // rows in the latest forward

 private:
  struct Row {
    SequenceRequest request;
    Sampler sampler;
    GenerateResult result;
    int64_t next_token = 0;  // sampled, not yet in the cache
    bool done = false;
  };

  void prefill();
  void decode();
  // Samples each row's next token from its (rows, V) logits and applies it.
  void advance(size_t first_row, const torch::Tensor& logits_RV);
  void finish(Row& row, const char* reason);
  void compact();
  std::vector<int64_t> adapters(size_t begin, size_t end) const;
  void run_forward(size_t begin, size_t count, const ForwardBatch& batch, torch::Tensor* hidden_out);

  const Transformer& model_;
  int64_t max_rows_;
  std::vector<int64_t> stop_ids_;
  KVCache pool_;
  std::deque<SequenceRequest> waiting_;
  std::vector<Row> rows_;  // row i sits in pool row i
  int64_t last_step_rows_ = 0;
  bool prefilled_last_ = false;
};

}  // namespace synthpert::engine

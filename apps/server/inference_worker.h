// The one thread that runs the model. HTTP handlers run on many threads;
// the model and its caches are used by this thread alone, so requests queue
// here. Generation requests that are waiting when the model becomes free run
// together as one batch (engine::generate with per-row budgets, sampling and
// adapters), so concurrent clients share each forward pass; each request is
// answered the moment its own row finishes. Other work (PerturbQA scoring)
// runs as a task between batches.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "engine/generate.h"

namespace synthpert::server {

struct GenerationJob {
  std::vector<int64_t> prompt;
  int64_t adapter = -1;  // index into the model's adapter bank; -1: base model
  int64_t max_tokens = 1;
  engine::SamplingParams sampling;
  // Called on the worker thread. on_token returning false ends the row
  // (a stop string, a client gone); exactly one of on_finish / on_error runs.
  std::function<bool(int64_t token)> on_token;
  std::function<void(const engine::GenerateResult&)> on_finish;
  std::function<void(const std::string& message)> on_error;
};

class InferenceWorker {
 public:
  InferenceWorker(const engine::Transformer& model, std::vector<int64_t> stop_ids, int64_t max_batch);
  ~InferenceWorker();  // fails what is still queued, waits for the running batch
  InferenceWorker(const InferenceWorker&) = delete;
  InferenceWorker& operator=(const InferenceWorker&) = delete;

  void submit(GenerationJob job);
  // Runs `task` alone on the worker thread; `on_error` gets what it throws.
  void submit_task(std::function<void()> task, std::function<void(const std::string&)> on_error);

  struct Stats {
    int64_t queued = 0, batches = 0, rows = 0, max_rows = 0;
  };
  Stats stats() const;

 private:
  struct Task {
    std::function<void()> run;
    std::function<void(const std::string&)> on_error;
  };
  using Item = std::variant<GenerationJob, Task>;

  void loop();
  void run_batch(std::vector<GenerationJob>& jobs);

  const engine::Transformer& model_;
  std::vector<int64_t> stop_ids_;
  int64_t max_batch_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  Stats stats_;
  std::thread thread_;  // last: starts after everything it reads exists
};

}  // namespace synthpert::server

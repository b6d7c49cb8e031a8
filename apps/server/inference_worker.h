// The one thread that runs the model. HTTP handlers run on many threads; the
// model and its KV cache are used by this thread alone, so requests queue
// here. Generation requests join the engine's continuous batch
// (engine::BatchScheduler) as rows free up, each with its own budget,
// sampling settings and adapter, and leave it when they finish; other work
// (PerturbQA scoring) runs as a task between two forward passes. Both share
// one store of prompt prefixes, so a system prompt or a PerturbQA template's
// opening runs once, and a prompt just scored is not run again to write a
// reasoning for it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "engine/batch_scheduler.h"

namespace synthpert::server {

class InferenceWorker {
 public:
  // `max_rows` sequences run at once, each within `capacity` tokens
  // (prompt + completion): the KV cache holds max_rows x capacity slots.
  // Prompts go in `prefill_chunk` tokens per step (engine/batch_scheduler.h).
  // The prefix store holds at most `prefix_tokens` tokens' keys and values
  // (0: none).
  InferenceWorker(const engine::Transformer& model, std::vector<int64_t> stop_ids, int64_t max_rows, int64_t capacity,
                  int64_t prefill_chunk = 0, int64_t prefix_tokens = 0);
  ~InferenceWorker();  // stop(), then joins the thread
  InferenceWorker(const InferenceWorker&) = delete;
  InferenceWorker& operator=(const InferenceWorker&) = delete;

  // Its callbacks run on the worker thread; one of on_finish and on_error
  // runs, or on_error after an on_finish that threw before delivering.
  void submit(engine::SequenceRequest request);
  // Runs `task` alone on the worker thread; `on_error` gets what it throws.
  void submit_task(std::function<void()> task, std::function<void(const std::string&)> on_error);

  int64_t capacity() const { return capacity_; }
  // The store of prompt prefixes (null: none), for tasks: the worker thread
  // alone may use it.
  engine::PrefixStore* prefixes() { return prefixes_.get(); }

  // Fails what is queued now and, after the step in progress, what is
  // running; what is submitted later fails at once. For a server that is
  // shutting down, so that no request waits for a generation to finish.
  // Idempotent; callable from any thread.
  void stop();
  // True once stop() was called: the failures since are the shutdown's
  // (503), not the requests' own.
  bool stopping() const { return stopping_; }

  struct Stats {
    int64_t waiting = 0, running = 0, steps = 0, largest_batch = 0;
    // The prefix store after the latest step or task (zeros without one).
    int64_t prefix_entries = 0, prefix_tokens_held = 0;
    engine::PrefixStore::Stats prefix;
  };
  Stats stats() const;

 private:
  struct Task {
    std::function<void()> run;
    std::function<void(const std::string&)> on_error;
  };
  using Item = std::variant<engine::SequenceRequest, Task>;

  void loop();

  int64_t capacity_;
  std::unique_ptr<engine::PrefixStore> prefixes_;  // worker thread only; before the scheduler, which holds it
  engine::BatchScheduler scheduler_;  // worker thread only
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Item> queue_;
  std::atomic<bool> stopping_{false};  // set under mutex_, so wake_'s waiter sees it
  Stats stats_;
  std::thread thread_;  // last: starts after everything it reads exists
};

}  // namespace synthpert::server

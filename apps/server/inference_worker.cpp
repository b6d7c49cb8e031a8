#include "apps/server/inference_worker.h"

#include <algorithm>
#include <exception>

namespace synthpert::server {

namespace {
constexpr const char* kShuttingDown = "the server is shutting down";
}

InferenceWorker::InferenceWorker(const engine::Transformer& model, std::vector<int64_t> stop_ids, int64_t max_rows,
                                 int64_t capacity, int64_t prefill_chunk, int64_t prefix_tokens)
    : capacity_(capacity),
      prefixes_(prefix_tokens > 0 ? std::make_unique<engine::PrefixStore>(prefix_tokens) : nullptr),
      scheduler_(model, max_rows, capacity, std::move(stop_ids), {prefill_chunk, prefixes_.get()}),
      thread_([this] { loop(); }) {}

InferenceWorker::~InferenceWorker() {
  stop();
  thread_.join();
}

void InferenceWorker::stop() {
  std::deque<Item> left;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    left.swap(queue_);
    stats_.waiting = 0;
  }
  wake_.notify_all();
  // The running rows are failed by the worker's thread itself (the scheduler
  // is its alone), when its loop sees stopping_ after the current step.
  for (auto& item : left) {
    if (auto* r = std::get_if<engine::SequenceRequest>(&item)) r->on_error(kShuttingDown);
    else std::get<Task>(item).on_error(kShuttingDown);
  }
}

void InferenceWorker::submit(engine::SequenceRequest request) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) {
      queue_.emplace_back(std::move(request));
      stats_.waiting = static_cast<int64_t>(queue_.size());
      wake_.notify_one();
      return;
    }
  }
  request.on_error(kShuttingDown);
}

void InferenceWorker::submit_task(std::function<void()> task, std::function<void(const std::string&)> on_error) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) {
      queue_.emplace_back(Task{std::move(task), on_error});
      stats_.waiting = static_cast<int64_t>(queue_.size());
      wake_.notify_one();
      return;
    }
  }
  on_error(kShuttingDown);
}

InferenceWorker::Stats InferenceWorker::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void InferenceWorker::loop() {
  for (;;) {
    std::vector<engine::SequenceRequest> joining;
    Task task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty() || !scheduler_.idle(); });
      if (stopping_) break;
      // Requests join in queue order while rows are free; a task at the
      // front runs before the requests behind it. The first task also runs
      // when requests before it still wait for a row: it needs none, and
      // would otherwise wait for a whole generation to end.
      int64_t free_rows = scheduler_.max_rows() - scheduler_.running() - scheduler_.waiting();
      while (!queue_.empty() && free_rows > 0 && std::holds_alternative<engine::SequenceRequest>(queue_.front())) {
        joining.push_back(std::move(std::get<engine::SequenceRequest>(queue_.front())));
        queue_.pop_front();
        --free_rows;
      }
      const auto first_task = std::find_if(queue_.begin(), queue_.end(),
                                           [](const Item& item) { return std::holds_alternative<Task>(item); });
      if (first_task != queue_.end()) {
        task = std::move(std::get<Task>(*first_task));
        queue_.erase(first_task);
      }
      stats_.waiting = static_cast<int64_t>(queue_.size());
    }
    for (auto& r : joining) {
      auto on_error = r.on_error;
      try {
        scheduler_.add(std::move(r));
      } catch (const std::exception& e) {
        on_error(e.what());
      }
    }
    if (task.run) {
      try {
        task.run();
      } catch (const std::exception& e) {
        task.on_error(e.what());
      }
    }
    const bool stepped = !scheduler_.idle();
    if (stepped) {
      try {
        scheduler_.step();
      } catch (const std::exception& e) {
        scheduler_.fail_all(e.what());
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (prefixes_) {
      stats_.prefix_entries = static_cast<int64_t>(prefixes_->size());
      stats_.prefix_tokens_held = prefixes_->tokens_held();
      stats_.prefix = prefixes_->stats();
    }
    if (!stepped) continue;
    ++stats_.steps;
    stats_.running = scheduler_.running();
    stats_.largest_batch = std::max(stats_.largest_batch, scheduler_.last_step_rows());
  }
  scheduler_.fail_all(kShuttingDown);
}

}  // namespace synthpert::server

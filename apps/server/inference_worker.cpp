#include "apps/server/inference_worker.h"

#include <algorithm>
#include <exception>

namespace synthpert::server {

InferenceWorker::InferenceWorker(const engine::Transformer& model, std::vector<int64_t> stop_ids, int64_t max_batch)
    : model_(model), stop_ids_(std::move(stop_ids)), max_batch_(std::max<int64_t>(max_batch, 1)),
      thread_([this] { loop(); }) {}

InferenceWorker::~InferenceWorker() {
  std::deque<Item> left;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    left.swap(queue_);
  }
  wake_.notify_all();
  for (auto& item : left) {
    if (auto* job = std::get_if<GenerationJob>(&item)) job->on_error("the server is shutting down");
    else std::get<Task>(item).on_error("the server is shutting down");
  }
  thread_.join();
}

void InferenceWorker::submit(GenerationJob job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) {
      queue_.emplace_back(std::move(job));
      ++stats_.queued;
      wake_.notify_one();
      return;
    }
  }
  job.on_error("the server is shutting down");
}

void InferenceWorker::submit_task(std::function<void()> task, std::function<void(const std::string&)> on_error) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) {
      queue_.emplace_back(Task{std::move(task), on_error});
      ++stats_.queued;
      wake_.notify_one();
      return;
    }
  }
  on_error("the server is shutting down");
}

InferenceWorker::Stats InferenceWorker::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void InferenceWorker::loop() {
  for (;;) {
    std::vector<GenerationJob> batch;
    Task task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      // Queue order is kept: a task waits for the generation jobs ahead of it
      // and the jobs behind it wait for the task.
      if (auto* t = std::get_if<Task>(&queue_.front())) {
        task = std::move(*t);
        queue_.pop_front();
      } else {
        while (!queue_.empty() && static_cast<int64_t>(batch.size()) < max_batch_ &&
               std::holds_alternative<GenerationJob>(queue_.front())) {
          batch.push_back(std::move(std::get<GenerationJob>(queue_.front())));
          queue_.pop_front();
        }
      }
      stats_.queued = static_cast<int64_t>(queue_.size());
    }
    if (task.run) {
      try {
        task.run();
      } catch (const std::exception& e) {
        task.on_error(e.what());
      }
    } else {
      run_batch(batch);
    }
  }
}

void InferenceWorker::run_batch(std::vector<GenerationJob>& jobs) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.batches;
    stats_.rows += static_cast<int64_t>(jobs.size());
    stats_.max_rows = std::max<int64_t>(stats_.max_rows, static_cast<int64_t>(jobs.size()));
  }
  std::vector<std::vector<int64_t>> prompts;
  engine::GenerateOptions opts;
  opts.stop_ids = stop_ids_;
  bool any_adapter = false;
  for (const auto& j : jobs) {
    prompts.push_back(j.prompt);
    opts.row_max_new_tokens.push_back(j.max_tokens);
    opts.row_sampling.push_back(j.sampling);
    opts.adapters.push_back(j.adapter);
    any_adapter = any_adapter || j.adapter >= 0;
  }
  if (!any_adapter) opts.adapters.clear();  // the plain forward, no bank routing
  std::vector<bool> answered(jobs.size(), false);
  opts.on_token = [&](size_t row, int64_t token) { return jobs[row].on_token(token); };
  opts.on_finish = [&](size_t row, const engine::GenerateResult& r) {
    answered[row] = true;
    jobs[row].on_finish(r);
  };
  try {
    engine::generate(model_, prompts, opts);
  } catch (const std::exception& e) {
    for (size_t i = 0; i < jobs.size(); ++i)
      if (!answered[i]) jobs[i].on_error(e.what());
  }
}

}  // namespace synthpert::server

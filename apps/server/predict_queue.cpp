#include "apps/server/predict_queue.h"

#include <algorithm>
#include <map>

#include "apps/server/api_error.h"
#include "common/error.h"

namespace synthpert::server {

using json = nlohmann::json;

PredictQueue::PredictQueue(PerturbPredictor& predictor, const engine::Transformer& model, InferenceWorker& worker,
                           int64_t max_batch)
    : predictor_(predictor), model_(model), worker_(worker), max_batch_(std::max<int64_t>(max_batch, 1)) {}

json PredictQueue::predict(const PredictRequest& request, int64_t adapter) {
  Job job{request, adapter, std::make_shared<RequestChannel>(), std::make_shared<json>()};
  const auto channel = job.channel;
  const auto result = job.result;
  bool submit = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    waiting_.push_back(std::move(job));
    submit = !drain_queued_;
    drain_queued_ = true;
  }
  // One drain task at a time: what arrives while it waits joins it.
  if (submit) worker_.submit_task([this] { drain(); }, [this](const std::string& m) { fail_waiting(m); });
  ChannelEvent e;
  channel->pop(e);
  if (e.kind == ChannelEvent::Kind::kError)
    throw ApiError(e.status, e.status == 400 ? "invalid_request_error" : "server_error",
                   "prediction failed: " + e.text);
  return *result;
}

PredictQueue::Stats PredictQueue::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void PredictQueue::fail_waiting(const std::string& message) {
  std::vector<Job> jobs;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs.swap(waiting_);
    drain_queued_ = false;
  }
  for (auto& j : jobs) j.channel->push(ChannelEvent::failure(message));
}

void PredictQueue::drain() {
  std::vector<Job> jobs;
  bool more = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t n = std::min(waiting_.size(), static_cast<size_t>(max_batch_));
    jobs.assign(std::make_move_iterator(waiting_.begin()), std::make_move_iterator(waiting_.begin() + n));
    waiting_.erase(waiting_.begin(), waiting_.begin() + n);
    // Beyond max_batch, the rest go in a drain queued behind this one, so
    // the requests running beside them take a step in between.
    more = !waiting_.empty();
    drain_queued_ = more;
    stats_.predictions += static_cast<int64_t>(n);
  }
  if (more) worker_.submit_task([this] { drain(); }, [this](const std::string& m) { fail_waiting(m); });
  std::map<int64_t, std::vector<Job>> by_adapter;
  for (auto& j : jobs) by_adapter[j.adapter].push_back(std::move(j));
  for (auto& [adapter, group] : by_adapter) {
    std::vector<std::shared_ptr<RequestChannel>> channels;
    for (const auto& j : group) channels.push_back(j.channel);
    try {
      score(std::move(group));
    } catch (const std::exception& e) {
      for (auto& c : channels) c->push(ChannelEvent::failure(e.what()));
    }
  }
}

void PredictQueue::score(std::vector<Job> jobs) {
  std::vector<PredictRequest> requests;
  for (const auto& j : jobs) requests.push_back(j.request);
  std::vector<std::vector<int64_t>> prompts;
  const auto predictions = predictor_.score(model_, requests, jobs.front().adapter, &prompts);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.batches;
    stats_.largest_batch = std::max(stats_.largest_batch, static_cast<int64_t>(jobs.size()));
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    Job& j = jobs[i];
    *j.result = predictions[i];
    if (!j.request.reasoning) {
      j.channel->push(ChannelEvent::done());
      continue;
    }
    const int64_t room = worker_.capacity() - static_cast<int64_t>(prompts[i].size());
    if (room < 1) {
      j.channel->push(ChannelEvent::failure(str_cat("the prompt's ", prompts[i].size(),
                                                    " tokens fill the server's context of ", worker_.capacity(),
                                                    "; ask with \"reasoning\": false"),
                                            400));
      continue;
    }
    engine::SequenceRequest s;
    s.prompt = std::move(prompts[i]);
    s.max_new_tokens = std::min(predictor_.reasoning_budget(j.request), room);  // greedy: default sampling
    s.adapter = j.adapter;
    s.on_finish = [this, channel = j.channel, result = j.result](const engine::GenerateResult& written) {
      predictor_.add_reasoning(*result, written);
      channel->push(ChannelEvent::done());
    };
    s.on_error = [channel = j.channel](const std::string& m) { channel->push(ChannelEvent::failure(m)); };
    worker_.submit(std::move(s));
  }
}

}  // namespace synthpert::server

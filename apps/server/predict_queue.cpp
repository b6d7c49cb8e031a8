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
  // Tokenized and measured here, on the request's own HTTP thread: a
  // question that cannot fit the context is refused before it is queued,
  // and its tokenizing holds up no one (the ids travel with the job, so the
  // model thread only runs the model). Scoring pads a batch to its longest
  // row, so one oversized row would otherwise cost the whole batch (and the
  // model thread) its length.
  PreparedQuestion question = predictor_.prepare(request);
  const int64_t needed = question.tokens_needed();
  if (needed > worker_.capacity())
    throw bad_request("", str_cat("This model's maximum context length is ", worker_.capacity(),
                                  " tokens; this question's prompt and its longest answer take ", needed),
                      "context_length_exceeded");
  Job job{std::move(question), adapter, std::make_shared<RequestChannel>(), std::make_shared<json>()};
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
  if (e.kind == ChannelEvent::Kind::kError) throw request_failed(e.status, "prediction failed: " + e.text);
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
  const int status = worker_.stopping() ? 503 : 500;
  for (auto& j : jobs) j.channel->push(ChannelEvent::failure(message, status));
}

void PredictQueue::fail(const Job& job, const std::exception& e) {
  // A bad input found while scoring (InputError) is the request's own 400.
  const int status = dynamic_cast<const InputError*>(&e) ? 400 : worker_.stopping() ? 503 : 500;
  job.channel->push(ChannelEvent::failure(e.what(), status));
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
    try {
      score(group);
    } catch (const std::exception& e) {
      if (group.size() == 1) {
        fail(group.front(), e);
        continue;
      }
      // score() answers nobody before the batch is scored, so each request
      // can be scored again alone: only the one that fails again fails.
      for (const auto& j : group) {
        try {
          score({j});
        } catch (const std::exception& alone) {
          fail(j, alone);
        }
      }
    }
  }
}

void PredictQueue::score(const std::vector<Job>& jobs) {
  std::vector<const PreparedQuestion*> questions;
  for (const auto& j : jobs) questions.push_back(&j.question);
  const auto predictions = predictor_.score(model_, questions, jobs.front().adapter, worker_.prefixes());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.batches;
    stats_.largest_batch = std::max(stats_.largest_batch, static_cast<int64_t>(jobs.size()));
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    const Job& j = jobs[i];
    const PredictRequest& request = j.question.request;
    *j.result = predictions[i];
    if (!request.reasoning) {
      j.channel->push(ChannelEvent::done());
      continue;
    }
    // The written answer continues the question's prompt as written (its
    // first view). At least 1 token of room: predict() let in only a prompt
    // that leaves room for an answer of one token or more.
    const std::vector<int64_t>& prompt = j.question.views.front().prompt;
    const int64_t room = worker_.capacity() - static_cast<int64_t>(prompt.size());
    engine::SequenceRequest s;
    s.prompt = prompt;
    s.max_new_tokens = std::min(predictor_.reasoning_budget(request), room);  // greedy: default sampling
    s.adapter = j.adapter;
    s.on_finish = [this, channel = j.channel, result = j.result](const engine::GenerateResult& written) {
      predictor_.add_reasoning(*result, written);
      channel->push(ChannelEvent::done());
    };
    s.on_error = [this, channel = j.channel](const std::string& m) {
      channel->push(ChannelEvent::failure(m, worker_.stopping() ? 503 : 500));
    };
    worker_.submit(std::move(s));
  }
}

}  // namespace synthpert::server

// /v1/predict under load: predictions that arrive while the model is busy
// wait here and are scored together. One task on the inference worker takes
// every waiting prediction (up to `max_batch`), scores those of each adapter
// in one batched pass, answers the ones without reasoning, and queues each
// written answer into the continuous batch like any completion.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "apps/server/inference_worker.h"
#include "apps/server/perturb_predictor.h"
#include "apps/server/request_channel.h"
#include "apps/server/requests.h"

namespace synthpert::server {

class PredictQueue {
 public:
  PredictQueue(PerturbPredictor& predictor, const engine::Transformer& model, InferenceWorker& worker,
               int64_t max_batch);

  // Blocks until the prediction (with its written reasoning when asked) is
  // ready. Throws ApiError: 400 context_length_exceeded, before anything is
  // queued, when the prompt and an answer do not fit the worker's context;
  // 400 for a bad input found while scoring, 503 when the server stops, else
  // 500. InputError when the template cannot tell the answers from this
  // prompt. A request that fails fails alone: its batch is scored again
  // without it.
  nlohmann::json predict(const PredictRequest& request, int64_t adapter);

  struct Stats {
    int64_t predictions = 0, batches = 0, largest_batch = 0;  // scoring passes and their largest size
  };
  Stats stats() const;

 private:
  struct Job {
    PreparedQuestion question;  // tokenized on the request's HTTP thread
    int64_t adapter = -1;
    std::shared_ptr<RequestChannel> channel;
    std::shared_ptr<nlohmann::json> result;
  };

  void drain();                    // the worker's task
  void score(const std::vector<Job>& jobs);  // jobs of one adapter; answers none of them if it throws
  void fail(const Job& job, const std::exception& e);
  void fail_waiting(const std::string& message);

  PerturbPredictor& predictor_;
  const engine::Transformer& model_;
  InferenceWorker& worker_;
  int64_t max_batch_;
  mutable std::mutex mutex_;
  std::vector<Job> waiting_;
  bool drain_queued_ = false;  // a drain task is in the worker's queue
  Stats stats_;
};

}  // namespace synthpert::server

// The OpenAI-compatible HTTP server of `synthpert serve` (DESIGN.md section 2):
//   POST /v1/chat/completions   chat template + generation (also streamed as SSE)
//   POST /v1/completions        plain prompt (text or token ids) + generation
//   GET  /v1/models[/{id}]      the base model and each adapter, by name
//   POST /v1/predict            a PerturbQA question -> label, probabilities, reasoning
//   GET  /health                liveness, queue and settings (no API key needed)
// A request's `model` picks the base model (its served name, or omitted) or
// one of the adapters loaded with --adapter NAME=DIR; every adapter sits in
// one bank, so requests for different adapters share a batch.
// Generation runs as a continuous batch (engine/batch_scheduler.h): requests
// join between forward passes and leave as they finish.
//
// Threads: httplib's pool parses requests, renders and tokenizes prompts and
// writes responses; the model runs on the InferenceWorker's thread alone.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "apps/server/perturb_predictor.h"
#include "engine/prefix_store.h"

namespace synthpert::server {

struct ServeConfig {
  std::string model_dir;
  std::vector<std::pair<std::string, std::string>> adapters;  // name, PEFT folder
  std::string served_name;  // the base model's name in requests; empty: the folder's name
  std::string host = "127.0.0.1";
  int port = 8080;          // 0: any free port
  std::string api_key;      // empty: no authentication
  std::string chat_template_file;
  std::string device = "cpu", dtype = "f32";
  int64_t max_batch = 16;        // sequences generated at once (rows of the continuous batch)
  int64_t max_context = 4096;    // tokens per sequence (prompt + completion); the KV cache holds max_batch x this
  int64_t prefill_chunk = 512;   // prompt tokens per row per prefill step, so long prompts do not stall decoding (0: whole)
  int64_t prefix_cache_tokens = engine::PrefixStore::kDefaultTokens;  // prompt prefixes kept for reuse (0: none)
  int64_t max_tokens_cap = 2048; // completion budget when a request names none
  int http_threads = 32;         // each request in progress holds one; 2 kept for /health, /v1/models; beyond: 429
  PredictConfig predict;
};

class ApiServer {
 public:
  explicit ApiServer(const ServeConfig& cfg);  // loads the model, adapters and tokenizer
  ~ApiServer();

  // Binds the socket; returns the port (the chosen one when cfg.port is 0).
  int bind();
  // Serves until stop() (from another thread or a signal handler's thread).
  void run();
  // Stops listening and fails every request in flight or queued with a 503
  // (streams end with an error event) once the current forward pass is
  // done; run() returns when their handlers have answered.
  void stop();

  nlohmann::json models() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace synthpert::server

// Batch evaluation of a model on a PerturbQA split (`synthpert eval`).
//
//   score     the three answers' log-likelihoods after the prompt, softmaxed into
//             probabilities (so AUROC is computed from real scores); prediction = argmax
//   generate  the model writes (reasoning and) an answer, which the answer parser reads;
//             no probabilities
//
// Output folder: predictions.jsonl (one line per row, in row order, appended batch
// by batch), eval_config.json, metrics.json (model and baselines on the same rows),
// report.md, confusion.svg, scores.svg. An interrupted run resumes where it
// stopped when started again with the same configuration.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "engine/sampler.h"
#include "perturb/prompt_encoder.h"

namespace synthpert::perturb {

struct EvalConfig {
  std::string model_dir, adapter_dir, data_dir;
  std::string split = "holdout:rpe1", part = "test";
  std::string mode = "score";  // score | generate
  std::string prompt = "reasoning";
  ChatMode chat = ChatMode::kAuto;
  std::string chat_template_file;
  double fraction = 1.0;
  uint64_t seed = 0;           // row subsampling and sampling
  int64_t batch = 16;
  int64_t max_new_tokens = 1024;
  engine::SamplingParams sampling;  // generate mode (temperature 0: greedy)
  std::string device = "cpu";
  std::string dtype = "f32";
  int bootstrap = 1000;
  bool overwrite = false;
  bool progress = true;
};

// Runs (or resumes) the evaluation into `out_dir`; returns the metrics JSON
// ({"model": ..., "baselines": {...}, "rows", "config"}).
nlohmann::json run_eval(const EvalConfig& cfg, const std::string& out_dir);

}  // namespace synthpert::perturb

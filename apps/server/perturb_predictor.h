// POST /v1/predict: one PerturbQA question answered the way `synthpert eval
// --mode score` answers a row (the three answers' log-likelihoods after the
// prompt, plus decision offsets, softmaxed; the label is their argmax), with
// the model's own written reasoning beside it on request.
//
// The prompt template, chat mode, cell rendering, offsets and blind view are
// the server's (serve flags), as eval's flags are eval's: serve a student with
// the settings it was evaluated with. A template with evidence placeholders
// reads its counts from a PerturbQA split's training rows, loaded once.
#pragma once

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/server/requests.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "perturb/calibration.h"
#include "perturb/evidence.h"
#include "perturb/prompt_encoder.h"

namespace synthpert::server {

struct PredictConfig {
  std::string prompt = "reasoning";  // template name or file
  perturb::ChatMode chat = perturb::ChatMode::kAuto;
  std::string chat_template_file;
  std::string prompt_cell;
  perturb::ClassOffsets offsets;
  bool blind_view = false;
  std::string data_dir, split;   // evidence source, for templates that need one
  int64_t reasoning_max_tokens = 512;
};

// The predict settings an evaluation ran with, from its eval_config.json
// (`synthpert eval` writes it), so a student is served as it was scored.
PredictConfig predict_config_from_eval(const std::string& eval_config_path);

class PerturbPredictor {
 public:
  PerturbPredictor(const std::string& model_dir, const PredictConfig& cfg);

  // The tokens scoring a request takes at most: its prompt plus its longest
  // answer (of either view with blind_view). For the HTTP thread, before the
  // request is queued, so one that cannot fit the context never reaches the
  // model; throws InputError when the template cannot tokenize an answer
  // apart from this prompt.
  int64_t tokens_needed(const PredictRequest& req);

  // The scoring half, on the inference worker (it uses the model): each
  // request's prediction with "reasoning": null, scored in one batched pass,
  // and in `prompt_ids` the prompt a written answer continues for each
  // request that asks for one (empty for the others). Every request runs
  // with `adapter`.
  std::vector<nlohmann::json> score(const engine::Transformer& model, const std::vector<PredictRequest>& reqs,
                                    int64_t adapter, std::vector<std::vector<int64_t>>* prompt_ids);
  // The written answer's token budget for a request.
  int64_t reasoning_budget(const PredictRequest& req) const;
  // Fills "reasoning", "reasoning_label" and "reasoning_finish_reason" of a
  // prediction from the tokens the model wrote after `prompt_ids` (greedy, in
  // the server's continuous batch, so predictions do not hold up other work).
  void add_reasoning(nlohmann::json& prediction, const engine::GenerateResult& written) const;

  nlohmann::json describe() const;  // the settings, for GET /health

 private:
  // The rows the requests ask about: cell line lowercased, evidence attached.
  std::vector<perturb::Row> rows_of(const std::vector<PredictRequest>& reqs);

  PredictConfig cfg_;
  perturb::PromptEncoder enc_;  // const use only: shared by the HTTP threads and the worker
  std::unique_ptr<perturb::SplitEvidence> evidence_;  // set when the template uses evidence
  std::mutex evidence_mutex_;  // attach() remembers what it ranked
};

}  // namespace synthpert::server

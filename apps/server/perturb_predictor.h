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

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/server/requests.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/prefix_store.h"
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
  // From an eval_config.json: the adapter the evaluation scored (its folder
  // and its files' digests; empty: the base model). The server answers
  // /v1/predict requests that name no model with it, and refuses to start
  // unless one of its --adapter folders holds the same files.
  std::string eval_adapter_dir;
  nlohmann::json eval_adapter_digests;
};

// The predict settings an evaluation ran with, from its eval_config.json
// (`synthpert eval` writes it), so a student is served as it was scored.
PredictConfig predict_config_from_eval(const std::string& eval_config_path);

// A question as the HTTP thread tokenized it, so that the model thread scores
// it without tokenizing again: its row (cell line lowercased, evidence
// attached) and the token ids of each view scored.
struct PreparedQuestion {
  PredictRequest request;
  perturb::Row row;
  // The row as written, then (blind_view) its name-blind view. The first
  // view's prompt is also the one a written answer continues.
  std::vector<perturb::AnswerIds> views;

  // The tokens scoring it takes at most: a prompt plus its longest answer.
  int64_t tokens_needed() const;
};

class PerturbPredictor {
 public:
  PerturbPredictor(const std::string& model_dir, const PredictConfig& cfg);

  // For the HTTP thread, before the request is queued: the tokenizing is
  // done there, so a question that cannot fit the context never reaches the
  // model and the model thread only runs the model. Throws InputError when
  // the template cannot tokenize an answer apart from this prompt.
  PreparedQuestion prepare(const PredictRequest& req);

  // The scoring half, on the inference worker (it uses the model): each
  // question's prediction with "reasoning": null, scored in one batched pass
  // with `adapter`. Only that thread calls it, always with the same model.
  // `prefixes` (may be null): the worker's store of prompt prefixes, so the
  // prompts' opening runs once for the server's life, not once per request.
  std::vector<nlohmann::json> score(const engine::Transformer& model,
                                    const std::vector<const PreparedQuestion*>& questions, int64_t adapter,
                                    engine::PrefixStore* prefixes);
  // The written answer's token budget for a request.
  int64_t reasoning_budget(const PredictRequest& req) const;
  // Fills "reasoning", "reasoning_label" and "reasoning_finish_reason" of a
  // prediction from the tokens the model wrote after the question's first
  // view's prompt (greedy, in the server's continuous batch, so predictions
  // do not hold up other work).
  void add_reasoning(nlohmann::json& prediction, const engine::GenerateResult& written) const;

  nlohmann::json describe() const;  // the settings, for GET /health

 private:
  // The row a request asks about: cell line lowercased, evidence attached.
  perturb::Row row_of(const PredictRequest& req);

  PredictConfig cfg_;
  perturb::PromptEncoder enc_;  // const use only: shared by the HTTP threads and the worker
  std::unique_ptr<perturb::SplitEvidence> evidence_;  // set when the template uses evidence
  std::mutex evidence_mutex_;                         // attach() remembers what it ranked
};

}  // namespace synthpert::server

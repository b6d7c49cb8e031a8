#include "apps/server/perturb_predictor.h"

#include <algorithm>
#include <cctype>

#include "common/error.h"
#include "common/fs.h"
#include "perturb/answer_parser.h"
#include "perturb/eval.h"
#include "perturb/prompt.h"
#include "perturb/split.h"

namespace synthpert::server {

using json = nlohmann::json;

PredictConfig predict_config_from_eval(const std::string& path) {
  const json j = json::parse(read_file(path), nullptr, false);
  SP_CHECK_INPUT(j.is_object() && j.contains("prompt_template") && j.contains("chat"), path,
                 ": not an eval_config.json written by `synthpert eval`");
  SP_CHECK_INPUT(j.value("mode", "score") == "score", path, ": an evaluation in ", j.value("mode", ""),
                 " mode; /v1/predict scores answers as --mode score does");
  PredictConfig c;
  c.prompt = j["prompt_template"].get<std::string>();
  const int chat = j["chat"].get<int>();
  SP_CHECK_INPUT(chat >= 0 && chat <= 2, path, ": unknown chat mode ", chat);
  c.chat = static_cast<perturb::ChatMode>(chat);
  c.chat_template_file = j.value("chat_template_file", "");
  c.prompt_cell = j.value("prompt_cell", "");
  c.blind_view = j.value("blind_view", false);
  c.split = j.value("split", "");
  if (j.contains("offsets")) c.offsets = perturb::offsets_from_json({{"offsets", j["offsets"]}}, path);
  return c;
}

PerturbPredictor::PerturbPredictor(const std::string& model_dir, const PredictConfig& cfg)
    : cfg_(cfg), enc_(model_dir, perturb::PromptTemplate::load(cfg.prompt), cfg.chat, cfg.chat_template_file) {
  enc_.set_prompt_cell(cfg.prompt_cell);
  if (enc_.prompt_template().uses_evidence()) {
    SP_CHECK_INPUT(!cfg.split.empty(), "--prompt-template ", cfg.prompt,
                   " reads evidence from training rows: pass --split (and --perturbqa unless $PERTURBQA_DIR "
                   "or ../shared/perturbqa holds the data)");
    const auto data = perturb::load_split(perturb::resolve_data_dir(cfg.data_dir), perturb::parse_split(cfg.split));
    evidence_ = std::make_unique<perturb::SplitEvidence>(data);
  }
  SP_CHECK_INPUT(cfg.reasoning_max_tokens >= 1, "--predict-max-tokens must be >= 1");
}

std::vector<perturb::Row> PerturbPredictor::rows_of(const std::vector<PredictRequest>& reqs) {
  std::vector<perturb::Row> rows;
  for (const auto& req : reqs) {
    perturb::Row row;
    row.cell_type = req.cell_type;
    for (auto& c : row.cell_type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    row.pert = req.pert;
    row.gene = req.gene;
    rows.push_back(std::move(row));
  }
  if (evidence_) {
    std::lock_guard<std::mutex> lock(evidence_mutex_);
    evidence_->attach(rows);
  }
  return rows;
}

int64_t PerturbPredictor::tokens_needed(const PredictRequest& req) {
  const perturb::Row row = rows_of({req}).front();
  std::vector<perturb::Row> views = {row};
  if (cfg_.blind_view) views.push_back(perturb::blind_view(row));
  size_t most = 0;
  for (const auto& view : views) {
    const auto prompt = enc_.prompt_ids(view);
    for (const auto& answer : enc_.answer_ids(view, prompt)) most = std::max(most, prompt.size() + answer.size());
  }
  return static_cast<int64_t>(most);
}

std::vector<json> PerturbPredictor::score(const engine::Transformer& model, const std::vector<PredictRequest>& reqs,
                                          int64_t adapter, std::vector<std::vector<int64_t>>* prompt_ids) {
  const std::vector<perturb::Row> rows = rows_of(reqs);
  const auto views = perturb::score_views(model, enc_, rows, 0, rows.size(), cfg_.blind_view, adapter);
  std::vector<json> out;
  prompt_ids->clear();
  for (size_t i = 0; i < rows.size(); ++i) {
    // As eval's prediction files: `probs` are the model's own, the label is
    // the argmax after the decision offsets (`calibrated_probs`, when set).
    const auto raw = perturb::answer_probs(views.combined[i], perturb::ClassOffsets{});
    const auto decided = perturb::answer_probs(views.combined[i], cfg_.offsets);
    const auto named = [](const std::array<double, 3>& probs) {
      json out = json::object();
      for (auto l : perturb::kAllLabels) out[perturb::label_name(l)] = probs[perturb::label_index(l)];
      return out;
    };
    json p = {{"object", "prediction"},
              {"cell_type", rows[i].cell_type},
              {"pert", rows[i].pert},
              {"gene", rows[i].gene},
              {"label", perturb::label_name(perturb::argmax_label(decided))},
              {"probs", named(raw)},
              {"logprobs", views.combined[i]},
              {"reasoning", nullptr}};
    if (cfg_.offsets.any()) p["calibrated_probs"] = named(decided);
    out.push_back(std::move(p));
    prompt_ids->push_back(reqs[i].reasoning ? enc_.prompt_ids(rows[i]) : std::vector<int64_t>{});
  }
  return out;
}

int64_t PerturbPredictor::reasoning_budget(const PredictRequest& req) const {
  return req.max_tokens.value_or(cfg_.reasoning_max_tokens);
}

void PerturbPredictor::add_reasoning(json& prediction, const engine::GenerateResult& written) const {
  const std::string text = enc_.tokenizer().decode_generated(written.tokens);
  const auto label = perturb::parse_answer(text, written.finish_reason == "length");
  prediction["reasoning"] = text;
  prediction["reasoning_label"] = label ? json(perturb::label_name(*label)) : json();
  prediction["reasoning_finish_reason"] = written.finish_reason;
}

json PerturbPredictor::describe() const {
  json j = {{"prompt_template", cfg_.prompt},
            {"chat_template", enc_.uses_chat_template()},
            {"blind_view", cfg_.blind_view},
            {"offsets", perturb::offsets_to_json(cfg_.offsets)["offsets"]}};
  if (!cfg_.prompt_cell.empty()) j["prompt_cell"] = cfg_.prompt_cell;
  if (evidence_) j["evidence_split"] = cfg_.split;
  return j;
}

}  // namespace synthpert::server

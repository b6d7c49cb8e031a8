#include "apps/server/perturb_predictor.h"

#include <algorithm>
#include <cctype>

#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"
#include "common/settings_diff.h"
#include "perturb/answer_parser.h"
#include "perturb/eval.h"
#include "perturb/metrics.h"
#include "perturb/prompt.h"
#include "perturb/split.h"

namespace synthpert::server {

using json = nlohmann::json;

namespace {

PredictConfig predict_config_fields(const json& j, const std::string& path) {
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
  // The files the record names by path must still be the ones evaluated
  // (eval refuses a resume otherwise too). A relative path is read from
  // serve's working folder, which may not be eval's.
  const std::string where = " (paths in an eval_config.json are relative to the folder eval ran in)";
  if (j.contains("prompt_digest")) {
    const auto tmpl = perturb::PromptTemplate::load(c.prompt);
    SP_CHECK_INPUT(tmpl.digest() == j["prompt_digest"], path, ": the prompt template ", c.prompt,
                   " is not the one evaluated (its text changed since)", where);
  }
  if (!c.chat_template_file.empty()) {
    SP_CHECK_INPUT(path_exists(c.chat_template_file), path, ": the chat template file ", c.chat_template_file,
                   " is not found", where);
    SP_CHECK_INPUT(content_digest(read_file(c.chat_template_file)) == j.value("chat_template_digest", ""), path,
                   ": the chat template file ", c.chat_template_file, " is not the one evaluated (it changed since)",
                   where);
  }
  c.eval_adapter_dir = j.value("adapter", "");
  if (!c.eval_adapter_dir.empty()) {
    SP_CHECK_INPUT(j.contains("adapter_digests") && j["adapter_digests"].is_object(), path,
                   ": records the adapter ", c.eval_adapter_dir, " without its files' digests");
    c.eval_adapter_digests = j["adapter_digests"];
  }
  return c;
}

}  // namespace

PredictConfig predict_config_from_eval(const std::string& path) {
  const json j = read_json_input(path);
  return read_json_fields(path, [&] { return predict_config_fields(j, path); });
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

perturb::Row PerturbPredictor::row_of(const PredictRequest& req) {
  std::vector<perturb::Row> rows(1);
  perturb::Row& row = rows.front();
  row.cell_type = req.cell_type;
  for (auto& c : row.cell_type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  row.pert = req.pert;
  row.gene = req.gene;
  if (evidence_) {
    std::lock_guard<std::mutex> lock(evidence_mutex_);
    evidence_->attach(rows);
  }
  return std::move(rows.front());
}

int64_t PreparedQuestion::tokens_needed() const {
  size_t most = 0;
  for (const auto& view : views)
    for (const auto& answer : view.answers) most = std::max(most, view.prompt.size() + answer.size());
  return static_cast<int64_t>(most);
}

PreparedQuestion PerturbPredictor::prepare(const PredictRequest& req) {
  PreparedQuestion q;
  q.request = req;
  q.row = row_of(req);
  std::vector<perturb::Row> views = {q.row};
  if (cfg_.blind_view) views.push_back(perturb::blind_view(q.row));
  for (const auto& view : views) q.views.push_back(enc_.question_ids(view));
  return q;
}

std::vector<json> PerturbPredictor::score(const engine::Transformer& model,
                                          const std::vector<const PreparedQuestion*>& questions, int64_t adapter,
                                          engine::PrefixStore* prefixes) {
  // As eval scores (perturb::score_views), on the ids prepare() made.
  auto view = [&](size_t v) {
    std::vector<const perturb::AnswerIds*> ids;
    for (const auto* q : questions) ids.push_back(&q->views[v]);
    return perturb::score_answer_ids(model, ids, adapter, prefixes);
  };
  std::vector<std::array<double, 3>> combined = view(0);
  if (cfg_.blind_view) combined = perturb::mean_of_views(combined, view(1));
  std::vector<json> out;
  for (size_t i = 0; i < questions.size(); ++i) {
    const perturb::Row& row = questions[i]->row;
    // As eval's prediction files: `probs` are the model's own, the label is
    // the argmax after the decision offsets (`calibrated_probs`, when set).
    const auto raw = perturb::answer_probs(combined[i], perturb::ClassOffsets{});
    const auto decided = perturb::answer_probs(combined[i], cfg_.offsets);
    json p = {{"object", "prediction"},
              {"cell_type", row.cell_type},
              {"pert", row.pert},
              {"gene", row.gene},
              {"label", perturb::label_name(perturb::argmax_label(decided))},
              {"probs", perturb::named_probs(raw)},
              {"logprobs", combined[i]},
              {"reasoning", nullptr}};
    if (cfg_.offsets.any()) p["calibrated_probs"] = perturb::named_probs(decided);
    out.push_back(std::move(p));
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

#include "perturb/eval.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <sstream>

#include "common/error.h"
#include "common/fs.h"
#include "common/settings_diff.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/peft_adapter.h"
#include "engine/sampler.h"
#include "engine/score.h"
#include "perturb/answer_parser.h"
#include "perturb/baselines.h"
#include "perturb/eval_remote.h"
#include "perturb/eval_writer.h"
#include "perturb/evidence.h"
#include "perturb/report.h"
#include "perturb/split.h"

namespace synthpert::perturb {

using nlohmann::json;

namespace {

// Whether the model under evaluation sits behind a chat endpoint.
bool remote(const EvalConfig& c) { return !c.endpoint.url.empty(); }

// The settings that decide the predictions; a resumed run must match them.
// The prompt template, a chat template file and the adapter are recorded by
// their content too: a file rewritten between runs keeps its path and would
// otherwise mix two models' or prompts' answers in one predictions file.
// (The base model goes by its path alone: digesting gigabytes per run costs
// more than it guards against.)
json result_config(const EvalConfig& c, const PromptTemplate& tmpl) {
  json j = {{"model", remote(c) ? c.endpoint.model : c.model_dir}, {"adapter", c.adapter_dir}, {"split", c.split}, {"part", c.part},
            {"mode", c.mode}, {"prompt_template", c.prompt}, {"prompt_digest", tmpl.digest()},
            {"chat", static_cast<int>(c.chat)}, {"chat_template_file", c.chat_template_file}, {"fraction", c.fraction},
            {"seed", c.seed}, {"dtype", c.dtype}};
  if (c.part != "test") j["validation"] = {{"fraction", c.val_fraction}, {"seed", c.val_seed}};
  if (remote(c)) j["endpoint"] = c.endpoint.url;
  if (!c.prompt_cell.empty()) j["prompt_cell"] = c.prompt_cell;
  if (c.offsets.any()) j["offsets"] = offsets_to_json(c.offsets)["offsets"];
  if (c.blind_view) j["blind_view"] = true;
  if (!c.adapter_dir.empty()) j["adapter_digests"] = engine::peft_adapter_digests(c.adapter_dir);
  if (!c.chat_template_file.empty()) j["chat_template_digest"] = content_digest(read_file(c.chat_template_file));
  auto optional = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  if (remote(c))
    j["generation"] = {{"max_new_tokens", c.max_new_tokens}, {"temperature", optional(c.endpoint_options.temperature)},
                       {"top_p", optional(c.endpoint_options.top_p)}};
  else if (c.mode == "generate")
    j["generation"] = {{"max_new_tokens", c.max_new_tokens}, {"temperature", c.sampling.temperature},
                       {"top_p", c.sampling.top_p}, {"top_k", c.sampling.top_k}};
  return j;
}

// Lines already written by an earlier run of the same configuration. A torn
// last line (the run was killed mid-write) is cut off so appending continues cleanly.
std::vector<json> read_done(const std::string& path) {
  std::vector<json> done;
  if (!path_exists(path)) return done;
  std::istringstream in(read_complete_lines(path));
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    auto j = json::parse(line, nullptr, false);
    SP_CHECK_INPUT(!j.is_discarded() && j.is_object(), path, ":", n, ": not a JSON object; remove the file or use --overwrite");
    done.push_back(std::move(j));
  }
  return done;
}

std::vector<json> score_batch(const engine::Transformer& model, engine::PrefixStore& prefixes, const PromptEncoder& enc,
                              const EvalConfig& cfg, const std::vector<Row>& rows, size_t begin, size_t end) {
  const ViewScores s = score_views(model, enc, rows, begin, end, cfg.blind_view, -1, &prefixes);
  std::vector<json> out;
  for (size_t k = 0; k < s.combined.size(); ++k) {
    // "probs" stay the model's own (AUROC ranks them); offsets move only the
    // decision. Shifting up and down by different amounts would reorder
    // p(up)+p(down) across rows, so a DE AUROC from shifted probs would score
    // the offsets, not the model.
    Prediction p = unanswered_prediction(rows[begin + k]);
    p.probs = answer_probs(s.combined[k], ClassOffsets{});
    const auto decided = answer_probs(s.combined[k], cfg.offsets);
    p.prediction = argmax_label(decided);
    json line = prediction_to_json(p);
    if (cfg.offsets.any()) line["calibrated_probs"] = named_probs(decided);  // what "prediction" is the argmax of
    line["logprobs"] = s.combined[k];
    if (cfg.blind_view) line["logprobs_views"] = {s.named[k], s.blind[k]};
    out.push_back(std::move(line));
  }
  return out;
}

std::vector<json> generate_batch(const engine::Transformer& model, engine::PrefixStore& prefixes,
                                 const PromptEncoder& enc, const EvalConfig& cfg, const std::vector<Row>& rows,
                                 size_t begin, size_t end) {
  std::vector<std::vector<int64_t>> prompts;
  for (size_t i = begin; i < end; ++i) prompts.push_back(enc.prompt_ids(rows[i]));
  engine::GenerateOptions go;
  go.max_new_tokens = cfg.max_new_tokens;
  for (size_t i = begin; i < end; ++i) {
    go.row_sampling.push_back(cfg.sampling);
    go.row_sampling.back().seed = eval_row_seed(cfg.seed, i);
  }
  go.stop_ids = enc.tokenizer().stop_ids(model.config().eos_token_ids);
  go.prefixes = &prefixes;
  const auto results = engine::generate(model, prompts, go);
  std::vector<json> out;
  for (size_t k = 0; k < results.size(); ++k) {
    Prediction p = unanswered_prediction(rows[begin + k]);
    const std::string text = enc.tokenizer().decode_generated(results[k].tokens);
    p.prediction = parse_answer(text, results[k].finish_reason == "length");
    json line = prediction_to_json(p);
    line["response"] = text;
    line["finish_reason"] = results[k].finish_reason;
    out.push_back(std::move(line));
  }
  return out;
}

}  // namespace

Label argmax_label(const std::array<double, 3>& p) {
  int best = 0;
  for (int k = 1; k < 3; ++k)
    if (p[k] > p[best]) best = k;
  return static_cast<Label>(best);
}

std::array<double, 3> answer_probs(const std::array<double, 3>& logp, const ClassOffsets& offsets) {
  std::array<double, 3> z{};
  for (int k = 0; k < 3; ++k) z[k] = logp[k] + offsets.add[k];
  const double m = std::max({z[0], z[1], z[2]});
  double sum = 0;
  for (double& x : z) sum += x = std::exp(x - m);
  for (double& x : z) x /= sum;
  return z;
}

std::vector<std::array<double, 3>> score_answer_ids(const engine::Transformer& model,
                                                    const std::vector<const AnswerIds*>& questions, int64_t adapter,
                                                    engine::PrefixStore* prefixes, int64_t min_shared_prefix) {
  std::vector<std::array<double, 3>> out;
  for (size_t i = 0, j; i < questions.size(); i = j) {
    const auto& answers = questions[i]->answers;
    std::vector<std::vector<int64_t>> prompts;
    for (j = i; j < questions.size() && questions[j]->answers == answers; ++j) prompts.push_back(questions[j]->prompt);
    const std::vector<std::vector<int64_t>> candidates(answers.begin(), answers.end());
    engine::ScoreOptions so;
    so.min_shared_prefix = min_shared_prefix;
    so.prefixes = prefixes;
    if (adapter >= 0) so.adapters.assign(prompts.size(), adapter);
    for (const auto& lp : engine::score_continuations(model, prompts, candidates, so)) {
      // NaN would be written as null and argmax to an arbitrary class; a
      // model that overflows is broken for every row it touches, not wrong
      // about one.
      const bool broken = std::isnan(lp[0] + lp[1] + lp[2]) || lp[0] == INFINITY || lp[1] == INFINITY ||
                          lp[2] == INFINITY || std::max({lp[0], lp[1], lp[2]}) == -INFINITY;
      if (broken)
        throw std::runtime_error(str_cat("the model's log-probabilities of the three answers are (", lp[0], ", ",
                                         lp[1], ", ", lp[2],
                                         "), not finite: its activations overflow (f16 weights, or a diverged "
                                         "fine-tune); try --dtype bf16 or f32, or another checkpoint"));
      out.push_back({lp[0], lp[1], lp[2]});
    }
  }
  return out;
}

std::vector<std::array<double, 3>> score_answers(const engine::Transformer& model, const PromptEncoder& enc,
                                                 const std::vector<Row>& rows, size_t begin, size_t end,
                                                 int64_t adapter, engine::PrefixStore* prefixes) {
  std::vector<AnswerIds> ids;
  ids.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) ids.push_back(enc.question_ids(rows[i]));
  std::vector<const AnswerIds*> questions;
  for (const auto& q : ids) questions.push_back(&q);
  return score_answer_ids(model, questions, adapter, prefixes);
}

std::vector<std::array<double, 3>> mean_of_views(const std::vector<std::array<double, 3>>& named,
                                                 const std::vector<std::array<double, 3>>& blind) {
  SP_CHECK(named.size() == blind.size(), "mean_of_views: ", named.size(), " named scores, ", blind.size(), " blind");
  std::vector<std::array<double, 3>> mean(named.size());
  for (size_t k = 0; k < named.size(); ++k)
    for (int c = 0; c < 3; ++c) mean[k][c] = 0.5 * (named[k][c] + blind[k][c]);
  return mean;
}

ViewScores score_views(const engine::Transformer& model, const PromptEncoder& enc, const std::vector<Row>& rows,
                       size_t begin, size_t end, bool blind_view, int64_t adapter, engine::PrefixStore* prefixes) {
  ViewScores s;
  s.named = score_answers(model, enc, rows, begin, end, adapter, prefixes);
  if (!blind_view) {
    s.combined = s.named;
    return s;
  }
  std::vector<Row> blind;
  blind.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) blind.push_back(perturb::blind_view(rows[i]));
  s.blind = score_answers(model, enc, blind, 0, blind.size(), adapter, prefixes);
  s.combined = mean_of_views(s.named, s.blind);
  return s;
}

json run_eval(const EvalConfig& cfg, const std::string& out_dir) {
  SP_CHECK_INPUT(cfg.mode == "score" || cfg.mode == "generate", "--mode: expected score or generate, got '",
                 cfg.mode, "'");
  check_part(cfg.part, cfg.val_fraction);
  SP_CHECK_INPUT(cfg.batch >= 1, "--batch must be >= 1");
  engine::validate_sampling(cfg.sampling);
  // --endpoint first: it rules out score mode, so its refusals name the
  // conflict an --offsets or --blind-view there really is.
  if (remote(cfg)) {
    SP_CHECK_INPUT(!cfg.endpoint.model.empty(), "--endpoint ", cfg.endpoint.url, ": also name the model (--endpoint-model)");
    SP_CHECK_INPUT(cfg.model_dir.empty(), "--endpoint and --model exclude each other: the model is either remote or local");
    SP_CHECK_INPUT(!cfg.offsets.any() && !cfg.blind_view,
                   "--endpoint: --offsets and --blind-view adjust answer scores, which a chat endpoint does not give "
                   "(--mode generate only)");
    SP_CHECK_INPUT(cfg.mode == "generate", "--endpoint: only --mode generate (a chat endpoint gives no answer log-likelihoods)");
    SP_CHECK_INPUT(cfg.adapter_dir.empty() && cfg.chat_template_file.empty() && cfg.chat != ChatMode::kOff &&
                       cfg.prompt_cell.empty() && cfg.sampling.top_k == 0,
                   "--endpoint: --adapter, --chat-template, --no-chat-template, --prompt-cell and --top-k apply to "
                   "local models only (the endpoint applies its own chat template)");
    SP_CHECK_INPUT(cfg.batch <= 256, "--batch: at most 256 requests in flight with --endpoint, got ", cfg.batch);
    chat_completions_address(cfg.endpoint.url);  // a typo fails before the output folder is made
  } else {
    SP_CHECK_INPUT(!cfg.model_dir.empty(), "--model: required (or --endpoint with --endpoint-model)");
  }
  SP_CHECK_INPUT(!cfg.offsets.any() || cfg.mode == "score", "--offsets applies to --mode score only");
  SP_CHECK_INPUT(!cfg.blind_view || cfg.mode == "score", "--blind-view applies to --mode score only");
  const SplitSpec spec = parse_split(cfg.split);
  const SplitData data = load_split(resolve_data_dir(cfg.data_dir), spec);
  const PromptTemplate tmpl = PromptTemplate::load(cfg.prompt);
  const SplitPart part = select_part(data, cfg.part, cfg.val_fraction, cfg.val_seed);
  std::vector<Row> rows = subsample(part.rows, cfg.fraction, cfg.seed);
  if (tmpl.uses_evidence()) attach_split_evidence(data, rows);
  SP_CHECK_INPUT(!rows.empty(), "--split ", cfg.split, " --part ", cfg.part, ": no rows to evaluate");

  // What can be refused without the weights is refused before --out is
  // touched, so a corrected rerun is not met by a half-made record.
  std::optional<PromptEncoder> encoder;
  engine::LoadOptions lo;
  if (!remote(cfg)) {
    lo.dtype = engine::parse_dtype(cfg.dtype);
    lo.device = engine::parse_device(cfg.device);
    encoder.emplace(cfg.model_dir, tmpl, cfg.chat, cfg.chat_template_file);
    encoder->set_prompt_cell(cfg.prompt_cell);
  }

  make_dirs(out_dir);
  const std::string pred_path = path_join(out_dir, "predictions.jsonl");
  const std::string cfg_path = path_join(out_dir, "eval_config.json");
  const json want = result_config(cfg, tmpl);
  // A run that wrote no row (it failed while loading the model) leaves
  // nothing to resume: its record is replaced, whatever its settings were.
  const bool has_rows = path_exists(pred_path) && read_file(pred_path).find('\n') != std::string::npos;
  if (cfg.overwrite) {
    // The old run's results too: an interrupted new run must not leave them
    // beside its own settings, where they would read as its results.
    for (const char* name : {"predictions.jsonl", "metrics.json", "report.md", "confusion.svg", "scores.svg"})
      std::remove(path_join(out_dir, name).c_str());
  } else if (has_rows && path_exists(cfg_path)) {
    const json have = json::parse(read_file(cfg_path), nullptr, false);
    const std::string diffs = join_differences(settings_differences(have, want, "saved"), "; ");
    SP_CHECK_INPUT(diffs.empty(), out_dir, " holds an evaluation with other settings (", diffs,
                   "); use another --out or --overwrite");
  } else if (has_rows) {
    throw InputError(str_cat(pred_path, " exists without eval_config.json; use another --out or --overwrite"));
  }
  write_file_atomic(cfg_path, want.dump(2) + "\n");

  std::vector<json> done = read_done(pred_path);
  SP_CHECK_INPUT(done.size() <= rows.size(), pred_path, " has more lines than the split has rows");
  for (size_t i = 0; i < done.size(); ++i) {
    SP_CHECK_INPUT(done[i].value("pert", "") == rows[i].pert && done[i].value("gene", "") == rows[i].gene &&
                       done[i].value("cell_type", "") == rows[i].cell_type,
                   pred_path, ":", i + 1, ": does not match row ", i + 1, " of the split; use --overwrite");
    SP_CHECK_INPUT(done[i].contains("label") && done[i].contains("prediction"), pred_path, ":", i + 1,
                   ": has no \"label\" or \"prediction\"; use --overwrite");
  }

  if (done.size() < rows.size()) {
    PredictionWriter writer(pred_path, done, rows.size(), cfg.mode, cfg.progress);
    if (remote(cfg)) {
      const ChatClient client(cfg.endpoint, cfg.endpoint_retry);
      append_remote_predictions(client, tmpl, cfg, rows, writer);
    } else {
      auto model = engine::Transformer::load(cfg.model_dir, lo);
      if (!cfg.adapter_dir.empty()) engine::load_peft_adapter(cfg.adapter_dir, model);
      const PromptEncoder& enc = *encoder;
      // The prompts' opening runs once for the whole run.
      engine::PrefixStore prefixes;
      // Batch by batch, each flushed before the next starts.
      for (size_t b = done.size(); b < rows.size() && !cfg.interrupted(); b += cfg.batch) {
        const size_t e = std::min(rows.size(), b + static_cast<size_t>(cfg.batch));
        writer.write(cfg.mode == "score" ? score_batch(model, prefixes, enc, cfg, rows, b, e)
                                         : generate_batch(model, prefixes, enc, cfg, rows, b, e));
      }
    }
  }

  if (done.size() < rows.size()) {
    SP_CHECK(cfg.interrupted(), "eval: stopped before the last row without a reason");
    return {{"interrupted", true}, {"rows_done", done.size()}, {"rows", rows.size()}, {"out", out_dir}};
  }

  std::vector<Prediction> preds = read_predictions(pred_path);
  MetricsOptions mo;
  mo.bootstrap = cfg.bootstrap;
  mo.seed = cfg.seed;
  ReportInput report;
  report.title = "PerturbQA " + cfg.split + " (" + cfg.part + ")";
  report.model_name = "model";
  report.model = compute_metrics(preds, mo);
  for (const auto& name : baseline_names())
    report.baselines[name] = compute_metrics(run_part_baseline(name, data, part, rows), mo);
  report.details = {{"model", remote(cfg) ? cfg.endpoint.model + " at " + cfg.endpoint.url : cfg.model_dir}, {"mode", cfg.mode}, {"prompt template", cfg.prompt},
                    {"rows", rows.size()}, {"fraction", cfg.fraction}, {"seed", cfg.seed},
                    {"baselines", part_baseline_fit(part)}};
  if (cfg.part != "test")
    report.details["validation groups"] = str_cat("fraction ", cfg.val_fraction, ", seed ", cfg.val_seed);
  const std::string scores_note = "AUROC from the raw probabilities (probs); accuracy and F1 from predictions with "
                                  "the decision offsets (calibrated_probs)";
  if (cfg.offsets.any()) {
    report.details["decision offsets (up, down, nde)"] = cfg.offsets.add;
    report.details["scores"] = scores_note;
  }
  if (!cfg.prompt_cell.empty()) report.details["cell line in prompts"] = cfg.prompt_cell;
  if (cfg.blind_view) report.details["views"] = "mean of named and name-blind log-likelihoods";
  json result = {{"rows", rows.size()}, {"config", want}, {"model", report.model}, {"baselines", json::object()},
                 {"baselines_fit", part_baseline_fit(part)}};
  if (cfg.offsets.any()) result["model_scores"] = scores_note;
  for (const auto& [name, m] : report.baselines) result["baselines"][name] = m;
  write_file_atomic(path_join(out_dir, "metrics.json"), result.dump(2) + "\n");
  write_report(out_dir, report);
  return result;
}

}  // namespace synthpert::perturb

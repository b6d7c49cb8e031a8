// Batch evaluation of a model on a PerturbQA split (`synthpert eval`).
//
//   score     the three answers' log-likelihoods after the prompt, softmaxed into
//             probabilities (so AUROC is computed from real scores); prediction = argmax,
//             after decision offsets when given (which never touch "probs")
//   generate  the model writes (reasoning and) an answer, which the answer parser reads;
//             no probabilities. The model may also be remote: any OpenAI-compatible
//             chat endpoint (a teacher, a hosted model), given the same prompt
//             messages as chat turns, so a student and its teacher are scored
//             by one parser and one set of metrics.
//
// Output folder: predictions.jsonl (one line per row, in row order, appended as
// rows finish), eval_config.json, metrics.json (model and baselines on the same rows),
// report.md, confusion.svg, scores.svg. An interrupted run resumes where it
// stopped when started again with the same configuration.
#pragma once

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/score.h"
#include "perturb/calibration.h"
#include "perturb/openai_client.h"
#include "perturb/prompt_encoder.h"

namespace synthpert::perturb {

struct EvalConfig {
  std::string model_dir, adapter_dir, data_dir;
  std::string split = "holdout:rpe1", part = "test";  // part: test | val | train (split.h: SplitPart)
  // The validation groups `val` holds out of the training rows and `train`
  // leaves out (split_validation; the demo's are its --val-fraction and --seed).
  double val_fraction = 0.0;
  uint64_t val_seed = 0;
  std::string mode = "score";  // score | generate
  std::string prompt = "reasoning";
  ChatMode chat = ChatMode::kAuto;
  std::string chat_template_file;
  std::string prompt_cell;     // non-empty: every row's cell line is rendered as this (PromptEncoder)
  double fraction = 1.0;
  uint64_t seed = 0;           // row subsampling and sampling
  int64_t batch = 16;
  int64_t max_new_tokens = 1024;
  engine::SamplingParams sampling;  // generate mode (temperature 0: greedy)
  std::string device = "cpu";
  std::string dtype = "f32";
  // Score mode: added to the three answers' log-likelihoods before softmax and
  // argmax (perturb/calibration.h); predictions keep the raw "logprobs".
  ClassOffsets offsets;
  // Score mode: also score each row's name-blind view (perturb/prompt.h) and
  // use the mean of the two views' log-likelihoods; predictions keep both
  // views' under "logprobs_views" (named, blind).
  bool blind_view = false;
  // Generate mode through a chat endpoint instead of model_dir (url and model
  // set), with `batch` requests always in flight (eval_remote.h). `endpoint_options` holds the temperature and top_p to
  // send (unset: the server's defaults; reasoning models refuse some values);
  // max_new_tokens is always sent, and a row's seed is derived from `seed` and
  // its index (honoured where the server can).
  ChatEndpoint endpoint;
  ChatOptions endpoint_options;
  RetryPolicy endpoint_retry;
  int bootstrap = 1000;
  bool overwrite = false;
  bool progress = true;
  // When set and it turns true, no new batch (or request) starts; what is in
  // flight finishes and is written, and run_eval returns {"interrupted": true,
  // "rows_done", "rows"} without metrics (the CLI's Ctrl-C). A rerun resumes.
  const std::atomic<bool>* cancel = nullptr;
  bool interrupted() const { return cancel && cancel->load(); }
};

// The sampling seed of row `index` (generate mode, local or an endpoint): it
// depends on the run's seed and the row alone, so an answer depends neither
// on --batch nor on where a resumed run restarts. Below 2^63, as an
// endpoint's signed seed must be.
inline uint64_t eval_row_seed(uint64_t seed, size_t index) {
  return (seed * 1000003ull + index) & 0x7fffffffffffffffull;
}

// Log-likelihoods of the three answers after each question's prompt;
// consecutive questions whose answer tokens agree share one batched call.
// `adapter`: the model's bank adapter every question runs with (-1: none;
// serving, which tokenizes on its HTTP threads and scores here).
// `prefixes` and `min_shared_prefix`: engine::ScoreOptions' (a run keeps one
// store for all its batches; benchmarks turn sharing off).
std::vector<std::array<double, 3>> score_answer_ids(const engine::Transformer& model,
                                                    const std::vector<const AnswerIds*>& questions,
                                                    int64_t adapter = -1, engine::PrefixStore* prefixes = nullptr,
                                                    int64_t min_shared_prefix = engine::kMinSharedPrefix);

// score_answer_ids of rows[begin, end), tokenized here.
std::vector<std::array<double, 3>> score_answers(const engine::Transformer& model, const PromptEncoder& enc,
                                                 const std::vector<Row>& rows, size_t begin, size_t end,
                                                 int64_t adapter = -1, engine::PrefixStore* prefixes = nullptr);

// The score of a question over its two views: the mean of the log-likelihoods
// as written and name-blind.
std::vector<std::array<double, 3>> mean_of_views(const std::vector<std::array<double, 3>>& named,
                                                 const std::vector<std::array<double, 3>>& blind);

// score_answers of the rows as written and, with `blind_view`, of their
// name-blind views; `combined` is mean_of_views (or the named scores).
struct ViewScores {
  std::vector<std::array<double, 3>> combined, named, blind;
};
ViewScores score_views(const engine::Transformer& model, const PromptEncoder& enc, const std::vector<Row>& rows,
                       size_t begin, size_t end, bool blind_view, int64_t adapter = -1,
                       engine::PrefixStore* prefixes = nullptr);

// Probabilities of the three answers from log-likelihoods plus offsets.
std::array<double, 3> answer_probs(const std::array<double, 3>& logp, const ClassOffsets& offsets);
// The prediction from answer probabilities (label_index order; ties: the first).
Label argmax_label(const std::array<double, 3>& probs);

// Runs (or resumes) the evaluation into `out_dir`; returns the metrics JSON
// ({"model": ..., "baselines": {...}, "rows", "config"}), or the interrupted
// summary above.
nlohmann::json run_eval(const EvalConfig& cfg, const std::string& out_dir);

}  // namespace synthpert::perturb

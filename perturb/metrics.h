// Evaluation metrics for three-class PerturbQA predictions (DESIGN.md section 4).
//
// Classification metrics follow sklearn's classification_report with
// zero_division=0 over the three labels; an unparsed prediction counts as wrong
// (it lowers recall of its true class, and no class's precision).
// AUROC (ties count one half, as sklearn's roc_auc_score):
//   DE        score p(up) + p(down), positive = truly up or down
//   direction score p(up) / (p(up) + p(down)) on truly DE rows, positive = up
// Without probabilities, scores come from the hard label: DE 1 for up/down, 0 for
// NDE; direction 1 for up, 0 for down, 0.5 for NDE; both 0.5 when unparsed.
// Per-gene AUROC (PerturbQA's way): within a cell line group rows by target
// gene, AUROC per group, skip groups whose labels are all one class, unweighted
// mean; the top-level value averages over all (cell line, gene) groups.
// ci95: percentile bootstrap over rows (resampled with replacement, seeded).
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "perturb/labels.h"

namespace synthpert::perturb {

struct Prediction {
  std::string cell_type, pert, gene;
  Label label = Label::kNde;
  std::optional<Label> prediction;           // nullopt: unparsed
  std::optional<std::array<double, 3>> probs;  // indexed by label_index
};

struct MetricsOptions {
  int bootstrap = 1000;  // resamples for ci95; 0 disables
  uint64_t seed = 0;
  bool per_cell_type = true;
};

nlohmann::json compute_metrics(const std::vector<Prediction>& preds, const MetricsOptions& opts = {});

// Reads predictions JSONL (DESIGN.md section 4); errors name the file and line.
// Each (cell line, pert, gene) row may appear once; blank lines are skipped.
std::vector<Prediction> read_predictions(const std::string& path);

// The rows of a predictions file read so far, for refusing one listed twice:
// it would count twice in every metric and in a calibration fit (a file
// appended to by two runs, two files concatenated).
class RowsSeen {
 public:
  // Throws InputError at `where` ("FILE:LINE") naming the row and the line
  // it first appeared on.
  void add(const std::string& where, int64_t line, const std::string& cell_type, const std::string& pert,
           const std::string& gene);

 private:
  std::unordered_map<std::string, int64_t> first_line_;
};
nlohmann::json prediction_to_json(const Prediction& p);
// Three class probabilities (by label_index) as prediction files write
// them: an object keyed by label_name.
nlohmann::json named_probs(const std::array<double, 3>& probs);

// ROC AUC of scores against binary labels (ties count 1/2); nullopt when only
// one class is present.
std::optional<double> roc_auc(const std::vector<double>& scores, const std::vector<bool>& positive);

}  // namespace synthpert::perturb

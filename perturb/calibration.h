// Decision offsets for score-mode predictions.
//
// A student scores the three answers by log-likelihood; argmax over them
// under-predicts the two minority classes (~86% of PerturbQA rows are NDE), which
// costs macro-F1. Offsets added to the three log-likelihoods before the softmax
// and argmax move the decision boundaries. They are fitted on validation rows
// (never test rows) to maximise macro-F1, with NDE's offset fixed at 0 since
// adding a constant to all three changes nothing.
#pragma once

#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "perturb/labels.h"

namespace synthpert::perturb {

struct ClassOffsets {
  std::array<double, 3> add{0.0, 0.0, 0.0};  // indexed by label_index
  bool any() const { return add[0] != 0.0 || add[1] != 0.0 || add[2] != 0.0; }
};

// Macro-F1 (sklearn's, zero_division=0, over the three labels) of argmax(logp + offsets).
double macro_f1_with_offsets(const std::vector<std::array<double, 3>>& logp, const std::vector<Label>& labels,
                             const ClassOffsets& offsets);

// Offsets for up and down (NDE fixed at 0) maximising macro-F1 on the given rows:
// a grid over [-2, 8] in steps of 0.1, then steps of 0.01 around the best point.
// Ties keep the offsets closest to zero, so uninformative rows give zeros.
ClassOffsets fit_macro_f1_offsets(const std::vector<std::array<double, 3>>& logp, const std::vector<Label>& labels);

// {"offsets": {"upregulated": x, "downregulated": y, "not differentially expressed": z}, ...}
nlohmann::json offsets_to_json(const ClassOffsets& o);
ClassOffsets offsets_from_json(const nlohmann::json& j, const std::string& source);
ClassOffsets load_offsets(const std::string& path);

// Reads the "logprobs" and "label" of every line of a score-mode predictions
// JSONL (errors name the file and line; blank lines are skipped).
void read_scored_predictions(const std::string& path, std::vector<std::array<double, 3>>& logp,
                             std::vector<Label>& labels);

// The split and part of the evaluation that wrote `predictions_path`, from the
// eval_config.json beside it ({"split", "part"}; null when there is none).
// Predictions of test rows are refused: offsets fitted on the rows they are
// then scored on inflate macro-F1.
nlohmann::json calibration_source(const std::string& predictions_path);

}  // namespace synthpert::perturb

// The predictions file of `synthpert eval` as it grows: lines are appended in
// row order and flushed as they come, so an interrupted run keeps every line
// written and resumes after the last one; a progress bar counts rows and the
// running accuracy. Shared by the local runner (eval.cpp) and the endpoint
// runner (eval_remote.cpp).
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/progress.h"
#include "perturb/data.h"
#include "perturb/metrics.h"

namespace synthpert::perturb {

// A row's prediction before the model's answer is filled in.
Prediction unanswered_prediction(const Row& r);

class PredictionWriter {
 public:
  // `done`: the lines already in `path` (read_done), extended as lines are
  // written; `total_rows`: the rows of the whole evaluation.
  PredictionWriter(const std::string& path, std::vector<nlohmann::json>& done, size_t total_rows,
                   const std::string& mode, bool progress);

  // Appends the next rows' lines (in row order) and flushes them.
  void write(std::vector<nlohmann::json> lines);
  // Rows written so far, including those of earlier runs.
  size_t rows_written() const { return done_.size(); }

 private:
  std::string path_;
  std::vector<nlohmann::json>& done_;
  std::ofstream out_;
  std::optional<ProgressBar> bar_;
  int64_t correct_ = 0;
};

}  // namespace synthpert::perturb

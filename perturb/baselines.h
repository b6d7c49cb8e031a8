// Baselines reported beside every model (DESIGN.md section 4). Each gives a
// label and probabilities (label frequencies), so its AUROC is meaningful:
//   majority       the most frequent training label; probs = training frequencies
//   gene_majority  the target gene's most frequent label among the training rows
//                  of the same cell line (for a held-out cell line: among all
//                  training rows, i.e. the other cell lines); an unseen gene gets
//                  NDE with the overall training frequencies as probs
//   pair_transfer  the same (pert, gene) pair's most frequent label among the
//                  training rows of the other cell lines (in `train`, or in
//                  `other_train` for a default:CELL split); else gene_majority
// Ties between labels go to NDE first, then downregulated, then upregulated.
#pragma once

#include <string>
#include <vector>

#include "perturb/data.h"
#include "perturb/metrics.h"

namespace synthpert::perturb {

const std::vector<std::string>& baseline_names();  // majority, gene_majority, pair_transfer

// Predicts every test row with the named baseline fitted on the training rows.
// `holdout`: the test rows come from a cell line absent from training.
std::vector<Prediction> run_baseline(const std::string& name, const std::vector<Row>& train,
                                     const std::vector<Row>& test, bool holdout,
                                     const std::vector<Row>& other_train = {});

}  // namespace synthpert::perturb

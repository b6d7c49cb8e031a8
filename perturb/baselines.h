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
//
// Scored on training rows, a baseline fitted on them would count each row's
// own label (gene_majority) and beat what it can do on unseen perts. So the
// training rows are scored out of fold: a row's majority and gene counts leave
// out the training rows of its own cell line whose pert falls in its pert's
// fold (OutcomeProfile::pert_fold, the rule {gene_here} follows), its own row
// and every row of its pert there among them. Every row of one gene and fold
// then reads the same counts whatever its label; leaving out only the row
// itself would not do: within a gene a DE row would always read a lower DE
// share than an NDE row. Other cell lines are read in full, as for a test row
// (pair_transfer never reads the row's own line).
#pragma once

#include <string>
#include <vector>

#include "perturb/data.h"
#include "perturb/metrics.h"
#include "perturb/split.h"

namespace synthpert::perturb {

const std::vector<std::string>& baseline_names();  // majority, gene_majority, pair_transfer

// Predicts every test row with the named baseline fitted on the training rows.
// `holdout`: the test rows come from a cell line absent from training.
// `out_of_fold`: the test rows are training rows, each scored by the fold rule above.
std::vector<Prediction> run_baseline(const std::string& name, const std::vector<Row>& train,
                                     const std::vector<Row>& test, bool holdout,
                                     const std::vector<Row>& other_train = {}, bool out_of_fold = false);

// The named baseline on `rows` (a part's rows, or a subsample of them), fitted
// as the part says (SplitPart::fit).
std::vector<Prediction> run_part_baseline(const std::string& name, const SplitData& data, const SplitPart& part,
                                          const std::vector<Row>& rows);

// How a part's baselines are fitted, in words (metrics.json, report.md).
std::string part_baseline_fit(const SplitPart& part);

}  // namespace synthpert::perturb

// PerturbQA splits.
//   default       each cell line's own train/test column (PerturbQA splits by perturbation)
//   holdout:CELL  train on all rows of the other cell lines, test on all rows of CELL
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "perturb/data.h"

namespace synthpert::perturb {

struct SplitSpec {
  bool holdout = false;
  std::string held_out;             // cell line, for holdout
  std::vector<std::string> cells;   // default: cell lines used (all if empty)
};

SplitSpec parse_split(const std::string& text);

struct SplitData {
  std::vector<Row> train, test;
  // default:CELL: the training rows of the cell lines not selected. Not part of
  // the split; pair_transfer looks up a pair's outcome in other cell lines there.
  std::vector<Row> other_train;
  int64_t inconsistent = 0;    // summed over the split's cell lines
  int64_t dir_without_de = 0;  // likewise: dir rows ignored (see CellData)
  bool holdout = false;      // a holdout:CELL split (no training rows of the test line)
};

// Loads the cell lines the split needs and partitions their rows.
SplitData load_split(const std::string& data_dir, const SplitSpec& spec);

// Deterministic subsample of `fraction` of the rows (each row kept with
// probability `fraction` by a hash of (seed, cell, pert, gene), so the same row
// is kept whatever else is in the list); order is preserved.
std::vector<Row> subsample(const std::vector<Row>& rows, double fraction, uint64_t seed);

// Splits training rows into train and validation by whole (cell line, pert)
// groups: `fraction` of the groups (by a seeded hash) go to validation. A
// validation row's perturbation is then unseen in its own cell line, as a
// test row's is under PerturbQA's split by perturbation. Order is preserved.
void split_validation(const std::vector<Row>& rows, double fraction, uint64_t seed, std::vector<Row>& train,
                      std::vector<Row>& val);

// One part of a split (`--part` of eval, baselines and data), with the rows its
// baselines are fitted on. The validation groups are split_validation(train,
// val_fraction, val_seed): the demo's with its --val-fraction and --seed.
//   test   the split's test rows; baselines fit every training row
//   val    the training rows of the validation groups (val_fraction > 0);
//          baselines fit the training rows outside them
//   train  the training rows outside the validation groups (all of them at
//          val_fraction 0); baselines fit these same rows, out of fold
//          (baselines.h), so no row reads its own label
struct SplitPart {
  enum class Fit { kAllTrain, kOthers, kOutOfFold };
  std::vector<Row> rows;       // in split order
  Fit fit = Fit::kAllTrain;
  std::vector<Row> fit_rows;   // kOthers and kOutOfFold: the training rows outside the validation groups
};

SplitPart select_part(const SplitData& data, const std::string& part, double val_fraction, uint64_t val_seed);
// The argument checks of select_part, for commands that check before loading data.
void check_part(const std::string& part, double val_fraction);

}  // namespace synthpert::perturb

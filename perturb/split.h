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

}  // namespace synthpert::perturb

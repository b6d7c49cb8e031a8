// Prompt evidence from other cell lines: the outcomes of the same (pert, gene)
// pair in training rows of cell lines other than the row's own, e.g. "up nde"
// (sorted up, down, nde; "none" when the pair was measured nowhere else).
//
// This is the information the pair_transfer baseline uses, given to the model
// in its prompt ({evidence}) so it can combine it with what it knows of the
// genes. Only training rows are sources, and never the row's own cell line, so
// a training row sees what a held-out row will see: other lines' outcomes.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "perturb/data.h"

namespace synthpert::perturb {

class PairEvidence {
 public:
  // Adds training rows as sources (any cell lines; call once per row set).
  void add(const std::vector<Row>& rows);
  std::string describe(const Row& row) const;
  // Sets `evidence` of every row.
  void attach(std::vector<Row>& rows) const;

 private:
  // (pert, gene) -> (cell line, label) of every source row.
  std::unordered_map<std::string, std::vector<std::pair<std::string, Label>>> pairs_;
};

struct SplitData;
// Attaches evidence to `rows` from a split's training rows (and, for
// default:CELL, the other cell lines' training rows).
void attach_split_evidence(const SplitData& data, std::vector<Row>& rows);

}  // namespace synthpert::perturb

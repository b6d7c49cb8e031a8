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

// The perturbation's overall effect in other cell lines ({pert_effect}): over
// the pert's training rows in cell lines other than the row's own, the share of
// target genes that are differentially expressed and, of those, the share that
// go up, each as a bucket word: "de3 up1" ("none" when the pert was measured
// nowhere else; no up word when nothing was DE).
//
// Why: per-gene AUROC ranks perturbations for one target gene, and a knockdown
// that moves many genes elsewhere (an essential gene, a transcription
// regulator) is more likely to move this one. Same source rule as PairEvidence.
class PertProfile {
 public:
  void add(const std::vector<Row>& rows);
  std::string describe(const Row& row) const;

  // Bucket edges: DE share (PerturbQA perts cluster at 8-19% DE) and up share.
  static int de_bucket(double share);
  static int up_bucket(double share);

 private:
  struct Counts {
    int64_t rows = 0, de = 0, up = 0;
  };
  // pert -> cell line -> counts over its training rows there.
  std::unordered_map<std::string, std::unordered_map<std::string, Counts>> perts_;
};

struct SplitData;
// Attaches evidence and pert effect to `rows` from a split's training rows
// (and, for default splits, the other cell lines' training rows).
void attach_split_evidence(const SplitData& data, std::vector<Row>& rows);

}  // namespace synthpert::perturb

// {gene_similar}: the target gene's outcomes in the row's own cell line under
// the knockdowns that behave most like the row's own, e.g. "sn3 sde5 sup2".
//
// Why: on a default split most test rows have no pair evidence, and the
// gene's own-line shares ({gene_here}) say only how often the gene responds
// to any knockdown. Knockdowns of one complex or pathway move the same genes,
// so the gene's outcome under the row pert's nearest neighbours among the
// line's training perts is evidence about this pert specifically. Python over
// the CSVs (scripts/probe_similar_perts.py: gradient-boosted trees on half the
// test perts of each line, scored on the other half, rows without pair
// evidence): adding these counts to the gene's own-line shares lowered
// log-loss on every line (HepG2 0.184 -> 0.163) and raised macro-F1 at the
// best offsets by 0.013-0.09.
//
// Similarity of two perts for a row of line C is the Jaccard index of their DE
// sets, (cell line, gene) pairs over the training rows of lines other than C:
// a test pert has no training rows in C, so C itself never enters and a
// training row sees the same kind of neighbours a test row does. The row's
// neighbours are the kNeighbours perts with training rows in C (never the row's
// own pert, so its own label never reaches its words) with the highest index,
// ties by name, index > 0. Of those measured on the row's gene in C the words
// give the count (sn1..sn5), the share DE (sde0 for none, sdeK for a share in
// ((K-1)/10, K/10]) and of those the share up (supK for [K/5, (K+1)/5), sup4
// including all); "none" when no neighbour was measured on it. Holdout splits
// have no training rows of the held-out line, so there the field is empty for
// every row (perturb/evidence.cpp).
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "perturb/data.h"

namespace synthpert::perturb {

class SimilarPerts {
 public:
  static constexpr int kNeighbours = 50;

  // Adds training rows as sources (call before describing; any cell lines).
  void add(const std::vector<Row>& rows);
  // The words for a row; "" when no neighbour was measured on its gene.
  std::string describe(const Row& row);
  // The row pert's neighbours for a row of `cell` (names, best first).
  std::vector<std::string> neighbours(const std::string& cell, const std::string& pert);

  static int count_bucket(int64_t n);  // 1, 2, 3-4, 5-8, 9+ -> 1..5
  static int de_bucket(double share);  // 0 only when none is DE, then ceil(10 share) -> 0..10
  static int up_bucket(double share);  // floor(5 share), at most 4

 private:
  int line_id(const std::string& cell);
  const std::vector<int>& neighbour_ids(int line, int pert);

  std::unordered_map<std::string, int> line_ids_, pert_ids_, column_ids_;  // column: "line\tgene"
  std::vector<std::string> pert_names_;
  std::vector<int> column_line_;                       // column -> line
  std::vector<std::vector<int>> column_perts_;         // column -> perts DE there
  std::vector<std::vector<int>> pert_columns_;         // pert -> its DE columns
  std::vector<std::vector<int64_t>> pert_de_;          // pert -> line -> DE rows
  std::vector<std::vector<char>> trained_;             // line -> pert -> has training rows there
  // "line\tgene" -> pert -> label of that training row.
  std::unordered_map<std::string, std::unordered_map<int, Label>> outcomes_;
  std::unordered_map<int64_t, std::vector<int>> cache_;  // line * perts + pert -> neighbours
};

}  // namespace synthpert::perturb

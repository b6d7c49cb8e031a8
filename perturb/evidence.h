// Prompt evidence from other cell lines: the outcomes of the same (pert, gene)
// pair in training rows of cell lines other than the row's own, e.g. "up nde"
// (sorted up, down, nde; "none" when the pair was measured nowhere else).
//
// This is the information the pair_transfer baseline uses, given to the model
// in its prompt ({evidence}) so it can combine it with what it knows of the
// genes. Only training rows are sources, and never the row's own cell line, so
// a training row sees what a held-out row will see: other lines' outcomes.
#pragma once

#include <array>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "perturb/data.h"
#include "perturb/similar_perts.h"

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

// Outcome shares of the row's perturbation ({pert_effect}) or of its target
// gene ({gene_profile}) over the training rows of cell lines other than the
// row's own: the share that is differentially expressed and, of those, the
// share that goes up, each as a bucket word, e.g. "de3 up1" / "gde2 gup4"
// ("none" when measured nowhere else; no up word when nothing was DE).
//
// {gene_here} gives the target gene's shares in the row's own cell line
// ("hde2 hup4"), which only a default split has training rows for: PerturbQA
// splits by perturbation, so a test row's gene was measured under other perts
// of its line (what the default-split gene_majority baseline counts). A
// training row must not see its own label there, nor labels that move with it:
// perts fall into kFolds folds by a hash of the name, and a row whose pert has
// training rows in its line sees only the rows whose pert is in another fold
// (every row of one gene and fold sees the same words whatever its label). A
// test row's pert has no training rows there, so it sees every fold: all test
// rows of one gene read the same words, and the fold of a pert, which says
// nothing about it, does not reorder perts within a gene (per-gene AUROC).
//
// {gene_all} gives the target gene's shares over the training rows of every
// cell line, the row's own line with the same fold rule ("ade2 aup4"). It is
// what the holdout:CELL gene_majority baseline counts: a held-out row's gene
// over all training lines. {gene_profile} leaves the row's own line out, so a
// training row there reads one line fewer than a held-out row (two of three on
// holdout:rpe1), and a student cannot learn from it what the three lines
// together say; {gene_all} reads all of them on both sides.
//
// Why: per-gene AUROC ranks perturbations for one target gene, and a knockdown
// that moves many genes elsewhere (an essential gene, a transcription
// regulator) is more likely to move this one; a gene that responds to many
// knockdowns elsewhere is likelier to respond here (what gene_majority uses,
// given to the model). Same source rule as PairEvidence, so a training row
// sees what a held-out row will see.
class OutcomeProfile {
 public:
  // Perts cluster at 8-19% DE in PerturbQA (a few coarse words suffice). A
  // gene's shares are what the gene-majority baseline decides by, so they get
  // 5% / 10% steps: coarse buckets measurably lost to the exact counts
  // (pooled DE AUROC on holdout:rpe1). gde0 means never DE.
  static OutcomeProfile pert_effect();   // words de0..de7, up0..up4
  static OutcomeProfile gene_profile();  // words gde0..gde20, gup0..gup9
  static OutcomeProfile gene_here();     // own line, other folds: hde0..hde20, hup0..hup9
  static OutcomeProfile gene_all();      // every line, own line's other folds: ade0..ade20, aup0..aup9

  static constexpr int kFolds = 5;
  static int pert_fold(const std::string& pert);

  void add(const std::vector<Row>& rows);
  std::string describe(const Row& row) const;
  int de_bucket(double share) const { return bucket(de_edges_, share); }
  int up_bucket(double share) const { return bucket(up_edges_, share); }

 private:
  struct Counts {
    int64_t rows = 0, de = 0, up = 0;
  };
  using FoldCounts = std::array<Counts, kFolds>;
  // Which cell lines' rows a row reads; the own line always by the fold rule.
  enum class Lines { kOthers, kOwn, kAll };
  static int bucket(const std::vector<double>& edges, double share);
  OutcomeProfile(bool by_gene, Lines lines, std::string prefix, std::vector<double> de_edges,
                 std::vector<double> up_edges)
      : by_gene_(by_gene), lines_(lines), prefix_(std::move(prefix)), de_edges_(std::move(de_edges)),
        up_edges_(std::move(up_edges)) {}
  bool by_gene_;
  Lines lines_;
  std::string prefix_;
  std::vector<double> de_edges_, up_edges_;  // a share's bucket = the number of edges <= it
  // pert (or gene) -> cell line -> counts over its training rows there, per pert fold.
  std::unordered_map<std::string, std::unordered_map<std::string, FoldCounts>> counts_;
  std::unordered_set<std::string> trained_perts_;  // "cell\tpert" of the rows added
};

struct SplitData;
// The RowContext of rows from a split's training rows (and, for default:CELL
// splits, the other cell lines' training rows); {gene_here} and
// {gene_similar} only on default splits, where test rows have training rows
// of their own line. Counted once, attached to any number of rows (the
// server attaches one row per request).
class SplitEvidence {
 public:
  explicit SplitEvidence(const SplitData& data);
  // Not const: SimilarPerts remembers the neighbours it has ranked.
  void attach(std::vector<Row>& rows);

 private:
  bool holdout_;
  PairEvidence pairs_;
  OutcomeProfile pert_, gene_, here_, all_;
  SimilarPerts similar_;  // left empty on holdout splits, so it describes every row as ""
};

void attach_split_evidence(const SplitData& data, std::vector<Row>& rows);

}  // namespace synthpert::perturb

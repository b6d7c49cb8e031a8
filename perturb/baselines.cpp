#include "perturb/baselines.h"

#include <unordered_map>

#include "common/error.h"
#include "perturb/evidence.h"

namespace synthpert::perturb {

namespace {

using Counts = std::array<double, 3>;

// Tie order: NDE, then down, then up.
Label majority_label(const Counts& c) {
  Label best = Label::kNde;
  for (Label l : {Label::kDown, Label::kUp})
    if (c[label_index(l)] > c[label_index(best)]) best = l;
  return best;
}

std::array<double, 3> frequencies(const Counts& c) {
  const double n = c[0] + c[1] + c[2];
  if (n == 0) return {0.0, 0.0, 1.0};
  return {c[0] / n, c[1] / n, c[2] / n};
}

Prediction make(const Row& r, const Counts& c, std::optional<Label> label = std::nullopt) {
  Prediction p;
  p.cell_type = r.cell_type;
  p.pert = r.pert;
  p.gene = r.gene;
  p.label = r.label;
  p.prediction = label ? *label : majority_label(c);
  p.probs = frequencies(c);
  return p;
}

// Label counts per key over the fit rows. Out of fold, a row reads them less
// the fit rows of its own cell line whose pert is in its pert's fold
// (baselines.h); a key left with no rows reads as unseen.
class Tally {
 public:
  explicit Tally(bool out_of_fold) : out_of_fold_(out_of_fold) {}
  void add(const std::string& key, const Row& r) {
    total_[key][label_index(r.label)] += 1;
    if (out_of_fold_) slice_[slice_key(key, r)][label_index(r.label)] += 1;
  }
  std::optional<Counts> get(const std::string& key, const Row& r) const {
    const auto it = total_.find(key);
    if (it == total_.end()) return std::nullopt;
    Counts c = it->second;
    if (out_of_fold_)
      if (const auto s = slice_.find(slice_key(key, r)); s != slice_.end())
        for (int k = 0; k < 3; ++k) c[k] -= s->second[k];
    if (c[0] + c[1] + c[2] == 0) return std::nullopt;
    return c;
  }

 private:
  static std::string slice_key(const std::string& key, const Row& r) {
    return key + '\n' + r.cell_type + '\n' + std::to_string(OutcomeProfile::pert_fold(r.pert));
  }
  bool out_of_fold_;
  std::unordered_map<std::string, Counts> total_, slice_;
};

}  // namespace

const std::vector<std::string>& baseline_names() {
  static const std::vector<std::string> names = {"majority", "gene_majority", "pair_transfer"};
  return names;
}

std::vector<Prediction> run_baseline(const std::string& name, const std::vector<Row>& train,
                                     const std::vector<Row>& test, bool holdout,
                                     const std::vector<Row>& other_train, bool out_of_fold) {
  SP_CHECK_INPUT(name == "majority" || name == "gene_majority" || name == "pair_transfer", "unknown baseline '", name,
                 "' (majority, gene_majority, pair_transfer)");
  Tally overall(out_of_fold);
  for (const auto& r : train) overall.add("", r);
  auto overall_counts = [&](const Row& r) { return overall.get("", r).value_or(Counts{}); };
  std::vector<Prediction> out;
  out.reserve(test.size());
  if (name == "majority") {
    for (const auto& r : test) out.push_back(make(r, overall_counts(r)));
    return out;
  }
  // Gene counts keyed by (cell line, gene), or by gene alone for a held-out cell line.
  auto gene_key = [&](const Row& r) { return holdout ? r.gene : r.cell_type + '\t' + r.gene; };
  Tally gene(out_of_fold);
  for (const auto& r : train) gene.add(gene_key(r), r);
  auto gene_prediction = [&](const Row& r) {
    const auto c = gene.get(gene_key(r), r);
    return c ? make(r, *c) : make(r, overall_counts(r), Label::kNde);
  };
  if (name == "gene_majority") {
    for (const auto& r : test) out.push_back(gene_prediction(r));
    return out;
  }
  // pair_transfer: (pert, gene) -> counts per cell line, so a row's own cell
  // line can be left out.
  std::unordered_map<std::string, std::unordered_map<std::string, Counts>> pair;
  for (const auto* rows : {&train, &other_train})
    for (const auto& r : *rows) pair[r.pert + '\t' + r.gene][r.cell_type][label_index(r.label)] += 1;
  for (const auto& r : test) {
    auto it = pair.find(r.pert + '\t' + r.gene);
    Counts c{};
    if (it != pair.end())
      for (const auto& [cell, counts] : it->second)
        if (cell != r.cell_type)
          for (int k = 0; k < 3; ++k) c[k] += counts[k];
    out.push_back(c[0] + c[1] + c[2] > 0 ? make(r, c) : gene_prediction(r));
  }
  return out;
}

std::vector<Prediction> run_part_baseline(const std::string& name, const SplitData& data, const SplitPart& part,
                                          const std::vector<Row>& rows) {
  if (part.fit == SplitPart::Fit::kAllTrain) return run_baseline(name, data.train, rows, data.holdout, data.other_train);
  return run_baseline(name, part.fit_rows, rows, data.holdout, data.other_train,
                      part.fit == SplitPart::Fit::kOutOfFold);
}

std::string part_baseline_fit(const SplitPart& part) {
  switch (part.fit) {
    case SplitPart::Fit::kAllTrain:
      return "fitted on every training row";
    case SplitPart::Fit::kOthers:
      return "fitted on the training rows outside the validation groups";
    case SplitPart::Fit::kOutOfFold:
      return str_cat("out of fold: each row's counts leave out its own cell line's training rows whose pert is in "
                     "its pert's fold (", OutcomeProfile::kFolds, " folds by pert name), so no row reads its own label");
  }
  return "";
}

}  // namespace synthpert::perturb

#include "perturb/baselines.h"

#include <unordered_map>

#include "common/error.h"

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

}  // namespace

const std::vector<std::string>& baseline_names() {
  static const std::vector<std::string> names = {"majority", "gene_majority", "pair_transfer"};
  return names;
}

std::vector<Prediction> run_baseline(const std::string& name, const std::vector<Row>& train,
                                     const std::vector<Row>& test, bool holdout,
                                     const std::vector<Row>& other_train) {
  Counts overall{};
  for (const auto& r : train) overall[label_index(r.label)] += 1;
  std::vector<Prediction> out;
  out.reserve(test.size());
  if (name == "majority") {
    for (const auto& r : test) out.push_back(make(r, overall));
    return out;
  }
  SP_CHECK_INPUT(name == "gene_majority" || name == "pair_transfer", "unknown baseline '", name,
                 "' (majority, gene_majority, pair_transfer)");
  // Gene counts keyed by (cell line, gene), or by gene alone for a held-out cell line.
  std::unordered_map<std::string, Counts> gene;
  for (const auto& r : train) gene[holdout ? r.gene : r.cell_type + '\t' + r.gene][label_index(r.label)] += 1;
  auto gene_prediction = [&](const Row& r) {
    auto it = gene.find(holdout ? r.gene : r.cell_type + '\t' + r.gene);
    if (it == gene.end()) return make(r, overall, Label::kNde);
    return make(r, it->second);
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

}  // namespace synthpert::perturb

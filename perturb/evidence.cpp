#include "perturb/evidence.h"

#include <algorithm>

#include "perturb/split.h"

namespace synthpert::perturb {

namespace {

std::string pair_key(const Row& r) { return r.pert + '\t' + r.gene; }

const char* short_name(Label l) { return l == Label::kUp ? "up" : l == Label::kDown ? "down" : "nde"; }

}  // namespace

void PairEvidence::add(const std::vector<Row>& rows) {
  for (const auto& r : rows) pairs_[pair_key(r)].emplace_back(r.cell_type, r.label);
}

std::string PairEvidence::describe(const Row& row) const {
  auto it = pairs_.find(pair_key(row));
  if (it == pairs_.end()) return "none";
  std::vector<Label> labels;
  for (const auto& [cell, label] : it->second)
    if (cell != row.cell_type) labels.push_back(label);
  if (labels.empty()) return "none";
  std::sort(labels.begin(), labels.end(), [](Label a, Label b) { return label_index(a) < label_index(b); });
  std::string out;
  for (Label l : labels) out += (out.empty() ? "" : " ") + std::string(short_name(l));
  return out;
}

void PairEvidence::attach(std::vector<Row>& rows) const {
  for (auto& r : rows) r.evidence = describe(r);
}

OutcomeProfile OutcomeProfile::pert_effect() {
  return OutcomeProfile(false, "", {0.04, 0.08, 0.11, 0.13, 0.15, 0.17, 0.19}, {0.2, 0.4, 0.6, 0.8});
}

OutcomeProfile OutcomeProfile::gene_profile() {
  return OutcomeProfile(true, "g",
                        {1e-9, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8,
                         0.85, 0.9, 0.95},
                        {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9});
}

void OutcomeProfile::add(const std::vector<Row>& rows) {
  for (const auto& r : rows) {
    Counts& c = counts_[by_gene_ ? r.gene : r.pert][r.cell_type];
    ++c.rows;
    c.de += r.label != Label::kNde;
    c.up += r.label == Label::kUp;
  }
}

int OutcomeProfile::bucket(const std::vector<double>& edges, double share) {
  int b = 0;
  for (double e : edges) b += share >= e;
  return b;
}

std::string OutcomeProfile::describe(const Row& row) const {
  auto it = counts_.find(by_gene_ ? row.gene : row.pert);
  if (it == counts_.end()) return "none";
  Counts sum;
  for (const auto& [cell, c] : it->second) {
    if (cell == row.cell_type) continue;
    sum.rows += c.rows;
    sum.de += c.de;
    sum.up += c.up;
  }
  if (sum.rows == 0) return "none";
  std::string out = prefix_ + "de" + std::to_string(de_bucket(static_cast<double>(sum.de) / static_cast<double>(sum.rows)));
  if (sum.de > 0)
    out += " " + prefix_ + "up" + std::to_string(up_bucket(static_cast<double>(sum.up) / static_cast<double>(sum.de)));
  return out;
}

void attach_split_evidence(const SplitData& data, std::vector<Row>& rows) {
  PairEvidence ev;
  ev.add(data.train);
  ev.add(data.other_train);
  ev.attach(rows);
  auto pert = OutcomeProfile::pert_effect(), gene = OutcomeProfile::gene_profile();
  for (auto* p : {&pert, &gene}) {
    p->add(data.train);
    p->add(data.other_train);
  }
  for (auto& r : rows) {
    r.pert_effect = pert.describe(r);
    r.gene_profile = gene.describe(r);
  }
}

}  // namespace synthpert::perturb

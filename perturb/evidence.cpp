#include "perturb/evidence.h"

#include <algorithm>

#include "common/hash.h"
#include "perturb/similar_perts.h"
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
  for (auto& r : rows) r.context.evidence = describe(r);
}

namespace {
const std::vector<double> kGeneDeEdges = {1e-9, 0.05, 0.1,  0.15, 0.2, 0.25, 0.3,  0.35, 0.4,  0.45,
                                          0.5,  0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95};
const std::vector<double> kGeneUpEdges = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
}  // namespace

OutcomeProfile OutcomeProfile::pert_effect() {
  return OutcomeProfile(false, Lines::kOthers, "", {0.04, 0.08, 0.11, 0.13, 0.15, 0.17, 0.19}, {0.2, 0.4, 0.6, 0.8});
}

OutcomeProfile OutcomeProfile::gene_profile() {
  return OutcomeProfile(true, Lines::kOthers, "g", kGeneDeEdges, kGeneUpEdges);
}

OutcomeProfile OutcomeProfile::gene_here() {
  return OutcomeProfile(true, Lines::kOwn, "h", kGeneDeEdges, kGeneUpEdges);
}

OutcomeProfile OutcomeProfile::gene_all() {
  return OutcomeProfile(true, Lines::kAll, "a", kGeneDeEdges, kGeneUpEdges);
}

int OutcomeProfile::pert_fold(const std::string& pert) {
  return static_cast<int>(fnv1a64(pert) % kFolds);  // the same folds on every platform and run
}

void OutcomeProfile::add(const std::vector<Row>& rows) {
  for (const auto& r : rows) {
    Counts& c = counts_[by_gene_ ? r.gene : r.pert][r.cell_type][pert_fold(r.pert)];
    if (lines_ != Lines::kOthers) trained_perts_.insert(r.cell_type + '\t' + r.pert);
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
  // Only a pert with training rows in the line has a fold to leave out.
  const bool has_fold = lines_ != Lines::kOthers && trained_perts_.count(row.cell_type + '\t' + row.pert) > 0;
  const int own_fold = has_fold ? pert_fold(row.pert) : -1;
  for (const auto& [cell, folds] : it->second) {
    const bool own = cell == row.cell_type;
    if ((lines_ == Lines::kOthers && own) || (lines_ == Lines::kOwn && !own)) continue;
    for (int f = 0; f < kFolds; ++f) {
      if (own && f == own_fold) continue;
      sum.rows += folds[f].rows;
      sum.de += folds[f].de;
      sum.up += folds[f].up;
    }
  }
  if (sum.rows == 0) return "none";
  std::string out = prefix_ + "de" + std::to_string(de_bucket(static_cast<double>(sum.de) / static_cast<double>(sum.rows)));
  if (sum.de > 0)
    out += " " + prefix_ + "up" + std::to_string(up_bucket(static_cast<double>(sum.up) / static_cast<double>(sum.de)));
  return out;
}

SplitEvidence::SplitEvidence(const SplitData& data)
    : holdout_(data.holdout), pert_(OutcomeProfile::pert_effect()), gene_(OutcomeProfile::gene_profile()),
      here_(OutcomeProfile::gene_here()), all_(OutcomeProfile::gene_all()) {
  for (const auto* rows : {&data.train, &data.other_train}) {
    pairs_.add(*rows);
    for (auto* p : {&pert_, &gene_, &here_, &all_}) p->add(*rows);
    if (!holdout_) similar_.add(*rows);
  }
}

void SplitEvidence::attach(std::vector<Row>& rows) {
  pairs_.attach(rows);
  for (auto& r : rows) {
    r.context.pert_effect = pert_.describe(r);
    r.context.gene_profile = gene_.describe(r);
    // A held-out line has no training rows: its test rows would always read
    // "none", so training rows must too.
    r.context.gene_here = holdout_ ? "" : here_.describe(r);
    r.context.gene_all = all_.describe(r);
    r.context.gene_similar = similar_.describe(r);
  }
}

void attach_split_evidence(const SplitData& data, std::vector<Row>& rows) { SplitEvidence(data).attach(rows); }

}  // namespace synthpert::perturb

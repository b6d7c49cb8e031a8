#include "perturb/metrics.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <sstream>
#include <unordered_map>

#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"

namespace synthpert::perturb {

using nlohmann::json;

namespace {

// Per-row quantities every metric needs, computed once.
struct Scored {
  int truth = 0;   // label index
  int pred = -1;   // label index, -1 unparsed
  bool de = false; // truly DE
  double de_score = 0.5, dir_score = 0.5;
};

Scored score_row(const Prediction& p) {
  Scored s;
  s.truth = label_index(p.label);
  s.pred = p.prediction ? label_index(*p.prediction) : -1;
  s.de = p.label != Label::kNde;
  if (p.probs) {
    const auto& q = *p.probs;
    s.de_score = q[0] + q[1];
    s.dir_score = q[0] + q[1] > 0 ? q[0] / (q[0] + q[1]) : 0.5;
  } else if (p.prediction) {
    s.de_score = *p.prediction == Label::kNde ? 0.0 : 1.0;
    s.dir_score = *p.prediction == Label::kUp ? 1.0 : *p.prediction == Label::kDown ? 0.0 : 0.5;
  }
  return s;
}

// Rows of one AUROC problem, pre-sorted by score so that any weighting of the
// rows (bootstrap) is evaluated in one pass.
struct AucProblem {
  std::vector<uint32_t> rows;  // indices into the scored vector, by ascending score
  std::vector<double> score;   // same order
  std::vector<bool> positive;
};

AucProblem make_problem(std::vector<uint32_t> rows, const std::vector<double>& score_of,
                        const std::vector<bool>& positive_of) {
  std::sort(rows.begin(), rows.end(), [&](uint32_t a, uint32_t b) { return score_of[a] < score_of[b]; });
  AucProblem p;
  p.rows = std::move(rows);
  for (uint32_t r : p.rows) {
    p.score.push_back(score_of[r]);
    p.positive.push_back(positive_of[r]);
  }
  return p;
}

// Weighted Mann-Whitney AUC; `w` weights rows by index (nullptr: all 1).
std::optional<double> weighted_auc(const AucProblem& p, const std::vector<double>* w) {
  double neg_below = 0, sum = 0, pos_total = 0, neg_total = 0;
  size_t i = 0;
  while (i < p.rows.size()) {
    size_t j = i;
    double pos = 0, neg = 0;
    while (j < p.rows.size() && p.score[j] == p.score[i]) {
      const double wt = w ? (*w)[p.rows[j]] : 1.0;
      (p.positive[j] ? pos : neg) += wt;
      ++j;
    }
    sum += pos * (neg_below + 0.5 * neg);
    neg_below += neg;
    pos_total += pos;
    neg_total += neg;
    i = j;
  }
  if (pos_total <= 0 || neg_total <= 0) return std::nullopt;
  return sum / (pos_total * neg_total);
}

struct AucSet {
  AucProblem pooled;
  std::vector<AucProblem> groups;  // per (cell line, gene)
};

// Builds the DE or direction problems over the given rows.
AucSet make_auc_set(const std::vector<Scored>& s, const std::vector<Prediction>& preds,
                    const std::vector<uint32_t>& rows, bool direction) {
  std::vector<double> score(s.size());
  std::vector<bool> positive(s.size());
  std::vector<uint32_t> used;
  std::map<std::pair<std::string, std::string>, std::vector<uint32_t>> by_gene;
  for (uint32_t r : rows) {
    if (direction && !s[r].de) continue;
    score[r] = direction ? s[r].dir_score : s[r].de_score;
    positive[r] = direction ? s[r].truth == label_index(Label::kUp) : s[r].de;
    used.push_back(r);
    by_gene[{preds[r].cell_type, preds[r].gene}].push_back(r);
  }
  AucSet set;
  set.pooled = make_problem(used, score, positive);
  for (auto& [key, g] : by_gene) {
    bool any_pos = false, any_neg = false;
    for (uint32_t r : g) (positive[r] ? any_pos : any_neg) = true;
    if (any_pos && any_neg) set.groups.push_back(make_problem(g, score, positive));
  }
  return set;
}

// Each group's AUC over all its rows (every kept group has both classes).
std::vector<double> group_aucs(const AucSet& set) {
  std::vector<double> out;
  for (const auto& g : set.groups) out.push_back(*weighted_auc(g, nullptr));
  return out;
}

std::optional<double> mean(const std::vector<double>& v) {
  if (v.empty()) return std::nullopt;
  double sum = 0;
  for (double x : v) sum += x;
  return sum / static_cast<double>(v.size());
}

struct ClassStats {
  std::array<std::array<double, 3>, 3> confusion{};  // [truth][pred]
  std::array<double, 3> support{};
  double correct = 0, total = 0, unparsed = 0;
};

ClassStats class_stats(const std::vector<Scored>& s, const std::vector<uint32_t>& rows,
                       const std::vector<double>* w) {
  ClassStats c;
  for (uint32_t r : rows) {
    const double wt = w ? (*w)[r] : 1.0;
    c.total += wt;
    c.support[s[r].truth] += wt;
    if (s[r].pred < 0) {
      c.unparsed += wt;
      continue;
    }
    c.confusion[s[r].truth][s[r].pred] += wt;
    if (s[r].pred == s[r].truth) c.correct += wt;
  }
  return c;
}

struct F1s {
  std::array<double, 3> precision{}, recall{}, f1{};
  double macro = 0, weighted = 0;
};

F1s f1_scores(const ClassStats& c) {
  F1s f;
  double support_total = 0;
  for (int k = 0; k < 3; ++k) {
    double predicted = 0;
    for (int t = 0; t < 3; ++t) predicted += c.confusion[t][k];
    const double tp = c.confusion[k][k];
    f.precision[k] = predicted > 0 ? tp / predicted : 0.0;
    f.recall[k] = c.support[k] > 0 ? tp / c.support[k] : 0.0;
    const double pr = f.precision[k] + f.recall[k];
    f.f1[k] = pr > 0 ? 2 * f.precision[k] * f.recall[k] / pr : 0.0;
    f.macro += f.f1[k] / 3;
    f.weighted += f.f1[k] * c.support[k];
    support_total += c.support[k];
  }
  f.weighted = support_total > 0 ? f.weighted / support_total : 0.0;
  return f;
}

json opt_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json metrics_for(const std::vector<Scored>& s, const std::vector<Prediction>& preds,
                 const std::vector<uint32_t>& rows, const MetricsOptions& opts, bool with_ci) {
  const ClassStats c = class_stats(s, rows, nullptr);
  const F1s f = f1_scores(c);
  const AucSet de = make_auc_set(s, preds, rows, false), dir = make_auc_set(s, preds, rows, true);
  json j;
  j["n"] = static_cast<int64_t>(rows.size());
  j["accuracy"] = c.total > 0 ? c.correct / c.total : 0.0;
  j["macro_f1"] = f.macro;
  j["weighted_f1"] = f.weighted;
  j["unparsed"] = static_cast<int64_t>(c.unparsed);
  json per_class = json::object();
  for (Label l : kAllLabels) {
    const int k = label_index(l);
    per_class[label_name(l)] = {{"precision", f.precision[k]}, {"recall", f.recall[k]},
                                {"f1", f.f1[k]}, {"support", static_cast<int64_t>(c.support[k])}};
  }
  j["per_class"] = per_class;
  json names = json::array(), matrix = json::array();
  for (Label l : kAllLabels) names.push_back(label_name(l));
  for (int t = 0; t < 3; ++t) {
    json row = json::array();
    for (int p = 0; p < 3; ++p) row.push_back(static_cast<int64_t>(c.confusion[t][p]));
    matrix.push_back(row);
  }
  j["confusion"] = {{"labels", names}, {"rows", "truth"}, {"columns", "prediction"}, {"matrix", matrix}};
  const std::vector<double> de_groups = group_aucs(de), dir_groups = group_aucs(dir);
  j["auroc"] = {{"de_per_gene", opt_json(mean(de_groups))},
                {"dir_per_gene", opt_json(mean(dir_groups))},
                {"de_pooled", opt_json(weighted_auc(de.pooled, nullptr))},
                {"dir_pooled", opt_json(weighted_auc(dir.pooled, nullptr))},
                {"de_genes", static_cast<int64_t>(de.groups.size())},
                {"dir_genes", static_cast<int64_t>(dir.groups.size())}};
  if (!with_ci || opts.bootstrap <= 0 || rows.empty()) return j;

  // Percentile bootstrap: resample rows with replacement (multinomial counts
  // as weights), re-evaluate every metric in one pass over the presorted data.
  // Per-gene AUROC is a mean over (cell line, gene) groups, so its interval
  // resamples groups instead: resampled rows drop the groups that lose their
  // only DE (or only up) row and reweight the rest, and the interval can then
  // sit beside the estimate (measured: direction AUROC 0.813 [0.818, 0.852] on
  // the default split).
  std::mt19937_64 gene_rng(opts.seed ^ 0x67656E65ull);  // its own stream: row draws stay as they were
  auto gene_mean = [&](const std::vector<double>& aucs) -> std::optional<double> {
    if (aucs.empty()) return std::nullopt;
    std::uniform_int_distribution<size_t> g(0, aucs.size() - 1);
    std::vector<double> draw(aucs.size());
    for (double& x : draw) x = aucs[g(gene_rng)];
    return mean(draw);
  };
  std::mt19937_64 rng(opts.seed);
  std::uniform_int_distribution<size_t> pick(0, rows.size() - 1);
  std::map<std::string, std::vector<double>> draws;
  std::vector<double> w(s.size(), 0.0);
  for (int b = 0; b < opts.bootstrap; ++b) {
    for (uint32_t r : rows) w[r] = 0;
    for (size_t i = 0; i < rows.size(); ++i) w[rows[pick(rng)]] += 1;
    const ClassStats cb = class_stats(s, rows, &w);
    draws["accuracy"].push_back(cb.correct / cb.total);
    draws["macro_f1"].push_back(f1_scores(cb).macro);
    auto add = [&](const char* name, std::optional<double> v) {
      if (v) draws[name].push_back(*v);
    };
    add("de_per_gene", gene_mean(de_groups));
    add("dir_per_gene", gene_mean(dir_groups));
    add("de_pooled", weighted_auc(de.pooled, &w));
    add("dir_pooled", weighted_auc(dir.pooled, &w));
  }
  json ci = json::object();
  for (auto& [name, values] : draws) {
    if (values.size() < 2) continue;
    std::sort(values.begin(), values.end());
    // A named reference, not the binding: C++17 lambdas cannot capture structured bindings.
    const std::vector<double>& v = values;
    auto at = [&](double q) { return v[static_cast<size_t>(std::floor(q * (v.size() - 1)))]; };
    ci[name] = {at(0.025), at(0.975)};
  }
  j["ci95"] = ci;
  j["bootstrap"] = {{"resamples", opts.bootstrap}, {"seed", opts.seed}, {"unit", "rows"},
                    {"per_gene_unit", "(cell line, gene) groups"}};
  return j;
}

}  // namespace

std::optional<double> roc_auc(const std::vector<double>& scores, const std::vector<bool>& positive) {
  SP_CHECK(scores.size() == positive.size(), "roc_auc: size mismatch");
  std::vector<uint32_t> rows(scores.size());
  std::iota(rows.begin(), rows.end(), 0);
  return weighted_auc(make_problem(rows, scores, positive), nullptr);
}

json compute_metrics(const std::vector<Prediction>& preds, const MetricsOptions& opts) {
  std::vector<Scored> s;
  s.reserve(preds.size());
  for (const auto& p : preds) s.push_back(score_row(p));
  std::vector<uint32_t> all(preds.size());
  std::iota(all.begin(), all.end(), 0);
  json j = metrics_for(s, preds, all, opts, true);
  if (opts.per_cell_type) {
    std::map<std::string, std::vector<uint32_t>> by_cell;
    for (uint32_t i = 0; i < preds.size(); ++i) by_cell[preds[i].cell_type].push_back(i);
    json per = json::object();
    for (const auto& [cell, rows] : by_cell) per[cell] = metrics_for(s, preds, rows, opts, true);
    j["per_cell_type"] = per;
  }
  return j;
}

json prediction_to_json(const Prediction& p) {
  json j = {{"cell_type", p.cell_type}, {"pert", p.pert}, {"gene", p.gene},
            {"label", label_name(p.label)},
            {"prediction", p.prediction ? json(label_name(*p.prediction)) : json(nullptr)}};
  if (p.probs) j["probs"] = named_probs(*p.probs);
  return j;
}

json named_probs(const std::array<double, 3>& probs) {
  json j = json::object();
  for (Label l : kAllLabels) j[label_name(l)] = probs[label_index(l)];
  return j;
}

void RowsSeen::add(const std::string& where, int64_t line, const std::string& cell_type, const std::string& pert,
                   const std::string& gene) {
  const auto [first, fresh] = first_line_.emplace(cell_type + '\t' + pert + '\t' + gene, line);
  SP_CHECK_INPUT(fresh, where, ": duplicate row (", cell_type, ", ", pert, ", ", gene, "), first on line ",
                 first->second);
}

std::vector<Prediction> read_predictions(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<Prediction> out;
  RowsSeen seen;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = str_cat(path, ":", line_no);
    const json j = parse_json_input(line, where);
    SP_CHECK_INPUT(j.is_object(), where, ": expected a JSON object");
    Prediction p;
    for (const char* key : {"cell_type", "pert", "gene", "label"}) {
      SP_CHECK_INPUT(j.contains(key) && j[key].is_string(), where, ": missing string field '", key, "'");
    }
    p.cell_type = j["cell_type"];
    p.pert = j["pert"];
    p.gene = j["gene"];
    const auto truth = label_from_name(j["label"].get<std::string>());
    SP_CHECK_INPUT(truth, where, ": label '", j["label"].get<std::string>(),
                   "' is not one of upregulated, downregulated, not differentially expressed");
    p.label = *truth;
    SP_CHECK_INPUT(j.contains("prediction"), where, ": missing field 'prediction' (a label or null)");
    if (!j["prediction"].is_null()) {
      SP_CHECK_INPUT(j["prediction"].is_string(), where, ": 'prediction' must be a label or null");
      const auto pred = label_from_name(j["prediction"].get<std::string>());
      SP_CHECK_INPUT(pred, where, ": prediction '", j["prediction"].get<std::string>(), "' is not a label");
      p.prediction = pred;
    }
    if (j.contains("probs") && !j["probs"].is_null()) {
      SP_CHECK_INPUT(j["probs"].is_object(), where, ": 'probs' must be an object");
      std::array<double, 3> q{};
      for (Label l : kAllLabels) {
        const auto& name = label_name(l);
        SP_CHECK_INPUT(j["probs"].contains(name) && j["probs"][name].is_number(), where,
                       ": probs needs a number for '", name, "'");
        q[label_index(l)] = j["probs"][name].get<double>();
        SP_CHECK_INPUT(q[label_index(l)] >= 0 && std::isfinite(q[label_index(l)]), where,
                       ": probs must be finite and non-negative");
      }
      p.probs = q;
    }
    seen.add(where, line_no, p.cell_type, p.pert, p.gene);
    out.push_back(std::move(p));
  }
  // Metrics of nothing would print as a result (accuracy 0, n 0).
  SP_CHECK_INPUT(!out.empty(), path, ": holds no predictions");
  return out;
}

}  // namespace synthpert::perturb

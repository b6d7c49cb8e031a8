// Metrics against sklearn (tests/reference/perturb/metrics_oracle.py) on random
// prediction files that cover the awkward cases: missing classes, single-class
// genes, unparsed predictions, rows without probabilities, tied scores.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "common/error.h"
#include "perturb/metrics.h"
#include "perturb/report.h"
#include "tests/test_util.h"

using namespace synthpert;
using namespace synthpert::perturb;
using nlohmann::json;

namespace {

struct Case {
  int rows, cells, genes;
  double unparsed, with_probs, p_up, p_down;  // p_up/p_down: truth class rates
  bool coarse;                                // probabilities rounded to 0.1 (many ties)
};

std::vector<Prediction> random_predictions(const Case& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  const char* cells[] = {"k562", "rpe1", "hepg2"};
  std::vector<Prediction> out;
  for (int i = 0; i < c.rows; ++i) {
    Prediction p;
    p.cell_type = cells[rng() % c.cells];
    p.pert = "P" + std::to_string(rng() % 17) + "." + std::to_string(i);  // rows are unique, as read_predictions requires
    p.gene = "G" + std::to_string(rng() % c.genes);
    const double r = u(rng);
    p.label = r < c.p_up ? Label::kUp : r < c.p_up + c.p_down ? Label::kDown : Label::kNde;
    if (u(rng) >= c.unparsed) {
      // Correlated with the truth half of the time so metrics are not all ~chance.
      p.prediction = u(rng) < 0.5 ? p.label : kAllLabels[rng() % 3];
    }
    if (u(rng) < c.with_probs) {
      std::array<double, 3> q{u(rng), u(rng), u(rng)};
      q[label_index(p.label)] += u(rng);
      if (c.coarse)
        for (double& x : q) x = std::round(x * 10) / 10;
      if (rng() % 7 == 0) q[0] = q[1] = 0;  // p(up)+p(down) = 0: direction score 0.5
      p.probs = q;
    }
    out.push_back(p);
  }
  return out;
}

void check_close(const json& ours, const json& ref, const std::string& where) {
  INFO(where);
  if (ref.is_null()) {
    CHECK(ours.is_null());
    return;
  }
  REQUIRE(ours.is_number());
  CHECK(std::abs(ours.get<double>() - ref.get<double>()) <= 1e-9);
}

void check_block(const json& ours, const json& ref, const std::string& where) {
  CHECK(ours["n"] == ref["n"]);
  CHECK(ours["unparsed"] == ref["unparsed"]);
  for (const char* k : {"accuracy", "macro_f1", "weighted_f1"}) check_close(ours[k], ref[k], where + " " + k);
  for (auto& [label, stats] : ref["per_class"].items()) {
    for (const char* k : {"precision", "recall", "f1"})
      check_close(ours["per_class"][label][k], stats[k], where + " " + label + " " + k);
    CHECK(ours["per_class"][label]["support"] == stats["support"]);
  }
  CHECK(ours["confusion"]["matrix"] == ref["confusion"]);
  for (const char* k : {"de_per_gene", "dir_per_gene", "de_pooled", "dir_pooled"})
    check_close(ours["auroc"][k], ref["auroc"][k], where + " auroc " + k);
  CHECK(ours["auroc"]["de_genes"] == ref["auroc"]["de_genes"]);
  CHECK(ours["auroc"]["dir_genes"] == ref["auroc"]["dir_genes"]);
}

}  // namespace

TEST_CASE("metrics agree with sklearn on random prediction files", "[metrics]") {
  const std::vector<Case> cases = {
      {500, 1, 12, 0.0, 1.0, 0.07, 0.07, false},  {800, 3, 25, 0.05, 1.0, 0.1, 0.05, false},
      {300, 2, 8, 0.2, 0.0, 0.1, 0.1, false},     {400, 3, 30, 0.1, 0.5, 0.08, 0.06, true},
      {1000, 3, 40, 0.0, 1.0, 0.0, 0.12, false},  // no upregulated rows at all
      {250, 1, 5, 0.0, 1.0, 0.3, 0.3, true},      {120, 2, 60, 0.1, 1.0, 0.1, 0.1, false},  // many single-class genes
      {60, 1, 3, 1.0, 0.0, 0.1, 0.1, false},      // everything unparsed, no probs
      {1, 1, 1, 0.0, 1.0, 0.0, 0.0, false},       // one row: no AUROC defined
      {2000, 3, 50, 0.02, 0.9, 0.05, 0.08, true}, {700, 2, 15, 0.0, 0.0, 0.15, 0.05, false},
      {900, 3, 20, 0.3, 0.7, 0.12, 0.12, true},   {50, 1, 50, 0.0, 1.0, 0.5, 0.2, false},
      {600, 3, 10, 0.0, 1.0, 0.0, 0.0, false},    // only NDE: all AUROCs undefined
      {333, 2, 9, 0.05, 0.3, 0.2, 0.0, true},     {1500, 3, 35, 0.01, 1.0, 0.06, 0.06, false},
      {444, 1, 13, 0.0, 1.0, 0.45, 0.45, true},   {555, 2, 22, 0.5, 0.5, 0.1, 0.1, false},
      {777, 3, 17, 0.0, 0.8, 0.02, 0.02, false},  {888, 3, 28, 0.1, 1.0, 0.1, 0.2, true},
      {99, 1, 4, 0.0, 0.0, 0.3, 0.3, false},      {1200, 2, 30, 0.0, 1.0, 0.09, 0.11, true},
  };
  test::TempDir tmp("metrics-oracle");
  MetricsOptions opts;
  opts.bootstrap = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = tmp.path + "/preds" + std::to_string(i) + ".jsonl";
    {
      std::ofstream f(path);
      for (const auto& p : random_predictions(cases[i], 1000 + i)) f << prediction_to_json(p).dump() << '\n';
    }
    // Through the file, as `synthpert metrics` reads it.
    const json ours = compute_metrics(read_predictions(path), opts);
    const auto ref_run = test::run_command(SYNTHPERT_REFERENCE_PYTHON " " + std::string(SYNTHPERT_SOURCE_DIR) +
                                           "/tests/reference/perturb/metrics_oracle.py " + path);
    REQUIRE(ref_run.exit_code == 0);
    const json ref = json::parse(ref_run.out);
    check_block(ours, ref, "case " + std::to_string(i));
    REQUIRE(ours["per_cell_type"].size() == ref["per_cell_type"].size());
    for (auto& [cell, block] : ref["per_cell_type"].items())
      check_block(ours["per_cell_type"][cell], block, "case " + std::to_string(i) + " " + cell);
  }
}

TEST_CASE("roc_auc is undefined with one class and counts ties as one half", "[metrics]") {
  CHECK_FALSE(roc_auc({0.1, 0.2}, {true, true}).has_value());
  CHECK(*roc_auc({0.5, 0.5}, {true, false}) == 0.5);
  CHECK(*roc_auc({0.9, 0.1, 0.5}, {true, false, false}) == 1.0);
}

TEST_CASE("bootstrap intervals are seeded and contain the point estimate", "[metrics]") {
  const auto preds = random_predictions({800, 2, 20, 0.05, 1.0, 0.1, 0.1, false}, 7);
  MetricsOptions opts;
  opts.bootstrap = 200;
  opts.seed = 3;
  const json a = compute_metrics(preds, opts), b = compute_metrics(preds, opts);
  CHECK(a["ci95"] == b["ci95"]);
  for (const char* k : {"accuracy", "macro_f1", "de_pooled"}) {
    const double v = k == std::string("de_pooled") ? a["auroc"][k].get<double>() : a[k].get<double>();
    INFO(k);
    CHECK(a["ci95"][k][0].get<double>() <= v);
    CHECK(a["ci95"][k][1].get<double>() >= v);
    CHECK(a["ci95"][k][0].get<double>() < a["ci95"][k][1].get<double>());
  }
  opts.seed = 4;
  CHECK(compute_metrics(preds, opts)["ci95"] != a["ci95"]);
}

TEST_CASE("per-gene AUROC intervals resample genes, so dropping hard genes cannot move them", "[metrics]") {
  // 50 genes with one DE row scored below their nine NDE rows (AUROC 0) and 50
  // with five DE rows above five NDE rows (AUROC 1): per-gene DE AUROC 0.5.
  // Resampling rows loses a hard gene whenever its one DE row is not drawn
  // (about 37% of the time), which centres the draws near 0.61; resampling
  // genes keeps the mean of 100 zero-or-one values, 0.5 +- about 0.1.
  std::vector<Prediction> preds;
  auto add = [&](const std::string& gene, Label truth, double p_up) {
    Prediction p{"k562", "P" + std::to_string(preds.size()), gene, truth, Label::kNde, std::array<double, 3>{}};
    (*p.probs) = {p_up, 0.0, 1.0 - p_up};
    preds.push_back(p);
  };
  for (int g = 0; g < 50; ++g) {
    const std::string hard = "H" + std::to_string(g), easy = "E" + std::to_string(g);
    add(hard, Label::kUp, 0.01);
    for (int i = 0; i < 9; ++i) add(hard, Label::kNde, 0.02 + 0.01 * i);
    for (int i = 0; i < 5; ++i) add(easy, Label::kUp, 0.6 + 0.05 * i);
    for (int i = 0; i < 5; ++i) add(easy, Label::kNde, 0.1 + 0.05 * i);
  }
  MetricsOptions opts;
  opts.bootstrap = 400;
  opts.seed = 5;
  const json m = compute_metrics(preds, opts);
  REQUIRE(m["auroc"]["de_per_gene"].get<double>() == Approx(0.5));
  const double lo = m["ci95"]["de_per_gene"][0].get<double>(), hi = m["ci95"]["de_per_gene"][1].get<double>();
  CHECK(lo < 0.5);
  CHECK(hi > 0.5);
  CHECK(lo > 0.35);
  CHECK(hi < 0.65);
  CHECK(m["bootstrap"]["per_gene_unit"] == "(cell line, gene) groups");
}

TEST_CASE("predictions files with bad lines are rejected with file and line", "[metrics]") {
  test::TempDir tmp("metrics-bad");
  const std::string good = R"({"cell_type":"rpe1","pert":"A","gene":"B","label":"upregulated","prediction":null})";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"not json", "not valid JSON"},
      {R"({"cell_type":"rpe1","pert":"A","gene":"B","label":"up","prediction":null})", "label 'up'"},
      {R"({"cell_type":"rpe1","pert":"A","gene":"B","label":"upregulated"})", "missing field 'prediction'"},
      {R"({"pert":"A","gene":"B","label":"upregulated","prediction":null})", "'cell_type'"},
      {R"({"cell_type":"rpe1","pert":"A","gene":"B","label":"upregulated","prediction":"maybe"})", "prediction 'maybe'"},
      {R"({"cell_type":"rpe1","pert":"A","gene":"B","label":"upregulated","prediction":null,"probs":{"upregulated":0.5}})",
       "probs needs a number"},
  };
  for (const auto& [line, expect] : bad) {
    const std::string path = tmp.path + "/p.jsonl";
    std::ofstream(path) << good << "\n" << line << "\n";
    try {
      read_predictions(path);
      FAIL("accepted: " << line);
    } catch (const InputError& e) {
      CHECK_THAT(e.what(), Catch::Contains(path + ":2:") && Catch::Contains(expect));
    }
  }
}

TEST_CASE("a predictions file that scores one row twice is rejected", "[metrics]") {
  test::TempDir tmp("metrics-duplicate");
  const std::string path = tmp.path + "/p.jsonl";
  const std::string a = R"({"cell_type":"rpe1","pert":"A","gene":"B","label":"upregulated","prediction":null})";
  const std::string other_line = R"({"cell_type":"k562","pert":"A","gene":"B","label":"upregulated","prediction":null})";
  // The same pair in another cell line is another row; blank lines are skipped.
  std::ofstream(path) << a << "\n\r\n" << other_line << "\n";
  CHECK(read_predictions(path).size() == 2);
  std::ofstream(path) << a << "\n" << other_line << "\n" << a << "\n";
  CHECK_THROWS_WITH(read_predictions(path), Catch::Contains(path + ":3: duplicate row (rpe1, A, B), first on line 1"));
  // Nothing to score is an error, not a result of n = 0.
  std::ofstream(path) << "\n \n";
  CHECK_THROWS_WITH(read_predictions(path), Catch::Contains(path + ": holds no predictions"));
}

TEST_CASE("report: confusion shares count the unparsed rows; the text says what each interval resamples", "[metrics][report]") {
  // 10 truly up rows: 5 predicted up, 5 unparsed. Half of them were found.
  std::vector<Prediction> preds;
  for (int i = 0; i < 10; ++i) {
    Prediction p;
    p.cell_type = "k562";
    p.pert = "P" + std::to_string(i);
    p.gene = "G";
    p.label = Label::kUp;
    if (i < 5) p.prediction = Label::kUp;
    preds.push_back(p);
  }
  MetricsOptions opts;
  opts.bootstrap = 0;
  const json m = compute_metrics(preds, opts);
  const std::string svg = confusion_svg(m, "t");
  CHECK_THAT(svg, Catch::Contains(">0.50</text>"));
  CHECK_THAT(svg, !Catch::Contains(">1.00</text>"));
  CHECK_THAT(svg, Catch::Contains("unparsed: 5"));

  test::TempDir tmp("report");
  ReportInput in;
  in.title = "t";
  in.model = m;
  write_report(tmp.path, in);
  const std::string md = test::read_text(tmp.path + "/report.md");
  CHECK_THAT(md, Catch::Contains("accuracy, macro-F1 and pooled AUROC resample rows") &&
                     Catch::Contains("per-gene AUROC resamples (cell line, gene) groups"));
  CHECK_THAT(md, !Catch::Contains("intervals over rows"));
}

// Decision offsets (perturb/calibration.h): macro-F1 under offsets against the
// sklearn-checked metrics module, the fit against random offsets, JSON and
// file errors; and the validation split by (cell line, pert) groups.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "perturb/calibration.h"
#include "perturb/metrics.h"
#include "perturb/split.h"
#include "tests/test_util.h"

using namespace synthpert::perturb;

namespace {

// Rows whose log-likelihoods carry the label's signal but lean towards NDE by
// `lean`, as an argmax student trained on ~86% NDE rows does.
void biased_scores(int n, double lean, uint32_t seed, std::vector<std::array<double, 3>>& logp, std::vector<Label>& labels) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int i = 0; i < n; ++i) {
    const double x = u(rng);
    const Label l = x < 0.07 ? Label::kUp : x < 0.14 ? Label::kDown : Label::kNde;
    std::array<double, 3> lp{};
    for (int k = 0; k < 3; ++k) lp[k] = noise(rng) + (k == label_index(l) ? 1.5 : 0.0) + (k == 2 ? lean : 0.0);
    logp.push_back(lp);
    labels.push_back(l);
  }
}

}  // namespace

TEST_CASE("macro-F1 under offsets equals the metrics module on the shifted argmax", "[calibration]") {
  std::vector<std::array<double, 3>> logp;
  std::vector<Label> labels;
  biased_scores(3000, 1.0, 7, logp, labels);
  for (const std::array<double, 3> add : {std::array<double, 3>{0, 0, 0}, {1.3, 0.4, 0}, {-0.5, 2.0, 0.7}}) {
    ClassOffsets o;
    o.add = add;
    std::vector<Prediction> preds;
    for (size_t i = 0; i < logp.size(); ++i) {
      Prediction p;
      p.cell_type = "k562";
      p.pert = "P";
      p.gene = "G" + std::to_string(i % 50);
      p.label = labels[i];
      int best = 0;
      for (int k = 1; k < 3; ++k)
        if (logp[i][k] + add[k] > logp[i][best] + add[best]) best = k;
      p.prediction = static_cast<Label>(best);
      preds.push_back(p);
    }
    MetricsOptions mo;
    mo.bootstrap = 0;
    CHECK(macro_f1_with_offsets(logp, labels, o) == Approx(compute_metrics(preds, mo)["macro_f1"].get<double>()).margin(1e-12));
  }
}

TEST_CASE("fitted offsets beat argmax on rows leaning to NDE and every random offset pair", "[calibration]") {
  std::vector<std::array<double, 3>> logp;
  std::vector<Label> labels;
  biased_scores(4000, 3.0, 3, logp, labels);
  const ClassOffsets fit = fit_macro_f1_offsets(logp, labels);
  const double best = macro_f1_with_offsets(logp, labels, fit);
  CHECK(fit.add[2] == 0.0);
  CHECK(fit.add[0] > 1.0);  // both minority classes are pushed up
  CHECK(fit.add[1] > 1.0);
  CHECK(best > macro_f1_with_offsets(logp, labels, ClassOffsets{}) + 0.05);
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> u(-2.0, 8.0);
  for (int t = 0; t < 300; ++t) {
    ClassOffsets o;
    o.add = {u(rng), u(rng), 0.0};
    INFO(o.add[0] << " " << o.add[1]);
    CHECK(macro_f1_with_offsets(logp, labels, o) <= best + 1e-12);
  }
}

TEST_CASE("rows that argmax already separates keep zero offsets", "[calibration]") {
  std::vector<std::array<double, 3>> logp = {{0, -5, -5}, {-5, 0, -5}, {-5, -5, 0}, {-5, -5, 0}};
  std::vector<Label> labels = {Label::kUp, Label::kDown, Label::kNde, Label::kNde};
  const ClassOffsets fit = fit_macro_f1_offsets(logp, labels);
  CHECK(fit.add == std::array<double, 3>{0.0, 0.0, 0.0});
  CHECK_FALSE(fit.any());
  CHECK_THROWS_WITH(fit_macro_f1_offsets({}, {}), Catch::Contains("no validation rows"));
}

TEST_CASE("offsets JSON: round trip and errors naming the file", "[calibration]") {
  ClassOffsets o;
  o.add = {1.25, 0.5, 0.0};
  CHECK(offsets_from_json(offsets_to_json(o), "x").add == o.add);
  synthpert::test::TempDir tmp("calibration");
  const std::string bad = tmp.path + "/bad.json";
  std::ofstream(bad) << R"({"offsets": {"sideways": 1}})";
  CHECK_THROWS_WITH(load_offsets(bad), Catch::Contains(bad) && Catch::Contains("unknown label 'sideways'"));
  std::ofstream(bad) << R"({"up": 1})";
  CHECK_THROWS_WITH(load_offsets(bad), Catch::Contains("expected an object with \"offsets\""));
  CHECK_THROWS_WITH(load_offsets(tmp.path + "/none.json"), Catch::Contains("no such file"));

  const std::string preds = tmp.path + "/p.jsonl";
  std::ofstream(preds) << R"({"label":"upregulated","logprobs":[-1,-2,-3]})" "\n" R"({"label":"upregulated"})" "\n";
  std::vector<std::array<double, 3>> lp;
  std::vector<Label> labels;
  CHECK_THROWS_WITH(read_scored_predictions(preds, lp, labels), Catch::Contains(preds + ":2") && Catch::Contains("logprobs"));
  // A file with CRLF endings and a blank line: the blank line is "\r", skipped like any blank line.
  std::ofstream(preds) << R"({"label":"upregulated","logprobs":[-1,-2,-3]})" "\r\n\r\n"
                       << R"({"label":"downregulated","logprobs":[-2,-1,-3]})" "\r\n";
  lp.clear();
  labels.clear();
  read_scored_predictions(preds, lp, labels);
  CHECK(labels == std::vector<Label>{Label::kUp, Label::kDown});
  // A row listed twice (two runs appended to one file) would weigh twice.
  std::ofstream(preds) << R"({"cell_type":"k562","pert":"A","gene":"B","label":"upregulated","logprobs":[-1,-2,-3]})" "\n"
                       << R"({"cell_type":"k562","pert":"A","gene":"C","label":"upregulated","logprobs":[-1,-2,-3]})" "\n"
                       << R"({"cell_type":"k562","pert":"A","gene":"B","label":"upregulated","logprobs":[-1,-2,-3]})" "\n";
  CHECK_THROWS_WITH(read_scored_predictions(preds, lp, labels),
                    Catch::Contains(preds + ":3") && Catch::Contains("duplicate row (k562, A, B), first on line 1"));
}

TEST_CASE("the evaluation's record beside the predictions names their rows; a broken record stops the fit",
          "[calibration]") {
  synthpert::test::TempDir tmp("calibration-source");
  const std::string preds = tmp.path + "/predictions.jsonl", record = tmp.path + "/eval_config.json";
  CHECK(calibration_source(preds).is_null());  // predictions made without eval: nothing to check against
  synthpert::test::write_text(record, R"({"split": "holdout:rpe1", "part": "val"})");
  CHECK(calibration_source(preds) == nlohmann::json{{"split", "holdout:rpe1"}, {"part", "val"}});
  synthpert::test::write_text(record, R"({"split": "holdout:rpe1", "part": "test"})");
  CHECK_THROWS_WITH(calibration_source(preds), Catch::Contains("holds predictions of test rows"));
  // Unreadable, it might be the record that says "test".
  for (const char* broken : {"[]", R"({"split": "holdout:rpe1", "pa)", R"({"part": 3})"}) {
    INFO(broken);
    synthpert::test::write_text(record, broken);
    CHECK_THROWS_WITH(calibration_source(preds), Catch::Contains(record + ": not the record eval writes"));
  }
}

TEST_CASE("validation split keeps (cell line, pert) groups whole", "[calibration][split]") {
  const SplitData d = load_split(synthpert::test::perturbqa_dir(), parse_split("default:k562"));
  std::vector<Row> train, val;
  split_validation(d.train, 0.1, 4, train, val);
  REQUIRE(train.size() + val.size() == d.train.size());
  std::set<std::string> val_groups, train_groups;
  for (const auto& r : val) val_groups.insert(r.cell_type + " " + r.pert);
  for (const auto& r : train) train_groups.insert(r.cell_type + " " + r.pert);
  for (const auto& g : val_groups) CHECK(train_groups.count(g) == 0);
  const double share = static_cast<double>(val_groups.size()) / static_cast<double>(val_groups.size() + train_groups.size());
  CHECK(share > 0.06);
  CHECK(share < 0.14);
  // Deterministic, order preserved, and nothing held out at fraction 0.
  std::vector<Row> train2, val2;
  split_validation(d.train, 0.1, 4, train2, val2);
  REQUIRE(val2.size() == val.size());
  for (size_t i = 0; i < val.size(); i += 101) CHECK((val2[i].pert == val[i].pert && val2[i].gene == val[i].gene));
  split_validation(d.train, 0.0, 4, train2, val2);
  CHECK(val2.empty());
  CHECK_THROWS_WITH(split_validation(d.train, 1.0, 4, train2, val2), Catch::Contains("[0, 1)"));
}

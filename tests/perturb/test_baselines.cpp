// Baselines reproduce the published reference numbers on the real data, and each
// baseline follows its definition on a hand-made set.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "perturb/baselines.h"
#include "perturb/split.h"
#include "tests/test_util.h"

using namespace synthpert;
using namespace synthpert::perturb;

namespace {

nlohmann::json baseline_metrics(const std::string& split, const std::string& name) {
  const SplitSpec spec = parse_split(split);
  const SplitData d = load_split(test::perturbqa_dir(), spec);
  MetricsOptions opts;
  opts.bootstrap = 0;
  opts.per_cell_type = false;
  return compute_metrics(run_baseline(name, d.train, d.test, spec.holdout), opts);
}

}  // namespace

TEST_CASE("gene-majority reproduces the reference numbers", "[baselines]") {
  const auto holdout = baseline_metrics("holdout:rpe1", "gene_majority");
  CHECK(holdout["accuracy"].get<double>() == Approx(0.911).margin(0.001));
  CHECK(holdout["macro_f1"].get<double>() == Approx(0.690).margin(0.001));
  const auto def = baseline_metrics("default:rpe1", "gene_majority");
  CHECK(def["accuracy"].get<double>() == Approx(0.942).margin(0.001));
  CHECK(def["macro_f1"].get<double>() == Approx(0.812).margin(0.001));
  // A constant answer on held-out RPE1: the share of NDE rows (160,437 of 187,089).
  const auto maj = baseline_metrics("holdout:rpe1", "majority");
  CHECK(maj["accuracy"].get<double>() == Approx(160437.0 / 187089.0).epsilon(1e-12));
}

TEST_CASE("baselines follow their definitions", "[baselines]") {
  auto row = [](const char* cell, const char* pert, const char* gene, Label l) {
    return Row{cell, pert, gene, l, false, {}};
  };
  const std::vector<Row> train = {
      row("k562", "A", "G1", Label::kUp),   row("k562", "B", "G1", Label::kUp),
      row("k562", "C", "G1", Label::kNde),  row("hepg2", "A", "G2", Label::kDown),
      row("hepg2", "B", "G2", Label::kNde), row("hepg2", "C", "G2", Label::kNde),
      row("k562", "D", "G3", Label::kDown), row("hepg2", "D", "G3", Label::kDown),
  };
  const std::vector<Row> test = {row("rpe1", "A", "G2", Label::kDown), row("rpe1", "B", "G1", Label::kUp),
                                 row("rpe1", "Z", "G9", Label::kNde), row("rpe1", "D", "G3", Label::kDown)};
  const auto maj = run_baseline("majority", train, test, true);
  for (const auto& p : maj) CHECK(*p.prediction == Label::kNde);  // 3 NDE vs 3 down vs 2 up: tie goes to NDE
  const auto gm = run_baseline("gene_majority", train, test, true);
  CHECK(*gm[0].prediction == Label::kNde);   // G2: 2 NDE, 1 down
  CHECK(*gm[1].prediction == Label::kUp);    // G1: 2 up, 1 NDE
  CHECK(*gm[2].prediction == Label::kNde);   // unseen gene
  CHECK((*gm[1].probs)[label_index(Label::kUp)] == Approx(2.0 / 3));
  const auto pt = run_baseline("pair_transfer", train, test, true);
  CHECK(*pt[0].prediction == Label::kDown);  // (A, G2) was down in hepg2
  CHECK(*pt[1].prediction == Label::kUp);    // (B, G1) was up in k562
  CHECK(*pt[2].prediction == Label::kNde);   // no pair, unseen gene
  CHECK(*pt[3].prediction == Label::kDown);
  CHECK_THROWS_AS(run_baseline("oracle", train, test, true), InputError);

  // A default:CELL split: the pair is looked up in the other cell lines' rows,
  // which are not part of the split's training rows.
  const std::vector<Row> own = {row("rpe1", "X", "G5", Label::kNde), row("rpe1", "Y", "G5", Label::kNde)};
  const std::vector<Row> others = {row("k562", "A", "G5", Label::kUp), row("rpe1", "A", "G5", Label::kDown)};
  const std::vector<Row> own_test = {row("rpe1", "A", "G5", Label::kUp)};
  CHECK(*run_baseline("pair_transfer", own, own_test, false)[0].prediction == Label::kNde);
  CHECK(*run_baseline("pair_transfer", own, own_test, false, others)[0].prediction == Label::kUp);
  CHECK(*run_baseline("gene_majority", own, own_test, false, others)[0].prediction == Label::kNde);
}

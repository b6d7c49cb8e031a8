// Baselines reproduce the published reference numbers on the real data, and each
// baseline follows its definition on a hand-made set.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "perturb/baselines.h"
#include "perturb/evidence.h"
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

TEST_CASE("training rows are scored out of fold: a row never reads its own pert's rows in its line", "[baselines]") {
  auto row = [](const char* cell, const char* pert, const char* gene, Label l) {
    return Row{cell, pert, gene, l, false, {}};
  };
  // Fitted on itself, gene_majority would answer this lone row with its own label.
  const std::vector<Row> lone = {row("k562", "A", "G9", Label::kUp), row("k562", "B", "G1", Label::kNde)};
  REQUIRE(OutcomeProfile::pert_fold("A") != OutcomeProfile::pert_fold("B"));
  CHECK(*run_baseline("gene_majority", lone, lone, false)[0].prediction == Label::kUp);
  const auto oof = run_baseline("gene_majority", lone, lone, false, {}, true);
  CHECK(*oof[0].prediction == Label::kNde);  // G9 has no rows outside A's fold: unseen
  CHECK((*oof[0].probs)[label_index(Label::kNde)] == 1.0);  // B's row is all the overall counts hold

  // On real data, against a brute-force recount over the rows outside the
  // row's (cell line, pert fold).
  for (const std::string split : {"default:k562", "holdout:rpe1"}) {
    INFO(split);
    const SplitData d = load_split(test::perturbqa_dir(), parse_split(split));
    const SplitPart part = select_part(d, "train", 0.0, 0);
    REQUIRE(part.fit == SplitPart::Fit::kOutOfFold);
    REQUIRE(part.rows.size() == d.train.size());
    const auto rows = subsample(part.rows, split == "holdout:rpe1" ? 0.0002 : 0.001, 7);
    REQUIRE(rows.size() > 50);
    const auto maj = run_part_baseline("majority", d, part, rows);
    const auto gm = run_part_baseline("gene_majority", d, part, rows);
    const auto pt = run_part_baseline("pair_transfer", d, part, rows);
    const auto pt_all = run_baseline("pair_transfer", d.train, rows, d.holdout, d.other_train);
    int64_t own_label_gone = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& t = rows[i];
      std::array<double, 3> all{}, gene{}, gene_in_sample{};
      bool pair_elsewhere = false;
      for (const auto* source : {&d.train, &d.other_train})
        for (const auto& r : *source) pair_elsewhere |= r.pert == t.pert && r.gene == t.gene && r.cell_type != t.cell_type;
      for (const auto& r : part.fit_rows) {
        const bool same_gene = r.gene == t.gene && (d.holdout || r.cell_type == t.cell_type);
        if (same_gene) gene_in_sample[label_index(r.label)] += 1;
        if (r.cell_type == t.cell_type && OutcomeProfile::pert_fold(r.pert) == OutcomeProfile::pert_fold(t.pert)) continue;
        all[label_index(r.label)] += 1;
        if (same_gene) gene[label_index(r.label)] += 1;
      }
      auto share = [](const std::array<double, 3>& c, Label l) { return c[label_index(l)] / (c[0] + c[1] + c[2]); };
      const double n_gene = gene[0] + gene[1] + gene[2];
      for (Label l : kAllLabels) {
        CHECK((*maj[i].probs)[label_index(l)] == Approx(share(all, l)).epsilon(1e-12));
        CHECK((*gm[i].probs)[label_index(l)] == Approx(n_gene > 0 ? share(gene, l) : share(all, l)).epsilon(1e-12));
      }
      // The row's own label left the counts it is scored by.
      own_label_gone += gene_in_sample[label_index(t.label)] > gene[label_index(t.label)];
      // pair_transfer reads other lines in full, as for a test row; only its gene fallback is out of fold.
      CHECK(pt[i].probs == (pair_elsewhere ? pt_all[i].probs : gm[i].probs));
    }
    CHECK(own_label_gone == static_cast<int64_t>(rows.size()));
  }
}

TEST_CASE("validation rows are scored by baselines fitted without the validation groups", "[baselines]") {
  const SplitData d = load_split(test::perturbqa_dir(), parse_split("default:k562"));
  const SplitPart val = select_part(d, "val", 0.1, 4);
  REQUIRE(val.fit == SplitPart::Fit::kOthers);
  std::vector<Row> pool, held;
  split_validation(d.train, 0.1, 4, pool, held);
  REQUIRE(val.rows.size() == held.size());
  REQUIRE(val.fit_rows.size() == pool.size());
  const auto got = run_part_baseline("gene_majority", d, val, val.rows);
  const auto want = run_baseline("gene_majority", pool, held, false, d.other_train);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); i += 97) CHECK(got[i].probs == want[i].probs);
  CHECK_THAT(part_baseline_fit(val), Catch::Contains("outside the validation groups"));
  CHECK_THAT(part_baseline_fit(select_part(d, "train", 0.1, 4)), Catch::Contains("out of fold"));
}

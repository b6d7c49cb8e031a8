#include <catch2/catch.hpp>
#include <algorithm>

#include "perturb/evidence.h"
#include "perturb/prompt.h"
#include "perturb/split.h"
#include "tests/test_util.h"

using namespace synthpert::perturb;

namespace {
Row row(const char* cell, const char* pert, const char* gene, Label l) { return Row{cell, pert, gene, l, false, "", "", ""}; }
}  // namespace

TEST_CASE("evidence lists the pair's outcomes in other cell lines only", "[evidence]") {
  PairEvidence ev;
  ev.add({row("k562", "A", "G", Label::kNde), row("hepg2", "A", "G", Label::kUp), row("jurkat", "A", "G", Label::kDown),
          row("k562", "B", "G", Label::kUp)});
  CHECK(ev.describe(row("rpe1", "A", "G", Label::kNde)) == "up down nde");  // sorted up, down, nde
  CHECK(ev.describe(row("k562", "A", "G", Label::kNde)) == "up down");      // never its own line
  CHECK(ev.describe(row("k562", "B", "G", Label::kNde)) == "none");         // measured only in its own line
  CHECK(ev.describe(row("rpe1", "C", "G", Label::kNde)) == "none");         // measured nowhere
}

TEST_CASE("{evidence} renders what was attached, 'none' otherwise", "[evidence][prompt]") {
  const auto t = PromptTemplate::load("compact-evidence");
  CHECK(t.uses_evidence());
  CHECK_FALSE(PromptTemplate::load("compact").uses_evidence());
  CHECK(t.render_user("rpe1", "A", "G", "up nde") == "rpe1 A G | up nde ->");
  CHECK(t.render_user("rpe1", "A", "G") == "rpe1 A G | none ->");
}

TEST_CASE("held-out rows get evidence from the training cell lines", "[evidence]") {
  const SplitData d = load_split(synthpert::test::perturbqa_dir(), parse_split("holdout:rpe1"));
  std::vector<Row> test(d.test.begin(), d.test.begin() + 2000);
  attach_split_evidence(d, test);
  // Independent count: the same pair among the training rows, by brute force.
  for (size_t i = 0; i < test.size(); i += 97) {
    int n = 0;
    for (const auto& r : d.train) n += r.pert == test[i].pert && r.gene == test[i].gene;
    const auto& e = test[i].evidence;
    const int words = e == "none" ? 0 : 1 + static_cast<int>(std::count(e.begin(), e.end(), ' '));
    INFO(test[i].pert << " " << test[i].gene << ": " << e);
    CHECK(words == n);
  }
}

TEST_CASE("pert effect: DE and up shares of the pert in other cell lines, bucketed", "[evidence]") {
  std::vector<Row> rows;
  // Pert A in hepg2: 10 rows, 2 DE of which 1 up (DE share 0.2, up share 0.5);
  // in k562: 10 rows, all DE and up (never seen by a k562 row).
  for (int i = 0; i < 10; ++i) {
    const Label l = i == 0 ? Label::kUp : i == 1 ? Label::kDown : Label::kNde;
    rows.push_back(row("hepg2", "A", ("G" + std::to_string(i)).c_str(), l));
    rows.push_back(row("k562", "A", ("G" + std::to_string(i)).c_str(), Label::kUp));
  }
  rows.push_back(row("k562", "B", "G0", Label::kNde));
  auto p = OutcomeProfile::pert_effect();
  p.add(rows);
  CHECK(p.describe(row("k562", "A", "X", Label::kNde)) == "de7 up2");   // hepg2 only: 0.2 >= 0.19, 0.5 in [0.4, 0.6)
  CHECK(p.describe(row("rpe1", "A", "X", Label::kNde)) == "de7 up4");   // both lines: 12/20 DE, 11/12 up
  CHECK(p.describe(row("hepg2", "B", "X", Label::kNde)) == "de0");      // measured, nothing DE: no up word
  CHECK(p.describe(row("k562", "B", "X", Label::kNde)) == "none");      // only its own line
  CHECK(p.describe(row("rpe1", "C", "X", Label::kNde)) == "none");
  CHECK(p.de_bucket(0.0) == 0);
  CHECK(p.de_bucket(0.039) == 0);
  CHECK(p.de_bucket(0.04) == 1);
  CHECK(p.de_bucket(0.14) == 4);
  CHECK(p.up_bucket(1.0) == 4);
  CHECK(p.up_bucket(0.19) == 0);
}

TEST_CASE("gene profile: the target gene's DE and up shares in other cell lines", "[evidence]") {
  std::vector<Row> rows;
  // Gene G in jurkat: 4 perts, 3 DE (2 up); in k562: 1 pert, NDE.
  for (int i = 0; i < 4; ++i)
    rows.push_back(row("jurkat", ("P" + std::to_string(i)).c_str(), "G", i == 0 ? Label::kNde : i == 1 ? Label::kDown : Label::kUp));
  rows.push_back(row("k562", "P0", "G", Label::kNde));
  auto g = OutcomeProfile::gene_profile();
  g.add(rows);
  CHECK(g.describe(row("k562", "Q", "G", Label::kNde)) == "gde16 gup6");  // jurkat: 0.75 DE, 2/3 up
  CHECK(g.describe(row("rpe1", "Q", "G", Label::kNde)) == "gde13 gup6");  // 3/5 = 0.6 DE, 2/3 up
  CHECK(g.describe(row("jurkat", "Q", "G", Label::kNde)) == "gde0");     // k562 only: never DE
  CHECK(g.describe(row("rpe1", "Q", "H", Label::kNde)) == "none");
  CHECK(g.de_bucket(0.0) == 0);
  CHECK(g.de_bucket(0.009) == 1);
  CHECK(g.de_bucket(0.049) == 1);
  CHECK(g.de_bucket(0.75) == 16);
  CHECK(g.de_bucket(1.0) == 20);
  CHECK(g.up_bucket(0.0) == 0);
  CHECK(g.up_bucket(1.0) == 9);
}

TEST_CASE("{pert_effect} renders in compact-context; held-out rows get it from training lines", "[evidence][prompt]") {
  const auto t = PromptTemplate::load("compact-context");
  CHECK(t.uses_evidence());
  CHECK(t.render_user("rpe1", "A", "G", "up", "de3 up1", "gde0") == "rpe1 A G | up | de3 up1 | gde0 ->");
  CHECK(t.render_user("rpe1", "A", "G") == "rpe1 A G | none | none | none ->");

  const SplitData d = load_split(synthpert::test::perturbqa_dir(), parse_split("holdout:rpe1"));
  std::vector<Row> test(d.test.begin(), d.test.begin() + 3000);
  attach_split_evidence(d, test);
  const auto p = OutcomeProfile::pert_effect(), g = OutcomeProfile::gene_profile();
  // Independent recount, straight from the training rows whose pert (or gene)
  // matches, of the words the profile should write.
  auto recount = [&](const OutcomeProfile& prof, const std::string& prefix, auto matches) {
    int64_t n = 0, de = 0, up = 0;
    for (const auto& r : d.train)
      if (matches(r)) n += 1, de += r.label != Label::kNde, up += r.label == Label::kUp;
    if (n == 0) return std::string("none");
    std::string want = prefix + "de" + std::to_string(prof.de_bucket(double(de) / double(n)));
    if (de > 0) want += " " + prefix + "up" + std::to_string(prof.up_bucket(double(up) / double(de)));
    return want;
  };
  int measured = 0;
  for (size_t i = 0; i < test.size(); i += 293) {
    const Row& t = test[i];
    INFO(t.pert << " " << t.gene << ": " << t.pert_effect << " / " << t.gene_profile);
    const std::string want = recount(p, "", [&](const Row& r) { return r.pert == t.pert; });
    measured += want != "none";
    CHECK(t.pert_effect == want);
    CHECK(t.gene_profile == recount(g, "g", [&](const Row& r) { return r.gene == t.gene; }));
  }
  CHECK(measured > 5);
}

#include <catch2/catch.hpp>
#include <algorithm>

#include "perturb/evidence.h"
#include "perturb/prompt.h"
#include "perturb/split.h"
#include "tests/test_util.h"

using namespace synthpert::perturb;

namespace {
Row row(const char* cell, const char* pert, const char* gene, Label l) { return Row{cell, pert, gene, l, false, ""}; }
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

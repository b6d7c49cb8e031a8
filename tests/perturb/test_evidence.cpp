#include <catch2/catch.hpp>
#include <algorithm>
#include <map>
#include <set>

#include "perturb/evidence.h"
#include "perturb/prompt.h"
#include "perturb/split.h"
#include "tests/test_util.h"

using namespace synthpert::perturb;

namespace {
Row row(const char* cell, const char* pert, const char* gene, Label l) { return Row{cell, pert, gene, l, false, {}}; }

// Independent recount of the words a profile should write, straight from the
// training rows that `matches` selects.
template <typename Matches>
std::string recount(const OutcomeProfile& prof, const std::string& prefix, const std::vector<Row>& train,
                    Matches matches) {
  int64_t n = 0, de = 0, up = 0;
  for (const auto& r : train)
    if (matches(r)) n += 1, de += r.label != Label::kNde, up += r.label == Label::kUp;
  if (n == 0) return "none";
  std::string want = prefix + "de" + std::to_string(prof.de_bucket(double(de) / double(n)));
  if (de > 0) want += " " + prefix + "up" + std::to_string(prof.up_bucket(double(up) / double(de)));
  return want;
}

// Pert names P0, P1, ... of two hash folds, three each (fold a, fold b), and
// rows of gene G over them: k562 fold a all up; k562 fold b one down, two NDE;
// one HepG2 row (fold_b[0], up).
struct FoldFixture {
  std::vector<std::string> fold_a, fold_b;
  std::vector<Row> rows;
  FoldFixture() {
    std::map<int, std::vector<std::string>> by_fold;
    std::vector<int> full;
    for (int i = 0; full.size() < 2; ++i) {
      const std::string p = "P" + std::to_string(i);
      auto& names = by_fold[OutcomeProfile::pert_fold(p)];
      if (names.size() == 3) continue;
      names.push_back(p);
      if (names.size() == 3) full.push_back(OutcomeProfile::pert_fold(p));
    }
    fold_a = by_fold[full[0]];
    fold_b = by_fold[full[1]];
    for (const auto& p : fold_a) rows.push_back(row("k562", p.c_str(), "G", Label::kUp));
    rows.push_back(row("k562", fold_b[0].c_str(), "G", Label::kDown));
    rows.push_back(row("k562", fold_b[1].c_str(), "G", Label::kNde));
    rows.push_back(row("k562", fold_b[2].c_str(), "G", Label::kNde));
    rows.push_back(row("hepg2", fold_b[0].c_str(), "G", Label::kUp));
  }
};
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
  CHECK(t.render_user("rpe1", "A", "G", RowContext{"up nde", "", "", "", "", ""}) == "rpe1 A G | up nde ->");
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
    const auto& e = test[i].context.evidence;
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
  CHECK(t.render_user("rpe1", "A", "G", RowContext{"up", "de3 up1", "gde0", "", "", ""}) == "rpe1 A G | up | de3 up1 | gde0 ->");
  CHECK(t.render_user("rpe1", "A", "G") == "rpe1 A G | none | none | none ->");

  const SplitData d = load_split(synthpert::test::perturbqa_dir(), parse_split("holdout:rpe1"));
  std::vector<Row> test(d.test.begin(), d.test.begin() + 3000);
  attach_split_evidence(d, test);
  const auto p = OutcomeProfile::pert_effect(), g = OutcomeProfile::gene_profile();
  // Recounted from the training rows whose pert (or gene) matches.
  int measured = 0;
  for (size_t i = 0; i < test.size(); i += 293) {
    const Row& t = test[i];
    INFO(t.pert << " " << t.gene << ": " << t.context.pert_effect << " / " << t.context.gene_profile);
    const std::string want = recount(p, "", d.train, [&](const Row& r) { return r.pert == t.pert; });
    measured += want != "none";
    CHECK(t.context.pert_effect == want);
    CHECK(t.context.gene_profile == recount(g, "g", d.train, [&](const Row& r) { return r.gene == t.gene; }));
  }
  CHECK(measured > 5);
}

TEST_CASE("gene here: the gene's shares in its own line, over perts of other folds only", "[evidence]") {
  const FoldFixture fx;
  const auto& fold_a = fx.fold_a;
  const auto& fold_b = fx.fold_b;
  const auto& rows = fx.rows;  // the HepG2 row is another line: never counted for k562
  auto h = OutcomeProfile::gene_here();
  h.add(rows);
  // A fold-a row sees only fold b: 1/3 DE, 0 up. Every fold-a row reads the
  // same whatever its own label, so the words cannot leak it.
  for (const auto& p : fold_a) CHECK(h.describe(row("k562", p.c_str(), "G", Label::kUp)) == "hde7 hup0");
  // A fold-b row sees only fold a: all DE, all up.
  CHECK(h.describe(row("k562", fold_b[1].c_str(), "G", Label::kNde)) == "hde20 hup9");
  // A pert without training rows in the line (a test row's) reads every fold:
  // 4 of 6 DE (bucket 14: 0.667 >= 0.65), 3 of 4 up (bucket 7).
  CHECK(h.describe(row("k562", "Q", "G", Label::kNde)) == "hde14 hup7");
  CHECK(h.describe(row("rpe1", "Q", "G", Label::kNde)) == "none");     // no rows of G in rpe1
  // HepG2 has one row of G, under fold_b[0]: that pert's rows leave it out; any
  // other pert (untrained in HepG2) reads it, and never k562's rows.
  CHECK(h.describe(row("hepg2", fold_b[0].c_str(), "G", Label::kNde)) == "none");
  CHECK(h.describe(row("hepg2", fold_b[1].c_str(), "G", Label::kNde)) == "hde20 hup9");
  // The hash spreads names over the folds (each about a fifth of 5000).
  std::vector<int> per_fold(OutcomeProfile::kFolds);
  for (int i = 0; i < 5000; ++i) ++per_fold[OutcomeProfile::pert_fold("GENE" + std::to_string(i))];
  for (int n : per_fold) CHECK((n > 850 && n < 1150));
  const auto t = PromptTemplate::load("compact-here");
  CHECK(t.uses_evidence());
  CHECK(t.render_user("k562", "A", "G", RowContext{"up", "", "", "hde7 hup0", "", ""}) ==
        "k562 A G | up | hde7 hup0 ->");
  CHECK(t.render_user("k562", "A", "G") == "k562 A G | none | none ->");
}

TEST_CASE("{gene_here} on a default split: recounted from the line's training rows; never on holdout", "[evidence]") {
  const SplitData d = load_split(synthpert::test::perturbqa_dir(), parse_split("default:rpe1"));
  std::vector<Row> test(d.test.begin(), d.test.begin() + 3000), train(d.train.begin(), d.train.begin() + 3000);
  attach_split_evidence(d, test);
  attach_split_evidence(d, train);
  const auto h = OutcomeProfile::gene_here();
  // Recounted over the rpe1 training rows of the same gene: those whose pert
  // hashes to another fold, or all of them for a pert with no training rows
  // (every test row's, as PerturbQA splits by perturbation).
  std::set<std::string> trained;
  for (const auto& r : d.train) trained.insert(r.pert);
  auto recount_here = [&](const Row& t) {
    const bool oof = trained.count(t.pert) > 0;
    return recount(h, "h", d.train, [&](const Row& r) {
      return r.gene == t.gene && r.cell_type == t.cell_type &&
             (!oof || OutcomeProfile::pert_fold(r.pert) != OutcomeProfile::pert_fold(t.pert));
    });
  };
  // Every test row of one gene reads the same words, whatever its pert's fold.
  std::map<std::string, std::string> words_of_gene;
  for (const auto& t : test) {
    REQUIRE(trained.count(t.pert) == 0);
    CHECK(words_of_gene.emplace(t.gene, t.context.gene_here).first->second == t.context.gene_here);
  }
  int de_seen = 0;
  for (const auto* rows : {&test, &train})
    for (size_t i = 0; i < rows->size(); i += 197) {
      const Row& t = (*rows)[i];
      INFO(t.cell_type << " " << t.pert << " " << t.gene << ": " << t.context.gene_here);
      CHECK(t.context.gene_here == recount_here(t));
      de_seen += t.context.gene_here.rfind("hde0", 0) != 0;
    }
  CHECK(de_seen > 3);

  const SplitData ho = load_split(synthpert::test::perturbqa_dir(), parse_split("holdout:rpe1"));
  std::vector<Row> ho_train(ho.train.begin(), ho.train.begin() + 500);
  attach_split_evidence(ho, ho_train);
  for (const auto& r : ho_train) REQUIRE(r.context.gene_here.empty());
}

TEST_CASE("gene all: the gene's shares over every line, its own line by the fold rule", "[evidence]") {
  const FoldFixture fx;
  const auto& fold_a = fx.fold_a;
  const auto& fold_b = fx.fold_b;
  const auto& rows = fx.rows;
  auto a = OutcomeProfile::gene_all();
  a.add(rows);
  // A fold-a k562 row: k562 fold b (1 down, 2 nde) and all of hepg2 (1 up):
  // 2 of 4 DE (bucket 11: 0.5 >= 0.5), 1 of 2 up (bucket 5).
  for (const auto& p : fold_a) CHECK(a.describe(row("k562", p.c_str(), "G", Label::kUp)) == "ade11 aup5");
  // A fold-b k562 row: k562 fold a and hepg2, 4 of 4 up, whatever its own label.
  CHECK(a.describe(row("k562", fold_b[1].c_str(), "G", Label::kNde)) == "ade20 aup9");
  CHECK(a.describe(row("k562", fold_b[0].c_str(), "G", Label::kDown)) == "ade20 aup9");
  // A held-out line's row reads every row: 5 of 7 DE (bucket 15), 4 of 5 up (bucket 8).
  CHECK(a.describe(row("rpe1", "Q", "G", Label::kNde)) == "ade15 aup8");
  // A HepG2 row of fold_b[0] leaves out HepG2's fold b, not k562's rows:
  // 4 of 6 DE (bucket 14), 3 of 4 up (bucket 7).
  CHECK(a.describe(row("hepg2", fold_b[0].c_str(), "G", Label::kUp)) == "ade14 aup7");
  CHECK(a.describe(row("rpe1", "Q", "H", Label::kNde)) == "none");
  const auto t = PromptTemplate::load("compact-all");
  CHECK(t.uses_evidence());
  CHECK(t.render_user("rpe1", "A", "G", RowContext{"up", "", "", "", "ade3 aup1", ""}) == "rpe1 A G | up | none | ade3 aup1 ->");
}

TEST_CASE("{gene_all} on holdout:rpe1: held-out rows read every training line, training rows all but their fold",
          "[evidence]") {
  const SplitData d = load_split(synthpert::test::perturbqa_dir(), parse_split("holdout:rpe1"));
  std::vector<Row> test(d.test.begin(), d.test.begin() + 3000);
  std::vector<Row> train;
  for (size_t i = 0; i < d.train.size(); i += 4001) train.push_back(d.train[i]);  // every training line
  attach_split_evidence(d, test);
  attach_split_evidence(d, train);
  const auto a = OutcomeProfile::gene_all();
  std::map<std::string, std::string> words_of_gene;
  int de_seen = 0;
  for (size_t i = 0; i < test.size(); ++i) {
    const Row& t = test[i];
    CHECK(words_of_gene.emplace(t.gene, t.context.gene_all).first->second == t.context.gene_all);
    if (i % 197) continue;
    INFO(t.pert << " " << t.gene << ": " << t.context.gene_all);
    CHECK(t.context.gene_all == recount(a, "a", d.train, [&](const Row& r) { return r.gene == t.gene; }));
    de_seen += t.context.gene_all.rfind("ade0", 0) != 0;
  }
  CHECK(de_seen > 3);
  std::set<std::string> lines;
  for (const Row& t : train) {
    INFO(t.cell_type << " " << t.pert << " " << t.gene << ": " << t.context.gene_all);
    lines.insert(t.cell_type);
    CHECK(t.context.gene_all == recount(a, "a", d.train, [&](const Row& r) {
            return r.gene == t.gene &&
                   (r.cell_type != t.cell_type || OutcomeProfile::pert_fold(r.pert) != OutcomeProfile::pert_fold(t.pert));
          }));
  }
  CHECK(lines.size() == 3);
}

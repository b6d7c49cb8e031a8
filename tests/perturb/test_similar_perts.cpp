#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "perturb/evidence.h"
#include "perturb/prompt.h"
#include "perturb/similar_perts.h"
#include "perturb/split.h"
#include "tests/test_util.h"

using namespace synthpert::perturb;

namespace {
Row row(const std::string& cell, const std::string& pert, const std::string& gene, Label l) {
  return Row{cell, pert, gene, l, false, {}};
}

// DE rows of `pert` in `cell` on genes g<first>..g<last>.
void de_rows(std::vector<Row>& rows, const std::string& cell, const std::string& pert, int first, int last) {
  for (int i = first; i <= last; ++i) rows.push_back(row(cell, pert, "g" + std::to_string(i), Label::kUp));
}

// The words by brute force: Jaccard over std::sets of (line, gene) DE pairs
// outside the row's line, every pert with training rows in the line but the
// row's own, best 50 by (index, name); then the bucket rules of the header.
struct BruteForce {
  struct Line {
    std::map<std::string, std::set<std::string>> de;           // pert -> "line\tgene" DE outside the line
    std::set<std::string> perts;                               // perts with training rows in the line
    std::map<std::string, std::map<std::string, Label>> outcome;  // gene -> pert -> label in the line
  };
  const std::vector<Row>& train;
  std::map<std::string, Line> lines;
  const Line& line(const std::string& cell) {
    auto [it, fresh] = lines.try_emplace(cell);
    if (fresh)
      for (const auto& r : train) {
        if (r.cell_type == cell) {
          it->second.perts.insert(r.pert);
          it->second.outcome[r.gene][r.pert] = r.label;
        } else if (r.label != Label::kNde) {
          it->second.de[r.pert].insert(r.cell_type + "\t" + r.gene);
        }
      }
    return it->second;
  }
  std::string words(const Row& t);
};

std::string BruteForce::words(const Row& t) {
  const Line& l = line(t.cell_type);
  static const std::set<std::string> kNone;
  static const std::map<std::string, Label> kNoOutcomes;
  auto find_de = [&](const std::string& p) -> const std::set<std::string>& {
    auto it = l.de.find(p);
    return it == l.de.end() ? kNone : it->second;
  };
  const auto git = l.outcome.find(t.gene);
  const auto& on_gene = git == l.outcome.end() ? kNoOutcomes : git->second;
  const auto& mine = find_de(t.pert);
  std::vector<std::pair<double, std::string>> scored;
  for (const auto& q : l.perts) {
    if (q == t.pert) continue;
    const auto& theirs = find_de(q);
    size_t both = 0;
    for (const auto& x : mine) both += theirs.count(x);
    if (both == 0) continue;
    scored.emplace_back(-double(both) / double(mine.size() + theirs.size() - both), q);
  }
  std::sort(scored.begin(), scored.end());
  int n = 0, n_de = 0, n_up = 0;
  for (size_t i = 0; i < scored.size() && i < 50; ++i) {
    auto it = on_gene.find(scored[i].second);
    if (it == on_gene.end()) continue;
    ++n;
    n_de += it->second != Label::kNde;
    n_up += it->second == Label::kUp;
  }
  if (n == 0) return "";
  const int count = n >= 9 ? 5 : n >= 5 ? 4 : n >= 3 ? 3 : n;
  const double share = double(n_de) / n;
  int de_step = 0;
  while (de_step < 10 && share > de_step / 10.0 + 1e-12) ++de_step;  // smallest K with share <= K/10
  std::string w = "sn" + std::to_string(count) + " sde" + std::to_string(de_step);
  if (n_de > 0) {
    int up_step = 0;
    while (up_step < 4 && double(n_up) / n_de >= (up_step + 1) / 5.0 - 1e-12) ++up_step;
    w += " sup" + std::to_string(up_step);
  }
  return w;
}
}  // namespace

TEST_CASE("similar perts: Jaccard over other lines' DE pairs, own pert and own line left out", "[similar]") {
  std::vector<Row> rows;
  // Profiles in HepG2 (another line for k562 rows): B equals A, C shares 2 of
  // A's 4 DE genes (index 2/4), D shares none; E is DE on A's genes in k562
  // only, which never counts for a k562 row.
  de_rows(rows, "hepg2", "A", 1, 4);
  de_rows(rows, "hepg2", "B", 1, 4);
  de_rows(rows, "hepg2", "C", 1, 2);
  de_rows(rows, "hepg2", "D", 9, 9);
  de_rows(rows, "hepg2", "Q", 1, 4);  // a pert with no k562 training rows (a test pert there)
  de_rows(rows, "k562", "E", 1, 4);
  rows.push_back(row("hepg2", "E", "g7", Label::kNde));
  // k562 outcomes on gene G.
  rows.push_back(row("k562", "A", "G", Label::kDown));
  rows.push_back(row("k562", "B", "G", Label::kUp));
  rows.push_back(row("k562", "C", "G", Label::kNde));
  rows.push_back(row("k562", "D", "G", Label::kDown));
  rows.push_back(row("k562", "E", "G", Label::kDown));
  SimilarPerts s;
  s.add(rows);
  // A's neighbours: B (1.0), C (0.5); D and E share nothing outside k562; never A.
  CHECK(s.neighbours("k562", "A") == std::vector<std::string>{"B", "C"});
  // Measured on G: B up, C nde -> 2 rows, half DE, all of those up. A's own
  // label (down) is not among them, whatever it is.
  CHECK(s.describe(row("k562", "A", "G", Label::kDown)) == "sn2 sde5 sup4");
  CHECK(s.describe(row("k562", "A", "G", Label::kNde)) == "sn2 sde5 sup4");
  // A test pert reads every trained pert of the line, A included: A and B tie
  // at 1.0 (by name), then C. Down, up, nde: 3 rows, 2/3 DE (step 7), 1/2 up (step 2).
  CHECK(s.neighbours("k562", "Q") == std::vector<std::string>{"A", "B", "C"});
  CHECK(s.describe(row("k562", "Q", "G", Label::kNde)) == "sn3 sde7 sup2");
  // No neighbour measured on the gene, unknown pert, unknown line: "".
  CHECK(s.describe(row("k562", "A", "H", Label::kNde)).empty());
  CHECK(s.describe(row("k562", "Z", "G", Label::kNde)).empty());
  CHECK(s.describe(row("rpe1", "A", "G", Label::kNde)).empty());
  // A HepG2 row reads k562 profiles, where A is DE on G only: B and D too
  // (index 1, by name), E on G and g1-g4 (1/5). C shares two HepG2 genes with
  // A but none in k562, so it is no neighbour there.
  CHECK(s.neighbours("hepg2", "A") == std::vector<std::string>{"B", "D", "E"});
  // The template writes "none" for an empty field.
  const auto t = PromptTemplate::load("compact-similar");
  CHECK(t.uses_evidence());
  RowContext c;
  c.gene_similar = "sn2 sde5 sup4";
  CHECK(t.render_user("k562", "A", "G", c) == "k562 A G | none | none | none | sn2 sde5 sup4 ->");
  CHECK(t.render_user("k562", "A", "G") == "k562 A G | none | none | none | none ->");
}

TEST_CASE("similar perts: at most 50 neighbours, ties by name; bucket steps", "[similar]") {
  std::vector<Row> rows;
  de_rows(rows, "jurkat", "P", 1, 3);
  for (int i = 0; i < 60; ++i) {
    const std::string q = "Q" + std::to_string(100 + i);
    de_rows(rows, "jurkat", q, 1, 3);
    rows.push_back(row("k562", q, "G", i < 45 ? Label::kNde : Label::kDown));
  }
  SimilarPerts s;
  s.add(rows);
  const auto n = s.neighbours("k562", "P");
  REQUIRE(n.size() == 50);
  CHECK(n.front() == "Q100");
  CHECK(n.back() == "Q149");
  // Of Q100..Q149 on G: 45 nde, 5 down -> 9+ rows, 10% DE (step 1), none up.
  CHECK(s.describe(row("k562", "P", "G", Label::kNde)) == "sn5 sde1 sup0");
  CHECK(SimilarPerts::count_bucket(1) == 1);
  CHECK(SimilarPerts::count_bucket(2) == 2);
  CHECK(SimilarPerts::count_bucket(4) == 3);
  CHECK(SimilarPerts::count_bucket(5) == 4);
  CHECK(SimilarPerts::count_bucket(8) == 4);
  CHECK(SimilarPerts::count_bucket(9) == 5);
  CHECK(SimilarPerts::de_bucket(0.0) == 0);
  CHECK(SimilarPerts::de_bucket(0.01) == 1);
  CHECK(SimilarPerts::de_bucket(0.1) == 1);
  CHECK(SimilarPerts::de_bucket(0.3) == 3);
  CHECK(SimilarPerts::de_bucket(0.31) == 4);
  CHECK(SimilarPerts::de_bucket(1.0 / 3) == 4);
  CHECK(SimilarPerts::de_bucket(0.7) == 7);
  CHECK(SimilarPerts::de_bucket(1.0) == 10);
  CHECK(SimilarPerts::up_bucket(0.0) == 0);
  CHECK(SimilarPerts::up_bucket(0.19) == 0);
  CHECK(SimilarPerts::up_bucket(0.2) == 1);
  CHECK(SimilarPerts::up_bucket(0.6) == 3);
  CHECK(SimilarPerts::up_bucket(1.0) == 4);
}

TEST_CASE("{gene_similar} on the default split equals a brute-force recount; empty on holdout", "[similar]") {
  const SplitData d = load_split(synthpert::test::perturbqa_dir(), parse_split("default"));
  std::vector<Row> test, train;
  for (size_t i = 0; i < d.test.size(); i += 2903) test.push_back(d.test[i]);     // every line
  for (size_t i = 0; i < d.train.size(); i += 11807) train.push_back(d.train[i]);
  attach_split_evidence(d, test);
  attach_split_evidence(d, train);
  BruteForce brute{d.train, {}};
  std::set<std::string> lines;
  int measured = 0;
  for (const auto* rows : {&test, &train})
    for (const Row& t : *rows) {
      INFO(t.cell_type << " " << t.pert << " " << t.gene << ": " << t.context.gene_similar);
      lines.insert(t.cell_type);
      CHECK(t.context.gene_similar == brute.words(t));
      measured += !t.context.gene_similar.empty();
    }
  CHECK(lines.size() == 4);
  CHECK(measured > 10);

  const SplitData ho = load_split(synthpert::test::perturbqa_dir(), parse_split("holdout:rpe1"));
  std::vector<Row> ho_rows(ho.train.begin(), ho.train.begin() + 300);
  ho_rows.insert(ho_rows.end(), ho.test.begin(), ho.test.begin() + 300);
  attach_split_evidence(ho, ho_rows);
  for (const auto& r : ho_rows) REQUIRE(r.context.gene_similar.empty());
}

// PerturbQA loading and splits: sizes and class counts of every split against an
// independent count straight from the CSVs (tests/reference/perturb/split_counts.py),
// and malformed files rejected with the file and line named.
#include <catch2/catch.hpp>
#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "perturb/split.h"
#include "tests/test_util.h"

using namespace synthpert;
using namespace synthpert::perturb;
using nlohmann::json;

namespace {

json class_counts(const std::vector<Row>& rows) {
  std::map<std::string, int64_t> c;
  for (const auto& r : rows) ++c[label_name(r.label)];
  return c;
}

}  // namespace

TEST_CASE("every split matches an independent count from the CSVs", "[data]") {
  const std::string dir = test::perturbqa_dir();
  const auto ref_run = test::run_command(SYNTHPERT_REFERENCE_PYTHON " " + std::string(SYNTHPERT_SOURCE_DIR) +
                                         "/tests/reference/perturb/split_counts.py " + dir);
  REQUIRE(ref_run.exit_code == 0);
  const json ref = json::parse(ref_run.out);
  for (const auto& cell : cell_lines()) {
    for (const std::string kind : {"default:", "holdout:"}) {
      const std::string name = kind + cell;
      INFO(name);
      const SplitData d = load_split(dir, parse_split(name));
      CHECK(class_counts(d.train) == ref[name]["train"]);
      CHECK(class_counts(d.test) == ref[name]["test"]);
    }
    CHECK(load_cell_line(dir, cell).inconsistent == ref["inconsistent"][cell].get<int64_t>());
  }
  // The headline split's size, as the PerturbQA README states it.
  CHECK(load_split(dir, parse_split("holdout:rpe1")).test.size() == 187089);
}

TEST_CASE("default covers the four cell lines' own train/test columns", "[data]") {
  const std::string dir = test::perturbqa_dir();
  const SplitData all = load_split(dir, parse_split("default"));
  size_t train = 0, test = 0;
  for (const auto& cell : cell_lines()) {
    const SplitData one = load_split(dir, parse_split("default:" + cell));
    train += one.train.size();
    test += one.test.size();
  }
  CHECK(all.train.size() == train);
  CHECK(all.test.size() == test);
  CHECK(all.other_train.empty());
  // default:CELL keeps the other cell lines' training rows apart, for pair_transfer.
  const SplitData one = load_split(dir, parse_split("default:rpe1"));
  CHECK(one.other_train.size() == all.train.size() - one.train.size());
  CHECK(std::count_if(one.other_train.begin(), one.other_train.end(),
                      [](const Row& r) { return r.cell_type == "rpe1" || r.test; }) == 0);
}

TEST_CASE("subsample is deterministic, seed-dependent and close to the fraction", "[data]") {
  std::vector<Row> rows;
  for (int i = 0; i < 20000; ++i) rows.push_back({"rpe1", "P" + std::to_string(i % 97), "G" + std::to_string(i), Label::kNde, false, {}});
  const auto a = subsample(rows, 0.1, 1), b = subsample(rows, 0.1, 1), c = subsample(rows, 0.1, 2);
  CHECK(a.size() == b.size());
  CHECK(a.size() > 1800);
  CHECK(a.size() < 2200);
  CHECK(a.front().gene == b.front().gene);
  bool differs = a.size() != c.size();
  for (size_t i = 0; !differs && i < a.size(); ++i) differs = a[i].gene != c[i].gene;
  CHECK(differs);
  // A row's fate does not depend on the other rows in the list.
  const std::vector<Row> half(rows.begin(), rows.begin() + 10000);
  size_t kept_in_half = 0;
  for (const auto& r : a) kept_in_half += std::stoi(r.gene.substr(1)) < 10000;
  CHECK(subsample(half, 0.1, 1).size() == kept_in_half);
  CHECK_THROWS_AS(subsample(rows, 0.0, 1), InputError);
  CHECK_THROWS_AS(subsample(rows, 1.5, 1), InputError);
}

TEST_CASE("split names are checked", "[data]") {
  CHECK(parse_split("holdout:rpe1").holdout);
  CHECK(parse_split("default:k562,jurkat").cells.size() == 2);
  for (const char* bad : {"holdout:hela", "default:", "random", "holdout:", "default:rpe1,k562,rpe1"}) {
    INFO(bad);
    CHECK_THROWS_AS(parse_split(bad), InputError);
  }
}

TEST_CASE("malformed CSVs are rejected naming the file and line", "[data]") {
  test::TempDir tmp("perturb-bad-csv");
  const std::string header = "pert,gene,label,split\n";
  auto write = [&](const std::string& name, const std::string& text) { std::ofstream(tmp.path + "/" + name) << text; };
  struct BadCase {
    std::string de, dir, expect;
  };
  const std::vector<BadCase> cases = {
      {"pert,gene,lbl,split\nA,B,0,train\n", header, "rpe1-de.csv:1: expected header"},
      {header + "A,B,2,train\n", header, "rpe1-de.csv:2: label must be 0 or 1"},
      {header + "A,B,0,train\nA,C,0\n", header, "rpe1-de.csv:3: expected 4 comma-separated fields"},
      {header + "A,B,0,valid\n", header, "rpe1-de.csv:2: split must be train or test"},
      {header + "A,B,0,train\nA,B,1,train\n", header, "rpe1-de.csv:3: duplicate pair A,B"},
      {header + ",B,0,train\n", header, "rpe1-de.csv:2: empty pert or gene"},
      // Quotes would stay in the name and silently miss the other files' spelling.
      {header + "A,B,0,train\n\"AARS\",A2M,0,train\n", header, "rpe1-de.csv:3: quoted field \"AARS\""},
      {header, header + "A,\"B\",1,train\n", "rpe1-dir.csv:2: quoted field \"B\""},
      {header, header + "A,B,x,train\n", "rpe1-dir.csv:2: label must be 0 or 1"},
      {"", header, "rpe1-de.csv: empty file"},
      {header + "A,B,0,train\nA\xff,B,0,train\n", header, "rpe1-de.csv:3: pert is not UTF-8 text"},
      {header, header + "A,B\xc3,1,train\n", "rpe1-dir.csv:2: gene is not UTF-8 text"},
      {header + "A ,B,0,train\n", header, "rpe1-de.csv:2: pert 'A ' has spaces around it"},
      {header + "A,\tB,0,train\n", header, "rpe1-de.csv:2: gene '\tB' has spaces around it"},
  };
  for (const auto& c : cases) {
    write("rpe1-de.csv", c.de);
    write("rpe1-dir.csv", c.dir);
    INFO(c.expect);
    try {
      load_cell_line(tmp.path, "rpe1");
      FAIL("accepted");
    } catch (const InputError& e) {
      CHECK_THAT(e.what(), Catch::Contains(c.expect));
    }
  }
  std::filesystem::remove(tmp.path + "/rpe1-dir.csv");
  CHECK_THROWS_WITH(load_cell_line(tmp.path, "rpe1"), Catch::Contains("rpe1-dir.csv: not found"));
}

TEST_CASE("an output path that is one of the data folder's CSVs is refused", "[data]") {
  test::TempDir tmp("perturb-out-csv");
  std::ofstream(tmp.path + "/k562-de.csv") << "pert,gene,label,split\n";
  // Spelled another way, the same file is still refused.
  CHECK_THROWS_WITH(check_not_data_file(tmp.path + "/./k562-de.csv", tmp.path, "--out"),
                    Catch::Contains("--out " + tmp.path + "/./k562-de.csv is the PerturbQA file"));
  CHECK_NOTHROW(check_not_data_file(tmp.path + "/rows.jsonl", tmp.path, "--out"));
  CHECK_NOTHROW(check_not_data_file(tmp.path + "/k562-dir.csv", tmp.path, "--out"));  // not there: nothing to lose
}

TEST_CASE("a DE row without a direction row is NDE and counted as inconsistent", "[data]") {
  test::TempDir tmp("perturb-inconsistent");
  // (A byte-order mark before the header, as spreadsheet programs write, is no part of it.)
  std::ofstream(tmp.path + "/rpe1-de.csv") << "\xEF\xBB\xBF" "pert,gene,label,split\nA,B,1,train\nA,C,1,test\nA,D,0,test\n";
  std::ofstream(tmp.path + "/rpe1-dir.csv") << "pert,gene,label,split\nA,C,0,test\nX,Y,1,test\n";
  const CellData d = load_cell_line(tmp.path, "rpe1");
  REQUIRE(d.rows.size() == 3);
  CHECK(d.rows[0].label == Label::kNde);
  CHECK(d.rows[1].label == Label::kDown);
  CHECK(d.rows[2].label == Label::kNde);
  CHECK(d.inconsistent == 1);
  CHECK(d.dir_without_de == 1);
  // The split reports both counts (the other cell lines, loaded for their
  // training rows, have none).
  for (const char* other : {"k562", "hepg2", "jurkat"})
    for (const char* kind : {"-de.csv", "-dir.csv"})
      std::ofstream(tmp.path + "/" + other + kind) << "pert,gene,label,split\n";
  const SplitData s = load_split(tmp.path, parse_split("default:rpe1"));
  CHECK(s.inconsistent == 1);
  CHECK(s.dir_without_de == 1);
}

// The CLI's error contract (docs/cli.md): bad input, a bad command line
// included, exits 2 with one line "synthpert <cmd>: error: ..."; a result
// that cannot be written to stdout is a failure (1), not a success.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor_io.h"
#include "tests/test_util.h"

using synthpert::test::run_command;
using synthpert::test::synthpert_bin;

TEST_CASE("command-line errors exit 2 with one line naming the subcommand", "[cli]") {
  const auto missing = run_command(synthpert_bin() + " data");
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.err, Catch::StartsWith("synthpert data: error: --split is required"));
  const auto bad_number = run_command(synthpert_bin() + " metrics --predictions p.jsonl --bootstrap abc");
  CHECK(bad_number.exit_code == 2);
  CHECK_THAT(bad_number.err, Catch::StartsWith("synthpert metrics: error:") && Catch::Contains("--bootstrap"));
  const auto help = run_command(synthpert_bin() + " data --help");
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.out, Catch::Contains("--split"));
}

TEST_CASE("a result that cannot be written to stdout fails the command", "[cli]") {
  // Inside sh -c, so run_command's own redirections do not replace this one.
  const auto full = run_command("sh -c '" + synthpert_bin() + " info >/dev/full'");
  CHECK(full.exit_code == 1);
  CHECK_THAT(full.err, Catch::Contains("cannot write the result to standard output"));
}

TEST_CASE("seeds and counts refuse negative numbers instead of wrapping", "[cli]") {
  // "-1" would read as 2^64 - 1 into an unsigned seed, and a negative
  // --bootstrap as no bootstrap at all.
  const auto seed = run_command(synthpert_bin() + " data --split default --out x.jsonl --seed -1");
  CHECK(seed.exit_code == 2);
  CHECK_THAT(seed.err, Catch::Contains("--seed") && Catch::Contains("whole number >= 0"));
  const auto boot = run_command(synthpert_bin() + " metrics --predictions p.jsonl --bootstrap -5");
  CHECK(boot.exit_code == 2);
  CHECK_THAT(boot.err, Catch::Contains("--bootstrap") && Catch::Contains("whole number >= 0"));
  // "010" is ten, not octal eight: the seed is echoed in init-model's config.
  synthpert::test::TempDir dir("cli-seed");
  const auto ok = run_command(synthpert_bin() + " init-model --preset tiny --seed 010 --out " + dir.path + "/m");
  REQUIRE(ok.exit_code == 0);
  const auto same = run_command(synthpert_bin() + " init-model --preset tiny --seed 10 --out " + dir.path + "/n");
  REQUIRE(same.exit_code == 0);
  CHECK(synthpert::test::read_text(dir.path + "/m/model.safetensors") ==
        synthpert::test::read_text(dir.path + "/n/model.safetensors"));
}

TEST_CASE("logits refuses to print non-finite values as JSON null", "[cli]") {
  synthpert::test::TempDir dir("cli-logits-nan");
  const std::string model = dir.path + "/m";
  REQUIRE(run_command(synthpert_bin() + " init-model --preset tiny --out " + model).exit_code == 0);
  const auto fine = run_command(synthpert_bin() + " logits --model " + model + " --ids 1,2,3");
  REQUIRE(fine.exit_code == 0);
  auto weights = synthpert::engine::load_tensors(model + "/model.safetensors");
  weights.at("model.norm.weight")[0] = std::nan("");
  synthpert::engine::save_tensors(model + "/model.safetensors",
                                  synthpert::engine::NamedTensors(weights.begin(), weights.end()));
  const auto nan = run_command(synthpert_bin() + " logits --model " + model + " --ids 1,2,3");
  CHECK(nan.exit_code == 1);
  CHECK_THAT(nan.err, Catch::Contains("logits at position 0 are not finite"));
  CHECK(nan.out.empty());
}

TEST_CASE("init-model keeps an existing checkpoint unless told to replace it", "[cli]") {
  synthpert::test::TempDir dir("cli-init-model");
  const std::string model = dir.path + "/m";
  REQUIRE(run_command(synthpert_bin() + " init-model --preset tiny --seed 1 --out " + model).exit_code == 0);
  const std::string before = synthpert::test::read_text(model + "/model.safetensors");
  const auto again = run_command(synthpert_bin() + " init-model --preset tiny --seed 2 --out " + model);
  CHECK(again.exit_code == 2);
  CHECK_THAT(again.err, Catch::Contains("already holds a checkpoint") && Catch::Contains("--overwrite"));
  CHECK(synthpert::test::read_text(model + "/model.safetensors") == before);
  const auto replaced = run_command(synthpert_bin() + " init-model --preset tiny --seed 2 --overwrite --out " + model);
  CHECK(replaced.exit_code == 0);
  CHECK(synthpert::test::read_text(model + "/model.safetensors") != before);
}

TEST_CASE("init-model writes a generation_config.json object even without token ids", "[cli]") {
  // transformers' from_pretrained reads the file as a dict and fails on "null".
  synthpert::test::TempDir dir("cli-init-gen");
  synthpert::test::write_text(dir.path + "/in.json",
                              R"({"model_type": "llama", "vocab_size": 11, "hidden_size": 8, "intermediate_size": 12,
                                  "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1})");
  REQUIRE(run_command(synthpert_bin() + " init-model --config " + dir.path + "/in.json --out " + dir.path + "/m")
              .exit_code == 0);
  const auto gen = nlohmann::json::parse(synthpert::test::read_text(dir.path + "/m/generation_config.json"));
  CHECK(gen.is_object());
  CHECK_FALSE(gen.contains("bos_token_id"));
}

TEST_CASE("init-model refuses sizes whose parameter count is absurd or overflows", "[cli]") {
  synthpert::test::TempDir dir("cli-init-huge");
  for (const char* vocab : {"100000000000", "9000000000000000000"}) {
    const auto r = run_command(synthpert_bin() + " init-model --preset tiny --vocab-size " + vocab + " --out " +
                               dir.path + "/m");
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(std::string("vocab_size ") + vocab) && Catch::Contains("2^40 parameters"));
    CHECK_FALSE(std::filesystem::exists(dir.path + "/m"));
  }
}

TEST_CASE("demo refuses bad options before reading data or writing its folder", "[cli]") {
  synthpert::test::TempDir dir("cli-demo");
  const std::string out = dir.path + "/demo-out";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--batch 0", "--batch must be positive"},
      {"--train-fraction 0", "--train-fraction must be in (0, 1]"},
      {"--val-fraction 1", "--val-fraction must be in [0, 1)"},
      {"--hidden 30", "--hidden must be a positive multiple of 8"},
      {"--lr nan", "--lr must be a positive number"},
  };
  for (const auto& [args, expect] : bad) {
    INFO(args);
    // A folder without PerturbQA files: reading data first would fail on it.
    const auto r = run_command(synthpert_bin() + " demo --perturbqa " + dir.path + " --out " + out + " " + args);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(expect));
    CHECK_FALSE(std::filesystem::exists(out));
  }
}

TEST_CASE("data and baselines refuse an empty selection, and data never overwrites a CSV it reads", "[cli]") {
  synthpert::test::TempDir dir("cli-data-rows");
  const std::string de = dir.path + "/k562-de.csv";
  const std::string csv = "pert,gene,label,split\nA,B,1,train\nA,C,0,train\n";
  for (const char* cell : {"k562", "rpe1", "hepg2", "jurkat"}) {
    synthpert::test::write_text(dir.path + "/" + cell + "-de.csv", csv);
    synthpert::test::write_text(dir.path + "/" + cell + "-dir.csv", "pert,gene,label,split\nA,B,1,train\n");
  }
  const std::string common = " --perturbqa " + dir.path + " --split default:k562";
  // The folder has no test rows: metrics of nothing would read as 0, not as a mistake.
  const auto baselines = run_command(synthpert_bin() + " baselines" + common + " --part test");
  CHECK(baselines.exit_code == 2);
  CHECK_THAT(baselines.err, Catch::Contains("--part test: no rows to score"));
  const auto data = run_command(synthpert_bin() + " data" + common + " --part test --out " + dir.path + "/rows.jsonl");
  CHECK(data.exit_code == 2);
  CHECK_THAT(data.err, Catch::Contains("--part test: no rows"));
  CHECK_FALSE(std::filesystem::exists(dir.path + "/rows.jsonl"));
  const auto onto_csv = run_command(synthpert_bin() + " data" + common + " --out " + dir.path + "/./k562-de.csv");
  CHECK(onto_csv.exit_code == 2);
  CHECK_THAT(onto_csv.err, Catch::Contains("is the PerturbQA file"));
  CHECK(synthpert::test::read_text(de) == csv);
  const auto fine = run_command(synthpert_bin() + " data" + common + " --out " + dir.path + "/rows.jsonl");
  CHECK(fine.exit_code == 0);
  CHECK_THAT(fine.out, Catch::Contains("\"rows\":2"));
}

TEST_CASE("eval refuses bad sampling options before making its output folder", "[cli]") {
  synthpert::test::TempDir dir("cli-eval-sampling");
  const std::string out = dir.path + "/eval-out";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--temperature -1", "--temperature must be >= 0"},
      {"--top-p 0", "--top-p must be in (0, 1]"},
      {"--top-p 1.5", "--top-p must be in (0, 1]"},
  };
  for (const auto& [args, expect] : bad) {
    INFO(args);
    const auto r = run_command(synthpert_bin() + " eval --model " + dir.path + "/no-model --split default --mode generate --out " +
                               out + " " + args);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(expect));
    CHECK_FALSE(std::filesystem::exists(out));
  }
}

TEST_CASE("eval refuses flags that would change nothing in its mode", "[cli]") {
  synthpert::test::TempDir dir("cli-eval-unused");
  const std::string out = dir.path + "/eval-out";
  const std::string local = " eval --model " + dir.path + "/no-model --split default --out " + out;
  const std::string remote = " eval --endpoint http://127.0.0.1:9/v1 --endpoint-model m --mode generate --split default --out " + out;
  const std::vector<std::pair<std::string, std::string>> bad = {
      {local + " --temperature 0.7", "--temperature applies to --mode generate only"},
      {local + " --mode score --top-k 5", "--top-k applies to --mode generate only"},
      {local + " --top-p 0.9", "--top-p applies to --mode generate only"},
      {local + " --max-new-tokens 3", "--max-new-tokens applies to --mode generate only"},
      {remote + " --dtype bf16", "--dtype applies to a local --model"},
      {remote + " --device cuda", "--device applies to a local --model"},
  };
  for (const auto& [args, expect] : bad) {
    INFO(args);
    const auto r = run_command(synthpert_bin() + args);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(expect));
    CHECK_FALSE(std::filesystem::exists(out));
  }
}

TEST_CASE("a bad token id list names the item and quotes the list, before any model loads", "[cli]") {
  for (const std::string cmd : {" generate --model /no-such-model --ids ", " logits --model /no-such-model --ids "}) {
    INFO(cmd);
    const auto r = run_command(synthpert_bin() + cmd + "1,,2");
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("--ids: expected comma-separated non-negative integers; item 2 of '1,,2' is ''"));
    const auto neg = run_command(synthpert_bin() + cmd + "5,-3");
    CHECK_THAT(neg.err, Catch::Contains("item 2 of '5,-3' is '-3'"));
  }
}

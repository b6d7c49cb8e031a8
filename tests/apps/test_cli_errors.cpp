// The CLI's error contract (docs/cli.md): bad input, a bad command line
// included, exits 2 with one line "synthpert <cmd>: error: ..."; a result
// that cannot be written to stdout is a failure (1), not a success.
#include <catch2/catch.hpp>

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

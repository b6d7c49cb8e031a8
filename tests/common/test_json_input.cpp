// The JSON readers' shared refusals: every way nlohmann refuses text or a
// field becomes one InputError that names where the JSON came from.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"
#include "tests/test_util.h"

using synthpert::InputError;
using synthpert::parse_json_input;
using synthpert::read_json_fields;
using json = nlohmann::json;

namespace {
std::string error_of(std::string_view text) {
  try {
    parse_json_input(text, "in.json:3");
  } catch (const InputError& e) {
    return e.what();
  }
  return "(parsed)";
}
}  // namespace

TEST_CASE("parse_json_input refuses bad text, huge numbers and trailing bytes as input errors", "[json_input]") {
  CHECK(parse_json_input("{\"a\": [1, 2.5, null]}", "x")["a"][1] == 2.5);
  // Each of these reaches nlohmann as a different exception type.
  for (const std::string_view bad : {"{not json", "", "[1, 2", "9e999", "{\"a\": -1e400}", "[1] [2]", "\"\xff\""}) {
    INFO(std::string(bad));
    const std::string e = error_of(bad);
    CHECK_THAT(e, Catch::StartsWith("in.json:3: not valid JSON ("));
  }
  // The text need not end in a NUL: a view into a larger buffer parses alone.
  const std::string buffer = "[7]garbage";
  CHECK(parse_json_input(std::string_view(buffer).substr(0, 3), "x") == json::array({7}));
  // ordered_json keeps keys in file order.
  const auto ordered = parse_json_input<nlohmann::ordered_json>("{\"z\": 1, \"a\": 2}", "x");
  CHECK(ordered.begin().key() == "z");
}

TEST_CASE("read_json_input names the file; read_json_fields names it for type errors", "[json_input]") {
  const synthpert::test::TempDir dir("json-input");
  const std::string path = dir.path + "/c.json";
  synthpert::write_file_atomic(path, "{\"r\": \"8\"}");
  const json j = synthpert::read_json_input(path);
  CHECK_THROWS_WITH(read_json_fields(path, [&] { return j.at("r").get<int>(); }),
                    Catch::StartsWith(path + ": a value has a type this reader does not take (") &&
                        Catch::Contains("type must be number"));
  CHECK_THROWS_WITH(read_json_fields(path, [&] { return j.at("alpha").get<int>(); }),
                    Catch::StartsWith(path + ": a value has a type") && Catch::Contains("'alpha' not found"));
  CHECK(read_json_fields(path, [&] { return j.at("r").get<std::string>(); }) == "8");
  // Other errors pass through untouched.
  CHECK_THROWS_AS(read_json_fields(path, []() -> int { throw std::logic_error("bug"); }), std::logic_error);
  synthpert::write_file_atomic(path, "{\"r\": 1e999}");
  CHECK_THROWS_WITH(synthpert::read_json_input(path), Catch::StartsWith(path + ": not valid JSON ("));
  CHECK_THROWS_WITH(synthpert::read_json_input(dir.path + "/missing.json"), Catch::Contains("missing.json"));
}

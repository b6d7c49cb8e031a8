// settings_differences and content_digest: the comparison every resumed run
// (train, eval, traces) refuses other settings with.
#include <catch2/catch.hpp>

#include "common/settings_diff.h"

namespace synthpert {
namespace {

using nlohmann::json;

TEST_CASE("settings differences name each key either side holds, in key order", "[common]") {
  const json saved = {{"lr", 0.001}, {"rank", 8}, {"targets", {"q", "v"}}, {"old_only", true}};
  const json now = {{"lr", 0.001}, {"rank", 16}, {"targets", {"q", "k"}}, {"new_only", "x"}};
  const auto diffs = settings_differences(saved, now, "checkpoint");
  REQUIRE(diffs.size() == 4);
  CHECK(diffs[0] == R"(new_only: checkpoint unset, now "x")");
  CHECK(diffs[1] == "old_only: checkpoint true, now unset");
  CHECK(diffs[2] == "rank: checkpoint 8, now 16");
  CHECK(diffs[3] == R"(targets: checkpoint ["q","v"], now ["q","k"])");
  CHECK(join_differences(diffs, "; ").find("old_only: checkpoint true, now unset; rank: checkpoint 8") !=
        std::string::npos);
  CHECK(settings_differences(now, now, "there").empty());
  CHECK(join_differences({}, "; ").empty());
  // A key held as null on one side and missing on the other agrees.
  CHECK(settings_differences(json{{"a", nullptr}}, json::object(), "there").empty());
  // A saved file that is not an object differs in every key of the new one.
  CHECK(settings_differences(json("garbage"), json{{"a", 1}}, "saved") ==
        std::vector<std::string>{"a: saved unset, now 1"});
}

TEST_CASE("content digest is FNV-1a 64 (published test vectors)", "[common]") {
  CHECK(content_digest("") == "cbf29ce484222325");
  CHECK(content_digest("a") == "af63dc4c8601ec8c");
  CHECK(content_digest("foobar") == "85944171f73967e8");
  CHECK(content_digest(std::string("a\0b", 3)) != content_digest("ab"));
}

}  // namespace
}  // namespace synthpert

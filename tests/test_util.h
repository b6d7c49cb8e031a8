// Torch-free helpers shared by the test suites: temporary folders under the
// build tree, running a command and capturing its output, locating the data.
#pragma once

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace synthpert::test {

// A fresh folder under the build tree, removed when the object dies.
struct TempDir {
  std::string path;
  explicit TempDir(const std::string& name) {
    path = std::string(SYNTHPERT_BINARY_DIR) + "/test-tmp/" + name + "-" + std::to_string(::getpid());
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout (stderr too when the command redirects it)
};

// Runs `cmd` through the shell and captures its stdout.
inline CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmd);
  std::array<char, 65536> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The synthpert binary of this build.
inline std::string synthpert_binary() { return std::string(SYNTHPERT_BINARY_DIR) + "/synthpert"; }

// The PerturbQA CSV folder: $PERTURBQA_DIR, else ../shared/perturbqa beside the
// source tree (where CI puts it). Throws when absent, so a missing data folder
// fails the test instead of skipping it silently.
inline std::string perturbqa_dir() {
  if (const char* env = std::getenv("PERTURBQA_DIR"); env && *env) return env;
  const std::string d = std::string(SYNTHPERT_SOURCE_DIR) + "/../shared/perturbqa";
  if (!std::filesystem::exists(d + "/rpe1-de.csv"))
    throw std::runtime_error("PerturbQA data not found: set PERTURBQA_DIR or place it at " + d);
  return d;
}

}  // namespace synthpert::test

// Torch-free helpers shared by the test suites: temporary folders under the
// build tree, running a command and capturing its output, locating the data.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
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

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) throw std::runtime_error("cannot write " + path);
}

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs a shell command, capturing stdout and stderr through files in `scratch`
// (a folder under the build tree when empty).
inline CommandResult run_command(const std::string& cmd, std::string scratch = "") {
  if (scratch.empty()) {
    scratch = std::string(SYNTHPERT_BINARY_DIR) + "/test-tmp";
    std::filesystem::create_directories(scratch);
  }
  const std::string tag = std::to_string(::getpid());
  const std::string o = scratch + "/cmd-" + tag + ".out", e = scratch + "/cmd-" + tag + ".err";
  const int status = std::system((cmd + " >" + o + " 2>" + e).c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(o);
  r.err = read_text(e);
  std::filesystem::remove(o);
  std::filesystem::remove(e);
  return r;
}

// The synthpert binary of this build.
inline std::string synthpert_bin() { return std::string(SYNTHPERT_BINARY_DIR) + "/synthpert"; }

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

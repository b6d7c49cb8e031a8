// DIR/metrics.jsonl: one line per optimizer step
//   {"step","loss","lr","grad_norm","tokens","tokens_per_s","peak_mem_bytes"}
// and one per validation {"step","val_loss"}. Written by rank 0 only.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace synthpert::trainer {

class MetricsLog {
 public:
  // Fresh run: starts an empty file. Resumed run: keeps the lines of steps up
  // to `resume_step` (a killed run may have logged steps past its last
  // checkpoint; those are recomputed).
  MetricsLog(std::string path, bool resume, int64_t resume_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void write(const nlohmann::json& line);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// Reads every line of a metrics file (for the plot and tests).
std::vector<nlohmann::json> read_metrics(const std::string& path);

// Peak memory in bytes: for a CUDA device, the CUDA caching allocator's peak
// of allocated bytes (what torch.cuda.max_memory_allocated reports); else the
// peak resident memory of this process.
int64_t peak_memory_bytes(const std::string& device = "cpu");
// Starts a new peak for a CUDA device (no-op on the CPU).
void reset_peak_memory(const std::string& device);

}  // namespace synthpert::trainer

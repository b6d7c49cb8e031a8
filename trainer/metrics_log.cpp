#include "trainer/metrics_log.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "common/error.h"
#include "common/fs.h"
#ifdef SYNTHPERT_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/core/Device.h>
#endif

namespace synthpert::trainer {

using nlohmann::json;

std::vector<json> read_metrics(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    try {
      out.push_back(json::parse(line));
    } catch (const json::exception&) {
      // A run killed mid-write leaves a partial last line; it is dropped.
      SP_CHECK_INPUT(in.peek() == EOF, path, ":", n, ": not valid JSON");
    }
  }
  return out;
}

MetricsLog::MetricsLog(std::string path, bool resume, int64_t resume_step) : path_(std::move(path)) {
  std::string kept;
  if (resume && path_exists(path_))
    for (const auto& j : read_metrics(path_))
      if (j.value("step", int64_t{0}) <= resume_step) kept += j.dump() + "\n";
  write_file_atomic(path_, kept);
  file_ = std::fopen(path_.c_str(), "a");
  SP_CHECK_INPUT(file_, path_, ": cannot open for appending");
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const json& line) {
  const std::string s = line.dump() + "\n";
  // A line lost to a full disk is a failed run, not a gap in the log (the
  // caller's gate stops every process at this step).
  const bool written = std::fwrite(s.data(), 1, s.size(), file_) == s.size();
  SP_CHECK_INPUT(written && std::fflush(file_) == 0, path_, ": cannot append the metrics of this step (",
                 std::strerror(errno), ")");
}

int64_t peak_memory_bytes(const std::string& device) {
#ifdef SYNTHPERT_TORCH_CUDA
  const c10::Device d(device);
  if (d.is_cuda()) {
    // allocated_bytes[0]: the aggregate over pool types, in every version.
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(d.has_index() ? d.index() : 0);
    return stats.allocated_bytes[0].peak;
  }
#endif
  (void)device;
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

void reset_peak_memory(const std::string& device) {
#ifdef SYNTHPERT_TORCH_CUDA
  const c10::Device d(device);
  if (d.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(d.has_index() ? d.index() : 0);
#endif
  (void)device;
}

}  // namespace synthpert::trainer

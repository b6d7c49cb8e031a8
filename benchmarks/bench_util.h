// Shared pieces of the CUDA kernel benchmarks: their common command line,
// error exit, device buffers of random bf16 data, L2-flushed median timing,
// date/slug helpers, and running a python peer script that writes JSON.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace synthpert::bench {

inline void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "benchmark: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// The flags every CUDA kernel benchmark takes; a benchmark's Options derives
// from this and reads its own flags in parse_bench_args.
struct CommonOptions {
  std::string out_dir = std::string(SYNTHPERT_SOURCE_DIR) + "/benchmarks/results";
  std::string python = "python3";
  bool peer = true;
  int iters = 20;
};

// Reads argv into `o`. `own(flag, next)` handles a benchmark's own flags
// (`next()` returns the flag's value) and returns false for one it does not
// know. An unknown flag prints `usage` and exits 2, as does a missing value;
// a machine without a CUDA device exits 1 with a line that says so.
inline void parse_bench_args(const char* program, const char* usage, int argc, char** argv, CommonOptions& o,
                             const std::function<bool(const std::string&, const std::function<std::string()>&)>& own) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const std::function<std::string()> next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s: %s needs a value\n", program, a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--out-dir") o.out_dir = next();
    else if (a == "--python") o.python = next();
    else if (a == "--no-peer") o.peer = false;
    else if (a == "--iters") o.iters = std::max(1, std::atoi(next().c_str()));
    else if (!own(a, next)) {
      std::fprintf(stderr, "usage: %s [--out-dir DIR] [--python EXE] [--no-peer] [--iters N]%s\n", program, usage);
      std::exit(2);
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "%s: no CUDA device; this benchmark only runs on a GPU\n", program);
    std::exit(1);
  }
}

// Uniform values in [-1, 1) as bf16 bit patterns (the top half of an fp32).
inline std::vector<uint16_t> random_bf16(size_t n, uint32_t seed) {
  std::vector<uint16_t> v(n);
  uint32_t s = seed * 2654435761u + 1;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    const float f = static_cast<float>(s >> 8) / 8388608.f - 1.f;
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    x = static_cast<uint16_t>(bits >> 16);
  }
  return v;
}

// cudaMalloc'd memory freed at scope exit.
class DeviceMemory {
 public:
  explicit DeviceMemory(size_t bytes) { cuda_check(cudaMalloc(&ptr_, std::max<size_t>(bytes, 256)), "cudaMalloc"); }
  ~DeviceMemory() { cudaFree(ptr_); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  template <typename T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
};

inline void fill_random_bf16(void* dst, size_t n, uint32_t seed) {
  const auto host = random_bf16(n, seed);
  cuda_check(cudaMemcpy(dst, host.data(), n * 2, cudaMemcpyHostToDevice), "upload");
}

struct Timing {
  int warmup = 5, iters = 20;
  void* flush = nullptr;
  size_t flush_bytes = 0;
};

// Median milliseconds of fn() over t.iters runs, each after an L2-evicting memset.
template <typename Fn>
double median_ms(const Timing& t, Fn&& fn) {
  for (int i = 0; i < t.warmup; ++i) fn();
  cudaEvent_t start, stop;
  cuda_check(cudaEventCreate(&start), "event");
  cuda_check(cudaEventCreate(&stop), "event");
  std::vector<double> ms;
  for (int i = 0; i < t.iters; ++i) {
    cuda_check(cudaMemsetAsync(t.flush, i & 0xff, t.flush_bytes, nullptr), "L2 flush");
    cuda_check(cudaEventRecord(start, nullptr), "record");
    fn();
    cuda_check(cudaEventRecord(stop, nullptr), "record");
    cuda_check(cudaEventSynchronize(stop), "sync");
    float v = 0.f;
    cuda_check(cudaEventElapsedTime(&v, start, stop), "elapsed");
    ms.push_back(v);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Theoretical DRAM bandwidth (bytes/s): double data rate x bus width.
inline double hbm_peak_bytes_per_s(int device) {
  int clock_khz = 0, bus_bits = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device);
  return 2.0 * clock_khz * 1e3 * bus_bits / 8.0;
}

inline std::string today() {
  char date[16];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  return date;
}

inline std::string slug(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)))
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else if (!out.empty() && out.back() != '-')
      out += '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

// Runs `command` (which writes JSON to json_path); an empty object on failure
// (the benchmark still writes its own rows, then exits non-zero).
inline nlohmann::json run_peer(const std::string& command, const std::string& json_path) {
  std::fprintf(stderr, "benchmark: peer: %s\n", command.c_str());
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "benchmark: the peer script failed; rows will have no peer\n");
    return nlohmann::json::object();
  }
  std::ifstream in(json_path);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  std::remove(json_path.c_str());
  return j.is_discarded() ? nlohmann::json::object() : j;
}

}  // namespace synthpert::bench

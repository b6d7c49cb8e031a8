// What the host-side benchmark programs (bench_engine, bench_scheduler)
// share: the median of repeated measurements, and a main() that sets up the
// allocator as the synthpert CLI does and reports an exception as one line.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "common/host_allocator.h"

namespace synthpert::bench {

// "8,32" -> {8, 32} (a --batches flag).
inline std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  for (size_t at = 0; at < s.size();) {
    const size_t comma = std::min(s.find(',', at), s.size());
    out.push_back(std::stoll(s.substr(at, comma - at)));
    at = comma + 1;
  }
  return out;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Runs `run(argc, argv)` as the program; an exception prints "NAME: message"
// and exits 1.
inline int bench_main(const char* name, int (*run)(int, char**), int argc, char** argv) {
  synthpert::keep_large_allocations_on_heap();  // as the synthpert CLI
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace synthpert::bench

// What the host-side benchmark programs (bench_engine, bench_scheduler)
// share: the median of repeated measurements, and a main() that sets up the
// allocator as the synthpert CLI does and reports an exception as one line.
#pragma once

#include <algorithm>
#include <cstdio>
#include <exception>
#include <vector>

#include "common/host_allocator.h"

namespace synthpert::bench {

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

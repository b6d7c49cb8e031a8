#include "trainer/failure_gate.h"

#include <exception>
#include <vector>

#include "common/error.h"

namespace synthpert::trainer {

FailureGate::FailureGate(Communicator& comm, std::string stage)
    : comm_(comm), stage_(std::move(stage)), uncaught_at_start_(std::uncaught_exceptions()) {}

FailureGate::~FailureGate() {
  // Only while an exception thrown after the gate opened unwinds through it:
  // a gate left by a normal return is a bug of the caller, not a failure.
  if (passed_ || std::uncaught_exceptions() <= uncaught_at_start_) return;
  try {
    exchange(true, 0);
  } catch (...) {
    // The process is failing anyway; its own error is the one to show.
  }
}

bool FailureGate::pass(uint64_t digest) {
  SP_CHECK(!passed_, "a failure gate is passed once");
  return exchange(false, digest);
}

bool FailureGate::exchange(bool failed, uint64_t digest) {
  passed_ = true;
  const int64_t world = comm_.world();
  if (world <= 1 || comm_.backend() == "none") return true;
  // [one failure flag per process, the digest in four 16-bit pieces]: sums
  // of small integers are exact in float64, so every piece's sum is world x
  // this process's piece exactly when all digests agree.
  std::vector<double> v(static_cast<size_t>(world + 4), 0.0);
  v[static_cast<size_t>(comm_.rank())] = failed ? 1.0 : 0.0;
  for (int k = 0; k < 4; ++k) v[static_cast<size_t>(world + k)] = static_cast<double>((digest >> (16 * k)) & 0xFFFF);
  auto t = torch::tensor(v, torch::kFloat64);
  comm_.all_reduce_sum(t, 8 * (world + 4));
  if (failed) return false;
  std::string who;
  int64_t n_failed = 0;
  for (int64_t r = 0; r < world; ++r)
    if (t[r].item<double>() != 0) {
      who += (n_failed++ ? ", " : "") + std::to_string(r);
    }
  SP_CHECK_INPUT(n_failed == 0, n_failed == 1 ? "process " : "processes ", who, " of ", world, " failed while ",
                 stage_, " (", n_failed == 1 ? "its" : "their",
                 " own error output says why); process ", comm_.rank(), " stops here too");
  bool agree = true;
  for (int k = 0; k < 4; ++k)
    agree = agree && t[world + k].item<double>() == v[static_cast<size_t>(world + k)] * static_cast<double>(world);
  return agree;
}

}  // namespace synthpert::trainer

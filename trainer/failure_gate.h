// Keeps a failure on one process from leaving the others stuck in their next
// collective until --dist-timeout (a data file missing on one node, a model
// file corrupt on another). Work that may fail on some processes only runs
// between gates; at a gate every process says in one all-reduce whether it
// failed. A process that throws before its gate takes part from the gate's
// destructor, marked as failed, so every process stops there: the failed one
// with its own error, the others with an error naming it.
//
// Between a gate's construction and its pass a process must start no
// collective that a failing process would skip: the one that failed would be
// at the gate's all-reduce while the others are at that one. (The trainer's
// step gate encloses the gradient all-reduces; a process failing inside the
// step starts them all before it reaches the gate.)
#pragma once

#include <cstdint>
#include <string>

#include "trainer/distributed.h"

namespace synthpert::trainer {

class FailureGate {
 public:
  // `stage` names the work before the gate in the others' error: "reading
  // the data".
  FailureGate(Communicator& comm, std::string stage);
  ~FailureGate();
  FailureGate(const FailureGate&) = delete;
  FailureGate& operator=(const FailureGate&) = delete;

  // Every process calls this once. Throws an InputError on every process when
  // any failed before its gate. Otherwise returns whether all processes gave
  // the same `digest` (the caller's agreement check rides along for free).
  bool pass(uint64_t digest = 0);

 private:
  bool exchange(bool failed, uint64_t digest);

  Communicator& comm_;
  std::string stage_;
  int uncaught_at_start_;
  bool passed_ = false;
};

}  // namespace synthpert::trainer

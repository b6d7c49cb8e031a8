// Data-parallel gradient summing that overlaps backward.
//
// A hook on every trained parameter (Tensor::register_hook, the same call in
// libtorch 1.13 and 2.x) adds the parameter's gradient into the flat float32
// buffer of the ParamSet as soon as autograd has it. During the step's last
// backward the buffer is final for a parameter once its hook fired, so
// buckets of parameters (about `bucket_bytes`, grouped from the last
// parameter backwards, the order backward reaches them) start their c10d
// all-reduce as soon as all their members are in, while backward goes on
// with the earlier layers. Buckets start strictly in bucket order (a ready
// bucket waits for the ones before it), so every process issues the same
// collectives in the same order whatever order its gradients arrive in.
//
// Assumes each trained tensor receives its gradient at most once per
// backward (true for LoRA and full fine-tuning of our models, with or
// without activation checkpointing); a second arrival after its bucket
// started is an error rather than a silently wrong sum.
#pragma once

#include <functional>
#include <mutex>
#include <vector>

#include "trainer/distributed.h"
#include "trainer/param_set.h"

namespace synthpert::trainer {

class GradReducer {
 public:
  GradReducer(ParamSet& params, Communicator& comm, int64_t bucket_bytes);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Before the backward of this process's last micro-batch of the step.
  void arm();
  // After each backward: drops the model's own .grad copies (the flat buffer
  // already holds them).
  void after_backward();
  // After the step's last backward (or none, for a process without
  // examples in this step): starts the buckets not yet started, in order,
  // and waits for all; the flat buffer then holds the sum over processes.
  void finish();

  // Bucket b covers flat[begin, end).
  struct Bucket {
    int64_t begin = 0, end = 0;
    std::vector<size_t> entries;
  };
  const std::vector<Bucket>& buckets() const { return buckets_; }

 private:
  void on_grad(size_t entry, const torch::Tensor& g);
  void launch_ready();

  ParamSet& params_;
  Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;      // entry -> bucket
  std::vector<unsigned> hook_handles_;
  std::mutex mu_;
  bool armed_ = false;
  std::vector<uint8_t> entry_ready_;
  std::vector<size_t> pending_;        // per bucket: members not yet in
  size_t next_launch_ = 0;
  std::vector<std::function<void()>> waits_;
};

}  // namespace synthpert::trainer

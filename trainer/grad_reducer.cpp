#include "trainer/grad_reducer.h"

#include <algorithm>

#include "common/error.h"

namespace synthpert::trainer {

GradReducer::GradReducer(ParamSet& params, Communicator& comm, int64_t bucket_bytes)
    : params_(params), comm_(comm) {
  const auto& entries = params.entries();
  // Entries sit in the flat buffer in order; walking them backwards keeps each
  // bucket a contiguous range and puts the last layers (first in backward)
  // in the first buckets.
  bucket_of_.assign(entries.size(), 0);
  const int64_t elem = static_cast<int64_t>(params.grad().element_size());
  for (size_t k = entries.size(); k-- > 0;) {
    const auto& e = entries[k];
    const int64_t end = e.offset + e.param.numel();
    if (buckets_.empty() || (buckets_.back().end - buckets_.back().begin) * elem >= bucket_bytes)
      buckets_.push_back({e.offset, end, {}});
    SP_CHECK(end == buckets_.back().begin || buckets_.back().entries.empty(),
             "GradReducer: parameters are not laid out in order in the flat buffer");
    buckets_.back().begin = e.offset;
    buckets_.back().entries.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
  }
  entry_ready_.assign(entries.size(), 0);
  pending_.assign(buckets_.size(), 0);
  for (size_t k = 0; k < entries.size(); ++k) {
    torch::Tensor p = entries[k].param;
    hook_handles_.push_back(p.register_hook([this, k](const torch::Tensor& g) { on_grad(k, g); }));
  }
}

GradReducer::~GradReducer() {
  const auto& entries = params_.entries();
  for (size_t k = 0; k < entries.size() && k < hook_handles_.size(); ++k)
    entries[k].param.remove_hook(hook_handles_[k]);
}

void GradReducer::arm() {
  std::lock_guard<std::mutex> lock(mu_);
  armed_ = true;
  std::fill(entry_ready_.begin(), entry_ready_.end(), 0);
  for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = buckets_[b].entries.size();
  next_launch_ = 0;
}

void GradReducer::on_grad(size_t k, const torch::Tensor& g) {
  torch::NoGradGuard no_grad;
  const auto& e = params_.entries()[k];
  std::lock_guard<std::mutex> lock(mu_);
  const size_t b = bucket_of_[k];
  SP_CHECK(!(armed_ && b < next_launch_),
           "GradReducer: '", e.name, "' received a gradient after its bucket's all-reduce started "
           "(a tensor used twice in one backward)");
  params_.grad().narrow(0, e.offset, e.param.numel()).add_(g.reshape({-1}).to(torch::kFloat32));
  if (!armed_ || entry_ready_[k]) return;
  entry_ready_[k] = 1;
  --pending_[b];
  launch_ready();
}

void GradReducer::launch_ready() {
  while (next_launch_ < buckets_.size() && pending_[next_launch_] == 0) {
    const auto& bk = buckets_[next_launch_];
    waits_.push_back(comm_.start_all_reduce_sum(params_.grad().narrow(0, bk.begin, bk.end - bk.begin)));
    ++next_launch_;
  }
}

void GradReducer::after_backward() {
  for (const auto& e : params_.entries()) e.param.mutable_grad() = torch::Tensor();
}

void GradReducer::finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!armed_) next_launch_ = 0;  // no last backward here: nothing started yet
    std::fill(pending_.begin(), pending_.end(), 0);
    launch_ready();
    armed_ = false;
  }
  for (auto& w : waits_) w();
  waits_.clear();
}

}  // namespace synthpert::trainer

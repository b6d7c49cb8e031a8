// GradReducer: buckets start their all-reduce during backward, in bucket
// order, and the flat gradient ends up as the plain accumulation summed over
// processes. A recording communicator stands in for c10d and plays a second
// process with the same gradients (its "sum" doubles each bucket).
#include <catch2/catch.hpp>

#include "tests/trainer/trainer_test_util.h"
#include "trainer/collate.h"
#include "trainer/grad_reducer.h"
#include "trainer/lora.h"
#include "trainer/sft_loss.h"

using namespace synthpert;

namespace {

class RecordingComm : public trainer::Communicator {
 public:
  struct Start {
    int64_t begin, numel;
    int64_t grads_present;  // trained tensors whose .grad autograd had set by then
  };
  RecordingComm(const trainer::ParamSet& params) : params_(params) {
    world_ = 2;
    backend_ = "recording";
  }
  std::vector<Start> starts;

  void all_reduce_sum(torch::Tensor&, int64_t) override { FAIL("the reducer must use start_all_reduce_sum"); }
  std::function<void()> start_all_reduce_sum(torch::Tensor t) override {
    int64_t present = 0;
    for (const auto& e : params_.entries()) present += e.param.grad().defined();
    const int64_t begin = (static_cast<const char*>(t.data_ptr()) -
                           static_cast<const char*>(params_.grad().data_ptr())) / 4;
    starts.push_back({begin, t.numel(), present});
    return [t]() mutable { t.mul_(2); };
  }

 private:
  const trainer::ParamSet& params_;
};

struct Setup {
  test::TempDir dir{"grad-reducer"};
  engine::Transformer model;
  std::vector<trainer::SftExample> examples = test::random_examples(4, 101, 3, 6, 20);
  Setup() : model(load()) {
    engine::LoraSpec spec;
    spec.r = 3;
    spec.alpha = 6;
    spec.target_modules = trainer::parse_lora_targets("all");
    trainer::attach_lora(model, spec, 4);
    // Non-zero B, so every A has a gradient too.
    torch::manual_seed(9);
    for (auto& [name, lin] : model.named_linears())
      if (lin->lora) lin->lora->B = torch::randn(lin->lora->B.sizes()) * 0.05;
  }
  engine::Transformer load() {
    test::make_model(dir.path + "/model");
    return engine::Transformer::load(dir.path + "/model");
  }
  void backward(const std::vector<int64_t>& idx) {
    const auto batch = trainer::collate_padded(examples, idx);
    (trainer::sft_loss_sum(model, batch, true) / 37.0).backward();
  }
};

// Micro-batches {0,1} then {2,3}: the plain accumulation.
torch::Tensor plain_gradient(Setup& s, trainer::ParamSet& params) {
  params.zero_grad();
  s.backward({0, 1});
  params.accumulate_grads();
  s.backward({2, 3});
  params.accumulate_grads();
  auto g = params.grad().clone();
  params.zero_grad();
  return g;
}

}  // namespace

TEST_CASE("gradient buckets start during backward, in order, and sum the accumulated gradient", "[reducer]") {
  for (const bool checkpoint_layers : {false, true}) {
    INFO("activation checkpointing " << checkpoint_layers);
    Setup s;
    s.model.checkpoint_layers = checkpoint_layers;
    auto params = trainer::ParamSet::lora(s.model);
    const auto expected = plain_gradient(s, params) * 2;
    REQUIRE(expected.abs().max().item<double>() > 0);

    RecordingComm comm(params);
    trainer::GradReducer reducer(params, comm, 2048);
    const auto& buckets = reducer.buckets();
    REQUIRE(buckets.size() >= 8);
    // Buckets tile the buffer from its end backwards.
    CHECK(buckets.front().end == params.numel());
    CHECK(buckets.back().begin == 0);
    for (size_t b = 1; b < buckets.size(); ++b) CHECK(buckets[b].end == buckets[b - 1].begin);

    for (int round = 0; round < 2; ++round) {
      comm.starts.clear();
      s.backward({0, 1});  // not armed: only accumulates
      reducer.after_backward();
      CHECK(comm.starts.empty());
      reducer.arm();
      s.backward({2, 3});
      reducer.after_backward();
      // The first bucket (the last layer's adapters) started while autograd
      // had not yet reached most other tensors.
      REQUIRE(!comm.starts.empty());
      CHECK(comm.starts.front().grads_present < static_cast<int64_t>(params.entries().size()) / 2);
      reducer.finish();
      REQUIRE(comm.starts.size() == buckets.size());
      for (size_t b = 0; b < buckets.size(); ++b) {
        CHECK(comm.starts[b].begin == buckets[b].begin);
        CHECK(comm.starts[b].numel == buckets[b].end - buckets[b].begin);
      }
      CHECK(torch::equal(params.grad(), expected));
      for (const auto& e : params.entries()) CHECK_FALSE(e.param.grad().defined());
      params.zero_grad();
    }
  }
}

TEST_CASE("a process without examples in a step still starts every bucket, in order", "[reducer]") {
  Setup s;
  auto params = trainer::ParamSet::lora(s.model);
  RecordingComm comm(params);
  trainer::GradReducer reducer(params, comm, 4096);
  reducer.finish();
  REQUIRE(comm.starts.size() == reducer.buckets().size());
  for (size_t b = 0; b < comm.starts.size(); ++b) CHECK(comm.starts[b].begin == reducer.buckets()[b].begin);
  CHECK(params.grad().abs().max().item<double>() == 0);
}

TEST_CASE("one bucket larger than the buffer starts once backward is complete", "[reducer]") {
  Setup s;
  auto params = trainer::ParamSet::lora(s.model);
  RecordingComm comm(params);
  trainer::GradReducer reducer(params, comm, int64_t{1} << 30);
  REQUIRE(reducer.buckets().size() == 1);
  reducer.arm();
  s.backward({0, 1, 2, 3});
  // Started from the hook of the last tensor to arrive: all others have theirs.
  REQUIRE(comm.starts.size() == 1);
  CHECK(comm.starts[0].grads_present == static_cast<int64_t>(params.entries().size()) - 1);
  reducer.after_backward();
  reducer.finish();
  CHECK(comm.starts.size() == 1);
}

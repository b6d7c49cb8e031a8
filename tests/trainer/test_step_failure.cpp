// A process of a data-parallel run that fails inside a training step (out of
// memory on one GPU, say) must stop the others at that step with an error
// naming it, not leave them waiting in a gradient all-reduce until the
// timeout. Two ranks run as two threads of this process, each with its own
// gloo process group over a local TCPStore, as two processes would.
#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <thread>

#include "tests/trainer/trainer_test_util.h"
#include "trainer/distributed.h"
#include "trainer/lora.h"
#include "trainer/trainer.h"

using namespace synthpert;

namespace {

struct RankOutcome {
  std::string error;
  int64_t steps_done = 0;
};

}  // namespace

TEST_CASE("a process failing inside a step stops the others at that step, naming it", "[dist]") {
  test::TempDir dir("step-failure");
  test::make_model(dir.path + "/model");
  trainer::SftDataset data;
  data.examples = test::random_examples(16, 101, 3);
  trainer::TrainOptions o;
  o.model_dir = dir.path + "/model";
  o.out_dir = dir.path + "/out";
  o.lora.r = 4;
  o.lora.alpha = 8;
  o.lora.target_modules = trainer::parse_lora_targets("all");
  o.batch = 2;
  o.grad_accum = 2;
  o.max_steps = 4;
  o.progress = false;
  // Small buckets: several all-reduces per step, some already started
  // when the failing process's backward breaks off.
  o.bucket_bytes = 4096;

  const int port = test::free_port();
  RankOutcome outcome[2];
  // Rank 1 fails before the forward of this micro-batch of step 3: the first
  // (no gradient bucket armed yet) or the last (after the first's backward).
  const int64_t fail_micro = GENERATE(0, 1);
  auto run_rank = [&](int64_t rank) {
    trainer::DistEnv env;
    env.rank = rank;
    env.world = 2;
    env.master_port = port;
    env.launcher = "torchrun";
    try {
      // Waiting for a process that never comes would end in this timeout,
      // with c10d's timeout error instead of the one checked below.
      auto comm = trainer::Communicator::create(env, torch::kCPU, std::chrono::seconds(60));
      trainer::TrainHooks h;
      h.on_step = [&](const trainer::StepRecord& s) { outcome[rank].steps_done = s.step; };
      h.on_micro_batch = [&](int64_t step, int64_t micro) {
        if (rank == 1 && step == 3 && micro == fail_micro) throw std::runtime_error("injected failure");
      };
      trainer::run_training(o, data, {}, *comm, h);
    } catch (const std::exception& e) {
      outcome[rank].error = e.what();
    }
  };
  std::thread r1([&] { run_rank(1); });
  run_rank(0);
  r1.join();
  INFO("failing micro-batch: " << fail_micro);
  INFO("rank 0: " << outcome[0].error);
  INFO("rank 1: " << outcome[1].error);
  CHECK(outcome[1].error == "injected failure");
  CHECK_THAT(outcome[0].error, Catch::Contains("process 1 of 2 failed while running step 3"));
  CHECK(outcome[0].steps_done == 2);
  CHECK(outcome[1].steps_done == 2);
}

// A process of a data-parallel run that fails inside a training step (out of
// memory on one GPU, say) must stop the others at that step with an error
// naming it, not leave them waiting in a gradient all-reduce until the
// timeout. Two ranks run as two threads of this process, each with its own
// gloo process group over a local TCPStore, as two processes would.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>

#include <array>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <thread>

#include "common/error.h"
#include "tests/trainer/trainer_test_util.h"
#include "trainer/distributed.h"
#include "trainer/lora.h"
#include "trainer/metrics_log.h"
#include "trainer/trainer.h"

using namespace synthpert;

namespace {

struct RankOutcome {
  std::string error;
  int64_t steps_done = 0;
};

trainer::TrainOptions small_run(const std::string& dir) {
  trainer::TrainOptions o;
  o.model_dir = dir + "/model";
  o.out_dir = dir + "/out";
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
  return o;
}

// Runs `o` as ranks 0 and 1 of a gloo group; `hooks_of(rank, outcome)` gives
// each rank's hooks (the failure to inject).
std::array<RankOutcome, 2> run_two_ranks(
    const trainer::TrainOptions& o, const trainer::SftDataset& data,
    const std::function<trainer::TrainHooks(int64_t, RankOutcome&)>& hooks_of) {
  const int port = test::free_port();
  std::array<RankOutcome, 2> outcome;
  auto run_rank = [&](int64_t rank) {
    trainer::DistEnv env;
    env.rank = rank;
    env.world = 2;
    env.master_port = port;
    env.launcher = "torchrun";
    try {
      // Waiting for a process that never comes would end in this timeout,
      // with c10d's timeout error instead of the ones the tests check.
      auto comm = trainer::Communicator::create(env, torch::kCPU, std::chrono::seconds(60));
      trainer::TrainHooks h = hooks_of(rank, outcome[rank]);
      h.on_step = [&outcome, rank](const trainer::StepRecord& s) { outcome[rank].steps_done = s.step; };
      trainer::run_training(o, data, {}, *comm, h);
    } catch (const std::exception& e) {
      outcome[rank].error = e.what();
    }
  };
  std::thread r1([&] { run_rank(1); });
  run_rank(0);
  r1.join();
  return outcome;
}

}  // namespace

TEST_CASE("a process failing inside a step stops the others at that step, naming it", "[dist]") {
  test::TempDir dir("step-failure");
  test::make_model(dir.path + "/model");
  trainer::SftDataset data;
  data.examples = test::random_examples(16, 101, 3);
  // Rank 1 fails before the forward of this micro-batch of step 3: the first
  // (no gradient bucket armed yet) or the last (after the first's backward).
  const int64_t fail_micro = GENERATE(0, 1);
  const auto outcome = run_two_ranks(small_run(dir.path), data, [&](int64_t rank, RankOutcome&) {
    trainer::TrainHooks h;
    h.on_micro_batch = [rank, fail_micro](int64_t step, int64_t micro) {
      if (rank == 1 && step == 3 && micro == fail_micro) throw std::runtime_error("injected failure");
    };
    return h;
  });
  INFO("failing micro-batch: " << fail_micro);
  INFO("rank 0: " << outcome[0].error);
  INFO("rank 1: " << outcome[1].error);
  CHECK(outcome[1].error == "injected failure");
  CHECK_THAT(outcome[0].error, Catch::Contains("process 1 of 2 failed while running step 3"));
  CHECK(outcome[0].steps_done == 2);
  CHECK(outcome[1].steps_done == 2);
}

TEST_CASE("a gradient hook failing on process 0 only stops the other at that step's record gate", "[dist]") {
  // As --grad-dump to a disk that fills: the hook is set on process 0 alone.
  test::TempDir dir("hook-failure");
  test::make_model(dir.path + "/model");
  trainer::SftDataset data;
  data.examples = test::random_examples(16, 101, 3);
  const auto outcome = run_two_ranks(small_run(dir.path), data, [](int64_t rank, RankOutcome&) {
    trainer::TrainHooks h;
    if (rank == 0)
      h.on_gradients = [](const trainer::StepRecord& r, const trainer::ParamSet&) {
        if (r.step == 2) throw std::runtime_error("injected dump failure");
      };
    return h;
  });
  INFO("rank 0: " << outcome[0].error);
  INFO("rank 1: " << outcome[1].error);
  CHECK(outcome[0].error == "injected dump failure");
  CHECK_THAT(outcome[1].error,
             Catch::Contains("process 0 of 2 failed while writing the metrics log, a checkpoint or a gradient dump"));
  CHECK(outcome[0].steps_done == 2);  // the optimizer stepped; the record gate stopped both
  CHECK(outcome[1].steps_done == 2);
}

TEST_CASE("a metrics line that cannot be written is an error, not a silent gap", "[dist]") {
  test::TempDir dir("metrics-full");
  const std::string path = dir.path + "/metrics.jsonl";
  trainer::MetricsLog log(path, false, 0);
  log.write({{"step", 1}, {"loss", 1.5}});
  // A file size limit stands in for a full disk: the next write fails with
  // EFBIG (SIGXFSZ ignored, as its default would end the test process).
  struct rlimit old {};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
  auto* const old_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 64;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::string error;
  try {
    log.write({{"step", 2}, {"loss", 1.25}, {"note", std::string(100, 'x')}});
  } catch (const InputError& e) {
    error = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  CHECK_THAT(error, Catch::Contains("cannot append the metrics of this step"));
}

// `synthpert train` end to end: data parallel over two gloo processes,
// kill -9 and --resume, outputs (metrics, plot, adapter, merged model) and
// the errors of bad input.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <iomanip>
#include <filesystem>
#include <fstream>
#include <thread>

#include "engine/peft_adapter.h"
#include "engine/tensor_io.h"
#include "tests/trainer/trainer_test_util.h"
#include "trainer/lora.h"

using namespace synthpert;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::vector<double> losses_of(const std::string& metrics) {
  std::vector<double> out;
  for (const auto& j : test::metrics_lines(metrics, "loss")) out.push_back(j["loss"].get<double>());
  return out;
}

std::string train_cmd(const std::string& model, const std::string& data, const std::string& out,
                      const std::string& extra) {
  return test::synthpert_bin() + " train --model " + model + " --data " + data + " --out " + out +
         " --lora-r 4 --lora-alpha 8 --lr 1e-2 --seed 5 --no-progress " + extra;
}

// Polls a run's metrics log until it has logged `step` (false after 60 s). A
// line still being written is skipped until it is whole.
bool wait_for_logged_step(const std::string& metrics, int64_t step) {
  for (int i = 0; i < 120000; ++i) {
    std::ifstream in(metrics);
    std::string line;
    while (std::getline(in, line)) {
      const auto j = json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.contains("loss") && j["step"].get<int64_t>() >= step) return true;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return false;
}

struct Fixture {
  test::TempDir dir{"train-cli"};
  std::string model = dir.path + "/model", data = dir.path + "/data.jsonl";
  Fixture(int64_t n = 16, int64_t min_len = 5, int64_t max_len = 24) {
    test::make_model(model);
    test::write_pretokenized(data, test::random_examples(n, 101, 9, min_len, max_len));
  }
};

}  // namespace

TEST_CASE("two gloo processes give the losses of one process with the same global batch", "[cli]") {
  Fixture f;
  const std::string common = "--max-steps 6 --val-fraction 0.125 --eval-every 3 --targets q,v,down";
  auto one = test::run_command(
      train_cmd(f.model, f.data, f.dir.path + "/one", common + " --batch 2 --grad-accum 2"), f.dir.path);
  REQUIRE(one.exit_code == 0);

  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(test::free_port()) +
                          " WORLD_SIZE=2 ";
  // Small buckets, so many all-reduces start during backward, and activation
  // checkpointing, so gradients arrive from the recomputing backward.
  const std::string two_cmd = train_cmd(f.model, f.data, f.dir.path + "/two",
                                        common + " --batch 2 --bucket-mb 0.001 --activation-checkpointing");
  const std::string script = env + "RANK=0 LOCAL_RANK=0 " + two_cmd + " >" + f.dir.path +
                             "/r0.out 2>" + f.dir.path + "/r0.err & p=$!; " + env +
                             "RANK=1 LOCAL_RANK=1 " + two_cmd + " >" + f.dir.path + "/r1.out 2>" +
                             f.dir.path + "/r1.err; r1=$?; wait $p; r0=$?; exit $((r0 | r1))";
  const int status = std::system(("bash -c '" + script + "'").c_str());
  INFO("rank 0 stderr: " << test::read_text(f.dir.path + "/r0.err"));
  INFO("rank 1 stderr: " << test::read_text(f.dir.path + "/r1.err"));
  REQUIRE(status == 0);
  const auto summary = json::parse(test::read_text(f.dir.path + "/r0.out"));
  CHECK(summary["world_size"] == 2);
  CHECK(summary["backend"] == "gloo");
  CHECK(test::read_text(f.dir.path + "/r1.out").empty());  // rank 0 reports

  const auto a = losses_of(f.dir.path + "/one/metrics.jsonl");
  const auto b = losses_of(f.dir.path + "/two/metrics.jsonl");
  REQUIRE(a.size() == 6);
  REQUIRE(b.size() == 6);
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(std::setprecision(12) << "step " << i + 1 << ": 1 process " << a[i] << ", 2 processes " << b[i]);
    CHECK(std::abs(a[i] - b[i]) <= 1e-5);
  }
  const auto va = test::metrics_lines(f.dir.path + "/one/metrics.jsonl", "val_loss");
  const auto vb = test::metrics_lines(f.dir.path + "/two/metrics.jsonl", "val_loss");
  REQUIRE(va.size() == 2);
  REQUIRE(vb.size() == 2);
  for (size_t i = 0; i < va.size(); ++i)
    CHECK(std::abs(va[i]["val_loss"].get<double>() - vb[i]["val_loss"].get<double>()) <= 1e-5);
  // The same run under PyTorch's torchrun: its agent already serves the
  // rendezvous store on MASTER_PORT, and the processes join it as clients
  // (rank 0 serving its own there failed with "address already in use").
  const std::string torchrun = std::string(SYNTHPERT_REFERENCE_PYTHON " ") + SYNTHPERT_SOURCE_DIR +
                               "/tests/trainer/torchrun.py --nnodes 1 --nproc_per_node 2 --master_port " +
                               std::to_string(test::free_port()) + " --no_python " +
                               train_cmd(f.model, f.data, f.dir.path + "/torchrun",
                                         common + " --batch 2 --bucket-mb 0.001 --activation-checkpointing");
  auto launched = test::run_command(torchrun, f.dir.path);
  INFO("torchrun stderr: " << launched.err);
  REQUIRE(launched.exit_code == 0);
  const auto c = losses_of(f.dir.path + "/torchrun/metrics.jsonl");
  REQUIRE(c.size() == b.size());
  for (size_t i = 0; i < b.size(); ++i) CHECK(std::abs(c[i] - b[i]) <= 1e-5);  // torchrun sets OMP_NUM_THREADS=1

  // A launcher's world of one runs the gloo process group; its all-reduce is
  // the identity, so the losses are exactly those of a plain run.
  auto solo = test::run_command("RANK=0 WORLD_SIZE=1 MASTER_PORT=" + std::to_string(test::free_port()) + " " +
                                    train_cmd(f.model, f.data, f.dir.path + "/solo",
                                              common + " --batch 2 --grad-accum 2"),
                                f.dir.path);
  REQUIRE(solo.exit_code == 0);
  CHECK(json::parse(solo.out)["backend"] == "gloo");
  CHECK(losses_of(f.dir.path + "/solo/metrics.jsonl") == a);
  // The trained adapters agree too.
  const auto ta = engine::load_tensors(f.dir.path + "/one/adapter/adapter_model.safetensors");
  const auto tb = engine::load_tensors(f.dir.path + "/two/adapter/adapter_model.safetensors");
  REQUIRE(ta.size() == tb.size());
  for (const auto& [name, t] : ta) {
    const double diff = (t - tb.at(name)).abs().max().item<double>();
    CHECK(diff <= 1e-5);
  }
}

// Two processes where rank 1 is given `rank1_model` and `rank1_data`; returns
// both processes' stderr once both have exited (each with an error).
std::pair<std::string, std::string> run_pair_expecting_failure(
    const Fixture& f, const std::string& rank1_model, const std::string& rank1_data,
    // Long enough for a slow machine to form the group; the old behaviour,
    // waiting for the failed process, ran into it with a timeout error.
    const std::string& args = "--max-steps 2 --batch 2 --dist-timeout 45") {
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(test::free_port()) + " WORLD_SIZE=2 ";
  const std::string script =
      env + "RANK=0 " + train_cmd(f.model, f.data, f.dir.path + "/out", args) + " 2>" + f.dir.path +
      "/r0.err & p=$!; " + env + "RANK=1 " + train_cmd(rank1_model, rank1_data, f.dir.path + "/out", args) +
      " 2>" + f.dir.path + "/r1.err; r1=$?; wait $p; r0=$?; test $r0 -ne 0 -a $r1 -ne 0";
  const int status = std::system(("bash -c '" + script + "'").c_str());
  const std::string e0 = test::read_text(f.dir.path + "/r0.err"), e1 = test::read_text(f.dir.path + "/r1.err");
  INFO("rank 0 stderr: " << e0);
  INFO("rank 1 stderr: " << e1);
  CHECK(status == 0);
  return {e0, e1};
}

TEST_CASE("processes that would train on different data refuse to start", "[cli]") {
  Fixture f;
  // Same length and count, other tokens: the same plan, so without the check
  // each process would silently train on its own data.
  const std::string other = f.dir.path + "/other.jsonl";
  test::write_pretokenized(other, test::random_examples(16, 101, 10, 5, 24));
  const auto [e0, e1] = run_pair_expecting_failure(f, f.model, other);
  CHECK_THAT(e0, Catch::Contains("differs from another in its settings or its tokenized data"));
  CHECK_THAT(e1, Catch::Contains("differs from another in its settings or its tokenized data"));
  CHECK_FALSE(fs::exists(f.dir.path + "/out/checkpoints"));
}

TEST_CASE("a process that cannot read its data stops the others at once, naming it", "[cli]") {
  Fixture f;
  const auto [e0, e1] = run_pair_expecting_failure(f, f.model, f.dir.path + "/missing.jsonl");
  CHECK_THAT(e1, Catch::Contains("missing.jsonl"));
  CHECK_THAT(e0, Catch::Contains("process 1 of 2 failed while reading its data"));
  CHECK_FALSE(fs::exists(f.dir.path + "/out/checkpoints"));
}

TEST_CASE("a process whose model file is broken stops the others before the first step", "[cli]") {
  Fixture f;
  const std::string broken = f.dir.path + "/broken-model";
  fs::copy(f.model, broken);
  fs::resize_file(broken + "/model.safetensors", 100);
  const auto [e0, e1] = run_pair_expecting_failure(f, broken, f.data);
  CHECK_THAT(e1, Catch::Contains("model.safetensors"));
  CHECK_THAT(e0, Catch::Contains("process 1 of 2 failed while loading the model"));
  CHECK_FALSE(fs::exists(f.dir.path + "/out/checkpoints"));
}

TEST_CASE("process 0 failing to write mid-run stops the others at that step, naming it", "[cli]") {
  Fixture f;
  // Only process 0 writes: a folder where its loss plot goes makes it fail
  // after the first checkpoint, while the other process has nothing to do
  // but wait for the next step's all-reduce.
  fs::create_directories(f.dir.path + "/out/loss.svg");
  const auto [e0, e1] =
      run_pair_expecting_failure(f, f.model, f.data, "--max-steps 3 --batch 2 --save-every 1 --dist-timeout 45");
  CHECK_THAT(e0, Catch::Contains("loss.svg"));
  // Without the gate: gloo's "Connection closed by peer" in the next step.
  CHECK_THAT(e1, Catch::Contains("process 0 of 2 failed while writing the metrics log, a checkpoint or a gradient dump"));
  // The checkpoint written before the failure stays whole and resumable.
  CHECK(fs::exists(f.dir.path + "/out/checkpoints/step-00000001"));
}

TEST_CASE("kill -9 mid-run then --resume reproduces the uninterrupted run bit for bit", "[cli]") {
  // Longer examples so a step takes long enough to be killed in the middle.
  Fixture f(48, 60, 120);
  const std::string args = "--max-steps 14 --save-every 4 --batch 4 --val-fraction 0.1 --max-seq-len 128";
  const auto straight = test::run_command(train_cmd(f.model, f.data, f.dir.path + "/straight", args), f.dir.path);
  REQUIRE(straight.exit_code == 0);
  const auto straight_summary = json::parse(straight.out);

  const std::string killed = f.dir.path + "/killed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string cmd = train_cmd(f.model, f.data, killed, args) + " >/dev/null 2>&1";
    ::execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Kill once step 9 is logged: past the step-8 checkpoint, before step 12's.
  const bool seen = wait_for_logged_step(killed + "/metrics.jsonl", 9);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(seen);
  REQUIRE(WIFSIGNALED(status));  // killed, not finished
  CHECK_FALSE(fs::exists(killed + "/adapter"));

  // A save killed midway leaves its temporary folder (here made by hand, for
  // a process id above pid_max, so none); the resumed run removes it. One of
  // a process that still runs (this test) is another save under way: kept.
  const std::string abandoned = killed + "/checkpoints/.tmp-step-00000010.4194305";
  const std::string live = killed + "/checkpoints/.tmp-step-00000010." + std::to_string(::getpid());
  fs::create_directories(abandoned);
  fs::create_directories(live);
  std::ofstream(abandoned + "/trainable.safetensors") << "partial";
  const auto resumed = test::run_command(train_cmd(f.model, f.data, killed, args + " --resume"), f.dir.path);
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  const auto summary = json::parse(resumed.out);
  CHECK(summary["resumed_from_step"].get<int64_t>() >= 8);
  // The summary is the whole run's, as the uninterrupted one's; also when
  // resumed again once finished (no step left to run).
  const auto again = test::run_command(train_cmd(f.model, f.data, killed, args + " --resume"), f.dir.path);
  REQUIRE(again.exit_code == 0);
  const auto finished = json::parse(again.out);
  CHECK(finished["resumed_from_step"] == 14);
  for (const auto* s : {&summary, &finished})
    for (const char* key : {"final_loss", "val_loss", "val_loss_step"}) {
      INFO(key << " " << s->dump());
      REQUIRE(s->contains(key));
      CHECK((*s)[key] == straight_summary[key]);
    }

  const auto a = losses_of(f.dir.path + "/straight/metrics.jsonl");
  const auto b = losses_of(killed + "/metrics.jsonl");
  REQUIRE(a.size() == 14);
  REQUIRE(b.size() == 14);
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("step " << i + 1);
    CHECK(a[i] == b[i]);  // exact
  }
  const auto va = test::metrics_lines(f.dir.path + "/straight/metrics.jsonl", "val_loss");
  const auto vb = test::metrics_lines(killed + "/metrics.jsonl", "val_loss");
  REQUIRE(va.size() == vb.size());
  for (size_t i = 0; i < va.size(); ++i) CHECK(va[i] == vb[i]);
  CHECK(test::read_text(f.dir.path + "/straight/adapter/adapter_model.safetensors") ==
        test::read_text(killed + "/adapter/adapter_model.safetensors"));
  // keep-checkpoints 2 (default): the two newest remain.
  std::vector<std::string> kept;
  for (const auto& e : fs::directory_iterator(killed + "/checkpoints")) kept.push_back(e.path().filename());
  std::sort(kept.begin(), kept.end());
  CHECK(kept == std::vector<std::string>{fs::path(live).filename(), "step-00000012", "step-00000014"});
}

// Starts `cmd` (a shell command line) in the background; its stderr goes to
// `err_path`.
pid_t start_process(const std::string& cmd, const std::string& err_path) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string line = "exec " + cmd + " >/dev/null 2>" + err_path;
    ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// The exit status of a started process, 128 + signal if a signal ended it.
int exit_code(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Two gloo processes of one `train_cmd` run on a free port; process r's
// stderr goes to DIR/rR.err.
struct GlooPair {
  const Fixture& f;
  std::string args;
  std::string port = std::to_string(test::free_port());

  pid_t launch(int rank, const std::string& out, const std::string& extra) const {
    return start_process("env MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " WORLD_SIZE=2 RANK=" +
                             std::to_string(rank) + " " + train_cmd(f.model, f.data, out, args + extra),
                         err_path(rank));
  }
  std::string err_path(int rank) const { return f.dir.path + "/r" + std::to_string(rank) + ".err"; }
  // Both processes to the end, which must be a success.
  void run(const std::string& out, const std::string& extra) const {
    const pid_t p0 = launch(0, out, extra), p1 = launch(1, out, extra);
    const int r1 = exit_code(p1), r0 = exit_code(p0);
    INFO("rank 0 stderr: " << test::read_text(err_path(0)));
    INFO("rank 1 stderr: " << test::read_text(err_path(1)));
    REQUIRE(r0 == 0);
    REQUIRE(r1 == 0);
  }
};

// What one process of a pair did after `signal` reached the other (`target`)
// once step `step` was logged: its exit code, how long it took after the
// signal, its stderr. The target is killed after (a stopped one too), so
// nothing outlives the test.
struct SignalledRun {
  bool seen = false;  // the step was logged before the signal
  int code = -1;
  double waited = 0;
  std::string err;
};
SignalledRun signal_mid_run(const GlooPair& pair, const std::string& out, int target, int signal, int64_t step) {
  const pid_t p0 = pair.launch(0, out, ""), p1 = pair.launch(1, out, "");
  const pid_t hit = target == 0 ? p0 : p1, other = target == 0 ? p1 : p0;
  SignalledRun r;
  r.seen = wait_for_logged_step(out + "/metrics.jsonl", step);
  ::kill(hit, signal);
  const auto t0 = std::chrono::steady_clock::now();
  r.code = exit_code(other);
  r.waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::kill(hit, SIGKILL);
  exit_code(hit);
  r.err = test::read_text(pair.err_path(1 - target));
  return r;
}

TEST_CASE("process 0 killed mid-run, its rendezvous store with it, stops the other with an error", "[cli]") {
  // The other learns it from gloo or from the peer watch's store connection,
  // whichever comes first; either way an error that says where it stopped,
  // not a crash inside libtorch or a wait until --dist-timeout.
  Fixture f(48, 60, 120);
  const GlooPair pair{f,
                      "--max-steps 20 --save-every 4 --batch 2 --max-seq-len 128 --val-fraction 0.1 "
                      "--dist-timeout 300 --dist-heartbeat 3"};
  const auto r = signal_mid_run(pair, f.dir.path + "/killed0", 0, SIGKILL, 5);
  INFO("process 1's stderr: " << r.err);
  REQUIRE(r.seen);
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::StartsWith("synthpert train: error: process 1 of 2 stopped while running step"));
  CHECK_THAT(r.err, Catch::Contains(") is complete: start all processes again with --resume"));
  CHECK(r.waited < 150);
}

TEST_CASE("a process killed mid-run stops the other at once, naming the step, and both resume", "[cli]") {
  Fixture f(48, 60, 120);
  const GlooPair pair{f, "--max-steps 20 --save-every 4 --batch 2 --max-seq-len 128 --val-fraction 0.1 "
                        "--dist-timeout 120"};
  pair.run(f.dir.path + "/straight", "");

  const std::string killed = f.dir.path + "/killed";
  // Kill process 1 once step 9 is logged: past the step-8 checkpoint.
  const auto r = signal_mid_run(pair, killed, 1, SIGKILL, 9);
  INFO("rank 0 stderr: " << r.err);
  REQUIRE(r.seen);
  CHECK(r.code == 1);
  // Before: gloo's bare "Connection reset by peer".
  CHECK_THAT(r.err, Catch::Contains("process 0 of 2 stopped while running step"));
  CHECK_THAT(r.err, Catch::Contains("another process most likely exited or was killed"));
  CHECK_THAT(r.err, Catch::Contains(") is complete: start all processes again with --resume"));
  // A lost connection, not the 120 s timeout.
  CHECK(r.waited < 60);
  CHECK_FALSE(fs::exists(killed + "/adapter"));

  pair.run(killed, " --resume");
  const auto a = losses_of(f.dir.path + "/straight/metrics.jsonl");
  const auto b = losses_of(killed + "/metrics.jsonl");
  REQUIRE(a.size() == 20);
  CHECK(a == b);  // exact: two-process sums are deterministic
  CHECK(test::read_text(f.dir.path + "/straight/adapter/adapter_model.safetensors") ==
        test::read_text(killed + "/adapter/adapter_model.safetensors"));
}

TEST_CASE("a frozen process stops the other after --dist-heartbeat, naming it, long before --dist-timeout", "[cli]") {
  // SIGSTOP leaves the frozen process's sockets open, so gloo, like NCCL for
  // any lost process, would wait in the all-reduce until --dist-timeout.
  Fixture f(48, 60, 120);
  const GlooPair pair{f,
                      "--max-steps 20 --save-every 4 --batch 2 --max-seq-len 128 --val-fraction 0.1 "
                      "--dist-timeout 300 --dist-heartbeat 3"};
  const int frozen = GENERATE(1, 0);  // process 0 also serves the rendezvous store
  const int other = 1 - frozen;
  const auto r = signal_mid_run(pair, f.dir.path + "/frozen" + std::to_string(frozen), frozen, SIGSTOP, 5);
  const std::string& err = r.err;
  INFO("frozen: process " << frozen << "; the other's stderr: " << err);
  REQUIRE(r.seen);
  CHECK(r.code == 1);
  CHECK_THAT(err, Catch::Contains("synthpert train: error: process " + std::to_string(other) +
                                  " of 2 stopped while running step"));
  if (frozen == 1)
    CHECK_THAT(err, Catch::Contains("process 1 of 2 sent no heartbeat for 3 s (noticed by process 0): it was "
                                    "most likely killed, froze or lost its node"));
  else
    // On libtorch 1.13 a frozen store's calls never return, so the watch's
    // clock notices ("did not answer within 3 s"); later TCPStore clients
    // give up after the deadline themselves ("failed (... timeout ...)").
    CHECK_THAT(err, Catch::Contains("the rendezvous store at 127.0.0.1:" + pair.port + " (served by process 0) ") &&
                        Catch::Contains(": process 0 was most likely killed, froze or lost its node"));
  // Step 4's checkpoint was written before step 5 was logged.
  CHECK_THAT(err, Catch::Contains("/checkpoints/step-"));
  CHECK_THAT(err, Catch::Contains(") is complete: start all processes again with --resume"));
  // The last beat seen can precede the freeze by up to two beat intervals
  // (3 s / 8 each).
  CHECK(r.waited >= 3 - 2 * 0.375);
  CHECK(r.waited < 150);  // the heartbeat, not the 300 s timeout
}

TEST_CASE("Ctrl-C on one process ends the step on both, checkpoints it, and --resume goes on bit for bit", "[cli]") {
  Fixture f(48, 60, 120);
  // No periodic checkpoint: the interrupted step's is the only one.
  const GlooPair pair{f, "--max-steps 16 --save-every 100 --batch 2 --max-seq-len 128 --val-fraction 0.1 "
                        "--dist-timeout 120"};
  pair.run(f.dir.path + "/straight", "");

  const std::string stopped = f.dir.path + "/stopped";
  const pid_t p0 = pair.launch(0, stopped, ""), p1 = pair.launch(1, stopped, "");
  const bool seen = wait_for_logged_step(stopped + "/metrics.jsonl", 3);
  ::kill(p1, SIGINT);  // process 1 only, as when one node's launcher is stopped
  const int r1 = exit_code(p1), r0 = exit_code(p0);
  const std::string e0 = test::read_text(pair.err_path(0)), e1 = test::read_text(pair.err_path(1));
  INFO("rank 0 stderr: " << e0);
  INFO("rank 1 stderr: " << e1);
  REQUIRE(seen);
  CHECK(r0 == 130);
  CHECK(r1 == 130);
  CHECK_THAT(e1, Catch::Contains("finishing this step and saving a checkpoint"));
  CHECK_THAT(e0, Catch::Contains("synthpert train: interrupted after step") &&
                     Catch::Contains("with --resume to continue"));
  CHECK_FALSE(fs::exists(stopped + "/adapter"));
  std::vector<std::string> kept;
  for (const auto& e : fs::directory_iterator(stopped + "/checkpoints")) kept.push_back(e.path().filename());
  REQUIRE(kept.size() == 1);
  const int64_t at = std::stoll(kept[0].substr(kept[0].find('-') + 1));
  CHECK(at >= 3);
  CHECK(at < 16);
  CHECK(static_cast<int64_t>(losses_of(stopped + "/metrics.jsonl").size()) == at);

  pair.run(stopped, " --resume");
  CHECK(losses_of(f.dir.path + "/straight/metrics.jsonl") == losses_of(stopped + "/metrics.jsonl"));
  CHECK(test::read_text(f.dir.path + "/straight/adapter/adapter_model.safetensors") ==
        test::read_text(stopped + "/adapter/adapter_model.safetensors"));
}

TEST_CASE("a process whose peers never come stops after --dist-timeout, saying what to check", "[cli]") {
  Fixture f;
  // Process 1 of 2 with no process 0: nothing listens on the port.
  const auto r = test::run_command("env MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(test::free_port()) +
                                       " WORLD_SIZE=2 RANK=1 " +
                                       train_cmd(f.model, f.data, f.dir.path + "/out", "--dist-timeout 2"),
                                   f.dir.path);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("process 1 of 2 could not form the process group at 127.0.0.1:"));
  CHECK_THAT(r.err, Catch::Contains("every process must start within --dist-timeout (2 s)"));
  CHECK_FALSE(fs::exists(f.dir.path + "/out"));
}

TEST_CASE("train writes metrics, a loss plot, a PEFT adapter and a merged model", "[cli]") {
  Fixture f;
  const std::string out = f.dir.path + "/run";
  // Files a model folder carries beside its weights: the merged one must
  // carry them too, or eval, serve and generate cannot take it.
  test::write_text(f.model + "/generation_config.json", R"({"eos_token_id": [2, 3]})");
  test::write_text(f.model + "/special_tokens_map.json", R"({"eos_token": "</s>"})");
  auto r = test::run_command(
      train_cmd(f.model, f.data, out, "--max-steps 5 --batch 3 --merge --val-fraction 0.2"), f.dir.path);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto summary = json::parse(r.out);
  CHECK(summary["val_examples"] == 4);  // ceil(0.2 x 16)
  CHECK(summary["train_examples"] == 12);
  CHECK(summary["output"] == out + "/adapter");
  CHECK(summary["merged_model"] == out + "/model");
  const auto train_lines = test::metrics_lines(out + "/metrics.jsonl", "loss");
  REQUIRE(train_lines.size() == 5);
  for (const char* key : {"step", "loss", "lr", "tokens_per_s", "peak_mem_bytes"})
    CHECK(train_lines[0].contains(key));
  CHECK(test::metrics_lines(out + "/metrics.jsonl", "val_loss").size() == 1);
  const std::string svg = test::read_text(out + "/loss.svg");
  CHECK(svg.rfind("<svg", 0) == 0);
  CHECK(svg.find("<polyline") != std::string::npos);
  CHECK(svg.find("<circle") != std::string::npos);  // the val point
  const auto cfg = json::parse(test::read_text(out + "/adapter/adapter_config.json"));
  CHECK(cfg["peft_type"] == "LORA");
  CHECK(cfg["r"] == 4);
  CHECK(cfg["target_modules"].size() == 7);

  // The merged checkpoint, run through the independent python forward,
  // gives the logits our engine gives with the adapter applied on the fly.
  const std::vector<int64_t> ids = {1, 17, 99, 4, 56, 23, 0, 100};
  auto adapter_logits = test::run_command(test::synthpert_bin() + " logits --model " + f.model +
                                              " --adapter " + out + "/adapter --ids " + test::join_ids(ids),
                                          f.dir.path);
  REQUIRE(adapter_logits.exit_code == 0);
  const auto j = json::parse(adapter_logits.out);
  std::vector<float> ours;
  for (const auto& row : j["logits"])
    for (const auto& v : row) ours.push_back(v.get<float>());
  for (const char* name : {"generation_config.json", "special_tokens_map.json"})
    CHECK(test::read_text(out + "/model/" + name) == test::read_text(f.model + "/" + name));
  const auto ref = test::reference_logits(out + "/model", ids);
  REQUIRE(ref.size() == ours.size());
  float worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(ref[i] - ours[i]));
  CHECK(worst <= 1e-4);
  // The base model's logits differ: the adapter did change something.
  const auto base = test::reference_logits(f.model, ids);
  float moved = 0;
  for (size_t i = 0; i < ref.size(); ++i) moved = std::max(moved, std::abs(base[i] - ours[i]));
  CHECK(moved > 1e-3);

  auto gen = test::run_command(test::synthpert_bin() + " generate --model " + f.model + " --adapter " +
                                   out + "/adapter --ids 1,2,3 --max-new-tokens 4 --ignore-eos",
                               f.dir.path);
  REQUIRE(gen.exit_code == 0);
  CHECK(json::parse(gen.out)["ids"].size() == 4);
}

TEST_CASE("bad input to train is a clear error and changes nothing", "[cli]") {
  Fixture f(8);
  auto expect_error = [&](const std::string& cmd, const std::string& phrase) {
    const auto r = test::run_command(cmd, f.dir.path);
    INFO(cmd << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(phrase) != std::string::npos);
  };
  const std::string d = f.dir.path;
  {
    std::ofstream(d + "/cols.csv") << "prompt,assistant_response\n\"q\",\"a\"\n";
    expect_error(train_cmd(f.model, d + "/cols.csv", d + "/o1", ""), "missing column(s) user_prompt");
  }
  {
    std::ofstream(d + "/empty.csv") << "user_prompt,assistant_response,cell_type\n\"q\",\"  \",k562\n";
    expect_error(train_cmd(f.model, d + "/empty.csv", d + "/o2", ""), "empty assistant turn");
  }
  {
    std::ofstream(d + "/roles.jsonl")
        << R"({"messages":[{"role":"user","content":"q"},{"role":"bot","content":"a"}]})" << "\n";
    expect_error(train_cmd(f.model, d + "/roles.jsonl", d + "/o3", ""), "has role 'bot'");
  }
  expect_error(train_cmd(f.model, f.data, d + "/o4", "--max-seq-len 6 --overlong error"),
               "exceed --max-seq-len 6");
  expect_error(train_cmd(f.model, f.data, d + "/o5", "--targets q,kv"), "unknown module 'kv'");
  {
    std::ofstream(d + "/vocab.jsonl") << R"({"ids":[1,2,300],"loss_mask":[0,1,1]})" << "\n";
    expect_error(train_cmd(f.model, d + "/vocab.jsonl", d + "/o6", "--val-fraction 0"), "outside the model's vocabulary");
  }
  {
    std::ofstream(d + "/nomask.jsonl") << R"({"ids":[1,2,3],"loss_mask":[1,0,0]})" << "\n";
    expect_error(train_cmd(f.model, d + "/nomask.jsonl", d + "/o7", "--val-fraction 0"), "no loss tokens");
  }
  expect_error(train_cmd(f.model, f.data, d + "/o8", "--resume"), "no checkpoint to resume");

  // A finished run: resuming with another learning rate, or starting afresh
  // in its folder, is refused before anything is written.
  const std::string run = d + "/run";
  REQUIRE(test::run_command(train_cmd(f.model, f.data, run, "--max-steps 2"), d).exit_code == 0);
  const std::string metrics = test::read_text(run + "/metrics.jsonl");
  const std::string adapter = test::read_text(run + "/adapter/adapter_model.safetensors");
  expect_error(train_cmd(f.model, f.data, run, "--max-steps 2 --resume --weight-decay 0.5"),
               "weight_decay: checkpoint 0.0, now 0.5");
  expect_error(train_cmd(f.model, f.data, run, "--max-steps 2"), "pass --resume to continue it");
  // The starting adapter's config decides its shape: conflicting flags are
  // refused, not ignored. f16 has no loss scaling: refused.
  expect_error(train_cmd(f.model, f.data, d + "/o9", "--init-adapter " + run + "/adapter"),
               "cannot be combined with --init-adapter");
  expect_error(train_cmd(f.model, f.data, d + "/o10", "--dtype f16"), "--dtype f16 cannot train");
  auto bare_cmd = [&](const std::string& out, const std::string& extra) {
    return test::synthpert_bin() + " train --model " + f.model + " --data " + f.data + " --out " + d + out +
           " --no-progress " + extra;
  };
  expect_error(bare_cmd("/o11", "--full --init-adapter " + run + "/adapter"), "--init-adapter starts a LoRA run");
  expect_error(bare_cmd("/o11b", "--full --lora-r 8"), "--lora-r shapes a LoRA adapter; --full trains the weights");
  expect_error(bare_cmd("/o11c", "--full --merge"), "--merge merges a LoRA adapter into the model");
  // Settings that would diverge at once, or quietly read as another.
  expect_error(train_cmd(f.model, f.data, d + "/o12", "--adam-beta1 1"), "--adam-beta1 must be in [0, 1)");
  expect_error(train_cmd(f.model, f.data, d + "/o12b", "--dist-heartbeat -1"),
               "--dist-heartbeat must be 0 (off) or positive, got -1");
  expect_error(bare_cmd("/o13", "--lr -1e-4"), "--lr must be a finite number >= 0");
  expect_error(train_cmd(f.model, f.data, d + "/o14", "--save-every -1"), "--save-every must be >= 0");
  expect_error(bare_cmd("/o15", "--lora-alpha 0"), "--lora-alpha must be positive");
  // Where step 1's gradient goes is checked before any step runs.
  expect_error(train_cmd(f.model, f.data, d + "/o16", "--grad-dump " + d + "/no-such/g.safetensors"),
               "/no-such does not exist");
  expect_error(train_cmd(f.model, f.data, d + "/o17", "--grad-dump " + d), "is a folder");
  {
    // Options the batch plan, the schedule and the adapter refuse are
    // refused before the model loads (minutes for a large one): with weights
    // that cannot be read, the option's error still comes first.
    fs::copy(f.model, d + "/unreadable");
    for (const auto& e : fs::directory_iterator(d + "/unreadable"))
      if (e.path().extension() == ".safetensors") std::ofstream(e.path()) << "not safetensors";
    const std::string unreadable = d + "/unreadable";
    expect_error(train_cmd(unreadable, f.data, d + "/o18", "--batch 0"), "--batch must be at least 1");
    expect_error(train_cmd(unreadable, f.data, d + "/o19", "--warmup-ratio 2"), "--warmup-ratio must be in [0, 1]");
    expect_error(test::synthpert_bin() + " train --model " + unreadable + " --data " + f.data + " --out " + d +
                     "/o20 --no-progress --lora-r 0",
                 "--lora-r must be at least 1");
    expect_error(train_cmd(unreadable, f.data, d + "/o21", "--max-steps 2"), "safetensors");  // the model's own error
  }
  for (const char* o : {"/o11", "/o12", "/o13", "/o14", "/o15", "/o16", "/o17", "/o18", "/o19", "/o20"})
    CHECK_FALSE(fs::exists(d + o));
  {
    // A learning rate that overflows the weights: the run stops at the first
    // non-finite loss, before the optimizer writes NaN anywhere; the step-1
    // checkpoint stays finite.
    const auto r = test::run_command(bare_cmd("/nan", "--lora-r 4 --lr 1e30 --max-steps 4 --save-every 1 --val-fraction 0"), d);
    INFO(r.err);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("stopped before the optimizer step") && Catch::Contains("--resume from it"));
    CHECK_FALSE(fs::exists(d + "/nan/adapter"));
    for (const auto& e : fs::directory_iterator(d + "/nan/checkpoints")) {
      const auto masters = engine::load_tensors((e.path() / "trainable.safetensors").string());
      for (const auto& [name, t] : masters) CHECK(torch::isfinite(t).all().item<bool>());
    }
  }
  fs::copy(f.model, d + "/tokenizer-copy");
  expect_error(train_cmd(f.model, f.data, run, "--max-steps 2 --resume --tokenizer " + d + "/tokenizer-copy"),
               "\"tokenizer\":\"" + d + "/tokenizer-copy\"");
  CHECK(test::read_text(run + "/metrics.jsonl") == metrics);
  CHECK(test::read_text(run + "/adapter/adapter_model.safetensors") == adapter);
}

TEST_CASE("--init-adapter starts the float32 masters from the file; val_loss is measured at the last step", "[cli]") {
  Fixture f;
  const std::string d = f.dir.path;
  REQUIRE(test::run_command(train_cmd(f.model, f.data, d + "/first", "--max-steps 2 --val-fraction 0"), d).exit_code == 0);
  const std::string start = d + "/first/adapter";
  // lr 0 in bf16: the saved adapter (written from the masters) must be the
  // starting file's float32 values, not their bf16 roundings.
  const std::string cmd = test::synthpert_bin() + " train --model " + f.model + " --data " + f.data + " --out " + d +
                          "/second --init-adapter " + start +
                          " --lr 0 --dtype bf16 --max-steps 5 --eval-every 4 --val-fraction 0.25 --no-progress";
  const auto r = test::run_command(cmd, d);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto before = engine::load_tensors(start + "/adapter_model.safetensors");
  const auto after = engine::load_tensors(d + "/second/adapter/adapter_model.safetensors");
  REQUIRE(before.size() == after.size());
  bool some_not_bf16 = false;
  for (const auto& [name, t] : before) {
    REQUIRE(after.count(name));
    CHECK(torch::equal(t, after.at(name)));
    some_not_bf16 = some_not_bf16 || !torch::equal(t, t.to(torch::kBFloat16).to(torch::kFloat32));
  }
  CHECK(some_not_bf16);  // else the check above could not tell
  // --eval-every 4 over 5 steps: at 4, and at the last step.
  std::vector<int64_t> val_steps;
  for (const auto& j : test::metrics_lines(d + "/second/metrics.jsonl", "val_loss")) val_steps.push_back(j["step"]);
  CHECK(val_steps == std::vector<int64_t>{4, 5});
  const auto summary = json::parse(r.out);
  CHECK(summary["val_loss_step"] == 5);
  CHECK(summary["val_truncated"] == 0);
}

// Optimizer pieces, launch variables, and training modes (activation
// checkpointing, bf16 masters, QLoRA, packing) checked against the plain
// fp32 path that the golden tests tie to the torch reference.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "tests/trainer/trainer_test_util.h"
#include "trainer/adamw.h"
#include "trainer/distributed.h"
#include "trainer/lora.h"
#include "trainer/lr_schedule.h"
#include "trainer/param_set.h"
#include "trainer/trainer.h"

using namespace synthpert;

TEST_CASE("schedules follow Hugging Face's warmup formulas", "[optim]") {
  trainer::LrSchedule s{trainer::Schedule::kLinear, 1.0, 2, 10};
  CHECK(s.lr(0) == 0.0);
  CHECK(s.lr(1) == 0.5);
  CHECK(s.lr(2) == 1.0);
  CHECK(s.lr(6) == 0.5);  // (10 - 6) / (10 - 2)
  CHECK(s.lr(10) == 0.0);
  s.kind = trainer::Schedule::kCosine;
  CHECK(s.lr(2) == 1.0);
  CHECK(s.lr(6) == Approx(0.5));  // half way: 0.5 (1 + cos(pi/2))
  CHECK(s.lr(4) == Approx(0.5 * (1 + std::cos(M_PI / 4))));
  s.kind = trainer::Schedule::kConstant;
  CHECK(s.lr(9) == 1.0);
  CHECK(trainer::warmup_from(0, 0.03, 100) == 3);
  CHECK(trainer::warmup_from(5, 0.5, 100) == 5);
  CHECK_THROWS_WITH(trainer::parse_schedule("step"), Catch::Contains("--schedule"));
}

TEST_CASE("AdamW's first steps match the closed form", "[optim]") {
  // Step 1: m_hat = g, v_hat = g^2, so p1 = p0 (1 - lr wd) - lr g / (|g| + eps).
  trainer::AdamWOptions o;
  o.weight_decay = 0.1;
  trainer::AdamW opt(3, torch::kCPU, o);
  auto p = torch::tensor({1.0f, -2.0f, 0.5f});
  const auto g = torch::tensor({0.3f, -0.001f, 0.0f});
  const auto mask = torch::tensor({1.0f, 1.0f, 0.0f});
  opt.step(p, g, mask, 0.01);
  CHECK(p[0].item<float>() == Approx(1.0 * (1 - 0.001) - 0.01 * 0.3 / (0.3 + 1e-8)).epsilon(1e-6));
  CHECK(p[1].item<float>() == Approx(-2.0 * (1 - 0.001) + 0.01 * 0.001 / (0.001 + 1e-8)).epsilon(1e-6));
  CHECK(p[2].item<float>() == 0.5f);  // no decay, zero gradient
  // Step 2 with g2: m = 0.9*0.1 g1 + 0.1 g2 ... checked for one element by hand.
  const double g1 = 0.3, g2 = -0.2, p1 = p[0].item<float>();
  opt.step(p, torch::tensor({-0.2f, 0.0f, 0.0f}), mask, 0.01);
  const double m = 0.9 * 0.1 * g1 + 0.1 * g2, v = 0.999 * 0.001 * g1 * g1 + 0.001 * g2 * g2;
  const double expect = p1 * (1 - 0.001) -
                        0.01 / (1 - 0.81) * m / (std::sqrt(v) / std::sqrt(1 - 0.999 * 0.999) + 1e-8);
  CHECK(p[0].item<float>() == Approx(expect).epsilon(1e-6));
  CHECK(opt.steps() == 2);
}

TEST_CASE("global-norm clipping as clip_grad_norm_", "[optim]") {
  auto g = torch::tensor({3.0f, 4.0f});
  CHECK(trainer::clip_grad_norm(g, 1.0) == Approx(5.0));
  CHECK(g[0].item<float>() == Approx(3.0 / (5.0 + 1e-6)));
  auto h = torch::tensor({0.3f, 0.4f});
  trainer::clip_grad_norm(h, 1.0);
  CHECK(h[1].item<float>() == 0.4f);  // below the limit: untouched
}

TEST_CASE("launch variables: torchrun, Slurm, and their errors", "[dist]") {
  auto from = [](std::map<std::string, std::string> env) {
    return trainer::read_dist_env([env](const char* k) -> const char* {
      auto it = env.find(k);
      return it == env.end() ? nullptr : it->second.c_str();
    });
  };
  auto single = from({});
  CHECK(single.world == 1);
  CHECK(single.launcher == "single");
  auto tr = from({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node1"},
                  {"MASTER_PORT", "1234"}});
  CHECK(tr.launcher == "torchrun");
  CHECK(tr.rank == 3);
  CHECK(tr.local_rank == 1);
  CHECK(tr.master_addr == "node1");
  CHECK(tr.master_port == 1234);
  auto sl = from({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}, {"MASTER_ADDR", "n0"}});
  CHECK(sl.launcher == "slurm");
  CHECK(sl.rank == 5);
  CHECK(sl.world == 8);
  CHECK(sl.master_port == 29500);
  // Slurm variables without MASTER_ADDR are an ordinary job step: one process.
  CHECK(from({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}}).world == 1);
  CHECK_THROWS_WITH(from({{"RANK", "4"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "a"}}),
                    Catch::Contains("rank 4 is not below the world size 4"));
  CHECK_THROWS_WITH(from({{"RANK", "0"}, {"WORLD_SIZE", "2"}}), Catch::Contains("MASTER_ADDR is not set"));
  CHECK_THROWS_WITH(from({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), Catch::Contains("RANK must be a non-negative integer"));
  // The GPU of each process: its own of all, or the one it is shown.
  CHECK(trainer::local_cuda_index(3, 8) == 3);
  CHECK(trainer::local_cuda_index(3, 1) == 0);
  CHECK(trainer::local_cuda_index(0, 1) == 0);
  CHECK_THROWS_WITH(trainer::local_cuda_index(4, 4), Catch::Contains("local rank 4 has no GPU of its own"));
  CHECK_THROWS_WITH(trainer::local_cuda_index(0, 0), Catch::Contains("sees no CUDA device"));
}

namespace {

struct Run {
  std::vector<double> losses;
  std::map<std::string, torch::Tensor> grads;  // of step 1
  trainer::TrainResult result;
};

Run train(trainer::TrainOptions o, const trainer::SftDataset& data) {
  Run r;
  trainer::TrainHooks h;
  h.on_step = [&](const trainer::StepRecord& s) { r.losses.push_back(s.loss); };
  h.on_gradients = [&](const trainer::StepRecord& s, const trainer::ParamSet& p) {
    if (s.step != 1) return;
    for (auto& [name, t] : p.views(p.grad())) r.grads[name] = t.clone();
  };
  auto comm = trainer::Communicator::create({}, torch::kCPU, std::chrono::seconds(10));
  r.result = trainer::run_training(o, data, {}, *comm, h);
  return r;
}

trainer::TrainOptions options(const std::string& dir, const std::string& out) {
  trainer::TrainOptions o;
  o.model_dir = dir + "/model";
  o.out_dir = dir + "/" + out;
  o.lora.r = 4;
  o.lora.alpha = 8;
  o.lora.target_modules = trainer::parse_lora_targets("all");
  o.lr = 1e-2;
  o.batch = 3;
  o.max_steps = 4;
  o.seed = 2;
  o.progress = false;
  return o;
}

}  // namespace

TEST_CASE("activation checkpointing recomputes the same gradients, dropout included", "[optim]") {
  test::TempDir dir("optim-ckpt");
  test::make_model(dir.path + "/model");
  trainer::SftDataset data;
  data.examples = test::random_examples(9, 101, 5);
  auto plain = options(dir.path, "plain");
  plain.lora.dropout = 0.3;  // the recompute must draw the same masks
  auto ckpt = plain;
  ckpt.out_dir = dir.path + "/ckpt";
  ckpt.checkpoint_layers = true;
  const auto a = train(plain, data), b = train(ckpt, data);
  REQUIRE(a.losses.size() == 4);
  for (size_t i = 0; i < 4; ++i) CHECK(b.losses[i] == Approx(a.losses[i]).epsilon(1e-6));
  for (const auto& [name, g] : a.grads) {
    INFO(name);
    CHECK((g - b.grads.at(name)).abs().max().item<double>() <= 1e-6 * (1 + g.abs().max().item<double>()));
  }
  // Dropout is live: without it the run differs.
  auto nodrop = plain;
  nodrop.out_dir = dir.path + "/nodrop";
  nodrop.lora.dropout = 0;
  CHECK(train(nodrop, data).losses[1] != a.losses[1]);
}

TEST_CASE("packing gives the losses of padded micro-batches", "[optim]") {
  test::TempDir dir("optim-pack");
  test::make_model(dir.path + "/model");
  trainer::SftDataset data;
  data.examples = test::random_examples(12, 101, 6, 3, 20);
  auto padded = options(dir.path, "padded");
  auto packed = padded;
  packed.out_dir = dir.path + "/packed";
  packed.packing = true;
  packed.max_seq_len = 32;
  const auto a = train(padded, data), b = train(packed, data);
  for (size_t i = 0; i < a.losses.size(); ++i) CHECK(b.losses[i] == Approx(a.losses[i]).epsilon(1e-6));
}

TEST_CASE("bf16 compute keeps float32 masters and follows the float32 run", "[optim]") {
  test::TempDir dir("optim-bf16");
  test::make_model(dir.path + "/model");
  trainer::SftDataset data;
  data.examples = test::random_examples(9, 101, 7);
  auto f32 = options(dir.path, "f32");
  auto bf16 = f32;
  bf16.out_dir = dir.path + "/bf16";
  bf16.dtype = "bf16";
  const auto a = train(f32, data), b = train(bf16, data);
  // bf16 keeps 8 mantissa bits: losses agree to about 1%.
  for (size_t i = 0; i < a.losses.size(); ++i) CHECK(b.losses[i] == Approx(a.losses[i]).epsilon(2e-2));
  // The saved adapter holds the float32 masters: it is not bf16-representable.
  const auto t = engine::load_tensors(b.result.output_dir + "/adapter_model.safetensors");
  const auto& B = t.at("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
  CHECK(B.scalar_type() == torch::kFloat32);
  CHECK_FALSE(torch::equal(B, B.to(torch::kBFloat16).to(torch::kFloat32)));
}

TEST_CASE("QLoRA trains an adapter over frozen NF4 weights", "[optim]") {
  test::TempDir dir("optim-qlora");
  // NF4 quantises blocks of 64 values: every projection's size is a multiple.
  auto c = test::odd_config();
  c.hidden_size = 96;
  c.head_dim = 32;
  c.intermediate_size = 160;
  test::make_model(dir.path + "/model", 7, c);
  trainer::SftDataset data;
  data.examples = test::random_examples(4, 101, 8);
  auto o = options(dir.path, "q");
  o.qlora = true;
  o.batch = 4;
  o.max_steps = 8;
  o.lr = 3e-2;
  o.schedule = trainer::Schedule::kConstant;
  const auto r = train(o, data);
  CHECK(r.losses.back() < r.losses.front() - 0.1);  // memorising four examples
  engine::LoadOptions lo;
  lo.nf4 = true;
  auto model = engine::Transformer::load(dir.path + "/model", lo);
  engine::load_peft_adapter(r.result.output_dir, model);
  CHECK(model.layers[0].q_proj.nf4);
  CHECK(model.layers[0].q_proj.lora);
  auto full = o;
  full.full = true;
  full.out_dir = dir.path + "/qf";
  CHECK_THROWS_WITH(train(full, data), Catch::Contains("--full and --qlora exclude each other"));

  // Double-quantised NF4 scales: the same run within the scales' 8-bit error.
  auto dq = o;
  dq.double_quant = true;
  dq.out_dir = dir.path + "/qd";
  const auto rd = train(dq, data);
  REQUIRE(rd.losses.size() == r.losses.size());
  for (size_t i = 0; i < r.losses.size(); ++i) CHECK(rd.losses[i] == Approx(r.losses[i]).epsilon(2e-2));
  CHECK(rd.losses != r.losses);  // the scales did change
  auto plain_dq = o;
  plain_dq.qlora = false;
  plain_dq.double_quant = true;
  plain_dq.out_dir = dir.path + "/pd";
  CHECK_THROWS_WITH(train(plain_dq, data), Catch::Contains("--double-quant needs --qlora"));
}

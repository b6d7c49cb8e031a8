// bench_attention: attention forward/backward TFLOP/s at head dim 128, causal,
// bf16, sequence lengths 512..16k with batch x heads filling the GPU (16k
// tokens per step, 16 heads), against PyTorch scaled_dot_product_attention
// (flash backend) measured by benchmarks/peer_attention.py in the same run.
// The "fwd" rows run AttentionPath::kAuto, the engine's choice; on an sm_90
// device each forward kernel also gets rows of its own (mma.sync, wgmma with
// one and with two warpgroups per block), the measurements kAuto's rule
// rests on (kernels/attention.h). The backward gets one row per key block of
// the mma.sync kernel (64 and 128 keys per thread block), for
// attention_backward_key_block(), and on an sm_90 device a row for the wgmma
// backward, for attention_backward_path().
//
// Each measurement: warm-up, then per iteration an L2 flush (a 256 MiB
// memset) followed by the timed call; the median is reported. Results go to
// benchmarks/results/attention-<gpu>-<date>.{json,md}.
//
//   bench_attention [--out-dir DIR] [--python EXE] [--no-peer] [--iters N]
#include <cuda_runtime.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "benchmarks/bench_util.h"
#include "kernels/attention.h"

namespace {

using namespace synthpert::bench;
using synthpert::kernels::AttentionBackwardArgs;
using synthpert::kernels::AttentionForwardArgs;
using synthpert::kernels::DType;

struct Options : CommonOptions {
  int warmup = 5;
  int total_tokens = 16384;
  int heads = 16;
  int head_dim = 128;
  std::vector<int> seqlens = {512, 1024, 2048, 4096, 8192, 16384};
};

void* device_random(size_t n, uint32_t seed) {
  void* p = nullptr;
  cuda_check(cudaMalloc(&p, n * 2), "cudaMalloc");
  fill_random_bf16(p, n, seed);
  return p;
}

// Causal attention FLOPs: two [T, T] x D matmuls, half of them masked.
double fwd_flops(int batch, int heads, int seqlen, int d) { return 4.0 * batch * heads * double(seqlen) * seqlen * d / 2; }

nlohmann::json run_peer(const Options& o, const std::string& tmp_json) {
  std::ostringstream cmd;
  cmd << o.python << " " << SYNTHPERT_SOURCE_DIR << "/benchmarks/peer_attention.py --total-tokens " << o.total_tokens
      << " --heads " << o.heads << " --head-dim " << o.head_dim << " --iters " << o.iters << " --warmup " << o.warmup
      << " --out " << tmp_json << " --seqlens";
  for (int s : o.seqlens) cmd << " " << s;
  return synthpert::bench::run_peer(cmd.str(), tmp_json);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  parse_bench_args("bench_attention", "", argc, argv, o, [](const std::string&, const auto&) { return false; });
  cudaDeviceProp prop{};
  cuda_check(cudaGetDeviceProperties(&prop, 0), "device properties");
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);

  const std::string date = today();
  const std::string stem = o.out_dir + "/attention-" + slug(prop.name) + "-" + date;

  nlohmann::json peer = o.peer ? run_peer(o, stem + ".peer.tmp.json") : nlohmann::json::object();

  const size_t flush_bytes = size_t(256) << 20;
  void* flush = nullptr;
  cuda_check(cudaMalloc(&flush, flush_bytes), "cudaMalloc flush");
  Timing timing;
  timing.warmup = o.warmup;
  timing.iters = o.iters;
  timing.flush = flush;
  timing.flush_bytes = flush_bytes;

  const int N = o.total_tokens, H = o.heads, D = o.head_dim;
  const size_t elems = size_t(N) * H * D;
  void *q = device_random(elems, 1), *k = device_random(elems, 2), *v = device_random(elems, 3),
       *dout = device_random(elems, 4);
  void *out = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr, *lse = nullptr, *ws = nullptr, *cu = nullptr;
  for (void** p : {&out, &dq, &dk, &dv}) cuda_check(cudaMalloc(p, elems * 2), "cudaMalloc");
  cuda_check(cudaMalloc(&lse, size_t(N) * H * sizeof(float)), "cudaMalloc lse");
  cuda_check(cudaMalloc(&ws, synthpert::kernels::attention_backward_workspace_bytes(N, H, D)), "cudaMalloc workspace");
  cuda_check(cudaMalloc(&cu, (size_t(N) + 1) * sizeof(int32_t)), "cudaMalloc cu_seqlens");  // batch <= N

  // Where the wgmma forward can run (sm_90 with sm_90a code), every forward gets its own rows.
  const bool wgmma = synthpert::kernels::attention_wgmma_available();
  nlohmann::json rows = nlohmann::json::array();
  std::ostringstream md;
  md << "| name | ours TFLOP/s | peer TFLOP/s | ratio |\n|---|---|---|---|\n";
  for (int seqlen : o.seqlens) {
    const int batch = std::max(1, N / seqlen);
    std::vector<int32_t> cu_host(batch + 1);
    for (int b = 0; b <= batch; ++b) cu_host[b] = b * seqlen;
    cuda_check(cudaMemcpy(cu, cu_host.data(), cu_host.size() * 4, cudaMemcpyHostToDevice), "upload cu_seqlens");

    synthpert::kernels::AttentionProblem p;
    p.dtype = DType::kBF16;
    p.head_dim = D;
    p.causal = true;
    p.softmax_scale = 1.f / std::sqrt(float(D));
    p.batch = batch;
    p.heads = H;
    p.kv_heads = H;
    p.total_tokens = int64_t(batch) * seqlen;
    p.max_seqlen = seqlen;
    p.cu_seqlens = static_cast<const int32_t*>(cu);
    AttentionForwardArgs fa;
    fa.problem = p;
    fa.q = {q, H * D, D};
    fa.k = {k, H * D, D};
    fa.v = {v, H * D, D};
    fa.out = {out, H * D, D};
    fa.lse_HN = static_cast<float*>(lse);
    AttentionBackwardArgs ba;
    ba.problem = p;
    ba.q = fa.q;
    ba.k = fa.k;
    ba.v = fa.v;
    ba.out = {out, H * D, D};
    ba.dout = {dout, H * D, D};
    ba.lse_HN = static_cast<const float*>(lse);
    ba.dq = {dq, H * D, D};
    ba.dk = {dk, H * D, D};
    ba.dv = {dv, H * D, D};
    ba.workspace = ws;

    const double f_ms = median_ms(timing, [&] { synthpert::kernels::attention_forward(fa, nullptr); });
    const double flops = fwd_flops(batch, H, seqlen, D);
    struct Result {
      std::string label;  // row name prefix
      const char* dir;    // the peer's direction
      double tflops;
    };
    std::vector<Result> results = {{"fwd", "fwd", flops / (f_ms * 1e-3) / 1e12}};
    for (int key_block : {64, 128}) {  // both backward kernels; kAuto runs one of them
      AttentionBackwardArgs bk = ba;
      bk.key_block = key_block;
      const double b_ms = median_ms(timing, [&] { synthpert::kernels::attention_backward(bk, nullptr); });
      results.push_back({"bwd " + std::to_string(key_block) + " keys", "bwd", 2.5 * flops / (b_ms * 1e-3) / 1e12});
    }
    if (wgmma) {  // the sm_90a backward (128 keys per block), for attention_backward_path()
      AttentionBackwardArgs bk = ba;
      bk.path = synthpert::kernels::AttentionPath::kWgmma;
      const double b_ms = median_ms(timing, [&] { synthpert::kernels::attention_backward(bk, nullptr); });
      results.push_back({"bwd wgmma", "bwd", 2.5 * flops / (b_ms * 1e-3) / 1e12});
    }
    if (wgmma) {
      // Every forward kAuto can pick, on the same problem against the same
      // peer: mma.sync, then the sm_90a kernel with blocks of 1 and 2
      // warpgroups and 64- ("x1", "x2") or 128-key tiles ("x1 n128", "x2 n128"),
      // and the warp-specialised ping-pong kernel ("x2 pingpong", "x2 n128
      // pingpong": a producer warpgroup and two computing ones), its
      // producer loading with cp.async or with TMA ("... tma").
      struct Forward {
        int warpgroups, key_block;  // warpgroups 0: mma.sync
        bool pingpong, tma;
      };
      size_t at = 1;
      for (const Forward f : {Forward{0, 64, false, false}, Forward{1, 64, false, false}, Forward{2, 64, false, false},
                              Forward{1, 128, false, false}, Forward{2, 128, false, false}, Forward{2, 64, true, false},
                              Forward{2, 128, true, false}, Forward{2, 64, true, true}, Forward{2, 128, true, true}}) {
        AttentionForwardArgs fw = fa;
        fw.path =
            f.warpgroups ? synthpert::kernels::AttentionPath::kWgmma : synthpert::kernels::AttentionPath::kMmaSync;
        if (f.warpgroups) fw.wgmma_warpgroups = f.warpgroups;
        fw.wgmma_key_block = f.key_block;
        fw.wgmma_pingpong = f.pingpong;
        fw.wgmma_tma = f.tma;
        const double w_ms = median_ms(timing, [&] { synthpert::kernels::attention_forward(fw, nullptr); });
        const std::string label = !f.warpgroups ? "fwd mma.sync"
                                                : "fwd wgmma x" + std::to_string(f.warpgroups) +
                                                      (f.key_block == 128 ? " n128" : "") +
                                                      (f.pingpong ? " pingpong" : "") + (f.tma ? " tma" : "");
        results.insert(results.begin() + at++, {label, "fwd", flops / (w_ms * 1e-3) / 1e12});
      }
    }
    cuda_check(cudaDeviceSynchronize(), "benchmark run");
    for (const auto& r : results) {
      const std::string name = r.label + " causal hdim" + std::to_string(D) + " seq" + std::to_string(seqlen) + " b" +
                               std::to_string(batch) + " h" + std::to_string(H);
      nlohmann::json row = {{"name", name}, {"unit", "TFLOP/s"}, {"ours", r.tflops}};
      const std::string key = std::string(r.dir) + "_" + std::to_string(seqlen);
      if (peer.contains("tflops") && peer["tflops"].contains(key)) {
        const double pv = peer["tflops"][key].get<double>();
        row["peer"] = pv;
        row["peer_name"] = "torch scaled_dot_product_attention (flash backend)";
        row["ratio"] = pv > 0 ? r.tflops / pv : 0.0;
      } else {
        row["peer"] = nullptr;
        row["peer_name"] = nullptr;
        row["ratio"] = nullptr;
      }
      rows.push_back(row);
      char peer_text[32] = "-", ratio_text[32] = "-", line[256];
      if (!row["peer"].is_null()) {
        std::snprintf(peer_text, sizeof peer_text, "%.1f", row["peer"].get<double>());
        std::snprintf(ratio_text, sizeof ratio_text, "%.2f", row["ratio"].get<double>());
      }
      std::snprintf(line, sizeof line, "| %s | %.1f | %s | %s |\n", name.c_str(), r.tflops, peer_text, ratio_text);
      md << line;
      std::fprintf(stderr, "%s", line);
    }
  }

  std::ostringstream command;
  for (int i = 0; i < argc; ++i) command << (i ? " " : "") << argv[i];
  nlohmann::json result = {
      {"benchmark", "attention"},
      {"device", prop.name},
      {"date", date},
      {"versions",
       {{"cuda_runtime", runtime}, {"cuda_driver", driver}, {"torch", peer.value("torch", "")},
        {"peer_backend", peer.value("backend", "")}}},
      {"command", command.str()},
      {"rows", rows}};
  std::ofstream(stem + ".json") << result.dump(2) << "\n";
  std::ofstream(stem + ".md") << "# attention on " << prop.name << ", " << date << "\n\n"
                              << "bf16, head dim " << D << ", causal, " << H << " heads, " << N
                              << " tokens per step; bwd FLOPs counted as 2.5x fwd. Command: `" << command.str()
                              << "`\n\nVersions: " << result["versions"].dump() << "\n\n"
                              << md.str();
  std::fprintf(stderr, "bench_attention: wrote %s.{json,md}\n", stem.c_str());
  for (void* p : {q, k, v, dout, out, dq, dk, dv, lse, ws, cu, flush}) cudaFree(p);
  if (o.peer && peer.empty()) {
    std::fprintf(stderr, "bench_attention: the peer failed, so the rows have no ratio\n");
    return 1;
  }
  return 0;
}

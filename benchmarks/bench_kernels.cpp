// bench_kernels: the memory-bound kernels (RMSNorm, RoPE, SwiGLU forward and
// backward) at Llama-3-8B shapes, in GB/s against the GPU's theoretical HBM
// bandwidth and against PyTorch eager and torch.compile measured by
// benchmarks/peer_kernels.py in the same run (same shapes, bf16, L2 flush
// before every timed call, medians). Bytes counted per op are the tensors it
// must read and write once; the peers' GB/s use the same counts, so the
// ratio is their time over ours.
//
//   bench_kernels [--out-dir DIR] [--python EXE] [--no-peer] [--iters N] [--tokens N]
//                 [--ce-tokens N] [--ce-chunk N]
//
// The fused linear + cross-entropy (LM head + loss, forward and dhidden, frozen
// head as in LoRA) is compared in time and peak extra memory with torch
// computing the full [tokens, vocab] logits and F.cross_entropy (eager), at
// vocab 128,256 (Llama 3).
//
// Further sections in their own files (bench_kernel_sections.h): NF4
// dequantisation and matmul (bench_nf4.cpp), fused AdamW (bench_adamw.cpp),
// LoRA training and multi-adapter serving (bench_lora.cpp), paged decode
// attention against SDPA with enable_gqa (bench_decode.cpp), continued
// prefill over a KV cache against torch's bottom-right causal flash
// attention (bench_continued.cpp).
//
// Writes benchmarks/results/kernels-<gpu>-<date>.{json,md}.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "benchmarks/bench_kernel_sections.h"
#include "benchmarks/bench_util.h"
#include "kernels/fused_linear_ce.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace {

using namespace synthpert::bench;
using namespace synthpert::kernels;

struct Options : CommonOptions {
  int64_t tokens = 16384;
  int64_t hidden = 4096, intermediate = 14336;
  int heads = 32, head_dim = 128;
  int64_t ce_tokens = 8192, vocab = 128256, ce_chunk = 1024;
};

struct Measurement {
  std::string key, name;
  double bytes;
  std::function<void()> run;
};

// The kernels' inputs and outputs for the shapes in `o` (bf16).
struct Buffers {
  DeviceMemory x, y, dy, dx, w, rstd, dw, ws, gate, up, out, dgate, dup, q, positions, inv_freq;
  explicit Buffers(const Options& o)
      : x(size_t(o.tokens * o.hidden) * 2), y(size_t(o.tokens * o.hidden) * 2), dy(size_t(o.tokens * o.hidden) * 2),
        dx(size_t(o.tokens * o.hidden) * 2), w(size_t(o.hidden) * 2), rstd(size_t(o.tokens) * 4),
        dw(size_t(o.hidden) * 4), ws(rmsnorm_backward_workspace_bytes(o.tokens, o.hidden)),
        gate(size_t(o.tokens * o.intermediate) * 2), up(size_t(o.tokens * o.intermediate) * 2),
        out(size_t(o.tokens * o.intermediate) * 2), dgate(size_t(o.tokens * o.intermediate) * 2),
        dup(size_t(o.tokens * o.intermediate) * 2), q(size_t(o.tokens) * o.heads * o.head_dim * 2),
        positions(size_t(o.tokens) * 8), inv_freq(size_t(o.head_dim / 2) * 4) {}
};

std::vector<Measurement> measurements(const Options& o, Buffers& b) {
  const int64_t T = o.tokens, C = o.hidden, I = o.intermediate;
  RmsNormForwardArgs nf;
  nf.rows = T;
  nf.width = C;
  nf.x = b.x.get();
  nf.x_row_stride = C;
  nf.weight = b.w.get();
  nf.y = b.y.get();
  nf.y_row_stride = C;
  nf.rstd = b.rstd.get<float>();
  RmsNormBackwardArgs nb;
  nb.rows = T;
  nb.width = C;
  nb.x = b.x.get();
  nb.x_row_stride = C;
  nb.weight = b.w.get();
  nb.rstd = b.rstd.get<float>();
  nb.dy = b.dy.get();
  nb.dy_row_stride = C;
  nb.dx = b.dx.get();
  nb.dx_row_stride = C;
  nb.dweight = b.dw.get<float>();
  nb.workspace = b.ws.get();
  RopeArgs r;
  r.tokens = T;
  r.heads = o.heads;
  r.head_dim = o.head_dim;
  r.x = r.y = b.q.get();
  r.x_token_stride = r.y_token_stride = int64_t(o.heads) * o.head_dim;
  r.x_head_stride = r.y_head_stride = o.head_dim;
  r.positions = b.positions.get<int64_t>();
  r.inv_freq = b.inv_freq.get<float>();
  SwigluForwardArgs sf;
  sf.rows = T;
  sf.width = I;
  sf.gate = b.gate.get();
  sf.up = b.up.get();
  sf.out = b.out.get();
  sf.gate_row_stride = sf.up_row_stride = sf.out_row_stride = I;
  SwigluBackwardArgs sb;
  sb.rows = T;
  sb.width = I;
  sb.gate = b.gate.get();
  sb.up = b.up.get();
  sb.dout = b.out.get();
  sb.dgate = b.dgate.get();
  sb.dup = b.dup.get();
  sb.gate_row_stride = sb.up_row_stride = sb.dout_row_stride = sb.dgate_row_stride = sb.dup_row_stride = I;
  const double tc = double(T) * C * 2, ti = double(T) * I * 2, q = double(T) * o.heads * o.head_dim * 2;
  const std::string shape_c = " T" + std::to_string(T) + " C" + std::to_string(C);
  const std::string shape_i = " T" + std::to_string(T) + " I" + std::to_string(I);
  const std::string shape_q = " T" + std::to_string(T) + " H" + std::to_string(o.heads) + " D" + std::to_string(o.head_dim);
  return {
      {"rmsnorm_fwd", "rmsnorm fwd" + shape_c, 2 * tc, [=] { rmsnorm_forward(nf, nullptr); }},
      {"rmsnorm_bwd", "rmsnorm bwd" + shape_c, 3 * tc, [=] { rmsnorm_backward(nb, nullptr); }},
      {"rope_fwd", "rope fwd (in place)" + shape_q, 2 * q, [=] { rope_apply(r, nullptr); }},
      {"swiglu_fwd", "swiglu fwd" + shape_i, 3 * ti, [=] { swiglu_forward(sf, nullptr); }},
      {"swiglu_bwd", "swiglu bwd" + shape_i, 5 * ti, [=] { swiglu_backward(sb, nullptr); }},
  };
}

// Time and extra device memory (workspace + dhidden + loss) of the fused
// linear + cross-entropy with dhidden, frozen weight.
struct CeResult {
  double ms, extra_bytes;
};
CeResult measure_fused_ce(const Options& o, const Timing& timing) {
  const int64_t N = o.ce_tokens, C = o.hidden, V = o.vocab;
  DeviceMemory h(size_t(N * C) * 2), w(size_t(V * C) * 2), dh(size_t(N * C) * 2), targets(size_t(N) * 8),
      loss(size_t(N) * 4);
  const size_t ws_bytes = fused_linear_ce_workspace_bytes(o.ce_chunk, V);
  DeviceMemory ws(ws_bytes);
  fill_random_bf16(h.get(), size_t(N * C), 11);
  fill_random_bf16(w.get(), size_t(V * C), 12);
  std::vector<int64_t> t(static_cast<size_t>(N));
  for (size_t i = 0; i < t.size(); ++i) t[i] = (i % 5 == 0) ? -100 : int64_t((i * 7919) % size_t(V));
  cuda_check(cudaMemcpy(targets.get(), t.data(), t.size() * 8, cudaMemcpyHostToDevice), "upload targets");
  cublasHandle_t handle = nullptr;
  if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "bench_kernels: cublasCreate failed\n");
    std::exit(1);
  }
  FusedLinearCrossEntropyArgs a;
  a.tokens = N;
  a.hidden_size = C;
  a.vocab = V;
  a.hidden = h.get();
  a.hidden_row_stride = C;
  a.weight = w.get();
  a.weight_row_stride = C;
  a.targets = targets.get<int64_t>();
  a.loss = loss.get<float>();
  a.grad_scale = 1.f / float(N);
  a.dhidden = dh.get();
  a.dhidden_row_stride = C;
  a.chunk_tokens = o.ce_chunk;
  a.workspace = ws.get();
  a.cublas = handle;
  const double ms = median_ms(timing, [&] { fused_linear_cross_entropy(a, nullptr); });
  cuda_check(cudaDeviceSynchronize(), "fused_linear_cross_entropy");
  cublasDestroy(handle);
  return {ms, double(ws_bytes) + double(N * C) * 2 + double(N) * 4};
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  parse_bench_args("bench_kernels", " [--tokens N] [--ce-tokens N] [--ce-chunk N]", argc, argv, o,
                   [&o](const std::string& a, const auto& next) {
                     if (a == "--tokens") o.tokens = std::max(1, std::atoi(next().c_str()));
                     else if (a == "--ce-tokens") o.ce_tokens = std::max(1, std::atoi(next().c_str()));
                     else if (a == "--ce-chunk") o.ce_chunk = std::max(1, std::atoi(next().c_str()));
                     else return false;
                     return true;
                   });
  cudaDeviceProp prop{};
  cuda_check(cudaGetDeviceProperties(&prop, 0), "device properties");
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  const double peak = hbm_peak_bytes_per_s(0);
  const std::string date = today(), stem = o.out_dir + "/kernels-" + slug(prop.name) + "-" + date;

  nlohmann::json peer = nlohmann::json::object();
  if (o.peer) {
    std::ostringstream cmd;
    cmd << o.python << " " << SYNTHPERT_SOURCE_DIR << "/benchmarks/peer_kernels.py --tokens " << o.tokens
        << " --hidden " << o.hidden << " --intermediate " << o.intermediate << " --heads " << o.heads
        << " --head-dim " << o.head_dim << " --ce-tokens " << o.ce_tokens << " --vocab " << o.vocab
        << " --iters " << o.iters << " --out " << stem << ".peer.tmp.json";
    peer = run_peer(cmd.str(), stem + ".peer.tmp.json");
  }

  Timing timing;
  timing.iters = o.iters;
  timing.flush_bytes = size_t(256) << 20;
  DeviceMemory flush(timing.flush_bytes);
  timing.flush = flush.get();
  Buffers b(o);
  fill_random_bf16(b.x.get(), size_t(o.tokens * o.hidden), 1);
  fill_random_bf16(b.dy.get(), size_t(o.tokens * o.hidden), 2);
  fill_random_bf16(b.w.get(), size_t(o.hidden), 3);
  fill_random_bf16(b.gate.get(), size_t(o.tokens * o.intermediate), 4);
  fill_random_bf16(b.up.get(), size_t(o.tokens * o.intermediate), 5);
  fill_random_bf16(b.out.get(), size_t(o.tokens * o.intermediate), 6);
  fill_random_bf16(b.q.get(), size_t(o.tokens) * o.heads * o.head_dim, 7);
  std::vector<int64_t> pos(size_t(o.tokens));
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = int64_t(i % 8192);
  const std::vector<float> freq = rope_inv_freq(o.head_dim, 500000.0);
  cuda_check(cudaMemcpy(b.positions.get(), pos.data(), pos.size() * 8, cudaMemcpyHostToDevice), "upload positions");
  cuda_check(cudaMemcpy(b.inv_freq.get(), freq.data(), freq.size() * 4, cudaMemcpyHostToDevice), "upload inv_freq");

  nlohmann::json rows = nlohmann::json::array();
  std::ostringstream md;
  md << "| case | ours GB/s | % of HBM peak | eager GB/s | ratio | torch.compile GB/s | ratio |\n"
     << "|---|---|---|---|---|---|---|\n";
  for (const Measurement& m : measurements(o, b)) {
    const double ms = median_ms(timing, m.run);
    cuda_check(cudaDeviceSynchronize(), m.key.c_str());
    const double ours = m.bytes / (ms * 1e-3) / 1e9;
    std::string line = "| " + m.name + " | " + std::to_string(int(ours)) + " | " +
                       std::to_string(int(100 * ours * 1e9 / peak)) + " |";
    rows.push_back({{"name", m.name + " (of HBM peak)"}, {"unit", "%"}, {"ours", 100 * ours * 1e9 / peak},
                    {"peer", nullptr}, {"peer_name", nullptr}, {"ratio", nullptr}});
    for (const char* mode : {"eager", "compile"}) {
      nlohmann::json row = {{"name", m.name + " vs " + mode}, {"unit", "GB/s"}, {"ours", ours}};
      if (peer.contains("ms") && peer["ms"].contains(mode) && peer["ms"][mode].contains(m.key)) {
        const double pv = m.bytes / (peer["ms"][mode][m.key].get<double>() * 1e-3) / 1e9;
        row["peer"] = pv;
        row["peer_name"] = std::string("torch ") + (std::string(mode) == "eager" ? "eager" : "torch.compile");
        row["ratio"] = ours / pv;
        char cell[64];
        std::snprintf(cell, sizeof cell, " %.0f | %.2f |", pv, ours / pv);
        line += cell;
      } else {
        row["peer"] = nullptr;
        row["peer_name"] = nullptr;
        row["ratio"] = nullptr;
        line += " - | - |";
      }
      rows.push_back(row);
    }
    md << line << "\n";
    std::fprintf(stderr, "%s\n", line.c_str());
  }

  {
    const CeResult ce = measure_fused_ce(o, timing);
    const std::string name = "fused linear+CE fwd+dhidden N" + std::to_string(o.ce_tokens) + " C" +
                             std::to_string(o.hidden) + " V" + std::to_string(o.vocab) + " chunk" +
                             std::to_string(o.ce_chunk);
    const nlohmann::json ce_peer = peer.value("ce", nlohmann::json::object());
    const struct {
      const char* suffix;
      const char* unit;
      double ours;
      const char* key;
    } items[] = {{" time", "ms", ce.ms, "ms"}, {" peak extra memory", "MiB", ce.extra_bytes / 1048576.0, "extra_bytes"}};
    md << "\n| case | unit | ours | torch full logits + cross_entropy | ratio (>1: ours better) |\n|---|---|---|---|---|\n";
    for (const auto& it : items) {
      nlohmann::json row = {{"name", name + it.suffix}, {"unit", it.unit}, {"ours", it.ours}};
      double pv = 0;
      if (ce_peer.contains(it.key)) {
        pv = ce_peer[it.key].get<double>();
        if (std::string(it.unit) == "MiB") pv /= 1048576.0;
        row["peer"] = pv;
        row["peer_name"] = "torch eager: logits = h @ W.T, F.cross_entropy (full logits)";
        row["ratio"] = pv / it.ours;
      } else {
        row["peer"] = nullptr;
        row["peer_name"] = nullptr;
        row["ratio"] = nullptr;
      }
      rows.push_back(row);
      char line[256];
      std::snprintf(line, sizeof line, "| %s | %s | %.1f | %s | %s |\n", (name + it.suffix).c_str(), it.unit, it.ours,
                    row["peer"].is_null() ? "-" : std::to_string(pv).c_str(),
                    row["ratio"].is_null() ? "-" : std::to_string(pv / it.ours).c_str());
      md << line;
      std::fprintf(stderr, "%s", line);
    }
  }

  SectionContext section;
  section.timing = &timing;
  section.hbm_peak = peak;
  section.python = o.python;
  section.peer = o.peer;
  section.iters = o.iters;
  section.tmp_stem = stem;
  for (SectionOutput (*run)(const SectionContext&) : {&bench_nf4_section, &bench_adamw_section, &bench_lora_section,
                                                      &bench_decode_section, &bench_continued_section}) {
    const SectionOutput out = run(section);
    for (const auto& row : out.rows) rows.push_back(row);
    md << out.markdown;
  }

  std::ostringstream command;
  for (int i = 0; i < argc; ++i) command << (i ? " " : "") << argv[i];
  const nlohmann::json result = {
      {"benchmark", "kernels"},
      {"device", prop.name},
      {"date", date},
      {"versions",
       {{"cuda_runtime", runtime}, {"cuda_driver", driver}, {"torch", peer.value("torch", "")},
        {"hbm_peak_gbps", peak / 1e9}}},
      {"command", command.str()},
      {"rows", rows}};
  std::ofstream(stem + ".json") << result.dump(2) << "\n";
  std::ofstream(stem + ".md") << "# kernels on " << prop.name << ", " << date << "\n\n"
                              << "bf16; GB/s counts each input read once and each output written once; HBM peak "
                              << int(peak / 1e9) << " GB/s (2 x memory clock x bus width). Command: `"
                              << command.str() << "`\n\nVersions: " << result["versions"].dump() << "\n\n"
                              << md.str();
  std::fprintf(stderr, "bench_kernels: wrote %s.{json,md}\n", stem.c_str());
  if (o.peer && peer.empty()) {
    std::fprintf(stderr, "bench_kernels: the peer failed, so the rows have no ratio\n");
    return 1;
  }
  return 0;
}

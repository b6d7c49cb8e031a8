// bench_kernels section: LoRA (benchmarks/peer_lora.py is the peer).
//   training  y = x W^T + s (x A^T) B^T at 8192 tokens, rank 16, for a q_proj
//             (4096 -> 4096) and an up_proj (4096 -> 14336): forward, and
//             forward + backward (dx, dA, dB; W frozen), against torch eager
//             F.linear(x, W) + lora_B(lora_A(x)) * s with autograd
//   serving   one batch whose rows use different rank-16 adapters on a
//             4096 -> 4096 projection: decode (256 rows over 8 adapters,
//             scattered) and prefill (4096 rows in 4 segments), against torch
//             looping over the adapters (gather rows, two matmuls, index_add_)
// Times are medians with the L2 flushed; ratio = torch time / ours.
#include <cublas_v2.h>

#include <string>
#include <vector>

#include "benchmarks/bench_kernel_sections.h"
#include "kernels/lora.h"

namespace synthpert::bench {
namespace {

constexpr int64_t kTokens = 8192, kHidden = 4096, kInter = 14336, kRank = 16;

}  // namespace

SectionOutput bench_lora_section(const SectionContext& ctx) {
  const nlohmann::json peer = run_section_peer(ctx, "peer_lora.py", "");
  SectionOutput result = SectionOutput::titled("LoRA");
  cublasHandle_t handle = nullptr;
  if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "bench_kernels: cublasCreate failed\n");
    std::exit(1);
  }
  const int64_t N = kTokens, K = kHidden, R = kRank;
  for (const auto& [key, O] : {std::pair<std::string, int64_t>{"q", kHidden}, {"up", kInter}}) {
    DeviceMemory x(size_t(N * K) * 2), w(size_t(O * K) * 2), a(size_t(R * K) * 2), b(size_t(O * R) * 2),
        y(size_t(N * O) * 2), xa(size_t(N * R) * 2), dy(size_t(N * O) * 2), dx(size_t(N * K) * 2),
        ga(size_t(R * K) * 4), gb(size_t(O * R) * 4), ws(kernels::lora_backward_workspace_bytes(N, R));
    fill_random_bf16(x.get(), size_t(N * K), 41);
    fill_random_bf16(w.get(), size_t(O * K), 42);
    fill_random_bf16(a.get(), size_t(R * K), 43);
    fill_random_bf16(b.get(), size_t(O * R), 44);
    fill_random_bf16(dy.get(), size_t(N * O), 45);
    kernels::LoraForwardArgs f;
    f.rows = N;
    f.in_features = K;
    f.out_features = O;
    f.rank = R;
    f.scale = 2.f;
    f.x = x.get();
    f.x_row_stride = K;
    f.weight = w.get();
    f.weight_row_stride = K;
    f.lora_a = a.get();
    f.lora_a_row_stride = K;
    f.lora_b = b.get();
    f.lora_b_row_stride = R;
    f.y = y.get();
    f.y_row_stride = O;
    f.xa = xa.get();
    f.cublas = handle;
    kernels::LoraBackwardArgs g;
    g.rows = N;
    g.in_features = K;
    g.out_features = O;
    g.rank = R;
    g.scale = 2.f;
    g.x = x.get();
    g.x_row_stride = K;
    g.weight = w.get();
    g.weight_row_stride = K;
    g.lora_a = a.get();
    g.lora_a_row_stride = K;
    g.lora_b = b.get();
    g.lora_b_row_stride = R;
    g.xa = xa.get();
    g.dy = dy.get();
    g.dy_row_stride = O;
    g.dx = dx.get();
    g.dx_row_stride = K;
    g.grad_a = ga.get<float>();
    g.grad_b = gb.get<float>();
    g.workspace = ws.get();
    g.cublas = handle;
    const double fwd = median_ms(*ctx.timing, [&] { kernels::lora_forward(f, nullptr); });
    const double both = median_ms(*ctx.timing, [&] {
      kernels::lora_forward(f, nullptr);
      kernels::lora_backward(g, nullptr);
    });
    cuda_check(cudaDeviceSynchronize(), "lora training");
    const std::string shape = " N" + std::to_string(N) + " K" + std::to_string(K) + " O" + std::to_string(O) + " r" +
                              std::to_string(R);
    const std::string peer_name = "torch eager F.linear + lora_B(lora_A(x)) * s (autograd)";
    result.add(result_row("lora train fwd" + shape, "ms", fwd, peer_ms(peer, "train", key + "_fwd"), peer_name, false));
    result.add(result_row("lora train fwd+bwd" + shape, "ms", both, peer_ms(peer, "train", key + "_fwdbwd"), peer_name,
                          false));
  }
  cublasDestroy(handle);

  struct Serving {
    const char* key;
    int64_t rows, adapters;
    bool segments;
  };
  for (const Serving& s : {Serving{"decode", 256, 8, false}, Serving{"prefill", 4096, 4, true}}) {
    const int64_t M = s.adapters, O = kHidden, n = s.rows;
    DeviceMemory x(size_t(n * K) * 2), y(size_t(n * O) * 2), a(size_t(M * R * K) * 2), b(size_t(M * O * R) * 2),
        scales(size_t(M) * 4), idx(size_t(n) * 4), ws(kernels::lora_multi_workspace_bytes(n, R));
    fill_random_bf16(x.get(), size_t(n * K), 51);
    fill_random_bf16(y.get(), size_t(n * O), 52);
    fill_random_bf16(a.get(), size_t(M * R * K), 53);
    fill_random_bf16(b.get(), size_t(M * O * R), 54);
    std::vector<float> sc(size_t(M), 2.f);
    std::vector<int32_t> rows(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) rows[size_t(i)] = int32_t(s.segments ? i * M / n : i % M);
    cuda_check(cudaMemcpy(scales.get(), sc.data(), sc.size() * 4, cudaMemcpyHostToDevice), "upload scales");
    cuda_check(cudaMemcpy(idx.get(), rows.data(), rows.size() * 4, cudaMemcpyHostToDevice), "upload rows");
    kernels::LoraMultiArgs m;
    m.rows = n;
    m.in_features = K;
    m.out_features = O;
    m.rank = R;
    m.num_adapters = M;
    m.x = x.get();
    m.x_row_stride = K;
    m.lora_a = a.get();
    m.lora_a_adapter_stride = R * K;
    m.lora_a_row_stride = K;
    m.lora_b = b.get();
    m.lora_b_adapter_stride = O * R;
    m.lora_b_row_stride = R;
    m.scales = scales.get<float>();
    m.row_adapter = idx.get<int32_t>();
    m.y = y.get();
    m.y_row_stride = O;
    m.workspace = ws.get();
    const double ms = median_ms(*ctx.timing, [&] { kernels::lora_multi_apply(m, nullptr); });
    cuda_check(cudaDeviceSynchronize(), "lora_multi_apply");
    const std::string name = std::string("lora multi-adapter ") + s.key + " N" + std::to_string(n) + " adapters" +
                             std::to_string(M) + (s.segments ? " (segments)" : " (scattered)") + " K" +
                             std::to_string(K) + " O" + std::to_string(O) + " r" + std::to_string(R);
    result.add(result_row(name, "ms", ms, peer_ms(peer, "multi", s.key),
                          "torch loop over adapters: gather rows, two matmuls, index_add_", false));
  }
  return result;
}

}  // namespace synthpert::bench

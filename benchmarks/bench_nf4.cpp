// bench_kernels section: NF4 dequantisation (GB/s against the HBM peak and
// torch eager dequantisation written with indexing ops, plus bitsandbytes when
// the host has it) and y = x W^T with W in NF4 at one row (decode: the fused
// kernel) and 4096 rows (QLoRA training: dequant + cuBLAS), both against
// torch eager dequantisation followed by a bf16 matmul. Weight shape: the
// Llama-3-8B MLP's [14336, 4096]. Peer: benchmarks/peer_nf4.py.
#include <cublas_v2.h>

#include <string>
#include <vector>

#include "benchmarks/bench_kernel_sections.h"
#include "kernels/nf4.h"

namespace synthpert::bench {
namespace {

constexpr int64_t kOut = 14336, kIn = 4096;

// A plausible code table (ascending, as the launchers require); timing does
// not depend on its exact values.
kernels::Nf4CodeTable bench_codes() {
  kernels::Nf4CodeTable t;
  for (int i = 0; i < 16; ++i) t.value[i] = -1.f + 2.f * float(i) / 15.f;
  return t;
}
kernels::Nf4AbsmaxCodeTable bench_absmax_codes() {
  kernels::Nf4AbsmaxCodeTable t;
  for (int i = 0; i < 256; ++i) t.value[i] = -1.f + 2.f * float(i) / 255.f;
  return t;
}

}  // namespace

SectionOutput bench_nf4_section(const SectionContext& ctx) {
  const int64_t n = kOut * kIn, nb = n / kernels::kNf4Block, nb2 = (nb + 255) / 256;
  const std::string shape = " O" + std::to_string(kOut) + " I" + std::to_string(kIn);
  const nlohmann::json peer = run_section_peer(
      ctx, "peer_nf4.py", "--out-features " + std::to_string(kOut) + " --in-features " + std::to_string(kIn));

  DeviceMemory packed(size_t(n / 2)), absmax(size_t(nb) * 4), code{size_t(nb)}, scale(size_t(nb2) * 4), offset(4),
      out(size_t(n) * 2);
  {
    const auto bits = random_bf16(size_t(n / 4), 21);  // any bytes are valid codes
    cuda_check(cudaMemcpy(packed.get(), bits.data(), size_t(n / 2), cudaMemcpyHostToDevice), "upload packed");
    std::vector<float> a(size_t(nb), 0.02f), s(size_t(nb2), 0.01f);
    cuda_check(cudaMemcpy(absmax.get(), a.data(), a.size() * 4, cudaMemcpyHostToDevice), "upload absmax");
    cuda_check(cudaMemcpy(scale.get(), s.data(), s.size() * 4, cudaMemcpyHostToDevice), "upload scale");
    cuda_check(cudaMemcpy(offset.get(), a.data(), 4, cudaMemcpyHostToDevice), "upload offset");
    cuda_check(cudaMemcpy(code.get(), bits.data(), size_t(nb), cudaMemcpyHostToDevice), "upload codes");
  }
  kernels::Nf4Scales plain, dq;
  plain.absmax = absmax.get<float>();
  dq.absmax_code = code.get<uint8_t>();
  dq.absmax_scale = scale.get<float>();
  dq.absmax_offset = offset.get<float>();
  dq.absmax_codes = bench_absmax_codes();

  SectionOutput result = SectionOutput::titled("NF4");

  for (bool double_quant : {false, true}) {
    kernels::Nf4DequantizeArgs d;
    d.out_features = kOut;
    d.in_features = kIn;
    d.packed = packed.get<uint8_t>();
    d.scales = double_quant ? dq : plain;
    d.codes = bench_codes();
    d.out = out.get();
    d.out_row_stride = kIn;
    const double ms = median_ms(*ctx.timing, [&] { kernels::nf4_dequantize(d, nullptr); });
    cuda_check(cudaDeviceSynchronize(), "nf4_dequantize");
    const double scale_bytes = double_quant ? double(nb) + double(nb2) * 4 + 4 : double(nb) * 4;
    const double bytes = double(n) / 2 + scale_bytes + double(n) * 2;
    const double gbps = bytes / (ms * 1e-3) / 1e9;
    const std::string name = std::string("nf4 dequant to bf16") + (double_quant ? " (double quant)" : "") + shape;
    result.add(result_row(name + " (of HBM peak)", "%", 100 * gbps * 1e9 / ctx.hbm_peak, -1, "", true));
    const std::string key = double_quant ? "dequant_dq" : "dequant";
    for (const char* who : {"eager", "bitsandbytes"}) {
      const double pm = peer_ms(peer, who, key);
      if (pm > 0 || std::string(who) == "eager")
        result.add(result_row(name + " vs " + who, "GB/s", gbps, pm > 0 ? bytes / (pm * 1e-3) / 1e9 : -1,
                              std::string(who) == "eager" ? "torch eager (index the code table, scale, .to(bf16))"
                                                          : "bitsandbytes dequantize_4bit",
                              true));
    }
  }

  cublasHandle_t handle = nullptr;
  if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "bench_kernels: cublasCreate failed\n");
    std::exit(1);
  }
  for (int64_t rows : {int64_t(1), int64_t(4096)}) {
    DeviceMemory x(size_t(rows * kIn) * 2), y(size_t(rows * kOut) * 2),
        ws(std::max<size_t>(256, kernels::nf4_matmul_workspace_bytes(rows, kOut, kIn)));
    fill_random_bf16(x.get(), size_t(rows * kIn), 22);
    kernels::Nf4MatmulArgs m;
    m.rows = rows;
    m.out_features = kOut;
    m.in_features = kIn;
    m.x = x.get();
    m.x_row_stride = kIn;
    m.packed = packed.get<uint8_t>();
    m.scales = plain;
    m.codes = bench_codes();
    m.y = y.get();
    m.y_row_stride = kOut;
    m.workspace = ws.get();
    m.cublas = handle;
    const double ms = median_ms(*ctx.timing, [&] { kernels::nf4_matmul(m, nullptr); });
    cuda_check(cudaDeviceSynchronize(), "nf4_matmul");
    const std::string name = "nf4 matmul N" + std::to_string(rows) + shape +
                             (rows <= kernels::kNf4FusedMaxRows ? " (fused)" : " (dequant + cuBLAS)");
    result.add(result_row(name, "ms", ms, peer_ms(peer, "eager", "matmul_" + std::to_string(rows)),
                          "torch eager dequant + bf16 matmul", false));
  }
  cublasDestroy(handle);
  return result;
}

}  // namespace synthpert::bench

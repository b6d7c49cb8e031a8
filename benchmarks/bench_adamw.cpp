// bench_kernels section: the fused AdamW step against torch.optim.AdamW with
// fused=True (benchmarks/peer_adamw.py) on two parameter lists:
//   full   8 Llama-style layers at hidden 4096, intermediate 14336 (4 square
//          attention matrices, 3 MLP matrices, 2 norm vectors without decay
//          per layer: 1.95 B parameters)
//   lora   the LoRA adapters of 32 such layers at rank 16 on q,k,v,o,gate,up,
//          down (448 small tensors, 45 M parameters): launch-bound
// in two modes: fp32 parameters and gradients (the peer: fused AdamW on the
// same fp32 tensors), and bf16 parameters with an fp32 master and bf16
// gradients (the peer: fused AdamW on fp32 masters fed the gradients cast to
// fp32, then a foreach copy into the bf16 parameters, which is what torch
// needs for the same result). Time (median, L2 flushed) and GB/s over the
// bytes the update must move, as % of HBM peak.
#include <string>
#include <vector>

#include "benchmarks/bench_kernel_sections.h"
#include "kernels/adamw.h"

namespace synthpert::bench {
namespace {

constexpr int64_t kHidden = 4096, kInter = 14336, kRank = 16;

struct ParamList {
  std::vector<int64_t> sizes;
  std::vector<bool> decay;
};

ParamList full_list() {
  ParamList l;
  for (int layer = 0; layer < 8; ++layer) {
    for (int i = 0; i < 4; ++i) l.sizes.push_back(kHidden * kHidden);
    for (int i = 0; i < 3; ++i) l.sizes.push_back(kHidden * kInter);
    l.decay.insert(l.decay.end(), 7, true);
    l.sizes.insert(l.sizes.end(), 2, kHidden);
    l.decay.insert(l.decay.end(), 2, false);
  }
  return l;
}

ParamList lora_list() {
  ParamList l;
  for (int layer = 0; layer < 32; ++layer) {
    // (in, out) of q, k, v, o, gate, up, down; A is [r, in], B is [out, r].
    const int64_t dims[7][2] = {{kHidden, kHidden}, {kHidden, kHidden}, {kHidden, kHidden}, {kHidden, kHidden},
                                {kHidden, kInter},  {kHidden, kInter},  {kInter, kHidden}};
    for (const auto& d : dims) {
      l.sizes.push_back(kRank * d[0]);
      l.sizes.push_back(d[1] * kRank);
    }
    l.decay.insert(l.decay.end(), 14, true);
  }
  return l;
}

}  // namespace

SectionOutput bench_adamw_section(const SectionContext& ctx) {
  const nlohmann::json peer = run_section_peer(ctx, "peer_adamw.py", "");
  SectionOutput result = SectionOutput::titled("Fused AdamW");
  for (const char* list_name : {"full", "lora"}) {
    const ParamList list = std::string(list_name) == "full" ? full_list() : lora_list();
    int64_t total = 0;
    for (int64_t n : list.sizes) total += n;
    for (bool bf16 : {false, true}) {
      // One allocation per array; tensors at 256-byte aligned offsets.
      std::vector<int64_t> offsets;
      int64_t padded = 0;
      for (int64_t n : list.sizes) {
        offsets.push_back(padded);
        padded += (n + 63) / 64 * 64;
      }
      DeviceMemory master(size_t(padded) * 4), m(size_t(padded) * 4), v(size_t(padded) * 4),
          grad(size_t(padded) * (bf16 ? 2 : 4)), param(size_t(padded) * 2);
      cuda_check(cudaMemset(m.get(), 0, size_t(padded) * 4), "zero m");
      cuda_check(cudaMemset(v.get(), 0, size_t(padded) * 4), "zero v");
      cuda_check(cudaMemset(master.get(), 0, size_t(padded) * 4), "zero master");
      // fp32 mode: two bf16 patterns per float, finite since the high half is a bf16 in [-1, 1).
      fill_random_bf16(grad.get(), size_t(padded) * (bf16 ? 1 : 2), 31);
      kernels::AdamWArgs a;
      a.param_dtype = bf16 ? kernels::DType::kBF16 : kernels::DType::kF32;
      a.grad_dtype = a.param_dtype;
      a.lr = 1e-4;
      a.weight_decay = 0.01;
      for (size_t i = 0; i < list.sizes.size(); ++i) {
        kernels::AdamWTensor t;
        const size_t off = size_t(offsets[i]);
        t.param = bf16 ? static_cast<void*>(param.get<uint16_t>() + off) : static_cast<void*>(master.get<float>() + off);
        t.master = bf16 ? master.get<float>() + off : nullptr;
        t.grad = bf16 ? static_cast<const void*>(grad.get<uint16_t>() + off)
                      : static_cast<const void*>(grad.get<float>() + off);
        t.exp_avg = m.get<float>() + off;
        t.exp_avg_sq = v.get<float>() + off;
        t.numel = list.sizes[i];
        t.weight_decay = list.decay[i];
        a.tensors.push_back(t);
      }
      int64_t step = 0;
      const double ms = median_ms(*ctx.timing, [&] {
        a.step = ++step;
        kernels::adamw_step(a, nullptr);
      });
      cuda_check(cudaDeviceSynchronize(), "adamw_step");
      // fp32: read p, g, m, v and write p, m, v (28 B); bf16 + master: read
      // master, g (2 B), m, v and write master, m, v, param (2 B): 28 B too.
      const double bytes = double(total) * 28;
      const double gbps = bytes / (ms * 1e-3) / 1e9;
      const std::string mode = bf16 ? "bf16 params + fp32 master" : "fp32 params";
      const std::string name = std::string("adamw ") + list_name + " (" + std::to_string(list.sizes.size()) +
                               " tensors, " + std::to_string(total / 1000000) + " M) " + mode;
      result.add(result_row(name + " (of HBM peak)", "%", 100 * gbps * 1e9 / ctx.hbm_peak, -1, "", true));
      result.add(result_row(name, "ms", ms, peer_ms(peer, list_name, bf16 ? "bf16_master" : "fp32"),
                            bf16 ? "torch.optim.AdamW(fused=True) on fp32 masters + foreach copy to bf16"
                                 : "torch.optim.AdamW(fused=True)",
                            false));
    }
  }
  return result;
}

}  // namespace synthpert::bench

// Fused AdamW kernel and its multi-tensor launcher (see adamw.h).
//
// Multi-tensor apply: the launcher cuts every tensor into chunks of 65536
// elements and packs up to 32 tensors and 320 chunks into one by-value kernel
// argument (under the 4 KB argument limit every CUDA version accepts); block
// b processes chunk block_chunk[b] of tensor block_slot[b]. A tensor whose
// chunks do not all fit continues in the next pack. No device-side metadata
// buffer, so nothing is copied to the device before the launch.
#include "kernels/adamw.h"

#include <cmath>
#include <string>
#include <type_traits>

namespace synthpert::kernels {
namespace {

constexpr int kThreads = 512;
constexpr int kSlots = 32;
constexpr int kPackBlocks = 320;
constexpr int64_t kChunk = 65536;

struct Slot {
  void* param;
  float* master;
  const void* grad;
  float* exp_avg;
  float* exp_avg_sq;
  int64_t numel;
  float decay_factor;  // 1 - lr * weight_decay, or 1
};

struct Pack {
  Slot slot[kSlots];
  uint8_t block_slot[kPackBlocks];
  int32_t block_chunk[kPackBlocks];
};
static_assert(sizeof(Pack) + 64 < 4096, "kernel arguments must stay under 4 KB");

struct Hyper {
  float beta1, beta2, one_minus_beta1, one_minus_beta2;
  float step_size;  // lr / (1 - beta1^t)
  float bias2_sqrt;  // sqrt(1 - beta2^t)
  float eps;
};

// One element: the torch.optim.AdamW update in fp32.
__device__ __forceinline__ void update(float& p, float g, float& m, float& v, float decay_factor, const Hyper& h) {
  p *= decay_factor;
  m = h.beta1 * m + h.one_minus_beta1 * g;
  v = h.beta2 * v + h.one_minus_beta2 * g * g;
  const float denom = sqrtf(v) / h.bias2_sqrt + h.eps;
  p -= h.step_size * (m / denom);
}

// Loads/stores of 4 consecutive elements; vector accesses when aligned.
template <typename T>
struct Quad;
template <>
struct Quad<float> {
  using Vec = float4;
};
template <>
struct Quad<__nv_bfloat16> {
  using Vec = uint2;
};
template <>
struct Quad<__half> {
  using Vec = uint2;
};

template <typename T>
__device__ __forceinline__ void load4(const T* p, float (&out)[4]) {
  const typename Quad<T>::Vec raw = *reinterpret_cast<const typename Quad<T>::Vec*>(p);
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) out[i] = to_float(e[i]);
}

template <typename T>
__device__ __forceinline__ void store4(T* p, const float (&in)[4]) {
  typename Quad<T>::Vec raw;
  T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) e[i] = from_float<T>(in[i]);
  *reinterpret_cast<typename Quad<T>::Vec*>(p) = raw;
}

// P: parameter type; with a master copy (P != float) the update runs on the
// master and the parameter is rewritten from it. G: gradient type.
template <typename P, typename G>
__global__ void __launch_bounds__(kThreads) adamw_kernel(Pack pack, Hyper h) {
  const Slot s = pack.slot[pack.block_slot[blockIdx.x]];
  const int64_t begin = int64_t(pack.block_chunk[blockIdx.x]) * kChunk;
  const int64_t end = begin + kChunk < s.numel ? begin + kChunk : s.numel;
  constexpr bool kMaster = !std::is_same<P, float>::value;
  P* param = static_cast<P*>(s.param);
  float* truth = kMaster ? s.master : reinterpret_cast<float*>(param);
  const G* grad = static_cast<const G*>(s.grad);
  // 16-byte accesses for the fp32 arrays need every base 16-byte aligned
  // (chunk starts are multiples of 4 elements), 8 bytes for 2-byte types.
  auto aligned = [](const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; };
  const bool vec = aligned(truth, 16) && aligned(s.exp_avg, 16) && aligned(s.exp_avg_sq, 16) &&
                   aligned(grad, 4 * sizeof(G)) && (!kMaster || aligned(param, 4 * sizeof(P)));
  int64_t i = begin + int64_t(threadIdx.x) * 4;
  if (vec) {
    for (; i + 4 <= end; i += int64_t(kThreads) * 4) {
      float p[4], g[4], m[4], v[4];
      load4(truth + i, p);
      load4(grad + i, g);
      load4(s.exp_avg + i, m);
      load4(s.exp_avg_sq + i, v);
#pragma unroll
      for (int j = 0; j < 4; ++j) update(p[j], g[j], m[j], v[j], s.decay_factor, h);
      store4(truth + i, p);
      store4(s.exp_avg + i, m);
      store4(s.exp_avg_sq + i, v);
      if constexpr (kMaster) store4(param + i, p);
    }
  }
  // Scalar path: the whole chunk when unaligned, else the tail (< 4 elements
  // of one thread's last quad).
  for (; i < end; i += int64_t(kThreads) * 4) {
    for (int64_t k = i; k < i + 4 && k < end; ++k) {
      float p = truth[k], m = s.exp_avg[k], v = s.exp_avg_sq[k];
      update(p, to_float(grad[k]), m, v, s.decay_factor, h);
      truth[k] = p;
      s.exp_avg[k] = m;
      s.exp_avg_sq[k] = v;
      if constexpr (kMaster) param[k] = from_float<P>(p);
    }
  }
}

template <typename P, typename G>
void launch_all(const AdamWArgs& a, const Hyper& h, float decay_factor, cudaStream_t stream) {
  Pack pack{};
  int slots = 0, blocks = 0;
  auto flush = [&] {
    if (blocks == 0) return;
    adamw_kernel<P, G><<<blocks, kThreads, 0, stream>>>(pack, h);
    SPK_CHECK_LAUNCH("adamw_step");
    pack = Pack{};
    slots = blocks = 0;
  };
  for (const AdamWTensor& t : a.tensors) {
    if (t.numel == 0) continue;
    const int64_t chunks = (t.numel + kChunk - 1) / kChunk;
    for (int64_t c = 0; c < chunks; ++c) {
      if (blocks == kPackBlocks || (c == 0 && slots == kSlots)) flush();
      if (c == 0 || blocks == 0) {
        pack.slot[slots++] = Slot{t.param, t.master, t.grad, t.exp_avg, t.exp_avg_sq, t.numel,
                                  t.weight_decay ? decay_factor : 1.f};
      }
      pack.block_slot[blocks] = uint8_t(slots - 1);
      pack.block_chunk[blocks] = int32_t(c);
      ++blocks;
    }
  }
  flush();
}

}  // namespace

void adamw_step(const AdamWArgs& a, cudaStream_t stream) {
  const char* op = "adamw_step";
  const bool master = a.param_dtype != DType::kF32;
  SPK_REQUIRE(a.grad_dtype == DType::kF32 || a.grad_dtype == a.param_dtype, op,
              std::string("grad dtype must be f32 or the parameter dtype (") + dtype_name(a.param_dtype) + "), got " +
                  dtype_name(a.grad_dtype));
  SPK_REQUIRE(a.step >= 1, op, "step must be >= 1 (the step number including this update)");
  SPK_REQUIRE(std::isfinite(a.lr) && a.lr >= 0, op, "lr must be finite and >= 0");
  SPK_REQUIRE(a.beta1 >= 0 && a.beta1 < 1 && a.beta2 >= 0 && a.beta2 < 1, op, "beta1 and beta2 must be in [0, 1)");
  SPK_REQUIRE(std::isfinite(a.eps) && a.eps > 0, op, "eps must be finite and > 0");
  SPK_REQUIRE(std::isfinite(a.weight_decay) && a.weight_decay >= 0, op, "weight_decay must be finite and >= 0");
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const AdamWTensor& t = a.tensors[i];
    const std::string name = "tensors[" + std::to_string(i) + "]";
    SPK_REQUIRE(t.numel >= 0 && t.numel <= int64_t(INT32_MAX) * kChunk, op, name + " numel must be >= 0");
    if (t.numel == 0) continue;
    SPK_REQUIRE(t.param && t.grad && t.exp_avg && t.exp_avg_sq, op,
                name + " needs param, grad, exp_avg and exp_avg_sq");
    SPK_REQUIRE(master == (t.master != nullptr), op,
                name + (master ? " needs an fp32 master copy for bf16/f16 parameters"
                               : " must not have a master copy: fp32 parameters are updated in place"));
    const uintptr_t misaligned = (reinterpret_cast<uintptr_t>(t.param) | reinterpret_cast<uintptr_t>(t.grad)) % 2 |
                                 (reinterpret_cast<uintptr_t>(t.exp_avg) | reinterpret_cast<uintptr_t>(t.exp_avg_sq) |
                                  reinterpret_cast<uintptr_t>(t.master)) % 4;
    SPK_REQUIRE(misaligned == 0, op, name + " buffers must be aligned to their element size");
  }
  Hyper h;
  h.beta1 = float(a.beta1);
  h.beta2 = float(a.beta2);
  h.one_minus_beta1 = float(1.0 - a.beta1);
  h.one_minus_beta2 = float(1.0 - a.beta2);
  const double t = double(a.step);
  h.step_size = float(a.lr / (1.0 - std::pow(a.beta1, t)));
  h.bias2_sqrt = float(std::sqrt(1.0 - std::pow(a.beta2, t)));
  h.eps = float(a.eps);
  const float decay_factor = float(1.0 - a.lr * a.weight_decay);
  switch (a.param_dtype) {
    case DType::kF32: launch_all<float, float>(a, h, decay_factor, stream); break;
    case DType::kBF16:
      if (a.grad_dtype == DType::kF32) launch_all<__nv_bfloat16, float>(a, h, decay_factor, stream);
      else launch_all<__nv_bfloat16, __nv_bfloat16>(a, h, decay_factor, stream);
      break;
    case DType::kF16:
      if (a.grad_dtype == DType::kF32) launch_all<__half, float>(a, h, decay_factor, stream);
      else launch_all<__half, __half>(a, h, decay_factor, stream);
      break;
  }
}

}  // namespace synthpert::kernels

// The wgmma forward (kernels/attention_fwd_sm90_impl.cuh) is TMA/wgmma PTX
// that the emulation cannot run: the emulated device reports sm_80 code, so
// attention_wgmma_available() is false and the launcher never dispatches
// here; these instances exist for the link and fail loudly if reached.
#include "kernels/attention_dispatch.cuh"

namespace synthpert::kernels::attn {

template <typename T, int D, bool kCausal>
void run_attention_fwd_sm90(const AttentionForwardArgs&, cudaStream_t) {
  throw KernelError("attention_forward: the wgmma path is not emulated on the host");
}

#define SIMT_SM90_INSTANCE(T, D, CAUSAL) \
  template void run_attention_fwd_sm90<T, D, CAUSAL>(const AttentionForwardArgs&, cudaStream_t);
SIMT_SM90_INSTANCE(__nv_bfloat16, 64, true)
SIMT_SM90_INSTANCE(__nv_bfloat16, 64, false)
SIMT_SM90_INSTANCE(__nv_bfloat16, 128, true)
SIMT_SM90_INSTANCE(__nv_bfloat16, 128, false)
SIMT_SM90_INSTANCE(__half, 64, true)
SIMT_SM90_INSTANCE(__half, 64, false)
SIMT_SM90_INSTANCE(__half, 128, true)
SIMT_SM90_INSTANCE(__half, 128, false)
#undef SIMT_SM90_INSTANCE

}  // namespace synthpert::kernels::attn

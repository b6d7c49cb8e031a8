// TMA tensor maps over the attention's [tokens, heads, head_dim] views, for
// the warp-specialised wgmma forward's copies
// (kernels/attention_fwd_sm90_ws_impl.cuh). Host code, in kernels/attention.cu.
#pragma once

#include <cuda.h>

#include "kernels/attention.h"

namespace synthpert::kernels::attn {

// Encodes a map of `view` ([tokens, heads, head_dim] of the problem's dtype)
// with dimensions (channel, head, token), innermost first, whose box is 64
// channels of one head by `box_rows` tokens, 128-byte swizzled (the layout
// of kernels/attention_wgmma.cuh's panels), tokens past `tokens` read as
// zeros. The driver's encoder is reached through the runtime, so the
// library does not link the driver. Throws, naming `tensor`, when the view
// is not token-major (token_stride >= heads * head_stride, which the map's
// stride rule needs) or the driver refuses the map.
CUtensorMap encode_heads_tensor_map(const HeadsView& view, const AttentionProblem& problem, int heads, int64_t tokens,
                                    int box_rows, const char* tensor);

}  // namespace synthpert::kernels::attn

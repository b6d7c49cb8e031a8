// fp64 CPU reference for kernels/rope.cu (rotate-half convention; see
// kernels/rope.h). The angle of token n, pair i is float(position) * inv_freq[i]
// rounded to fp32, as the model definition (Hugging Face, engine/rope.cpp)
// forms it; everything after that is fp64.
// Legend: N tokens, H heads, D head dim; x_NHD contiguous.
#pragma once

#include <cstdint>
#include <vector>

namespace synthpert::reference {

// inverse = false: forward rotation; true: its transpose (the backward).
std::vector<double> rope_ref(const std::vector<double>& x_NHD, const std::vector<int64_t>& positions_N,
                             const std::vector<float>& inv_freq, int heads, int head_dim, bool inverse);

// The fp32 angle both the kernel and the model definition use.
double rope_angle(int64_t position, float inv_freq);

}  // namespace synthpert::reference

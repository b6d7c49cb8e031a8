// Plain loops for SwiGLU; see swiglu_ref.h.
#include "tests/reference/kernels/swiglu_ref.h"

#include <cmath>
#include <stdexcept>

namespace synthpert::reference {
namespace {

double sigmoid(double g) { return 1.0 / (1.0 + std::exp(-g)); }

}  // namespace

std::vector<double> swiglu_forward_ref(const std::vector<double>& gate, const std::vector<double>& up) {
  if (gate.size() != up.size()) throw std::invalid_argument("swiglu_ref: gate and up must have the same shape");
  std::vector<double> out(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
  return out;
}

SwigluGrads swiglu_backward_ref(const std::vector<double>& gate, const std::vector<double>& up,
                                const std::vector<double>& dout) {
  if (gate.size() != up.size() || gate.size() != dout.size())
    throw std::invalid_argument("swiglu_ref: gate, up and dout must have the same shape");
  SwigluGrads g{std::vector<double>(gate.size()), std::vector<double>(gate.size())};
  for (size_t i = 0; i < gate.size(); ++i) {
    const double s = sigmoid(gate[i]);
    // d silu / d g = s + g s (1 - s)
    g.dgate[i] = dout[i] * up[i] * (s + gate[i] * s * (1.0 - s));
    g.dup[i] = dout[i] * gate[i] * s;
  }
  return g;
}

}  // namespace synthpert::reference

// The tolerance rule is achievable for RMSNorm, RoPE and SwiGLU: on every
// shape of their GPU tests, a torch model of the kernels' rounding points
// stays within 2x the eager torch-in-dtype peer's error (plus the output
// half-ulp floor) against the fp64 reference, and the peer really is inexact
// (the bound is not vacuous). Runs on CPU ([cpu]).
#ifndef SYNTHPERT_NO_KERNELS

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <catch2/catch.hpp>

#include "kernels/rope.h"
#include "tests/kernels/ref_test_util.h"
#include "tests/kernels/test_rowwise_peer.h"
#include "tests/reference/kernels/rmsnorm_ref.h"
#include "tests/reference/kernels/rope_ref.h"
#include "tests/reference/kernels/swiglu_ref.h"

using namespace synthpert::test;

namespace {

void check_bound(const char* name, const at::Tensor& model, const at::Tensor& peer, const at::Tensor& exact,
                 double floor) {
  const double model_err = max_abs_err(model, exact), peer_err = max_abs_err(peer, exact);
  INFO(name << ": model err " << model_err << ", peer err " << peer_err << ", floor " << floor);
  CHECK(model_err <= 2 * peer_err + floor);
  CHECK(peer_err > 0.0);
}

const at::ScalarType kDtypes[] = {at::kBFloat16, at::kHalf};

}  // namespace

TEST_CASE("rmsnorm kernel rounding model meets the 2x-peer bound", "[cpu][rmsnorm]") {
  at::set_num_threads(1);
  for (at::ScalarType dt : kDtypes)
    for (const RowsCase& c : rmsnorm_cases()) {
      INFO("rows=" << c.rows << " width=" << c.width << " dtype=" << at::toString(dt));
      const at::Tensor x = random_rounded({c.rows, c.width}, dt, 100), w = random_rounded({c.width}, dt, 101),
                       dy = random_rounded({c.rows, c.width}, dt, 102);
      const auto f = synthpert::reference::rmsnorm_forward_ref(vector_of(x), vector_of(w), c.rows, c.width, 1e-5);
      const auto g =
          synthpert::reference::rmsnorm_backward_ref(vector_of(x), vector_of(w), vector_of(dy), c.rows, c.width, 1e-5);
      const at::Tensor y = tensor_of(f.y_RC, {c.rows, c.width}), dx = tensor_of(g.dx_RC, {c.rows, c.width}),
                       dw = tensor_of(g.dw_C, {c.width});
      const RowwiseResult peer = rmsnorm_peer(x, w, dy, 1e-5, dt), model = rmsnorm_model(x, w, dy, 1e-5, dt);
      check_bound("y", model.out, peer.out, y, half_ulp(dt, max_abs(y)));
      check_bound("dx", model.grad_a, peer.grad_a, dx, half_ulp(dt, max_abs(dx)));
      check_bound("dw", model.grad_b, peer.grad_b, dw, 0.0);
    }
}

TEST_CASE("swiglu kernel rounding model meets the 2x-peer bound", "[cpu][swiglu]") {
  at::set_num_threads(1);
  for (at::ScalarType dt : kDtypes)
    for (const RowsCase& c : swiglu_cases()) {
      INFO("rows=" << c.rows << " width=" << c.width << " dtype=" << at::toString(dt));
      const at::Tensor gate = random_rounded({c.rows, c.width}, dt, 200, 3.0),
                       up = random_rounded({c.rows, c.width}, dt, 201), dout = random_rounded({c.rows, c.width}, dt, 202);
      const auto g = synthpert::reference::swiglu_backward_ref(vector_of(gate), vector_of(up), vector_of(dout));
      const at::Tensor out = tensor_of(synthpert::reference::swiglu_forward_ref(vector_of(gate), vector_of(up)),
                                       {c.rows, c.width});
      const at::Tensor dgate = tensor_of(g.dgate, {c.rows, c.width}), dup = tensor_of(g.dup, {c.rows, c.width});
      const RowwiseResult peer = swiglu_peer(gate, up, dout, dt), model = swiglu_model(gate, up, dout, dt);
      check_bound("out", model.out, peer.out, out, half_ulp(dt, max_abs(out)));
      check_bound("dgate", model.grad_a, peer.grad_a, dgate, half_ulp(dt, max_abs(dgate)));
      check_bound("dup", model.grad_b, peer.grad_b, dup, half_ulp(dt, max_abs(dup)));
    }
}

TEST_CASE("rope kernel rounding model meets the 2x-peer bound", "[cpu][rope]") {
  at::set_num_threads(1);
  for (at::ScalarType dt : kDtypes)
    for (const RopeCase& c : rope_cases()) {
      INFO("N=" << c.tokens << " H=" << c.heads << " D=" << c.head_dim << " dtype=" << at::toString(dt));
      const auto f = c.llama3 ? synthpert::kernels::rope_inv_freq_llama3(c.head_dim, 500000.0, {})
                              : synthpert::kernels::rope_inv_freq(c.head_dim, 10000.0);
      const auto pos = rope_positions(c.tokens);
      const at::Tensor x = random_rounded({c.tokens, c.heads, c.head_dim}, dt, 300),
                       dy = random_rounded({c.tokens, c.heads, c.head_dim}, dt, 301);
      const at::Tensor y = tensor_of(synthpert::reference::rope_ref(vector_of(x), pos, f, c.heads, c.head_dim, false),
                                     {c.tokens, c.heads, c.head_dim});
      const at::Tensor dx = tensor_of(synthpert::reference::rope_ref(vector_of(dy), pos, f, c.heads, c.head_dim, true),
                                      {c.tokens, c.heads, c.head_dim});
      const RowwiseResult peer = rope_peer(x, dy, pos, f, dt), model = rope_model(x, dy, pos, f, dt);
      check_bound("y", model.out, peer.out, y, half_ulp(dt, max_abs(y)));
      check_bound("dx", model.grad_a, peer.grad_a, dx, half_ulp(dt, max_abs(dx)));
    }
}

#endif  // SYNTHPERT_NO_KERNELS

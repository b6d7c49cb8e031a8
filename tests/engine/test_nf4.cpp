// NF4 quantisation on the CPU path.
#include <catch2/catch.hpp>

#include "engine/nf4.h"
#include "engine/nf4_linear.h"

using namespace synthpert::engine;

TEST_CASE("derived NF4 code values equal the published QLoRA table", "[nf4]") {
  // Table 1-style values as printed in the QLoRA paper's appendix / bitsandbytes.
  const float published[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f,
                               -0.39491748809814453f, -0.28444138169288635f,
                               -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                               0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f,
                               0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
                               0.7229568362236023f, 1.0f};
  const auto& codes = nf4_code_values();
  for (int i = 0; i < 16; ++i) CHECK(codes[i] == Approx(published[i]).margin(2e-7));
}

TEST_CASE("NF4 round trip stays within half a code gap of each block's scale", "[nf4]") {
  torch::manual_seed(0);
  auto w = torch::randn({24, 80});  // 1920 values = 30 blocks of 64
  const auto q = nf4_quantize(w);
  const auto back = nf4_dequantize(q);
  const auto& codes = nf4_code_values();
  float max_gap = 0;
  for (int i = 1; i < 16; ++i) max_gap = std::max(max_gap, codes[i] - codes[i - 1]);
  auto blocks = w.reshape({-1, 64});
  auto err = (back - w).reshape({-1, 64}).abs().amax(1);
  auto bound = blocks.abs().amax(1) * (max_gap / 2) + 1e-6;
  CHECK((err <= bound).all().item<bool>());
  // Each block's largest magnitude is exact (it maps to code +-1).
  auto idx = blocks.abs().argmax(1);
  CHECK(torch::allclose(back.reshape({-1, 64}).gather(1, idx.unsqueeze(1)),
                        blocks.gather(1, idx.unsqueeze(1))));
  // Packing: first value of a pair in the high nibble.
  const uint8_t first = q.packed.data_ptr<uint8_t>()[0];
  const float a0 = codes[first >> 4] * q.absmax.data_ptr<float>()[0];
  CHECK(a0 == back.reshape({-1})[0].item<float>());
}

TEST_CASE("nf4_linear: forward and input gradient of x W^T with W dequantised, no weight gradient", "[nf4]") {
  torch::manual_seed(2);
  const auto w = std::make_shared<Nf4Weight>(nf4_quantize_device(torch::randn({24, 40})));  // 960 = 15 blocks
  const auto dense = nf4_dequantize_device(*w);
  CHECK(torch::equal(dense, nf4_dequantize(*w)));  // on the CPU the device entry is engine/nf4
  for (const auto& shape : {std::vector<int64_t>{1, 40}, {3, 7, 40}}) {
    const auto x0 = torch::randn(shape), dy = torch::randn(x0.sizes().vec().size() == 2
                                                              ? std::vector<int64_t>{shape[0], 24}
                                                              : std::vector<int64_t>{shape[0], shape[1], 24});
    auto xr = x0.clone().requires_grad_(true);
    const auto ref = torch::matmul(xr, dense.t());
    (ref * dy).sum().backward();
    auto x = x0.clone().requires_grad_(true);
    const auto y = nf4_linear(x, w);
    CHECK(y.sizes() == ref.sizes());
    (y * dy).sum().backward();
    CHECK((y - ref).abs().max().item<float>() < 1e-5f);
    CHECK((x.grad() - xr.grad()).abs().max().item<float>() < 1e-5f);
  }
  CHECK_THROWS(nf4_linear(torch::randn({2, 39}), w));
}

TEST_CASE("double-quantised NF4 scales stay within half an 8-bit code gap and feed nf4_linear", "[nf4]") {
  torch::manual_seed(4);
  // 300 x 64 = 300 blocks: one full group of 256 scales and a partial one.
  const auto w = torch::randn({300, 64}) * torch::rand({300, 1});
  const auto plain = nf4_quantize(w);
  const auto dq = nf4_quantize(w, /*double_quant=*/true);
  REQUIRE(dq.double_quant());
  CHECK(torch::equal(dq.packed, plain.packed));  // the 4-bit codes come from the exact absmax
  CHECK(dq.absmax_code.numel() == 300);
  CHECK(dq.absmax_scale.numel() == 2);
  const auto exact = plain.absmax, decoded = nf4_block_scales(dq);
  const auto& t = nf4_absmax_code_values();
  float widest_gap = 0;
  for (size_t i = 1; i < t.size(); ++i) widest_gap = std::max(widest_gap, t[i] - t[i - 1]);
  const auto group_scale = dq.absmax_scale.repeat_interleave(256).narrow(0, 0, 300);
  CHECK(((decoded - exact).abs() <= group_scale * (widest_gap / 2) + 1e-6).all().item<bool>());
  CHECK_FALSE(torch::equal(decoded, exact));
  // nf4_linear over the double-quantised weight is x W^T with W decoded from it.
  const auto wd = std::make_shared<Nf4Weight>(nf4_quantize_device(w, true));
  const auto x = torch::randn({3, 64});
  CHECK((nf4_linear(x, wd) - torch::mm(x, nf4_dequantize(dq).t())).abs().max().item<float>() < 1e-5f);
  CHECK((nf4_dequantize(dq) - nf4_dequantize(plain)).abs().max().item<float>() > 0);
}

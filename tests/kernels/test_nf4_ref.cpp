// The NF4 reference against the CPU engine (engine/nf4.cpp: byte-identical
// codes and scales, plain and double-quantised, identical dequantised
// values), libtorch (nearest code by argmin, the mean of the scales, the
// matmul) and the definition of the double-quantisation code ([cpu]).
#include <ATen/ATen.h>

// engine/nf4.h (torch) before Catch: c10 defines a CHECK macro of its own.
#include "engine/nf4.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "tests/kernels/ref_test_util.h"
#include "tests/reference/kernels/nf4_ref.h"

using namespace synthpert::test;
using synthpert::reference::Nf4State;

namespace {

struct Shape {
  int64_t out, in, pad;  // pad: extra elements per row of the stored weight
};

// Odd shapes: 1, 5, 123 and 1023 rows; widths that are not multiples of 64
// (blocks straddle rows); padded rows (a non-contiguous view).
const Shape kShapes[] = {{1, 64, 0}, {5, 128, 3}, {123, 64, 0}, {1023, 192, 5}, {64, 5, 2}, {128, 123, 0}, {3, 704, 1}};

// Weights in fp32 and rounded to bf16 (engine models load bf16), with an
// all-zero block and a block holding one huge value.
at::Tensor make_weight(const Shape& s, uint32_t seed, bool bf16) {
  at::Tensor w = tensor_of(randn(size_t(s.out * (s.in + s.pad)), seed, 0.05), {s.out, s.in + s.pad}).to(at::kFloat);
  at::Tensor flat = w.narrow(1, 0, s.in).contiguous().view({-1});
  if (flat.numel() >= 256) {
    flat.narrow(0, 64, 64).zero_();
    flat[130] = 40.f;
  }
  w.narrow(1, 0, s.in).copy_(flat.view({s.out, s.in}));
  return bf16 ? w.to(at::kBFloat16).to(at::kFloat) : w;
}

std::vector<float> floats(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

const std::array<float, 16>& engine_codes() { return synthpert::engine::nf4_code_values(); }

// A stand-in for the absmax code when the test only needs plain NF4.
const std::array<float, 256>& no_absmax_codes() {
  static const std::array<float, 256> none{};
  return none;
}

}  // namespace

TEST_CASE("nf4 reference codes and absmax are byte-identical to engine::nf4_quantize", "[cpu][nf4]") {
  for (const Shape& s : kShapes)
    for (bool bf16 : {false, true}) {
      INFO("O=" << s.out << " I=" << s.in << " pad=" << s.pad << " bf16=" << bf16);
      const at::Tensor stored = make_weight(s, 7 + uint32_t(s.out), bf16);
      const at::Tensor view = stored.narrow(1, 0, s.in);  // strided when padded
      const auto engine = synthpert::engine::nf4_quantize(bf16 ? view.to(at::kBFloat16) : view);
      const Nf4State ref = synthpert::reference::nf4_quantize_ref(floats(stored), s.out, s.in, s.in + s.pad,
                                                                   engine_codes(), false, no_absmax_codes());
      REQUIRE(size_t(engine.packed.numel()) == ref.packed.size());
      CHECK(std::memcmp(engine.packed.data_ptr<uint8_t>(), ref.packed.data(), ref.packed.size()) == 0);
      REQUIRE(size_t(engine.absmax.numel()) == ref.absmax.size());
      CHECK(std::memcmp(engine.absmax.data_ptr<float>(), ref.absmax.data(), ref.absmax.size() * 4) == 0);
      // Dequantised values: the engine's fp32 path, exactly.
      auto as_f32 = engine;
      as_f32.dtype = at::kFloat;
      const at::Tensor back = synthpert::engine::nf4_dequantize(as_f32);
      const auto deq = synthpert::reference::nf4_dequantize_ref(ref, engine_codes(), no_absmax_codes());
      CHECK(std::memcmp(back.contiguous().data_ptr<float>(), deq.data(), deq.size() * 4) == 0);
    }
}

TEST_CASE("nf4 reference double quantisation is byte-identical to engine::nf4_quantize's", "[cpu][nf4]") {
  const auto& table8 = synthpert::engine::nf4_absmax_code_values();
  // 1023 x 192 = 3069 blocks (11 full 256-blocks and a partial one), strided.
  for (const Shape& s : {Shape{1023, 192, 5}, Shape{5, 128, 0}, Shape{1, 64, 0}}) {
    INFO("O=" << s.out << " I=" << s.in);
    const at::Tensor stored = make_weight(s, 23, true);
    const auto engine = synthpert::engine::nf4_quantize(stored.narrow(1, 0, s.in), /*double_quant=*/true);
    const Nf4State ref = synthpert::reference::nf4_quantize_ref(floats(stored), s.out, s.in, s.in + s.pad,
                                                                 engine_codes(), true, table8);
    REQUIRE(engine.double_quant());
    CHECK(std::memcmp(engine.packed.data_ptr<uint8_t>(), ref.packed.data(), ref.packed.size()) == 0);
    REQUIRE(size_t(engine.absmax_code.numel()) == ref.absmax_code.size());
    CHECK(std::memcmp(engine.absmax_code.data_ptr<uint8_t>(), ref.absmax_code.data(), ref.absmax_code.size()) == 0);
    REQUIRE(size_t(engine.absmax_scale.numel()) == ref.absmax_scale.size());
    CHECK(std::memcmp(engine.absmax_scale.data_ptr<float>(), ref.absmax_scale.data(), ref.absmax_scale.size() * 4) ==
          0);
    CHECK(engine.absmax_offset.item<float>() == ref.absmax_offset);
    const at::Tensor scales = synthpert::engine::nf4_block_scales(engine);
    const auto ref_scales = synthpert::reference::nf4_block_scales_ref(ref, table8);
    CHECK(std::memcmp(scales.data_ptr<float>(), ref_scales.data(), ref_scales.size() * 4) == 0);
    auto as_f32 = engine;
    as_f32.dtype = at::kFloat;
    const at::Tensor back = synthpert::engine::nf4_dequantize(as_f32);
    const auto deq = synthpert::reference::nf4_dequantize_ref(ref, engine_codes(), table8);
    CHECK(std::memcmp(back.contiguous().data_ptr<float>(), deq.data(), deq.size() * 4) == 0);
  }
}

TEST_CASE("nf4 reference picks the nearest code, as libtorch argmin finds it", "[cpu][nf4]") {
  const Shape s{123, 64, 0};
  const at::Tensor w = make_weight(s, 3, false);
  const Nf4State ref =
      synthpert::reference::nf4_quantize_ref(floats(w), s.out, s.in, s.in, engine_codes(), false, no_absmax_codes());
  const at::Tensor blocks = w.reshape({-1, 64});
  const at::Tensor amax = blocks.abs().amax(1, true);
  const at::Tensor scaled = blocks * at::where(amax > 0, 1.0 / amax, at::zeros_like(amax));
  const at::Tensor table = at::tensor(std::vector<float>(engine_codes().begin(), engine_codes().end()));
  const at::Tensor want = (scaled.unsqueeze(-1) - table).abs().argmin(-1).reshape({-1});  // first minimum
  const at::Tensor packed = at::from_blob(const_cast<uint8_t*>(ref.packed.data()), {int64_t(ref.packed.size())},
                                          at::kByte).to(at::kLong);
  const at::Tensor got = at::stack({packed.floor_divide(16), packed.remainder(16)}, 1).reshape({-1});
  CHECK(at::equal(got, want));
}

TEST_CASE("nf4 reference matmul matches libtorch mm on the dequantised weight", "[cpu][nf4]") {
  for (auto [N, O, I] : {std::tuple<int64_t, int64_t, int64_t>{1, 64, 64}, {5, 123, 64}, {17, 64, 5}, {3, 7, 192}}) {
    INFO("N=" << N << " O=" << O << " I=" << I);
    const Shape s{O, I, 0};
    const at::Tensor w = make_weight(s, 11, true);
    const Nf4State q =
        synthpert::reference::nf4_quantize_ref(floats(w), O, I, I, engine_codes(), false, no_absmax_codes());
    const auto wd = synthpert::reference::nf4_dequantize_ref(q, engine_codes(), no_absmax_codes());
    const auto x = randn(size_t(N * I), 12);
    const at::Tensor want = tensor_of(x, {N, I}).mm(at::tensor(wd).to(at::kDouble).view({O, I}).t());
    CHECK(max_abs_diff(synthpert::reference::nf4_matmul_ref(x, wd, N, O, I), want) < 1e-12);
  }
}

TEST_CASE("nf4 double-quantisation code follows the signed dynamic map", "[cpu][nf4]") {
  const auto& t = synthpert::engine::nf4_absmax_code_values();
  for (size_t i = 1; i < t.size(); ++i) CHECK(t[i - 1] < t[i]);
  CHECK(t.back() == 1.f);
  CHECK(std::count(t.begin(), t.end(), 0.f) == 1);
  // Decade k (values in [0.1, 1) x 10^(k-6)) holds 2^k positive values, evenly
  // spaced by 0.9 x 10^(k-6) / 2^k, and the same negated.
  for (int k = 0; k < 7; ++k) {
    const double lo = 0.1 * std::pow(10.0, k - 6), hi = std::pow(10.0, k - 6), step = 0.9 * hi / (1 << k);
    std::vector<double> pos;
    for (float v : t)
      if (v >= lo && v < hi) pos.push_back(v);
    INFO("decade " << k);
    REQUIRE(pos.size() == size_t(1) << k);
    CHECK(std::abs(pos.front() - (lo + step / 2)) <= 1e-6 * hi);
    for (size_t j = 1; j < pos.size(); ++j) CHECK(std::abs(pos[j] - pos[j - 1] - step) <= 1e-6 * hi);
    for (double p : pos) CHECK(std::count(t.begin(), t.end(), -float(p)) == 1);
  }
}

TEST_CASE("nf4 reference double quantisation: mean offset, nearest 8-bit codes, bounded scale error", "[cpu][nf4]") {
  const auto& table8 = synthpert::engine::nf4_absmax_code_values();
  const at::Tensor t8 = at::tensor(std::vector<float>(table8.begin(), table8.end()));
  // 1023 x 192 = 3069 blocks: 11 full 256-blocks and a partial one.
  for (const Shape& s : {Shape{1023, 192, 5}, Shape{5, 128, 0}, Shape{1, 64, 0}}) {
    INFO("O=" << s.out << " I=" << s.in);
    const at::Tensor w = make_weight(s, 21, true);
    const Nf4State dq =
        synthpert::reference::nf4_quantize_ref(floats(w), s.out, s.in, s.in + s.pad, engine_codes(), true, table8);
    const Nf4State plain = synthpert::reference::nf4_quantize_ref(floats(w), s.out, s.in, s.in + s.pad,
                                                                  engine_codes(), false, table8);
    CHECK(dq.packed == plain.packed);  // 4-bit codes come from the exact absmax
    const at::Tensor amax = at::tensor(plain.absmax);
    CHECK(dq.absmax_offset == amax.to(at::kDouble).mean().to(at::kFloat).item<float>());
    const int64_t nb = amax.numel();
    const at::Tensor centred = amax - dq.absmax_offset;
    const at::Tensor padded = at::cat({centred.abs(), at::zeros({(256 - nb % 256) % 256})}).view({-1, 256});
    const at::Tensor scale = padded.amax(1);
    CHECK(at::equal(scale, at::tensor(dq.absmax_scale)));
    const at::Tensor per_block = scale.repeat_interleave(256).narrow(0, 0, nb);
    const at::Tensor v = centred * at::where(per_block > 0, 1.0 / per_block, at::zeros_like(per_block));
    const at::Tensor want = (v.unsqueeze(-1) - t8).abs().argmin(-1);
    CHECK(at::equal(at::tensor(std::vector<int64_t>(dq.absmax_code.begin(), dq.absmax_code.end())), want));
    // The dequantised scale is within half the widest code gap (times the
    // 256-block scale) of the exact absmax.
    const at::Tensor back = at::tensor(synthpert::reference::nf4_block_scales_ref(dq, table8));
    const double widest_gap = (t8.narrow(0, 1, 255) - t8.narrow(0, 0, 255)).max().item<double>();
    CHECK(((back - amax).abs() <= per_block * (widest_gap / 2) + 1e-6).all().item<bool>());
  }
}

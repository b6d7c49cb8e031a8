#include "engine/lora_bank.h"

#include <map>

#include "common/error.h"
#include "engine/kernel_launch.h"

#if defined(SYNTHPERT_HAVE_KERNELS)
#include "kernels/lora.h"
#endif

namespace synthpert::engine {

AdapterRouting AdapterRouting::for_rows(const std::vector<int64_t>& row_adapter, int64_t tokens_per_row,
                                        int64_t num_adapters, torch::Device device) {
  SP_CHECK(tokens_per_row > 0, "AdapterRouting: tokens_per_row must be > 0");
  std::vector<int32_t> per_token;
  std::map<int64_t, std::vector<int64_t>> tokens_of;
  per_token.reserve(row_adapter.size() * static_cast<size_t>(tokens_per_row));
  for (size_t b = 0; b < row_adapter.size(); ++b) {
    const int64_t i = row_adapter[b];
    SP_CHECK_INPUT(i >= -1 && i < num_adapters, "row ", b, " asks for adapter ", i, ", outside [-1, ",
                   num_adapters, ") (-1: the base model; ", num_adapters, " adapters loaded)");
    for (int64_t t = 0; t < tokens_per_row; ++t) {
      per_token.push_back(static_cast<int32_t>(i));
      if (i >= 0) tokens_of[i].push_back(static_cast<int64_t>(b) * tokens_per_row + t);
    }
  }
  AdapterRouting r;
  r.token_adapter = torch::tensor(per_token, torch::kInt32).to(device);
  bool any_gathered = false;
  for (auto& [i, tokens] : tokens_of) {
    r.groups.push_back({i, torch::tensor(tokens, torch::kInt64).to(device)});
    if (r.groups.back().dense())
      for (const int64_t n : tokens) per_token[static_cast<size_t>(n)] = -1;
    else
      any_gathered = true;
  }
  if (any_gathered) r.gather_adapter = torch::tensor(per_token, torch::kInt32).to(device);
  return r;
}

namespace {

// y[tokens] += s_i (x[tokens] A_i^T) B_i^T as two dense GEMMs.
void add_dense_update(torch::Tensor& y, const torch::Tensor& x, const LoraBank& bank, const AdapterGroup& g) {
  const auto xs = x.index_select(0, g.tokens);
  const auto update = torch::mm(torch::mm(xs, bank.A[g.adapter].t()), bank.B[g.adapter].t()) *
                      bank.scale_values.at(static_cast<size_t>(g.adapter));
  y.index_add_(0, g.tokens, update.to(y.scalar_type()));
}

}  // namespace

void apply_lora_bank(torch::Tensor& y, const torch::Tensor& x, const LoraBank& bank, const AdapterRouting& routing) {
  SP_CHECK(x.dim() == 2 && y.dim() == 2 && x.size(0) == y.size(0), "apply_lora_bank: x (N, K) and y (N, O) expected, got ",
           x.sizes(), " and ", y.sizes());
  SP_CHECK(bank.A.dim() == 3 && bank.B.dim() == 3 && bank.A.size(2) == x.size(1) && bank.B.size(1) == y.size(1) &&
               bank.A.size(0) == bank.B.size(0) && bank.A.size(1) == bank.B.size(2),
           "apply_lora_bank: bank A ", bank.A.sizes(), " and B ", bank.B.sizes(), " do not fit x ", x.sizes(), " -> y ",
           y.sizes());
  SP_CHECK(routing.token_adapter.defined() && routing.token_adapter.numel() == x.size(0),
           "apply_lora_bank: the routing names ", routing.token_adapter.numel(), " tokens, x has ", x.size(0));
#if defined(SYNTHPERT_HAVE_KERNELS)
  namespace kn = synthpert::kernels;
  const int64_t N = x.size(0), K = x.size(1), O = y.size(1), R = bank.A.size(1), M = bank.size();
  if (kernels_apply(x.device(), x.scalar_type()) && R <= kn::kLoraMaxServingRank && y.stride(1) == 1) {
    for (const auto& g : routing.groups)
      if (g.dense()) add_dense_update(y, x, bank, g);
    if (N == 0 || !routing.gather_adapter.defined()) return;
    const auto xr = kernel_rows(x);
    const auto A = bank.A.contiguous(), B = bank.B.contiguous();
    use_kernel_device(x);
    const auto ws = kernel_workspace(x, kn::lora_multi_workspace_bytes(N, R));
    kn::LoraMultiArgs a;
    a.dtype = kernel_dtype(x);
    a.rows = N, a.in_features = K, a.out_features = O, a.rank = R, a.num_adapters = M;
    a.x = xr.data_ptr();
    a.x_row_stride = xr.stride(0);
    a.lora_a = A.data_ptr();
    a.lora_a_adapter_stride = R * K, a.lora_a_row_stride = K;
    a.lora_b = B.data_ptr();
    a.lora_b_adapter_stride = O * R, a.lora_b_row_stride = R;
    a.scales = bank.scales.data_ptr<float>();
    a.row_adapter = routing.gather_adapter.data_ptr<int32_t>();
    a.y = y.data_ptr();
    a.y_row_stride = y.stride(0);
    a.workspace = ws.ptr;
    kn::lora_multi_apply(a, kernel_stream(x));
    return;
  }
#endif
  for (const auto& g : routing.groups) add_dense_update(y, x, bank, g);
}

}  // namespace synthpert::engine

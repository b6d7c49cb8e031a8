#include "trainer/param_set.h"

#include "common/error.h"
#include "engine/peft_adapter.h"

namespace synthpert::trainer {

ParamSet ParamSet::lora(engine::Transformer& model) {
  std::vector<ParamEntry> e;
  for (auto& [name, lin] : model.named_linears()) {
    if (!lin->lora) continue;
    e.push_back({engine::peft_key(name, true), lin->lora->A, 0, true});
    e.push_back({engine::peft_key(name, false), lin->lora->B, 0, true});
  }
  SP_CHECK_INPUT(!e.empty(), "no LoRA adapter is attached: nothing to train");
  ParamSet s;
  s.build(std::move(e), model.device());
  return s;
}

ParamSet ParamSet::full(engine::Transformer& model) {
  for (auto& [name, lin] : model.named_linears())
    SP_CHECK_INPUT(!lin->nf4, "--full cannot train NF4-quantised weights ('", name,
                   "'); drop --qlora");
  std::vector<ParamEntry> e;
  for (auto& [name, t] : model.named_tensors()) e.push_back({name, *t, 0, t->dim() >= 2});
  ParamSet s;
  s.build(std::move(e), model.device());
  return s;
}

void ParamSet::build(std::vector<ParamEntry> entries, torch::Device device) {
  int64_t n = 0;
  for (auto& e : entries) {
    e.offset = n;
    n += e.param.numel();
  }
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  master_ = torch::empty({n}, f32);
  grad_ = torch::zeros({n}, f32);
  decay_mask_ = torch::zeros({n}, f32);
  for (auto& e : entries) {
    master_.narrow(0, e.offset, e.param.numel()).copy_(e.param.detach().reshape({-1}));
    if (e.decay) decay_mask_.narrow(0, e.offset, e.param.numel()).fill_(1.0);
    e.param.requires_grad_(true);
  }
  entries_ = std::move(entries);
}

void ParamSet::accumulate_grads() {
  torch::NoGradGuard no_grad;
  for (auto& e : entries_) {
    auto& g = e.param.mutable_grad();
    if (!g.defined()) continue;
    grad_.narrow(0, e.offset, e.param.numel()).add_(g.reshape({-1}).to(torch::kFloat32));
    g = torch::Tensor();
  }
}

void ParamSet::write_back() {
  torch::NoGradGuard no_grad;
  for (auto& e : entries_)
    e.param.copy_(master_.narrow(0, e.offset, e.param.numel()).view(e.param.sizes()));
}

engine::NamedTensors ParamSet::views(const torch::Tensor& flat) const {
  engine::NamedTensors out;
  for (const auto& e : entries_)
    out.emplace_back(e.name, flat.narrow(0, e.offset, e.param.numel()).view(e.param.sizes()));
  return out;
}

void ParamSet::load_views(torch::Tensor& flat, const std::map<std::string, torch::Tensor>& tensors,
                          const std::string& source) const {
  SP_CHECK_INPUT(tensors.size() == entries_.size(), source, ": holds ", tensors.size(),
                 " tensors but this run trains ", entries_.size());
  torch::NoGradGuard no_grad;
  for (const auto& e : entries_) {
    auto it = tensors.find(e.name);
    SP_CHECK_INPUT(it != tensors.end(), source, ": missing tensor '", e.name, "'");
    SP_CHECK_INPUT(it->second.sizes() == e.param.sizes(), source, ": tensor '", e.name,
                   "' has shape ", it->second.sizes(), ", this run expects ", e.param.sizes());
    flat.narrow(0, e.offset, e.param.numel()).copy_(it->second.reshape({-1}));
  }
}

double clip_grad_norm(torch::Tensor& grad, double max_norm) {
  const double norm = grad.norm().item<double>();
  if (max_norm > 0) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) grad.mul_(coef);
  }
  return norm;
}

}  // namespace synthpert::trainer

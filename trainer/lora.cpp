#include "trainer/lora.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/hash.h"
#include "trainer/batch_plan.h"

namespace synthpert::trainer {

namespace {

const std::vector<std::pair<std::string, std::string>>& target_table() {
  static const std::vector<std::pair<std::string, std::string>> t = {
      {"q", "q_proj"},       {"k", "k_proj"},   {"v", "v_proj"},    {"o", "o_proj"},
      {"gate", "gate_proj"}, {"up", "up_proj"}, {"down", "down_proj"}};
  return t;
}

uint64_t hash_name(const std::string& s) { return fnv1a64(s); }

}  // namespace

std::vector<std::string> parse_lora_targets(const std::string& list) {
  std::vector<bool> chosen(target_table().size(), false);
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t comma = list.find(',', pos);
    std::string item = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    bool known = false;
    for (size_t i = 0; i < target_table().size(); ++i) {
      const auto& [short_name, module] = target_table()[i];
      if (item == short_name || item == module || item == "all") chosen[i] = known = true;
    }
    SP_CHECK_INPUT(known, "--targets: unknown module '", item,
                   "' (expected some of q,k,v,o,gate,up,down, their *_proj names, or all)");
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < chosen.size(); ++i)
    if (chosen[i]) out.push_back(target_table()[i].second);
  return out;
}

void check_lora_spec(const engine::LoraSpec& spec) {
  SP_CHECK_INPUT(spec.r >= 1, "--lora-r must be at least 1, got ", spec.r);
  SP_CHECK_INPUT(spec.dropout >= 0 && spec.dropout < 1, "--lora-dropout must be in [0, 1), got ",
                 spec.dropout);
  SP_CHECK_INPUT(!spec.target_modules.empty(), "--targets: no LoRA target modules");
}

void attach_lora(engine::Transformer& model, const engine::LoraSpec& spec, uint64_t seed) {
  check_lora_spec(spec);
  for (auto& [name, lin] : model.named_linears()) {
    const std::string leaf = name.substr(name.find_last_of('.') + 1);
    if (std::find(spec.target_modules.begin(), spec.target_modules.end(), leaf) ==
        spec.target_modules.end())
      continue;
    const int64_t in = lin->in_features(), out = lin->out_features();
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    const uint64_t key = mix_seed(seed, hash_name(name));
    std::vector<float> a(static_cast<size_t>(spec.r * in));
    for (size_t i = 0; i < a.size(); ++i) {
      const double u = (mix_seed(key, i) >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
      a[i] = static_cast<float>((2 * u - 1) * bound);
    }
    auto w = std::make_shared<engine::LoraWeights>();
    w->A = torch::from_blob(a.data(), {spec.r, in}, torch::kFloat32)
               .to(model.device(), model.dtype(), false, true);
    w->B = torch::zeros({out, spec.r}, torch::TensorOptions().dtype(model.dtype()).device(model.device()));
    w->scale = spec.scale();
    w->dropout = spec.dropout;
    lin->lora = w;
  }
}

}  // namespace synthpert::trainer

// `synthpert logits`: full logits of one sequence as JSON (parity checks).
#include <stdexcept>
#include <string>

#include "apps/command.h"
#include "common/error.h"
#include "engine/model.h"
#include "engine/peft_adapter.h"

namespace synthpert::cli {
namespace {

struct Opts {
  std::string model, adapter, ids, device = "cpu";
};

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  cmd.add_option("--model", o->model, "Hugging Face model folder")->required();
  cmd.add_option("--adapter", o->adapter, "PEFT LoRA adapter folder applied to the model");
  cmd.add_option("--ids", o->ids, "token ids, comma-separated")->required();
  cmd.add_option("--device", o->device, "cpu | cuda")->capture_default_str();
  return [o] {
    const std::vector<int64_t> tokens = parse_id_list("--ids", o->ids);  // before the model loads
    engine::LoadOptions lo;
    lo.device = engine::parse_device(o->device);
    auto model = engine::Transformer::load(o->model, lo);
    if (!o->adapter.empty()) engine::load_peft_adapter(o->adapter, model);
    engine::InferenceGuard guard;
    auto ids_t = torch::tensor(tokens, torch::kInt64).unsqueeze(0).to(lo.device);
    auto logits = model.forward(engine::ForwardBatch::from_ids(ids_t))[0].to(torch::kCPU).contiguous();
    const int64_t T = logits.size(0), V = logits.size(1);
    // JSON has no NaN or infinity (they would print as null), and a parity
    // check reading null would fail far from the cause.
    const auto finite_rows = torch::isfinite(logits).all(1);
    if (!finite_rows.all().item<bool>()) {
      const int64_t t = torch::logical_not(finite_rows).nonzero()[0][0].item<int64_t>();
      throw std::runtime_error("the logits at position " + std::to_string(t) +
                               " are not finite (NaN or infinity): the weights hold non-finite values or the "
                               "forward overflowed");
    }
    const float* p = logits.data_ptr<float>();
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t t = 0; t < T; ++t) rows.push_back(std::vector<float>(p + t * V, p + (t + 1) * V));
    print_json({{"shape", {T, V}}, {"logits", rows}});
    return 0;
  };
}

const CommandRegistrar reg("logits", "Print a sequence's logits as JSON", setup);

}  // namespace
}  // namespace synthpert::cli

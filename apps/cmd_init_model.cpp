// `synthpert init-model`: a random-initialised checkpoint in Hugging Face layout.
#include <filesystem>
#include <system_error>

#include "apps/command.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"
#include "engine/config.h"
#include "engine/init_model.h"

namespace synthpert::cli {
namespace {

struct Opts {
  std::string arch = "llama", preset, config, out, dtype = "f32";
  uint64_t seed = 0;
  int64_t vocab_size = 0;
  bool jitter = false, overwrite = false;
};

bool holds_checkpoint(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return false;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const auto name = entry.path().filename().string();
    if (name == "config.json" || entry.path().extension() == ".safetensors") return true;
  }
  return false;
}

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  auto* arch = cmd.add_option("--arch", o->arch, "llama | qwen2 | qwen3 | mistral (with --preset)")->capture_default_str();
  auto* preset = cmd.add_option("--preset", o->preset, "tiny | small | llama3-1b | llama3-8b");
  auto* config = cmd.add_option("--config", o->config, "config.json to use instead of a preset (its model_type is the arch)");
  preset->excludes(config);
  arch->excludes(config);
  cmd.add_option("--out", o->out, "output folder")->required();
  cmd.add_option("--seed", o->seed, "random seed")->transform(whole_number())->capture_default_str();
  cmd.add_option("--dtype", o->dtype, "f32 | bf16 | f16")->capture_default_str();
  auto* vocab = cmd.add_option("--vocab-size", o->vocab_size, "override the preset's vocabulary size");
  cmd.add_flag("--jitter", o->jitter, "randomise norm weights and biases too (for tests)");
  cmd.add_flag("--overwrite", o->overwrite, "replace a checkpoint already in --out");
  return [o, vocab] {
    SP_CHECK_INPUT(!o->preset.empty() || !o->config.empty(), "one of --preset or --config is required");
    SP_CHECK_INPUT(vocab->count() == 0 || o->vocab_size > 0, "--vocab-size must be positive, got ", o->vocab_size);
    // A mistyped --out naming a real checkpoint would lose its weights to
    // random ones.
    SP_CHECK_INPUT(o->overwrite || !holds_checkpoint(o->out), o->out,
                   " already holds a checkpoint (config.json or *.safetensors); pass --overwrite to replace it");
    engine::ModelConfig c;
    if (!o->config.empty()) {
      c = engine::parse_config(read_json_input(o->config), o->config);
    } else {
      c = engine::preset_config(engine::parse_arch(o->arch), o->preset);
    }
    if (o->vocab_size > 0) c.vocab_size = o->vocab_size;
    engine::InitOptions io;
    io.seed = o->seed;
    io.jitter = o->jitter;
    if (o->dtype == "f32") io.dtype = engine::StDType::F32;
    else if (o->dtype == "bf16") io.dtype = engine::StDType::BF16;
    else if (o->dtype == "f16") io.dtype = engine::StDType::F16;
    else throw InputError(str_cat("--dtype: expected f32, bf16 or f16, got '", o->dtype, "'"));
    const int64_t params = engine::init_model(c, o->out, io);
    print_json({{"out", o->out}, {"arch", engine::arch_name(c.arch)}, {"parameters", params},
                {"dtype", o->dtype}});
    return 0;
  };
}

const CommandRegistrar reg("init-model", "Write a random-initialised Hugging Face checkpoint", setup);

}  // namespace
}  // namespace synthpert::cli

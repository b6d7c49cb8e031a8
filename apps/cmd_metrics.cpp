// `synthpert metrics`: metrics JSON of a predictions file.
#include "apps/command.h"
#include "perturb/metrics.h"

namespace synthpert::cli {
namespace {

struct Opts {
  std::string predictions;
  int bootstrap = 1000;
  uint64_t seed = 0;
};

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  cmd.add_option("--predictions", o->predictions, "predictions JSONL")->required();
  cmd.add_option("--bootstrap", o->bootstrap, "bootstrap resamples for ci95 (0: none)")->transform(whole_number())->capture_default_str();
  cmd.add_option("--seed", o->seed, "bootstrap seed")->transform(whole_number())->capture_default_str();
  return [o] {
    perturb::MetricsOptions mo;
    mo.bootstrap = o->bootstrap;
    mo.seed = o->seed;
    print_json(perturb::compute_metrics(perturb::read_predictions(o->predictions), mo));
    return 0;
  };
}

const CommandRegistrar reg("metrics", "Accuracy, per-class F1, per-gene AUROC and CIs of a predictions file", setup);

}  // namespace
}  // namespace synthpert::cli

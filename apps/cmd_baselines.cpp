// `synthpert baselines`: metrics of every baseline on a PerturbQA split.
#include "apps/command.h"
#include "common/error.h"
#include "perturb/baselines.h"
#include "perturb/split.h"

namespace synthpert::cli {
namespace {

struct Opts {
  std::string data_dir, split = "holdout:rpe1", part = "test";
  double val_fraction = 0.0;
  uint64_t val_seed = 0;
  int bootstrap = 200;
  uint64_t seed = 0;
};

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  cmd.add_option("--perturbqa", o->data_dir, "PerturbQA CSV folder (else $PERTURBQA_DIR, ../shared/perturbqa)");
  cmd.add_option("--split", o->split, "default | default:CELL[,CELL] | holdout:CELL")->capture_default_str();
  add_split_part_options(cmd, o->part, o->val_fraction, o->val_seed);
  cmd.add_option("--bootstrap", o->bootstrap, "bootstrap resamples for ci95 (0: none)")->transform(whole_number())->capture_default_str();
  cmd.add_option("--seed", o->seed, "bootstrap seed")->transform(whole_number())->capture_default_str();
  return [o] {
    perturb::check_part(o->part, o->val_fraction);
    const auto spec = perturb::parse_split(o->split);
    const auto data = perturb::load_split(perturb::resolve_data_dir(o->data_dir), spec);
    const auto part = perturb::select_part(data, o->part, o->val_fraction, o->val_seed);
    SP_CHECK_INPUT(!part.rows.empty(), "--split ", o->split, " --part ", o->part, ": no rows to score");
    nlohmann::json out = {{"split", o->split}, {"part", o->part}, {"n", part.rows.size()},
                          {"inconsistent_rows", data.inconsistent}, {"dir_rows_ignored", data.dir_without_de},
                          {"baselines_fit", perturb::part_baseline_fit(part)}};
    perturb::MetricsOptions mo;
    mo.bootstrap = o->bootstrap;
    mo.seed = o->seed;
    for (const auto& name : perturb::baseline_names())
      out["baselines"][name] =
          perturb::compute_metrics(perturb::run_part_baseline(name, data, part, part.rows), mo);
    print_json(out);
    return 0;
  };
}

const CommandRegistrar reg("baselines", "Metrics of the majority, gene-majority and pair-transfer baselines", setup);

}  // namespace
}  // namespace synthpert::cli

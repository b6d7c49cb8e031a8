// `synthpert demo`: the main job (perturb/demo.h).
#include "apps/command.h"
#include "perturb/prompt.h"
#include "perturb/demo.h"

namespace synthpert::cli {
namespace {

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<perturb::DemoOptions>();
  // A plain flag, inverted at run time: CLI11's "!--no-calibrate" form prints
  // the bound default in --help ("--no-calibrate{false}").
  auto no_calibrate = std::make_shared<bool>(false);
  cmd.add_option("--perturbqa", o->data_dir, "PerturbQA CSV folder (else $PERTURBQA_DIR, ../shared/perturbqa)");
  cmd.add_option("--out", o->out_dir, "output folder")->capture_default_str();
  cmd.add_option("--split", o->split, "holdout:CELL | default | default:CELL[,CELL]")->capture_default_str();
  cmd.add_option("--prompt-template", o->prompt,
                 "auto (compact-all on holdout splits, compact-similar on default splits) | " +
                     perturb::prompt_template_choices())
      ->capture_default_str();
  cmd.add_option("--prompt-cell", o->prompt_cell,
                 "cell line word in prompts: auto (\"any\" for holdout splits, each row's own otherwise), own, or a word")
      ->capture_default_str();
  cmd.add_option("--train-fraction", o->train_fraction, "training rows used")->capture_default_str();
  cmd.add_option("--test-fraction", o->test_fraction, "held-out rows evaluated")->capture_default_str();
  cmd.add_option("--val-fraction", o->val_fraction, "training (cell line, pert) groups kept for calibration")
      ->capture_default_str();
  cmd.add_option("--blind-fraction", o->blind_fraction,
                 "training rows also trained on with names hidden; > 0 scores the mean of both views")
      ->capture_default_str();
  cmd.add_flag("--no-calibrate", *no_calibrate, "argmax decisions, no offsets fitted on validation rows");
  cmd.add_flag("--full", o->full, "every training and test row (sized for a GPU)");
  cmd.add_option("--device", o->device, "cpu | cuda")->capture_default_str();
  cmd.add_option("--hidden", o->hidden, "student hidden size")->capture_default_str();
  cmd.add_option("--layers", o->layers, "student decoder layers")->capture_default_str();
  cmd.add_option("--epochs", o->epochs, "passes over the training rows")->capture_default_str();
  cmd.add_option("--batch", o->batch, "examples per optimizer step")->capture_default_str();
  cmd.add_option("--lr", o->lr, "peak learning rate (cosine schedule)")->capture_default_str();
  cmd.add_option("--seed", o->seed, "seed of subsampling, init and data order")->transform(whole_number())->capture_default_str();
  cmd.add_option("--bootstrap", o->bootstrap, "bootstrap resamples for ci95")->transform(whole_number())->capture_default_str();
  return [o, no_calibrate] {
    o->calibrate = !*no_calibrate;
    print_json(perturb::run_demo(*o));
    return 0;
  };
}

const CommandRegistrar reg("demo",
                           "The main job: train a PerturbQA student from scratch, evaluate it on held-out rows "
                           "(a held-out cell line by default) beside the baselines",
                           setup);

}  // namespace
}  // namespace synthpert::cli

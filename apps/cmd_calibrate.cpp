// `synthpert calibrate`: decision offsets maximising macro-F1 on score-mode
// predictions of validation rows (`eval --part val`, perturb/calibration.h), for
// `eval --offsets`.
#include <filesystem>

#include "apps/command.h"
#include "common/error.h"
#include "common/fs.h"
#include "perturb/calibration.h"

namespace synthpert::cli {
namespace {

struct Opts {
  std::string predictions, out;
};

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  cmd.add_option("--predictions", o->predictions,
                 "predictions JSONL of eval --mode score --part val (validation rows, never the test rows)")
      ->required();
  cmd.add_option("--out", o->out, "offsets JSON to write (also printed)");
  return [o] {
    // The offsets replace whatever --out names: never the predictions read.
    std::error_code ec;
    SP_CHECK_INPUT(o->out.empty() || !std::filesystem::equivalent(o->out, o->predictions, ec), "--out ", o->out,
                   " is the predictions file being read; choose another file for the offsets");
    const auto record = std::filesystem::path(o->predictions).parent_path() / "eval_config.json";
    SP_CHECK_INPUT(o->out.empty() || !std::filesystem::equivalent(o->out, record, ec), "--out ", o->out,
                   " is the evaluation's record of its settings; choose another file for the offsets");
    const nlohmann::json source = perturb::calibration_source(o->predictions);
    std::vector<std::array<double, 3>> logp;
    std::vector<perturb::Label> labels;
    perturb::read_scored_predictions(o->predictions, logp, labels);
    const auto offsets = perturb::fit_macro_f1_offsets(logp, labels);
    nlohmann::json j = perturb::offsets_to_json(offsets);
    j["rows"] = logp.size();
    if (!source.is_null()) j["fit_on"] = source;
    j["macro_f1_before"] = perturb::macro_f1_with_offsets(logp, labels, {});
    j["macro_f1_after"] = perturb::macro_f1_with_offsets(logp, labels, offsets);
    if (!o->out.empty()) write_file_atomic(o->out, j.dump(2) + "\n");
    print_json(j);
    return 0;
  };
}

const CommandRegistrar reg("calibrate",
                           "Fit decision offsets for macro-F1 on score-mode predictions of validation rows", setup);

}  // namespace
}  // namespace synthpert::cli

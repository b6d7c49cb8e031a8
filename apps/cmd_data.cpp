// `synthpert data`: PerturbQA rows of a split as JSONL, each with its prompt
// messages (the input of `traces`, and of `train` for direct-answer students).
#include <fstream>

#include "apps/command.h"
#include "common/error.h"
#include "common/fs.h"
#include "perturb/data_jsonl.h"
#include "perturb/evidence.h"
#include "perturb/prompt.h"
#include "perturb/split.h"

namespace synthpert::cli {
namespace {

struct Opts {
  std::string data_dir, split, part = "train", out, prompt = "reasoning";
  double fraction = 1.0, val_fraction = 0.0;
  uint64_t seed = 0, val_seed = 0;
  bool with_answer = false;
};

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  cmd.add_option("--perturbqa", o->data_dir, "PerturbQA CSV folder (else $PERTURBQA_DIR, ../shared/perturbqa)");
  cmd.add_option("--split", o->split, "default | default:CELL[,CELL] | holdout:CELL")->required();
  add_split_part_options(cmd, o->part, o->val_fraction, o->val_seed);
  cmd.add_option("--fraction", o->fraction, "keep this fraction of the rows (seeded, per row)")->capture_default_str();
  cmd.add_option("--seed", o->seed, "subsampling seed")->transform(whole_number())->capture_default_str();
  cmd.add_option("--prompt-template", o->prompt, perturb::prompt_template_choices())->capture_default_str();
  cmd.add_flag("--with-answer", o->with_answer,
               "append the true answer as an assistant turn (direct-answer training data)");
  cmd.add_option("--out", o->out, "output JSONL")->required();
  return [o] {
    perturb::check_part(o->part, o->val_fraction);
    const auto spec = perturb::parse_split(o->split);
    const auto tmpl = perturb::PromptTemplate::load(o->prompt);
    const std::string dir = perturb::resolve_data_dir(o->data_dir);
    perturb::check_not_data_file(o->out, dir, "--out");
    auto data = perturb::load_split(dir, spec);
    const auto part = perturb::select_part(data, o->part, o->val_fraction, o->val_seed);
    SP_CHECK_INPUT(!part.rows.empty(), "--split ", o->split, " --part ", o->part, ": no rows");
    auto rows = perturb::subsample(part.rows, o->fraction, o->seed);
    SP_CHECK_INPUT(!rows.empty(), "--fraction ", o->fraction, " kept none of the ", part.rows.size(),
                   " rows; raise it or change --seed");
    if (tmpl.uses_evidence()) perturb::attach_split_evidence(data, rows);
    std::string text;
    for (const auto& r : rows) text += perturb::row_to_json(r, tmpl, o->with_answer).dump() + '\n';
    write_file_atomic(o->out, text);
    nlohmann::json counts = nlohmann::json::object();
    for (const auto& r : rows) counts[perturb::label_name(r.label)] = counts.value(perturb::label_name(r.label), 0) + 1;
    print_json({{"out", o->out}, {"rows", rows.size()}, {"classes", counts},
                {"inconsistent_rows", data.inconsistent}, {"dir_rows_ignored", data.dir_without_de}});
    return 0;
  };
}

const CommandRegistrar reg("data", "Write a PerturbQA split as JSONL rows with prompt messages", setup);

}  // namespace
}  // namespace synthpert::cli

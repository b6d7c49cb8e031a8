// The main job (`synthpert demo`, README's first command): a PerturbQA student
// trained from scratch and evaluated on a cell line it never saw, beside the baselines.
//
//   1. rows of holdout:rpe1: training rows from K562, HepG2, Jurkat; test rows from RPE1
//      (or of a default split: each cell line's own train/test columns); 5% of the
//      training (cell line, pert) groups are kept aside for validation, and the
//      training subsample is drawn from the other groups
//   2. a task tokenizer: spm_train (sentencepiece BPE) on the training prompts, with
//      every gene symbol of the training rows as one user-defined piece
//   3. a small Llama-architecture student, random init (engine/init_model)
//   4. full fine-tuning on direct answers (prompt template compact-all on a
//      holdout split: the row, the pair's outcomes in the other cell lines, the
//      gene's outcomes over every training line; compact-similar on a default
//      split adds the gene's outcomes under other perts of its own line and
//      under the perts of its line most like the row's; loss on the answer
//      tokens only) with the trainer, plus the
//      name-blind view of half the rows (perturb/prompt.h: blind_view)
//   5. decision offsets fitted for macro-F1 on the validation rows (perturb/calibration.h),
//      each scored as the mean of its two views' log-likelihoods
//   6. score-mode evaluation on the test rows (both views) with those offsets,
//      baselines on the same rows, the report (markdown + SVG) and the metrics
//      table on stderr
// Defaults fit a 2-core CPU in under 15 minutes by subsampling rows;
// `full` uses every training and test row.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace synthpert::perturb {

struct DemoOptions {
  std::string data_dir, out_dir = "demo-out";
  std::string split = "holdout:rpe1";  // holdout:CELL, default or default:CELL[,CELL]
  // compact-similar: the pair's outcomes in the other cell lines' training
  // rows, the gene's outcome shares in its own line (default splits only) and
  // over every training line (perturb/evidence.h), and the gene's outcomes
  // under the perts of its own line most like the row's (default splits only,
  // perturb/similar_perts.h); compact-all: the first three; compact-here: the
  // first two; compact-evidence: the first only; compact: none.
  // "auto": compact-all on holdout:CELL, where the own-line fields read "none"
  // on every row, compact-similar on default splits. Why not compact-similar
  // everywhere: on holdout:rpe1 its always-"none" field changed how a student
  // answers the rows whose gene no training line measured (an all-"none"
  // prompt that training rows almost never show): 90% of them went to "up"
  // and macro-F1 fell from 0.725 to 0.638 (docs/results.md).
  std::string prompt = "auto";
  double train_fraction = 0.3, test_fraction = 0.1;
  // How prompts name the cell line. "auto": for holdout:CELL every row says
  // "any" (the held-out line was never seen, so the student learns what holds
  // across lines instead of meeting an untrained token at test time); for
  // default splits each row's own line. "own" or another word: forced.
  std::string prompt_cell = "auto";
  double val_fraction = 0.05;   // of the training (cell line, pert) groups
  // Share of the training rows also trained on in their name-blind view
  // (perturb/prompt.h); above 0, validation and test rows are scored as the
  // mean of both views (EvalConfig::blind_view). 0: names only.
  double blind_fraction = 0.5;
  bool calibrate = true;        // fit decision offsets on the validation rows
  bool full = false;            // every row (a GPU-sized job)
  std::string device = "cpu";
  int64_t hidden = 128, layers = 2, heads = 4, kv_heads = 2;
  int64_t epochs = 2, batch = 256;
  double lr = 3e-3;
  uint64_t seed = 0;
  int bootstrap = 200;
};

// Runs every step, writing into out_dir: tokenizer/, model-init/, train/,
// calibration.json, eval/ (predictions, metrics, report). Returns a summary JSON.
nlohmann::json run_demo(const DemoOptions& opts);

}  // namespace synthpert::perturb

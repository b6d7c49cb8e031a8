#include "perturb/demo.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>

#include "common/error.h"
#include "common/fs.h"
#include "common/progress.h"
#include "engine/model.h"
#include "engine/init_model.h"
#include "perturb/eval.h"
#include "perturb/evidence.h"
#include "perturb/prompt_encoder.h"
#include "perturb/report.h"
#include "perturb/split.h"
#include "trainer/distributed.h"
#include "trainer/trainer.h"

namespace synthpert::perturb {

using nlohmann::json;

namespace {

void say(const std::string& msg) { std::fprintf(stderr, "demo: %s\n", msg.c_str()); }

// A path as one single-quoted shell word (an --out with spaces or quotes stays intact).
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Trains the task tokenizer with the spm_train program (Debian's sentencepiece
// package). The library is not linked in-process: its bundled protobuf clashes
// with libtorch's (see tokenizer/sp_shim.h).
void train_tokenizer(const std::vector<Row>& rows, const PromptTemplate& tmpl, const std::string& prompt_cell,
                     const std::string& dir) {
  make_dirs(dir);
  std::string corpus, symbols;
  std::set<std::string> names = {"k562", "rpe1", "hepg2", "jurkat", kBlindName};
  if (!prompt_cell.empty()) names.insert(prompt_cell);
  for (const auto& r : rows) {
    const std::string& cell = prompt_cell.empty() ? r.cell_type : prompt_cell;
    corpus += tmpl.render_user(cell, r.pert, r.gene, r.context) + tmpl.render_answer(r.label) + "\n";
    names.insert(r.pert);
    names.insert(r.gene);
    // Bucket words of the profiles ("de3", "gup1") as whole pieces too.
    for (const std::string* words :
         {&r.context.pert_effect, &r.context.gene_profile, &r.context.gene_here, &r.context.gene_all,
          &r.context.gene_similar})
      for (size_t pos = 0; pos < words->size();) {
        size_t end = words->find(' ', pos);
        if (end == std::string::npos) end = words->size();
        names.insert(words->substr(pos, end - pos));
        pos = end + 1;
      }
  }
  for (const auto& n : names) symbols += n + "\n";
  const std::string corpus_path = path_join(dir, "corpus.txt"), symbols_path = path_join(dir, "symbols.txt");
  write_file_atomic(corpus_path, corpus);
  write_file_atomic(symbols_path, symbols);
  // Room for every symbol plus the pieces of the prompt's fixed words.
  const size_t vocab = names.size() + 256;
  const std::string cmd =
      str_cat("spm_train --input=", shell_quote(corpus_path), " --model_prefix=", shell_quote(path_join(dir, "tokenizer")),
              " --vocab_size=", vocab, " --model_type=bpe --hard_vocab_limit=false",
              " --user_defined_symbols_file=", shell_quote(symbols_path), " --minloglevel=2 --num_threads=2 > ",
              shell_quote(path_join(dir, "spm_train.log")), " 2>&1");
  SP_CHECK_INPUT(std::system(cmd.c_str()) == 0, "spm_train failed (is Debian's sentencepiece package installed? "
                 "scripts/install-deps.sh installs it); log: ", path_join(dir, "spm_train.log"));
  std::filesystem::remove(corpus_path);
}

trainer::SftExample make_example(const Row& row, const PromptEncoder& enc, std::string origin) {
  const auto prompt = enc.prompt_ids(row);
  const auto answer = enc.answer_ids(row, prompt)[label_index(row.label)];
  trainer::SftExample e;
  e.ids = prompt;
  e.ids.insert(e.ids.end(), answer.begin(), answer.end());
  e.loss_mask.assign(prompt.size(), 0);
  e.loss_mask.resize(e.ids.size(), 1);
  e.origin = std::move(origin);
  return e;
}

// Every row as written, then the name-blind view of a seeded `blind_fraction`
// of them (the trainer shuffles, so the two kinds mix in every batch).
std::vector<trainer::SftExample> make_examples(const std::vector<Row>& rows, const PromptEncoder& enc,
                                               double blind_fraction, uint64_t seed) {
  std::vector<trainer::SftExample> out;
  out.reserve(rows.size());
  auto where = [&](size_t i) {
    return str_cat("row ", i + 1, " (", rows[i].cell_type, " ", rows[i].pert, " ", rows[i].gene, ")");
  };
  for (size_t i = 0; i < rows.size(); ++i) out.push_back(make_example(rows[i], enc, where(i)));
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 17);
  std::bernoulli_distribution pick(blind_fraction);
  for (size_t i = 0; i < rows.size(); ++i)
    if (pick(rng)) out.push_back(make_example(blind_view(rows[i]), enc, where(i) + ", name-blind"));
  return out;
}

// Scores the validation rows with the trained student and fits the decision
// offsets that maximise their macro-F1; writes out_dir/calibration.json.
ClassOffsets calibrate(const std::string& model_dir, const PromptTemplate& tmpl, const std::string& prompt_cell,
                       const std::vector<Row>& val, const DemoOptions& o) {
  engine::LoadOptions lo;
  lo.device = engine::parse_device(o.device);
  const auto model = engine::Transformer::load(model_dir, lo);
  PromptEncoder enc(model_dir, tmpl, ChatMode::kOff);
  enc.set_prompt_cell(prompt_cell);
  std::vector<std::array<double, 3>> logp;
  std::vector<Label> labels;
  ProgressBar bar("calibrate", static_cast<int64_t>(val.size()), "rows");
  const bool blind = o.blind_fraction > 0;
  engine::PrefixStore prefixes;
  for (size_t b = 0; b < val.size(); b += 512) {
    const size_t e = std::min(val.size(), b + 512);
    for (const auto& lp : score_views(model, enc, val, b, e, blind, -1, &prefixes).combined) logp.push_back(lp);
    bar.advance(static_cast<int64_t>(e - b));
  }
  for (const auto& r : val) labels.push_back(r.label);
  const ClassOffsets offsets = fit_macro_f1_offsets(logp, labels);
  json record = offsets_to_json(offsets);
  record["validation_rows"] = val.size();
  record["macro_f1_before"] = macro_f1_with_offsets(logp, labels, ClassOffsets{});
  record["macro_f1_after"] = macro_f1_with_offsets(logp, labels, offsets);
  write_file_atomic(path_join(o.out_dir, "calibration.json"), record.dump(2) + "\n");
  say(str_cat("5/6 calibration: offsets up ", offsets.add[0], ", down ", offsets.add[1], "; validation macro-F1 ",
              record["macro_f1_before"].get<double>(), " -> ", record["macro_f1_after"].get<double>()));
  return offsets;
}

// Refused before the data is read and a tokenizer trained, which take a
// while, rather than at the step that first uses the value.
void check_demo_options(const DemoOptions& o) {
  // Comparisons with NaN are false, so these bounds refuse it too.
  SP_CHECK_INPUT(o.train_fraction > 0 && o.train_fraction <= 1, "--train-fraction must be in (0, 1], got ",
                 o.train_fraction);
  SP_CHECK_INPUT(o.test_fraction > 0 && o.test_fraction <= 1, "--test-fraction must be in (0, 1], got ",
                 o.test_fraction);
  check_part("train", o.val_fraction);  // the demo trains on the training part less its validation groups
  SP_CHECK_INPUT(o.blind_fraction >= 0 && o.blind_fraction <= 1, "--blind-fraction must be in [0, 1], got ",
                 o.blind_fraction);
  SP_CHECK_INPUT(o.hidden > 0 && o.hidden % (2 * o.heads) == 0, "--hidden must be a positive multiple of ",
                 2 * o.heads, " (", o.heads, " heads, an even head size for RoPE), got ", o.hidden);
  SP_CHECK_INPUT(o.layers > 0, "--layers must be positive, got ", o.layers);
  SP_CHECK_INPUT(o.epochs > 0, "--epochs must be positive, got ", o.epochs);
  SP_CHECK_INPUT(o.batch > 0, "--batch must be positive, got ", o.batch);
  SP_CHECK_INPUT(std::isfinite(o.lr) && o.lr > 0, "--lr must be a positive number, got ", o.lr);
  engine::parse_device(o.device);
}

}  // namespace

json run_demo(const DemoOptions& o) {
  check_demo_options(o);
  const double train_fraction = o.full ? 1.0 : o.train_fraction, test_fraction = o.full ? 1.0 : o.test_fraction;
  const std::string data_dir = resolve_data_dir(o.data_dir);
  const SplitSpec spec = parse_split(o.split);
  const SplitData data = load_split(data_dir, spec);
  const std::string prompt_cell = o.prompt_cell == "auto" ? (spec.holdout ? "any" : "")
                                  : o.prompt_cell == "own" ? "" : o.prompt_cell;
  // Validation groups are drawn from every training row, and the training
  // subsample from the rest: scoring is cheap next to training, and macro-F1
  // over a few hundred DE rows is too noisy to fit offsets that transfer.
  std::vector<Row> pool, val_rows;
  split_validation(data.train, o.calibrate ? o.val_fraction : 0.0, o.seed, pool, val_rows);
  std::vector<Row> train_rows = subsample(pool, train_fraction, o.seed);
  pool.clear();
  const std::string prompt_name =
      o.prompt != "auto" ? o.prompt : spec.holdout ? "compact-all" : "compact-similar";
  const PromptTemplate tmpl = PromptTemplate::load(prompt_name);
  // Evidence comes from every training row, whatever fraction is trained on.
  if (tmpl.uses_evidence()) {
    attach_split_evidence(data, train_rows);
    attach_split_evidence(data, val_rows);
  }
  say(str_cat("1/6 data: ", o.split, ", ", train_rows.size(), " training rows (", train_fraction * 100, "% of ",
              data.train.size() - val_rows.size(), ") and ", val_rows.size(), " validation rows"));

  const std::string model_dir = path_join(o.out_dir, "model-init");
  make_dirs(o.out_dir);
  train_tokenizer(train_rows, tmpl, prompt_cell, path_join(o.out_dir, "tokenizer"));
  make_dirs(model_dir);
  std::filesystem::copy_file(path_join(o.out_dir, "tokenizer/tokenizer.model"), path_join(model_dir, "tokenizer.model"),
                             std::filesystem::copy_options::overwrite_existing);
  PromptEncoder enc(model_dir, tmpl, ChatMode::kOff);
  enc.set_prompt_cell(prompt_cell);
  say(str_cat("2/6 tokenizer: sentencepiece BPE, ", enc.tokenizer().vocab_size(), " pieces"));

  engine::ModelConfig cfg = engine::preset_config(engine::Arch::kLlama, "tiny");
  cfg.vocab_size = enc.tokenizer().vocab_size();
  cfg.hidden_size = o.hidden;
  cfg.num_hidden_layers = o.layers;
  cfg.num_attention_heads = o.heads;
  cfg.num_key_value_heads = o.kv_heads;
  cfg.head_dim = o.hidden / o.heads;
  cfg.intermediate_size = o.hidden * 8 / 3;
  cfg.max_position_embeddings = 64;
  cfg.tie_word_embeddings = false;
  if (auto bos = enc.tokenizer().bos_id()) cfg.bos_token_id = *bos;
  cfg.eos_token_ids = enc.tokenizer().eos_ids();
  engine::InitOptions io;
  io.seed = o.seed;
  const int64_t params = engine::init_model(cfg, model_dir, io);
  say(str_cat("3/6 student: llama, hidden ", o.hidden, ", ", o.layers, " layers, ", params, " parameters"));

  auto examples = make_examples(train_rows, enc, o.blind_fraction, o.seed);
  auto all = trainer::finalize_examples(std::move(examples), cfg.max_position_embeddings, cfg.vocab_size,
                                        trainer::Overlong::kError);
  trainer::SftDataset train;
  train.examples = std::move(all.examples);
  trainer::TrainOptions t;
  t.model_dir = model_dir;
  t.out_dir = path_join(o.out_dir, "train");
  t.full = true;
  t.lr = o.lr;
  t.schedule = trainer::Schedule::kCosine;
  t.warmup_ratio = 0.03;
  t.adamw.weight_decay = 0.01;
  t.batch = o.batch;
  t.epochs = o.epochs;
  t.max_seq_len = cfg.max_position_embeddings;
  t.seed = o.seed;
  t.device = o.device;
  std::filesystem::remove_all(t.out_dir);  // a demo run starts over
  auto comm = trainer::Communicator::create(trainer::DistEnv{}, engine::parse_device(o.device),
                                            std::chrono::seconds(60));
  say(str_cat("4/6 training: ", train.examples.size(), " examples (", train.examples.size() - train_rows.size(),
              " name-blind) x ", o.epochs, " epochs, batch ", o.batch));
  // The trained model folder gets the student's tokenizer with it (the
  // trainer copies a full model's companion files).
  const auto result = trainer::run_training(t, train, {}, *comm);
  std::filesystem::remove(path_join(o.out_dir, "calibration.json"));
  ClassOffsets offsets;
  if (!val_rows.empty()) offsets = calibrate(result.output_dir, tmpl, prompt_cell, val_rows, o);

  EvalConfig ec;
  ec.model_dir = result.output_dir;
  ec.data_dir = data_dir;
  ec.split = o.split;
  ec.mode = "score";
  ec.prompt = prompt_name;
  ec.chat = ChatMode::kOff;
  ec.prompt_cell = prompt_cell;
  ec.fraction = test_fraction;
  ec.seed = o.seed;
  ec.batch = 512;
  ec.device = o.device;
  ec.bootstrap = o.bootstrap;
  ec.overwrite = true;
  ec.offsets = offsets;
  ec.blind_view = o.blind_fraction > 0;
  say(str_cat("6/6 evaluation: ", spec.holdout ? "held-out " + spec.held_out : o.split + " test", " rows (",
              test_fraction * 100, "%), score mode"));
  const json metrics = run_eval(ec, path_join(o.out_dir, "eval"));

  ReportInput table;
  table.model_name = "student";
  table.model = metrics["model"];
  for (auto& [name, m] : metrics["baselines"].items()) table.baselines[name] = m;
  std::fprintf(stderr, "\n%s\nreport: %s\n", metrics_table(table).c_str(),
               path_join(o.out_dir, "eval/report.md").c_str());
  json summary = {{"out", o.out_dir}, {"prompt_template", prompt_name}, {"train_rows", train_rows.size()},
                  {"validation_rows", val_rows.size()},
                  {"test_rows", metrics["rows"]}, {"offsets", offsets_to_json(offsets)["offsets"]},
                  {"parameters", params}, {"steps", result.total_steps},
                  {"final_loss", result.steps.empty() ? json(nullptr) : json(result.steps.back().loss)},
                  {"student", {{"accuracy", metrics["model"]["accuracy"]}, {"macro_f1", metrics["model"]["macro_f1"]},
                               {"auroc", metrics["model"]["auroc"]}}}};
  for (auto& [name, m] : metrics["baselines"].items())
    summary["baselines"][name] = {{"accuracy", m["accuracy"]}, {"macro_f1", m["macro_f1"]}, {"auroc", m["auroc"]}};
  return summary;
}

}  // namespace synthpert::perturb

// `synthpert eval` and `demo` end to end on tiny models: score-mode
// probabilities against the python reference forward, resume after an
// interruption, refusal of a mismatched configuration, generate mode, and the
// demo pipeline on a few rows.
// The engine headers (libtorch's, which define their own CHECK) come before
// catch.hpp so that Catch's CHECK is the one in force.
#include "engine/init_model.h"
#include "engine/peft_adapter.h"
#include "engine/tensor_io.h"
#include "tests/engine/engine_test_util.h"

#include <catch2/catch.hpp>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "common/fs.h"
#include "perturb/answer_parser.h"
#include "perturb/baselines.h"
#include "perturb/eval.h"
#include "perturb/split.h"
#include "tests/perturb/mock_chat_server.h"

using namespace synthpert;
using namespace synthpert::perturb;
using nlohmann::json;

namespace {

// `synthpert demo ARGS` run in `dir` with the test data.
test::CommandResult run_demo(const std::string& dir, const std::string& args) {
  return test::run_command("cd " + dir + " && PERTURBQA_DIR=" + test::perturbqa_dir() + " " + test::synthpert_bin() +
                           " demo " + args);
}

std::vector<json> read_jsonl(const std::string& path) {
  std::vector<json> out;
  std::istringstream in(test::read_text(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

// A tiny random Llama with a sentencepiece tokenizer trained on compact prompts
// of a few training rows (spm_train, as the demo does).
std::string make_model(const std::string& dir) {
  const auto rows = subsample(load_split(test::perturbqa_dir(), parse_split("holdout:rpe1")).train, 0.01, 3);
  const auto tmpl = PromptTemplate::load("compact");
  std::ofstream corpus(dir + "/corpus.txt");
  for (const auto& r : rows) corpus << tmpl.render_user(r.cell_type, r.pert, r.gene) << tmpl.render_answer(r.label) << "\n";
  corpus.close();
  const auto r = test::run_command("spm_train --input=" + dir + "/corpus.txt --model_prefix=" + dir +
                                   "/tok --vocab_size=300 --model_type=bpe --minloglevel=2 --hard_vocab_limit=false");
  REQUIRE(r.exit_code == 0);
  const std::string model = dir + "/model";
  auto cfg = engine::preset_config(engine::Arch::kLlama, "tiny");
  std::filesystem::create_directories(model);
  std::filesystem::copy_file(dir + "/tok.model", model + "/tokenizer.model");
  const auto tok = tokenizer::Tokenizer::load(model);
  cfg.vocab_size = tok->vocab_size();
  engine::InitOptions io;
  io.seed = 11;
  io.jitter = true;
  engine::init_model(cfg, model, io);
  return model;
}

// LoRA matrices drawn at random (seeded) on every module `spec` targets.
void attach_random_lora(engine::Transformer& model, const engine::LoraSpec& spec, uint64_t seed) {
  torch::manual_seed(seed);
  for (auto& [name, lin] : model.named_linears()) {
    bool targeted = false;
    for (const auto& t : spec.target_modules) targeted = targeted || name.find(t) != std::string::npos;
    if (!targeted) continue;
    auto w = std::make_shared<engine::LoraWeights>();
    w->A = torch::randn({spec.r, lin->in_features()}) * 0.3;
    w->B = torch::randn({lin->out_features(), spec.r}) * 0.3;
    w->scale = spec.scale();
    lin->lora = w;
  }
}

EvalConfig small_eval(const std::string& model) {
  EvalConfig c;
  c.model_dir = model;
  c.data_dir = test::perturbqa_dir();
  c.split = "holdout:rpe1";
  c.prompt = "compact";
  c.fraction = 0.0003;  // ~56 rows
  c.seed = 5;
  c.batch = 7;          // odd, so the last batch is partial
  c.bootstrap = 0;
  c.progress = false;
  return c;
}

double log_softmax_at(const std::vector<float>& logits, int64_t V, int64_t pos, int64_t token) {
  double m = -1e300, z = 0;
  for (int64_t v = 0; v < V; ++v) m = std::max(m, static_cast<double>(logits[pos * V + v]));
  for (int64_t v = 0; v < V; ++v) z += std::exp(logits[pos * V + v] - m);
  return logits[pos * V + token] - m - std::log(z);
}

}  // namespace

TEST_CASE("score mode: answer log-likelihoods equal the python reference forward", "[eval]") {
  test::TempDir tmp("eval-score");
  const std::string model = make_model(tmp.path);
  const auto cfg = small_eval(model);
  const json result = run_eval(cfg, tmp.path + "/out");
  const auto lines = read_jsonl(tmp.path + "/out/predictions.jsonl");
  REQUIRE(lines.size() == result["rows"].get<size_t>());
  REQUIRE(lines.size() > 20);

  const PromptEncoder enc(model, PromptTemplate::load("compact"), ChatMode::kOff);
  const int64_t V = enc.tokenizer().vocab_size();
  for (size_t i : {size_t(0), size_t(8), lines.size() - 1}) {
    const auto& l = lines[i];
    const Row row{l["cell_type"], l["pert"], l["gene"], Label::kNde, true, {}};
    const auto prompt = enc.prompt_ids(row);
    const auto answers = enc.answer_ids(row, prompt);
    for (int k = 0; k < 3; ++k) {
      std::vector<int64_t> ids = prompt;
      ids.insert(ids.end(), answers[k].begin(), answers[k].end());
      const auto logits = test::reference_logits(model, ids);
      double expect = 0;
      for (size_t j = 0; j < answers[k].size(); ++j)
        expect += log_softmax_at(logits, V, static_cast<int64_t>(prompt.size() + j) - 1, answers[k][j]);
      INFO("row " << i << " answer " << k);
      CHECK(l["logprobs"][k].get<double>() == Approx(expect).margin(1e-4));
    }
    double total = 0;
    for (const auto& [name, p] : l["probs"].items()) total += p.get<double>();
    CHECK(total == Approx(1.0).epsilon(1e-9));
  }
  // metrics.json holds the model and every baseline on the same rows.
  const json m = json::parse(test::read_text(tmp.path + "/out/metrics.json"));
  CHECK(m["model"]["n"] == lines.size());
  for (const char* b : {"majority", "gene_majority", "pair_transfer"}) CHECK(m["baselines"][b]["n"] == lines.size());
  CHECK(std::filesystem::exists(tmp.path + "/out/report.md"));
  CHECK(std::filesystem::exists(tmp.path + "/out/confusion.svg"));
}

TEST_CASE("score mode through a chat template scores the reply as the template writes it", "[eval]") {
  test::TempDir tmp("eval-chat-answers");
  const std::string model = make_model(tmp.path);
  // A template that trims each message, as Llama 3's does: compact's answer
  // " {label}" is written, and trained on, without its leading space.
  const std::string chat = tmp.path + "/trim.jinja";
  std::ofstream(chat) << "{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}<|end|>{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}";
  const PromptEncoder enc(model, PromptTemplate::load("compact"), ChatMode::kAuto, chat);
  const Row row{"rpe1", "AAMP", "DEK", Label::kNde, true, {}};
  const std::string prompt_text = enc.prompt_text(row);
  CHECK(prompt_text == "<|user|>rpe1 AAMP DEK -><|end|><|assistant|>");
  const auto prompt = enc.prompt_ids(row);
  const auto answers = enc.answer_ids(row, prompt);
  for (Label l : kAllLabels) {
    INFO(label_name(l));
    // Written by hand: the trimmed reply, then the turn's end.
    const auto full = enc.tokenizer().encode(prompt_text + label_name(l) + "<|end|>", false);
    REQUIRE(std::equal(prompt.begin(), prompt.end(), full.begin()));
    const std::vector<int64_t> expected(full.begin() + static_cast<std::ptrdiff_t>(prompt.size()), full.end());
    CHECK(answers[label_index(l)] == expected);
    // Not the raw [answer] text after the prompt: " not" is another token.
    const auto raw = enc.tokenizer().encode(prompt_text + " " + label_name(l), false);
    REQUIRE(raw.size() > prompt.size());
    CHECK(raw[prompt.size()] != expected.front());
  }
  // A template whose assistant turn does not continue its generation prompt
  // has no trained form of the reply: the [answer] text follows as it is.
  std::ofstream(chat) << "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
                         "{% if add_generation_prompt %}<|model|>{% endif %}";
  const PromptEncoder other(model, PromptTemplate::load("compact"), ChatMode::kAuto, chat);
  const auto other_prompt = other.prompt_ids(row);
  const auto as_is = other.answer_ids(row, other_prompt);
  for (Label l : kAllLabels) {
    const auto full = other.tokenizer().encode(other.prompt_text(row) + " " + label_name(l), false);
    CHECK(as_is[label_index(l)] ==
          std::vector<int64_t>(full.begin() + static_cast<std::ptrdiff_t>(other_prompt.size()), full.end()));
  }
}

TEST_CASE("blind view: the mean of the named and name-blind prompts' log-likelihoods", "[eval]") {
  const Row named{"rpe1", "AAMP", "DEK", Label::kUp, true, RowContext{"up", "", "", "", "ade3", ""}};
  const Row blind = blind_view(named);
  CHECK(blind.pert == "?");
  CHECK(blind.gene == "?");
  CHECK(blind.context.evidence == "up");
  CHECK(blind.context.gene_all == "ade3");
  CHECK(blind.label == Label::kUp);

  test::TempDir tmp("eval-blind");
  const std::string model = make_model(tmp.path);
  auto cfg = small_eval(model);
  cfg.blind_view = true;
  const json result = run_eval(cfg, tmp.path + "/out");
  CHECK(result["config"]["blind_view"] == true);
  const auto lines = read_jsonl(tmp.path + "/out/predictions.jsonl");
  REQUIRE(lines.size() > 20);
  const PromptEncoder enc(model, PromptTemplate::load("compact"), ChatMode::kOff);
  const int64_t V = enc.tokenizer().vocab_size();
  // Each view's log-likelihoods from the python reference forward.
  auto reference = [&](const Row& row) {
    const auto prompt = enc.prompt_ids(row);
    const auto answers = enc.answer_ids(row, prompt);
    std::array<double, 3> lp{};
    for (int k = 0; k < 3; ++k) {
      std::vector<int64_t> ids = prompt;
      ids.insert(ids.end(), answers[k].begin(), answers[k].end());
      const auto logits = test::reference_logits(model, ids);
      for (size_t j = 0; j < answers[k].size(); ++j)
        lp[k] += log_softmax_at(logits, V, static_cast<int64_t>(prompt.size() + j) - 1, answers[k][j]);
    }
    return lp;
  };
  for (size_t i : {size_t(3), lines.size() - 1}) {
    const auto& l = lines[i];
    const Row row{l["cell_type"], l["pert"], l["gene"], Label::kNde, true, {}};
    const auto with_names = reference(row), without = reference(blind_view(row));
    CHECK(enc.prompt_text(blind_view(row)) == "rpe1 ? ? ->");
    double differ = 0;
    for (int k = 0; k < 3; ++k) {
      INFO("row " << i << " answer " << k);
      CHECK(l["logprobs_views"][0][k].get<double>() == Approx(with_names[k]).margin(1e-4));
      CHECK(l["logprobs_views"][1][k].get<double>() == Approx(without[k]).margin(1e-4));
      CHECK(l["logprobs"][k].get<double>() == Approx(0.5 * (with_names[k] + without[k])).margin(1e-4));
      differ = std::max(differ, std::abs(with_names[k] - without[k]));
    }
    CHECK(differ > 1e-3);  // the names change what the model says
  }
  // The same folder without the blind view is refused, naming the setting.
  cfg.blind_view = false;
  CHECK_THROWS_WITH(run_eval(cfg, tmp.path + "/out"), Catch::Contains("blind_view:"));
  cfg.blind_view = true;
  cfg.mode = "generate";
  CHECK_THROWS_WITH(run_eval(cfg, tmp.path + "/gen"), Catch::Contains("--blind-view applies to --mode score only"));
}

TEST_CASE("a model whose scores are not finite stops the evaluation instead of writing null probabilities",
          "[eval]") {
  test::TempDir tmp("eval-nan");
  const std::string model = make_model(tmp.path);
  auto weights = engine::load_tensors(model + "/model.safetensors");
  weights.at("model.norm.weight")[3].fill_(std::nan(""));
  engine::save_tensors(model + "/model.safetensors", engine::NamedTensors(weights.begin(), weights.end()));
  CHECK_THROWS_WITH(run_eval(small_eval(model), tmp.path + "/out"), Catch::Contains("not finite"));
  // Nothing was written that a later metrics run could count.
  const std::string preds = tmp.path + "/out/predictions.jsonl";
  CHECK((!std::filesystem::exists(preds) || test::read_text(preds).empty()));
}

TEST_CASE("an interrupted evaluation resumes to the same predictions", "[eval]") {
  test::TempDir tmp("eval-resume");
  const std::string model = make_model(tmp.path);
  auto cfg = small_eval(model);
  run_eval(cfg, tmp.path + "/full");
  const auto full = read_jsonl(tmp.path + "/full/predictions.jsonl");

  // An interrupted run: the first 10 complete lines and half of the 11th.
  std::filesystem::create_directories(tmp.path + "/cut");
  std::filesystem::copy_file(tmp.path + "/full/eval_config.json", tmp.path + "/cut/eval_config.json");
  {
    std::ofstream f(tmp.path + "/cut/predictions.jsonl");
    for (int i = 0; i < 10; ++i) f << full[i].dump() << "\n";
    f << full[10].dump().substr(0, 40);
  }
  run_eval(cfg, tmp.path + "/cut");
  const auto resumed = read_jsonl(tmp.path + "/cut/predictions.jsonl");
  REQUIRE(resumed.size() == full.size());
  for (size_t i = 0; i < full.size(); ++i) {
    INFO("line " << i + 1);
    CHECK(resumed[i]["gene"] == full[i]["gene"]);
    CHECK(resumed[i]["prediction"] == full[i]["prediction"]);
    for (int k = 0; k < 3; ++k)  // batches are cut differently: padding changes the float sums slightly
      CHECK(resumed[i]["logprobs"][k].get<double>() == Approx(full[i]["logprobs"][k].get<double>()).margin(1e-4));
  }

  // Another configuration in the same folder is refused, naming the setting.
  cfg.mode = "generate";
  CHECK_THROWS_WITH(run_eval(cfg, tmp.path + "/cut"), Catch::Contains("mode: saved \"score\", now \"generate\""));
}

TEST_CASE("--overwrite removes the old run's results; a resumed line without its fields is refused", "[eval]") {
  test::TempDir tmp("eval-overwrite");
  const std::string model = make_model(tmp.path);
  auto cfg = small_eval(model);
  run_eval(cfg, tmp.path + "/out");
  REQUIRE(std::filesystem::exists(tmp.path + "/out/metrics.json"));
  // A new run over it, interrupted before its first row.
  std::atomic<bool> cancel{true};
  cfg.overwrite = true;
  cfg.cancel = &cancel;
  CHECK(run_eval(cfg, tmp.path + "/out")["interrupted"] == true);
  for (const char* name : {"metrics.json", "report.md", "confusion.svg", "scores.svg"}) {
    INFO(name);
    CHECK_FALSE(std::filesystem::exists(tmp.path + "/out/" + name));
  }
  // A line of the right row whose fields were lost is refused, not read.
  cancel = false;
  cfg.overwrite = false;
  cfg.cancel = nullptr;
  const auto rows = subsample(load_split(cfg.data_dir, parse_split(cfg.split)).test, cfg.fraction, cfg.seed);
  {
    std::ofstream f(tmp.path + "/out/predictions.jsonl");
    f << json{{"cell_type", rows[0].cell_type}, {"pert", rows[0].pert}, {"gene", rows[0].gene}}.dump() << "\n";
  }
  CHECK_THROWS_WITH(run_eval(cfg, tmp.path + "/out"), Catch::Contains("predictions.jsonl:1: has no \"label\""));
}

TEST_CASE("generate mode parses written answers and counts the unparsed", "[eval]") {
  test::TempDir tmp("eval-generate");
  const std::string model = make_model(tmp.path);
  auto cfg = small_eval(model);
  cfg.mode = "generate";
  cfg.max_new_tokens = 4;
  cfg.fraction = 0.0001;
  const json result = run_eval(cfg, tmp.path + "/out");
  const auto lines = read_jsonl(tmp.path + "/out/predictions.jsonl");
  REQUIRE(!lines.empty());
  int64_t unparsed = 0;
  for (const auto& l : lines) {
    REQUIRE(l.contains("response"));
    CHECK_FALSE(l.contains("probs"));
    const auto parsed = parse_answer(l["response"].get<std::string>());
    CHECK(l["prediction"] == (parsed ? json(label_name(*parsed)) : json(nullptr)));
    unparsed += l["prediction"].is_null();
  }
  CHECK(result["model"]["unparsed"] == unparsed);
}

// The mock endpoint's reply to row i (its seed, with --seed 0): an answer that
// cycles through the three labels, so predictions are checkable per row.
// Generate mode through a mock endpoint on the holdout:rpe1 test rows, no
// retries, so a failure shows at once.
EvalConfig endpoint_eval(const std::string& url, double fraction, int64_t batch) {
  EvalConfig c;
  c.endpoint = {url, "teacher", "", 30};
  c.endpoint_retry = {0, 0.001, 0.01};
  c.data_dir = test::perturbqa_dir();
  c.split = "holdout:rpe1";
  c.prompt = "compact";
  c.mode = "generate";
  c.fraction = fraction;
  c.seed = 0;
  c.batch = batch;
  c.bootstrap = 0;
  c.progress = false;
  return c;
}

std::string endpoint_reply(int64_t i) {
  return "<think>row " + std::to_string(i) + "</think><answer>" + label_name(static_cast<Label>(i % 3)) + "</answer>";
}

TEST_CASE("eval --endpoint with a score-only setting names the endpoint, whichever mode is asked", "[eval][endpoint]") {
  test::TempDir tmp("eval-endpoint-settings");
  for (const char* mode : {"generate", "score"}) {
    INFO(mode);
    EvalConfig c = endpoint_eval("http://127.0.0.1:9/v1", 0.0001, 1);
    c.mode = mode;
    c.offsets.add = {1, 0, 0};
    // Not "--offsets applies to --mode score only", which --endpoint refuses.
    CHECK_THROWS_WITH(run_eval(c, tmp.path + "/out"), Catch::Contains("--endpoint: --offsets and --blind-view"));
    c.offsets = ClassOffsets{};
    c.blind_view = true;
    CHECK_THROWS_WITH(run_eval(c, tmp.path + "/out"), Catch::Contains("--endpoint: --offsets and --blind-view"));
  }
  CHECK_FALSE(std::filesystem::exists(tmp.path + "/out"));
}

TEST_CASE("eval --endpoint keeps --batch requests in flight and writes rows in order", "[eval][endpoint]") {
  test::TempDir tmp("eval-endpoint");
  std::atomic<int> arrived{0}, arrived_before_row0_replied{-1}, fail_row{5}, cancel_at{-1};
  std::atomic<bool> cancel{false};
  MockChatServer server([&](const json& body, const httplib::Request&) -> std::pair<int, json> {
    ++arrived;
    const int64_t i = body.at("seed").get<int64_t>();
    if (i == cancel_at) cancel = true;  // as if Ctrl-C came while this row was out
    if (i == fail_row) return {503, api_error("upstream overloaded")};
    if (i == 0) {  // one slow reply: the others must not wait for it
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
      arrived_before_row0_replied = arrived.load();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds((i * 7) % 11));  // replies return out of order
    }
    json reply = completion(endpoint_reply(i));
    if (i % 2) reply["choices"][0]["message"]["reasoning_content"] = "thought " + std::to_string(i);
    return {200, reply};
  });
  EvalConfig c = endpoint_eval(server.url(), 0.0001, 4);
  const auto rows = subsample(load_split(c.data_dir, parse_split(c.split)).test, c.fraction, c.seed);
  REQUIRE(rows.size() >= 12);
  const std::string pred = tmp.path + "/out/predictions.jsonl";

  // Row 6 fails (its retries spent): the rows before it are written, none after.
  CHECK_THROWS_WITH(run_eval(c, tmp.path + "/out"),
                    Catch::Contains("row 6 (" + rows[5].pert + ", " + rows[5].gene + ")") &&
                        Catch::Contains("upstream overloaded") && Catch::Contains("the 5 rows before it are saved"));
  CHECK(read_jsonl(pred).size() == 5);
  // Rows are sent in order and none is started once the failure is known:
  // past row 6, only the 3 that may have been in flight beside it.
  CHECK(arrived <= 6 + c.batch - 1);

  // The rerun sends only the rest; row 0 is not asked again.
  fail_row = -1;
  arrived = 0;
  const std::vector<json> first_part = read_jsonl(pred);
  run_eval(c, tmp.path + "/out");
  CHECK(arrived == static_cast<int>(rows.size()) - 5);

  // Once more from scratch: while row 0's reply is out, every other row is asked.
  arrived = 0;
  run_eval(c, tmp.path + "/fresh");
  CHECK(arrived_before_row0_replied == static_cast<int>(rows.size()));

  // Cancelled while row 10 is out: what is in flight is written, nothing new
  // starts, no metrics; the rerun finishes.
  cancel_at = 9;
  c.cancel = &cancel;
  const json cut = run_eval(c, tmp.path + "/cut");
  CHECK(cut["interrupted"] == true);
  const auto written = cut["rows_done"].get<size_t>();
  CHECK(written >= 10);  // rows 1-10 were sent before the flag was up
  CHECK(written < rows.size());
  CHECK(read_jsonl(tmp.path + "/cut/predictions.jsonl").size() == written);
  CHECK_FALSE(std::filesystem::exists(tmp.path + "/cut/metrics.json"));
  cancel = false;
  cancel_at = -1;
  CHECK(run_eval(c, tmp.path + "/cut")["rows"] == rows.size());

  for (const auto& dir : {"/out", "/fresh", "/cut"}) {
    const auto lines = read_jsonl(tmp.path + dir + "/predictions.jsonl");
    REQUIRE(lines.size() == rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      INFO(dir << " line " << i + 1);
      CHECK(lines[i]["pert"] == rows[i].pert);
      CHECK(lines[i]["gene"] == rows[i].gene);
      CHECK(lines[i]["response"] == endpoint_reply(static_cast<int64_t>(i)));
      CHECK(lines[i]["prediction"] == label_name(static_cast<Label>(i % 3)));
      CHECK(lines[i]["usage"]["completion_tokens"] == 5);
      // Reasoning sent apart from the text is kept beside the response.
      if (i % 2)
        CHECK(lines[i]["reasoning"] == "thought " + std::to_string(i));
      else
        CHECK_FALSE(lines[i].contains("reasoning"));
    }
  }
  CHECK(read_jsonl(pred)[0] == first_part[0]);
}

TEST_CASE("eval --endpoint records a row the endpoint refuses alone as unanswered, once it has answered others",
          "[eval][endpoint]") {
  test::TempDir tmp("eval-endpoint-refused");
  std::atomic<int> refuse_row{3};
  MockChatServer server([&](const json& body, const httplib::Request&) -> std::pair<int, json> {
    const int64_t i = body.at("seed").get<int64_t>();
    if (i == refuse_row) return {400, api_error("This model's maximum context length is 8 tokens")};
    return {200, completion(endpoint_reply(i))};
  });
  EvalConfig c = endpoint_eval(server.url(), 0.0001, 1);
  const json result = run_eval(c, tmp.path + "/out");
  const auto lines = read_jsonl(tmp.path + "/out/predictions.jsonl");
  REQUIRE(lines.size() == result["rows"].get<size_t>());
  CHECK(lines[3]["prediction"].is_null());
  CHECK(lines[3]["finish_reason"] == "error");
  CHECK_THAT(lines[3]["error"].get<std::string>(), Catch::Contains("maximum context length"));
  CHECK(lines[4]["prediction"] == label_name(static_cast<Label>(4 % 3)));
  CHECK(result["model"]["unparsed"] == 1);
  // Refused before the endpoint answered anything: likely the settings, so
  // the run stops.
  refuse_row = 0;
  CHECK_THROWS_WITH(run_eval(c, tmp.path + "/first"), Catch::Contains("row 1 (") && Catch::Contains("HTTP 400"));
  CHECK(read_jsonl(tmp.path + "/first/predictions.jsonl").empty());
}

TEST_CASE("eval --endpoint answers at most 8 x --batch rows past one that is still out", "[eval][endpoint]") {
  test::TempDir tmp("eval-endpoint-window");
  std::atomic<int> arrived{0}, arrived_before_row0_replied{-1};
  MockChatServer server([&](const json& body, const httplib::Request&) -> std::pair<int, json> {
    ++arrived;
    const int64_t i = body.at("seed").get<int64_t>();
    if (i == 0) {
      // Long enough for the other worker to reach the window's end (16 rows
      // with --batch 2), then a while longer to see that it stops there.
      for (int t = 0; t < 400 && arrived < 16; ++t) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      arrived_before_row0_replied = arrived.load();
    }
    return {200, completion(endpoint_reply(i))};
  });
  EvalConfig c = endpoint_eval(server.url(), 0.0003, 2);
  const json result = run_eval(c, tmp.path + "/out");
  REQUIRE(result["rows"].get<int>() > 20);
  CHECK(arrived_before_row0_replied == 16);
  CHECK(read_jsonl(tmp.path + "/out/predictions.jsonl").size() == result["rows"].get<size_t>());
}

TEST_CASE("--adapter scores like the merged checkpoint, not like the base", "[eval]") {
  test::TempDir tmp("eval-adapter");
  const std::string base = make_model(tmp.path);
  auto model = engine::Transformer::load(base);
  const engine::LoraSpec spec{4, 8.0, 0.0, false, {"q_proj", "v_proj"}, {}};
  attach_random_lora(model, spec, 3);
  engine::save_peft_adapter(tmp.path + "/adapter", model, spec, base);
  model.save(tmp.path + "/merged", engine::StDType::F32, /*merge_lora=*/true);
  std::filesystem::copy_file(base + "/tokenizer.model", tmp.path + "/merged/tokenizer.model");

  auto cfg = small_eval(base);
  cfg.fraction = 0.0001;
  run_eval(cfg, tmp.path + "/base-out");
  cfg.adapter_dir = tmp.path + "/adapter";
  run_eval(cfg, tmp.path + "/adapter-out");
  cfg.adapter_dir.clear();
  cfg.model_dir = tmp.path + "/merged";
  run_eval(cfg, tmp.path + "/merged-out");
  const auto plain = read_jsonl(tmp.path + "/base-out/predictions.jsonl");
  const auto with = read_jsonl(tmp.path + "/adapter-out/predictions.jsonl");
  const auto merged = read_jsonl(tmp.path + "/merged-out/predictions.jsonl");
  REQUIRE(with.size() == merged.size());
  REQUIRE(with.size() == plain.size());
  double moved = 0;
  for (size_t i = 0; i < with.size(); ++i)
    for (int k = 0; k < 3; ++k) {
      CHECK(with[i]["logprobs"][k].get<double>() == Approx(merged[i]["logprobs"][k].get<double>()).margin(1e-4));
      moved = std::max(moved, std::abs(with[i]["logprobs"][k].get<double>() - plain[i]["logprobs"][k].get<double>()));
    }
  CHECK(moved > 1e-2);
}

TEST_CASE("decision offsets move the predictions, not the probabilities AUROC ranks", "[eval][calibration]") {
  test::TempDir tmp("eval-offsets");
  const std::string model = make_model(tmp.path);
  auto cfg = small_eval(model);
  const json plain_metrics = run_eval(cfg, tmp.path + "/plain");
  cfg.offsets.add = {2.5, -1.0, 0.0};
  const json result = run_eval(cfg, tmp.path + "/shifted");
  const auto plain = read_jsonl(tmp.path + "/plain/predictions.jsonl");
  const auto shifted = read_jsonl(tmp.path + "/shifted/predictions.jsonl");
  REQUIRE(plain.size() == shifted.size());
  int64_t changed = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    // Written out by hand: p_k = exp(lp_k + o_k) / sum_j exp(lp_j + o_j).
    double z = 0, p[3];
    for (int k = 0; k < 3; ++k) z += p[k] = std::exp(shifted[i]["logprobs"][k].get<double>() + cfg.offsets.add[k]);
    int best = 0;
    for (int k = 0; k < 3; ++k) {
      const std::string& name = label_name(static_cast<Label>(k));
      CHECK(shifted[i]["logprobs"][k].get<double>() == Approx(plain[i]["logprobs"][k].get<double>()).margin(1e-9));
      CHECK(shifted[i]["calibrated_probs"][name].get<double>() == Approx(p[k] / z).margin(1e-12));
      // "probs" stay the model's own: the same as without offsets.
      CHECK(shifted[i]["probs"][name].get<double>() == Approx(plain[i]["probs"][name].get<double>()).margin(1e-12));
      if (p[k] > p[best]) best = k;
    }
    CHECK(shifted[i]["prediction"] == label_name(static_cast<Label>(best)));
    CHECK_FALSE(plain[i].contains("calibrated_probs"));
    changed += shifted[i]["prediction"] != plain[i]["prediction"];
  }
  CHECK(changed > 0);
  // Up and down moved by different amounts: AUROC still ranks the raw scores
  // (shifted ones would reorder p(up) + p(down)), while accuracy follows the
  // shifted decisions.
  for (const char* k : {"de_per_gene", "de_pooled", "dir_per_gene", "dir_pooled"})
    CHECK(result["model"]["auroc"][k] == plain_metrics["model"]["auroc"][k]);
  CHECK(result["model"]["accuracy"] != plain_metrics["model"]["accuracy"]);
  CHECK_THAT(result["model_scores"].get<std::string>(), Catch::Contains("AUROC from the raw probabilities"));
  CHECK_FALSE(plain_metrics.contains("model_scores"));
  CHECK(result["config"]["offsets"]["upregulated"] == 2.5);
  // Resuming the shifted folder without the offsets is refused, naming them.
  cfg.offsets = ClassOffsets{};
  CHECK_THROWS_WITH(run_eval(cfg, tmp.path + "/shifted"), Catch::Contains("offsets:"));
  cfg.mode = "generate";
  cfg.offsets.add = {1, 0, 0};
  CHECK_THROWS_WITH(run_eval(cfg, tmp.path + "/gen"), Catch::Contains("--offsets applies to --mode score only"));
}

TEST_CASE("a resume is refused when the template's text changed; sampled answers do not depend on --batch", "[eval]") {
  test::TempDir tmp("eval-resume-config");
  const std::string model = make_model(tmp.path);
  auto cfg = small_eval(model);
  cfg.fraction = 0.0001;
  const std::string tmpl = tmp.path + "/mine.txt";
  std::ofstream(tmpl) << "[user]\n{cell_id} {pert} {gene} ->\n[answer]\n {label}\n";
  cfg.prompt = tmpl;
  run_eval(cfg, tmp.path + "/out");
  run_eval(cfg, tmp.path + "/out");  // the same file: resumes
  std::ofstream(tmpl) << "[user]\n{cell_id} {gene} {pert} ->\n[answer]\n {label}\n";  // same path, other prompt
  CHECK_THROWS_WITH(run_eval(cfg, tmp.path + "/out"), Catch::Contains("prompt_digest:"));

  // Local sampling seeds each row by its index: a run in batches of 3, one in
  // batches of 5 and one resumed after a torn write mid-batch sample the same
  // answers, so --batch is not part of the configuration.
  cfg.prompt = "compact";
  cfg.mode = "generate";
  cfg.max_new_tokens = 6;
  cfg.sampling.temperature = 1.5;
  cfg.batch = 3;
  run_eval(cfg, tmp.path + "/sampled");
  CHECK_FALSE(json::parse(test::read_text(tmp.path + "/sampled/eval_config.json")).contains("batch"));
  auto responses = [&](const std::string& dir) {
    std::vector<std::string> out;
    std::istringstream in(test::read_text(dir + "/predictions.jsonl"));
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line)["response"]);
    return out;
  };
  const auto by3 = responses(tmp.path + "/sampled");
  REQUIRE(by3.size() >= 5);
  CHECK(std::set<std::string>(by3.begin(), by3.end()).size() > 1);  // sampled, not one fixed answer
  cfg.batch = 5;
  run_eval(cfg, tmp.path + "/sampled5");
  CHECK(responses(tmp.path + "/sampled5") == by3);
  // Cut after the 4th line and resumed in batches of 5: rows 5.. restart mid-batch.
  const std::string pred = tmp.path + "/sampled5/predictions.jsonl";
  std::string kept;
  std::istringstream in(test::read_text(pred));
  std::string line;
  for (int i = 0; i < 4 && std::getline(in, line); ++i) kept += line + "\n";
  write_file_atomic(pred, kept);
  std::filesystem::remove(tmp.path + "/sampled5/metrics.json");
  run_eval(cfg, tmp.path + "/sampled5");
  CHECK(responses(tmp.path + "/sampled5") == by3);
}

TEST_CASE("a resume is refused when the adapter or the chat template file was rewritten in place", "[eval]") {
  test::TempDir tmp("eval-resume-files");
  const std::string base = make_model(tmp.path);
  // An adapter on q_proj with random matrices, saved again with others below.
  auto save_adapter = [&](uint64_t seed) {
    auto model = engine::Transformer::load(base);
    const engine::LoraSpec spec{2, 4.0, 0.0, false, {"q_proj"}, {}};
    attach_random_lora(model, spec, seed);
    engine::save_peft_adapter(tmp.path + "/adapter", model, spec, base);
  };
  save_adapter(1);
  auto cfg = small_eval(base);
  cfg.fraction = 0.0001;
  cfg.adapter_dir = tmp.path + "/adapter";
  run_eval(cfg, tmp.path + "/with-adapter");
  run_eval(cfg, tmp.path + "/with-adapter");  // unchanged: resumes
  save_adapter(2);                            // retrained into the same folder
  CHECK_THROWS_WITH(run_eval(cfg, tmp.path + "/with-adapter"), Catch::Contains("adapter_digests"));

  cfg.adapter_dir.clear();
  const std::string chat = tmp.path + "/chat.jinja";
  std::ofstream(chat) << "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
                         "{% if add_generation_prompt %}[assistant]{% endif %}";
  cfg.chat_template_file = chat;
  run_eval(cfg, tmp.path + "/with-chat");
  run_eval(cfg, tmp.path + "/with-chat");
  std::ofstream(chat) << "{% for m in messages %}{{ m.content }}\n{% endfor %}";
  CHECK_THROWS_WITH(run_eval(cfg, tmp.path + "/with-chat"), Catch::Contains("chat_template_digest"));
}

TEST_CASE("--part val scores the held-out validation groups; --part train the rest, baselines out of fold",
          "[eval][split]") {
  test::TempDir tmp("eval-parts");
  const std::string model = make_model(tmp.path);
  auto cfg = small_eval(model);
  cfg.part = "val";
  CHECK_THROWS_WITH(run_eval(cfg, tmp.path + "/none"), Catch::Contains("--part val: no validation rows"));
  cfg.val_fraction = 0.05;
  cfg.val_seed = 2;
  cfg.fraction = 0.002;
  const json val = run_eval(cfg, tmp.path + "/val");
  const SplitData d = load_split(test::perturbqa_dir(), parse_split(cfg.split));
  std::vector<Row> pool, held;
  split_validation(d.train, 0.05, 2, pool, held);
  const auto want = subsample(held, cfg.fraction, cfg.seed);
  const auto lines = read_jsonl(tmp.path + "/val/predictions.jsonl");
  REQUIRE(lines.size() == want.size());
  REQUIRE(!lines.empty());
  for (size_t i = 0; i < lines.size(); ++i) {
    CHECK(lines[i]["pert"] == want[i].pert);
    CHECK(lines[i]["gene"] == want[i].gene);
  }
  CHECK(val["config"]["validation"] == json{{"fraction", 0.05}, {"seed", 2}});
  CHECK_THAT(val["baselines_fit"].get<std::string>(), Catch::Contains("outside the validation groups"));
  // Another validation seed is another set of rows: refused in the same folder.
  cfg.val_seed = 3;
  CHECK_THROWS_WITH(run_eval(cfg, tmp.path + "/val"), Catch::Contains("validation:"));

  cfg.part = "train";
  cfg.val_seed = 2;
  cfg.fraction = 0.0002;
  const json train = run_eval(cfg, tmp.path + "/train");
  std::set<std::string> held_groups;
  for (const auto& r : held) held_groups.insert(r.cell_type + " " + r.pert);
  const auto train_lines = read_jsonl(tmp.path + "/train/predictions.jsonl");
  REQUIRE(train_lines.size() == subsample(pool, cfg.fraction, cfg.seed).size());
  for (const auto& l : train_lines)
    CHECK(held_groups.count(l["cell_type"].get<std::string>() + " " + l["pert"].get<std::string>()) == 0);
  CHECK_THAT(train["baselines_fit"].get<std::string>(), Catch::Contains("out of fold"));
  CHECK_THAT(test::read_text(tmp.path + "/train/report.md"), Catch::Contains("out of fold"));
  MetricsOptions mo;
  mo.bootstrap = 0;
  const SplitPart part = select_part(d, "train", 0.05, 2);
  const json gm = compute_metrics(run_part_baseline("gene_majority", d, part, subsample(pool, cfg.fraction, cfg.seed)), mo);
  CHECK(train["baselines"]["gene_majority"]["accuracy"] == gm["accuracy"]);
}

TEST_CASE("--prompt-cell renders every row's cell line as one word", "[eval]") {
  test::TempDir tmp("eval-prompt-cell");
  const std::string model = make_model(tmp.path);
  PromptEncoder enc(model, PromptTemplate::load("compact"), ChatMode::kOff);
  const Row row{"rpe1", "AAMP", "DEK", Label::kUp, true, {}};
  CHECK(enc.prompt_text(row) == "rpe1 AAMP DEK ->");
  enc.set_prompt_cell("any");
  CHECK(enc.prompt_text(row) == "any AAMP DEK ->");
  auto cfg = small_eval(model);
  cfg.fraction = 0.0001;
  cfg.prompt_cell = "any";
  const json result = run_eval(cfg, tmp.path + "/out");
  CHECK(result["config"]["prompt_cell"] == "any");
  for (const auto& l : read_jsonl(tmp.path + "/out/predictions.jsonl")) CHECK(l["cell_type"] == "rpe1");
}

TEST_CASE("eval rejects bad arguments before loading anything", "[eval]") {
  EvalConfig c;
  c.model_dir = "/nonexistent";
  c.data_dir = test::perturbqa_dir();
  c.mode = "vote";
  CHECK_THROWS_WITH(run_eval(c, "/tmp/unused"), Catch::Contains("--mode"));
  c.mode = "score";
  c.split = "holdout:mars";
  CHECK_THROWS_WITH(run_eval(c, "/tmp/unused"), Catch::Contains("unknown cell line 'mars'"));
}

TEST_CASE("a run refused before its first row leaves --out free for the corrected command", "[eval]") {
  test::TempDir tmp("eval-refused-start");
  const std::string model = make_model(tmp.path);
  auto cfg = small_eval(model);
  cfg.dtype = "f8";
  CHECK_THROWS_WITH(run_eval(cfg, tmp.path + "/out"), Catch::Contains("--dtype"));
  cfg.dtype = "f32";
  cfg.chat = ChatMode::kOn;  // this model has no chat template
  CHECK_THROWS(run_eval(cfg, tmp.path + "/out"));
  CHECK_FALSE(std::filesystem::exists(tmp.path + "/out/eval_config.json"));
  // Failing later, at the model, still leaves no row: the rerun starts afresh.
  cfg.chat = ChatMode::kAuto;
  std::filesystem::create_directories(tmp.path + "/out");
  std::ofstream(tmp.path + "/out/eval_config.json") << json{{"dtype", "bf16"}}.dump();
  std::ofstream(tmp.path + "/out/predictions.jsonl");
  CHECK(run_eval(cfg, tmp.path + "/out")["rows"].get<size_t>() > 20);
}

TEST_CASE("the demo runs end to end on a few rows", "[eval][demo]") {
  test::TempDir tmp("demo");
  const auto r = run_demo(tmp.path,
                          "--out \"out dir\" --blind-fraction 0.5 --train-fraction 0.01 --test-fraction 0.002 "
                          "--val-fraction 0.003 --epochs 1 --batch 64 --hidden 32 --bootstrap 20");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json summary = json::parse(r.out);
  CHECK(summary["steps"].get<int64_t>() > 0);
  CHECK(summary["test_rows"].get<int64_t>() > 100);
  // --prompt-template auto on a holdout split.
  CHECK(summary["prompt_template"] == "compact-all");
  CHECK(json::parse(test::read_text(tmp.path + "/out dir/eval/eval_config.json"))["prompt_template"] == "compact-all");
  CHECK_THAT(r.err, Catch::Contains("| student |") && Catch::Contains("| pair_transfer |"));
  CHECK(std::filesystem::exists(tmp.path + "/out dir/eval/report.md"));
  CHECK(std::filesystem::exists(tmp.path + "/out dir/train/model/tokenizer.model"));
  // Offsets fitted on validation rows, and used by the evaluation.
  const json cal = json::parse(test::read_text(tmp.path + "/out dir/calibration.json"));
  CHECK(cal["validation_rows"].get<int64_t>() > 0);
  CHECK(cal["macro_f1_after"].get<double>() >= cal["macro_f1_before"].get<double>());
  CHECK(summary["offsets"] == cal["offsets"]);
  // Half the training rows were also trained on name-blind, and the test rows
  // were scored in both views.
  CHECK_THAT(r.err, Catch::Contains(" name-blind) x 1 epochs"));
  const auto lines = read_jsonl(tmp.path + "/out dir/eval/predictions.jsonl");
  REQUIRE(!lines.empty());
  CHECK(lines[0]["logprobs_views"].size() == 2);

  // Calibration by hand (docs/perturbqa.md, "Decision offsets"): eval --part val
  // holds out the demo's validation rows, and calibrate fits the demo's offsets.
  auto cli = [&](const std::string& args) {
    const auto run = test::run_command("cd " + tmp.path + " && PERTURBQA_DIR=" + test::perturbqa_dir() + " " +
                                       test::synthpert_bin() + " " + args);
    INFO(args << "\n" << run.err);
    REQUIRE(run.exit_code == 0);
    return json::parse(run.out);
  };
  const std::string eval_args = "eval --model \"out dir/train/model\" --split holdout:rpe1 --mode score "
                                "--prompt-template compact-all --prompt-cell any --blind-view --batch 512 --bootstrap 0 ";
  CHECK(cli(eval_args + "--part val --val-fraction 0.003 --val-seed 0 --out val")["rows"] == cal["validation_rows"]);
  const json fitted = cli("calibrate --predictions val/predictions.jsonl --out offsets.json");
  CHECK(fitted["offsets"] == cal["offsets"]);
  CHECK(fitted["macro_f1_after"] == cal["macro_f1_after"]);
  cli(eval_args + "--part test --fraction 0.002 --offsets offsets.json --out test");
  const auto by_hand = read_jsonl(tmp.path + "/test/predictions.jsonl");
  REQUIRE(by_hand.size() == lines.size());
  for (size_t i = 0; i < lines.size(); ++i) CHECK(by_hand[i]["prediction"] == lines[i]["prediction"]);
  CHECK(fitted["fit_on"] == json{{"split", "holdout:rpe1"}, {"part", "val"}});
  // Offsets are never fitted on test rows.
  const auto on_test = test::run_command("cd " + tmp.path + " && " + test::synthpert_bin() +
                                         " calibrate --predictions test/predictions.jsonl");
  CHECK(on_test.exit_code != 0);
  CHECK_THAT(on_test.err, Catch::Contains("holds predictions of test rows"));
  // Nor written over the predictions they are fitted on.
  const std::string val_preds = test::read_text(tmp.path + "/val/predictions.jsonl");
  const auto onto_input = test::run_command("cd " + tmp.path + " && " + test::synthpert_bin() +
                                            " calibrate --predictions val/predictions.jsonl --out ./val/predictions.jsonl");
  CHECK(onto_input.exit_code == 2);
  CHECK(test::read_text(tmp.path + "/val/predictions.jsonl") == val_preds);
  // Nor over the evaluation's record, which tells validation rows from test rows.
  const std::string val_record = test::read_text(tmp.path + "/val/eval_config.json");
  const auto onto_record = test::run_command("cd " + tmp.path + " && " + test::synthpert_bin() +
                                             " calibrate --predictions val/predictions.jsonl --out val/eval_config.json");
  CHECK(onto_record.exit_code == 2);
  CHECK_THAT(onto_record.err, Catch::Contains("record of its settings"));
  CHECK(test::read_text(tmp.path + "/val/eval_config.json") == val_record);
}

TEST_CASE("the demo on a default split, with the pert effect and own-line gene shares in the prompt", "[eval][demo]") {
  test::TempDir tmp("demo-default");
  std::ofstream(tmp.path + "/context.txt")
      << "[user]\n{cell_id} {pert} {gene} | {evidence} | {pert_effect} | {gene_here} ->\n[answer]\n {label}\n";
  const auto r = run_demo(tmp.path, "--out out --split default:hepg2 --prompt-template " + tmp.path +
                                        "/context.txt --train-fraction 0.02 --test-fraction 0.01 --epochs 1 --batch 64 "
                                        "--hidden 32 --bootstrap 0 --no-calibrate");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json summary = json::parse(r.out);
  CHECK(summary["validation_rows"] == 0);
  CHECK_FALSE(std::filesystem::exists(tmp.path + "/out/calibration.json"));
  CHECK_THAT(r.err, Catch::Contains("default:hepg2 test rows"));
  // The own-line gene shares reached the prompts (their words are tokenizer symbols).
  CHECK_THAT(test::read_text(tmp.path + "/out/tokenizer/symbols.txt"), Catch::Contains("\nhde0\n"));
  const auto lines = read_jsonl(tmp.path + "/out/eval/predictions.jsonl");
  REQUIRE(!lines.empty());
  for (const auto& l : lines) CHECK(l["cell_type"] == "hepg2");
}

TEST_CASE("the demo on a default split picks compact-similar, whose words reach the prompts", "[eval][demo]") {
  test::TempDir tmp("demo-similar");
  const auto r = run_demo(tmp.path, "--out out --split default:hepg2 --train-fraction 0.02 --test-fraction 0.01 "
                                    "--epochs 1 --batch 64 --hidden 32 --bootstrap 0 --no-calibrate");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json summary = json::parse(r.out);
  CHECK(summary["prompt_template"] == "compact-similar");
  CHECK(json::parse(test::read_text(tmp.path + "/out/eval/eval_config.json"))["prompt_template"] == "compact-similar");
  // {gene_similar} words are tokenizer symbols only if training prompts carried them.
  const std::string symbols = test::read_text(tmp.path + "/out/tokenizer/symbols.txt");
  CHECK_THAT(symbols, Catch::Contains("\nsn1\n") && Catch::Contains("\nsde0\n"));
}

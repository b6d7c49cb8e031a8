// Text inputs of `synthpert train` through real tokenizers and chat
// templates: a sentencepiece model trained here with spm_train and a
// Llama-3-like template, and Qwen3's tokenizer.json with its own template.
// The assistant mask is checked the way a TRL assistant-only loss defines
// it: exactly the tokens of each reply as the template writes it, plus the
// end-of-turn marker. The expected reply text is written out by hand from
// the template; the masked tokens are decoded and compared with it.
#include <catch2/catch.hpp>

#include "common/fs.h"
#include "perturb/prompt.h"
#include "tests/tokenizer/oracle_util.h"
#include "tests/trainer/chat_test_util.h"
#include "tests/trainer/trainer_test_util.h"
#include "tokenizer/tokenizer.h"
#include "trainer/chat_tokenizer.h"
#include "trainer/conversations.h"
#include "trainer/sft_data.h"
#include "trainer/system_prompt.h"

using namespace synthpert;
using nlohmann::json;

namespace {

struct Span {
  size_t begin, end;
};

// The maximal runs of 1s in a mask.
std::vector<Span> masked_runs(const std::vector<uint8_t>& mask) {
  std::vector<Span> runs;
  for (size_t i = 0; i < mask.size(); ++i) {
    if (!mask[i]) continue;
    size_t j = i;
    while (j < mask.size() && mask[j]) ++j;
    runs.push_back({i, j});
    i = j;
  }
  return runs;
}

std::vector<int64_t> slice(const std::vector<int64_t>& v, size_t b, size_t e) {
  return std::vector<int64_t>(v.begin() + static_cast<std::ptrdiff_t>(b),
                              v.begin() + static_cast<std::ptrdiff_t>(e));
}

// What sentencepiece's default normaliser (nmt_nfkc, remove_extra_whitespaces)
// leaves of ASCII text: whitespace runs become one space, none at the ends.
std::string sp_normalized(const std::string& s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// Checks one example: one masked run per expected reply, each decoding to
// that reply; the tokens before a run end with the assistant header.
void check_mask(const tokenizer::Tokenizer& tok, const trainer::SftExample& e,
                const std::vector<std::string>& replies, const std::string& header_end) {
  INFO(e.origin);
  const auto runs = masked_runs(e.loss_mask);
  REQUIRE(runs.size() == replies.size());
  for (size_t k = 0; k < runs.size(); ++k) {
    INFO("reply " << k);
    CHECK(tok.decode(slice(e.ids, runs[k].begin, runs[k].end)) == replies[k]);
    const std::string before = tok.decode(slice(e.ids, 0, runs[k].begin));
    CHECK(before.size() >= header_end.size());
    CHECK(before.compare(before.size() - header_end.size(), header_end.size(), header_end) == 0);
  }
}

}  // namespace

TEST_CASE("traces through a sentencepiece model and a Llama-3-like template: mask = replies + <|eot_id|>",
          "[chat-data]") {
  test::TempDir dir("chat-spm");
  const std::string tok_dir = test::make_spm_chat_tokenizer(dir.path + "/tok");
  const auto tok = tokenizer::Tokenizer::load(tok_dir);
  const std::string traces = dir.path + "/traces.jsonl";
  const std::string reply_with_breaks = "<think>\nThe knockdown lowers   the\nprotein.\n</think>\n<answer>downregulated</answer>\n";
  {
    std::ofstream f(traces);
    f << json{{"messages", {{{"role", "system"}, {"content", "You are a careful biologist."}},
                            {{"role", "user"}, {"content", "Does TP53 knockdown change CDKN1A in K562?"}},
                            {{"role", "assistant"}, {"content", "It lowers CDKN1A expression."}}}},
              {"pert", "TP53"}}.dump() << "\n";
    f << json{{"messages", {{{"role", "user"}, {"content", "Is MYC a transcription factor?"}},
                            {{"role", "assistant"}, {"content", "Yes, it binds E-box motifs."}},
                            {{"role", "user"}, {"content", "And GATA1?"}},
                            {{"role", "assistant"}, {"content", reply_with_breaks}}}}}.dump() << "\n";
  }
  const auto examples = trainer::tokenize_conversations(trainer::read_traces_jsonl(traces), tok_dir);
  REQUIRE(examples.size() == 2);
  const std::string header = "assistant<|end_header_id|>";
  check_mask(*tok, examples[0], {"It lowers CDKN1A expression.<|eot_id|>"}, header);
  check_mask(*tok, examples[1],
             {"Yes, it binds E-box motifs.<|eot_id|>", sp_normalized(reply_with_breaks) + "<|eot_id|>"},
             header);
  // The whole conversation is the template's text: BOS, headers and all turns.
  CHECK(tok->decode(examples[0].ids) ==
        "<s><|start_header_id|>system<|end_header_id|>You are a careful biologist.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>Does TP53 knockdown change CDKN1A in K562?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>It lowers CDKN1A expression.<|eot_id|>");
  CHECK(examples[0].ids.front() == *tok->bos_id());
  // HF's legacy LlamaTokenizer encodes the text between special tokens on its
  // own: the reply's tokens are the reply encoded alone, then <|eot_id|>.
  const auto runs = masked_runs(examples[0].loss_mask);
  auto expected = tok->encode("It lowers CDKN1A expression.", false);
  expected.push_back(*tok->token_to_id("<|eot_id|>"));
  CHECK(slice(examples[0].ids, runs[0].begin, runs[0].end) == expected);
}

TEST_CASE("SynthPert CSV through the sentencepiece chat template: the system prompt is not learned",
          "[chat-data]") {
  // Default: the system text of the built-in reasoning prompt template.
  test::TempDir dir("chat-spm-csv");
  const std::string tok_dir = test::make_spm_chat_tokenizer(dir.path + "/tok");
  const auto tok = tokenizer::Tokenizer::load(tok_dir);
  const std::string csv = dir.path + "/d.csv";
  std::ofstream(csv) << "cell_type,pert,gene,user_prompt,assistant_response,true_answer,critic_evaluation\n"
                        "k562,TP53,CDKN1A,\"In K562, TP53 is knocked down. CDKN1A?\","
                        "\"<think>p21 is a TP53 target, so it falls.</think><answer>downregulated</answer>\",down,good\n"
                        "rpe1,MYC,CCND1,\"MYC, then CCND1?\",\"<answer>not differentially expressed</answer>\",none,\"fine, \"\"ok\"\"\"\n";
  trainer::DataSource src;
  src.path = csv;
  src.tokenizer_dir = tok_dir;
  src.system_prompt = trainer::choose_system_prompt("", "").fn;
  const auto with_default = trainer::load_sft_examples(src);
  REQUIRE(with_default.size() == 2);
  const std::string reasoning_system = perturb::PromptTemplate::load("reasoning").system;
  CHECK(tok->decode(with_default[0].ids).rfind("<s><|start_header_id|>system<|end_header_id|>" + reasoning_system +
                                                  "<|eot_id|><|start_header_id|>user<|end_header_id|>In K562",
                                              0) == 0);

  const std::string system_file = dir.path + "/system.txt";
  std::ofstream(system_file) << "Answer as an expert.\n";
  src.system_prompt = trainer::choose_system_prompt(system_file, "").fn;
  const auto examples = trainer::load_sft_examples(src);
  REQUIRE(examples.size() == 2);
  const std::string header = "assistant<|end_header_id|>";
  check_mask(*tok, with_default[0],
             {"<think>p21 is a TP53 target, so it falls.</think><answer>downregulated</answer><|eot_id|>"}, header);
  check_mask(*tok, examples[0],
             {"<think>p21 is a TP53 target, so it falls.</think><answer>downregulated</answer><|eot_id|>"}, header);
  check_mask(*tok, examples[1], {"<answer>not differentially expressed</answer><|eot_id|>"}, header);
  CHECK(tok->decode(examples[1].ids) ==
        "<s><|start_header_id|>system<|end_header_id|>Answer as an expert.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>MYC, then CCND1?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|><answer>not differentially expressed</answer><|eot_id|>");
}

TEST_CASE("traces through Qwen3's tokenizer.json and chat template match the JS tokenizer and renderer",
          "[chat-data][oracle]") {
  const std::string qwen = test::package_models_dir("qwen3");
  const auto tok = tokenizer::Tokenizer::load(qwen);
  test::TempDir dir("chat-qwen3");
  const std::string traces = dir.path + "/traces.jsonl";
  const json sys = {{"role", "system"}, {"content", "You are an expert molecular biologist."}};
  const json user = {{"role", "user"}, {"content", "In K562 cells TP53 is knocked down. Is CDKN1A up, down or unchanged?"}};
  const json thinking = {{"role", "assistant"},
                         {"content", "<think>\nTP53 activates CDKN1A (p21).\nLess TP53, less p21.\n\n</think>\n\n"
                                     "<answer>downregulated</answer>"}};
  const json plain = {{"role", "assistant"}, {"content", "<answer>not differentially expressed</answer> ✓"}};
  const std::vector<json> convs = {json::array({sys, user, thinking}), json::array({user, plain})};
  {
    std::ofstream f(traces);
    for (const auto& c : convs) f << json{{"messages", c}}.dump() << "\n";
  }
  const auto examples = trainer::tokenize_conversations(trainer::read_traces_jsonl(traces), qwen);
  REQUIRE(examples.size() == 2);
  // Qwen3's template writes the last reply after the user's query with its
  // reasoning between <think> tags (reasoning stripped of outer newlines,
  // the answer of leading ones), an empty block when there is none; the
  // turn ends with "<|im_end|>\n".
  const std::string header = "<|im_start|>assistant\n";
  check_mask(*tok, examples[0],
             {"<think>\nTP53 activates CDKN1A (p21).\nLess TP53, less p21.\n</think>\n\n"
              "<answer>downregulated</answer><|im_end|>\n"},
             header);
  check_mask(*tok, examples[1],
             {"<think>\n\n</think>\n\n<answer>not differentially expressed</answer> ✓<|im_end|>\n"}, header);

  // The ids are those of the conversation rendered by @huggingface/jinja and
  // encoded by transformers.js.
  json cases = json::array();
  const auto config = json::parse(read_file(qwen + "/tokenizer_config.json"));
  for (const auto& c : convs)
    cases.push_back({{"template", config["chat_template"]}, {"vars", {{"messages", c}, {"add_generation_prompt", false}}}});
  const json rendered = test::run_node("render.js", {{"cases", cases}});
  json strings = json::array();
  for (const auto& r : rendered["results"]) strings.push_back(test::to_hex(r.at("text").get<std::string>()));
  const json encoded = test::run_node("encode.js", {{"package", "qwen3"}, {"strings_hex", strings}});
  for (size_t i = 0; i < examples.size(); ++i) {
    INFO("conversation " << i);
    CHECK(examples[i].ids == encoded["ids_plain"][i].get<std::vector<int64_t>>());
    CHECK(tok->decode(examples[i].ids) == rendered["results"][i]["text"].get<std::string>());
  }
}

TEST_CASE("Qwen3's template rewrites earlier replies: multi-turn traces are refused with the remedy",
          "[chat-data][oracle]") {
  const std::string qwen = test::package_models_dir("qwen3");
  trainer::Conversation c;
  c.origin = "t.jsonl:3";
  c.messages = {{"user", "Is MYC a transcription factor?"}, {"assistant", "Yes."},
                {"user", "And GATA1?"}, {"assistant", "Also yes."}};
  CHECK_THROWS_WITH(trainer::tokenize_conversations({c}, qwen),
                    Catch::Contains("t.jsonl:3: assistant message 1") &&
                        Catch::Contains("split it into one example per assistant turn"));
}

TEST_CASE("train runs on traces through the tokenizer (default system text where a trace has none) and equals "
          "the run on the same examples pre-tokenized",
          "[chat-data][cli]") {
  test::TempDir dir("chat-train");
  const std::string tok_dir = test::make_spm_chat_tokenizer(dir.path + "/tok");
  const auto tok = tokenizer::Tokenizer::load(tok_dir);
  auto config = test::odd_config();
  config.vocab_size = tok->vocab_size();
  const std::string model = dir.path + "/model";
  test::make_model(model, 3, config);

  const std::string traces = dir.path + "/traces.jsonl";
  {
    const char* answers[] = {"upregulated", "downregulated", "not differentially expressed"};
    const char* genes[] = {"TP53", "MYC", "GATA1", "CCND1", "CDKN1A"};
    std::ofstream f(traces);
    for (int i = 0; i < 10; ++i) {
      const std::string q = std::string("In K562 cells ") + genes[i % 5] + " is knocked down. Is " +
                            genes[(i + 2) % 5] + " changed?";
      const std::string a = "<think>" + std::string(genes[i % 5]) + " binds motifs of the target" +
                            std::string(static_cast<size_t>(i), '.') + "</think><answer>" + answers[i % 3] +
                            "</answer>";
      json messages = {{{"role", "user"}, {"content", q}}, {{"role", "assistant"}, {"content", a}}};
      if (i % 2 == 0) messages.insert(messages.begin(), json{{"role", "system"}, {"content", "You are an expert."}});
      f << json{{"messages", messages}}.dump() << "\n";
    }
  }
  // Traces without a system turn get the reasoning template's system text.
  auto conversations = trainer::read_traces_jsonl(traces);
  const std::string reasoning_system = perturb::PromptTemplate::load("reasoning").system;
  for (auto& c : conversations)
    if (c.messages.front().role != "system") c.messages.insert(c.messages.begin(), {"system", reasoning_system});
  const std::string pretokenized = dir.path + "/pretokenized.jsonl";
  test::write_pretokenized(pretokenized, trainer::tokenize_conversations(conversations, tok_dir));

  const std::string common = " --lora-r 4 --lora-alpha 8 --lr 1e-2 --seed 2 --batch 2 --grad-accum 2 --max-steps 3"
                             " --val-fraction 0.2 --no-progress --tokenizer " + tok_dir + " --model " + model;
  const auto text_run =
      test::run_command(test::synthpert_bin() + " train --data " + traces + " --out " + dir.path + "/a" + common);
  INFO(text_run.err);
  REQUIRE(text_run.exit_code == 0);
  const auto summary = json::parse(text_run.out);
  CHECK(summary["steps"] == 3);
  CHECK(summary["train_examples"] == 8);
  CHECK(summary["val_examples"] == 2);
  const auto ids_run = test::run_command(test::synthpert_bin() + " train --data " + pretokenized + " --out " +
                                         dir.path + "/b" + common);
  REQUIRE(ids_run.exit_code == 0);
  const auto a = test::metrics_lines(dir.path + "/a/metrics.jsonl", "loss");
  const auto b = test::metrics_lines(dir.path + "/b/metrics.jsonl", "loss");
  REQUIRE(a.size() == 3);
  REQUIRE(b.size() == 3);
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i]["loss"].get<double>() == b[i]["loss"].get<double>());
    CHECK(a[i]["tokens"] == b[i]["tokens"]);
  }
  CHECK(json::parse(ids_run.out)["val_loss"].get<double>() == summary["val_loss"].get<double>());
}

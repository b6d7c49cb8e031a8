// SFT data: CSV and traces readers, the assistant-token mask, length
// policies, the batch plan (data order) and collation (padding, packing).
#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

#include "common/error.h"
#include "perturb/prompt.h"
#include "tests/trainer/trainer_test_util.h"
#include "trainer/batch_plan.h"
#include "trainer/chat_examples.h"
#include "trainer/collate.h"
#include "trainer/conversations.h"
#include "trainer/sft_data.h"
#include "trainer/sft_loss.h"
#include "trainer/system_prompt.h"

using namespace synthpert;
using trainer::Message;

TEST_CASE("CSV parser handles quotes, commas, newlines and CRLF", "[data]") {
  const auto rows = trainer::parse_csv(
      "a,b,c\r\n\"x, y\",\"line1\nline2\",\"say \"\"hi\"\"\"\r\nplain,,last\n", "t.csv");
  REQUIRE(rows.size() == 3);
  CHECK(rows[0] == std::vector<std::string>{"a", "b", "c"});
  CHECK(rows[1] == std::vector<std::string>{"x, y", "line1\nline2", "say \"hi\""});
  CHECK(rows[2] == std::vector<std::string>{"plain", "", "last"});
  CHECK_THROWS_WITH(trainer::parse_csv("a,b\n\"open,x\n", "t.csv"),
                    Catch::Contains("t.csv: a quoted field is not closed"));
  CHECK_THROWS_WITH(trainer::parse_csv("a,b\nx\"y\",z\n", "t.csv"), Catch::Contains("t.csv:2: stray quote"));
}

TEST_CASE("SynthPert CSV becomes user/assistant conversations with its cell_type, pert and gene", "[data]") {
  test::TempDir dir("data-csv");
  const std::string p = dir.path + "/t.csv";
  std::ofstream(p) << "cell_type,user_prompt,pert,assistant_response,true_answer\n"
                      "k562,\"Does A affect B?\",A,\"<think>x</think><answer>upregulated</answer>\",up\n";
  const auto cs = trainer::read_synthpert_csv(p);
  REQUIRE(cs.size() == 1);
  REQUIRE(cs[0].messages.size() == 2);
  CHECK(cs[0].messages[0].role == "user");
  CHECK(cs[0].messages[0].content == "Does A affect B?");
  CHECK(cs[0].messages[1].content == "<think>x</think><answer>upregulated</answer>");
  CHECK(cs[0].fields == std::map<std::string, std::string>{{"cell_type", "k562"}, {"pert", "A"}});
  // A spreadsheet's "CSV UTF-8" starts with a byte-order mark.
  std::ofstream(p) << "\xEF\xBB\xBF" "user_prompt,assistant_response\nq,a\n";
  REQUIRE(trainer::read_synthpert_csv(p).size() == 1);
  std::ofstream(p) << "user_prompt,assistant_response\n\"q\",\"a\",extra\n";
  CHECK_THROWS_WITH(trainer::read_synthpert_csv(p), Catch::Contains("row 1: has 3 fields but the header has 2"));
}

TEST_CASE("system messages go only to conversations without one", "[data]") {
  test::TempDir dir("data-system");
  const std::string p = dir.path + "/t.jsonl";
  std::ofstream(p) << R"({"messages":[{"role":"system","content":"own"},{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})"
                   << "\n"
                   << R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"pert":"TP53","gene":"MYC","cell_type":"rpe1","label":"up"})"
                   << "\n";
  auto cs = trainer::read_traces_jsonl(p);
  REQUIRE(cs.size() == 2);
  CHECK(cs[1].fields == std::map<std::string, std::string>{{"cell_type", "rpe1"}, {"pert", "TP53"}, {"gene", "MYC"}});
  trainer::add_system_messages(cs, [](const trainer::Conversation& c) { return "for " + c.origin; });
  REQUIRE(cs[0].messages.size() == 3);
  CHECK(cs[0].messages[0].content == "own");
  REQUIRE(cs[1].messages.size() == 3);
  CHECK(cs[1].messages[0].role == "system");
  CHECK(cs[1].messages[0].content == "for " + p + ":2");
  CHECK(cs[1].messages[1].role == "user");
  // An empty text adds nothing.
  auto again = trainer::read_traces_jsonl(p);
  trainer::add_system_messages(again, [](const trainer::Conversation&) { return std::string(); });
  CHECK(again[1].messages.size() == 2);
}

TEST_CASE("system prompt choice: the reasoning template by default, a template's or a file's text", "[data]") {
  test::TempDir dir("data-system-choice");
  trainer::Conversation c;
  c.origin = "t.csv: row 4";
  c.fields = {{"cell_type", "k562"}, {"pert", "TP53"}, {"gene", "CDKN1A"}};
  const auto def = trainer::choose_system_prompt("", "");
  REQUIRE(def.fn);
  const std::string reasoning = def.fn(c);
  CHECK(reasoning.rfind("You are an expert molecular biologist who predicts the outcome of CRISPR interference", 0) == 0);
  CHECK(reasoning == perturb::PromptTemplate::load("reasoning").system);
  // The compact template has no system section: no system message.
  CHECK_FALSE(trainer::choose_system_prompt("", "compact").fn);
  const std::string tmpl = dir.path + "/mine.txt";
  std::ofstream(tmpl) << "# a template of our own\n[system]\nYou study {cell_type} cells; {pert} is knocked down.\n"
                         "[user]\n{gene}?\n[answer]\n{label}\n";
  const auto own = trainer::choose_system_prompt("", tmpl);
  CHECK(own.fn(c) == "You study K562 (chronic myelogenous leukemia cell line) cells; TP53 is knocked down.");
  c.fields.erase("pert");
  CHECK_THROWS_WITH(own.fn(c), Catch::Contains("t.csv: row 4: the system text of prompt template") &&
                                   Catch::Contains("has no pert"));
  // A system text without the row's fields is still rendered, never left
  // with its raw placeholders.
  const std::string fixed = dir.path + "/fixed.txt";
  std::ofstream(fixed) << "[system]\nContext: {evidence}.\n[user]\n{gene}?\n[answer]\n{label}\n";
  CHECK(trainer::choose_system_prompt("", fixed).fn(c) == "Context: none.");
  // A file wins over the template; an empty file means no system message.
  const std::string file = dir.path + "/system.txt";
  std::ofstream(file) << "Be brief.";
  CHECK(trainer::choose_system_prompt(file, tmpl).fn(c) == "Be brief.");
  CHECK(trainer::choose_system_prompt(file, "").identity != def.identity);
  std::ofstream(file).close();
  CHECK_FALSE(trainer::choose_system_prompt(file, "").fn);
  CHECK_THROWS_WITH(trainer::choose_system_prompt(dir.path + "/none.txt", ""), Catch::Contains("no such file"));
  CHECK_THROWS_WITH(trainer::choose_system_prompt("", "nonsense"), Catch::Contains("neither a built-in template"));
}

TEST_CASE("system prompt choice without a flag: the template a row names, else reasoning", "[data]") {
  test::TempDir dir("data-system-rows");
  // Rows as `synthpert data --with-answer` writes them, read back.
  const std::string p = dir.path + "/rows.jsonl";
  std::ofstream(p)
      << R"({"cell_type":"k562","pert":"TP53","gene":"CDKN1A","prompt_template":"compact","messages":[{"role":"user","content":"k562 TP53 CDKN1A ->"},{"role":"assistant","content":" upregulated"}]})"
      << "\n"
      << R"({"cell_type":"k562","pert":"TP53","gene":"CDKN1A","messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})"
      << "\n"
      << R"({"cell_type":"k562","pert":"TP53","gene":"CDKN1A","prompt_template":"no-such-template","messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})"
      << "\n";
  auto cs = trainer::read_traces_jsonl(p);
  REQUIRE(cs.size() == 3);
  CHECK(cs[0].fields.at("prompt_template") == "compact");
  const auto none = trainer::choose_system_prompt("", "");
  REQUIRE(none.fn);
  CHECK(none.fn(cs[0]).empty());  // compact has no [system]: eval shows none
  CHECK(none.fn(cs[1]) == perturb::PromptTemplate::load("reasoning").system);
  CHECK_THROWS_WITH(none.fn(cs[2]), Catch::Contains("rows.jsonl:3: its prompt_template no-such-template cannot be read"));
  std::vector<trainer::Conversation> two = {cs[0], cs[1]};
  trainer::add_system_messages(two, none.fn);
  CHECK(two[0].messages.front().role == "user");
  CHECK(two[1].messages.front().role == "system");
  // A flag wins over the row's template.
  CHECK(trainer::choose_system_prompt("", "reasoning").fn(cs[0]) == perturb::PromptTemplate::load("reasoning").system);
}

TEST_CASE("traces JSONL errors name the line", "[data]") {
  test::TempDir dir("data-traces");
  const std::string p = dir.path + "/t.jsonl";
  std::ofstream(p) << R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"judge":"good"})"
                   << "\n{not json\n";
  CHECK_THROWS_WITH(trainer::read_traces_jsonl(p), Catch::Contains("t.jsonl:2: not valid JSON"));
  std::ofstream(p) << "[1e400]\n";  // out_of_range in nlohmann, not parse_error
  CHECK_THROWS_WITH(trainer::read_traces_jsonl(p), Catch::Contains("t.jsonl:1: not valid JSON"));
  std::ofstream(p) << R"({"messages":[{"role":"user","content":"q"}]})" << "\n";
  CHECK_THROWS_WITH(trainer::read_traces_jsonl(p), Catch::Contains("t.jsonl:1: no assistant message"));
}

namespace {

// A toy chat format, one token per character.
std::string toy_render(const std::vector<Message>& ms, bool gen) {
  std::string s = "<s>";
  for (const auto& m : ms) s += "[" + m.role + "]" + m.content + "</t>";
  if (gen) s += "[assistant]";
  return s;
}

std::vector<int64_t> char_ids(const std::string& s) {
  return std::vector<int64_t>(s.begin(), s.end());
}

}  // namespace

TEST_CASE("assistant mask covers exactly the assistant replies and their end tokens", "[data]") {
  trainer::Conversation c;
  c.origin = "conv";
  c.messages = {{"system", "be brief"}, {"user", "hi"}, {"assistant", "yo"}, {"user", "ok"}, {"assistant", "no"}};
  const auto e = trainer::conversation_to_example(c, toy_render, char_ids);
  const std::string text = toy_render(c.messages, false);
  REQUIRE(e.ids == char_ids(text));
  std::string masked;
  for (size_t i = 0; i < e.ids.size(); ++i)
    if (e.loss_mask[i]) masked += static_cast<char>(e.ids[i]);
  CHECK(masked == "yo</t>no</t>");
  const size_t first = text.find("yo</t>");
  CHECK(e.loss_mask[first - 1] == 0);  // the generation prompt is not learned
  CHECK(e.loss_mask[first] == 1);
}

TEST_CASE("a broken prefix property is a clear error", "[data]") {
  trainer::Conversation c;
  c.origin = "conv 7";
  c.messages = {{"user", "hi"}, {"assistant", "yo"}, {"user", "ok"}, {"assistant", "no"}};
  // A template that drops earlier replies (as reasoning templates do).
  const trainer::RenderFn drops = [](const std::vector<Message>& ms, bool gen) {
    std::string s;
    for (size_t i = 0; i < ms.size(); ++i)
      s += "[" + ms[i].role + "]" + (ms[i].role == "assistant" && i + 1 < ms.size() - 1 ? "" : ms[i].content);
    return s + (gen ? "[assistant]" : "");
  };
  CHECK_THROWS_WITH(trainer::conversation_to_example(c, drops, char_ids),
                    Catch::Contains("conv 7: assistant message 1") && Catch::Contains("rewrites earlier turns"));
  // A tokenizer that merges across the prompt/reply boundary.
  const trainer::EncodeFn merges = [](const std::string& s) {
    std::vector<int64_t> ids;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s.compare(i, 2, "]y") == 0) {
        ids.push_back(1000);
        ++i;
      } else {
        ids.push_back(s[i]);
      }
    }
    return ids;
  };
  CHECK_THROWS_WITH(trainer::conversation_to_example(c, toy_render, merges),
                    Catch::Contains("is not a token prefix of the rendering with the reply"));
}

TEST_CASE("length policy: truncate, drop or error", "[data]") {
  auto ex = test::random_examples(8, 101, 4, 6, 30);
  int64_t longer = 0;
  for (const auto& e : ex) longer += e.ids.size() > 12;
  REQUIRE(longer > 0);
  REQUIRE(longer < 8);
  // Only targets inside the first 12 tokens survive: give every example one.
  for (auto& e : ex) e.loss_mask[1] = 1;
  const auto t = trainer::finalize_examples(ex, 12, 101, trainer::Overlong::kTruncate);
  CHECK(t.truncated == longer);
  CHECK(t.examples.size() == ex.size());
  for (const auto& e : t.examples) CHECK(e.ids.size() <= 12);
  const auto d = trainer::finalize_examples(ex, 12, 101, trainer::Overlong::kDrop);
  CHECK(d.dropped == longer);
  CHECK(d.examples.size() == ex.size() - longer);
  CHECK_THROWS_WITH(trainer::finalize_examples(ex, 12, 101, trainer::Overlong::kError),
                    Catch::Contains("exceed --max-seq-len 12"));
  trainer::SftExample late{{1, 2, 3, 4, 5, 6}, {0, 0, 0, 0, 0, 1}, "late"};
  CHECK_THROWS_WITH(trainer::finalize_examples({late}, 4, 101, trainer::Overlong::kTruncate),
                    Catch::Contains("late: truncated to --max-seq-len 4 no assistant token is left"));
}

TEST_CASE("batch plan: order depends only on seed and global batch", "[data]") {
  std::vector<int64_t> lengths;
  for (int i = 0; i < 23; ++i) lengths.push_back(3 + (i * 7) % 11);
  trainer::PlanOptions a;
  a.batch = 2;
  a.grad_accum = 3;
  a.world = 1;
  a.seed = 9;
  a.epochs = 2;
  trainer::PlanOptions b = a;
  b.grad_accum = 1;
  b.world = 3;
  const trainer::BatchPlan pa(lengths, a), pb(lengths, b);
  REQUIRE(pa.global_batch() == 6);
  CHECK(pa.steps_per_epoch() == 4);  // ceil(23 / 6), the last step holds 5
  CHECK(pa.total_steps() == 8);
  for (int64_t s = 0; s < pa.total_steps(); ++s) {
    CHECK(pa.step_examples(s) == pb.step_examples(s));
    // The micro-batches of all processes partition the step's examples.
    std::multiset<int64_t> from_micro, from_step;
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t i : pb.micro_batch(s, r, 0)) from_micro.insert(i);
    for (int64_t i : pb.step_examples(s)) from_step.insert(i);
    CHECK(from_micro == from_step);
  }
  // Every epoch visits every example once.
  for (int64_t e = 0; e < 2; ++e) {
    std::multiset<int64_t> seen;
    for (int64_t s = e * 4; s < (e + 1) * 4; ++s)
      for (int64_t i : pa.step_examples(s)) seen.insert(i);
    CHECK(seen.size() == 23);
    CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == 23);
  }
  CHECK(pa.step_examples(4) != pa.step_examples(0));  // a new permutation per epoch
  trainer::PlanOptions c = a;
  c.seed = 10;
  CHECK(trainer::BatchPlan(lengths, c).step_examples(0) != pa.step_examples(0));
  CHECK(pa.step_examples(3).size() == 5);
}

TEST_CASE("validation split keeps every prompt's examples on one side", "[data]") {
  // 30 examples over 10 prompts, three answers each (as several traces of one
  // question): whole groups go to validation, at least ceil(0.1 * 30) = 3.
  const auto base = test::random_examples(30, 101, 5);
  std::vector<trainer::SftExample> ex(30);
  for (size_t i = 0; i < ex.size(); ++i) {
    // Prompt of base[i % 10], then all of base[i] as the answer.
    const auto& proto = base[i % 10];
    const auto first_target = std::find(proto.loss_mask.begin(), proto.loss_mask.end(), 1) - proto.loss_mask.begin();
    ex[i].ids.assign(proto.ids.begin(), proto.ids.begin() + first_target);
    ex[i].ids.insert(ex[i].ids.end(), base[i].ids.begin(), base[i].ids.end());
    ex[i].loss_mask.assign(first_target, 0);
    ex[i].loss_mask.resize(ex[i].ids.size(), 1);
    ex[i].origin = "prompt " + std::to_string(i % 10) + " answer " + std::to_string(i / 10);
  }
  for (uint64_t seed : {1, 2, 3, 4}) {
    auto [train, val] = trainer::split_validation(ex, 0.1, seed);
    CHECK(val.size() == 3);  // one group
    CHECK(train.size() == 27);
    std::set<std::string> val_prompts, train_prompts;
    for (const auto& e : val) val_prompts.insert(e.origin.substr(0, e.origin.find(" answer")));
    for (const auto& e : train) train_prompts.insert(e.origin.substr(0, e.origin.find(" answer")));
    CHECK(val_prompts.size() == 1);
    for (const auto& p : val_prompts) CHECK(train_prompts.count(p) == 0);
  }
  // 0.15 of 30 is 5 examples: two groups (6), never a group split in two.
  CHECK(trainer::split_validation(ex, 0.15, 1).second.size() == 6);
  // One prompt for everything cannot be split.
  std::vector<trainer::SftExample> same(ex.begin(), ex.begin() + 1);
  same.push_back(ex[10]);
  CHECK_THROWS_WITH(trainer::split_validation(same, 0.1, 1), Catch::Contains("they share 1 prompt(s)"));
  // Text trained on every token after a shared BOS has no prompt: each
  // example is its own group.
  std::vector<trainer::SftExample> plain = test::random_examples(10, 101, 6);
  for (auto& e : plain) {
    e.ids[0] = 1;
    std::fill(e.loss_mask.begin(), e.loss_mask.end(), 1);
    e.loss_mask[0] = 0;
  }
  const auto [plain_train, plain_val] = trainer::split_validation(plain, 0.1, 1);
  CHECK(plain_val.size() == 1);
  CHECK(plain_train.size() == 9);
}

TEST_CASE("validation split is seeded, disjoint and ceil-sized", "[data]") {
  auto ex = test::random_examples(21, 101, 2);
  auto [train, val] = trainer::split_validation(ex, 0.1, 4);
  CHECK(val.size() == 3);
  CHECK(train.size() == 18);
  std::set<std::string> names;
  for (const auto& e : train) names.insert(e.origin);
  for (const auto& e : val) CHECK(names.count(e.origin) == 0);
  auto [train2, val2] = trainer::split_validation(ex, 0.1, 4);
  CHECK(val2[0].origin == val[0].origin);
  CHECK_THROWS_WITH(trainer::split_validation(test::random_examples(1, 101, 2), 0.1, 4),
                    Catch::Contains("leaves no training examples"));
}

TEST_CASE("packed rows: segments, restarting positions, no cross-example targets", "[data]") {
  const auto ex = test::random_examples(5, 101, 8, 4, 9);
  const auto b = trainer::collate_packed(ex, {0, 1, 2, 3, 4}, 16);
  int64_t total = 0, targets = 0;
  for (const auto& e : ex) total += e.ids.size(), targets += trainer::count_targets(e);
  CHECK(b.tokens == total);
  CHECK(b.targets_count == targets);
  const auto seg = b.input.segments, pos = b.input.positions, valid = b.input.valid;
  for (int64_t r = 0; r < seg.size(0); ++r)
    for (int64_t t = 0; t < seg.size(1); ++t) {
      if (!valid[r][t].item<bool>()) continue;
      const bool starts = t == 0 || seg[r][t].item<int64_t>() != seg[r][t - 1].item<int64_t>();
      if (starts) CHECK(pos[r][t].item<int64_t>() == 0);
      else CHECK(pos[r][t].item<int64_t>() == pos[r][t - 1].item<int64_t>() + 1);
      // A segment's last token predicts nothing.
      const bool ends = t + 1 == seg.size(1) || !valid[r][t + 1].item<bool>() ||
                        seg[r][t + 1].item<int64_t>() != seg[r][t].item<int64_t>();
      if (ends) CHECK_FALSE(b.target_mask[r][t].item<bool>());
    }
}

TEST_CASE("packed and padded micro-batches give the per-example losses", "[data]") {
  test::TempDir dir("data-pack");
  test::make_model(dir.path + "/model");
  const auto model = engine::Transformer::load(dir.path + "/model");
  const auto ex = test::random_examples(6, 101, 12, 3, 20);
  torch::NoGradGuard g;
  double separate = 0;
  for (int64_t i = 0; i < 6; ++i) separate += trainer::sft_loss_sum(model, trainer::collate_padded(ex, {i}), false).item<double>();
  const std::vector<int64_t> all = {0, 1, 2, 3, 4, 5};
  const double padded = trainer::sft_loss_sum(model, trainer::collate_padded(ex, all), false).item<double>();
  const double packed = trainer::sft_loss_sum(model, trainer::collate_packed(ex, all, 24), false).item<double>();
  CHECK(padded == Approx(separate).epsilon(1e-6));
  CHECK(packed == Approx(separate).epsilon(1e-6));
}

TEST_CASE("pre-tokenized JSONL reader checks its fields", "[data]") {
  test::TempDir dir("data-pretok");
  const std::string p = dir.path + "/d.jsonl";
  std::ofstream(p) << R"({"ids":[1,2,3],"loss_mask":[false,true,true]})" << "\n\n"
                   << R"({"ids":[4,5],"loss_mask":[0,1]})" << "\n";
  const auto ex = trainer::read_pretokenized_jsonl(p);
  REQUIRE(ex.size() == 2);
  CHECK(ex[0].loss_mask == std::vector<uint8_t>{0, 1, 1});
  CHECK(ex[1].origin == p + ":3");
  std::ofstream(p) << R"({"ids":[1,2,3]})" << "\n";
  CHECK_THROWS_WITH(trainer::read_pretokenized_jsonl(p), Catch::Contains(":1: missing \"loss_mask\""));
  std::ofstream(p) << R"({"ids":[1,2,3],"loss_mask":[0,2,1]})" << "\n";
  CHECK_THROWS_WITH(trainer::read_pretokenized_jsonl(p), Catch::Contains("must hold 0/1"));
  std::ofstream(p) << R"({"ids":[1,2,3],"loss_mask":[0,1]})" << "\n";
  CHECK_THROWS_WITH(trainer::finalize_examples(trainer::read_pretokenized_jsonl(p), 8, 101,
                                               trainer::Overlong::kTruncate),
                    Catch::Contains("ids has 3 tokens but loss_mask has 2"));
  // A number past double's range is valid JSON syntax that nlohmann refuses
  // with out_of_range, not parse_error: it escaped every reader that caught
  // only parse errors (found by tests/fuzz/fuzz_training_files).
  std::ofstream(p) << R"({"ids":[1,2,9e999],"loss_mask":[0,1,1]})"
                   << "\n";
  CHECK_THROWS_AS(trainer::read_pretokenized_jsonl(p), InputError);
  CHECK_THROWS_WITH(trainer::read_pretokenized_jsonl(p), Catch::Contains("d.jsonl:1: not valid JSON"));
}

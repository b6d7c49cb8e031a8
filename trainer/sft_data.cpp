#include "trainer/sft_data.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <fstream>

#include "common/error.h"
#include "common/fs.h"
#include "common/settings_diff.h"
#include "trainer/batch_plan.h"
#include "trainer/chat_tokenizer.h"
#include "trainer/conversations.h"

namespace synthpert::trainer {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The first non-blank line of a JSONL file decides its kind (rejection
// records of `synthpert traces` without a trace aside: read_traces_jsonl).
bool is_pretokenized_jsonl(const std::string& path) {
  std::ifstream in(path);
  SP_CHECK_INPUT(in.good(), path, ": cannot open for reading");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const bool ids = line.find("\"ids\"") != std::string::npos;
    const bool messages = line.find("\"messages\"") != std::string::npos;
    if (!ids && !messages && line.find("\"reason\"") != std::string::npos) continue;
    SP_CHECK_INPUT(ids || messages, path,
                   ":1: a training JSONL line needs \"messages\" (traces) or \"ids\" + \"loss_mask\" "
                   "(pre-tokenized)");
    return ids && !messages;
  }
  return false;  // empty, or rejections only: read_traces_jsonl says which
}

}  // namespace

std::vector<SftExample> load_sft_examples(const DataSource& src, LoadCounts* counts) {
  LoadCounts local;
  LoadCounts& n = counts ? *counts : local;
  n = LoadCounts{};
  std::vector<Conversation> conversations;
  if (ends_with(src.path, ".csv")) {
    conversations = read_synthpert_csv(src.path);
  } else {
    SP_CHECK_INPUT(ends_with(src.path, ".jsonl") || ends_with(src.path, ".json"), src.path,
                   ": --data must be a .jsonl or .csv file");
    if (is_pretokenized_jsonl(src.path)) {
      SP_CHECK_INPUT(!src.keep, src.path, ": pre-tokenized examples carry no judge grades to select by");
      return read_pretokenized_jsonl(src.path);
    }
    conversations = read_traces_jsonl(src.path, &n.without_trace);
  }
  const size_t read = conversations.size();
  if (src.keep) {
    std::vector<Conversation> kept;
    for (auto& c : conversations)
      if (src.keep(c)) kept.push_back(std::move(c));
    conversations = std::move(kept);
    SP_CHECK_INPUT(!conversations.empty(), src.path, ": none of its ", read, " conversations is selected");
  }
  n.not_kept = static_cast<int64_t>(read - conversations.size());
  add_system_messages(conversations, src.system_prompt);
  return tokenize_conversations(conversations, src.tokenizer_dir);
}

std::string file_fingerprint(const std::string& path) { return content_digest(read_file(path)); }

std::pair<std::vector<SftExample>, std::vector<SftExample>> split_validation(
    std::vector<SftExample> examples, double fraction, uint64_t seed) {
  SP_CHECK_INPUT(fraction >= 0 && fraction < 1, "--val-fraction must be in [0, 1), got ", fraction);
  const auto n = static_cast<int64_t>(examples.size());
  const auto n_val = static_cast<int64_t>(std::ceil(fraction * static_cast<double>(n)));
  // Groups in order of first appearance: with distinct prompts, group i is
  // example i.
  std::map<std::vector<int64_t>, int64_t> group_of_prompt;
  // Text trained on every token has at most a BOS before its first target:
  // no questions to keep together, so each example is its own key
  // (identical examples still stay on one side).
  auto first_target_of = [](const SftExample& e) {
    return std::find(e.loss_mask.begin(), e.loss_mask.end(), 1) - e.loss_mask.begin();
  };
  const bool no_prompts =
      std::all_of(examples.begin(), examples.end(), [&](const SftExample& e) { return first_target_of(e) <= 1; });
  std::vector<std::vector<int64_t>> groups;
  for (int64_t i = 0; i < n; ++i) {
    const auto& e = examples[i];
    const auto first_target = first_target_of(e);
    std::vector<int64_t> prompt(e.ids.begin(), e.ids.begin() + (no_prompts ? e.ids.size() : first_target));
    const auto [it, fresh] = group_of_prompt.emplace(std::move(prompt), static_cast<int64_t>(groups.size()));
    if (fresh) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  // A stream of its own, so the split does not depend on the training order.
  const auto perm = seeded_permutation(static_cast<int64_t>(groups.size()), seed, 0x76616cull);
  std::vector<uint8_t> is_val(n, 0);
  int64_t taken = 0;
  for (size_t g = 0; g < perm.size() && taken < n_val; ++g)
    for (int64_t i : groups[perm[g]]) is_val[i] = 1, ++taken;
  SP_CHECK_INPUT(taken < n || n_val == 0, "--val-fraction ", fraction, " leaves no training examples out of ", n,
                 groups.size() < static_cast<size_t>(n) ? str_cat(" (they share ", groups.size(), " prompt(s), and a prompt's examples stay on one side)") : "");
  std::vector<SftExample> train, val;
  for (int64_t i = 0; i < n; ++i) (is_val[i] ? val : train).push_back(std::move(examples[i]));
  return {std::move(train), std::move(val)};
}

int64_t count_truncated(const std::vector<SftExample>& examples) {
  return std::count_if(examples.begin(), examples.end(), [](const SftExample& e) { return e.truncated; });
}

}  // namespace synthpert::trainer

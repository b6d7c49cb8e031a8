// Loads the training file of `synthpert train` into token examples.
//   *.jsonl with "ids" lines       pre-tokenized ({"ids","loss_mask"})
//   *.jsonl with "messages" lines  traces, through the model's chat template
//   *.csv                          SynthPert CSV, through the chat template
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "trainer/conversations.h"
#include "trainer/sft_example.h"

namespace synthpert::trainer {

struct DataSource {
  std::string path;
  std::string tokenizer_dir;   // tokenizer + chat template (text inputs)
  // The system message of text conversations that have none (CSV rows
  // always); empty function: no system message (trainer/system_prompt.h).
  SystemPromptFn system_prompt;
  // Which text conversations to train on (empty: all), e.g. by judge grade
  // (`train --accept`); may throw InputError naming the conversation.
  std::function<bool(const Conversation&)> keep;
};

// What load_sft_examples read but did not return.
struct LoadCounts {
  int64_t not_kept = 0;       // conversations `keep` refused
  int64_t without_trace = 0;  // rejection records holding no trace (read_traces_jsonl)
};

// Raw examples, before the length policy (finalize_examples); `counts`, when
// given, receives what was left out.
std::vector<SftExample> load_sft_examples(const DataSource& src, LoadCounts* counts = nullptr);

// A content hash of the file (FNV-1a 64, hex), for the run fingerprint.
std::string file_fingerprint(const std::string& path);

// Splits off at least ceil(fraction x N) examples for validation; returns
// (train, validation). fraction 0: no validation set. Examples with the same
// prompt (the tokens before the first target: several traces of one
// question) stay on one side, so near-duplicates never score val_loss; whole
// prompt groups are taken in a seeded permutation until the count is reached.
// When no example has more than one token before its first target (text
// trained on every token), each example is its own group.
std::pair<std::vector<SftExample>, std::vector<SftExample>> split_validation(
    std::vector<SftExample> examples, double fraction, uint64_t seed);

// Examples of `examples` cut to --max-seq-len.
int64_t count_truncated(const std::vector<SftExample>& examples);

}  // namespace synthpert::trainer

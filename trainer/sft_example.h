// Supervised fine-tuning examples: token ids plus a per-token loss mask that
// marks the tokens the model learns to produce (the assistant's turns).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace synthpert::trainer {

struct SftExample {
  std::vector<int64_t> ids;
  std::vector<uint8_t> loss_mask;  // 1: the token is a training target
  std::string origin;              // "FILE:LINE", for error messages
  bool truncated = false;          // cut to --max-seq-len by finalize_examples
};

// What to do with an example longer than --max-seq-len.
enum class Overlong { kTruncate, kDrop, kError };
Overlong parse_overlong(const std::string& name);  // "truncate" | "drop" | "error"

struct SftDataset {
  std::vector<SftExample> examples;
  int64_t truncated = 0;  // examples cut to max_seq_len
  int64_t dropped = 0;    // examples removed (--overlong drop)
};

// Reads pre-tokenized JSONL, one {"ids":[...],"loss_mask":[...]} per line
// (loss_mask as 0/1 integers or booleans, same length as ids).
std::vector<SftExample> read_pretokenized_jsonl(const std::string& path);

// Checks every example (non-empty, ids inside the vocabulary, mask of the same
// length with at least one target after the first token) and applies the
// overlong policy. Truncation keeps the first max_seq_len tokens; an example
// whose targets all lie beyond the cut is an error naming it.
SftDataset finalize_examples(std::vector<SftExample> examples, int64_t max_seq_len,
                             int64_t vocab_size, Overlong policy);

// Number of positions that predict a target token (loss_mask[t] for t >= 1).
int64_t count_targets(const SftExample& e);

}  // namespace synthpert::trainer

// The BPE model of tokenizer.json ("model": {"type": "BPE"}): vocabulary,
// ranked merges (strings "a b" or pairs ["a","b"]), unk token (fuse_unk),
// byte fallback (<0xXX> tokens), ignore_merges, continuing_subword_prefix and
// end_of_word_suffix. Words are merged lowest rank first, leftmost first on
// ties, with a heap over a linked list of symbols (O(n log n) per word), and
// results are cached per word.
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace synthpert::tokenizer {

// Open-addressing map from 64-bit keys to two ints: the merge table and the
// single-character table are probed for every symbol, and std::unordered_map's
// node chasing cost more than the merging itself.
class FlatPairMap {
 public:
  struct Entry {
    uint64_t key;
    int32_t a, b;
  };
  void reserve(size_t n);
  void insert(uint64_t key, int32_t a, int32_t b);
  const Entry* find(uint64_t key) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = (key * 0x9E3779B97F4A7C15ull) >> shift_;; i = (i + 1) & (slots_.size() - 1)) {
      const Entry& e = slots_[i];
      if (e.key == key) return &e;
      if (e.key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  std::vector<Entry> slots_;
  int shift_ = 64;
  size_t size_ = 0;
};

class BpeModel {
 public:
  explicit BpeModel(const nlohmann::json& config);

  // Appends the ids of one pre-tokenized word.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // Empty view for ids outside the vocabulary.
  std::string_view id_to_token(int64_t id) const;
  // One past the largest id in the vocabulary.
  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }

 private:
  void merge_symbols(std::vector<int32_t>& ids) const;
  void encode_chunk(std::string_view word, std::vector<int32_t>& out) const;
  void symbols_of(std::string_view word, std::vector<int32_t>& ids) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  FlatPairMap merges_;      // left id << 32 | right id -> (rank, merged id)
  FlatPairMap char_ids_;    // one character's UTF-8 bytes, packed -> (id, unused)
  std::optional<int32_t> unk_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::string prefix_, suffix_;
  int32_t byte_ids_[256];
  // Set when no vocabulary token holds "▁" right after another character than
  // "▁" (and "▁" is a token, with no continuing-subword prefix or end-of-word
  // suffix): then no merge can cross into a run of "▁", and words (a whole
  // Llama-2 section, which has no pre-tokenizer) are cut before each run,
  // exactly, into short cacheable chunks.
  bool split_at_metaspace_ = false;

  // Word cache; words are short and repeat, so most lookups hit.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace synthpert::tokenizer

#include "tokenizer/bpe_model.h"

#include <cstdio>
#include <algorithm>

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace synthpert::tokenizer {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 200000;

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// Packs a character of at most 4 UTF-8 bytes into a key that cannot collide
// with another character (the length is part of it).
uint64_t char_key(const char* p, size_t len) {
  uint64_t k = len;
  for (size_t i = 0; i < len; ++i) k = (k << 8) | static_cast<unsigned char>(p[i]);
  return k;
}

}  // namespace

void FlatPairMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  slots_.assign(cap, Entry{kEmpty, 0, 0});
  shift_ = 64;
  for (size_t c = cap; c > 1; c >>= 1) --shift_;
  size_ = 0;
}

void FlatPairMap::insert(uint64_t key, int32_t a, int32_t b) {
  if (2 * (size_ + 1) > slots_.size()) {
    std::vector<Entry> old = std::move(slots_);
    reserve(std::max<size_t>(size_ + 1, old.size()));
    for (const Entry& e : old)
      if (e.key != kEmpty) insert(e.key, e.a, e.b);
  }
  for (size_t i = (key * 0x9E3779B97F4A7C15ull) >> shift_;; i = (i + 1) & (slots_.size() - 1)) {
    Entry& e = slots_[i];
    if (e.key == key) {
      // The last insertion wins: a merge listed twice takes its later rank,
      // as the tokenizers library's map (and transformers.js's) keeps it.
      e.a = a;
      e.b = b;
      return;
    }
    if (e.key == kEmpty) {
      e = {key, a, b};
      ++size_;
      return;
    }
  }
}

BpeModel::BpeModel(const json& c) {
  const auto& vocab = c.at("vocab");
  SP_CHECK_INPUT(vocab.is_object(), "tokenizer.json: model.vocab must be an object of token -> id");
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const int64_t id = it.value().get<int64_t>();
    SP_CHECK_INPUT(id >= 0 && id < (int64_t{1} << 31), "tokenizer.json: vocab id ", id, " of '", it.key(), "' is out of range");
    vocab_.emplace(it.key(), static_cast<int32_t>(id));
    max_id = std::max(max_id, id);
  }
  // Ids are dense in every tokenizer.json seen; a few holes are fine, a
  // sparse table (an id of 2e9 in a 100-token vocab) is a broken file.
  SP_CHECK_INPUT(max_id < 2 * static_cast<int64_t>(vocab.size()) + 1024, "tokenizer.json: vocab id ", max_id,
                 " is far past the vocabulary's ", vocab.size(), " tokens");
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [tok, id] : vocab_) {
    id_to_token_[id] = tok;
    if (!tok.empty() && tok.size() <= 4 && utf8_char_len(static_cast<unsigned char>(tok[0])) == tok.size())
      char_ids_.insert(char_key(tok.data(), tok.size()), id, 0);
  }

  if (c.contains("continuing_subword_prefix") && c["continuing_subword_prefix"].is_string())
    prefix_ = c["continuing_subword_prefix"].get<std::string>();
  if (c.contains("end_of_word_suffix") && c["end_of_word_suffix"].is_string())
    suffix_ = c["end_of_word_suffix"].get<std::string>();
  if (c.contains("unk_token") && c["unk_token"].is_string()) {
    const auto it = vocab_.find(c["unk_token"].get<std::string>());
    SP_CHECK_INPUT(it != vocab_.end(), "tokenizer.json: unk_token '", c["unk_token"].get<std::string>(), "' is not in the vocab");
    unk_ = it->second;
  }
  {
    // Does any token hold "▁" right after a character that is not "▁"?
    const std::string meta = "\xE2\x96\x81";
    bool starts = false, crosses = false;
    for (const auto& [tok, id] : vocab_) {
      starts = starts || tok.compare(0, meta.size(), meta) == 0;
      for (size_t p = tok.find(meta, 1); p != std::string::npos && !crosses; p = tok.find(meta, p + 1))
        crosses = p < meta.size() || tok.compare(p - meta.size(), meta.size(), meta) != 0;
    }
    // Cutting a word changes which characters are first or last, so it is
    // exact only without a continuing-subword prefix or end-of-word suffix;
    // and "▁" itself must be a token, so that an unk held back before a cut
    // is released there in the whole word too (see symbols_of).
    split_at_metaspace_ = starts && !crosses && prefix_.empty() && suffix_.empty() && vocab_.count(meta) > 0;
  }
  fuse_unk_ = c.value("fuse_unk", false);
  byte_fallback_ = c.value("byte_fallback", false);
  ignore_merges_ = c.value("ignore_merges", false);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    const auto it = vocab_.find(name);
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }

  const auto& merges = c.at("merges");
  SP_CHECK_INPUT(merges.is_array(), "tokenizer.json: model.merges must be an array");
  merges_.reserve(merges.size());
  int32_t rank = 0;
  for (const auto& m : merges) {
    std::string a, b;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      SP_CHECK_INPUT(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos,
                     "tokenizer.json: merge ", rank, " '", s, "' is not two tokens separated by one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {
      SP_CHECK_INPUT(m.is_array() && m.size() == 2, "tokenizer.json: merge ", rank, " must be \"a b\" or [a, b]");
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    }
    // The right part of a merge carries the continuing-subword prefix, which
    // the merged token does not repeat.
    const std::string merged = a + (prefix_.empty() || b.compare(0, prefix_.size(), prefix_) != 0 ? b : b.substr(prefix_.size()));
    const auto ia = vocab_.find(a), ib = vocab_.find(b), im = vocab_.find(merged);
    SP_CHECK_INPUT(ia != vocab_.end() && ib != vocab_.end() && im != vocab_.end(),
                   "tokenizer.json: merge ", rank, " ('", a, "', '", b, "') uses a token missing from the vocab");
    merges_.insert(pair_key(ia->second, ib->second), rank, im->second);
    ++rank;
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

std::string_view BpeModel::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return id_to_token_[static_cast<size_t>(id)];
}

// Initial symbols: one per character (prefix on all but the first, suffix on
// the last); unknown characters become byte tokens or unk, or are dropped
// when the model has neither (as Hugging Face does).
//
// Two details follow Hugging Face's BPE::merge_word exactly:
// - byte fallback spells the looked-up string, so a non-first character
//   "é" under prefix "##" becomes <0x23><0x23><0xC3><0xA9> (and the suffix's
//   bytes follow a last character); if any of those byte tokens is missing
//   the character is unk;
// - an unk is held back until the next character found in the vocabulary,
//   the next unk (fused into it with fuse_unk) or the end of the word; byte
//   tokens in between do not release it, so they come first ("qz" with q
//   unknown and z byte-fallen gives <0x7A> <unk>).
void BpeModel::symbols_of(std::string_view word, std::vector<int32_t>& ids) const {
  std::string key;
  bool unk_pending = false;
  for (size_t i = 0; i < word.size();) {
    const size_t len = std::min(utf8_char_len(static_cast<unsigned char>(word[i])), word.size() - i);
    const bool first = i == 0, last = i + len >= word.size();
    const bool plain = (first || prefix_.empty()) && (!last || suffix_.empty());
    int32_t id = -1;
    if (plain) {
      if (const auto* e = char_ids_.find(char_key(word.data() + i, len))) id = e->a;
    } else {
      key.clear();
      if (!first) key += prefix_;
      key.append(word.data() + i, len);
      if (last) key += suffix_;
      const auto it = vocab_.find(key);
      if (it != vocab_.end()) id = it->second;
    }
    i += len;
    if (id >= 0) {
      if (unk_pending) ids.push_back(*unk_);
      unk_pending = false;
      ids.push_back(id);
      continue;
    }
    if (byte_fallback_) {
      const std::string_view spelled = plain ? word.substr(i - len, len) : std::string_view(key);
      bool all = true;
      for (const char b : spelled) all = all && byte_ids_[static_cast<unsigned char>(b)] >= 0;
      if (all) {
        for (const char b : spelled) ids.push_back(byte_ids_[static_cast<unsigned char>(b)]);
        continue;
      }
    }
    if (unk_) {
      if (unk_pending && !fuse_unk_) ids.push_back(*unk_);
      unk_pending = true;
    }
  }
  if (unk_pending) ids.push_back(*unk_);
}

namespace {

// Candidate merge of symbol `left` with its right neighbour; `left_id` and
// `right_id` detect candidates made stale by an earlier merge.
struct Cand {
  int32_t rank, left, left_id, right_id, merged;
};
// Min-heap order: lowest rank, then leftmost.
bool later(const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.left > b.left; }

// Per-thread scratch so merging a word allocates nothing in steady state.
struct MergeScratch {
  std::vector<int32_t> prev, next;
  std::vector<char> alive;
  std::vector<Cand> heap;
};

}  // namespace

void BpeModel::merge_symbols(std::vector<int32_t>& ids) const {
  const size_t n = ids.size();
  if (n < 2) return;
  thread_local MergeScratch scratch;
  auto& prev = scratch.prev;
  auto& next = scratch.next;
  auto& alive = scratch.alive;
  auto& heap = scratch.heap;
  prev.resize(n);
  next.resize(n);
  alive.assign(n, 1);
  heap.clear();
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  auto push = [&](int32_t left) {
    const int32_t right = next[left];
    if (right < 0) return;
    if (const auto* m = merges_.find(pair_key(ids[left], ids[right]))) {
      heap.push_back({m->a, left, ids[left], ids[right], m->b});
      std::push_heap(heap.begin(), heap.end(), later);
    }
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Cand c = heap.back();
    heap.pop_back();
    const int32_t right = next[c.left];
    if (!alive[c.left] || right < 0 || ids[c.left] != c.left_id || ids[right] != c.right_id) continue;
    ids[c.left] = c.merged;
    alive[right] = 0;
    next[c.left] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.left;
    if (prev[c.left] >= 0) push(prev[c.left]);
    push(c.left);
  }
  size_t w = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) ids[w++] = ids[i];
  ids.resize(w);
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (split_at_metaspace_ && !ignore_merges_) {
    // Exact: see split_at_metaspace_.
    static constexpr std::string_view kMeta = "\xE2\x96\x81";
    size_t start = 0;
    for (size_t p = word.find(kMeta, 1); p != std::string_view::npos; p = word.find(kMeta, p + kMeta.size())) {
      if (p >= kMeta.size() && word.compare(p - kMeta.size(), kMeta.size(), kMeta) == 0) continue;  // inside a run of "▁"
      encode_chunk(word.substr(start, p - start), out);
      start = p;
    }
    encode_chunk(word.substr(start), out);
    return;
  }
  encode_chunk(word, out);
}

void BpeModel::encode_chunk(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const auto it = vocab_.find(std::string(word));
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  symbols_of(word, ids);
  merge_symbols(ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::move(key), std::move(ids));
  }
}

}  // namespace synthpert::tokenizer

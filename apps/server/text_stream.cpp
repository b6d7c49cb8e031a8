#include "apps/server/text_stream.h"

#include <algorithm>

namespace synthpert::server {
namespace {

constexpr const char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Tokens past the committed ones that a window may hold while its text ends
// in U+FFFD, before the settled part of them is committed: a character is
// at most 4 bytes, so more tokens than this are mostly a model writing bytes
// that are not UTF-8, which would otherwise widen every later window.
constexpr size_t kMaxHeldTokens = 8;

bool ends_with(const std::string& s, size_t end, const std::string& suffix) {
  return end >= suffix.size() && s.compare(end - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

TextStream::TextStream(Decode decode, std::vector<std::string> stops)
    : decode_(std::move(decode)), stops_(std::move(stops)) {}

// Where the releasable text of `full` ends: before a trailing run of U+FFFD
// (an unfinished character) and before a suffix that is a proper prefix of a
// stop string.
size_t TextStream::safe_end(const std::string& full) const {
  size_t end = full.size();
  // Committed text is final, U+FFFD or not (settle_held); stopping there
  // also keeps a long run of them from being walked at every token.
  while (end > committed_ && ends_with(full, end, kReplacement)) end -= sizeof(kReplacement) - 1;
  size_t hold = 0;
  for (const auto& stop : stops_)
    for (size_t k = std::min(stop.size() - 1, end); k > hold; --k)
      if (full.compare(end - k, k, stop, 0, k) == 0) {
        hold = k;
        break;
      }
  return end - hold;
}

std::string TextStream::decode_range(size_t begin, size_t end) const {
  if (begin == end) return "";
  return decode_(std::vector<int64_t>(tokens_.begin() + static_cast<std::ptrdiff_t>(begin),
                                      tokens_.begin() + static_cast<std::ptrdiff_t>(end)));
}

void TextStream::commit(bool final) {
  if (read_offset_ == tokens_.size()) return;
  const std::string before = decode_range(prefix_offset_, read_offset_);
  const std::string window = decode_range(prefix_offset_, tokens_.size());
  decoded_.resize(committed_);  // drop the last uncommitted tail
  if (window == before && read_offset_ > 0) {
    // The uncommitted tokens have no text (special tokens, ids past the
    // vocabulary): dropped, so that a run of them does not widen every
    // later window. A lossy decoder writes an unfinished character as
    // U+FFFD, never as nothing, so no later token can give them text. Not
    // before the first commit: a decoder that strips the text's first space
    // gives the first token no text of its own, but it does count.
    tokens_.resize(read_offset_);
    return;
  }
  // A decoder that rewrote the committed part of its window (it should not)
  // adds nothing until it agrees again.
  if (window.size() <= before.size() || window.compare(0, before.size(), before) != 0) return;
  decoded_.append(window, before.size(), std::string::npos);
  // Text ending in an unfinished character stays an uncommitted tail: the
  // token that completes it decodes with the same window. What comes before
  // that character can already be shown (safe_end).
  if (!final && ends_with(window, window.size(), kReplacement)) {
    if (tokens_.size() - read_offset_ > kMaxHeldTokens) settle_held(window, before.size());
    return;
  }
  committed_ = decoded_.size();
  prefix_offset_ = read_offset_;
  read_offset_ = tokens_.size();
}

void TextStream::settle_held(const std::string& window, size_t before_size) {
  const size_t newest = tokens_.size() - 1;
  const std::string settled = decode_range(prefix_offset_, newest);
  if (settled == window) {
    // The newest token added nothing; one that has no text alone either
    // (a special token) never will: dropped, as in commit().
    if (decode_range(newest, newest + 1).empty()) tokens_.pop_back();
    return;
  }
  // Text past the older tokens' own means their unfinished character has
  // ended: the next bytes either completed it (then their U+FFFD would not
  // be a prefix of the window) or broke it, and a broken one stays U+FFFD
  // (each maximal invalid subpart is one). The older tokens are committed,
  // their U+FFFD included; the newest stays the tail. The next window starts
  // at the first of them, which has text of its own (the next to last may
  // be a token without text, and a window starting there would lose a
  // leading space that a sentencepiece decoder strips from its first piece).
  if (settled.size() < before_size || window.compare(0, settled.size(), settled) != 0) return;
  committed_ += settled.size() - before_size;
  prefix_offset_ = read_offset_;
  read_offset_ = newest;
}

bool TextStream::commit_keeps_released(bool final) {
  // Text before committed_ is only ever appended to, so only what was
  // released past it (part of the last tail) needs comparing: O(window),
  // where comparing all released text would make each token O(reply).
  const size_t stable = committed_;
  commit(final);
  if (released_.size() <= stable) return true;
  const size_t n = released_.size() - stable;
  return decoded_.size() >= released_.size() && decoded_.compare(stable, n, released_, stable, n) == 0;
}

std::string TextStream::push(int64_t token) {
  if (stopped_) return "";
  tokens_.push_back(token);
  if (!commit_keeps_released(false)) return "";
  const std::string& full = decoded_;
  size_t stop_at = std::string::npos;
  for (const auto& stop : stops_) {
    // Only where a match could end in the new text: everything released was
    // already checked, and a match inside it would have stopped earlier.
    const size_t from = released_.size() >= stop.size() ? released_.size() - stop.size() + 1 : 0;
    stop_at = std::min(stop_at, full.find(stop, from));
  }
  size_t end = stop_at;
  if (stop_at != std::string::npos) stopped_ = true;
  else end = safe_end(full);
  if (end <= released_.size()) return "";
  std::string fresh = full.substr(released_.size(), end - released_.size());
  released_ += fresh;
  return fresh;
}

std::string TextStream::finish() {
  if (stopped_ || tokens_.empty()) return "";
  if (!commit_keeps_released(true) || decoded_.size() <= released_.size()) return "";
  std::string rest = decoded_.substr(released_.size());
  released_ = decoded_;
  return rest;
}

}  // namespace synthpert::server

// Turns generated tokens into text as they arrive, for streaming and for stop
// strings. Two things make this more than decoding each token alone:
//   - a character can span tokens (byte-level BPE, byte-fallback pieces), so
//     text ending in an incomplete UTF-8 sequence (decoded as U+FFFD) is held
//     back until the next token completes it;
//   - a stop string can span tokens, so text that could still become the start
//     of a stop string is held back until it cannot.
// Decoding is incremental: each token decodes a short window of the latest
// tokens (from the one before the last committed text on), and the window's
// text beyond that of its already-committed tokens is the new text. A window,
// rather than the token alone, keeps decoders that treat the first piece
// differently (sentencepiece's leading space) right; the whole list is never
// decoded again, so a reply of n tokens costs O(n), not O(n^2). Tokens
// without text are dropped from the window, and a run of tokens whose text
// stays unfinished (bytes that are not UTF-8) is committed in steps, so
// neither widens the window. (Tokens without text before any text still do.)
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace synthpert::server {

class TextStream {
 public:
  using Decode = std::function<std::string(const std::vector<int64_t>&)>;
  TextStream(Decode decode, std::vector<std::string> stops);

  // Adds a token; returns the text that became safe to show (may be empty).
  std::string push(int64_t token);
  // True once a stop string appeared: the text ends before it and push adds nothing.
  bool stopped() const { return stopped_; }
  // At the end of generation: returns what was held back (nothing after a stop).
  std::string finish();
  // All text released so far.
  const std::string& text() const { return released_; }

 private:
  size_t safe_end(const std::string& full) const;
  // Sets decoded_ to the text of all tokens: the text of the tokens past
  // read_offset_ is committed unless it ends in an unfinished character
  // (always when `final`), else kept as a tail that the next call replaces.
  void commit(bool final);
  // commit, then whether the text released so far is still a prefix of it
  // (a decoder that rewrote its past releases nothing until it agrees again).
  bool commit_keeps_released(bool final);
  // commit's bound on a window whose text keeps ending in U+FFFD: commits
  // all but the newest token once their text is settled.
  void settle_held(const std::string& window, size_t before_size);
  std::string decode_range(size_t begin, size_t end) const;

  Decode decode_;
  std::vector<std::string> stops_;
  std::vector<int64_t> tokens_;
  // tokens_[prefix_offset_, read_offset_) are the window's committed tokens;
  // decoded_[0, committed_) is the text of tokens_[0, read_offset_).
  size_t prefix_offset_ = 0, read_offset_ = 0, committed_ = 0;
  std::string decoded_, released_;
  bool stopped_ = false;
};

}  // namespace synthpert::server

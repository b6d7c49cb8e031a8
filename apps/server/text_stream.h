// Turns generated tokens into text as they arrive, for streaming and for stop
// strings. Two things make this more than decoding each token alone:
//   - a character can span tokens (byte-level BPE, byte-fallback pieces), so
//     text ending in an incomplete UTF-8 sequence (decoded as U+FFFD) is held
//     back until the next token completes it;
//   - a stop string can span tokens, so text that could still become the start
//     of a stop string is held back until it cannot.
// The whole token list is decoded each time (decoders such as sentencepiece's
// treat the first piece differently), and only the new suffix is released.
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

  Decode decode_;
  std::vector<std::string> stops_;
  std::vector<int64_t> tokens_;
  std::string released_;
  bool stopped_ = false;
};

}  // namespace synthpert::server

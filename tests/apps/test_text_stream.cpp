// TextStream against a decoder whose tokens are byte strings chosen to split
// characters and stop strings across tokens; expected texts are written out by
// hand from those bytes.
#include <catch2/catch.hpp>

#include "apps/server/text_stream.h"

namespace synthpert::server {
namespace {

// Token i decodes to kPieces[i]; the joined bytes are re-read as UTF-8 with
// every incomplete sequence replaced by U+FFFD, as a byte-level decoder does.
const std::vector<std::string> kPieces = {
    "Hel", "lo", " w\xC3",  // "é" = C3 A9 split over tokens 2 and 3
    "\xA9rld", "</", "answer>", "!", "\xE2\x82",  // "€" = E2 82 AC: token 7 alone is incomplete
    "\xAC"};

std::string lossy_utf8(const std::string& bytes) {
  std::string out;
  size_t i = 0;
  while (i < bytes.size()) {
    const unsigned char c = bytes[i];
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
    bool ok = i + len <= bytes.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(bytes[i + k]) >> 6) == 2;
    if (ok) {
      out += bytes.substr(i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
      while (i < bytes.size() && (static_cast<unsigned char>(bytes[i]) >> 6) == 2) ++i;
    }
  }
  return out;
}

std::string decode(const std::vector<int64_t>& ids) {
  std::string bytes;
  for (auto id : ids) bytes += kPieces[id];
  return lossy_utf8(bytes);
}

std::vector<std::string> run(TextStream& s, const std::vector<int64_t>& ids) {
  std::vector<std::string> out;
  for (auto id : ids) out.push_back(s.push(id));
  out.push_back(s.finish());
  return out;
}

TEST_CASE("text stream holds back split characters until they complete", "[server]") {
  TextStream s(decode, {});
  const auto pieces = run(s, {0, 1, 2, 3, 7, 8});
  CHECK(pieces == std::vector<std::string>{"Hel", "lo", " w", "\xC3\xA9rld", "", "\xE2\x82\xAC", ""});
  CHECK(s.text() == "Hello w\xC3\xA9rld\xE2\x82\xAC");
  CHECK_FALSE(s.stopped());
}

TEST_CASE("text stream ends before a stop string that spans tokens", "[server]") {
  TextStream s(decode, {"</answer>"});
  const auto pieces = run(s, {0, 1, 4, 5, 6});
  // "</" could start the stop string, so it waits; "answer>" completes it.
  CHECK(pieces == std::vector<std::string>{"Hel", "lo", "", "", "", ""});
  CHECK(s.stopped());
  CHECK(s.text() == "Hello");
}

TEST_CASE("text stream releases a held prefix when the stop string does not follow", "[server]") {
  TextStream s(decode, {"</stop>"});
  const auto pieces = run(s, {0, 4, 6});
  CHECK(pieces == std::vector<std::string>{"Hel", "", "</!", ""});
  CHECK_FALSE(s.stopped());
  // Held back at the end of generation: released by finish.
  TextStream t(decode, {"</stop>"});
  CHECK(run(t, {0, 4}) == std::vector<std::string>{"Hel", "", "</"});
}

TEST_CASE("text stream finds the earliest of several stop strings, also inside one token", "[server]") {
  TextStream s(decode, {"rld", "o w"});
  CHECK(run(s, {0, 1, 2, 3}) == std::vector<std::string>{"Hel", "l", "", "", ""});
  CHECK(s.text() == "Hell");
  CHECK(s.stopped());
  TextStream first(decode, {"Hel"});
  CHECK(first.push(0).empty());
  CHECK(first.stopped());
}

}  // namespace
}  // namespace synthpert::server

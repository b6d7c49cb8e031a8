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

TEST_CASE("text stream of any token sequence adds up to the whole decode, decoding O(n) tokens", "[server]") {
  // Pseudo-random sequences over the pieces (split characters, lone
  // continuation bytes after an unfinished one, stop-like text): what is
  // released, then finished, is the decode of all tokens at once.
  uint64_t state = 42;
  size_t decoded_ids = 0;
  auto counting = [&](const std::vector<int64_t>& ids) {
    decoded_ids += ids.size();
    return decode(ids);
  };
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<int64_t> ids;
    const int n = 1 + trial % 40;
    for (int i = 0; i < n; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      ids.push_back(static_cast<int64_t>((state >> 33) % kPieces.size()));
    }
    TextStream s(counting, {});
    std::string joined;
    for (const auto& piece : run(s, ids)) joined += piece;
    INFO("trial " << trial);
    CHECK(joined == decode(ids));
    CHECK(s.text() == decode(ids));
  }
  // A long reply: each push decodes a window of a few tokens, not the list.
  decoded_ids = 0;
  TextStream s(counting, {"</answer>"});
  const int n = 5000;
  for (int i = 0; i < n; ++i) s.push(i % 2);  // "Hel", "lo", ...
  s.finish();
  CHECK(decoded_ids <= size_t(4 * n));
  CHECK(s.text().size() == size_t(n / 2 * 5));
}

// Pieces for the windows' bound: token 1 has no text (a special token, or an
// id past the vocabulary), 2 and 4 are bytes that never become a character.
const std::vector<std::string> kOddPieces = {"Hel", "", "\xE2\x82", "\xAC", "\xFF", "lo"};

std::string decode_odd(const std::vector<int64_t>& ids) {
  std::string bytes;
  for (auto id : ids) bytes += kOddPieces[id];
  return lossy_utf8(bytes);
}

TEST_CASE("text stream: tokens without text or with unfinished bytes do not widen the window", "[server]") {
  size_t decoded_ids = 0, widest = 0;
  auto counting = [&](const std::vector<int64_t>& ids) {
    decoded_ids += ids.size();
    widest = std::max(widest, ids.size());
    return decode_odd(ids);
  };
  const int n = 5000;
  auto check_stream = [&](const std::vector<int64_t>& ids) {
    decoded_ids = widest = 0;
    TextStream s(counting, {});
    std::string joined;
    for (const auto& piece : run(s, ids)) joined += piece;
    CHECK(joined == decode_odd(ids));
    // At most 8 held tokens after at most 8 settled ones (and one more to
    // see whether the newest added anything). Without the bound the windows
    // grow with the run: 5,000 tokens wide, some 12.5 million decoded in all.
    CHECK(widest <= 18);
    CHECK(decoded_ids <= size_t(32 * ids.size()));
  };
  SECTION("a long run of tokens without text") {
    std::vector<int64_t> ids = {0};
    ids.insert(ids.end(), n, 1);
    ids.push_back(5);
    check_stream(ids);  // "Hello"
  }
  SECTION("a long run of bytes that stay unfinished, then the one that finishes the last") {
    // E2 82 E2 82 ...: each pair is broken by the next lead byte, so the text
    // is U+FFFD after U+FFFD, ending in an unfinished character until AC.
    std::vector<int64_t> ids = {0};
    ids.insert(ids.end(), n, 2);
    ids.push_back(3);
    check_stream(ids);
    const std::string text = decode_odd(ids);
    CHECK(text.substr(text.size() - 3) == "\xE2\x82\xAC");
  }
  SECTION("stray bytes, and tokens without text after an unfinished character") {
    std::vector<int64_t> ids = {0};
    for (int i = 0; i < n; ++i) ids.push_back(i % 3 == 0 ? 4 : i % 3 == 1 ? 2 : 1);
    ids.push_back(5);
    check_stream(ids);
  }
  SECTION("pseudo-random sequences add up to the whole decode") {
    uint64_t state = 7;
    for (int trial = 0; trial < 300; ++trial) {
      std::vector<int64_t> ids;
      const int len = 1 + trial % 60;
      for (int i = 0; i < len; ++i) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        // Tokens without text half the time, so runs of them are common.
        const uint64_t r = (state >> 33) % 10;
        ids.push_back(r < 5 ? 1 : static_cast<int64_t>(r - 5) % 6);
      }
      INFO("trial " << trial);
      TextStream s(decode_odd, {});
      std::string joined;
      for (const auto& piece : run(s, ids)) joined += piece;
      CHECK(joined == decode_odd(ids));
    }
  }
}

}  // namespace
}  // namespace synthpert::server

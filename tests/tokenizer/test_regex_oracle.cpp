// Regex (PCRE2 after oniguruma_to_pcre2) against Oniguruma itself, the
// engine Hugging Face tokenizers compile tokenizer.json patterns with: the
// same non-empty matches, at the same byte offsets, over real tokenizers'
// pre-tokenizer patterns and every construct the two syntaxes spell apart.
#include <catch2/catch.hpp>

#include <memory>

#include "common/error.h"
#include "tests/tokenizer/oracle_util.h"
#include "tests/tokenizer/text_corpus.h"
#include "tokenizer/regex.h"

using synthpert::tokenizer::Regex;
using namespace synthpert::test;
using json = nlohmann::json;

namespace {

// A match as "start-end:text", so a failure shows what each engine matched.
using Spans = std::vector<std::string>;

std::string span(const std::string& text, size_t b, size_t e) {
  return std::to_string(b) + "-" + std::to_string(e) + ":" + text.substr(b, e - b);
}

Spans our_matches(const Regex& re, const std::string& text) {
  Spans out;
  re.for_each_match(text, [&](size_t b, size_t e) { out.push_back(span(text, b, e)); });
  return out;
}

std::vector<std::string> regex_texts() {
  std::vector<std::string> t = {
      "Knockdown of TP53 in K562 cells: is MDM2 upregulated?",
      "hex: 0xDEADbeef, 9fA; not hex: g G \xC3\xA9",  // \h is [0-9A-Fa-f]
      "tab\there\vvtab\fform\rcr\r\nlf\n \xC2\x85nel \xE2\x80\xA8ls",  // \v, \s, \R
      "nbsp\xC2\xA0thin\xE2\x80\x89ideo\xE3\x80\x80mongol\xE1\xA0\x8E" "end",  // U+180E is no space in Oniguruma
      "caf\xC3\xA9 na\xC3\xAFve \xC3\x89" "cole stra\xC3\x9F" "e \xC5\xBFt K\xE2\x84\xAA",
      "digits \xD9\xA3\xD9\xA4 \xE2\x85\xAB roman \xC2\xB2 super 12345678",
      "\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97 \xE3\x81\x8B\xE3\x81\xAA \xEA\xB0\x80 emoji \xF0\x9F\xA7\xAC\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",
      "combining e\xCC\x81 and \xCD\x85 iota; punct \xC2\xA1\xC2\xBF\xE2\x80\x94\xE2\x80\x9Cq\xE2\x80\x9D $+<=>^`|~",
      "it's they're we've I'm you'll he'd IT'S   trailing   \n\n  \n",
      "",
      " ",
      "a",
      "line one\nline two\n\nend",
  };
  for (std::string& s : oracle_strings(24, 7, {"<|eot_id|>", "<s>"}, true)) t.push_back(std::move(s));
  return t;
}

// Pre-tokenizer patterns of real tokenizer.json files, and one pattern per
// construct that Oniguruma and PCRE2 read differently (or might).
const std::vector<std::string> kPatterns = {
    // GPT-2 / RoBERTa ByteLevel.
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    // Llama 3.
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    // Qwen2 / Qwen3.
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    // tiktoken cl100k and o200k written into tokenizer.json.
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+|\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s",
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    // DeepSeek-style pieces.
    "\\p{N}{1,3}",
    "[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+",
    "\\s?[!-/:-~\xEF\xBC\x81-\xEF\xBC\x8F\xEF\xBC\x9A-\xEF\xBD\x9E\xE2\x80\x98-\xE2\x80\x9F\xE3\x80\x80-\xE3\x80\x82]+",
    "\\s+$",
    // Escapes that differ: \h \H (hex digits), \v (vertical tab), \uHHHH.
    "\\h+", "\\H+", "[\\h_]+", "[^\\h\\s]+", "[\\H]+", "[^\\H]+", "x\\h{2}",
    "\\v", "[\\v\\t]+", "\\u00e9|\\u2581", "[\\u00e0-\\u00ff]+",
    // White space in and out of classes; \R; POSIX classes.
    "\\s+", "\\S+", "[\\s,]+", "[^\\S\\n]+", "\\R", "[[:alpha:]]+", "[[:punct:]]+", "[[:space:]]+",
    // Intervals, lazy and possessive forms, anchors.
    "\\p{N}{1,3}+", "[a-z]{2}?", "x{,3}", "\\w{2,}", "^\\s+|\\s+$", "^.", ".$",
    // Case folding, words, digits.
    "(?i)stra\xC3\x9F" "e|k\\w+", "\\b\\w+\\b", "\\d+", "\\W+", "(?i:[sdmt])", "\\B.", ".\\b",
    // Classes mixing sets with their complements, '-' after a set, POSIX names.
    "[\\W\\d]+", "[^\\W\\d]+", "[^\\S\\n]+", "[^\\H\\W]+", "[\\w-]+", "[\\h-z]+", "[[:^alpha:][:digit:]]+",
    "[[:graph:]]+", "[[:print:]]+", "[^[:print:]]+", "[[:^word:]]+", "[[:alnum:]_]+", "[[:upper:]][[:lower:]]+", "[[:blank:]]+",
    "\\p{Word}+", "\\P{Alpha}+", "[\\p{Punct}\\p{^Alnum}]+", "\\p{XDigit}+", "\\p{Graph}+", "\\p{Han}+",
    // Oniguruma refuses these: so must we.
    "[\\h-z]+", "[\\w-\\d]", "[[:alpha:]-z]", "a{2",
};

}  // namespace

TEST_CASE("regex: the same matches as Oniguruma (vscode-oniguruma) on real and edge patterns", "[oracle]") {
  const std::vector<std::string> texts = regex_texts();
  json input = {{"patterns", kPatterns}, {"texts_hex", json::array()}};
  for (const auto& t : texts) input["texts_hex"].push_back(to_hex(t));
  const json out = run_node("regex.js", input);
  REQUIRE(out["results"].size() == kPatterns.size());
  for (size_t p = 0; p < kPatterns.size(); ++p) {
    const json& r = out["results"][p];
    INFO("pattern " << kPatterns[p]);
    if (r.contains("error")) {
      INFO("Oniguruma: " << r["error"]);
      CHECK_THROWS_AS(Regex(kPatterns[p], "test"), synthpert::InputError);
      continue;
    }
    std::unique_ptr<Regex> re;
    CHECK_NOTHROW(re = std::make_unique<Regex>(kPatterns[p], "test"));
    if (!re) continue;
    for (size_t i = 0; i < texts.size(); ++i) {
      INFO("text " << i << ": " << texts[i]);
      Spans want;
      for (const auto& m : r["matches"][i]) want.push_back(span(texts[i], m[0].get<size_t>(), m[1].get<size_t>()));
      CHECK(our_matches(*re, texts[i]) == want);
    }
  }
}

// Oniguruma's class set operations have no PCRE2 spelling: refused by name
// rather than read as literals.
TEST_CASE("regex: nested classes and class intersection are refused", "[tokenizer]") {
  CHECK_THROWS_WITH(Regex("[a[bc]]", "test"), Catch::Contains("a class nested in a class"));
  CHECK_THROWS_WITH(Regex("[a-z&&[^aeiou]]", "test"), Catch::Contains("class intersection"));
  CHECK_THROWS_WITH(Regex("[ab", "test"), Catch::Contains("never closed"));
  // A POSIX bracket is no nested class; a literal '[' needs its escape.
  CHECK_NOTHROW(Regex("[[:alpha:]\\[]", "test"));
}

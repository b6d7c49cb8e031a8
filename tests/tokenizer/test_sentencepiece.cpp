// tokenizer.model folders against the sentencepiece command-line tools:
// models trained with spm_train in the test, ids compared with spm_encode,
// text with spm_decode.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "common/fs.h"
#include "tests/tokenizer/oracle_util.h"
#include "tests/tokenizer/text_corpus.h"
#include "tokenizer/tokenizer.h"

using synthpert::tokenizer::Tokenizer;
using namespace synthpert::test;

namespace {

std::vector<std::string> corpus_lines(size_t n, uint64_t seed) {
  std::vector<std::string> lines;
  for (const auto& s : oracle_strings(n, seed, {"<s>", "</s>"}, /*valid_utf8_only=*/true)) {
    std::stringstream ss(s);
    for (std::string line; std::getline(ss, line);)
      if (line.find('\r') == std::string::npos && !line.empty()) lines.push_back(line);
  }
  return lines;
}

void run(const std::string& cmd) {
  INFO(cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);
}

std::vector<std::vector<int64_t>> read_id_lines(const std::string& path) {
  std::vector<std::vector<int64_t>> out;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    std::vector<int64_t> ids;
    std::stringstream ss(line);
    for (int64_t id; ss >> id;) ids.push_back(id);
    out.push_back(ids);
  }
  return out;
}

// Trains a model of `type` in a fresh folder and returns the folder.
std::string train(const std::string& type, const std::string& extra) {
  const std::string dir = scratch_dir("spm-" + type);
  std::string corpus;
  for (const auto& l : corpus_lines(3000, 5)) corpus += l + "\n";
  synthpert::write_file_atomic(dir + "/corpus.txt", corpus);
  run("spm_train --input='" + dir + "/corpus.txt' --model_prefix='" + dir + "/tokenizer' --vocab_size=600 --model_type=" + type +
      " --character_coverage=1.0 --minloglevel=2 " + extra + " > /dev/null 2>&1");
  return dir;
}

void compare_with_cli(const std::string& dir) {
  const std::vector<std::string> lines = corpus_lines(1500, 77);
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  synthpert::write_file_atomic(dir + "/eval.txt", text);
  run("spm_encode --model='" + dir + "/tokenizer.model' --output_format=id < '" + dir + "/eval.txt' > '" + dir + "/ids.txt'");
  run("spm_decode --model='" + dir + "/tokenizer.model' --input_format=id < '" + dir + "/ids.txt' > '" + dir + "/decoded.txt'");
  const auto expected = read_id_lines(dir + "/ids.txt");
  std::vector<std::string> decoded;
  {
    std::ifstream f(dir + "/decoded.txt");
    for (std::string l; std::getline(f, l);) decoded.push_back(l);
  }
  REQUIRE(expected.size() == lines.size());
  REQUIRE(decoded.size() == lines.size());
  const auto tok = Tokenizer::load(dir);
  CHECK(tok->kind() == "sentencepiece");
  size_t mismatches = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    INFO("line " << i << ": " << lines[i]);
    // spm_encode does not split out control tokens; lines with "<s>" text are compared piecewise below.
    if (lines[i].find("<s>") != std::string::npos || lines[i].find("</s>") != std::string::npos) continue;
    const auto ours = tok->encode(lines[i], false);
    mismatches += ours != expected[i];
    CHECK(ours == expected[i]);
    CHECK(tok->decode(ours) == decoded[i]);
  }
  CHECK(mismatches == 0);
}

}  // namespace

TEST_CASE("sentencepiece unigram model matches spm_encode/spm_decode", "[sentencepiece]") {
  compare_with_cli(train("unigram", ""));
}

TEST_CASE("sentencepiece BPE model with byte fallback matches spm_encode/spm_decode", "[sentencepiece]") {
  compare_with_cli(train("bpe", "--byte_fallback=true"));
}

TEST_CASE("sentencepiece: BOS/EOS from tokenizer_config.json and control tokens in text", "[sentencepiece]") {
  const std::string dir = train("unigram", "");
  auto tok = Tokenizer::load(dir);
  REQUIRE(tok->bos_id() == std::optional<int64_t>(1));  // spm_train's default ids: unk 0, bos 1, eos 2
  REQUIRE(tok->eos_ids() == std::vector<int64_t>{2});
  const auto a = tok->encode("Knockdown of TP53", false);
  const auto b = tok->encode("in K562", false);
  std::vector<int64_t> expected = {1};
  expected.insert(expected.end(), a.begin(), a.end());
  CHECK(tok->encode("Knockdown of TP53", true) == expected);
  // A control token written in the text is its id; the pieces around it are encoded on their own.
  std::vector<int64_t> joined = a;
  joined.push_back(2);
  joined.insert(joined.end(), b.begin(), b.end());
  CHECK(tok->encode("Knockdown of TP53</s>in K562", false) == joined);
  CHECK(tok->decode(joined) == "Knockdown of TP53</s>in K562");
  // Skipped, the special token leaves the pieces around it one run, so the
  // space that "▁in" stands for stays (as transformers decodes).
  CHECK(tok->decode(joined, true) == "Knockdown of TP53 in K562");

  synthpert::write_file_atomic(dir + "/tokenizer_config.json", R"({"add_bos_token": false, "add_eos_token": true, "eos_token": "</s>"})");
  synthpert::write_file_atomic(dir + "/generation_config.json", R"({"eos_token_id": [2, 0]})");
  tok = Tokenizer::load(dir);
  std::vector<int64_t> with_eos = a;
  with_eos.push_back(2);
  CHECK(tok->encode("Knockdown of TP53", true) == with_eos);
  CHECK(tok->eos_ids() == std::vector<int64_t>{2, 0});

  // A Unigram tokenizer.json beside the model (as converted checkpoints ship
  // both): the model is read, the file this reader cannot take is passed over.
  synthpert::write_file_atomic(dir + "/tokenizer.json", R"({"model": {"type": "Unigram", "vocab": []}})");
  CHECK(Tokenizer::load(dir)->encode("Knockdown of TP53", true) == with_eos);
}

// transformers' fast tokenizer built from a tokenizer.model (SpmConverter)
// adds every CONTROL piece as a special added token, so a custom control
// symbol written in the text is its id. (sentencepiece alone, and the slow
// LlamaTokenizer when tokenizer_config.json does not name the symbol, encode
// it as plain text.)
TEST_CASE("sentencepiece: a custom control symbol in text is split out, as transformers' fast tokenizer does", "[sentencepiece]") {
  const std::string dir = train("unigram", "--control_symbols='<ctrl>'");
  const auto tok = Tokenizer::load(dir);
  const auto ctrl = tok->token_to_id("<ctrl>");
  REQUIRE(ctrl);
  CHECK(tok->is_special(*ctrl));
  const auto a = tok->encode("Knockdown", false);
  const auto b = tok->encode("of TP53", false);
  std::vector<int64_t> joined = a;
  joined.push_back(*ctrl);
  joined.insert(joined.end(), b.begin(), b.end());
  CHECK(tok->encode("Knockdown<ctrl>of TP53", false) == joined);
  CHECK(tok->decode(joined) == "Knockdown<ctrl>of TP53");
  CHECK(tok->decode(joined, true) == "Knockdown of TP53");
}

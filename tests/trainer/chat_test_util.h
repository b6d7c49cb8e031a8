// A tokenizer folder for the trainer's text-input tests: a small
// sentencepiece model trained with spm_train on a corpus written here, and a
// tokenizer_config.json with a Llama-3-like chat template (header tokens
// around the role, <|eot_id|> after each turn, BOS first).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "common/fs.h"

namespace synthpert::test {

inline const char* llama3_like_template() {
  return "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
         "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
         "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";
}

// Trains the model into `dir` (created) and returns `dir`. Every printable
// ASCII character is in the corpus, so no test text maps to <unk>.
inline std::string make_spm_chat_tokenizer(const std::string& dir) {
  std::filesystem::create_directories(dir);
  const char* genes[] = {"TP53", "CDKN1A", "MYC", "CCND1", "GATA1", "K562", "RPE1", "HepG2", "Jurkat", "p21"};
  const char* words[] = {"the", "knockdown", "of", "gene", "lowers", "raises", "expression", "in", "cells",
                         "is", "a", "transcription", "factor", "it", "binds", "motifs", "protein", "and",
                         "answer", "think", "upregulated", "downregulated", "not", "differentially",
                         "expressed", "target", "so", "falls", "careful", "biologist", "expert", "you",
                         "are", "does", "change", "yes", "then", "as", "an", "E-box", "fine", "ok"};
  std::string corpus;
  for (char c = ' '; c <= '~'; ++c) corpus += std::string(4, c) + " ";
  corpus += "\n";
  uint64_t s = 12345;
  for (int line = 0; line < 600; ++line) {
    for (int w = 0; w < 12; ++w) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      const uint64_t r = s >> 33;
      corpus += (r % 5 == 0) ? std::string(genes[r % 10]) : std::string(words[r % 42]);
      corpus += (r % 11 == 0) ? ", " : (r % 13 == 0) ? ". " : (r % 17 == 0) ? "? " : " ";
    }
    corpus += "<answer>" + std::string(words[line % 42]) + "</answer>\n";
  }
  write_file_atomic(dir + "/corpus.txt", corpus);
  const std::string cmd =
      "spm_train --input='" + dir + "/corpus.txt' --model_prefix='" + dir +
      "/tokenizer' --vocab_size=300 --model_type=unigram --character_coverage=1.0 "
      "--control_symbols='<|start_header_id|>,<|end_header_id|>,<|eot_id|>' --hard_vocab_limit=false "
      "--minloglevel=2 > '" + dir + "/spm_train.log' 2>&1";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("spm_train failed: " + cmd);
  const nlohmann::json config = {{"bos_token", "<s>"},
                                 {"eos_token", "<|eot_id|>"},
                                 {"chat_template", llama3_like_template()}};
  write_file_atomic(dir + "/tokenizer_config.json", config.dump(2));
  return dir;
}

}  // namespace synthpert::test

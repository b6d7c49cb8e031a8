// Lexer of the chat-template language: splits a template into text and tags,
// applies the whitespace rules transformers renders with (trim_blocks,
// lstrip_blocks, "-" markers, no trailing newline), and splits tag contents
// into expression tokens.
#pragma once

#include <string>
#include <vector>

namespace synthpert::tokenizer::jinja {

struct Token {
  enum class Type { Text, OpenOutput, OpenStatement, Close, Name, String, Int, Float, Op, End };
  Type type;
  std::string text;
  int line;
};

// Throws InputError ("chat template line N: ...") on malformed input.
std::vector<Token> lex(const std::string& source);

}  // namespace synthpert::tokenizer::jinja

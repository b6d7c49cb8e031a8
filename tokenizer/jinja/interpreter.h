// Renders a parsed chat template. Scoping follows Jinja: a for loop body has
// its own scope (so `set` inside it does not leak out; templates use
// namespace() for that), if blocks do not.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "tokenizer/jinja/ast.h"

namespace synthpert::tokenizer::jinja {

class Template {
 public:
  explicit Template(const std::string& source);
  // `globals` are the variables the template sees (messages, bos_token, ...).
  std::string render(const std::map<std::string, Value>& globals) const;

 private:
  std::shared_ptr<const Body> body_;
};

}  // namespace synthpert::tokenizer::jinja

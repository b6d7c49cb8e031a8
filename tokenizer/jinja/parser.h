// Parser of the chat-template language (the Jinja subset in docs/tokenizer.md).
// Anything outside the subset is rejected here with an InputError naming the
// construct and its line, so a template fails before it renders half a prompt.
#pragma once

#include <string>

#include "tokenizer/jinja/ast.h"

namespace synthpert::tokenizer::jinja {

Body parse_template(const std::string& source);

}  // namespace synthpert::tokenizer::jinja

// Filters, tests and methods of the chat-template interpreter: the subset of
// Jinja's builtins (plus transformers' tojson) and of Python's str/dict
// methods that model chat templates call. docs/tokenizer.md lists them.
#pragma once

#include <string>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace synthpert::tokenizer::jinja {

bool has_filter(const std::string& name);
bool has_test(const std::string& name);
std::string filter_names();
std::string test_names();

// `line` is the template line for error messages.
Value apply_filter(const std::string& name, const Value& v, Args& args, int line);
bool apply_test(const std::string& name, const Value& v, const std::vector<Value>& args, int line);
// obj.name(args): Python str methods and dict.get/items/keys/values.
Value call_method(const Value& obj, const std::string& name, Args& args, int line);

// Python's str.strip family: `chars` empty strips whitespace.
std::string py_strip(const std::string& s, const std::string& chars, bool left, bool right);

}  // namespace synthpert::tokenizer::jinja

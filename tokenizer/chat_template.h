// Chat templates: the model's own Jinja `chat_template` rendered by our
// interpreter (tokenizer/jinja/, the subset documented in docs/tokenizer.md)
// the way transformers' apply_chat_template renders it: trim_blocks and
// lstrip_blocks on, loop controls, raise_exception, namespace(), tojson
// without key sorting or HTML escaping.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace synthpert::tokenizer {

namespace jinja {
class Template;
class Value;
}  // namespace jinja

struct ChatMessage {
  std::string role, content;
};

class ChatTemplate {
 public:
  // Throws InputError on syntax errors / unsupported constructs.
  static ChatTemplate from_string(std::string source);
  // tokenizer_config.json "chat_template" (string, or list of {name, template}: take "default"),
  // else chat_template.jinja, else chat_template.json. bos_token/eos_token
  // (and unk/pad) variables come from tokenizer_config.json.
  static ChatTemplate load(const std::string& model_dir);
  // Whether the folder holds a template source where load() looks (which may
  // still fail to parse): a model without one is not an error for callers
  // that fall back to plain prompts.
  static bool present(const std::string& model_dir);
  // The --chat-template override: `template_file` when non-empty (with the
  // folder's special-token variables), else load(model_dir).
  static ChatTemplate load_or_override(const std::string& model_dir, const std::string& template_file);

  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
  // Messages as JSON objects, so extra fields (tool_calls, reasoning_content, ...) reach the template;
  // nested objects keep their key order (tojson of tool-call arguments).
  std::string render_json(const nlohmann::ordered_json& messages, bool add_generation_prompt) const;

  // Sets a variable every render sees (bos_token, date_string, ...).
  void set_variable(const std::string& name, const std::string& value);
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::shared_ptr<const jinja::Template> template_;
  std::map<std::string, std::string> variables_;
};

// Reads messages from a JSON file: a list of {role, content, ...} or an
// object with a "messages" list. Objects keep the file's key order.
nlohmann::ordered_json read_messages_file(const std::string& path);

}  // namespace synthpert::tokenizer

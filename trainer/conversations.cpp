#include "trainer/conversations.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"

namespace synthpert::trainer {

using nlohmann::json;

void validate_conversation(const Conversation& c) {
  SP_CHECK_INPUT(!c.messages.empty(), c.origin, ": no messages");
  bool has_assistant = false;
  for (size_t i = 0; i < c.messages.size(); ++i) {
    const auto& m = c.messages[i];
    SP_CHECK_INPUT(m.role == "system" || m.role == "user" || m.role == "assistant", c.origin,
                   ": message ", i, " has role '", m.role, "' (expected system, user or assistant)");
    if (m.role == "assistant") {
      SP_CHECK_INPUT(m.content.find_first_not_of(" \t\r\n") != std::string::npos, c.origin,
                     ": message ", i, " is an empty assistant turn (nothing to learn)");
      has_assistant = true;
    }
  }
  SP_CHECK_INPUT(has_assistant, c.origin, ": no assistant message (nothing to learn)");
}

namespace {

// The example fields a prompt template's system text can refer to.
const char* const kFieldNames[] = {"cell_type", "pert", "gene"};

}  // namespace

void add_system_messages(std::vector<Conversation>& conversations, const SystemPromptFn& system_prompt) {
  if (!system_prompt) return;
  for (auto& c : conversations) {
    bool has_system = false;
    for (const auto& m : c.messages) has_system = has_system || m.role == "system";
    if (has_system) continue;
    std::string text = system_prompt(c);
    if (!text.empty()) c.messages.insert(c.messages.begin(), Message{"system", std::move(text)});
  }
}

std::vector<Conversation> read_traces_jsonl(const std::string& path, int64_t* without_trace) {
  std::ifstream in(path);
  SP_CHECK_INPUT(in.good(), path, ": cannot open for reading");
  std::vector<Conversation> out;
  std::string line;
  int64_t lineno = 0, skipped = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Conversation c;
    c.origin = str_cat(path, ":", lineno);
    const json j = parse_json_input(line, c.origin);
    if (j.is_object() && !j.contains("messages") && j.contains("reason") && j["reason"].is_string()) {
      ++skipped;
      continue;
    }
    SP_CHECK_INPUT(j.is_object() && j.contains("messages") && j["messages"].is_array(), c.origin,
                   ": expected an object with a \"messages\" array");
    for (const auto& m : j["messages"]) {
      SP_CHECK_INPUT(m.is_object() && m.contains("role") && m["role"].is_string() &&
                         m.contains("content") && m["content"].is_string(),
                     c.origin, ": every message needs string \"role\" and \"content\"");
      c.messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    }
    for (const char* name : kFieldNames)
      if (j.contains(name) && j[name].is_string()) c.fields[name] = j[name].get<std::string>();
    if (j.contains("judge") && j["judge"].is_string()) c.fields["judge"] = j["judge"].get<std::string>();
    if (j.contains("judge") && j["judge"].is_null()) c.fields["judge"] = "";
    if (j.contains("prompt_template") && j["prompt_template"].is_string())
      c.fields["prompt_template"] = j["prompt_template"].get<std::string>();
    validate_conversation(c);
    out.push_back(std::move(c));
  }
  SP_CHECK_INPUT(!out.empty(), path, ": no conversations",
                 skipped > 0 ? str_cat(" (its ", skipped, " records are rejections that hold no trace)") : "");
  if (without_trace) *without_trace = skipped;
  return out;
}

std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  int64_t line = 1;
  auto end_field = [&] {
    row.push_back(std::move(field));
    field.clear();
    field_started = false;
  };
  auto end_row = [&] {
    end_field();
    if (!(row.size() == 1 && row[0].empty())) rows.push_back(std::move(row));
    row.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (quoted) {
      if (ch == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (ch == '\n') ++line;
        field.push_back(ch);
      }
      continue;
    }
    if (ch == '"') {
      SP_CHECK_INPUT(!field_started, path, ":", line, ": stray quote inside an unquoted field");
      quoted = field_started = true;
    } else if (ch == ',') {
      end_field();
    } else if (ch == '\n') {
      ++line;
      end_row();
    } else if (ch == '\r') {
      // CRLF line ends: the '\n' ends the row.
    } else {
      field.push_back(ch);
      field_started = true;
    }
  }
  SP_CHECK_INPUT(!quoted, path, ": a quoted field is not closed at the end of the file");
  if (field_started || !row.empty()) end_row();
  return rows;
}

std::vector<Conversation> read_synthpert_csv(const std::string& path) {
  const auto rows = parse_csv(read_text_file(path), path);
  SP_CHECK_INPUT(!rows.empty(), path, ": empty CSV");
  const auto& header = rows[0];
  auto column = [&](const std::string& name) -> int64_t {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return static_cast<int64_t>(i);
    return -1;
  };
  const int64_t user = column("user_prompt"), assistant = column("assistant_response");
  SP_CHECK_INPUT(user >= 0 && assistant >= 0, path,
                 ": missing column(s)", user < 0 ? " user_prompt" : "",
                 assistant < 0 ? " assistant_response" : "",
                 " (a SynthPert CSV has user_prompt,assistant_response[,cell_type,pert,gene,"
                 "true_answer,critic_evaluation])");
  std::vector<Conversation> out;
  for (size_t r = 1; r < rows.size(); ++r) {
    Conversation c;
    c.origin = str_cat(path, ": row ", r);
    SP_CHECK_INPUT(rows[r].size() == header.size(), c.origin, ": has ", rows[r].size(),
                   " fields but the header has ", header.size());
    c.messages.push_back({"user", rows[r][user]});
    c.messages.push_back({"assistant", rows[r][assistant]});
    for (const char* name : kFieldNames)
      if (const int64_t k = column(name); k >= 0) c.fields[name] = rows[r][k];
    if (const int64_t k = column("critic_evaluation"); k >= 0) c.fields["judge"] = rows[r][k];
    validate_conversation(c);
    out.push_back(std::move(c));
  }
  SP_CHECK_INPUT(!out.empty(), path, ": no data rows");
  return out;
}

}  // namespace synthpert::trainer

#include "perturb/trace_inputs.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "common/error.h"
#include "common/json_input.h"

namespace synthpert::perturb {

using nlohmann::json;

std::vector<TraceInput> read_trace_inputs(const std::string& path) {
  std::ifstream in(path);
  SP_CHECK_INPUT(in.good(), path, ": cannot open for reading");
  std::vector<TraceInput> rows;
  std::unordered_map<std::string, std::string> seen;  // key -> origin
  std::string line;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    TraceInput row;
    row.origin = str_cat(path, ":", lineno);
    const json j = parse_json_input(line, row.origin);
    SP_CHECK_INPUT(j.is_object(), row.origin, ": expected a JSON object");
    for (auto [name, field] : {std::pair{"cell_type", &row.cell_type}, std::pair{"pert", &row.pert},
                               std::pair{"gene", &row.gene}}) {
      SP_CHECK_INPUT(j.contains(name) && j[name].is_string() && !j[name].get<std::string>().empty(), row.origin,
                     ": needs a non-empty string \"", name, "\" (rows as `synthpert data` writes them)");
      *field = j[name].get<std::string>();
    }
    SP_CHECK_INPUT(j.contains("label") && j["label"].is_string(), row.origin, ": needs a string \"label\"");
    const auto label = label_from_name(j["label"].get<std::string>());
    SP_CHECK_INPUT(label, row.origin, ": label '", j["label"].get<std::string>(),
                   "' is not upregulated, downregulated or not differentially expressed");
    row.label = *label;
    SP_CHECK_INPUT(j.contains("messages") && j["messages"].is_array(), row.origin,
                   ": needs a \"messages\" array (the student's prompt)");
    for (const auto& m : j["messages"]) {
      SP_CHECK_INPUT(m.is_object() && m.value("role", json()).is_string() && m.value("content", json()).is_string(),
                     row.origin, ": every message needs string \"role\" and \"content\"");
      const std::string role = m["role"].get<std::string>();
      SP_CHECK_INPUT(role == "system" || role == "user" || role == "assistant", row.origin, ": message role '", role,
                     "' (expected system, user or assistant)");
      if (role != "assistant") row.prompt.emplace_back(role, m["content"].get<std::string>());
    }
    SP_CHECK_INPUT(!row.prompt.empty() && row.prompt.back().first == "user", row.origin,
                   ": the prompt must end with a user message (the question)");
    const auto [it, fresh] = seen.emplace(row.key(), row.origin);
    SP_CHECK_INPUT(fresh, row.origin, ": repeats the row of ", it->second, " (", row.cell_type, ", ", row.pert, ", ",
                   row.gene, ")");
    rows.push_back(std::move(row));
  }
  SP_CHECK_INPUT(!rows.empty(), path, ": no rows");
  return rows;
}

}  // namespace synthpert::perturb

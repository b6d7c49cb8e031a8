#include "perturb/trace_store.h"

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"
#include "common/settings_diff.h"

namespace synthpert::perturb {

using nlohmann::json;

std::string trace_record_key(const json& r) {
  return r.at("cell_type").get<std::string>() + '\t' + r.at("pert").get<std::string>() + '\t' +
         r.at("gene").get<std::string>();
}

std::string trace_settings_path(const std::string& accepted_path) {
  const std::string ext = ".jsonl";
  if (accepted_path.size() > ext.size() &&
      accepted_path.compare(accepted_path.size() - ext.size(), ext.size(), ext) == 0)
    return accepted_path.substr(0, accepted_path.size() - ext.size()) + ".settings.json";
  return accepted_path + ".settings.json";
}

namespace {

std::FILE* open_append(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) make_dirs(parent.string());
  std::FILE* f = std::fopen(path.c_str(), "ab");
  SP_CHECK_INPUT(f, path, ": cannot open for appending");
  return f;
}

std::string string_field(const json& r, const char* name) {
  const json v = r.value(name, json());
  return v.is_string() ? v.get<std::string>() : "";
}

// A rejected record's replies, as a resumed row's "earlier" entries: those it
// carried, then its own reply unless it is a failed request (whose reply, if
// any, was never judged). Its own is the record less what names the row.
json rejected_replies(const json& r) {
  json replies = r.value("earlier", json::array());
  if (string_field(r, "reason") == "error") return replies;
  json own = r;
  // The row's fields, as explain() in traces.cpp writes them.
  for (const char* row_field :
       {"cell_type", "pert", "gene", "label", "teacher_model", "judge_model", "attempts", "earlier"})
    own.erase(row_field);
  replies.push_back(std::move(own));
  return replies;
}

// The trace a failed judge request left ungraded: the assistant message that
// ends the record's conversation (traces.cpp writes it before asking the
// judge). None for any other record; such a row asks the teacher again.
std::optional<std::string> unjudged_trace(const json& r) {
  if (string_field(r, "reason") != "error" || string_field(r, "stage") != "judge") return std::nullopt;
  const json messages = r.value("messages", json());
  if (!messages.is_array() || messages.empty() || !messages.back().is_object()) return std::nullopt;
  const json& last = messages.back();
  const json content = last.value("content", json());
  if (string_field(last, "role") != "assistant" || !content.is_string()) return std::nullopt;
  return content.get<std::string>();
}

}  // namespace

TraceStore::TraceStore(std::string accepted_path, std::string rejected_path, bool resume, TraceRunIdentity identity,
                       json settings)
    : accepted_path_(std::move(accepted_path)),
      rejected_path_(std::move(rejected_path)),
      settings_path_(trace_settings_path(accepted_path_)),
      identity_(std::move(identity)) {
  // Compared as the files they name: rejected records in the accepted file
  // would become training data.
  SP_CHECK_INPUT(!same_file(accepted_path_, rejected_path_), accepted_path_, " and ", rejected_path_,
                 ": the accepted and rejected files must differ");
  SP_CHECK_INPUT(!same_file(rejected_path_, settings_path_), rejected_path_, ": is where the run's settings go (",
                 settings_path_, "); choose another --rejected");
  for (const auto* path : {&accepted_path_, &rejected_path_, &settings_path_})
    SP_CHECK_INPUT(resume || !path_exists(*path), *path,
                   ": exists; pass --resume to continue that run, or choose another --out");
  if (resume) {
    check_settings(settings);
    // Rejected first: a row that failed and was accepted later is finished either way.
    load(rejected_path_, false);
    load(accepted_path_, true);
  }
  const auto parent = std::filesystem::path(settings_path_).parent_path();
  if (!parent.empty()) make_dirs(parent.string());
  if (!path_exists(settings_path_)) write_file_atomic(settings_path_, settings.dump(2) + "\n");
  accepted_ = open_append(accepted_path_);
  rejected_ = open_append(rejected_path_);
}

void TraceStore::check_settings(const json& settings) const {
  if (!path_exists(settings_path_)) {
    // Records without their settings cannot be told apart from another run's.
    for (const auto* path : {&accepted_path_, &rejected_path_})
      SP_CHECK_INPUT(!path_exists(*path), *path, ": exists without ", settings_path_,
                     " (the settings of the run that wrote it), so it cannot be resumed safely; write to another --out");
    return;
  }
  json saved;
  try {
    saved = read_json_input(settings_path_);
  } catch (const InputError& e) {
    throw InputError(str_cat(e.what(), "; without it the run cannot be resumed: repair it, or write to another --out"));
  }
  const std::vector<std::string> diffs = settings_differences(saved, settings, "saved");
  SP_CHECK_INPUT(diffs.empty(), settings_path_, ": --resume needs the settings of the run it continues; these differ: ",
                 join_differences(diffs, "; "), ". Resume with those settings, or write to another --out");
}

TraceStore::~TraceStore() {
  if (accepted_) std::fclose(accepted_);
  if (rejected_) std::fclose(rejected_);
}

void TraceStore::load(const std::string& path, bool accepted) {
  if (!path_exists(path)) return;
  bool cut = false;
  const std::string text = read_complete_lines(path, &cut);
  repaired_ += cut;
  size_t pos = 0;
  for (int64_t lineno = 1; pos < text.size(); ++lineno) {
    const size_t nl = text.find('\n', pos);
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = str_cat(path, ":", lineno);
    json r;
    try {
      r = parse_json_input(line, where);
    } catch (const InputError& e) {
      throw InputError(str_cat(e.what(), "; cannot resume from this file"));
    }
    try {
      trace_record_key(r);
    } catch (const json::exception& e) {
      throw InputError(str_cat(where, ": not a trace record (", e.what(), "); cannot resume from this file"));
    }
    SP_CHECK_INPUT(!r.contains("earlier") || r["earlier"].is_array(), where,
                   ": not a trace record (\"earlier\" is not a list); cannot resume from this file");
    const json replies = accepted ? json::array() : rejected_replies(r);
    const std::string teacher = string_field(r, "teacher_model"), judge = string_field(r, "judge_model");
    SP_CHECK_INPUT(teacher == identity_.teacher_model && judge == identity_.judge_model, where,
                   ": written with teacher model '", teacher, "' and judge model '", judge,
                   "'; this run asks for '", identity_.teacher_model, "' and '", identity_.judge_model,
                   "'. Resume with the same models, or write to another --out");
    const std::string key = trace_record_key(r);
    // Records of a row come in the order written, so its last one wins (and
    // an accepted one, read after all rejections, wins over them).
    if (accepted) ++accepted_at_start_;
    if (accepted || (string_field(r, "reason") != "error" &&
                     static_cast<int64_t>(replies.size()) >= identity_.attempts)) {
      finished_.insert(key);
      unfinished_.erase(key);
    } else {
      finished_.erase(key);
      unfinished_[key] = {replies, unjudged_trace(r)};
    }
  }
}

void TraceStore::write(const json& record, bool accepted) {
  // Replacement characters for bytes that are not UTF-8 (a proxy's error
  // page quoted in "error"): the row is written, not the run stopped.
  const std::string line = record.dump(-1, ' ', false, json::error_handler_t::replace) + '\n';
  std::lock_guard<std::mutex> lock(mutex_);
  std::FILE* f = accepted ? accepted_ : rejected_;
  const bool ok = std::fwrite(line.data(), 1, line.size(), f) == line.size() && std::fflush(f) == 0;
  SP_CHECK_INPUT(ok, accepted ? accepted_path_ : rejected_path_, ": write failed (disk full?)");
}

}  // namespace synthpert::perturb

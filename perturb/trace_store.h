// The two output files of `synthpert traces`, written a line at a time so an
// interrupted run loses at most the rows in flight:
//   OUT       accepted traces (training data for `synthpert train`)
//   REJECTED  every other outcome: rejected traces with their reason and, for
//             graded ones, the grade; failed requests as reason "error"
// --resume reads both back. A row is finished when it was accepted, or
// rejected after all its attempts (--attempts replies). Any other row is
// continued with the attempts it has left: one whose last record is an
// "error" (a failed request ends a row at once), and one whose last record is
// a rejection with fewer attempts than --attempts (a stopping run, Ctrl-C or a
// fatal error elsewhere, ends a row after the reply in flight). Its rejected
// replies so far carry on into its next record's "earlier", so that an
// interrupted and resumed run asks the teacher as often per row as one that
// was not. A row whose last record is a failed judge request holds the
// teacher's trace that passed the checks (its "messages"): that trace is
// judged again, as the same attempt, before the teacher is asked for another,
// so the reply paid for is not thrown away. A row's last record in REJECTED is
// its state; earlier ones were cut short. A half-written last line (the
// process was killed mid-write) is cut off first.
//
// A third file beside OUT, SETTINGS (trace_settings_path), holds the settings
// that decide what a record is (models, prompts, sampling, accepted grades,
// attempts), so that --resume cannot quietly mix records of two runs.
#pragma once

#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace synthpert::perturb {

// What every record names, so a resumed run cannot mix traces of different
// teachers or judges into one file.
struct TraceRunIdentity {
  std::string teacher_model;
  std::string judge_model;  // "" without a judge
  // Teacher replies a row may take (--attempts, one of the settings, so the
  // same for every run resumed): a rejection after fewer was cut short.
  int attempts = 1;
};

// Where --resume picks up a row that was started but not finished.
struct UnfinishedRow {
  // The replies rejected so far, as "earlier" entries in order (possibly
  // empty): the row continues at attempt earlier.size()+1.
  nlohmann::json earlier = nlohmann::json::array();
  // The trace of that attempt when the teacher's reply passed the checks and
  // only the judge's request failed: it is judged again instead of asking
  // the teacher (and paying) for another reply. (Only a run with that judge
  // gets here: the settings and the records' judge_model are checked first.)
  std::optional<std::string> unjudged_trace;
};

// "x.jsonl" -> "x.settings.json" (any other name: NAME.settings.json).
std::string trace_settings_path(const std::string& accepted_path);

class TraceStore {
 public:
  // Without `resume`, an existing OUT, REJECTED or SETTINGS is an InputError
  // (nothing is overwritten) and `settings` (a JSON object) is written to
  // SETTINGS. With it, SETTINGS must hold the same settings (an InputError
  // names each difference), and records naming another teacher or judge model
  // are refused too. Checks come before any file is created or changed.
  TraceStore(std::string accepted_path, std::string rejected_path, bool resume, TraceRunIdentity identity,
             nlohmann::json settings);
  ~TraceStore();
  TraceStore(const TraceStore&) = delete;
  TraceStore& operator=(const TraceStore&) = delete;

  // Keys (TraceInput::key) with a final outcome in the files at start.
  const std::unordered_set<std::string>& finished() const { return finished_; }
  // Keys of rows started but not finished, with where each picks up.
  const std::unordered_map<std::string, UnfinishedRow>& unfinished() const { return unfinished_; }
  int64_t accepted_at_start() const { return accepted_at_start_; }
  // Partial last lines cut off at start (0 or 1 per file).
  int repaired_lines() const { return repaired_; }

  // Appends one record (a JSON object, one line) and flushes. Thread-safe.
  void write(const nlohmann::json& record, bool accepted);

  const std::string& accepted_path() const { return accepted_path_; }
  const std::string& rejected_path() const { return rejected_path_; }
  const std::string& settings_path() const { return settings_path_; }

 private:
  void load(const std::string& path, bool accepted);
  void check_settings(const nlohmann::json& settings) const;

  std::string accepted_path_, rejected_path_, settings_path_;
  TraceRunIdentity identity_;
  std::unordered_set<std::string> finished_;
  std::unordered_map<std::string, UnfinishedRow> unfinished_;
  int64_t accepted_at_start_ = 0;
  int repaired_ = 0;
  std::mutex mutex_;
  std::FILE* accepted_ = nullptr;
  std::FILE* rejected_ = nullptr;
};

// The key of a record as TraceInput::key builds it.
std::string trace_record_key(const nlohmann::json& record);

}  // namespace synthpert::perturb

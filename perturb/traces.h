// `synthpert traces`: the SynthPert data step. For every PerturbQA row a
// teacher model, told the measured outcome, writes the reasoning that leads to
// it; the reply is checked (trace_review.h); a judge model grades it; traces
// whose grade is accepted become training conversations
//   {"messages":[student prompt..., {"role":"assistant","content":TRACE}],
//    "cell_type","pert","gene","label","judge","teacher_model","judge_model",
//    "attempts", ...}
// Rows run concurrently on worker threads; results are appended as they come
// (trace_store.h), so a run can be interrupted and resumed.
#pragma once

#include <atomic>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "perturb/openai_client.h"
#include "perturb/trace_prompts.h"
#include "perturb/trace_review.h"

namespace synthpert::perturb {

struct TraceJob {
  std::string data_path;      // JSONL rows (trace_inputs.h)
  std::string out_path;       // accepted traces
  std::string rejected_path;  // everything else
  ChatEndpoint teacher;
  std::optional<ChatEndpoint> judge;  // none: every well-formed, correct trace is accepted
  ChatOptions teacher_options, judge_options;
  std::string teacher_prompt = "teacher", judge_prompt = "judge";  // built-in names or files
  std::set<Grade> accept = {Grade::kExcellent, Grade::kGood};
  RetryPolicy retry;
  // Teacher replies asked per row until one is accepted: a rejected reply
  // (failed check, ungraded, grade not accepted) is asked again, up to this
  // many replies in all; the rejected ones stay in the row's record under
  // "earlier". Needs a sampling teacher (a greedy one repeats itself).
  int attempts = 1;
  int workers = 8;
  bool resume = false;
  int64_t limit = -1;     // at most this many rows this run (-1: all)
  bool progress = true;   // progress bar on stderr
  // Check the inputs and prompts, and return the first row's teacher and
  // judge messages instead of sending anything; no file is touched.
  bool dry_run = false;
  // When set and it turns true, no new row is started; rows in flight finish
  // and are written, and the summary says "interrupted" (the CLI's SIGINT).
  const std::atomic<bool>* cancel = nullptr;
};

// Default REJECTED path for OUT: "x.jsonl" -> "x.rejected.jsonl".
std::string default_rejected_path(const std::string& out_path);

// Runs the job and returns its summary (counts per outcome, grades, token
// usage). A request error that no other row could escape (401, 403, 404, or
// no response at all from an endpoint that has not answered once this run)
// stops the run: rows in flight finish, then an InputError says what happened
// and that --resume continues. With `resume`, the settings that decide a
// record (trace_store.h) must be those of the run being continued.
nlohmann::json run_traces(const TraceJob& job);

}  // namespace synthpert::perturb

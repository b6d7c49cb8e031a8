#include "perturb/traces.h"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "common/progress.h"
#include "perturb/trace_inputs.h"
#include "perturb/trace_store.h"

namespace synthpert::perturb {

using nlohmann::json;

std::string default_rejected_path(const std::string& out_path) {
  const std::string ext = ".jsonl";
  if (out_path.size() > ext.size() && out_path.compare(out_path.size() - ext.size(), ext.size(), ext) == 0)
    return out_path.substr(0, out_path.size() - ext.size()) + ".rejected.jsonl";
  return out_path + ".rejected.jsonl";
}

namespace {

// Tokens and requests per endpoint. `requests` counts replies; a request that
// failed for good (retries spent, or an error not worth retrying) counts in
// `failed_requests`, and its tokens, if any were billed, are not known.
struct Usage {
  std::atomic<int64_t> requests{0}, failed_requests{0}, retries{0}, prompt_tokens{0}, completion_tokens{0};

  void add(const ChatReply& r) {
    ++requests;
    retries += r.attempts - 1;
    prompt_tokens += r.prompt_tokens;
    completion_tokens += r.completion_tokens;
  }
  json to_json() const {
    return {{"requests", requests.load()},
            {"failed_requests", failed_requests.load()},
            {"retries", retries.load()},
            {"prompt_tokens", prompt_tokens.load()},
            {"completion_tokens", completion_tokens.load()}};
  }
};

// What the teacher and judge prompts are filled with for a row.
TraceQuestion question_of(const TraceInput& row) {
  return {row.question(), label_name(row.label), row.cell_type, row.pert, row.gene};
}

// Everything the workers share: read-only settings, clients, prompts and tallies.
class TraceRun {
 public:
  explicit TraceRun(const TraceJob& job)
      : job_(job),
        teacher_(job.teacher, job.retry),
        teacher_prompt_(TracePrompt::load(job.teacher_prompt, TracePrompt::Role::kTeacher)) {
    if (job.judge) {
      judge_ = std::make_unique<ChatClient>(*job.judge, job.retry);
      judge_prompt_ = TracePrompt::load(job.judge_prompt, TracePrompt::Role::kJudge);
    }
  }

  // Explains the pending rows; a row --resume found unfinished continues
  // with the replies it had (TraceStore::unfinished).
  void run(const std::vector<const TraceInput*>& pending, TraceStore& store) {
    std::unique_ptr<ProgressBar> bar;
    if (job_.progress) bar = std::make_unique<ProgressBar>("traces", static_cast<int64_t>(pending.size()), "rows");
    std::atomic<size_t> next{0};
    auto work = [&] {
      auto cancelled = [&] { return job_.cancel && job_.cancel->load(); };
      for (size_t i; !stop_.load() && !cancelled() && (i = next++) < pending.size();) {
        try {
          const auto carried = store.unfinished().find(pending[i]->key());
          const Outcome o =
              explain(*pending[i], carried == store.unfinished().end() ? UnfinishedRow{} : carried->second);
          store.write(o.record, o.accepted);
          tally(o, bar.get());
          if (!o.fatal.empty()) stop_with(o.fatal);
        } catch (const std::exception& e) {
          stop_with(e.what());  // a write failure: nothing more can be kept
        }
      }
    };
    std::vector<std::thread> threads;
    const size_t n = std::min<size_t>(static_cast<size_t>(job_.workers), std::max<size_t>(pending.size(), 1));
    for (size_t t = 0; t < n; ++t) threads.emplace_back(work);
    for (auto& t : threads) t.join();
    if (bar) bar->finish();
  }

  const std::string& fatal() const { return fatal_; }

  // What decides a record, kept beside OUT so --resume continues only the
  // same run. Not the addresses, keys, retries, workers or limit: moving to
  // another server of the same model, or a rerun with more workers, is
  // still the same run.
  json settings() const {
    auto sampling = [](const ChatOptions& o) {
      json j = json::object();
      if (o.temperature) j["temperature"] = *o.temperature;
      if (o.top_p) j["top_p"] = *o.top_p;
      if (o.seed) j["seed"] = *o.seed;
      if (o.max_tokens) j["max_tokens"] = *o.max_tokens;
      return j;
    };
    json accept = json::array();
    for (Grade g : job_.accept) accept.push_back(grade_name(g));
    json s = {{"teacher_model", job_.teacher.model},
              {"teacher_prompt", teacher_prompt_.digest()},
              {"teacher_sampling", sampling(job_.teacher_options)},
              {"attempts", job_.attempts}};
    if (judge_) {
      s["judge_model"] = job_.judge->model;
      s["judge_prompt"] = judge_prompt_.digest();
      s["judge_sampling"] = sampling(job_.judge_options);
      s["accept"] = accept;
    }
    return s;
  }

  // What a row's requests would send (the judge is shown a stand-in trace).
  json preview(const TraceInput& row) const {
    const TraceQuestion q = question_of(row);
    json p = {{"teacher", {{"url", job_.teacher.url}, {"model", job_.teacher.model},
                           {"messages", messages_json(teacher_prompt_.render(q))}}}};
    if (judge_)
      p["judge"] = {{"url", job_.judge->url}, {"model", job_.judge->model},
                    {"messages", messages_json(judge_prompt_.render(q, "<the teacher's trace>"))}};
    return p;
  }

  // Ends the run for every worker after their rows in flight.
  void stop_with(const std::string& why) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (fatal_.empty()) fatal_ = why;
    stop_ = true;
  }

  json summary() const {
    std::lock_guard<std::mutex> lock(mutex_);
    json rejected = json::object(), grades = json::object();
    for (const auto& [reason, n] : rejected_) rejected[reason] = n;
    for (const auto& [grade, n] : grades_) grades[grade] = n;
    json usage = {{"teacher", teacher_usage_.to_json()}};
    if (judge_) usage["judge"] = judge_usage_.to_json();
    return {{"rows", done_},           {"accepted", accepted_},
            {"rejected", rejected},     {"failed", failed_},
            {"unfinished", unfinished_}, {"grades", grades},
            {"usage", usage},           {"reasked", reasked_},
            {"accepted_after_reask", accepted_after_reask_}};
  }
  int64_t accepted() const { return accepted_; }
  int64_t done() const { return done_; }
  // Rows written this run that --resume takes up again.
  int64_t unsettled() const { return failed_ + unfinished_; }

 private:
  struct Outcome {
    json record;
    bool accepted = false;
    std::string fatal;        // set when the run must stop (ChatError::is_fatal)
    bool unfinished = false;  // rejected with attempts left, as the run was stopping
  };

  // One row: teacher replies through the checks and the judge until one is
  // accepted, the attempts are spent, a request fails or the run is stopping.
  // `carried` is where --resume picks the row up: the replies rejected before
  // this run count against the attempts, so an interrupted row is asked no
  // more often in all than one that was not; a trace whose judge request
  // failed is judged again as the attempt it was, without asking the teacher.
  Outcome explain(const TraceInput& row, UnfinishedRow carried) {
    const TraceQuestion q = question_of(row);
    json earlier = std::move(carried.earlier);
    for (int k = static_cast<int>(earlier.size()) + 1;; ++k) {
      Outcome o = carried.unjudged_trace ? judge(row, q, *carried.unjudged_trace) : attempt(row, q);
      carried.unjudged_trace.reset();  // the next attempt is a new teacher reply
      const bool stopping = stop_.load() || (job_.cancel && job_.cancel->load());
      const bool rejected = !o.accepted && o.record["reason"] != "error";
      if (rejected && k < job_.attempts && !stopping) {
        earlier.push_back(std::move(o.record));
        continue;
      }
      // Written as the rejection it is; --resume sees fewer attempts than
      // --attempts in it and continues the row (trace_store.h).
      o.unfinished = rejected && k < job_.attempts;
      // The row's fields; trace_store.cpp strips these to recover an attempt.
      json record = {{"cell_type", row.cell_type},
                     {"pert", row.pert},
                     {"gene", row.gene},
                     {"label", label_name(row.label)},
                     {"teacher_model", job_.teacher.model},
                     {"judge_model", job_.judge ? json(job_.judge->model) : json(nullptr)},
                     {"attempts", k}};
      record.update(o.record);
      if (!earlier.empty()) record["earlier"] = std::move(earlier);
      o.record = std::move(record);
      return o;
    }
  }

  // A failed request is recorded like any outcome, with what `record` holds
  // so far (a judge failure keeps the paid-for trace); a fatal one also stops
  // the run.
  static Outcome failed(json record, const char* stage, const ChatError& e, std::atomic<bool>& answered) {
    record["reason"] = "error";
    record["stage"] = stage;
    record["error"] = e.what();
    // Every retry of a request without a response, from an endpoint that
    // has not answered once this run: its address (or certificate, or
    // network) is wrong, and each further row would wait as long to learn so.
    if (e.status() != 0) answered = true;
    const bool unreachable = e.status() == 0 && !answered.load();
    std::string fatal;
    if (e.is_fatal()) fatal = e.what();
    else if (unreachable)
      fatal = str_cat(e.what(), "; the ", stage, " has not answered any request of this run, so its address is "
                      "likely wrong");
    return Outcome{std::move(record), false, fatal};
  }

  // One teacher reply through the checks and the judge; the record holds what
  // this attempt produced (reason, reply or conversation, grade).
  Outcome attempt(const TraceInput& row, const TraceQuestion& q) {
    json record = {{"judge", nullptr}};
    ChatReply teacher;
    try {
      teacher = teacher_.complete(teacher_prompt_.render(q), job_.teacher_options);
    } catch (const ChatError& e) {
      ++teacher_usage_.failed_requests;
      return failed(std::move(record), "teacher", e, teacher_answered_);
    }
    teacher_answered_ = true;
    teacher_usage_.add(teacher);
    const TraceCheck check =
        check_trace(teacher_text(teacher.content, teacher.reasoning), row.label, teacher.finish_reason);
    if (!check.reason.empty()) {
      record["reason"] = check.reason;
      record["teacher_reply"] = teacher.content;
      if (!teacher.reasoning.empty()) record["teacher_reasoning"] = teacher.reasoning;
      return {record, false, ""};
    }
    return judge(row, q, check.trace);
  }

  // A trace that passed the checks, through the judge (accepted at once
  // without one). Also where a trace whose judge request failed before
  // --resume picks up, so its record is the one an uninterrupted run writes.
  Outcome judge(const TraceInput& row, const TraceQuestion& q, const std::string& trace) {
    json messages = messages_json(row.prompt);
    messages.push_back({{"role", "assistant"}, {"content", trace}});
    json record = {{"judge", nullptr}, {"messages", std::move(messages)}};
    if (!judge_) return {record, true, ""};

    ChatReply verdict;
    try {
      verdict = judge_->complete(judge_prompt_.render(q, trace), job_.judge_options);
    } catch (const ChatError& e) {
      ++judge_usage_.failed_requests;
      // The trace stays in the record: --resume judges it again (trace_store.h).
      return failed(std::move(record), "judge", e, judge_answered_);
    }
    judge_answered_ = true;
    judge_usage_.add(verdict);
    record["judge_reply"] = verdict.content;
    if (verdict.finish_reason == "length") {
      // Cut off mid-thought, a "<grade>" in it may be one the judge was
      // about to take back.
      record["reason"] = "judge_truncated";
      return {record, false, ""};
    }
    const auto grade = parse_grade(verdict.content);
    if (!grade) {
      record["reason"] = "ungraded";
      return {record, false, ""};
    }
    record["judge"] = grade_name(*grade);
    if (job_.accept.count(*grade)) return {record, true, ""};
    record["reason"] = "grade";
    return {record, false, ""};
  }

  void tally(const Outcome& o, ProgressBar* bar) {
    const json& record = o.record;
    std::lock_guard<std::mutex> lock(mutex_);
    ++done_;
    if (record["judge"].is_string()) ++grades_[record["judge"].get<std::string>()];
    const bool reasked = record["attempts"].get<int>() > 1;
    reasked_ += reasked;
    if (o.accepted) {
      ++accepted_;
      accepted_after_reask_ += reasked;
    } else {
      const std::string reason = record["reason"].get<std::string>();
      if (reason == "error")
        ++failed_;
      else if (o.unfinished)
        ++unfinished_;
      else
        ++rejected_[reason];
    }
    if (bar) {
      int64_t rejected = 0;
      for (const auto& [reason, n] : rejected_) rejected += n;
      bar->advance(1, str_cat("accepted ", accepted_, "  rejected ", rejected, "  failed ", failed_));
    }
  }

  const TraceJob& job_;
  ChatClient teacher_;
  TracePrompt teacher_prompt_;
  std::unique_ptr<ChatClient> judge_;
  TracePrompt judge_prompt_;
  Usage teacher_usage_, judge_usage_;
  std::atomic<bool> teacher_answered_{false}, judge_answered_{false};  // any HTTP response this run

  mutable std::mutex mutex_;
  std::atomic<bool> stop_{false};
  std::string fatal_;
  int64_t done_ = 0, accepted_ = 0, failed_ = 0, unfinished_ = 0;
  int64_t reasked_ = 0, accepted_after_reask_ = 0;  // rows whose teacher was asked more than once
  std::map<std::string, int64_t> rejected_, grades_;
};

}  // namespace

json run_traces(const TraceJob& job) {
  SP_CHECK_INPUT(job.workers >= 1 && job.workers <= 1024, "--workers: expected 1..1024, got ", job.workers);
  SP_CHECK_INPUT(!job.accept.empty(), "--accept: name at least one grade");
  SP_CHECK_INPUT(job.attempts >= 1 && job.attempts <= 100, "--attempts: expected 1..100, got ", job.attempts);
  SP_CHECK_INPUT(job.attempts == 1 || job.teacher_options.temperature.value_or(1.0) > 0,
                 "--attempts ", job.attempts, " with --temperature 0: a greedy teacher would give the same reply again");
  const auto start = std::chrono::steady_clock::now();
  // With --resume, traces would be appended to the rows being read.
  for (const auto& [flag, path] : {std::pair{"--out", job.out_path}, {"--rejected", job.rejected_path},
                                   {"--out's settings", trace_settings_path(job.out_path)}})
    SP_CHECK_INPUT(!same_file(path, job.data_path), flag, " ", path, " is the --data file being read; choose another");
  const auto rows = read_trace_inputs(job.data_path);
  // Prompts and addresses are checked before the output files are created, so
  // a typo does not leave files that a corrected rerun would refuse.
  TraceRun run(job);
  if (job.dry_run) {
    SP_CHECK_INPUT(!rows.empty(), job.data_path, ": no rows");
    json preview = run.preview(rows.front());
    return {{"dry_run", true}, {"input_rows", rows.size()}, {"first_row", preview}};
  }
  TraceStore store(job.out_path, job.rejected_path, job.resume,
                   {job.teacher.model, job.judge ? job.judge->model : std::string(), job.attempts}, run.settings());

  std::vector<const TraceInput*> pending;
  int64_t already_done = 0;
  for (const auto& row : rows) {
    if (store.finished().count(row.key())) {
      ++already_done;
    } else if (job.limit < 0 || static_cast<int64_t>(pending.size()) < job.limit) {
      pending.push_back(&row);
    }
  }
  run.run(pending, store);

  const int64_t remaining = static_cast<int64_t>(rows.size()) - already_done - (run.done() - run.unsettled());
  if (!run.fatal().empty())
    throw InputError(str_cat(run.fatal(), "; stopped: ", run.done(), " rows were written this run (",
                             job.out_path, ", ", job.rejected_path, "); --resume continues with the ",
                             remaining, " left"));
  json summary = run.summary();
  summary["out"] = job.out_path;
  summary["rejected_out"] = job.rejected_path;
  summary["input_rows"] = rows.size();
  summary["already_done"] = already_done;
  summary["repaired_partial_lines"] = store.repaired_lines();
  summary["accepted_total"] = store.accepted_at_start() + run.accepted();
  summary["remaining"] = remaining;
  summary["interrupted"] = job.cancel && job.cancel->load() && remaining > 0;
  summary["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace synthpert::perturb

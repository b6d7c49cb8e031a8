// `synthpert traces`: teacher/judge reasoning traces for PerturbQA rows through
// any OpenAI-compatible endpoint (perturb/traces.h); the output is the
// training data of `synthpert train`.
#include <cstdlib>

#include "apps/command.h"
#include "apps/interrupt.h"
#include "common/error.h"
#include "perturb/traces.h"

namespace synthpert::cli {
namespace {

struct Opts {
  perturb::TraceJob job;
  std::string judge_url, judge_model, accept = "excellent,good", rejected;
  double temperature = -1, judge_temperature = -1;
  int64_t max_tokens = 0, judge_max_tokens = 0;
  double timeout = 600;
  bool quiet = false;
};

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  auto& job = o->job;
  cmd.add_option("--data", job.data_path, "rows to explain: JSONL as `synthpert data` writes it")->required();
  cmd.add_option("--teacher", job.teacher.url,
                 "teacher API base URL, e.g. https://api.openai.com/v1 or http://localhost:8000/v1")
      ->required();
  cmd.add_option("--teacher-model", job.teacher.model, "teacher model name")->required();
  cmd.add_option("--judge", o->judge_url, "judge API base URL (default: the teacher's, when --judge-model is given)");
  cmd.add_option("--judge-model", o->judge_model, "judge model name; without it no judge is asked");
  cmd.add_option("--accept", o->accept, "judge grades kept as training data")->capture_default_str();
  cmd.add_option("--out", job.out_path, "accepted traces (JSONL, the input of `synthpert train`)")->required();
  cmd.add_option("--rejected", o->rejected, "everything else, with its reason (default: OUT with .rejected.jsonl)");
  cmd.add_flag("--resume", job.resume,
               "continue OUT with the same settings (OUT.settings.json): skip rows it or REJECTED already hold, "
               "retry failed ones");
  cmd.add_option("--workers", job.workers, "requests in flight at once")->capture_default_str();
  cmd.add_option("--attempts", job.attempts,
                 "teacher replies asked per row until one is accepted (rejected ones are kept under \"earlier\")")
      ->capture_default_str();
  cmd.add_option("--limit", job.limit, "explain at most N more rows this run (a trial, or a budget)");
  cmd.add_option("--teacher-prompt", job.teacher_prompt, "teacher prompt: teacher (built in) | FILE")
      ->capture_default_str();
  cmd.add_option("--judge-prompt", job.judge_prompt, "judge prompt: judge (built in) | FILE")->capture_default_str();
  // Sent only when given; a given value out of range is refused, never dropped.
  const auto at_least = [](double low, bool inclusive) {
    return CLI::Validator(
        [low, inclusive](std::string& v) -> std::string {
          const double x = std::strtod(v.c_str(), nullptr);
          return (inclusive ? x >= low : x > low) ? "" : std::string("must be ") + (inclusive ? ">= " : "> ") +
                                                              std::to_string(static_cast<int>(low)) + ", got " + v;
        },
        "");
  };
  cmd.add_option("--temperature", o->temperature, "teacher sampling temperature (default: the server's)")
      ->check(at_least(0, true));
  cmd.add_option("--max-tokens", o->max_tokens, "teacher reply limit, sent as max_completion_tokens (default: the server's)")
      ->check(at_least(0, false));
  cmd.add_option("--judge-temperature", o->judge_temperature, "judge sampling temperature (default: the server's)")
      ->check(at_least(0, true));
  cmd.add_option("--judge-max-tokens", o->judge_max_tokens, "judge reply limit (default: the server's)")
      ->check(at_least(0, false));
  cmd.add_option("--retries", job.retry.max_retries, "retries of a request after 429, 5xx or no response")
      ->capture_default_str();
  cmd.add_option("--timeout", o->timeout, "seconds to wait for one reply")->capture_default_str();
  cmd.add_flag("--quiet", o->quiet, "no progress bar on stderr");
  cmd.add_flag("--dry-run", job.dry_run,
               "check the inputs and prompts and print the first row's teacher and judge messages; send nothing");
  cmd.footer(
      "API keys come from the environment, not the command line: $SYNTHPERT_TEACHER_API_KEY (else $OPENAI_API_KEY) "
      "for the teacher, $SYNTHPERT_JUDGE_API_KEY for the judge (else the teacher's key, when the judge is the "
      "teacher's endpoint).");
  return [o] {
    auto job = o->job;
    SP_CHECK_INPUT(o->judge_url.empty() || !o->judge_model.empty(), "--judge ", o->judge_url,
                   ": also name the judge model (--judge-model)");
    SP_CHECK_INPUT(!o->job.teacher.model.empty(), "--teacher-model: empty model name");
    SP_CHECK_INPUT(!o->judge_model.empty() || (o->judge_temperature < 0 && o->judge_max_tokens == 0),
                   "--judge-temperature and --judge-max-tokens need a judge (--judge-model)");
    SP_CHECK_INPUT(job.retry.max_retries >= 0, "--retries: expected >= 0, got ", job.retry.max_retries);
    SP_CHECK_INPUT(o->timeout > 0, "--timeout: expected > 0 seconds, got ", o->timeout);
    SP_CHECK_INPUT(job.limit >= -1, "--limit: expected >= 0, got ", job.limit);
    job.teacher.api_key = env_or("SYNTHPERT_TEACHER_API_KEY", env_or("OPENAI_API_KEY", ""));
    job.teacher.timeout_s = o->timeout;
    if (!o->judge_model.empty()) {
      // The teacher's key goes only to the teacher's endpoint, never to
      // another host (an OpenAI key sent to a local judge over plain HTTP).
      const bool same_endpoint = o->judge_url.empty() || o->judge_url == job.teacher.url;
      job.judge = perturb::ChatEndpoint{same_endpoint ? job.teacher.url : o->judge_url, o->judge_model,
                                        env_or("SYNTHPERT_JUDGE_API_KEY", same_endpoint ? job.teacher.api_key : ""),
                                        o->timeout};
    }
    if (o->temperature >= 0) job.teacher_options.temperature = o->temperature;
    if (o->max_tokens > 0) job.teacher_options.max_tokens = o->max_tokens;
    if (o->judge_temperature >= 0) job.judge_options.temperature = o->judge_temperature;
    if (o->judge_max_tokens > 0) job.judge_options.max_tokens = o->judge_max_tokens;
    job.accept = perturb::parse_grade_list(o->accept);
    job.rejected_path = o->rejected.empty() ? perturb::default_rejected_path(job.out_path) : o->rejected;
    job.progress = !o->quiet;
    job.cancel = &install_graceful_interrupt(
        "\nsynthpert traces: finishing the requests in flight (their tokens are paid for); Ctrl-C again to stop "
        "at once\n");
    const auto summary = perturb::run_traces(job);
    print_json(summary);
    if (job.dry_run) return 0;
    if (summary["interrupted"].get<bool>()) {
      std::fprintf(stderr, "synthpert traces: interrupted; the rows in flight were written, %lld remain: "
                           "run again with --resume to continue\n",
                   static_cast<long long>(summary["remaining"].get<int64_t>()));
      return 130;
    }
    if (summary["failed"].get<int64_t>() > 0) {
      std::fprintf(stderr, "synthpert traces: %lld rows failed (see %s); run again with --resume to retry them\n",
                   static_cast<long long>(summary["failed"].get<int64_t>()), job.rejected_path.c_str());
      return 1;
    }
    return 0;
  };
}

const CommandRegistrar reg("traces", "Teacher reasoning traces for PerturbQA rows, graded by a judge model", setup);

}  // namespace
}  // namespace synthpert::cli

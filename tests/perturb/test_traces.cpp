// `synthpert traces` and its HTTP client against an in-process mock of an
// OpenAI-compatible server whose behaviour each test scripts: the expected
// files and counts follow from that script, written out by hand.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <thread>
#include <vector>

#include "common/error.h"
#include "perturb/openai_client.h"
#include "perturb/trace_store.h"
#include "perturb/traces.h"
#include "tests/perturb/mock_chat_server.h"
#include "tests/test_util.h"

namespace synthpert::perturb {
namespace {

using nlohmann::json;

const std::vector<std::pair<std::string, std::string>> kHello = {{"user", "hello"}};

RetryPolicy quick_retry(int retries) { return {retries, 0.001, 0.01}; }

TEST_CASE("chat client: request body, key, usage; what is retried and what is not", "[traces]") {
  std::atomic<int> calls{0};
  std::atomic<int> fail_first{0};
  std::atomic<int> status_for_failures{500};
  MockChatServer server([&](const json&, const httplib::Request& req) -> std::pair<int, json> {
    ++calls;
    if (req.get_header_value("Authorization") != "Bearer k") return {401, api_error("bad key")};
    if (fail_first-- > 0) return {status_for_failures.load(), api_error("try later")};
    return {200, completion("hi there", "stop", 7, 3)};
  });
  ChatClient client({server.url(), "m1", "k", 5}, quick_retry(2));

  ChatOptions options;
  options.temperature = 0.5;
  options.top_p = 0.9;
  options.seed = 7;
  options.max_tokens = 99;
  auto reply = client.complete({{"system", "s"}, {"user", "hello"}}, options);
  CHECK(reply.content == "hi there");
  CHECK(reply.finish_reason == "stop");
  CHECK(reply.prompt_tokens == 7);
  CHECK(reply.completion_tokens == 3);
  CHECK(reply.attempts == 1);
  const json sent = server.requests().back();
  CHECK(sent == json{{"model", "m1"},
                     {"messages", {{{"role", "system"}, {"content", "s"}}, {{"role", "user"}, {"content", "hello"}}}},
                     {"temperature", 0.5},
                     {"top_p", 0.9},
                     {"seed", 7},
                     {"max_completion_tokens", 99}});
  CHECK_FALSE(ChatClient({server.url(), "m1", "k", 5}, quick_retry(0)).complete(kHello, {}).content.empty());
  CHECK_FALSE(server.requests().back().contains("temperature"));

  SECTION("429 and 5xx are retried") {
    for (int status : {429, 503}) {
      status_for_failures = status;
      fail_first = 2;
      calls = 0;
      CHECK(client.complete(kHello, {}).attempts == 3);
      CHECK(calls == 3);
    }
  }
  SECTION("retries run out") {
    fail_first = 3;
    calls = 0;
    try {
      client.complete(kHello, {});
      FAIL("no error");
    } catch (const ChatError& e) {
      CHECK(e.status() == 500);
      CHECK_FALSE(e.is_fatal());
      CHECK_THAT(e.what(), Catch::Contains("try later") && Catch::Contains("after 3 attempts"));
    }
    CHECK(calls == 3);
  }
  SECTION("a 400 is not retried") {
    status_for_failures = 400;
    fail_first = 1;
    calls = 0;
    CHECK_THROWS_AS(client.complete(kHello, {}), ChatError);
    CHECK(calls == 1);
  }
  SECTION("a wrong key is fatal") {
    calls = 0;
    try {
      ChatClient({server.url(), "m1", "wrong", 5}, quick_retry(3)).complete(kHello, {});
      FAIL("no error");
    } catch (const ChatError& e) {
      CHECK(e.status() == 401);
      CHECK(e.is_fatal());
      CHECK_THAT(e.what(), Catch::Contains("bad key"));
    }
    CHECK(calls == 1);
  }
}

// A port the kernel gave out and that was closed again: nothing listens there.
int closed_port() {
  const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(sock);
  return ntohs(addr.sin_port);
}

TEST_CASE("chat client: retry delays, with and without Retry-After", "[traces]") {
  const RetryPolicy p{5, 2.0, 60.0};
  std::mt19937 rng(1);
  for (int i = 0; i < 200; ++i) {
    // Our schedule: 2 * 2^retry within +-25%, capped at 60 before the jitter.
    const double own = retry_delay_s(p, 2, "", rng);
    CHECK((own >= 6.0 && own <= 10.0));
    const double capped = retry_delay_s(p, 10, "", rng);
    CHECK((capped >= 45.0 && capped <= 75.0));
    // The server's seconds: never sooner, at most 25% later.
    const double told = retry_delay_s(p, 0, "7", rng);
    CHECK((told >= 7.0 && told <= 8.75));
    CHECK(retry_delay_s(p, 0, "0", rng) == 0.0);
    const double long_wait = retry_delay_s(p, 0, "3600", rng);
    CHECK((long_wait >= 60.0 && long_wait <= 75.0));
    // Not seconds (an HTTP date, junk, NaN, negative): our schedule.
    for (const char* bad : {"Wed, 21 Oct 2015 07:28:00 GMT", "nan", "inf", "-5", "3s"}) {
      const double d = retry_delay_s(p, 0, bad, rng);
      CHECK((d >= 1.5 && d <= 2.5));
    }
  }
  // The jitter spreads workers out.
  CHECK(retry_delay_s(p, 3, "", rng) != retry_delay_s(p, 3, "", rng));
}

TEST_CASE("chat client: no server, and replies without text", "[traces]") {
  const int port = closed_port();
  try {
    ChatClient({"http://127.0.0.1:" + std::to_string(port), "m", "", 2}, quick_retry(1)).complete(kHello, {});
    FAIL("no error");
  } catch (const ChatError& e) {
    CHECK(e.status() == 0);
    CHECK_THAT(e.what(), Catch::Contains("no response") && Catch::Contains("after 2 attempts"));
  }
}

TEST_CASE("chat client: bodies that are not a completion are refused; error texts are cut whole", "[traces]") {
  for (const std::string body :
       {"", "not json", "[]", "{}", R"({"choices": []})", R"({"choices": [1]})", R"({"choices": [{"message": "hi"}]})",
        R"({"choices": [{}]})", "{\"choices\": 9e999}"}) {
    INFO(body);
    try {
      parse_chat_reply(body);
      FAIL("parsed");
    } catch (const ChatError& e) {
      CHECK(e.status() == 200);
      CHECK_THAT(e.what(), Catch::StartsWith("unusable reply: "));
    }
  }
  // Counts that are not integers read as absent; content of another type as no text.
  const ChatReply r = parse_chat_reply(
      R"({"choices": [{"message": {"content": 7}, "finish_reason": 1}], "usage": {"prompt_tokens": 2.5, "completion_tokens": "3"}})");
  CHECK(r.content.empty());
  CHECK(r.finish_reason.empty());
  CHECK(r.prompt_tokens == 0);
  CHECK(r.completion_tokens == 0);

  CHECK(chat_error_text(R"({"error": {"message": "bad key"}})") == "bad key");
  CHECK(chat_error_text(R"({"error": "flat"})") == R"({"error": "flat"})");
  // A long body is cut after 300 bytes, never inside a character: 299 ASCII
  // bytes then "é" (2 bytes) cut before the "é".
  const std::string long_body = std::string(299, 'a') + "\xc3\xa9" + std::string(50, 'b');
  CHECK(chat_error_text(long_body) == std::string(299, 'a') + "...");
  CHECK(chat_error_text(std::string(400, 'c')) == std::string(300, 'c') + "...");
}

TEST_CASE("chat client: a reply without text is an answer, not a failure", "[traces]") {
  // content null: a refusal (its text in "refusal"), or a reasoning model
  // that spent its budget thinking (vLLM's reasoning parsers).
  MockChatServer server([](const json& body, const httplib::Request&) -> std::pair<int, json> {
    json reply = completion("", body["model"] == "refuses" ? "stop" : "length");
    reply["choices"][0]["message"]["content"] = nullptr;
    if (body["model"] == "refuses") reply["choices"][0]["message"]["refusal"] = "I can't help with that.";
    else reply["choices"][0]["message"]["reasoning_content"] = "Thinking about X and";
    return {200, reply};
  });
  const auto refused = ChatClient({server.url(), "refuses", "", 2}, quick_retry(3)).complete(kHello, {});
  CHECK(refused.content == "I can't help with that.");
  CHECK(refused.finish_reason == "stop");
  const auto cut = ChatClient({server.url(), "thinks", "", 2}, quick_retry(3)).complete(kHello, {});
  CHECK(cut.content.empty());
  CHECK(cut.reasoning == "Thinking about X and");
  CHECK(cut.finish_reason == "length");
  CHECK(server.requests().size() == 2);  // neither retried
}


TEST_CASE("chat client: reasoning sent apart from the text is kept", "[traces]") {
  MockChatServer server([](const json& body, const httplib::Request&) -> std::pair<int, json> {
    json reply = completion("<answer>upregulated</answer>");
    // DeepSeek's API and vLLM's reasoning parsers say reasoning_content; others reasoning.
    reply["choices"][0]["message"][body["model"].get<std::string>()] = "Loss of X frees Y.";
    return {200, reply};
  });
  for (const std::string key : {"reasoning_content", "reasoning"}) {
    const auto r = ChatClient({server.url(), key, "", 2}, quick_retry(0)).complete(kHello, {});
    CHECK(r.content == "<answer>upregulated</answer>");
    CHECK(r.reasoning == "Loss of X frees Y.");
  }
  CHECK(ChatClient({server.url(), "other", "", 2}, quick_retry(0)).complete(kHello, {}).reasoning.empty());
}

TEST_CASE("chat client: content as a list of parts, thinking parts as reasoning", "[traces]") {
  MockChatServer server([](const json&, const httplib::Request&) -> std::pair<int, json> {
    json reply = completion("");
    reply["choices"][0]["message"]["content"] = json::array(
        {{{"type", "thinking"}, {"thinking", json::array({{{"type", "text"}, {"text", "Loss of X "}},
                                                          {{"type", "text"}, {"text", "frees Y."}}})}},
         {{"type", "text"}, {"text", "<answer>"}},
         {{"type", "image_url"}, {"image_url", "ignored"}},
         {{"type", "text"}, {"text", "upregulated</answer>"}}});
    return {200, reply};
  });
  const auto r = ChatClient({server.url(), "m", "", 2}, quick_retry(0)).complete(kHello, {});
  CHECK(r.content == "<answer>upregulated</answer>");
  CHECK(r.reasoning == "Loss of X frees Y.");
}

TEST_CASE("chat client: a 429 for an account without credit is not retried and stops a run", "[traces]") {
  MockChatServer server([](const json& body, const httplib::Request&) -> std::pair<int, json> {
    json err = {{"error", {{"message", "You exceeded your current quota"}, {"type", "insufficient_quota"},
                           {"code", body["model"] == "broke" ? json("insufficient_quota") : json(nullptr)}}}};
    if (body["model"] == "busy") err = {{"error", {{"message", "Rate limit reached"}, {"code", "rate_limit_exceeded"}}}};
    return {429, err};
  });
  try {
    ChatClient({server.url(), "broke", "", 2}, quick_retry(3)).complete(kHello, {});
    FAIL("no error");
  } catch (const ChatError& e) {
    CHECK(e.status() == 429);
    CHECK(e.is_fatal());
    CHECK_THAT(e.what(), Catch::Contains("exceeded your current quota"));
  }
  CHECK(server.requests().size() == 1);
  // A rate limit is waited out as before.
  try {
    ChatClient({server.url(), "busy", "", 2}, quick_retry(2)).complete(kHello, {});
    FAIL("no error");
  } catch (const ChatError& e) {
    CHECK_FALSE(e.is_fatal());
  }
  CHECK(server.requests().size() == 1 + 3);
}

// --- the whole run --------------------------------------------------------

// Rows whose gene names tell the mock what to do:
//   G_EXC  correct trace, judged excellent      -> accepted
//   G_AVG  correct trace, judged average        -> rejected "grade"
//   G_UNG  correct trace, judge gives no grade  -> rejected "ungraded"
//   G_WRG  teacher answers another label        -> rejected "answer_mismatch" (no judge call)
//   G_TAG  teacher forgets the tags             -> rejected "format" (no judge call)
//   G_FLK  teacher 503 once, then good          -> accepted (one retry)
//   G_ERR  teacher 500 while `broken` is set    -> failed ("error"), retried on --resume
const std::vector<std::string> kGenes = {"G_EXC", "G_AVG", "G_UNG", "G_WRG", "G_TAG", "G_FLK", "G_ERR"};

std::string write_rows(const std::string& dir) {
  const std::string path = dir + "/rows.jsonl";
  std::ofstream f(path);
  for (const auto& gene : kGenes) {
    const std::string label = gene == "G_WRG" ? "downregulated" : "upregulated";
    f << json{{"cell_type", "k562"},
              {"pert", "P1"},
              {"gene", gene},
              {"label", label},
              {"messages",
               {{{"role", "system"}, {"content", "student system"}},
                {{"role", "user"}, {"content", "Does " + gene + " change when P1 is knocked down?"}}}}}
                .dump()
         << "\n";
  }
  return path;
}

std::string trace_for(const std::string& gene, const std::string& label) {
  return "<think>\nReasoning about " + gene + ".\n</think>\n<answer>" + label + "</answer>";
}

// The G_XXX gene a request's last message names ("" if none).
std::string gene_in(const json& body) {
  const std::string user = body["messages"].back()["content"];
  std::smatch m;
  return std::regex_search(user, m, std::regex("G_[A-Z]{3}")) ? m.str() : "";
}

// A teacher reply that calls the row's gene upregulated, well formed.
json upregulated_trace(const json& body) { return completion(trace_for(gene_in(body), "upregulated")); }

class ScriptedTeacherAndJudge {
 public:
  std::atomic<bool> broken{true};
  std::atomic<int> teacher_calls{0}, judge_calls{0};
  std::map<std::string, int> teacher_calls_per_gene;
  std::mutex mutex;

  std::pair<int, json> operator()(const json& body) {
    const std::string model = body["model"], user = body["messages"].back()["content"];
    const std::string gene = gene_in(body);
    // (No Catch assertions here: this runs on the server's threads.)
    if (gene.empty()) return {400, api_error("no gene in the prompt")};
    std::smatch m;
    if (model == "teacher-1") {
      ++teacher_calls;
      int nth;
      {
        std::lock_guard<std::mutex> lock(mutex);
        nth = ++teacher_calls_per_gene[gene];
      }
      // The teacher prompt tells it the label; a correct teacher repeats it.
      if (!std::regex_search(user, m, std::regex("Measured outcome \\(for you only\\): ([a-z ]+)")))
        return {400, api_error("no label in the prompt")};
      const std::string label = m[1];
      if (gene == "G_FLK" && nth == 1) return {503, api_error("overloaded")};
      if (gene == "G_ERR" && broken) return {500, api_error("internal")};
      if (gene == "G_WRG") return {200, completion(trace_for(gene, "upregulated"))};
      if (gene == "G_TAG") return {200, completion("It goes " + label + ".")};
      return {200, completion("Here you go.\n" + trace_for(gene, label))};
    }
    ++judge_calls;
    // The judge must be shown the trace itself (without the teacher's chatter).
    if (user.find("Candidate explanation:\n" + trace_for(gene, "upregulated")) == std::string::npos ||
        user.find("Here you go.") != std::string::npos)
      return {200, completion("<grade>terrible</grade>")};
    if (gene == "G_AVG") return {200, completion("Vague.\n<grade>average</grade>")};
    if (gene == "G_UNG") return {200, completion("I cannot grade this.")};
    return {200, completion("Specific and correct.\n<grade>Excellent</grade>", "stop", 20, 8)};
  }
};

std::vector<json> read_records(const std::string& path) {
  std::vector<json> out;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) out.push_back(json::parse(line));
  return out;
}

TraceJob make_job(const std::string& dir, const std::string& url) {
  TraceJob job;
  job.data_path = dir + "/rows.jsonl";
  job.out_path = dir + "/out/traces.jsonl";
  job.rejected_path = default_rejected_path(job.out_path);
  job.teacher = {url, "teacher-1", "", 5};
  job.judge = ChatEndpoint{url, "judge-1", "", 5};
  job.retry = quick_retry(2);
  job.workers = 3;
  job.progress = false;
  return job;
}

TEST_CASE("traces: accepted, rejected and failed rows land where they belong, and --resume finishes", "[traces]") {
  test::TempDir dir("traces-run");
  write_rows(dir.path);
  ScriptedTeacherAndJudge script;
  MockChatServer server([&](const json& body, const httplib::Request&) { return script(body); });
  TraceJob job = make_job(dir.path, server.url());
  CHECK(job.rejected_path == dir.path + "/out/traces.rejected.jsonl");

  const json summary = run_traces(job);
  CHECK(summary["input_rows"] == 7);
  CHECK(summary["rows"] == 7);
  CHECK(summary["accepted"] == 2);
  CHECK(summary["rejected"] == json{{"answer_mismatch", 1}, {"format", 1}, {"grade", 1}, {"ungraded", 1}});
  CHECK(summary["failed"] == 1);
  CHECK(summary["grades"] == json{{"average", 1}, {"excellent", 2}});
  CHECK(summary["remaining"] == 1);
  // Teacher: 7 rows + G_FLK's retry + G_ERR's 3 attempts; judge: the 4 correct traces.
  CHECK(script.teacher_calls == 7 + 1 + 2);
  CHECK(script.judge_calls == 4);
  CHECK(summary["usage"]["teacher"] == json{{"requests", 6}, {"failed_requests", 1}, {"retries", 1},
                                            {"prompt_tokens", 60}, {"completion_tokens", 30}});
  CHECK(summary["usage"]["judge"]["failed_requests"] == 0);
  CHECK(summary["usage"]["judge"]["requests"] == 4);
  CHECK(summary["usage"]["judge"]["completion_tokens"] == 8 + 8 + 5 + 5);

  auto accepted = read_records(job.out_path);
  REQUIRE(accepted.size() == 2);
  std::sort(accepted.begin(), accepted.end(), [](const json& a, const json& b) { return a["gene"] < b["gene"]; });
  CHECK(accepted[0]["gene"] == "G_EXC");
  CHECK(accepted[1]["gene"] == "G_FLK");
  CHECK(accepted[0] == json{{"cell_type", "k562"},
                            {"pert", "P1"},
                            {"gene", "G_EXC"},
                            {"label", "upregulated"},
                            {"judge", "excellent"},
                            {"teacher_model", "teacher-1"},
                            {"judge_model", "judge-1"},
                            {"attempts", 1},
                            {"judge_reply", "Specific and correct.\n<grade>Excellent</grade>"},
                            {"messages",
                             {{{"role", "system"}, {"content", "student system"}},
                              {{"role", "user"}, {"content", "Does G_EXC change when P1 is knocked down?"}},
                              {{"role", "assistant"}, {"content", trace_for("G_EXC", "upregulated")}}}}});

  std::map<std::string, json> rejected;
  for (const auto& r : read_records(job.rejected_path)) rejected[r["gene"]] = r;
  REQUIRE(rejected.size() == 5);
  CHECK(rejected["G_AVG"]["reason"] == "grade");
  CHECK(rejected["G_AVG"]["judge"] == "average");
  CHECK(rejected["G_AVG"]["messages"].size() == 3);  // kept whole: a looser --accept can still use it
  CHECK(rejected["G_UNG"]["reason"] == "ungraded");
  CHECK(rejected["G_UNG"]["judge"].is_null());
  CHECK(rejected["G_WRG"]["reason"] == "answer_mismatch");
  CHECK(rejected["G_WRG"]["teacher_reply"] == trace_for("G_WRG", "upregulated"));
  CHECK_FALSE(rejected["G_WRG"].contains("messages"));
  CHECK(rejected["G_TAG"]["reason"] == "format");
  CHECK(rejected["G_ERR"]["reason"] == "error");
  CHECK(rejected["G_ERR"]["stage"] == "teacher");
  CHECK_THAT(rejected["G_ERR"]["error"].get<std::string>(), Catch::Contains("HTTP 500: internal"));

  SECTION("a bad prompt file fails before any file or request") {
    std::ofstream(dir.path + "/judge.txt") << "[user]\n{question} without the trace\n";
    job.judge_prompt = dir.path + "/judge.txt";
    job.out_path = dir.path + "/other.jsonl";
    job.rejected_path = default_rejected_path(job.out_path);
    const size_t before = server.requests().size();
    CHECK_THROWS_WITH(run_traces(job), Catch::Contains("{trace}"));
    CHECK_FALSE(std::filesystem::exists(job.out_path));
    CHECK_FALSE(std::filesystem::exists(job.rejected_path));
    CHECK(server.requests().size() == before);
  }
  SECTION("the same --out without --resume is refused, nothing touched") {
    const std::string before = test::read_text(job.out_path);
    CHECK_THROWS_WITH(run_traces(job), Catch::Contains("exists; pass --resume"));
    CHECK(test::read_text(job.out_path) == before);
  }
  SECTION("--resume with other settings is refused, naming each difference; nothing is touched") {
    const std::string settings_path = dir.path + "/out/traces.settings.json";
    const std::string before = test::read_text(job.out_path), rejected_before = test::read_text(job.rejected_path);
    const std::string settings_before = test::read_text(settings_path);
    CHECK(json::parse(settings_before)["accept"] == json{"excellent", "good"});
    job.resume = true;
    const size_t requests = server.requests().size();
    auto refused = [&](const TraceJob& changed, const std::string& difference) {
      CHECK_THROWS_WITH(run_traces(changed), Catch::Contains("--resume needs the settings") &&
                                                 Catch::Contains(difference));
    };
    TraceJob other = job;
    other.teacher.model = "teacher-2";
    refused(other, R"(teacher_model: saved "teacher-1", now "teacher-2")");
    other = job;
    other.accept = {Grade::kExcellent, Grade::kGood, Grade::kAverage};
    refused(other, R"(accept: saved ["excellent","good"], now ["excellent","good","average"])");
    other = job;
    other.teacher_options.temperature = 0.7;
    refused(other, R"(teacher_sampling: saved {}, now {"temperature":0.7})");
    other = job;
    other.attempts = 2;
    other.teacher_options.temperature = 1.0;
    refused(other, "attempts: saved 1, now 2");
    other = job;
    other.judge.reset();
    refused(other, "judge_model: saved \"judge-1\", now unset");
    other = job;
    std::ofstream(dir.path + "/judge.txt") << "[user]\nGrade this: {trace}\n<grade>?</grade>\n";
    other.judge_prompt = dir.path + "/judge.txt";
    refused(other, "judge_prompt: ");
    CHECK(server.requests().size() == requests);
    CHECK(test::read_text(job.out_path) == before);
    CHECK(test::read_text(job.rejected_path) == rejected_before);
    CHECK(test::read_text(settings_path) == settings_before);

    // Another address or more workers is the same run.
    other = job;
    other.workers = 1;
    other.teacher.url = server.url() + "/";
    script.broken = false;
    CHECK(run_traces(other)["rows"] == 1);

    // Settings that no longer parse say so, and what to do.
    std::ofstream(settings_path) << "{\"teacher_model\": ";
    CHECK_THROWS_WITH(run_traces(job), Catch::Contains(settings_path + ": not valid JSON") &&
                                           Catch::Contains("without it the run cannot be resumed"));
    // Records whose settings are lost cannot be resumed.
    std::filesystem::remove(settings_path);
    CHECK_THROWS_WITH(run_traces(job), Catch::Contains("exists without " + settings_path));
  }
  SECTION("records of another teacher in the files are refused") {
    job.resume = true;
    { std::ofstream(job.out_path, std::ios::app) << json{{"cell_type", "k562"}, {"pert", "P9"}, {"gene", "G_EXC"},
                                                           {"teacher_model", "teacher-2"}, {"judge_model", "judge-1"}}
                                                   << "\n"; }
    CHECK_THROWS_WITH(run_traces(job), Catch::Contains("written with teacher model 'teacher-2'"));
  }
  SECTION("a whole line that is not JSON is refused, not skipped") {
    job.resume = true;
    { std::ofstream(job.out_path, std::ios::app) << "{oops\n"; }
    const std::string before = test::read_text(job.out_path);
    CHECK_THROWS_WITH(run_traces(job),
                      Catch::Contains(": not valid JSON") && Catch::Contains("cannot resume from this file"));
    CHECK(test::read_text(job.out_path) == before);
  }
  SECTION("--resume retries only the failed row, after cutting a half-written line") {
    { std::ofstream(job.out_path, std::ios::app) << R"({"cell_type":"k562","pe)"; }
    script.broken = false;
    script.teacher_calls = 0;
    script.judge_calls = 0;
    job.resume = true;
    const json again = run_traces(job);
    CHECK(again["repaired_partial_lines"] == 1);
    CHECK(again["already_done"] == 6);
    CHECK(again["rows"] == 1);
    CHECK(again["accepted"] == 1);
    CHECK(again["accepted_total"] == 3);
    CHECK(again["remaining"] == 0);
    CHECK(script.teacher_calls == 1);
    CHECK(script.judge_calls == 1);
    const auto lines = read_records(job.out_path);  // every line parses again
    REQUIRE(lines.size() == 3);
    CHECK(lines[2]["gene"] == "G_ERR");
    // Nothing left: a third run sends nothing.
    const json third = run_traces(job);
    CHECK(third["rows"] == 0);
    CHECK(script.teacher_calls == 1);
  }
}

TEST_CASE("traces: --attempts asks the teacher again after a rejection and keeps the earlier replies", "[traces]") {
  test::TempDir dir("traces-attempts");
  write_rows(dir.path);
  // Replies name their attempt, so the judge and the test can tell them apart:
  //   G_EXC  a wrong answer first, then right        -> accepted on attempt 2
  //   G_AVG  judged average first, then excellent    -> accepted on attempt 2
  //   G_WRG  always the wrong answer                 -> answer_mismatch after 3 attempts
  //   G_ERR  judged average first, then a teacher 500 -> error on attempt 2
  //   others right and excellent at once              -> accepted on attempt 1
  std::mutex mutex;
  std::map<std::string, int> asked;
  std::atomic<int> judge_calls{0};
  auto reply = [](const std::string& gene, int nth, const std::string& label) {
    return "<think>\nAttempt " + std::to_string(nth) + " on " + gene + ".\n</think>\n<answer>" + label + "</answer>";
  };
  MockChatServer server([&](const json& body, const httplib::Request&) -> std::pair<int, json> {
    const std::string gene = gene_in(body), user = body["messages"].back()["content"];
    if (body["model"] == "teacher-1") {
      int nth;
      {
        std::lock_guard<std::mutex> lock(mutex);
        nth = ++asked[gene];
      }
      if (gene == "G_ERR" && nth == 2) return {500, api_error("internal")};
      // G_WRG's row is labelled downregulated, the others upregulated.
      const bool wrong = gene == "G_WRG" || (gene == "G_EXC" && nth == 1);
      return {200, completion(reply(gene, nth, (gene == "G_WRG") != wrong ? "downregulated" : "upregulated"))};
    }
    ++judge_calls;
    const bool first = user.find("Attempt 1 on") != std::string::npos;
    if (first && (gene == "G_AVG" || gene == "G_ERR")) return {200, completion("<grade>average</grade>")};
    return {200, completion("<grade>excellent</grade>")};
  });
  TraceJob job = make_job(dir.path, server.url());
  job.retry = quick_retry(0);
  job.attempts = 3;
  const json s = run_traces(job);
  CHECK(s["accepted"] == 5);
  CHECK(s["rejected"] == json{{"answer_mismatch", 1}});
  CHECK(s["failed"] == 1);
  CHECK(s["reasked"] == 4);
  CHECK(s["accepted_after_reask"] == 2);
  CHECK(asked == std::map<std::string, int>{{"G_EXC", 2}, {"G_AVG", 2}, {"G_UNG", 1}, {"G_WRG", 3},
                                            {"G_TAG", 1}, {"G_FLK", 1}, {"G_ERR", 2}});
  CHECK(judge_calls == 1 + 2 + 1 + 1 + 1 + 1);
  CHECK(s["usage"]["teacher"]["requests"] == 11);  // the failed request is not a reply

  std::map<std::string, json> out;
  for (const auto& r : read_records(job.out_path)) out[r["gene"]] = r;
  for (const auto& r : read_records(job.rejected_path)) out[r["gene"]] = r;
  REQUIRE(out.size() == 7);
  CHECK(out["G_UNG"]["attempts"] == 1);
  CHECK_FALSE(out["G_UNG"].contains("earlier"));

  const json& exc = out["G_EXC"];
  CHECK(exc["attempts"] == 2);
  CHECK(exc["judge"] == "excellent");
  CHECK(exc["messages"].back()["content"] == reply("G_EXC", 2, "upregulated"));
  REQUIRE(exc["earlier"].size() == 1);
  CHECK(exc["earlier"][0] ==
        json{{"reason", "answer_mismatch"}, {"judge", nullptr}, {"teacher_reply", reply("G_EXC", 1, "downregulated")}});

  const json& avg = out["G_AVG"];
  CHECK(avg["attempts"] == 2);
  REQUIRE(avg["earlier"].size() == 1);
  CHECK(avg["earlier"][0]["reason"] == "grade");
  CHECK(avg["earlier"][0]["judge"] == "average");  // the whole graded conversation is kept
  CHECK(avg["earlier"][0]["messages"].back()["content"] == reply("G_AVG", 1, "upregulated"));

  const json& wrg = out["G_WRG"];
  CHECK(wrg["reason"] == "answer_mismatch");
  CHECK(wrg["attempts"] == 3);
  CHECK(wrg["teacher_reply"] == reply("G_WRG", 3, "upregulated"));
  REQUIRE(wrg["earlier"].size() == 2);
  CHECK(wrg["earlier"][1]["teacher_reply"] == reply("G_WRG", 2, "upregulated"));

  const json& err = out["G_ERR"];
  CHECK(err["reason"] == "error");
  CHECK(err["stage"] == "teacher");
  CHECK(err["attempts"] == 2);
  REQUIRE(err["earlier"].size() == 1);
  CHECK(err["earlier"][0]["judge"] == "average");

  job.attempts = 0;
  CHECK_THROWS_WITH(run_traces(job), Catch::Contains("--attempts: expected 1..100, got 0"));
  job.attempts = 2;
  job.teacher_options.temperature = 0;
  CHECK_THROWS_WITH(run_traces(job), Catch::Contains("a greedy teacher would give the same reply again"));
}

TEST_CASE("traces: --resume continues a row cut short with only the attempts it has left", "[traces]") {
  test::TempDir dir("traces-attempts-resume");
  write_rows(dir.path);
  // Replies name their attempt (counted over all runs), so the judge can tell them apart:
  //   G_AVG  average on attempts 1 and 2, excellent on 3; the first grade comes
  //          as Ctrl-C arrives                              -> cut short, then accepted on attempt 3
  //   G_ERR  average on attempt 1, a teacher 500 on 2, then average until 5
  //          (excellent from 5: a full new budget would reach it) -> error, then "grade" after 3
  //   others right and excellent at once                     -> accepted on attempt 1
  std::mutex mutex;
  std::map<std::string, int> asked;
  std::atomic<bool> cancel{false};
  auto reply = [](const std::string& gene, int nth) {
    const std::string label = gene == "G_WRG" ? "downregulated" : "upregulated";
    return "<think>\nAttempt " + std::to_string(nth) + " on " + gene + ".\n</think>\n<answer>" + label + "</answer>";
  };
  MockChatServer server([&](const json& body, const httplib::Request&) -> std::pair<int, json> {
    const std::string gene = gene_in(body), user = body["messages"].back()["content"];
    if (body["model"] == "teacher-1") {
      int nth;
      {
        std::lock_guard<std::mutex> lock(mutex);
        nth = ++asked[gene];
      }
      if (gene == "G_ERR" && nth == 2) return {500, api_error("internal")};
      return {200, completion(reply(gene, nth))};
    }
    std::smatch m;
    if (!std::regex_search(user, m, std::regex("Attempt ([0-9]+) on"))) return {400, api_error("no attempt")};
    const int nth = std::stoi(m[1]);
    if (gene == "G_AVG" && nth == 1) cancel = true;  // as if SIGINT arrived while the judge was grading
    if ((gene == "G_AVG" && nth < 3) || (gene == "G_ERR" && nth < 5))
      return {200, completion("<grade>average</grade>")};
    return {200, completion("<grade>excellent</grade>")};
  });
  TraceJob job = make_job(dir.path, server.url());
  job.retry = quick_retry(0);
  job.attempts = 3;
  job.workers = 1;
  job.cancel = &cancel;
  auto last_record = [&](const std::string& gene) {
    json last;
    for (const auto& path : {job.rejected_path, job.out_path})
      for (const auto& r : read_records(path))
        if (r["gene"] == gene) last = r;
    return last;
  };

  // Run 1: G_EXC accepted; G_AVG's first reply is graded average as the run stops.
  const json first = run_traces(job);
  CHECK(first["rows"] == 2);
  CHECK(first["accepted"] == 1);
  CHECK(first["unfinished"] == 1);
  CHECK(first["rejected"] == json::object());  // not finished: not counted as rejected
  CHECK(first["interrupted"] == true);
  CHECK(first["remaining"] == 6);
  const json cut = last_record("G_AVG");
  CHECK(cut["reason"] == "grade");
  CHECK(cut["attempts"] == 1);

  // Run 2: G_AVG goes on at attempt 2 and is accepted on its third reply in all.
  cancel = false;
  job.resume = true;
  const json second = run_traces(job);
  CHECK(second["already_done"] == 1);
  CHECK(second["rows"] == 6);
  CHECK(second["accepted"] == 5);
  CHECK(second["failed"] == 1);
  CHECK(second["unfinished"] == 0);
  CHECK(second["remaining"] == 1);
  CHECK(asked["G_AVG"] == 3);
  const json avg = last_record("G_AVG");
  CHECK(avg["judge"] == "excellent");
  CHECK(avg["attempts"] == 3);
  REQUIRE(avg["earlier"].size() == 2);
  CHECK(avg["earlier"][0]["reason"] == "grade");  // run 1's reply, carried over
  CHECK(avg["earlier"][0]["messages"].back()["content"] == reply("G_AVG", 1));
  CHECK_FALSE(avg["earlier"][0].contains("gene"));  // shaped as any "earlier" entry
  CHECK(avg["earlier"][1]["messages"].back()["content"] == reply("G_AVG", 2));
  const json err = last_record("G_ERR");
  CHECK(err["reason"] == "error");
  CHECK(err["attempts"] == 2);

  // Run 3: G_ERR had one reply rejected, so two attempts are left, not three.
  const json third = run_traces(job);
  CHECK(third["rows"] == 1);
  CHECK(third["rejected"] == json{{"grade", 1}});
  CHECK(third["remaining"] == 0);
  CHECK(asked["G_ERR"] == 4);  // three replies and the failed request, as without the failure
  const json done = last_record("G_ERR");
  CHECK(done["reason"] == "grade");
  CHECK(done["attempts"] == 3);
  REQUIRE(done["earlier"].size() == 2);
  CHECK(done["earlier"][0]["messages"].back()["content"] == reply("G_ERR", 1));
  CHECK(done["earlier"][1]["messages"].back()["content"] == reply("G_ERR", 3));
  CHECK(done["messages"].back()["content"] == reply("G_ERR", 4));

  // Nothing left.
  const size_t requests = server.requests().size();
  CHECK(run_traces(job)["rows"] == 0);
  CHECK(server.requests().size() == requests);
}

TEST_CASE("trace store: which rows --resume finishes, continues, and with which earlier replies", "[traces]") {
  test::TempDir dir("traces-store-resume");
  auto row = [](const std::string& gene, const json& fields, const json& more = json::object()) {
    json r = {{"cell_type", "k562"}, {"pert", "P1"}, {"gene", gene}, {"label", "upregulated"},
              {"teacher_model", "t"}, {"judge_model", "j"}};
    r.update(fields);
    r.update(more);
    return r;
  };
  const json bad1 = {{"reason", "grade"}, {"judge", "bad"}, {"judge_reply", "1"}};
  const json bad2 = {{"reason", "format"}, {"judge", nullptr}, {"teacher_reply", "2"}};
  auto conversation = [](const std::string& trace) {
    return json::array({{{"role", "user"}, {"content", "q"}}, {{"role", "assistant"}, {"content", trace}}});
  };
  // The same records, written by a run of `attempts` attempts, read back by --resume.
  auto reopen = [&](int attempts) {
    const std::string out = dir.path + "/a" + std::to_string(attempts) + ".jsonl";
    const std::string rejected = dir.path + "/r" + std::to_string(attempts) + ".jsonl";
    const json settings = {{"attempts", attempts}};
    {
      TraceStore store(out, rejected, false, {"t", "j", attempts}, settings);
      store.write(row("G_FIN", {{"attempts", 3}, {"earlier", json::array({bad1, bad1})}, {"reason", "format"}}), false);
      store.write(row("G_CUT", bad1, {{"attempts", 1}}), false);  // cut short after one reply
      store.write(row("G_OLD", bad2), false);                             // no "attempts": one reply
      // Failed on its third attempt: two replies spent.
      store.write(row("G_ERR", {{"reason", "error"}, {"attempts", 3}, {"earlier", json::array({bad1, bad2})}}), false);
      // Cut short, then failed on its second attempt: the last record wins.
      store.write(row("G_TWO", bad1, {{"attempts", 1}}), false);
      store.write(row("G_TWO", {{"reason", "error"}, {"attempts", 2}, {"earlier", json::array({bad1})}}), false);
      // Cut short, then accepted.
      store.write(row("G_ACC", bad1, {{"attempts", 1}}), false);
      store.write(row("G_ACC", {{"judge", "good"}, {"attempts", 2}, {"earlier", json::array({bad1})}}), true);
      // The judge failed on its second attempt: the trace is kept to be judged again.
      store.write(row("G_JDG", {{"reason", "error"}, {"stage", "judge"}, {"attempts", 2},
                                {"earlier", json::array({bad1})}, {"messages", conversation("T")}}), false);
      // The judge failed, then (resumed) the trace was graded bad as a run
      // stopped: the last record wins, and the trace is spent.
      store.write(row("G_JCT", {{"reason", "error"}, {"stage", "judge"}, {"attempts", 1},
                                {"messages", conversation("U")}}), false);
      store.write(row("G_JCT", bad1, {{"attempts", 1}, {"messages", conversation("U")}}), false);
      // The teacher failed: nothing to judge (messages without a reply, as a
      // hand-edited record might hold, carry nothing either).
      store.write(row("G_TCH", {{"reason", "error"}, {"stage", "teacher"}, {"attempts", 1},
                                {"messages", conversation("V")}}), false);
      store.write(row("G_NOA", {{"reason", "error"}, {"stage", "judge"}, {"attempts", 1},
                                {"messages", json::array({{{"role", "user"}, {"content", "q"}}})}}), false);
    }
    return std::make_unique<TraceStore>(out, rejected, true, TraceRunIdentity{"t", "j", attempts}, settings);
  };
  const auto three = reopen(3);
  CHECK(three->finished() == std::unordered_set<std::string>{"k562\tP1\tG_FIN", "k562\tP1\tG_ACC"});
  // Each unfinished row: its earlier replies, and the trace left to judge ("" for none).
  auto state = [](const std::unordered_map<std::string, UnfinishedRow>& u) {
    std::map<std::string, std::pair<json, std::string>> out;
    for (const auto& [key, row] : u) out[key] = {row.earlier, row.unjudged_trace.value_or("")};
    return out;
  };
  json jct_reply = bad1;
  jct_reply["messages"] = conversation("U");
  CHECK(state(three->unfinished()) == std::map<std::string, std::pair<json, std::string>>{
                                          {"k562\tP1\tG_CUT", {json::array({bad1}), ""}},
                                          {"k562\tP1\tG_OLD", {json::array({bad2}), ""}},
                                          {"k562\tP1\tG_ERR", {json::array({bad1, bad2}), ""}},
                                          {"k562\tP1\tG_TWO", {json::array({bad1}), ""}},
                                          {"k562\tP1\tG_JDG", {json::array({bad1}), "T"}},
                                          {"k562\tP1\tG_JCT", {json::array({jct_reply}), ""}},
                                          {"k562\tP1\tG_TCH", {json::array(), ""}},
                                          {"k562\tP1\tG_NOA", {json::array(), ""}}});

  // With one attempt per row, every rejection is final; failed rows are
  // retried, a trace whose judge failed still judged first.
  const auto one = reopen(1);
  CHECK(one->finished().size() == 5);
  CHECK(state(one->unfinished()) == std::map<std::string, std::pair<json, std::string>>{
                                        {"k562\tP1\tG_ERR", {json::array({bad1, bad2}), ""}},
                                        {"k562\tP1\tG_TWO", {json::array({bad1}), ""}},
                                        {"k562\tP1\tG_JDG", {json::array({bad1}), "T"}},
                                        {"k562\tP1\tG_TCH", {json::array(), ""}},
                                        {"k562\tP1\tG_NOA", {json::array(), ""}}});
}

TEST_CASE("traces: a teacher's separate reasoning becomes the trace the judge sees and the student learns",
          "[traces]") {
  test::TempDir dir("traces-reasoning");
  write_rows(dir.path);
  MockChatServer server([&](const json& body, const httplib::Request&) -> std::pair<int, json> {
    const std::string gene = gene_in(body), user = body["messages"].back()["content"];
    if (body["model"] == "teacher-1") {
      json reply = completion(gene == "G_TAG" ? "It goes up." : "<answer>upregulated</answer>");
      reply["choices"][0]["message"]["reasoning_content"] = "Because of " + gene + ".";
      return {200, reply};
    }
    const bool shown = user.find("<think>\nBecause of " + gene + ".\n</think>\n<answer>upregulated</answer>") !=
                       std::string::npos;
    return {200, completion(shown ? "<grade>good</grade>" : "<grade>terrible</grade>")};
  });
  TraceJob job = make_job(dir.path, server.url());
  const json s = run_traces(job);
  CHECK(s["accepted"] == 5);  // all but G_WRG (labelled down) and G_TAG (no answer tags)
  std::map<std::string, json> out;
  for (const auto& r : read_records(job.out_path)) out[r["gene"]] = r;
  for (const auto& r : read_records(job.rejected_path)) out[r["gene"]] = r;
  CHECK(out["G_EXC"]["messages"].back()["content"] ==
        "<think>\nBecause of G_EXC.\n</think>\n<answer>upregulated</answer>");
  CHECK(out["G_TAG"]["reason"] == "format");
  CHECK(out["G_TAG"]["teacher_reply"] == "It goes up.");
  CHECK(out["G_TAG"]["teacher_reasoning"] == "Because of G_TAG.");
}

TEST_CASE("traces: --dry-run shows the first row's requests and sends and writes nothing", "[traces]") {
  test::TempDir dir("traces-dry");
  write_rows(dir.path);
  MockChatServer server([](const json&, const httplib::Request&) -> std::pair<int, json> {
    return {500, api_error("must not be called")};
  });
  TraceJob job = make_job(dir.path, server.url());
  job.dry_run = true;
  const json s = run_traces(job);
  CHECK(s["dry_run"] == true);
  CHECK(s["input_rows"] == 7);
  const json& teacher = s["first_row"]["teacher"];
  CHECK(teacher["model"] == "teacher-1");
  const std::string user = teacher["messages"].back()["content"];
  CHECK_THAT(user, Catch::Contains("Does G_EXC change when P1 is knocked down?") &&
                       Catch::Contains("Measured outcome (for you only): upregulated"));
  const std::string judged = s["first_row"]["judge"]["messages"].back()["content"];
  CHECK_THAT(judged, Catch::Contains("<the teacher's trace>"));
  CHECK(server.requests().empty());
  CHECK_FALSE(std::filesystem::exists(job.out_path));
  CHECK_FALSE(std::filesystem::exists(job.rejected_path));
  // Without a judge there is no judge request to show.
  job.judge.reset();
  CHECK_FALSE(run_traces(job)["first_row"].contains("judge"));
}

TEST_CASE("traces: without a judge, checked traces are accepted; --limit bounds a run", "[traces]") {
  test::TempDir dir("traces-nojudge");
  write_rows(dir.path);
  ScriptedTeacherAndJudge script;
  script.broken = false;
  MockChatServer server([&](const json& body, const httplib::Request&) { return script(body); });
  TraceJob job = make_job(dir.path, server.url());
  job.judge.reset();
  job.limit = 4;
  json s = run_traces(job);
  CHECK(s["rows"] == 4);
  CHECK(s["remaining"] == 3);
  CHECK_FALSE(s["usage"].contains("judge"));
  job.resume = true;
  job.limit = -1;
  s = run_traces(job);
  CHECK(s["rows"] == 3);
  CHECK(script.judge_calls == 0);
  // Over both runs: G_WRG and G_TAG fail their checks, the other five are accepted.
  const auto accepted = read_records(job.out_path);
  CHECK(accepted.size() == 5);
  for (const auto& r : accepted) CHECK(r["judge"].is_null());
  CHECK(read_records(job.rejected_path).size() == 2);
}

TEST_CASE("traces: a rejected key stops the run; what was written stays and --resume continues", "[traces]") {
  test::TempDir dir("traces-fatal");
  write_rows(dir.path);
  std::atomic<int> calls{0};
  std::atomic<bool> revoked{false};
  MockChatServer server([&](const json& body, const httplib::Request&) -> std::pair<int, json> {
    // The first two requests succeed; then the key "expires".
    if (++calls > 2) revoked = true;
    if (revoked) return {401, api_error("Incorrect API key provided")};
    return {200, upregulated_trace(body)};
  });
  TraceJob job = make_job(dir.path, server.url());
  job.judge.reset();
  job.workers = 1;
  CHECK_THROWS_WITH(run_traces(job), Catch::Contains("HTTP 401: Incorrect API key provided") &&
                                         Catch::Contains("3 rows were written") && Catch::Contains("--resume"));
  CHECK(calls == 3);  // stopped at once, no retries of a 401
  CHECK(read_records(job.out_path).size() == 2);
  const auto failed = read_records(job.rejected_path);
  REQUIRE(failed.size() == 1);
  CHECK(failed[0]["reason"] == "error");  // retried by --resume
  CHECK_THAT(failed[0]["error"].get<std::string>(), Catch::Contains("HTTP 401"));
}

TEST_CASE("traces: an endpoint that never answers stops the run after one row's retries", "[traces]") {
  test::TempDir dir("traces-unreachable");
  write_rows(dir.path);
  MockChatServer server([&](const json& body, const httplib::Request&) -> std::pair<int, json> {
    return {200, upregulated_trace(body)};
  });
  TraceJob job = make_job(dir.path, server.url());
  job.workers = 1;
  job.judge->url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/v1";
  CHECK_THROWS_WITH(run_traces(job), Catch::Contains("no response") &&
                                         Catch::Contains("the judge has not answered any request of this run") &&
                                         Catch::Contains("1 rows were written"));
  const auto failed = read_records(job.rejected_path);
  REQUIRE(failed.size() == 1);
  CHECK(failed[0]["stage"] == "judge");
  CHECK(server.requests().size() == 1);  // one teacher request: the other six rows were not started

  // An endpoint that has answered once this run is only failing for now
  // (here: too slow): its rows fail, the run goes on and --resume retries them.
  test::TempDir dir2("traces-slow-later");
  write_rows(dir2.path);
  std::atomic<int> calls{0};
  MockChatServer slow([&](const json& body, const httplib::Request&) {
    if (++calls > 1) std::this_thread::sleep_for(std::chrono::milliseconds(400));
    return std::pair<int, json>{200, upregulated_trace(body)};
  });
  job = make_job(dir2.path, slow.url());
  job.judge.reset();
  job.workers = 1;
  job.limit = 3;
  job.teacher.timeout_s = 0.1;
  job.retry = quick_retry(1);
  const json s = run_traces(job);
  CHECK(s["accepted"] == 1);
  CHECK(s["failed"] == 2);
  CHECK(s["usage"]["teacher"]["failed_requests"] == 2);
  CHECK(calls == 1 + 2 * 2);
}

TEST_CASE("traces: an unknown judge model stops the run; the teacher's trace is kept", "[traces]") {
  test::TempDir dir("traces-judge404");
  write_rows(dir.path);
  MockChatServer server([&](const json& body, const httplib::Request&) -> std::pair<int, json> {
    if (body["model"] != "teacher-1") return {404, api_error("The model 'judge-1' does not exist")};
    return {200, completion(trace_for("G_EXC", "upregulated"))};
  });
  TraceJob job = make_job(dir.path, server.url());
  job.workers = 1;
  CHECK_THROWS_WITH(run_traces(job), Catch::Contains("HTTP 404: The model 'judge-1' does not exist"));
  CHECK(read_records(job.out_path).empty());
  const auto failed = read_records(job.rejected_path);
  REQUIRE(failed.size() == 1);
  CHECK(failed[0]["stage"] == "judge");
  CHECK(failed[0]["messages"].back()["content"] == trace_for("G_EXC", "upregulated"));
  CHECK(server.requests().size() == 2);
}

// Teacher replies name their number (per gene, over all runs); the judge
// grades G_AVG's first reply average and every other excellent. Requests for
// the genes in `teacher_fails` / `judge_fails` get an HTTP 500.
class FailingTeacherOrJudge {
 public:
  std::mutex mutex;
  std::set<std::string> teacher_fails, judge_fails;
  std::map<std::string, int> teacher_asked, teacher_replies;  // per gene, with and without failed requests
  std::map<std::string, std::vector<int>> judge_shown;  // per gene, the reply number each judge request saw

  static std::string reply(const std::string& gene, int nth, const std::string& label) {
    return "<think>\nAttempt " + std::to_string(nth) + " on " + gene + ".\n</think>\n<answer>" + label + "</answer>";
  }

  std::pair<int, json> operator()(const json& body) {
    const std::string gene = gene_in(body), user = body["messages"].back()["content"];
    std::lock_guard<std::mutex> lock(mutex);
    std::smatch m;
    if (body["model"] == "teacher-1") {
      ++teacher_asked[gene];
      if (teacher_fails.count(gene)) return {500, api_error("internal")};
      if (!std::regex_search(user, m, std::regex("Measured outcome \\(for you only\\): ([a-z ]+)")))
        return {400, api_error("no label in the prompt")};
      return {200, completion(reply(gene, ++teacher_replies[gene], m[1]))};
    }
    // The judge must be shown a whole trace as the teacher wrote it.
    if (!std::regex_search(user, m, std::regex("Candidate explanation:\n<think>\nAttempt ([0-9]+) on " + gene +
                                               "\\.\n</think>\n<answer>[a-z]+</answer>")))
      return {400, api_error("no trace in the prompt")};
    const int nth = std::stoi(m[1]);
    judge_shown[gene].push_back(nth);
    if (judge_fails.count(gene)) return {500, api_error("internal")};
    return {200, completion(gene == "G_AVG" && nth == 1 ? "<grade>average</grade>" : "<grade>excellent</grade>")};
  }
};

TEST_CASE("traces: a trace whose judge request failed is judged again on --resume; the teacher is not asked again",
          "[traces]") {
  test::TempDir dir("traces-rejudge"), plain_dir("traces-rejudge-plain");
  write_rows(dir.path);
  write_rows(plain_dir.path);
  FailingTeacherOrJudge script, plain;
  MockChatServer server([&](const json& body, const httplib::Request&) { return script(body); });
  MockChatServer plain_server([&](const json& body, const httplib::Request&) { return plain(body); });
  auto job_for = [](const std::string& d, const std::string& url) {
    TraceJob job = make_job(d, url);
    job.retry = quick_retry(1);  // a failing request is sent twice
    job.attempts = 2;
    return job;
  };
  TraceJob job = job_for(dir.path, server.url());

  // Run 1: the judge fails for G_EXC's and G_AVG's first traces, the teacher for G_ERR.
  script.judge_fails = {"G_EXC", "G_AVG"};
  script.teacher_fails = {"G_ERR"};
  const json first = run_traces(job);
  CHECK(first["accepted"] == 4);
  CHECK(first["failed"] == 3);
  CHECK(first["usage"]["judge"]["failed_requests"] == 2);
  std::map<std::string, json> failed;
  for (const auto& r : read_records(job.rejected_path)) failed[r["gene"]] = r;
  REQUIRE(failed.size() == 3);
  CHECK(failed["G_EXC"]["stage"] == "judge");
  CHECK(failed["G_EXC"]["attempts"] == 1);
  CHECK(failed["G_EXC"]["messages"].back()["content"] == FailingTeacherOrJudge::reply("G_EXC", 1, "upregulated"));
  CHECK(failed["G_ERR"]["stage"] == "teacher");

  // Run 2: G_EXC's judge fails again; G_AVG's kept trace is judged average, so
  // its second (and last) attempt asks the teacher; G_ERR asks the teacher again.
  script.judge_fails = {"G_EXC"};
  script.teacher_fails.clear();
  job.resume = true;
  const json second = run_traces(job);
  CHECK(second["rows"] == 3);
  CHECK(second["accepted"] == 2);
  CHECK(second["failed"] == 1);
  CHECK(second["reasked"] == 1);  // G_AVG: its trace from run 1 was attempt 1
  CHECK(second["usage"]["teacher"]["requests"] == 2);
  CHECK(second["usage"]["judge"]["requests"] == 3);
  CHECK(second["usage"]["judge"]["failed_requests"] == 1);
  json again;
  for (const auto& r : read_records(job.rejected_path))
    if (r["gene"] == "G_EXC") again = r;
  // Failed again, the trace is still kept, as the same attempt.
  CHECK(again["stage"] == "judge");
  CHECK(again["attempts"] == 1);
  CHECK_FALSE(again.contains("earlier"));
  CHECK(again["messages"] == failed["G_EXC"]["messages"]);

  // Run 3: the judge answers; nothing is left.
  script.judge_fails.clear();
  const json third = run_traces(job);
  CHECK(third["rows"] == 1);
  CHECK(third["accepted"] == 1);
  CHECK(third["remaining"] == 0);
  CHECK(third["usage"]["teacher"]["requests"] == 0);
  CHECK(third["usage"]["judge"]["requests"] == 1);

  // The teacher was asked once per reply the row used (G_ERR: its failed
  // request twice, then once), and each kept trace was what the judge saw.
  CHECK(script.teacher_asked == std::map<std::string, int>{{"G_EXC", 1}, {"G_AVG", 2}, {"G_UNG", 1}, {"G_WRG", 1},
                                                           {"G_TAG", 1}, {"G_FLK", 1}, {"G_ERR", 3}});
  CHECK(script.judge_shown["G_EXC"] == std::vector<int>{1, 1, 1, 1, 1});
  CHECK(script.judge_shown["G_AVG"] == std::vector<int>{1, 1, 1, 2});

  // The accepted records are those of a run that never failed, and the
  // replies paid for over the three runs are as many.
  const TraceJob plain_job = job_for(plain_dir.path, plain_server.url());
  const json plain_summary = run_traces(plain_job);
  CHECK(plain_summary["accepted"] == 7);
  auto by_gene = [](const std::string& path) {
    std::map<std::string, json> out;
    for (const auto& r : read_records(path)) out[r["gene"]] = r;
    return out;
  };
  const auto resumed = by_gene(job.out_path), uninterrupted = by_gene(plain_job.out_path);
  CHECK(resumed.size() == 7);
  CHECK(resumed == uninterrupted);
  CHECK(resumed.at("G_EXC")["attempts"] == 1);
  CHECK(resumed.at("G_AVG")["attempts"] == 2);
  CHECK(resumed.at("G_AVG")["earlier"][0]["judge"] == "average");
  for (const char* model : {"teacher", "judge"}) {
    int64_t replies = 0;
    for (const json* s : {&first, &second, &third}) replies += (*s)["usage"][model]["requests"].get<int64_t>();
    CHECK(replies == plain_summary["usage"][model]["requests"]);
  }
}

TEST_CASE("traces: a cancelled run finishes the row in flight and says so", "[traces]") {
  test::TempDir dir("traces-cancel");
  write_rows(dir.path);
  std::atomic<bool> cancel{false};
  std::atomic<int> calls{0};
  MockChatServer server([&](const json& body, const httplib::Request&) -> std::pair<int, json> {
    if (++calls == 1) cancel = true;  // as if SIGINT arrived while the first request was out
    return {200, upregulated_trace(body)};
  });
  TraceJob job = make_job(dir.path, server.url());
  job.judge.reset();
  job.workers = 1;
  job.cancel = &cancel;
  const json s = run_traces(job);
  CHECK(s["rows"] == 1);
  CHECK(s["interrupted"] == true);
  CHECK(s["remaining"] == 6);
  CHECK(read_records(job.out_path).size() == 1);
  cancel = false;
  job.resume = true;
  const json rest = run_traces(job);
  CHECK(rest["already_done"] == 1);
  CHECK(rest["rows"] == 6);
  CHECK(rest["interrupted"] == false);
  CHECK(read_records(job.out_path).size() == 6);  // G_WRG, labelled down, is rejected
  CHECK(read_records(job.rejected_path).size() == 1);
}

TEST_CASE("traces: a judge cut off at its token limit is not graded; a teacher without text is truncated",
          "[traces]") {
  test::TempDir dir("traces-cut");
  {
    std::ofstream f(dir.path + "/rows.jsonl");
    for (const std::string gene : {"G_EXC", "G_NUL"})
      f << json{{"cell_type", "k562"}, {"pert", "P1"}, {"gene", gene}, {"label", "upregulated"},
                {"messages", {{{"role", "user"}, {"content", "Does " + gene + " change?"}}}}}
                   .dump()
        << "\n";
  }
  MockChatServer server([](const json& body, const httplib::Request&) -> std::pair<int, json> {
    const std::string gene = gene_in(body);
    if (body["model"] == "teacher-1") {
      if (gene == "G_EXC") return {200, completion(trace_for(gene, "upregulated"))};
      json reply = completion("", "length");
      reply["choices"][0]["message"]["content"] = nullptr;
      return {200, reply};
    }
    // A judge thinking inline, cut off before taking its first grade back.
    return {200, completion("<think>First impression: <grade>excellent</grade>? But the mechanism is", "length")};
  });
  TraceJob job = make_job(dir.path, server.url());
  const json summary = run_traces(job);
  CHECK(summary["accepted"] == 0);
  CHECK(summary["failed"] == 0);
  CHECK(summary["rejected"] == json{{"judge_truncated", 1}, {"truncated", 1}});
  std::map<std::string, json> rejected;
  for (const auto& r : read_records(job.rejected_path)) rejected[r["gene"]] = r;
  CHECK(rejected["G_EXC"]["reason"] == "judge_truncated");
  CHECK(rejected["G_EXC"]["judge"].is_null());
  CHECK(rejected["G_NUL"]["reason"] == "truncated");
}

TEST_CASE("traces: the accepted and rejected files are compared as files, not as spellings", "[traces]") {
  test::TempDir dir("traces-alias");
  CHECK_THROWS_WITH(TraceStore(dir.path + "/a.jsonl", dir.path + "/./a.jsonl", false, {"t", ""}, json::object()),
                    Catch::Contains("the accepted and rejected files must differ"));
  std::filesystem::create_directories(dir.path + "/sub");
  CHECK_THROWS_WITH(TraceStore(dir.path + "/a.jsonl", dir.path + "/sub/../a.jsonl", false, {"t", ""}, json::object()),
                    Catch::Contains("must differ"));
  CHECK_NOTHROW(TraceStore(dir.path + "/a.jsonl", dir.path + "/sub/a.jsonl", false, {"t", ""}, json::object()));
}

TEST_CASE("traces: --out or --rejected naming the --data file is refused, --resume or not", "[traces]") {
  test::TempDir dir("traces-onto-data");
  write_rows(dir.path);
  const std::string before = test::read_text(dir.path + "/rows.jsonl");
  for (bool resume : {false, true}) {
    TraceJob job = make_job(dir.path, "http://127.0.0.1:9");
    job.resume = resume;
    job.out_path = dir.path + "/./rows.jsonl";
    job.rejected_path = default_rejected_path(job.out_path);
    CHECK_THROWS_WITH(run_traces(job), Catch::Contains("--out " + job.out_path + " is the --data file being read"));
    job = make_job(dir.path, "http://127.0.0.1:9");
    job.resume = resume;
    job.rejected_path = dir.path + "/rows.jsonl";
    CHECK_THROWS_WITH(run_traces(job), Catch::Contains("--rejected " + job.rejected_path + " is the --data file"));
  }
  CHECK(test::read_text(dir.path + "/rows.jsonl") == before);
  CHECK_FALSE(std::filesystem::exists(dir.path + "/out"));
}

TEST_CASE("traces: a record quoting bytes that are not UTF-8 is still written", "[traces]") {
  test::TempDir dir("traces-utf8");
  {
    TraceStore store(dir.path + "/a.jsonl", dir.path + "/r.jsonl", false, {"t", ""}, json::object());
    store.write(json{{"gene", "G1"}, {"reason", "error"}, {"error", "HTTP 502: caf\xc3"}}, false);
  }
  const auto records = read_records(dir.path + "/r.jsonl");
  REQUIRE(records.size() == 1);
  CHECK(records[0]["error"] == "HTTP 502: caf\xef\xbf\xbd");  // U+FFFD
}

}  // namespace
}  // namespace synthpert::perturb

// A small client for the chat completions endpoint of any OpenAI-compatible
// server (OpenAI, vLLM, `synthpert serve`, ...), with the retry behaviour a
// long batch job needs: rate limits and server errors are retried with
// exponential backoff (honouring Retry-After); other errors are not.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace synthpert::perturb {

struct ChatEndpoint {
  // The API base as OpenAI's SDKs take it ("https://api.openai.com/v1",
  // "http://localhost:8000/v1"); a bare "http://host:port" means ".../v1".
  std::string url;
  std::string model;
  std::string api_key;  // sent as "Authorization: Bearer KEY" when not empty
  double timeout_s = 600;
};

struct ChatOptions {
  std::optional<double> temperature;  // unset: the server's default
  std::optional<double> top_p;
  std::optional<int64_t> seed;        // best effort on OpenAI; exact on `synthpert serve`
  // Sent as max_completion_tokens (OpenAI's current name; vLLM and
  // `synthpert serve` accept it too). Unset: the server's default.
  std::optional<int64_t> max_tokens;
};

struct RetryPolicy {
  int max_retries = 5;  // retries after the first attempt
  double first_delay_s = 2;
  double max_delay_s = 60;
};

// The wait before retry number `retry` (0 first): exponential from
// first_delay_s, +-25% jitter so many workers hitting one rate limit do not
// come back in lockstep. A server's Retry-After in seconds wins: never sooner,
// up to 25% later (the same reason), capped at max_delay_s before the jitter.
double retry_delay_s(const RetryPolicy& p, int retry, const std::string& retry_after, std::mt19937& rng);

struct ChatReply {
  std::string content;
  // Reasoning returned apart from the text ("reasoning_content", as DeepSeek's
  // API and vLLM's reasoning parsers send it, or "reasoning"); usually empty.
  std::string reasoning;
  std::string finish_reason;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  int attempts = 0;
};

// A request that failed for good. status is the HTTP status, or 0 when no
// response came (connection refused, timeout, unreadable body).
class ChatError : public std::runtime_error {
 public:
  ChatError(int status, const std::string& what, bool out_of_quota = false)
      : std::runtime_error(what), status_(status), out_of_quota_(out_of_quota) {}
  int status() const { return status_; }
  // Statuses that say the run's settings are wrong (key, permission, model,
  // path), or an account out of credit (a 429 "insufficient_quota"), so
  // every further request would fail the same way.
  bool is_fatal() const { return status_ == 401 || status_ == 403 || status_ == 404 || out_of_quota_; }

 private:
  int status_;
  bool out_of_quota_;
};

// (role, content) pairs as the API's "messages" array, the shape training
// conversations are stored in too.
nlohmann::json messages_json(const std::vector<std::pair<std::string, std::string>>& messages);

// The completion in a 200 response's body: the first choice's text (a string,
// or the "text" parts of a list), its reasoning, its finish reason and the
// token counts (attempts is left 0). A body that is not a completion throws
// ChatError(200, "unusable reply: ...").
ChatReply parse_chat_reply(const std::string& body);

// What an error response says: OpenAI's {"error": {"message": ...}}, or else
// the body, cut after 300 bytes at a character boundary.
std::string chat_error_text(const std::string& body);

// Worth retrying: no response, 408, 409, 429 and every 5xx.
bool is_retryable_status(int status);

// "http://h:p/v1" -> {"http://h:p", "/v1/chat/completions"}. InputError for a
// scheme other than http(s) or a missing host.
std::pair<std::string, std::string> chat_completions_address(const std::string& url);

class ChatClient {
 public:
  ChatClient(ChatEndpoint endpoint, RetryPolicy retry);

  // One chat completion; throws ChatError once retries are spent or on an
  // error not worth retrying. Thread-safe: each call has its own connection.
  ChatReply complete(const std::vector<std::pair<std::string, std::string>>& messages,
                     const ChatOptions& options) const;

  const ChatEndpoint& endpoint() const { return endpoint_; }

 private:
  ChatEndpoint endpoint_;
  RetryPolicy retry_;
  std::string host_, path_;
};

}  // namespace synthpert::perturb

#include "perturb/openai_client.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/error.h"

namespace synthpert::perturb {

using nlohmann::json;

json messages_json(const std::vector<std::pair<std::string, std::string>>& messages) {
  json out = json::array();
  for (const auto& [role, content] : messages) out.push_back({{"role", role}, {"content", content}});
  return out;
}

bool is_retryable_status(int status) {
  return status == 0 || status == 408 || status == 409 || status == 429 || status >= 500;
}

std::pair<std::string, std::string> chat_completions_address(const std::string& url) {
  const size_t scheme_end = url.find("://");
  const std::string scheme = scheme_end == std::string::npos ? "" : url.substr(0, scheme_end);
  SP_CHECK_INPUT(scheme == "http" || scheme == "https", "'", url,
                 "': expected an http:// or https:// API address, e.g. http://localhost:8000/v1");
  const size_t host_begin = scheme_end + 3;
  const size_t path_begin = std::min(url.find('/', host_begin), url.size());
  SP_CHECK_INPUT(path_begin > host_begin, "'", url, "': no host");
  std::string path = url.substr(path_begin);
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.empty()) path = "/v1";
  const std::string suffix = "/chat/completions";
  if (path.size() < suffix.size() || path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0)
    path += suffix;
  return {url.substr(0, path_begin), path};
}

ChatClient::ChatClient(ChatEndpoint endpoint, RetryPolicy retry)
    : endpoint_(std::move(endpoint)), retry_(retry) {
  std::tie(host_, path_) = chat_completions_address(endpoint_.url);
}

std::string chat_error_text(const std::string& body) {
  try {
    const json j = json::parse(body);
    if (j.contains("error") && j["error"].is_object() && j["error"].value("message", json()).is_string())
      return j["error"]["message"].get<std::string>();
  } catch (const json::exception&) {
  }
  if (body.size() <= 300) return body;
  // Cut before a UTF-8 continuation byte, so a multi-byte character is not split.
  size_t cut = 300;
  while (cut > 0 && (static_cast<unsigned char>(body[cut]) & 0xC0) == 0x80) --cut;
  return body.substr(0, cut) + "...";
}

namespace {

// OpenAI answers an account without credit with a 429 like a rate limit, but
// waiting does not help: its error code says which.
bool out_of_quota(int status, const std::string& body) {
  if (status != 429) return false;
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.contains("error") || !j["error"].is_object()) return false;
  for (const char* key : {"code", "type"}) {
    const json v = j["error"].value(key, json());
    if (v.is_string() && v.get<std::string>() == "insufficient_quota") return true;
  }
  return false;
}

// The text of a message's content: a string, or (some OpenAI-compatible
// servers) a list of parts whose "text" parts are joined; "thinking" parts
// (Mistral's reasoning models) go to `reasoning`.
std::string content_text(const json& content, std::string& reasoning) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return "";
  std::string text;
  auto texts_of = [](const json& v) {
    if (v.is_string()) return v.get<std::string>();
    std::string joined;
    if (v.is_array())
      for (const auto& part : v)
        if (part.is_object() && part.value("text", json()).is_string()) joined += part["text"].get<std::string>();
    return joined;
  };
  for (const auto& part : content) {
    if (!part.is_object()) continue;
    const json type = part.value("type", json());
    if (type == "text" && part.value("text", json()).is_string()) text += part["text"].get<std::string>();
    else if (type == "thinking") reasoning += texts_of(part.value("thinking", json()));
  }
  return text;
}

}  // namespace

ChatReply parse_chat_reply(const std::string& body) {
  try {
    const json j = json::parse(body);
    const json& choice = j.at("choices").at(0);
    const json& message = choice.at("message");
    // No text is an answer too, not a failed request: content is null
    // when a reasoning model spent its budget thinking (vLLM), on a
    // refusal (whose text comes in "refusal") and on a tool call.
    const json content = message.value("content", json()), refusal = message.value("refusal", json());
    ChatReply reply;
    std::string thinking;
    reply.content = content_text(content, thinking);
    if (content.is_null() && refusal.is_string()) reply.content = refusal.get<std::string>();
    if (!thinking.empty()) reply.reasoning = thinking;
    for (const char* key : {"reasoning_content", "reasoning"}) {
      const json r = message.value(key, json());
      if (r.is_string() && reply.reasoning.empty()) reply.reasoning = r.get<std::string>();
    }
    const json finish = choice.value("finish_reason", json());
    if (finish.is_string()) reply.finish_reason = finish.get<std::string>();
    // Usage is optional in the wild; missing or null counts read as 0.
    const json usage = j.value("usage", json());
    if (usage.is_object()) {
      const json prompt = usage.value("prompt_tokens", json()), completion = usage.value("completion_tokens", json());
      if (prompt.is_number_integer()) reply.prompt_tokens = prompt.get<int64_t>();
      if (completion.is_number_integer()) reply.completion_tokens = completion.get<int64_t>();
    }
    return reply;
  } catch (const json::exception& e) {
    throw ChatError(200, str_cat("unusable reply: ", e.what()));
  }
}

double retry_delay_s(const RetryPolicy& p, int retry, const std::string& retry_after, std::mt19937& rng) {
  // A Retry-After in seconds is the earliest the server will take us back;
  // an HTTP date, a negative or a non-finite value is read as absent.
  double seconds = -1;
  try {
    size_t used = 0;
    seconds = std::stod(retry_after, &used);
    if (used != retry_after.size() || !std::isfinite(seconds)) seconds = -1;
  } catch (const std::exception&) {
  }
  if (seconds >= 0) return std::min(seconds, p.max_delay_s) * std::uniform_real_distribution<double>(1.0, 1.25)(rng);
  return std::min(p.max_delay_s, p.first_delay_s * std::pow(2.0, retry)) *
         std::uniform_real_distribution<double>(0.75, 1.25)(rng);
}

ChatReply ChatClient::complete(const std::vector<std::pair<std::string, std::string>>& messages,
                               const ChatOptions& options) const {
  json body = {{"model", endpoint_.model}, {"messages", messages_json(messages)}};
  if (options.temperature) body["temperature"] = *options.temperature;
  if (options.top_p) body["top_p"] = *options.top_p;
  if (options.seed) body["seed"] = *options.seed;
  if (options.max_tokens) body["max_completion_tokens"] = *options.max_tokens;
  const std::string payload = body.dump();
  const std::string where = endpoint_.url + " (" + endpoint_.model + ")";

  httplib::Headers headers;
  if (!endpoint_.api_key.empty()) headers.emplace("Authorization", "Bearer " + endpoint_.api_key);
  for (int attempt = 0;; ++attempt) {
    httplib::Client http(host_);
    const auto seconds = std::chrono::duration<double>(endpoint_.timeout_s);
    http.set_connection_timeout(std::chrono::duration_cast<std::chrono::microseconds>(
        std::min(seconds, std::chrono::duration<double>(30))));
    http.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(seconds));
    http.set_write_timeout(std::chrono::duration_cast<std::chrono::microseconds>(seconds));
    const auto res = http.Post(path_, headers, payload, "application/json");

    int status = 0;
    std::string failure, retry_after;
    if (!res) {
      failure = "no response (" + httplib::to_string(res.error()) + ")";
    } else if (res->status != 200) {
      status = res->status;
      failure = "HTTP " + std::to_string(status) + ": " + chat_error_text(res->body);
      retry_after = res->get_header_value("Retry-After");
    } else {
      try {
        ChatReply reply = parse_chat_reply(res->body);
        reply.attempts = attempt + 1;
        return reply;
      } catch (const ChatError& e) {
        // A 200 without a usable completion will not improve on retry.
        throw ChatError(200, str_cat(where, ": ", e.what()));
      }
    }
    const bool no_credit = res && out_of_quota(status, res->body);
    if (!is_retryable_status(status) || no_credit || attempt >= retry_.max_retries)
      throw ChatError(status,
                      str_cat(where, ": ", failure, attempt > 0 ? str_cat(" (after ", attempt + 1, " attempts)") : ""),
                      no_credit);
    thread_local std::mt19937 rng{std::random_device{}()};
    std::this_thread::sleep_for(std::chrono::duration<double>(retry_delay_s(retry_, attempt, retry_after, rng)));
  }
}

}  // namespace synthpert::perturb

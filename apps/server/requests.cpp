#include "apps/server/requests.h"

#include <cmath>

#include "apps/server/api_error.h"

namespace synthpert::server {
namespace {

using json = nlohmann::json;

void require_object(const json& body) {
  if (!body.is_object()) throw bad_request("", "the request body must be a JSON object");
}

std::string optional_string(const json& body, const char* key) {
  if (!body.contains(key) || body[key].is_null()) return "";
  if (!body[key].is_string()) throw bad_request(key, std::string(key) + " must be a string");
  return body[key].get<std::string>();
}

// The request's model: left out (or null) picks the default, a name picks
// that model; an empty name would read as left out, so it is refused.
std::string model_name(const json& body) {
  if (body.contains("model") && body["model"].is_string() && body["model"].get<std::string>().empty())
    throw bad_request("model", "model must name a served model (GET /v1/models) or be left out, got \"\"");
  return optional_string(body, "model");
}

bool optional_bool(const json& body, const char* key, bool fallback) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (!body[key].is_boolean()) throw bad_request(key, std::string(key) + " must be true or false");
  return body[key].get<bool>();
}

std::optional<double> optional_number(const json& body, const char* key, double lo, double hi) {
  if (!body.contains(key) || body[key].is_null()) return std::nullopt;
  if (!body[key].is_number()) throw bad_request(key, std::string(key) + " must be a number");
  const double v = body[key].get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    throw bad_request(key, std::string(key) + " must be within [" + json(lo).dump() + ", " + json(hi).dump() +
                               "], got " + body[key].dump());
  return v;
}

std::optional<int64_t> optional_int(const json& body, const char* key, int64_t lo) {
  if (!body.contains(key) || body[key].is_null()) return std::nullopt;
  if (!body[key].is_number_integer()) throw bad_request(key, std::string(key) + " must be an integer");
  // Above 2^63 - 1 the number reads back negative as int64_t: quote it as sent.
  if (body[key].is_number_unsigned() && body[key].get<uint64_t>() > uint64_t(INT64_MAX))
    throw bad_request(key, std::string(key) + " is too large, got " + body[key].dump());
  const int64_t v = body[key].get<int64_t>();
  if (v < lo) throw bad_request(key, std::string(key) + " must be >= " + std::to_string(lo) + ", got " + std::to_string(v));
  return v;
}

// A field we do not implement is refused unless it asks for the default.
void refuse_unless_default(const json& body, const char* key, const json& default_value) {
  if (!body.contains(key) || body[key].is_null() || body[key] == default_value) return;
  throw bad_request(key, std::string(key) + " is not supported by this server");
}

DecodeRequest parse_decode(const json& body) {
  DecodeRequest d;
  // Both are checked; the newer name wins when both are given.
  const auto legacy_max = optional_int(body, "max_tokens", 1);
  d.max_tokens = optional_int(body, "max_completion_tokens", 1);
  if (!d.max_tokens) d.max_tokens = legacy_max;
  d.sampling.temperature = optional_number(body, "temperature", 0.0, 2.0).value_or(1.0);
  d.sampling.top_p = optional_number(body, "top_p", 0.0, 1.0).value_or(1.0);
  if (d.sampling.top_p == 0.0) throw bad_request("top_p", "top_p must be > 0");
  d.sampling.top_k = optional_int(body, "top_k", 0).value_or(0);
  if (body.contains("seed") && !body["seed"].is_null()) {
    if (!body["seed"].is_number_integer()) throw bad_request("seed", "seed must be an integer");
    // Negative seeds are valid in the OpenAI API; their bits seed the generator.
    d.sampling.seed = static_cast<uint64_t>(body["seed"].get<int64_t>());
    d.seeded = true;
  }
  if (body.contains("stop") && !body["stop"].is_null()) {
    const json& s = body["stop"];
    if (s.is_string()) {
      d.stop.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= 4) {
      for (const auto& x : s) {
        if (!x.is_string()) throw bad_request("stop", "stop must be a string or an array of up to 4 strings");
        d.stop.push_back(x.get<std::string>());
      }
    } else {
      throw bad_request("stop", "stop must be a string or an array of up to 4 strings");
    }
    for (const auto& x : d.stop)
      if (x.empty()) throw bad_request("stop", "stop strings must not be empty");
  }
  d.stream = optional_bool(body, "stream", false);
  if (body.contains("stream_options") && !body["stream_options"].is_null()) {
    const json& so = body["stream_options"];
    if (!so.is_object()) throw bad_request("stream_options", "stream_options must be an object");
    if (!d.stream) throw bad_request("stream_options", "stream_options is only allowed when stream is true");
    d.include_usage = optional_bool(so, "include_usage", false);
  }
  refuse_unless_default(body, "n", 1);
  refuse_unless_default(body, "logprobs", false);
  refuse_unless_default(body, "top_logprobs", 0);
  refuse_unless_default(body, "presence_penalty", 0);
  refuse_unless_default(body, "frequency_penalty", 0);
  refuse_unless_default(body, "logit_bias", json::object());
  refuse_unless_default(body, "tools", json::array());
  refuse_unless_default(body, "best_of", 1);
  refuse_unless_default(body, "echo", false);
  refuse_unless_default(body, "suffix", "");
  // Structured output and function calling would change what the text must
  // be; asking for their defaults (plain text, no calls) is fine.
  // parallel_tool_calls is accepted: without tools it has nothing to act on.
  refuse_unless_default(body, "response_format", json{{"type", "text"}});
  refuse_unless_default(body, "tool_choice", "none");
  refuse_unless_default(body, "functions", json::array());
  refuse_unless_default(body, "function_call", "none");
  return d;
}

// Message content: a string, or an array of {"type":"text","text":...} parts
// (joined), as the chat API allows.
std::string message_text(const json& content, size_t index) {
  const std::string where = "messages[" + std::to_string(index) + "].content";
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) throw bad_request(where, where + " must be a string or an array of text parts");
  std::string text;
  for (const auto& part : content) {
    // part["type"] is compared, not read with value(): a non-string type
    // must be this 400, not nlohmann's type_error.
    if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") ||
        !part["text"].is_string())
      throw bad_request(where, where + ": only text parts ({\"type\":\"text\",\"text\":...}) are supported");
    text += part["text"].get<std::string>();
  }
  return text;
}

}  // namespace

json parse_body(const std::string& text) {
  json body = json::parse(text, nullptr, false);
  if (body.is_discarded()) throw bad_request("", "the request body is not valid JSON");
  require_object(body);
  return body;
}

ChatRequest parse_chat_request(const json& body) {
  require_object(body);
  ChatRequest r;
  r.model = model_name(body);
  if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty())
    throw bad_request("messages", "messages must be a non-empty array");
  r.messages = json::array();
  for (size_t i = 0; i < body["messages"].size(); ++i) {
    const json& m = body["messages"][i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw bad_request(where, where + " must be an object with a string role");
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";  // the newer name of the system role
    if (role != "system" && role != "user" && role != "assistant")
      throw bad_request(where + ".role", where + ".role must be system, developer, user or assistant, got '" + role + "'");
    if (!m.contains("content") || m["content"].is_null())
      throw bad_request(where + ".content", where + ".content is required");
    r.messages.push_back({{"role", role}, {"content", message_text(m["content"], i)}});
  }
  r.decode = parse_decode(body);
  return r;
}

CompletionRequest parse_completion_request(const json& body) {
  require_object(body);
  CompletionRequest r;
  r.model = model_name(body);
  if (!body.contains("prompt")) throw bad_request("prompt", "prompt is required");
  const json& p = body["prompt"];
  if (p.is_string()) {
    r.prompt_text = p.get<std::string>();
  } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
    r.prompt_text = p[0].get<std::string>();
  } else if (p.is_array() && !p.empty() && p[0].is_number_integer()) {
    for (const auto& x : p) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0)
        throw bad_request("prompt", "a token-id prompt must be an array of non-negative integers");
      r.prompt_ids.push_back(x.get<int64_t>());
    }
  } else {
    throw bad_request("prompt", "prompt must be a string, an array of one string, or an array of token ids "
                                "(batches of prompts: send one request each)");
  }
  if (r.prompt_text && r.prompt_text->empty()) throw bad_request("prompt", "prompt must not be empty");
  r.decode = parse_decode(body);
  return r;
}

PredictRequest parse_predict_request(const json& body) {
  require_object(body);
  // Our own schema, so a misspelt field ("reasonig") is an error rather
  // than a default quietly taken in its place.
  for (const auto& [key, value] : body.items())
    if (key != "model" && key != "cell_type" && key != "pert" && key != "gene" && key != "reasoning" &&
        key != "max_tokens")
      throw bad_request(key, "unknown field '" + key +
                                 "' (fields: model, cell_type, pert, gene, reasoning, max_tokens)");
  PredictRequest r;
  r.model = model_name(body);
  for (auto [key, field] : {std::pair{"cell_type", &r.cell_type}, {"pert", &r.pert}, {"gene", &r.gene}}) {
    *field = optional_string(body, key);
    if (field->empty()) throw bad_request(key, std::string(key) + " is required (a non-empty string)");
    // Names, not text: the cap keeps a huge field from being rendered and
    // tokenized at all (the context check comes after tokenizing).
    if (field->size() > kMaxPredictField)
      throw bad_request(key, std::string(key) + " is " + std::to_string(field->size()) + " bytes; at most " +
                                 std::to_string(kMaxPredictField) + " are accepted");
  }
  r.reasoning = optional_bool(body, "reasoning", true);
  r.max_tokens = optional_int(body, "max_tokens", 1);
  return r;
}

}  // namespace synthpert::server

// Request bodies of the HTTP API, parsed and checked before anything is queued:
// every rule a body can break is answered with a 400 naming the field
// (ApiError), never discovered halfway through generation.
//
// Supported OpenAI fields: model, messages / prompt, max_tokens
// (max_completion_tokens), temperature, top_p, seed, stop, stream,
// stream_options.include_usage, n = 1; top_k as an extension. Fields that would
// change the output in ways we do not implement (n > 1, logprobs, penalties,
// logit_bias, tools and tool_choice, functions, response_format other than
// text, non-text content) are refused instead of ignored.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/sampler.h"

namespace synthpert::server {

struct DecodeRequest {
  std::optional<int64_t> max_tokens;  // unset: as many as the context leaves, up to the server's cap
  engine::SamplingParams sampling;    // seed set only when `seeded`
  bool seeded = false;
  std::vector<std::string> stop;      // up to 4 non-empty strings
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
};

struct ChatRequest {
  std::string model;               // empty: the base model
  nlohmann::json messages;         // [{"role", "content": string}], content parts joined
  DecodeRequest decode;
};

struct CompletionRequest {
  std::string model;
  std::optional<std::string> prompt_text;
  std::vector<int64_t> prompt_ids;  // when the prompt was given as token ids
  DecodeRequest decode;
};

// The longest cell_type, pert or gene /v1/predict accepts, in bytes: gene
// symbols and cell-line names are a few dozen at most.
inline constexpr size_t kMaxPredictField = 256;

// POST /v1/predict: one PerturbQA question.
struct PredictRequest {
  std::string model;
  std::string cell_type, pert, gene;
  bool reasoning = true;           // also let the model write its reasoning (greedy)
  std::optional<int64_t> max_tokens;  // reasoning budget
};

ChatRequest parse_chat_request(const nlohmann::json& body);
CompletionRequest parse_completion_request(const nlohmann::json& body);
PredictRequest parse_predict_request(const nlohmann::json& body);

// Parses the raw HTTP body as a JSON object (400 with the parser's position otherwise).
nlohmann::json parse_body(const std::string& text);

}  // namespace synthpert::server

// Request parsing: what each endpoint accepts, and that every refusal is a 400
// naming the field (what OpenAI's API answers, so SDK clients raise
// BadRequestError with `param` set).
#include <catch2/catch.hpp>

#include "apps/server/api_error.h"
#include "apps/server/requests.h"

namespace synthpert::server {
namespace {

using json = nlohmann::json;

std::string refused_param(const std::function<void()>& f) {
  try {
    f();
  } catch (const ApiError& e) {
    CHECK(e.status == 400);
    CHECK(e.type == "invalid_request_error");
    return e.param;
  }
  FAIL("accepted");
  return "";
}

json chat_body() { return {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}; }

TEST_CASE("chat requests: fields and OpenAI defaults", "[server]") {
  auto b = chat_body();
  b["messages"].push_back({{"role", "developer"}, {"content", json::array({{{"type", "text"}, {"text", "a"}},
                                                                          {{"type", "text"}, {"text", "b"}}})}});
  b["max_completion_tokens"] = 7;
  b["stop"] = "x";
  b["seed"] = -3;
  b["stream"] = true;
  b["stream_options"] = {{"include_usage", true}};
  b["n"] = 1;
  const auto r = parse_chat_request(b);
  CHECK(r.model == "m");
  CHECK(r.messages == json::array({{{"role", "user"}, {"content", "hi"}}, {{"role", "system"}, {"content", "ab"}}}));
  CHECK(r.decode.max_tokens == 7);
  CHECK(r.decode.stop == std::vector<std::string>{"x"});
  CHECK(r.decode.seeded);
  CHECK(r.decode.sampling.seed == static_cast<uint64_t>(int64_t{-3}));
  CHECK(r.decode.stream);
  CHECK(r.decode.include_usage);
  const auto d = parse_chat_request(chat_body()).decode;
  CHECK(d.sampling.temperature == 1.0);  // OpenAI's default, not greedy
  CHECK(d.sampling.top_p == 1.0);
  CHECK_FALSE(d.max_tokens.has_value());
  CHECK_FALSE(d.seeded);
}

json with_model_null() {
  auto b = chat_body();
  b["model"] = nullptr;
  return b;
}

TEST_CASE("chat requests: each broken rule names its field", "[server]") {
  auto with = [](const char* key, json value) {
    auto b = chat_body();
    b[key] = std::move(value);
    return [b] { parse_chat_request(b); };
  };
  CHECK(refused_param(with("messages", json::array())) == "messages");
  CHECK(refused_param(with("messages", {{{"role", "robot"}, {"content", "x"}}})) == "messages[0].role");
  CHECK(refused_param(with("messages", {{{"role", "user"}}})) == "messages[0].content");
  CHECK(refused_param(with("messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}})) ==
        "messages[0].content");
  CHECK(refused_param(with("temperature", 2.5)) == "temperature");
  CHECK(refused_param(with("temperature", "hot")) == "temperature");
  CHECK(refused_param(with("top_p", 0)) == "top_p");
  CHECK(refused_param(with("max_tokens", 0)) == "max_tokens");
  CHECK(refused_param(with("max_tokens", 1.5)) == "max_tokens");
  {
    // Past int64: refused with the number as sent (it read back as -1).
    auto b = chat_body();
    b["max_tokens"] = 18446744073709551615ull;
    try {
      parse_chat_request(b);
      FAIL("accepted");
    } catch (const ApiError& e) {
      CHECK(e.param == "max_tokens");
      CHECK_THAT(std::string(e.what()), Catch::Contains("too large, got 18446744073709551615"));
    }
  }
  {
    // The newer max_completion_tokens wins, but a broken max_tokens beside it is still refused.
    auto b = chat_body();
    b["max_completion_tokens"] = 5;
    b["max_tokens"] = "x";
    CHECK(refused_param([b] { parse_chat_request(b); }) == "max_tokens");
    b["max_tokens"] = 9;
    CHECK(parse_chat_request(b).decode.max_tokens == 5);
  }
  CHECK(refused_param(with("stop", json::array({"a", "b", "c", "d", "e"}))) == "stop");
  CHECK(refused_param(with("stop", "")) == "stop");
  CHECK(refused_param(with("n", 2)) == "n");
  CHECK(refused_param(with("logprobs", true)) == "logprobs");
  CHECK(refused_param(with("presence_penalty", 0.5)) == "presence_penalty");
  CHECK(refused_param(with("stream_options", {{"include_usage", true}})) == "stream_options");  // without stream
  CHECK(refused_param(with("model", 3)) == "model");
  CHECK(refused_param(with("model", "")) == "model");  // not the default model, which a missing name picks
  CHECK(parse_chat_request(with_model_null()).model.empty());
  // A part whose type is not a string is the same 400, not a JSON type error.
  CHECK(refused_param(with("messages", {{{"role", "user"}, {"content", {{{"type", nullptr}, {"text", "hi"}}}}}})) ==
        "messages[0].content");
  CHECK(refused_param(with("messages", {{{"role", "user"}, {"content", {{{"type", 1}, {"text", "hi"}}}}}})) ==
        "messages[0].content");
  CHECK(refused_param(with("messages", {{{"role", "user"}, {"content", {{{"text", "hi"}}}}}})) ==
        "messages[0].content");
  CHECK(refused_param([] { parse_chat_request(json::array()); }) == "");
  CHECK(refused_param([] { parse_body("{\"model\":"); }) == "");
}

TEST_CASE("structured output and function calling are refused unless they ask for the default", "[server]") {
  auto with = [](const char* key, json value) {
    auto b = chat_body();
    b[key] = std::move(value);
    return b;
  };
  CHECK(refused_param([&] { parse_chat_request(with("response_format", {{"type", "json_object"}})); }) ==
        "response_format");
  CHECK(refused_param([&] {
          parse_chat_request(with("response_format", {{"type", "json_schema"}, {"json_schema", json::object()}}));
        }) == "response_format");
  CHECK(refused_param([&] { parse_chat_request(with("tool_choice", "auto")); }) == "tool_choice");
  CHECK(refused_param([&] { parse_chat_request(with("tool_choice", {{"type", "function"}})); }) == "tool_choice");
  CHECK(refused_param([&] { parse_chat_request(with("functions", {{{"name", "f"}}})); }) == "functions");
  CHECK(refused_param([&] { parse_chat_request(with("function_call", "auto")); }) == "function_call");
  CHECK(refused_param([&] { parse_chat_request(with("tools", {{{"type", "function"}}})); }) == "tools");
  CHECK(refused_param([&] { parse_completion_request({{"prompt", "a"}, {"response_format", {{"type", "json_object"}}}}); }) ==
        "response_format");
  // The defaults, and parallel_tool_calls (nothing to act on without tools).
  CHECK_NOTHROW(parse_chat_request(with("response_format", {{"type", "text"}})));
  CHECK_NOTHROW(parse_chat_request(with("tool_choice", "none")));
  CHECK_NOTHROW(parse_chat_request(with("functions", json::array())));
  CHECK_NOTHROW(parse_chat_request(with("function_call", "none")));
  CHECK_NOTHROW(parse_chat_request(with("parallel_tool_calls", false)));
  CHECK_NOTHROW(parse_chat_request(with("tools", json::array())));
}

TEST_CASE("completion requests: text, one-string array or token ids", "[server]") {
  CHECK(parse_completion_request({{"prompt", "abc"}}).prompt_text == "abc");
  CHECK(parse_completion_request({{"prompt", {"abc"}}}).prompt_text == "abc");
  const auto ids = parse_completion_request({{"prompt", {5, 0, 9}}});
  CHECK_FALSE(ids.prompt_text.has_value());
  CHECK(ids.prompt_ids == std::vector<int64_t>{5, 0, 9});
  CHECK(refused_param([] { parse_completion_request({{"prompt", {"a", "b"}}}); }) == "prompt");
  CHECK(refused_param([] { parse_completion_request({{"prompt", {1, -2}}}); }) == "prompt");
  CHECK(refused_param([] { parse_completion_request({{"prompt", ""}}); }) == "prompt");
  CHECK(refused_param([] { parse_completion_request(json::object()); }) == "prompt");
  CHECK(refused_param([] { parse_completion_request({{"prompt", "a"}, {"echo", true}}); }) == "echo");
}

TEST_CASE("predict requests need a cell line, a pert and a gene", "[server]") {
  const auto r = parse_predict_request({{"cell_type", "K562"}, {"pert", "MYC"}, {"gene", "TP53"}, {"reasoning", false}});
  CHECK(r.cell_type == "K562");
  CHECK_FALSE(r.reasoning);
  CHECK(parse_predict_request({{"cell_type", "a"}, {"pert", "b"}, {"gene", "c"}}).reasoning);
  CHECK(refused_param([] { parse_predict_request({{"cell_type", "a"}, {"pert", "b"}}); }) == "gene");
  CHECK(refused_param([] {
          parse_predict_request({{"model", ""}, {"cell_type", "a"}, {"pert", "b"}, {"gene", "c"}});
        }) == "model");
  CHECK(refused_param([] { parse_predict_request({{"cell_type", ""}, {"pert", "b"}, {"gene", "c"}}); }) ==
        "cell_type");
  CHECK(refused_param([] {
          parse_predict_request({{"cell_type", "a"}, {"pert", "b"}, {"gene", "c"}, {"max_tokens", 0}});
        }) == "max_tokens");
  // Names are short; a huge field is refused before it is rendered or tokenized.
  const std::string longest(kMaxPredictField, 'A');
  CHECK(parse_predict_request({{"cell_type", "a"}, {"pert", longest}, {"gene", "c"}}).pert == longest);
  CHECK(refused_param([&] { parse_predict_request({{"cell_type", "a"}, {"pert", longest + "A"}, {"gene", "c"}}); }) ==
        "pert");
  CHECK(refused_param([&] {
          parse_predict_request({{"cell_type", std::string(4 << 20, 'x')}, {"pert", "b"}, {"gene", "c"}});
        }) == "cell_type");
  // A misspelt field is refused, not passed over for its default.
  CHECK(refused_param([] {
          parse_predict_request({{"cell_type", "a"}, {"pert", "b"}, {"gene", "c"}, {"reasonig", false}});
        }) == "reasonig");
  CHECK(parse_predict_request({{"model", "m"}, {"cell_type", "a"}, {"pert", "b"}, {"gene", "c"}, {"reasoning", true},
                               {"max_tokens", 5}})
            .max_tokens == 5);
}

}  // namespace
}  // namespace synthpert::server

// Errors the HTTP API answers with, in the OpenAI shape
// {"error": {"message", "type", "param", "code"}} so SDK clients raise their
// usual exception classes (400 BadRequestError, 401, 404 NotFoundError, ...).
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace synthpert::server {

struct ApiError : std::runtime_error {
  ApiError(int status, std::string type, const std::string& message, std::string param = "", std::string code = "")
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type, param, code;

  nlohmann::json body() const {
    auto opt = [](const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); };
    return {{"error", {{"message", what()}, {"type", type}, {"param", opt(param)}, {"code", opt(code)}}}};
  }
};

// 400 invalid_request_error naming the offending field.
inline ApiError bad_request(const std::string& param, const std::string& message, const std::string& code = "") {
  return ApiError(400, "invalid_request_error", message, param, code);
}

// A request that failed after it was accepted, by the status its failure
// carries (ChannelEvent::status): 400, a bad input found while it ran, as
// invalid_request_error; 503 (the server is stopping) and 500 as server_error.
inline ApiError request_failed(int status, const std::string& message) {
  return ApiError(status, status == 400 ? "invalid_request_error" : "server_error", message);
}

}  // namespace synthpert::server

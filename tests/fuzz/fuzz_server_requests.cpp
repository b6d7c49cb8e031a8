// libFuzzer target: an HTTP request body as the server reads it, parsed as
// each of its three request kinds. Refusing it with an ApiError (the 400
// the client sees) is fine; any other exception or a crash is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "apps/server/api_error.h"
#include "apps/server/requests.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace synthpert::server;
  nlohmann::json body;
  try {
    body = parse_body(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const ApiError&) {
    return 0;
  }
  try {
    (void)parse_chat_request(body);
  } catch (const ApiError&) {
  }
  try {
    (void)parse_completion_request(body);
  } catch (const ApiError&) {
  }
  try {
    (void)parse_predict_request(body);
  } catch (const ApiError&) {
  }
  return 0;
}

// libFuzzer target: the body of a teacher's or judge's reply. The endpoint is
// anyone's OpenAI-compatible server, so the body is untrusted: it reads as a
// completion or is refused with ChatError(200), and nothing else happens.
// Whatever text comes out is UTF-8 (JSON strings are), and an error body's
// text is UTF-8 whenever the body is (the cut keeps characters whole).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/utf8.h"
#include "perturb/openai_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace synthpert::perturb;
  using synthpert::is_valid_utf8;
  const std::string body(reinterpret_cast<const char*>(data), size);
  try {
    const ChatReply r = parse_chat_reply(body);
    if (!is_valid_utf8(r.content) || !is_valid_utf8(r.reasoning) || !is_valid_utf8(r.finish_reason)) std::abort();
  } catch (const ChatError& e) {
    if (e.status() != 200) std::abort();
  }
  if (is_valid_utf8(body) && !is_valid_utf8(chat_error_text(body))) std::abort();
  return 0;
}

// libFuzzer target: a chat template from an untrusted model folder, parsed
// and rendered over a fixed conversation. Refusing the template with an
// InputError is fine; any other exception, a crash, a hang or unbounded
// memory is a bug (scripts/fuzz.sh runs it with -timeout and -rss_limit_mb).
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using synthpert::tokenizer::ChatTemplate;
  const std::string source(reinterpret_cast<const char*>(data), size);
  try {
    ChatTemplate t = ChatTemplate::from_string(source);
    t.set_variable("bos_token", "<s>");
    t.set_variable("eos_token", "</s>");
    const nlohmann::ordered_json messages = {
        {{"role", "system"}, {"content", "Answer in one word."}},
        {{"role", "user"}, {"content", "Is GENE1 upregulated?"}},
        {{"role", "assistant"}, {"content", "No."}, {"reasoning_content", "GENE1 is far from the target."}},
        {{"role", "user"}, {"content", ""}},
    };
    (void)t.render_json(messages, true);
  } catch (const synthpert::InputError&) {
  }
  return 0;
}

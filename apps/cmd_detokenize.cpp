// `synthpert detokenize`: token ids -> text with a model folder's tokenizer.
#include "apps/command.h"
#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace synthpert::cli {
namespace {

struct Opts {
  std::string tokenizer, ids;
  bool skip_special = false;
};

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  cmd.add_option("--tokenizer", o->tokenizer, "folder with tokenizer.json or tokenizer.model")->required();
  cmd.add_option("--ids", o->ids, "token ids, comma-separated")->required();
  cmd.add_flag("--skip-special", o->skip_special, "leave special tokens out of the text");
  return [o] {
    const auto tok = tokenizer::Tokenizer::load(o->tokenizer);
    print_json({{"text", tok->decode(parse_id_list("--ids", o->ids), o->skip_special)}});
    return 0;
  };
}

const CommandRegistrar reg("detokenize", "Turn token ids into text", setup);

}  // namespace
}  // namespace synthpert::cli

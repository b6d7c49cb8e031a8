// `synthpert tokenize`: text -> token ids with a model folder's tokenizer.
#include "apps/command.h"
#include "common/error.h"
#include "common/fs.h"
#include "tokenizer/tokenizer.h"

namespace synthpert::cli {
namespace {

struct Opts {
  std::string tokenizer, text, file;
  bool no_special = false;
};

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  cmd.add_option("--tokenizer", o->tokenizer, "folder with tokenizer.json or tokenizer.model")->required();
  auto* text = cmd.add_option("--text", o->text, "text to tokenize");
  auto* file = cmd.add_option("--file", o->file, "file whose bytes are tokenized");
  text->excludes(file);
  cmd.add_flag("--no-special", o->no_special, "do not add BOS/EOS (special tokens in the text are still recognised)");
  return [o, text, file] {
    SP_CHECK_INPUT(text->count() + file->count() == 1, "exactly one of --text or --file is required");
    const auto tok = tokenizer::Tokenizer::load(o->tokenizer);
    const std::string input = file->count() ? read_file(o->file) : o->text;
    print_json({{"ids", tok->encode(input, !o->no_special)}});
    return 0;
  };
}

const CommandRegistrar reg("tokenize", "Turn text into token ids", setup);

}  // namespace
}  // namespace synthpert::cli

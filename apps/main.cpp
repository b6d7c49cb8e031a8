// synthpert: one binary, one subcommand per task (docs/cli.md).
// Errors print one line "synthpert <cmd>: error: ..." and exit non-zero:
// 2 for bad input (a bad command line included), 1 for anything else, also
// when the result cannot be written to stdout.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <stdexcept>

#include "apps/command.h"
#include "common/error.h"
#include "common/host_allocator.h"

namespace synthpert::cli {

std::vector<Command>& command_registry() {
  static std::vector<Command> registry;
  return registry;
}

void print_json(const nlohmann::json& j) {
  std::cout << j.dump() << '\n';
  std::cout.flush();
  // A full disk or a closed pipe: the result is lost, so the run failed.
  if (!std::cout) throw std::runtime_error("cannot write the result to standard output");
}

const CLI::Validator& whole_number() {
  static const CLI::Validator v(
      [](std::string& text) -> std::string {
        const bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
          return c >= '0' && c <= '9';
        });
        if (!digits) return "expected a whole number >= 0, got '" + text + "'";
        text.erase(0, std::min(text.find_first_not_of('0'), text.size() - 1));
        return "";
      },
      "");  // the option's own type name (UINT, INT) stays the one --help shows
  return v;
}

std::vector<int64_t> parse_id_list(const std::string& flag, const std::string& text) {
  std::vector<int64_t> ids;
  size_t pos = 0;
  int64_t index = 0;
  while (pos <= text.size()) {
    const size_t comma = text.find(',', pos);
    const std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    ++index;
    // The whole list is quoted (shortened): an empty item alone says little.
    SP_CHECK_INPUT(!item.empty() && end && *end == '\0' && errno == 0 && v >= 0, flag,
                   ": expected comma-separated non-negative integers; item ", index, " of '",
                   text.size() > 80 ? text.substr(0, 77) + "..." : text, "' is '", item, "'");
    ids.push_back(v);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  SP_CHECK_INPUT(!ids.empty(), flag, ": empty id list");
  return ids;
}

void add_split_part_options(CLI::App& cmd, std::string& part, double& val_fraction, uint64_t& val_seed) {
  cmd.add_option("--part", part, "test | val | train (val: the validation groups of the training rows; train: the rest)")
      ->capture_default_str();
  cmd.add_option("--val-fraction", val_fraction,
                 "training (cell line, pert) groups held out as --part val and left out of --part train "
                 "(the demo holds out 0.05)")
      ->capture_default_str();
  cmd.add_option("--val-seed", val_seed, "seed choosing those groups (the demo's is its --seed)")->transform(whole_number())->capture_default_str();
}

}  // namespace synthpert::cli

int main(int argc, char** argv) {
  using namespace synthpert::cli;
  synthpert::keep_large_allocations_on_heap();
  CLI::App app{"synthpert: fine-tune and serve LLMs that predict CRISPRi perturbation outcomes"};
  app.set_version_flag("--version", "synthpert 0.1.0");
  app.require_subcommand(1);

  auto& registry = command_registry();
  std::sort(registry.begin(), registry.end(),
            [](const Command& a, const Command& b) { return a.name < b.name; });
  std::vector<std::pair<CLI::App*, RunFn>> commands;
  for (auto& c : registry) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    commands.emplace_back(sub, c.setup(*sub));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::string name;
    for (auto& [sub, run] : commands)
      if (sub->parsed()) name = " " + sub->get_name();
    std::fprintf(stderr, "synthpert%s: error: %s (see synthpert%s --help)\n", name.c_str(), e.what(), name.c_str());
    return 2;
  }
  for (auto& [sub, run] : commands) {
    if (!sub->parsed()) continue;
    try {
      return run();
    } catch (const synthpert::InputError& e) {
      std::fprintf(stderr, "synthpert %s: error: %s\n", sub->get_name().c_str(), e.what());
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "synthpert %s: error: %s\n", sub->get_name().c_str(), e.what());
      return 1;
    }
  }
  return 1;
}

// Subcommand registry of the synthpert CLI.
//
// Each apps/cmd_<name>.cpp registers itself with a file-level static
// CommandRegistrar, so adding a subcommand touches no shared file. Its setup
// function declares the options on the CLI11 subcommand and returns the
// function that runs it (returning the process exit code).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace synthpert::cli {

using RunFn = std::function<int()>;
using SetupFn = std::function<RunFn(CLI::App&)>;

struct Command {
  std::string name;
  std::string help;
  SetupFn setup;
};

std::vector<Command>& command_registry();

struct CommandRegistrar {
  CommandRegistrar(std::string name, std::string help, SetupFn setup) {
    command_registry().push_back({std::move(name), std::move(help), std::move(setup)});
  }
};

// Machine-readable output: one JSON document on stdout, newline-terminated.
void print_json(const nlohmann::json& j);

// For seeds and counts. CLI11 reads "-1" into an unsigned option as
// 2^64 - 1 and "010" as octal 8; this accepts decimal digits only (leading
// zeros dropped; attach with Option::transform so that reaches the option)
// and names the option otherwise.
const CLI::Validator& whole_number();

// Parses "1,2,3" into integers; throws InputError naming the flag on bad input.
std::vector<int64_t> parse_id_list(const std::string& flag, const std::string& text);

// --part, --val-fraction and --val-seed: which part of a PerturbQA split eval,
// baselines and data read (perturb/split.h select_part).
void add_split_part_options(CLI::App& cmd, std::string& part, double& val_fraction, uint64_t& val_seed);

}  // namespace synthpert::cli

// Training checkpoints: everything needed to continue a run exactly.
//
//   DIR/checkpoints/step-00000040/
//     trainable.safetensors  float32 masters of the trained parameters
//     optimizer.safetensors  AdamW exp_avg.<name>, exp_avg_sq.<name>
//     state.json             {"step", "run": {the run's fingerprint}}
//
// The data order and every random draw are pure functions of (seed, step),
// so the step count is the whole data-loader and RNG state. A checkpoint is
// written into a temporary folder and renamed into place, so a killed run
// leaves either the complete checkpoint or none; older ones beyond the
// newest K are removed afterwards.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "trainer/adamw.h"
#include "trainer/param_set.h"

namespace synthpert::trainer {

void save_checkpoint(const std::string& root, int64_t step, const ParamSet& params,
                     AdamW& optimizer, const nlohmann::json& run, int64_t keep_last);

// The newest complete checkpoint folder under root, if any.
std::optional<std::string> latest_checkpoint(const std::string& root);

// Reads the fingerprint of a checkpoint.
nlohmann::json checkpoint_run(const std::string& dir);

// Throws an InputError listing every key whose value differs between the
// checkpoint's fingerprint and this run's.
void check_same_run(const nlohmann::json& saved, const nlohmann::json& now,
                    const std::string& source);

// Restores masters and optimizer state; returns the step count.
int64_t load_checkpoint(const std::string& dir, ParamSet& params, AdamW& optimizer);

}  // namespace synthpert::trainer

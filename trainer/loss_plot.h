// DIR/loss.svg: the loss curve of a run (train loss per step as a line,
// validation loss as points), drawn from metrics.jsonl lines. Plain SVG, no
// dependencies; opens in any browser.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace synthpert::trainer {

std::string loss_curve_svg(const std::vector<nlohmann::json>& metrics, const std::string& title);

}  // namespace synthpert::trainer

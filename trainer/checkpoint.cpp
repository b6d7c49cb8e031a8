#include "trainer/checkpoint.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"
#include "common/settings_diff.h"
#include "engine/tensor_io.h"

namespace synthpert::trainer {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kState = "state.json";

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

// Complete checkpoints (named step-N, holding state.json), oldest first.
std::vector<fs::path> complete_checkpoints(const std::string& root) {
  std::vector<fs::path> out;
  if (!fs::is_directory(root)) return out;
  for (const auto& entry : fs::directory_iterator(root)) {
    const auto name = entry.path().filename().string();
    if (entry.is_directory() && name.rfind("step-", 0) == 0 && name.size() == 13 &&
        fs::exists(entry.path() / kState))
      out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Removes the temporary folders of saves that never finished: a process
// killed while saving leaves ".tmp-step-N.PID" (masters and both moments, 12
// bytes per trained parameter). A folder whose process still runs on this
// host is another save under way and stays.
void remove_abandoned_saves(const fs::path& root) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(".tmp-step-", 0) != 0) continue;
    const size_t dot = name.rfind('.');
    const std::string pid = name.substr(dot + 1);
    if (dot == 0 || pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    const long p = std::stol(pid);
    if (p == ::getpid() || (::kill(static_cast<pid_t>(p), 0) == -1 && errno == ESRCH)) fs::remove_all(entry.path(), ec);
  }
}

}  // namespace

void save_checkpoint(const std::string& root, int64_t step, const ParamSet& params,
                     AdamW& optimizer, const json& run, int64_t keep_last) {
  const fs::path final_dir = fs::path(root) / step_name(step);
  const fs::path tmp = fs::path(root) / (".tmp-" + step_name(step) + "." + std::to_string(::getpid()));
  remove_abandoned_saves(root);
  make_dirs(tmp.string());
  engine::save_tensors((tmp / "trainable.safetensors").string(), params.views(params.master()));
  engine::NamedTensors opt;
  for (auto& [name, t] : params.views(optimizer.exp_avg())) opt.emplace_back("exp_avg." + name, t);
  for (auto& [name, t] : params.views(optimizer.exp_avg_sq())) opt.emplace_back("exp_avg_sq." + name, t);
  engine::save_tensors((tmp / "optimizer.safetensors").string(), opt);
  const json state = {{"step", step}, {"optimizer_steps", optimizer.steps()}, {"run", run}};
  write_file_atomic((tmp / kState).string(), state.dump(2) + "\n");
  // A checkpoint of the same step (a resumed run repeating it) is replaced.
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  auto all = complete_checkpoints(root);
  for (size_t i = 0; keep_last > 0 && i + static_cast<size_t>(keep_last) < all.size(); ++i)
    fs::remove_all(all[i]);
}

std::optional<std::string> latest_checkpoint(const std::string& root) {
  const auto all = complete_checkpoints(root);
  if (all.empty()) return std::nullopt;
  return all.back().string();
}

json checkpoint_run(const std::string& dir) {
  const std::string path = path_join(dir, kState);
  const json state = read_json_input(path);
  SP_CHECK_INPUT(state.is_object() && state.contains("run"), path, ": not a checkpoint state (no \"run\")");
  return state["run"];
}

void check_same_run(const json& saved, const json& now, const std::string& source) {
  const std::vector<std::string> diffs = settings_differences(saved, now, "checkpoint");
  SP_CHECK_INPUT(diffs.empty(), source,
                 ": --resume needs the same run configuration; these settings differ (nothing was "
                 "changed; use another --out for a new run):\n  ",
                 join_differences(diffs, "\n  "));
}

int64_t load_checkpoint(const std::string& dir, ParamSet& params, AdamW& optimizer) {
  const std::string tpath = path_join(dir, "trainable.safetensors");
  params.load_views(params.master(), engine::load_tensors(tpath), tpath);
  const std::string opath = path_join(dir, "optimizer.safetensors");
  auto opt = engine::load_tensors(opath);
  std::map<std::string, torch::Tensor> m, v;
  for (auto& [name, t] : opt) {
    if (name.rfind("exp_avg_sq.", 0) == 0) v[name.substr(11)] = t;
    else if (name.rfind("exp_avg.", 0) == 0) m[name.substr(8)] = t;
    else throw InputError(str_cat(opath, ": unexpected tensor '", name, "'"));
  }
  params.load_views(optimizer.exp_avg(), m, opath);
  params.load_views(optimizer.exp_avg_sq(), v, opath);
  params.write_back();
  const std::string spath = path_join(dir, kState);
  const json state = read_json_input(spath);
  return read_json_fields(spath, [&] {
    optimizer.set_steps(state.at("optimizer_steps").get<int64_t>());
    return state.at("step").get<int64_t>();
  });
}

}  // namespace synthpert::trainer

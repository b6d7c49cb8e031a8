#include "common/settings_diff.h"

#include <cstdio>
#include <set>

#include "common/hash.h"

namespace synthpert {

using nlohmann::json;

std::vector<std::string> settings_differences(const json& saved, const json& now, const std::string& saved_label) {
  // Every key of either side: a setting written only when used must also
  // match when it is absent now.
  std::set<std::string> keys;
  for (const json* side : {&saved, &now})
    if (side->is_object())
      for (const auto& [key, value] : side->items()) keys.insert(key);
  auto shown = [](const json& side, const std::string& key) {
    return side.is_object() && side.contains(key) ? side[key].dump(-1, ' ', false, json::error_handler_t::replace)
                                                  : std::string("unset");
  };
  std::vector<std::string> out;
  for (const std::string& key : keys) {
    const json there = saved.is_object() && saved.contains(key) ? saved[key] : json();
    const json here = now.is_object() && now.contains(key) ? now[key] : json();
    if (there != here) out.push_back(key + ": " + saved_label + " " + shown(saved, key) + ", now " + shown(now, key));
  }
  return out;
}

std::string content_digest(const std::string& bytes) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a64(bytes)));
  return buf;
}

std::string join_differences(const std::vector<std::string>& differences, const std::string& separator) {
  std::string out;
  for (const std::string& d : differences) out += (out.empty() ? "" : separator) + d;
  return out;
}

}  // namespace synthpert

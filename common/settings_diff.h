// What two settings objects (JSON) disagree on, for the commands that resume
// earlier work (train, eval, traces) and must refuse to mix runs: one entry
// per top-level key present in either object whose values differ, a key
// missing on one side reading as null there.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace synthpert {

// "key: <saved_label> SAVED, now NOW" for each differing key, in key order;
// a side without the key is shown as "unset".
std::vector<std::string> settings_differences(const nlohmann::json& saved, const nlohmann::json& now,
                                              const std::string& saved_label);

// A content digest for settings that are texts or files (FNV-1a 64, 16 hex
// digits): enough to tell two versions apart, not a cryptographic hash.
std::string content_digest(const std::string& bytes);

// The entries joined by `separator` ("" when the settings agree).
std::string join_differences(const std::vector<std::string>& differences, const std::string& separator);

}  // namespace synthpert

// JSON from outside the program: files, JSONL lines, HTTP bodies, headers.
//
// nlohmann refuses bad text with parse_error, a number past double's range
// (9e999) with out_of_range, and a value read as the wrong type with
// type_error. A reader that catches only some of them lets the rest out as a
// raw exception that names no file. These helpers catch every json error and
// throw an InputError naming where the text came from, so each reader states
// its rules once instead of wrapping nlohmann itself.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/fs.h"

namespace synthpert {

// Parses `text`; InputError "<where>: not valid JSON (...)" if it is not.
// Json is nlohmann::json or nlohmann::ordered_json.
template <class Json = nlohmann::json>
Json parse_json_input(std::string_view text, const std::string& where) {
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // One exception type serves every basic_json.
    throw InputError(str_cat(where, ": not valid JSON (", e.what(), ")"));
  }
}

// Reads and parses a whole file; errors name the path.
template <class Json = nlohmann::json>
Json read_json_input(const std::string& path) {
  return parse_json_input<Json>(read_file(path), path);
}

// Runs `read`, which takes fields out of parsed JSON, and turns a json error it
// lets out (a key of a type its checks did not expect, "r": "8") into an
// InputError naming `where`. Readers check the fields users get wrong with
// their own messages; this is the net under the rest.
template <class Read>
auto read_json_fields(const std::string& where, Read&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(str_cat(where, ": a value has a type this reader does not take (", e.what(), ")"));
  }
}

}  // namespace synthpert

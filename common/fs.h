// File helpers: whole-file reads and atomic writes (temp file + rename), so an
// interrupted run never leaves a half-written output behind.
#pragma once

#include <string>
#include <string_view>

namespace synthpert {

// Reads a whole file; throws InputError naming the path if it cannot.
std::string read_file(const std::string& path);

// Reads a text file without its UTF-8 byte-order mark, if any (spreadsheet
// programs write one before a CSV's header).
std::string read_text_file(const std::string& path);

// Writes `data` to `path` atomically: `path.tmp.<pid>` is written, flushed,
// fsync'ed and renamed over `path`. Parent folders are created.
void write_file_atomic(const std::string& path, std::string_view data);

// Reads a file written a line at a time (JSONL appended as work finishes).
// A torn last line, one without its '\n' because the writer was killed
// mid-write, is cut off the file itself, so appending can continue cleanly;
// `cut` (if given) says whether that happened. Returns the complete lines.
std::string read_complete_lines(const std::string& path, bool* cut = nullptr);

// Creates a folder and its parents; no error if it exists.
void make_dirs(const std::string& path);

bool path_exists(const std::string& path);

// Whether two paths name one file, existing or not: "a.jsonl", "./a.jsonl"
// and a link to it are the same.
bool same_file(const std::string& a, const std::string& b);

// Joins two path parts with exactly one '/'.
std::string path_join(const std::string& a, const std::string& b);

}  // namespace synthpert

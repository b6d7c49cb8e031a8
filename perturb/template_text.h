// The two text operations every prompt file format here shares: splitting a
// file into "[section]" blocks, and filling "{placeholder}"s.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace synthpert::perturb {

// Splits `text` at lines that equal one of `headers` (e.g. "[system]"). Lines
// before the first header must be blank or '#' comments. A section's text is
// its lines joined with '\n', trailing blank lines dropped. Returns one entry
// per header, in the order given; absent sections are "". A repeated header,
// or stray text before the first, is an InputError naming `source` and line.
std::vector<std::string> parse_sections(const std::string& text, const std::vector<std::string>& headers,
                                        const std::string& source);

// Replaces every {name} of `vars` in `text`. Any other {word} is an InputError
// naming `where`, so a misspelt placeholder does not silently reach a model.
// Text after a '{' with no closing '}' is kept as it is.
std::string substitute(const std::string& text, const std::map<std::string, std::string>& vars,
                       const std::string& where);

}  // namespace synthpert::perturb

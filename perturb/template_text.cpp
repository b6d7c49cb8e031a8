#include "perturb/template_text.h"

#include "common/error.h"

namespace synthpert::perturb {

std::vector<std::string> parse_sections(const std::string& text, const std::vector<std::string>& headers,
                                        const std::string& source) {
  std::vector<std::vector<std::string>> lines(headers.size());
  std::vector<bool> seen(headers.size(), false);
  int current = -1, line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    int header = -1;
    for (size_t i = 0; i < headers.size(); ++i)
      if (line == headers[i]) header = static_cast<int>(i);
    if (header >= 0) {
      SP_CHECK_INPUT(!seen[header], source, ":", line_no, ": section ", headers[header], " appears twice");
      seen[header] = true;
      current = header;
    } else if (current >= 0) {
      lines[current].push_back(line);
    } else {
      std::string expected;
      for (size_t i = 0; i < headers.size(); ++i)
        expected += (i == 0 ? "" : i + 1 == headers.size() ? " or " : ", ") + headers[i];
      SP_CHECK_INPUT(line.empty() || line[0] == '#', source, ":", line_no,
                     ": text before the first section; expected ", expected);
    }
  }
  // Trailing blank lines only separate sections.
  std::vector<std::string> out;
  for (auto& v : lines) {
    while (!v.empty() && v.back().empty()) v.pop_back();
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "\n" : "") + v[i];
    out.push_back(std::move(s));
  }
  return out;
}

std::string substitute(const std::string& text, const std::map<std::string, std::string>& vars,
                       const std::string& where) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find('{', pos);
    if (open == std::string::npos) break;
    const size_t close = text.find('}', open);
    out.append(text, pos, open - pos);
    if (close == std::string::npos) {
      pos = open;
      break;
    }
    const std::string key = text.substr(open + 1, close - open - 1);
    auto it = vars.find(key);
    SP_CHECK_INPUT(it != vars.end(), where, ": unknown placeholder {", key, "}");
    out += it->second;
    pos = close + 1;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

}  // namespace synthpert::perturb

#include "apps/server/text_stream.h"

#include <algorithm>

namespace synthpert::server {
namespace {

constexpr const char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

bool ends_with(const std::string& s, size_t end, const std::string& suffix) {
  return end >= suffix.size() && s.compare(end - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

TextStream::TextStream(Decode decode, std::vector<std::string> stops)
    : decode_(std::move(decode)), stops_(std::move(stops)) {}

// Where the releasable text of `full` ends: before a trailing run of U+FFFD
// (an unfinished character) and before a suffix that is a proper prefix of a
// stop string.
size_t TextStream::safe_end(const std::string& full) const {
  size_t end = full.size();
  while (ends_with(full, end, kReplacement)) end -= sizeof(kReplacement) - 1;
  size_t hold = 0;
  for (const auto& stop : stops_)
    for (size_t k = std::min(stop.size() - 1, end); k > hold; --k)
      if (full.compare(end - k, k, stop, 0, k) == 0) {
        hold = k;
        break;
      }
  return end - hold;
}

std::string TextStream::push(int64_t token) {
  if (stopped_) return "";
  tokens_.push_back(token);
  const std::string full = decode_(tokens_);
  // Text already released cannot be taken back; a decoder that rewrites its
  // past (it should not) releases nothing more until it agrees again.
  if (full.compare(0, released_.size(), released_) != 0) return "";
  size_t stop_at = std::string::npos;
  for (const auto& stop : stops_) {
    // Only where a match could end in the new text: everything released was
    // already checked, and a match inside it would have stopped earlier.
    const size_t from = released_.size() >= stop.size() ? released_.size() - stop.size() + 1 : 0;
    stop_at = std::min(stop_at, full.find(stop, from));
  }
  size_t end = stop_at;
  if (stop_at != std::string::npos) stopped_ = true;
  else end = safe_end(full);
  if (end <= released_.size()) return "";
  std::string fresh = full.substr(released_.size(), end - released_.size());
  released_ += fresh;
  return fresh;
}

std::string TextStream::finish() {
  if (stopped_ || tokens_.empty()) return "";
  const std::string full = decode_(tokens_);
  if (full.compare(0, released_.size(), released_) != 0 || full.size() <= released_.size()) return "";
  std::string rest = full.substr(released_.size());
  released_ = full;
  return rest;
}

}  // namespace synthpert::server

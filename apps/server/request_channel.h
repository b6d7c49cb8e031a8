// Hands one request's output from the inference worker to the HTTP thread
// that answers it: text pieces as they are released, then one final event.
// The HTTP side marks the channel abandoned when its client goes away, which
// the worker reads to end that row early.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>

namespace synthpert::server {

struct ChannelEvent {
  enum class Kind { kText, kDone, kError } kind = Kind::kText;
  std::string text;           // kText: the piece; kError: the message
  std::string finish_reason;  // kDone
  int64_t completion_tokens = 0;
  int status = 500;           // kError: the HTTP status it becomes

  static ChannelEvent piece(std::string text) {
    ChannelEvent e;
    e.text = std::move(text);
    return e;
  }
  static ChannelEvent failure(std::string message, int status = 500) {
    ChannelEvent e = piece(std::move(message));
    e.kind = Kind::kError;
    e.status = status;
    return e;
  }
  static ChannelEvent done(std::string finish_reason = "", int64_t completion_tokens = 0) {
    ChannelEvent e;
    e.kind = Kind::kDone;
    e.finish_reason = std::move(finish_reason);
    e.completion_tokens = completion_tokens;
    return e;
  }
};

class RequestChannel {
 public:
  void push(ChannelEvent e) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      events_.push_back(std::move(e));
    }
    ready_.notify_one();
  }

  // Waits for the next event.
  void pop(ChannelEvent& out) {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [this] { return !events_.empty(); });
    out = std::move(events_.front());
    events_.pop_front();
  }

  // Waits up to `timeout` for the next event; false if none came (a stream's
  // writer returns to httplib in between).
  bool pop(ChannelEvent& out, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!ready_.wait_for(lock, timeout, [this] { return !events_.empty(); })) return false;
    out = std::move(events_.front());
    events_.pop_front();
    return true;
  }

  void abandon() { abandoned_ = true; }
  bool abandoned() const { return abandoned_; }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<ChannelEvent> events_;
  std::atomic<bool> abandoned_{false};
};

}  // namespace synthpert::server

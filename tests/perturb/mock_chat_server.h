// An OpenAI-compatible chat-completions endpoint on 127.0.0.1 for tests of
// the HTTP clients (traces, eval --endpoint): each test scripts its replies.
#pragma once

#include <httplib.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace synthpert::perturb {

// A chat-completions endpoint on 127.0.0.1 whose replies come from `handler`,
// which sees every request body (in arrival order) and returns (status, body).
class MockChatServer {
 public:
  using Handler =
      std::function<std::pair<int, nlohmann::json>(const nlohmann::json& body, const httplib::Request& req)>;

  explicit MockChatServer(Handler handler) : handler_(std::move(handler)) {
    server_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      const nlohmann::json body = nlohmann::json::parse(req.body);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        requests_.push_back(body);
      }
      auto [status, reply] = handler_(body, req);
      res.status = status;
      if (status == 429) res.set_header("Retry-After", "0");
      res.set_content(reply.dump(), "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~MockChatServer() {
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  std::vector<nlohmann::json> requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  Handler handler_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<nlohmann::json> requests_;
};

inline nlohmann::json completion(const std::string& content, const std::string& finish = "stop",
                                 int prompt_tokens = 10, int completion_tokens = 5) {
  return {{"id", "x"},
          {"object", "chat.completion"},
          {"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", content}}},
                        {"finish_reason", finish}}}},
          {"usage", {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens}}}};
}

inline nlohmann::json api_error(const std::string& message) {
  return {{"error", {{"message", message}, {"type", "x"}}}};
}

}  // namespace synthpert::perturb

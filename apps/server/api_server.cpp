#include "apps/server/api_server.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>

#include "apps/server/api_error.h"
#include "apps/server/inference_worker.h"
#include "apps/server/predict_queue.h"
#include "apps/server/request_channel.h"
#include "apps/server/requests.h"
#include "apps/server/text_stream.h"
#include "common/error.h"
#include "engine/peft_adapter.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace synthpert::server {

using json = nlohmann::json;

namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(200);
// How long stop() lets open streams end before it stops httplib anyway (a
// client that reads nothing keeps its stream's last write waiting).
constexpr auto kStreamDrain = std::chrono::seconds(5);
constexpr size_t kMaxBody = 16u << 20;
constexpr const char* kFormType = "application/x-www-form-urlencoded";

// The token of an Authorization header's Bearer credentials; the scheme's
// case does not matter (RFC 9110 11.1). Empty when there is none.
std::string bearer_token(const std::string& header) {
  constexpr size_t kScheme = 6;  // "Bearer"
  if (header.size() <= kScheme || header[kScheme] != ' ') return "";
  for (size_t i = 0; i < kScheme; ++i)
    if (std::tolower(static_cast<unsigned char>(header[i])) != "bearer"[i]) return "";
  const size_t start = header.find_first_not_of(' ', kScheme);
  return start == std::string::npos ? "" : header.substr(start);
}

// The one method a route takes, for a request that used another; null for
// paths that are no route at all ("/v1/models/" names no model).
const char* allowed_method(const std::string& path) {
  if (path == "/v1/chat/completions" || path == "/v1/completions" || path == "/v1/predict") return "POST";
  const bool model_path = path.size() > 11 && path.rfind("/v1/models/", 0) == 0;
  if (path == "/v1/models" || path == "/health" || model_path) return "GET";
  return nullptr;
}

std::string folder_name(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  return slash == std::string::npos ? dir : dir.substr(slash + 1);
}

// Replacement characters for bytes that are not UTF-8 (a percent-decoded
// path echoed in an error): dump() would throw outside any handler.
std::string dump_lossy(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump_lossy(body), "application/json");
}

std::string sse(const json& chunk) { return "data: " + dump_lossy(chunk) + "\n\n"; }

// What one generation request needs on both threads: the worker writes its
// text into the channel, the HTTP thread reads it out.
struct Generation {
  Generation(TextStream::Decode decode, std::vector<std::string> stops) : text(std::move(decode), std::move(stops)) {}
  TextStream text;  // worker thread only
  RequestChannel channel;
};

// A prepared request: model choice, prompt tokens and decoding settings.
struct Prepared {
  std::string model;
  int64_t adapter = -1;
  std::vector<int64_t> prompt;
  int64_t max_tokens = 0;
  DecodeRequest decode;
};

}  // namespace

struct ApiServer::Impl {
  ServeConfig cfg;
  std::string name;
  // The model a /v1/predict request that names none is answered with: the
  // adapter an --eval-config evaluation scored (-1: the base model). Found
  // before the model loads, so a missing adapter is refused at once.
  int64_t predict_default;
  engine::Transformer model;
  std::unique_ptr<tokenizer::Tokenizer> tok;
  std::optional<tokenizer::ChatTemplate> chat;
  std::string chat_error;  // why the model's own template could not be loaded
  std::vector<std::string> adapter_names;
  std::vector<int64_t> stop_ids;
  std::unique_ptr<PerturbPredictor> predictor;
  // Declared before the worker, so the worker (whose thread runs the queue's
  // tasks) is joined before the queue goes.
  std::unique_ptr<PredictQueue> predictions;
  std::unique_ptr<InferenceWorker> worker;
  httplib::Server http;
  std::time_t created = std::time(nullptr);
  std::atomic<uint64_t> next_id{0};
  // Streamed responses not yet finished (their releaser not yet called),
  // which stop() lets end with their error event before httplib stops.
  std::atomic<int> open_streams{0};
  // Handlers of generation and prediction requests now running. Each holds
  // an HTTP thread until it answers (a stream, until it ends); with two
  // threads kept back, /health and /v1/models always find one free.
  std::atomic<int> busy_handlers{0};
  static constexpr int kReservedThreads = 2;
  // random_device yields 32 bits: two draws fill the 16 hex digits of an id.
  uint64_t id_salt = (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  std::mutex seed_mutex;
  std::mt19937_64 seed_rng{std::random_device{}()};

  explicit Impl(const ServeConfig& c);
  void routes();

  int64_t resolve_model(const std::string& requested) const;
  int64_t context_length() const { return worker->capacity(); }
  // `prompt_param`: the request field the prompt came from, named in refusals.
  Prepared prepare(const std::string& model_name, std::vector<int64_t> prompt, const DecodeRequest& d,
                   const char* prompt_param);
  std::string new_id(const char* prefix);
  uint64_t random_seed();

  std::shared_ptr<Generation> start(const Prepared& p);
  void answer(const Prepared& p, bool chat, httplib::Response& res);
  void answer_stream(const Prepared& p, bool chat, httplib::Response& res);

  void chat_completions(const httplib::Request& req, httplib::Response& res);
  void completions(const httplib::Request& req, httplib::Response& res);
  void predict(const httplib::Request& req, httplib::Response& res);
  json health() const;
  json model_names() const {
    json names = json::array({name});
    for (const auto& a : adapter_names) names.push_back(a);
    return names;
  }
  json model_entry(const std::string& id) const {
    return {{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "synthpert"}};
  }
};

namespace {

// The --adapter whose files are the ones the --eval-config evaluation scored
// (compared by content: the folder may have moved since), or -1 when it
// scored the base model.
int64_t eval_adapter_index(const ServeConfig& c) {
  const auto& recorded = c.predict.eval_adapter_dir;
  if (recorded.empty()) return -1;
  for (size_t i = 0; i < c.adapters.size(); ++i)
    if (engine::peft_adapter_digests(c.adapters[i].second) == c.predict.eval_adapter_digests)
      return static_cast<int64_t>(i);
  throw InputError("--eval-config: the evaluation scored the adapter " + recorded +
                   ", and no --adapter holds its files; serve it too (--adapter NAME=" + recorded +
                   ") so /v1/predict answers as the evaluation did");
}

engine::Transformer load_model(const ServeConfig& c) {
  engine::LoadOptions lo;
  lo.dtype = engine::parse_dtype(c.dtype);
  lo.device = engine::parse_device(c.device);
  return engine::Transformer::load(c.model_dir, lo);
}

}  // namespace

ApiServer::Impl::Impl(const ServeConfig& c)
    : cfg(c),
      name(c.served_name.empty() ? folder_name(c.model_dir) : c.served_name),
      predict_default(eval_adapter_index(c)),
      model(load_model(c)) {
  SP_CHECK_INPUT(cfg.max_batch >= 1, "--max-batch must be >= 1");
  SP_CHECK_INPUT(cfg.max_context >= 2, "--max-context must be >= 2");
  SP_CHECK_INPUT(cfg.prefill_chunk >= 0, "--prefill-chunk must be >= 0 (0: whole prompts)");
  SP_CHECK_INPUT(cfg.max_tokens_cap >= 1, "--max-tokens must be >= 1");
  SP_CHECK_INPUT(cfg.http_threads >= 3, "--http-threads must be >= 3 (two are kept for /health and /v1/models)");
  tok = tokenizer::Tokenizer::load(cfg.model_dir);
  if (!cfg.chat_template_file.empty()) {
    chat = tokenizer::ChatTemplate::load_or_override(cfg.model_dir, cfg.chat_template_file);
  } else if (tokenizer::ChatTemplate::present(cfg.model_dir)) {
    // A model whose template our Jinja subset cannot load still serves
    // /v1/completions; chat requests are told why they cannot be served.
    try {
      chat = tokenizer::ChatTemplate::load(cfg.model_dir);
    } catch (const InputError& e) {
      chat_error = e.what();
      std::fprintf(stderr, "serve: warning: the model's chat template is not served: %s\n", chat_error.c_str());
    }
  }
  for (const auto& [adapter_name, dir] : cfg.adapters) {
    SP_CHECK_INPUT(!adapter_name.empty() && adapter_name != name, "--adapter ", adapter_name, "=", dir,
                   ": the name must be non-empty and differ from the base model's name '", name, "'");
    SP_CHECK_INPUT(std::find(adapter_names.begin(), adapter_names.end(), adapter_name) == adapter_names.end(),
                   "--adapter: the name '", adapter_name, "' is given twice");
    adapter_names.push_back(adapter_name);
  }
  if (!cfg.adapters.empty()) engine::load_peft_adapter_bank(cfg.adapters, model);
  stop_ids = tok->stop_ids(model.config().eos_token_ids);
  predictor = std::make_unique<PerturbPredictor>(cfg.model_dir, cfg.predict);
  worker = std::make_unique<InferenceWorker>(model, stop_ids, cfg.max_batch,
                                             std::min<int64_t>(cfg.max_context, model.config().max_position_embeddings),
                                             cfg.prefill_chunk, cfg.prefix_cache_tokens);
  predictions = std::make_unique<PredictQueue>(*predictor, model, *worker, cfg.max_batch);
  routes();
}

int64_t ApiServer::Impl::resolve_model(const std::string& requested) const {
  if (requested.empty() || requested == name) return -1;
  const auto it = std::find(adapter_names.begin(), adapter_names.end(), requested);
  if (it != adapter_names.end()) return it - adapter_names.begin();
  throw ApiError(404, "invalid_request_error",
                 "The model '" + requested + "' does not exist; this server has: " + model_names().dump(), "model",
                 "model_not_found");
}

std::string ApiServer::Impl::new_id(const char* prefix) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%s-%016llx%08llx", prefix, static_cast<unsigned long long>(id_salt),
                static_cast<unsigned long long>(next_id++));
  return buf;
}

uint64_t ApiServer::Impl::random_seed() {
  std::lock_guard<std::mutex> lock(seed_mutex);
  return seed_rng();
}

Prepared ApiServer::Impl::prepare(const std::string& model_name, std::vector<int64_t> prompt, const DecodeRequest& d,
                                  const char* prompt_param) {
  Prepared p;
  p.adapter = resolve_model(model_name);
  p.model = model_name.empty() ? name : model_name;
  p.decode = d;
  const int64_t n = static_cast<int64_t>(prompt.size());
  const int64_t vocab = model.config().vocab_size;
  for (int64_t id : prompt)
    if (id >= vocab) throw bad_request("prompt", "token id " + std::to_string(id) + " is outside the vocabulary (" +
                                                     std::to_string(vocab) + ")");
  if (n == 0) throw bad_request("prompt", "the prompt has no tokens");
  const int64_t room = context_length() - n;
  if (room < 1 || (d.max_tokens && *d.max_tokens > room))
    throw bad_request(prompt_param,
                      "This model's maximum context length is " + std::to_string(context_length()) +
                          " tokens; the prompt has " + std::to_string(n) + " and " +
                          (d.max_tokens ? std::to_string(*d.max_tokens) : std::string("at least 1")) +
                          " more were requested",
                      "context_length_exceeded");
  p.max_tokens = d.max_tokens.value_or(std::min(cfg.max_tokens_cap, room));
  if (!p.decode.seeded) p.decode.sampling.seed = random_seed();
  p.prompt = std::move(prompt);
  return p;
}

std::shared_ptr<Generation> ApiServer::Impl::start(const Prepared& p) {
  auto g = std::make_shared<Generation>(
      [this](const std::vector<int64_t>& ids) { return tok->decode_generated(ids); }, p.decode.stop);
  engine::SequenceRequest job;
  job.prompt = p.prompt;
  job.adapter = p.adapter;
  job.max_new_tokens = p.max_tokens;
  job.sampling = p.decode.sampling;  // stream 0: the seed alone decides the draws
  job.on_token = [g](int64_t token) {
    if (g->channel.abandoned()) return false;
    std::string piece = g->text.push(token);
    if (!piece.empty()) g->channel.push(ChannelEvent::piece(std::move(piece)));
    return !g->text.stopped();
  };
  job.on_finish = [g](const engine::GenerateResult& r) {
    std::string rest = g->text.finish();
    if (!rest.empty()) g->channel.push(ChannelEvent::piece(std::move(rest)));
    // A stop string ends generation through on_token, which the engine reports
    // as "stop" too; "length" only when the budget ran out without one.
    // A stop token (EOS) is left out of r.tokens and the text, but usage
    // counts it, as vLLM counts every id generated (docs/server.md).
    const int64_t generated = static_cast<int64_t>(r.tokens.size()) + (r.stop_token >= 0 ? 1 : 0);
    g->channel.push(ChannelEvent::done(r.finish_reason, generated));
  };
  job.on_error = [this, g](const std::string& message) {
    g->channel.push(ChannelEvent::failure(message, worker->stopping() ? 503 : 500));
  };
  worker->submit(std::move(job));
  return g;
}

namespace {

json usage(int64_t prompt, int64_t completion) {
  return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

}  // namespace

void ApiServer::Impl::answer(const Prepared& p, bool chat_api, httplib::Response& res) {
  auto g = start(p);
  std::string text;
  ChannelEvent e;
  for (;;) {
    g->channel.pop(e);
    if (e.kind == ChannelEvent::Kind::kText) {
      text += e.text;
      continue;
    }
    if (e.kind == ChannelEvent::Kind::kError) throw request_failed(e.status, "generation failed: " + e.text);
    break;
  }
  const int64_t n_prompt = static_cast<int64_t>(p.prompt.size());
  json choice = {{"index", 0}, {"finish_reason", e.finish_reason}, {"logprobs", nullptr}};
  if (chat_api) choice["message"] = {{"role", "assistant"}, {"content", text}};
  else choice["text"] = text;
  send_json(res, 200,
            {{"id", new_id(chat_api ? "chatcmpl" : "cmpl")},
             {"object", chat_api ? "chat.completion" : "text_completion"},
             {"created", std::time(nullptr)},
             {"model", p.model},
             {"choices", json::array({choice})},
             {"usage", usage(n_prompt, e.completion_tokens)}});
}

void ApiServer::Impl::answer_stream(const Prepared& p, bool chat_api, httplib::Response& res) {
  auto g = start(p);
  struct StreamState {
    std::string id;
    std::time_t created;
    bool started = false;
  };
  auto st = std::make_shared<StreamState>(StreamState{new_id(chat_api ? "chatcmpl" : "cmpl"), std::time(nullptr)});
  const std::string model_name = p.model;
  const int64_t n_prompt = static_cast<int64_t>(p.prompt.size());
  const bool include_usage = p.decode.include_usage;
  auto chunk = [=](const json& delta_or_text, const json& finish_reason) {
    json choice = {{"index", 0}, {"finish_reason", finish_reason}, {"logprobs", nullptr}};
    if (chat_api) choice["delta"] = delta_or_text;
    else choice["text"] = delta_or_text;
    return json{{"id", st->id},
                {"object", chat_api ? "chat.completion.chunk" : "text_completion"},
                {"created", st->created},
                {"model", model_name},
                {"choices", json::array({choice})}};
  };
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [=](size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& s) {
          if (sink.write(s.data(), s.size())) return true;
          g->channel.abandon();  // the client went away: its row ends at its next token
          return false;
        };
        if (!st->started) {
          st->started = true;
          if (chat_api && !write(sse(chunk({{"role", "assistant"}, {"content", ""}}, nullptr)))) return false;
        }
        ChannelEvent e;
        if (!g->channel.pop(e, kPollInterval)) return true;  // nothing yet: httplib calls again
        if (e.kind == ChannelEvent::Kind::kText)
          return write(sse(chunk(chat_api ? json{{"content", e.text}} : json(e.text), nullptr)));
        if (e.kind == ChannelEvent::Kind::kError) {
          // Headers are gone already; the SSE error event is what OpenAI's own
          // streams send, and SDK clients raise it.
          write(sse(request_failed(e.status, "generation failed: " + e.text).body()));
        } else {
          if (!write(sse(chunk(chat_api ? json::object() : json(""), e.finish_reason)))) return false;
          if (include_usage) {
            json u = chunk(json::object(), nullptr);
            u["choices"] = json::array();
            u["usage"] = usage(n_prompt, e.completion_tokens);
            if (!write(sse(u))) return false;
          }
          if (!write("data: [DONE]\n\n")) return false;
        }
        sink.done();
        return true;
      },
      [this, g](bool success) {
        if (!success) g->channel.abandon();
        --open_streams;
      });
  ++open_streams;
}

void ApiServer::Impl::chat_completions(const httplib::Request& req, httplib::Response& res) {
  const ChatRequest r = parse_chat_request(parse_body(req.body));
  if (!chat)
    throw bad_request("messages", "the model '" + name + "' " +
                                      (chat_error.empty() ? "has no chat template"
                                                          : "has a chat template that could not be loaded (" +
                                                                chat_error + ")") +
                                      "; use /v1/completions, or start the server with --chat-template FILE");
  std::string text;
  try {
    text = chat->render_json(r.messages, /*add_generation_prompt=*/true);
  } catch (const std::exception& e) {
    throw bad_request("messages", std::string("the chat template could not render these messages: ") + e.what());
  }
  const Prepared p = prepare(r.model, tok->encode(text, /*add_special=*/false), r.decode, "messages");
  if (r.decode.stream) answer_stream(p, true, res);
  else answer(p, true, res);
}

void ApiServer::Impl::completions(const httplib::Request& req, httplib::Response& res) {
  const CompletionRequest r = parse_completion_request(parse_body(req.body));
  std::vector<int64_t> ids = r.prompt_text ? tok->encode(*r.prompt_text, /*add_special=*/true) : r.prompt_ids;
  const Prepared p = prepare(r.model, std::move(ids), r.decode, "prompt");
  if (r.decode.stream) answer_stream(p, false, res);
  else answer(p, false, res);
}

void ApiServer::Impl::predict(const httplib::Request& req, httplib::Response& res) {
  const PredictRequest r = parse_predict_request(parse_body(req.body));
  const int64_t adapter = r.model.empty() ? predict_default : resolve_model(r.model);
  json result = predictions->predict(r, adapter);
  result["model"] = adapter < 0 ? name : adapter_names[static_cast<size_t>(adapter)];
  send_json(res, 200, result);
}

json ApiServer::Impl::health() const {
  const auto s = worker->stats();
  const auto p = predictions->stats();
  json predict = predictor->describe();
  predict["default_model"] = predict_default < 0 ? name : adapter_names[static_cast<size_t>(predict_default)];
  predict["predictions"] = p.predictions;
  predict["scoring_batches"] = p.batches;
  predict["largest_scoring_batch"] = p.largest_batch;
  return {{"status", "ok"},
          {"model", name},
          {"adapters", adapter_names},
          {"device", cfg.device},
          {"dtype", cfg.dtype},
          {"chat_template", chat.has_value()},
          {"context_length", context_length()},
          {"queue",
           {{"waiting", s.waiting}, {"running", s.running}, {"steps", s.steps}, {"largest_batch", s.largest_batch}}},
          {"prefix_cache",
           {{"max_tokens", cfg.prefix_cache_tokens},
            {"entries", s.prefix_entries},
            {"tokens_held", s.prefix_tokens_held},
            {"lookups", s.prefix.lookups},
            {"tokens_reused", s.prefix.tokens_reused},
            {"tokens_kept", s.prefix.tokens_kept}}},
          {"predict", predict}};
}

void ApiServer::Impl::routes() {
  // Every handler answers errors in the OpenAI shape: ApiError as itself, a
  // bad input found deeper down (InputError) as 400, anything else as 500.
  auto guarded = [this](void (Impl::*handler)(const httplib::Request&, httplib::Response&)) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      struct Busy {
        std::atomic<int>& n;
        ~Busy() { --n; }
      };
      const int busy = ++busy_handlers + open_streams.load();
      Busy hold{busy_handlers};
      if (busy > cfg.http_threads - kReservedThreads) {
        // As OpenAI's rate limit: the SDKs retry a 429 after Retry-After.
        res.set_header("Retry-After", "1");
        send_json(res, 429,
                  ApiError(429, "requests",
                           "the server is at its limit of " + std::to_string(cfg.http_threads - kReservedThreads) +
                               " requests at once (--http-threads " + std::to_string(cfg.http_threads) +
                               ", two kept for /health and /v1/models); retry shortly",
                           "", "rate_limit_exceeded")
                      .body());
        return;
      }
      try {
        (this->*handler)(req, res);
      } catch (const ApiError& e) {
        send_json(res, e.status, e.body());
      } catch (const InputError& e) {
        send_json(res, 400, bad_request("", e.what()).body());
      } catch (const std::exception& e) {
        send_json(res, 500, ApiError(500, "server_error", e.what()).body());
      }
    };
  };
  http.Post("/v1/chat/completions", guarded(&Impl::chat_completions));
  http.Post("/v1/completions", guarded(&Impl::completions));
  http.Post("/v1/predict", guarded(&Impl::predict));
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json data = json::array({model_entry(name)});
    for (const auto& a : adapter_names) data.push_back(model_entry(a));
    send_json(res, 200, {{"object", "list"}, {"data", data}});
  });
  http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    try {
      resolve_model(id);
      send_json(res, 200, model_entry(id));
    } catch (const ApiError& e) {
      send_json(res, e.status, e.body());
    }
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) { send_json(res, 200, health()); });

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (cfg.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    if (bearer_token(req.get_header_value("Authorization")) == cfg.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    send_json(res, 401, ApiError(401, "invalid_request_error", "Incorrect or missing API key (Authorization: Bearer KEY)",
                                 "", "invalid_api_key")
                            .body());
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own error body
    std::string what;
    // A route asked with another method is a 404 from the router, or a 400
    // when the HTTP layer refused the body first (a POST with no
    // Content-Length, as `curl -X POST` sends): either way a 405.
    const char* allowed = res.status == 404 || res.status == 400 ? allowed_method(req.path) : nullptr;
    if (allowed && req.method != allowed) {
      res.status = 405;
      res.set_header("Allow", allowed);
      what = str_cat(req.path, " takes ", allowed, ", not ", req.method);
    } else if (res.status == 404) {
      what = "no route " + req.method + " " + req.path;
    } else if (res.status == 413 && req.get_header_value("Content-Type").rfind(kFormType, 0) == 0) {
      // curl -d sends this type; the HTTP layer caps such bodies far below kMaxBody.
      what = str_cat("a body sent as ", kFormType, " is limited to ", CPPHTTPLIB_FORM_URL_ENCODED_PAYLOAD_MAX_LENGTH,
                     " bytes; send it with Content-Type: application/json");
    } else if (res.status == 413) {
      what = str_cat("the request body is larger than ", kMaxBody, " bytes");
    } else {
      what = str_cat("HTTP ", res.status, ": the request could not be read");
    }
    send_json(res, res.status, ApiError(res.status, "invalid_request_error", what).body());
  });
  http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    std::fprintf(stderr, "serve: %s %s -> %d\n", req.method.c_str(), req.path.c_str(), res.status);
  });
  http.set_payload_max_length(kMaxBody);
  const int threads = cfg.http_threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
}

ApiServer::ApiServer(const ServeConfig& cfg) : impl_(std::make_unique<Impl>(cfg)) {}

ApiServer::~ApiServer() {
  stop();
  impl_->worker.reset();  // fails queued work before the HTTP side goes away
}

int ApiServer::bind() {
  auto& c = impl_->cfg;
  // httplib's default sets SO_REUSEPORT, with which a second server binds a
  // port this one holds and the kernel splits connections between them (other
  // models, other keys). SO_REUSEADDR alone still allows a quick restart.
  impl_->http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  if (c.port == 0) {
    const int port = impl_->http.bind_to_any_port(c.host);
    SP_CHECK(port > 0, "serve: cannot bind ", c.host, " to any port");
    return port;
  }
  SP_CHECK_INPUT(c.port > 0 && c.port < 65536, "--port must be within 0..65535, got ", c.port);
  SP_CHECK(impl_->http.bind_to_port(c.host, c.port), "serve: cannot bind ", c.host, ":", c.port,
           " (in use, or not an address of this host)");
  return c.port;
}

void ApiServer::run() { impl_->http.listen_after_bind(); }
void ApiServer::stop() {
  // httplib's stop() only closes the listening socket: its pool then waits
  // for every handler, and a handler waits for its generation. Stopping the
  // worker first fails those (503) after its current step instead, so
  // shutdown takes one forward pass, not the longest reply. httplib ends a
  // stream it is still writing when it stops, without its last chunk (the
  // client sees a broken connection), so the streams get a moment to send
  // their error event and end first.
  impl_->worker->stop();
  const auto deadline = std::chrono::steady_clock::now() + kStreamDrain;
  while (impl_->open_streams > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  impl_->http.stop();
}

json ApiServer::models() const { return impl_->model_names(); }


}  // namespace synthpert::server

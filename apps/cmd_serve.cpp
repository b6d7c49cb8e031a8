// `synthpert serve`: the OpenAI-compatible HTTP server (apps/server/api_server.h).
// Prints one JSON line on stdout once it accepts connections
// ({"listening": "http://HOST:PORT", "models": [...]}), logs requests on
// stderr, and stops cleanly on SIGINT or SIGTERM.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "apps/command.h"
#include "apps/server/api_server.h"
#include "common/error.h"
#include "perturb/prompt.h"

namespace synthpert::cli {
namespace {

int g_stop_pipe[2] = {-1, -1};

void on_stop_signal(int sig) {
  const char c = static_cast<char>(sig);
  [[maybe_unused]] const ssize_t n = write(g_stop_pipe[1], &c, 1);
}

struct Opts {
  server::ServeConfig cfg;
  std::vector<std::string> adapters;
  std::string offsets, eval_config;
  bool chat = false, no_chat = false;
};

std::pair<std::string, std::string> split_adapter(const std::string& spec) {
  const size_t eq = spec.find('=');
  SP_CHECK_INPUT(eq != std::string::npos && eq > 0 && eq + 1 < spec.size(), "--adapter: expected NAME=DIR, got '",
                 spec, "'");
  return {spec.substr(0, eq), spec.substr(eq + 1)};
}

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  auto& c = o->cfg;
  auto& p = c.predict;
  cmd.add_option("--model", c.model_dir, "model folder (Hugging Face layout, with its tokenizer)")->required();
  cmd.add_option("--adapter", o->adapters, "NAME=DIR: a PEFT LoRA adapter served as model NAME (repeatable)");
  cmd.add_option("--served-model-name", c.served_name, "the base model's name in requests (default: folder name)");
  cmd.add_option("--host", c.host, "address to listen on")->capture_default_str();
  cmd.add_option("--port", c.port, "port to listen on (0: any free port)")->capture_default_str();
  cmd.add_option("--api-key", c.api_key, "require Authorization: Bearer KEY (default: $SYNTHPERT_API_KEY if set)");
  cmd.add_option("--chat-template", c.chat_template_file, "Jinja template file used instead of the model's");
  cmd.add_option("--device", c.device, "cpu | cuda[:N]")->capture_default_str();
  cmd.add_option("--dtype", c.dtype, "f32 | bf16 | f16")->capture_default_str();
  cmd.add_option("--max-batch", c.max_batch, "sequences generated at once (continuous batching)")->capture_default_str();
  cmd.add_option("--max-context", c.max_context,
                 "tokens per sequence, prompt + completion (at most the model's; the KV cache holds max-batch x this)")
      ->capture_default_str();
  cmd.add_option("--prefill-chunk", c.prefill_chunk,
                 "prompt tokens per sequence per prefill step, so a long prompt does not stall the others' decoding "
                 "(0: whole prompts)")
      ->capture_default_str();
  cmd.add_option("--prefix-cache-tokens", c.prefix_cache_tokens,
                 "prompt tokens whose keys and values are kept for later requests that start the same way (a "
                 "system prompt, a chat's earlier turns, a PerturbQA template's opening); 0: none")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--max-tokens", c.max_tokens_cap, "completion budget of a request that names none")
      ->capture_default_str();
  cmd.add_option("--http-threads", c.http_threads, "HTTP worker threads: each request in progress holds one (a stream until it ends), two are kept for /health and /v1/models; beyond, a 429")
      ->capture_default_str();
  auto* from_eval = cmd.add_option("--eval-config", o->eval_config,
                                    "/v1/predict: the settings of an evaluation (its eval_config.json) instead of "
                                    "the six flags below; a question naming no model gets the adapter it scored");
  std::vector<CLI::Option*> predict_flags = {
      cmd.add_option("--prompt-template", p.prompt, "/v1/predict: " + perturb::prompt_template_choices())
          ->capture_default_str(),
      cmd.add_option("--prompt-cell", p.prompt_cell, "/v1/predict: render every cell line as this word"),
      cmd.add_flag("--chat", o->chat, "/v1/predict: require a chat template (--chat-template's, else the model's)"),
      cmd.add_flag("--no-chat-template", o->no_chat,
                   "/v1/predict: plain prompts even if the model has a chat template or --chat-template is given"),
      cmd.add_option("--offsets", o->offsets, "/v1/predict: decision offsets JSON (from `synthpert calibrate`)"),
      cmd.add_flag("--blind-view", p.blind_view, "/v1/predict: mean of the named and name-blind views' scores")};
  for (auto* f : predict_flags) from_eval->excludes(f);
  predict_flags[2]->excludes(predict_flags[3]);
  cmd.add_option("--perturbqa", p.data_dir, "/v1/predict: PerturbQA folder for templates with evidence");
  cmd.add_option("--split", p.split, "/v1/predict: the split whose training rows give the evidence");
  cmd.add_option("--predict-max-tokens", p.reasoning_max_tokens, "/v1/predict: reasoning budget by default")
      ->capture_default_str();
  return [o] {
    auto& c = o->cfg;
    for (const auto& a : o->adapters) c.adapters.push_back(split_adapter(a));
    if (c.api_key.empty())
      if (const char* k = std::getenv("SYNTHPERT_API_KEY")) c.api_key = k;
    if (!o->eval_config.empty()) {
      auto from_eval = server::predict_config_from_eval(o->eval_config);
      from_eval.data_dir = c.predict.data_dir;
      from_eval.reasoning_max_tokens = c.predict.reasoning_max_tokens;
      if (!c.predict.split.empty()) from_eval.split = c.predict.split;
      c.predict = from_eval;
    } else {
      if (!o->offsets.empty()) c.predict.offsets = perturb::load_offsets(o->offsets);
      c.predict.chat = o->chat ? perturb::ChatMode::kOn
                       : o->no_chat ? perturb::ChatMode::kOff
                                    : perturb::ChatMode::kAuto;
      // /v1/predict renders its questions as `eval --chat-template` does.
      if (!o->no_chat) c.predict.chat_template_file = c.chat_template_file;
    }

    // SIGINT / SIGTERM write a byte into a pipe (all a handler may safely
    // do, on whichever thread receives it); one thread reads it and stops the
    // server. A client that hangs up mid-stream must not kill the process.
    SP_CHECK(pipe(g_stop_pipe) == 0, "serve: pipe() failed");
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);

    server::ApiServer srv(c);
    const int port = srv.bind();
    // Printed before the stopper thread starts: a failed write (a full or
    // closed stdout) is then an error exit, not a joinable thread destroyed.
    // A signal meanwhile waits in the pipe.
    print_json({{"listening", "http://" + c.host + ":" + std::to_string(port)}, {"models", srv.models()}});
    std::atomic<bool> run_returned{false};
    std::thread stopper([&srv, &run_returned] {
      char sig = 0;
      while (read(g_stop_pipe[0], &sig, 1) < 0 && errno == EINTR) {
      }
      if (sig != 0) std::fprintf(stderr, "serve: signal %d, stopping\n", sig);
      // stop() does nothing until the server listens, so a signal that came
      // while the model loaded is repeated until run() has begun and returned.
      while (!run_returned) {
        srv.stop();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    auto finish = [&] {
      run_returned = true;
      on_stop_signal(0);  // wakes the stopper if no signal did
      stopper.join();
    };
    try {
      srv.run();
    } catch (...) {
      finish();
      throw;
    }
    finish();
    return 0;
  };
}

const CommandRegistrar reg("serve", "OpenAI-compatible HTTP server (chat, completions, PerturbQA predictions)", setup);

}  // namespace
}  // namespace synthpert::cli

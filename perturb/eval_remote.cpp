#include "perturb/eval_remote.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "common/error.h"
#include "perturb/answer_parser.h"
#include "perturb/data_jsonl.h"
#include "perturb/openai_client.h"

namespace synthpert::perturb {

using nlohmann::json;

namespace {

json prediction_line(const Row& row, const ChatReply& reply) {
  Prediction p = unanswered_prediction(row);
  p.prediction = parse_answer(reply.content, reply.finish_reason == "length");
  json line = prediction_to_json(p);
  line["response"] = reply.content;
  if (!reply.reasoning.empty()) line["reasoning"] = reply.reasoning;
  line["finish_reason"] = reply.finish_reason;
  line["usage"] = {{"prompt_tokens", reply.prompt_tokens}, {"completion_tokens", reply.completion_tokens}};
  return line;
}

// The endpoint refused this request alone (its prompt is past the model's
// context, a content filter): the same request fails on every rerun, so once
// the endpoint has answered other rows, the row is recorded as unanswered
// instead of stopping the run for good. Before any answer, a 4xx more likely
// means the run's settings are wrong, and stops it.
bool refused_alone(int status) { return status == 400 || status == 413 || status == 422; }

json refused_line(const Row& row, const ChatError& e) {
  json line = prediction_to_json(unanswered_prediction(row));
  line["response"] = "";
  line["finish_reason"] = "error";
  line["error"] = e.what();
  return line;
}

}  // namespace

void append_remote_predictions(const ChatClient& client, const PromptTemplate& tmpl, const EvalConfig& cfg,
                               const std::vector<Row>& rows, PredictionWriter& writer) {
  const size_t first = writer.rows_written();
  std::mutex mutex;
  std::condition_variable changed;
  size_t next = first;           // the next row to send
  size_t written_to = first;     // rows before this one are written (or being written)
  std::map<size_t, json> ready;  // answered rows not yet written (some row before them is still out)
  // Rows may be answered at most this far past the first unwritten one: one
  // slow row must not gather an unbounded backlog of paid answers that a
  // kill, or that row failing, would throw away.
  const size_t window = 8 * static_cast<size_t>(std::max<int64_t>(cfg.batch, 1));
  size_t failed_row = rows.size();
  std::string failure;
  size_t running = 0;
  // Whether the endpoint has answered a row with these settings (rows written
  // by an earlier run of the same configuration count).
  bool answered = first > 0;

  auto work = [&] {
    for (;;) {
      size_t i;
      {
        std::unique_lock<std::mutex> lock(mutex);
        bool stop = false;
        for (;;) {
          stop = !failure.empty() || next >= rows.size() || cfg.interrupted();
          if (stop || next < written_to + window) break;
          // Polled, so an interrupt is seen while waiting here too.
          changed.wait_for(lock, std::chrono::milliseconds(200));
        }
        if (stop) break;
        i = next++;
      }
      ChatOptions o = cfg.endpoint_options;
      o.max_tokens = cfg.max_new_tokens;
      o.seed = static_cast<int64_t>(eval_row_seed(cfg.seed, i));
      std::optional<json> line;
      std::string error;
      std::optional<ChatError> refused;
      try {
        line = prediction_line(rows[i], client.complete(prompt_messages(rows[i], tmpl), o));
      } catch (const ChatError& e) {
        if (refused_alone(e.status())) refused = e;
        error = e.what();
      } catch (const std::exception& e) {
        error = e.what();
      }
      std::lock_guard<std::mutex> lock(mutex);
      if (line) answered = true;
      else if (refused && answered) line = refused_line(rows[i], *refused);
      if (line) {
        ready.emplace(i, std::move(*line));
      } else if (i < failed_row) {  // the earliest failure is the one reported
        failed_row = i;
        failure = error;
      }
      changed.notify_all();
    }
    std::lock_guard<std::mutex> lock(mutex);
    --running;
    changed.notify_all();
  };

  const size_t n = std::min<size_t>(static_cast<size_t>(cfg.batch), rows.size() - first);
  running = n;
  std::vector<std::thread> threads;
  for (size_t t = 0; t < n; ++t) threads.emplace_back(work);

  // This thread writes: whatever run of rows is complete from the first
  // unwritten one on, in row order; rows past a failed one are never written.
  std::exception_ptr write_error;
  for (size_t at = first;;) {
    std::vector<json> lines;
    bool finished;
    {
      std::unique_lock<std::mutex> lock(mutex);
      changed.wait(lock, [&] { return ready.count(at) || running == 0; });
      for (auto it = ready.find(at); it != ready.end() && it->first == at && at < failed_row; ++at) {
        lines.push_back(std::move(it->second));
        it = ready.erase(it);
      }
      finished = running == 0 && !ready.count(at);
      written_to = at;
    }
    changed.notify_all();
    try {
      writer.write(std::move(lines));
    } catch (...) {
      // A disk error: let the workers stop after their rows in flight.
      std::lock_guard<std::mutex> lock(mutex);
      if (failure.empty()) failure = "write failed";
      write_error = std::current_exception();
    }
    if (finished || write_error) break;
  }
  for (auto& t : threads) t.join();
  if (write_error) std::rethrow_exception(write_error);
  SP_CHECK_INPUT(failure.empty(), "row ", failed_row + 1, " (", rows[failed_row].pert, ", ", rows[failed_row].gene,
                 "): ", failure, "; the ", writer.rows_written(),
                 " rows before it are saved and a rerun resumes there");
}

}  // namespace synthpert::perturb

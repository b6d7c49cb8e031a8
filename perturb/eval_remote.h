// Generate mode of `synthpert eval` through an OpenAI-compatible chat
// endpoint: each row's prompt messages as chat turns, `cfg.batch` requests
// always in flight (a new one starts as soon as any returns, so one slow reply
// holds up nothing but itself), lines written in row order as soon as every
// row before them is done.
#pragma once

#include <vector>

#include "perturb/eval.h"
#include "perturb/eval_writer.h"
#include "perturb/prompt.h"

namespace synthpert::perturb {

// Predicts rows [writer.rows_written(), rows.size()). A request that still
// fails after the client's retries stops the run: no new request starts, the
// ones in flight finish, the rows before the failed one are written, and an
// InputError names the row (a network error must not be scored as a wrong
// answer; a rerun resumes after the last row written). A cancelled run
// (EvalConfig::cancel) also starts nothing new and writes what was in flight.
void append_remote_predictions(const ChatClient& client, const PromptTemplate& tmpl, const EvalConfig& cfg,
                               const std::vector<Row>& rows, PredictionWriter& writer);

}  // namespace synthpert::perturb

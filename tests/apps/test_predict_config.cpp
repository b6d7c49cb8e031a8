// serve --eval-config: the settings of an evaluation are taken from its
// eval_config.json only while the files it names are the ones evaluated.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/server/perturb_predictor.h"
#include "common/error.h"
#include "common/settings_diff.h"
#include "perturb/prompt.h"
#include "tests/test_util.h"

namespace synthpert::server {
namespace {

using json = nlohmann::json;

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST_CASE("serve --eval-config refuses a prompt template or chat template changed since the evaluation", "[server]") {
  test::TempDir tmp("predict-config");
  const std::string tmpl = tmp.path + "/my.txt", chat = tmp.path + "/chat.jinja", record = tmp.path + "/eval.json";
  write(tmpl, "[user]\n{cell_id} {pert} {gene} ->\n[answer]\n {label}\n");
  write(chat, "{% for m in messages %}{{ m.content }}{% endfor %}");
  // As `synthpert eval` records them: the files by path and by content.
  json j = {{"prompt_template", tmpl},
            {"prompt_digest", perturb::PromptTemplate::load(tmpl).digest()},
            {"chat", 1},
            {"chat_template_file", chat},
            {"chat_template_digest", content_digest(test::read_text(chat))},
            {"mode", "score"},
            {"split", "holdout:rpe1"},
            {"adapter", ""}};
  write(record, j.dump());
  const PredictConfig c = predict_config_from_eval(record);
  CHECK(c.prompt == tmpl);
  CHECK(c.chat_template_file == chat);
  CHECK(c.eval_adapter_dir.empty());

  write(tmpl, "[user]\nQuestion: {cell_id} {pert} {gene} ->\n[answer]\n {label}\n");
  CHECK_THROWS_WITH(predict_config_from_eval(record),
                    Catch::Contains("the prompt template " + tmpl + " is not the one evaluated"));
  j["prompt_digest"] = perturb::PromptTemplate::load(tmpl).digest();
  write(record, j.dump());
  CHECK_NOTHROW(predict_config_from_eval(record));

  write(chat, "{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}");
  CHECK_THROWS_WITH(predict_config_from_eval(record),
                    Catch::Contains("the chat template file " + chat + " is not the one evaluated"));
  j["chat_template_file"] = "elsewhere/chat.jinja";  // relative to another working folder
  write(record, j.dump());
  CHECK_THROWS_WITH(predict_config_from_eval(record),
                    Catch::Contains("elsewhere/chat.jinja is not found") && Catch::Contains("relative to the folder"));

  // An adapter's evaluation records its files' digests.
  j["chat_template_file"] = "";
  j["adapter"] = "some/adapter";
  write(record, j.dump());
  CHECK_THROWS_WITH(predict_config_from_eval(record), Catch::Contains("without its files' digests"));
  j["adapter_digests"] = {{"config", "1"}, {"weights", "2"}};
  write(record, j.dump());
  const PredictConfig a = predict_config_from_eval(record);
  CHECK(a.eval_adapter_dir == "some/adapter");
  CHECK(a.eval_adapter_digests == j["adapter_digests"]);
}

TEST_CASE("serve --eval-config: a record that is not JSON, or has a field of the wrong type, names the file",
          "[server]") {
  test::TempDir tmp("predict-config-bad");
  const std::string record = tmp.path + "/eval.json";
  write(record, "{\"chat\": 1, ");
  CHECK_THROWS_WITH(predict_config_from_eval(record), Catch::StartsWith(record + ": not valid JSON ("));
  // Each of these reached the server's start as a raw json error naming no file.
  for (const json& bad : {json{{"prompt_template", 7}, {"chat", 1}}, json{{"prompt_template", "t.txt"}, {"chat", "1"}},
                          json{{"prompt_template", "t.txt"}, {"chat", 1}, {"mode", 3}}}) {
    INFO(bad.dump());
    write(record, bad.dump());
    CHECK_THROWS_AS(predict_config_from_eval(record), InputError);
    CHECK_THROWS_WITH(predict_config_from_eval(record), Catch::StartsWith(record + ": a value has a type"));
  }
}

}  // namespace
}  // namespace synthpert::server

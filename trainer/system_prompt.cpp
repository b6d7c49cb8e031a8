#include "trainer/system_prompt.h"

#include <functional>
#include <map>
#include <memory>

#include "common/error.h"
#include "common/fs.h"
#include "perturb/prompt.h"

namespace synthpert::trainer {

namespace {

// The system message of `tmpl` for a conversation ("": none).
std::function<std::string(const Conversation&)> template_system(std::shared_ptr<const perturb::PromptTemplate> tmpl) {
  if (tmpl->system.empty()) return [](const Conversation&) { return std::string(); };
  // A system text that reads the example's fields renders differently for
  // different fields; a fixed one does not need them.
  // A fixed one is still rendered: its other placeholders ({evidence}, ...)
  // read as eval renders them, never as the raw "{...}".
  const std::string fixed = tmpl->render_system("", "", "");
  const bool uses_fields = fixed != tmpl->render_system("k562", "A", "B");
  return [tmpl, uses_fields, fixed](const Conversation& c) {
    if (!uses_fields) return fixed;
    std::string v[3];
    const char* names[3] = {"cell_type", "pert", "gene"};
    for (int i = 0; i < 3; ++i) {
      const auto it = c.fields.find(names[i]);
      SP_CHECK_INPUT(it != c.fields.end(), c.origin, ": the system text of prompt template ", tmpl->name,
                     " uses the example's cell_type, pert and gene, but it has no ", names[i],
                     " (trace key or CSV column); give --system-prompt FILE or another --prompt-template");
      v[i] = it->second;
    }
    return tmpl->render_system(v[0], v[1], v[2]);
  };
}

}  // namespace

SystemPromptChoice choose_system_prompt(const std::string& file, const std::string& prompt_template) {
  SystemPromptChoice out;
  if (!file.empty()) {
    SP_CHECK_INPUT(path_exists(file), "--system-prompt ", file, ": no such file");
    auto text = std::make_shared<const std::string>(read_file(file));
    out.identity = "file:" + *text;
    if (!text->empty()) out.fn = [text](const Conversation&) { return *text; };
    return out;
  }
  if (!prompt_template.empty()) {
    const auto tmpl = std::make_shared<const perturb::PromptTemplate>(perturb::PromptTemplate::load(prompt_template));
    out.identity = "template:" + tmpl->system;
    if (!tmpl->system.empty()) out.fn = template_system(tmpl);
    return out;
  }
  // Neither flag: a conversation that names the template its prompt came
  // from (`synthpert data` rows) gets that template's system message, which
  // is what eval shows with it (compact's: none); the others "reasoning"'s.
  // Each template is loaded once. (The data file's digest is part of the
  // run's fingerprint, so the identity need not list the templates.)
  auto by_name = std::make_shared<std::map<std::string, std::function<std::string(const Conversation&)>>>();
  auto system_of = [by_name](const std::string& name) -> const std::function<std::string(const Conversation&)>& {
    auto it = by_name->find(name);
    if (it == by_name->end())
      it = by_name->emplace(name, template_system(std::make_shared<const perturb::PromptTemplate>(
                                      perturb::PromptTemplate::load(name)))).first;
    return it->second;
  };
  out.identity = "template:rows, else reasoning";
  out.fn = [system_of](const Conversation& c) {
    const auto it = c.fields.find("prompt_template");
    if (it == c.fields.end()) return system_of("reasoning")(c);
    const std::function<std::string(const Conversation&)>* system = nullptr;
    try {
      system = &system_of(it->second);
    } catch (const InputError& e) {
      throw InputError(str_cat(c.origin, ": its prompt_template ", it->second, " cannot be read (", e.what(),
                               "); give --prompt-template or --system-prompt"));
    }
    return (*system)(c);
  };
  return out;
}

}  // namespace synthpert::trainer

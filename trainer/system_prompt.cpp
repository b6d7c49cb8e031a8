#include "trainer/system_prompt.h"

#include <memory>

#include "common/error.h"
#include "common/fs.h"
#include "perturb/prompt.h"

namespace synthpert::trainer {

SystemPromptChoice choose_system_prompt(const std::string& file, const std::string& prompt_template) {
  SystemPromptChoice out;
  if (!file.empty()) {
    SP_CHECK_INPUT(path_exists(file), "--system-prompt ", file, ": no such file");
    auto text = std::make_shared<const std::string>(read_file(file));
    out.identity = "file:" + *text;
    if (!text->empty()) out.fn = [text](const Conversation&) { return *text; };
    return out;
  }
  const auto tmpl = std::make_shared<const perturb::PromptTemplate>(
      perturb::PromptTemplate::load(prompt_template.empty() ? "reasoning" : prompt_template));
  out.identity = "template:" + tmpl->system;
  if (tmpl->system.empty()) return out;
  // A system text that reads the example's fields renders differently for
  // different fields; a fixed one does not need them.
  // A fixed one is still rendered: its other placeholders ({evidence}, ...)
  // read as eval renders them, never as the raw "{...}".
  const std::string fixed = tmpl->render_system("", "", "");
  const bool uses_fields = fixed != tmpl->render_system("k562", "A", "B");
  out.fn = [tmpl, uses_fields, fixed](const Conversation& c) {
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
  return out;
}

}  // namespace synthpert::trainer

// Oracle for the chat-template tests: renders templates with @huggingface/jinja.
// Input JSON: {"cases": [{"template": "...", "vars": {...}}]}
// Output JSON: {"results": [{"text": "..."} | {"error": "..."}]}
const fs = require('fs');
const { Template } = require('@huggingface/jinja');
const [inPath, outPath] = process.argv.slice(2);
const input = JSON.parse(fs.readFileSync(inPath, 'utf8'));
const results = input.cases.map((c) => {
  try {
    return { text: new Template(c.template).render(c.vars) };
  } catch (e) {
    return { error: String(e && e.message ? e.message : e) };
  }
});
fs.writeFileSync(outPath, JSON.stringify({ results }));

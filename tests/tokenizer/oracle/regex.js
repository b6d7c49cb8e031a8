// Oracle for the regex tests: Oniguruma itself (vscode-oniguruma, the C
// library built to WebAssembly, compiled with Oniguruma's default syntax,
// the syntax Hugging Face tokenizers compile tokenizer.json patterns with).
// Input JSON: {"patterns": [...], "texts_hex": [UTF-8 text, hex]}
// Output JSON: {"results": [{"matches": [[[start, end], ...] per text]} | {"error": "..."}]}
// Matches are the non-empty ones, in UTF-8 byte offsets, found left to right
// as Regex::for_each_match finds them: search on from a match's end, or one
// character past an empty match.
const fs = require('fs');
const onig = require('vscode-oniguruma');
const [inPath, outPath] = process.argv.slice(2);
const input = JSON.parse(fs.readFileSync(inPath, 'utf8'));

function matches(scanner, text) {
  const str = new onig.OnigString(text);
  const bytes = (i) => Buffer.byteLength(text.slice(0, i), 'utf8');
  const out = [];
  let pos = 0;
  while (pos < text.length) {
    const m = scanner.findNextMatchSync(str, pos);
    if (!m) break;
    const { start, end } = m.captureIndices[0];
    if (start >= text.length) break;
    if (end > start) {
      out.push([bytes(start), bytes(end)]);
      pos = end;
    } else {
      const c = text.charCodeAt(start);
      pos = start + (c >= 0xd800 && c <= 0xdbff ? 2 : 1);
    }
  }
  str.dispose();
  return out;
}

const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm')).buffer;
onig.loadWASM(wasm).then(() => {
  const texts = input.texts_hex.map((h) => Buffer.from(h, 'hex').toString('utf8'));
  const results = input.patterns.map((p) => {
    let scanner;
    try {
      scanner = new onig.OnigScanner([p]);
    } catch (e) {
      return { error: String(e && e.message ? e.message : e) };
    }
    const r = { matches: texts.map((t) => matches(scanner, t)) };
    scanner.dispose();
    return r;
  });
  fs.writeFileSync(outPath, JSON.stringify({ results }));
});

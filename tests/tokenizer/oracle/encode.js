// Oracle for the tokenizer tests: encodes and decodes strings with an
// @lenml/tokenizer-* package's own JS tokenizer (transformers.js).
// Input JSON: {"package": "llama3_1" | "tokenizer_json": {a whole tokenizer.json},
//              "strings_hex": [...], "added_tokens": optional override,
//              "decode": [[ids], ...] optional}
// Output JSON: {"texts": [the UTF-8 text node decoded each input to, hex],
//               "ids": [[...]], "ids_plain": [[...]] (no special tokens),
//               "decoded": [...], "decoded_skip": [...]}
const fs = require('fs');
const [inPath, outPath] = process.argv.slice(2);
const input = JSON.parse(fs.readFileSync(inPath, 'utf8'));
let tok;
if (input.tokenizer_json) {
  // A tokenizer.json written by the test itself.
  const { TokenizerLoader } = require('@lenml/tokenizers');
  tok = TokenizerLoader.fromPreTrained({ tokenizerJSON: input.tokenizer_json, tokenizerConfig: {} });
} else {
  const pkg = require(`@lenml/tokenizer-${input.package}`);
  const params = input.added_tokens ? { tokenizerJSON: { added_tokens: input.added_tokens } } : undefined;
  tok = pkg.fromPreTrained(params);
}
// TextDecoder replaces invalid UTF-8 with U+FFFD per maximal subpart (WHATWG).
const decoder = new TextDecoder('utf-8', { fatal: false });
const out = { texts: [], ids: [], ids_plain: [], decoded: [], decoded_skip: [] };
for (const hex of input.strings_hex) {
  const text = decoder.decode(Buffer.from(hex, 'hex'));
  out.texts.push(Buffer.from(text, 'utf8').toString('hex'));
  const ids = tok.encode(text);
  out.ids.push(ids);
  out.ids_plain.push(tok.encode(text, { add_special_tokens: false }));
  out.decoded.push(ids.length ? Buffer.from(tok.decode(ids), 'utf8').toString('hex') : '');
  out.decoded_skip.push(ids.length ? Buffer.from(tok.decode(ids, { skip_special_tokens: true }), 'utf8').toString('hex') : '');
}
fs.writeFileSync(outPath, JSON.stringify(out));

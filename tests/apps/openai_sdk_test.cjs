// The server under the official `openai` SDK as its client (DESIGN.md
// section 5). The reference for every output is an independent path through
// the same binary: `synthpert generate` (one prompt, no server, no batching)
// and `synthpert eval --mode score` for /v1/predict. The SDK decides what a
// well-formed response, stream and error are.
//
// Usage: node openai_sdk_test.cjs SYNTHPERT_BINARY WORK_DIR TOKENIZER_DIR
// (NODE_PATH must reach the `openai` package). Exits non-zero on any failure.
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const assert = require('node:assert/strict');
const { OpenAI } = require('openai');
const harness = require('./cli_harness.cjs');

const [bin, work, tokenizerDir] = process.argv.slice(2);
const model = path.join(work, 'model');
const adapter = path.join(work, 'adapter');
const KEY = 'test-key';
const { check, failures } = harness.checker();
const cli = (args) => harness.cli(bin, args);

async function makeModel() {
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  return await harness.makeTinyLlama(bin, model, tokenizerDir);
}

// A PEFT adapter with large random A and B on q_proj and v_proj, written by
// hand in the safetensors format, so that rows routed to it visibly differ.
function writeAdapter(cfg) {
  const r = 4;
  let state = 12345;
  const rand = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648 - 0.5;
  };
  const tensors = [];
  const headDim = cfg.head_dim || cfg.hidden_size / cfg.num_attention_heads;
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    for (const [mod, out] of [['q_proj', cfg.num_attention_heads * headDim], ['v_proj', cfg.num_key_value_heads * headDim]]) {
      const base = `base_model.model.model.layers.${l}.self_attn.${mod}`;
      tensors.push([`${base}.lora_A.weight`, [r, cfg.hidden_size]]);
      tensors.push([`${base}.lora_B.weight`, [out, r]]);
    }
  }
  const header = {};
  const chunks = [];
  let offset = 0;
  for (const [name, shape] of tensors) {
    const n = shape[0] * shape[1];
    const data = new Float32Array(n).map(() => 2 * rand());
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + 4 * n] };
    chunks.push(Buffer.from(data.buffer));
    offset += 4 * n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.mkdirSync(adapter, { recursive: true });
  fs.writeFileSync(path.join(adapter, 'adapter_model.safetensors'), Buffer.concat([len, Buffer.from(json), ...chunks]));
  fs.writeFileSync(path.join(adapter, 'adapter_config.json'), JSON.stringify({
    peft_type: 'LORA', task_type: 'CAUSAL_LM', r, lora_alpha: 8, lora_dropout: 0, bias: 'none',
    target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: model,
  }));
}

function startServer(extra = []) {
  return harness.startServe(bin, ['--model', model, '--adapter', `a1=${adapter}`, '--port', '0', '--api-key', KEY,
                                  '--max-batch', '8', '--predict-max-tokens', '6', ...extra]);
}

// `synthpert generate` for the same prompt: the reference output.
async function reference({ messages, prompt, ids, maxTokens, temperature = 0, topP = 1, seed = 0, withAdapter = false }) {
  const args = ['generate', '--model', model, '--max-new-tokens', String(maxTokens), '--temperature', String(temperature),
                '--top-p', String(topP), '--seed', String(seed)];
  if (withAdapter) args.push('--adapter', adapter);
  if (messages) {
    const f = path.join(work, `messages-${Math.random().toString(36).slice(2)}.json`);
    fs.writeFileSync(f, JSON.stringify(messages));
    args.push('--messages', f);
  } else if (prompt !== undefined) {
    args.push('--prompt', prompt);
  } else {
    args.push('--ids', ids.join(','));
  }
  return await cli(args);
}

// usage.completion_tokens of a reply equal to `ref`: its ids plus the stop
// token (EOS) that ended it, which the server counts as vLLM does while the
// text (and `generate`'s ids) leave it out. `generate` has no stop strings,
// so its "stop" is always a stop token.
const completionTokens = (ref) => ref.ids.length + (ref.finish_reason === 'stop' ? 1 : 0);

function safeStop(text) {
  // A 2-character stop string from the second half, away from surrogate pairs.
  for (let m = Math.floor(text.length / 2); m + 2 <= text.length; m++) {
    const s = text.slice(m, m + 2);
    if (!/[\uD800-\uDFFF]/.test(s) && s.trim().length === 2) return s;
  }
  return null;
}

// One raw HTTP/1.1 request (fetch always sends Content-Length on a POST;
// curl -X POST does not); resolves to the status code and the response head
// once that has arrived. The socket is not half-closed: the HTTP layer reads
// a POST without a length until its read timeout (5 s), then answers.
function rawRequest(url, text) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), hostname, () => sock.write(text));
    let got = '';
    sock.on('data', (d) => {
      got += d;
      if (got.includes('\r\n\r\n')) {
        sock.destroy();
        resolve({ status: Number(got.split(' ')[1]), text: got });
      }
    });
    sock.on('end', () => resolve({ status: Number(got.split(' ')[1]), text: got }));
    sock.on('error', reject);
  });
}

async function main() {
  const cfg = await makeModel();
  writeAdapter(cfg);
  const server = await startServer();
  const baseURL = `${server.info.listening}/v1`;
  const client = new OpenAI({ baseURL, apiKey: KEY, maxRetries: 0 });
  const name = server.info.models[0];
  const chat = [{ role: 'system', content: 'You are a biologist.' }, { role: 'user', content: 'Does MYC knockdown change TP53?' }];

  await check('models lists the base model and the adapter', async () => {
    const list = await client.models.list();
    assert.deepEqual(list.data.map((m) => m.id), [name, 'a1']);
    assert.equal((await client.models.retrieve('a1')).id, 'a1');
  });

  await check('a wrong API key is refused with 401; /health needs none', async () => {
    const bad = new OpenAI({ baseURL, apiKey: 'nope', maxRetries: 0 });
    await assert.rejects(bad.models.list(), (e) => e.status === 401 && e.code === 'invalid_api_key');
    const health = await (await fetch(`${server.info.listening}/health`)).json();
    assert.equal(health.status, 'ok');
  });

  await check('the auth scheme is case-insensitive; a route asked with the wrong method is a 405 naming the right one', async () => {
    const models = await fetch(`${server.info.listening}/v1/models`, { headers: { Authorization: `bearer  ${KEY}` } });
    assert.equal(models.status, 200);
    const headers = { Authorization: `Bearer ${KEY}` };
    const wrong = await fetch(`${server.info.listening}/v1/chat/completions`, { headers });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'POST');
    assert.match((await wrong.json()).error.message, /\/v1\/chat\/completions takes POST, not GET/);
    // A POST without Content-Length to a GET route: 405 too, not a 400 about the body.
    const bare = await rawRequest(server.info.listening,
      `POST /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n\r\n`);
    assert.equal(bare.status, 405, bare.text);
    assert.match(bare.text, /\r\nAllow: GET\r\n/i);
    const none = await fetch(`${server.info.listening}/v1/nothing`, { headers });
    assert.equal(none.status, 404);
    // "/v1/models/" names no model: no route, whatever the method.
    const noModel = await fetch(`${server.info.listening}/v1/models/`, { headers });
    assert.equal(noModel.status, 404);
    assert.match((await noModel.json()).error.message, /no route GET \/v1\/models\//);
  });

  await check('serve fails with exit 1 when its listening line cannot be written, and refuses --chat with --no-chat-template', async () => {
    const full = await harness.run('sh', ['-c', `'${bin}' serve --model '${model}' --port 0 >/dev/full`]);
    assert.equal(full.code, 1, full.stderr);
    assert.match(full.stderr, /cannot write the result to standard output/);
    const both = await harness.run(bin, ['serve', '--model', model, '--chat', '--no-chat-template']);
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /excludes/);
  });

  await check('a second server on the port this one holds is refused, not given half its connections', async () => {
    const port = new URL(server.info.listening).port;
    const second = await harness.run(bin, ['serve', '--model', model, '--port', port]);
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, /cannot bind 127\.0\.0\.1:\d+ \(in use/);
  });

  await check('a model template the interpreter cannot load: completions still served, chat told why', async () => {
    const broken = path.join(work, 'broken-template');
    fs.cpSync(model, broken, { recursive: true });
    const tc = JSON.parse(fs.readFileSync(path.join(broken, 'tokenizer_config.json'), 'utf8'));
    tc.chat_template = '{% for m in messages %}{{ m.content }';
    fs.writeFileSync(path.join(broken, 'tokenizer_config.json'), JSON.stringify(tc));
    const srv = await harness.startServe(bin, ['--model', broken, '--port', '0', '--no-chat-template']);
    try {
      const c = new OpenAI({ baseURL: `${srv.info.listening}/v1`, apiKey: 'none', maxRetries: 0 });
      const done = await c.completions.create({ model: srv.info.models[0], prompt: 'hello', max_tokens: 2 });
      assert.equal(done.object, 'text_completion');
      await assert.rejects(c.chat.completions.create({ model: srv.info.models[0], messages: chat, max_tokens: 2 }),
                           (e) => e.status === 400 && /chat template that could not be loaded/.test(e.message) &&
                                  /line 1/.test(e.message));
      assert.match(srv.log(), /the model's chat template is not served/);
    } finally {
      srv.proc.kill('SIGTERM');
    }
  });

  await check('greedy chat equals `synthpert generate --messages`, usage counts its tokens', async () => {
    const ref = await reference({ messages: chat, maxTokens: 12 });
    const res = await client.chat.completions.create({ model: name, messages: chat, max_tokens: 12, temperature: 0 });
    assert.equal(res.object, 'chat.completion');
    // 64 random bits, then a counter: the first 8 hex digits are zero once in 2^32 starts.
    assert.match(res.id, /^chatcmpl-[0-9a-f]{24}$/);
    assert.doesNotMatch(res.id, /^chatcmpl-00000000/);
    assert.equal(res.choices[0].message.role, 'assistant');
    assert.equal(res.choices[0].message.content, ref.text);
    assert.equal(res.choices[0].finish_reason, ref.finish_reason);
    assert.deepEqual(res.usage, { prompt_tokens: ref.prompt_ids.length, completion_tokens: completionTokens(ref),
                                  total_tokens: ref.prompt_ids.length + completionTokens(ref) });
  });

  await check('the adapter is chosen by model name and equals `generate --adapter`', async () => {
    const ref = await reference({ messages: chat, maxTokens: 12, withAdapter: true });
    const base = await reference({ messages: chat, maxTokens: 12 });
    assert.notEqual(ref.text, base.text, 'the test adapter should change the output');
    const res = await client.chat.completions.create({ model: 'a1', messages: chat, max_tokens: 12, temperature: 0 });
    assert.equal(res.choices[0].message.content, ref.text);
    assert.equal(res.model, 'a1');
  });

  await check('streamed chat deltas join to the seeded sampled reference; usage chunk last', async () => {
    const ref = await reference({ messages: chat, maxTokens: 20, temperature: 0.9, topP: 0.95, seed: 11 });
    const stream = await client.chat.completions.create({ model: name, messages: chat, max_tokens: 20, temperature: 0.9,
                                                          top_p: 0.95, seed: 11, stream: true,
                                                          stream_options: { include_usage: true } });
    let text = '', finish = null, usage = null, chunks = 0;
    for await (const c of stream) {
      chunks++;
      assert.equal(c.object, 'chat.completion.chunk');
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        text += ch.delta.content || '';
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    assert.ok(chunks >= 3, `${chunks} chunks`);
    assert.equal(text, ref.text);
    assert.equal(finish, ref.finish_reason);
    assert.equal(usage.completion_tokens, completionTokens(ref));
  });

  await check('completions from text and from token ids equal `generate --prompt` / `--ids`', async () => {
    const refText = await reference({ prompt: 'The knockdown of GATA1', maxTokens: 10, temperature: 1, seed: 3 });
    const a = await client.completions.create({ model: name, prompt: 'The knockdown of GATA1', max_tokens: 10, seed: 3 });
    assert.equal(a.object, 'text_completion');
    assert.equal(a.choices[0].text, refText.text);
    // The same prompt as token ids (BOS included, as --prompt encodes it), to the adapter.
    const ids = refText.prompt_ids;
    const refAdapter = await reference({ prompt: 'The knockdown of GATA1', maxTokens: 6, withAdapter: true });
    const b = await client.completions.create({ model: 'a1', prompt: ids, max_tokens: 6, temperature: 0 });
    assert.equal(b.choices[0].text, refAdapter.text);
    assert.deepEqual(b.usage, { prompt_tokens: ids.length, completion_tokens: completionTokens(refAdapter),
                                total_tokens: ids.length + completionTokens(refAdapter) });
  });

  await check('a stop string ends the text before it, finish_reason stop (also when streamed)', async () => {
    const ref = await reference({ prompt: 'Gene regulation', maxTokens: 24, temperature: 1, seed: 21 });
    const stop = safeStop(ref.text);
    assert.ok(stop, `no usable stop string in ${JSON.stringify(ref.text)}`);
    const want = ref.text.slice(0, ref.text.indexOf(stop));
    const res = await client.completions.create({ model: name, prompt: 'Gene regulation', max_tokens: 24, seed: 21, stop });
    assert.equal(res.choices[0].text, want);
    assert.equal(res.choices[0].finish_reason, 'stop');
    const stream = await client.completions.create({ model: name, prompt: 'Gene regulation', max_tokens: 24, seed: 21,
                                                      stop: [stop], stream: true });
    let text = '';
    for await (const c of stream) text += c.choices.map((ch) => ch.text).join('');
    assert.equal(text, want);
  });

  await check('concurrent requests share batches and each greedy one equals its one-prompt reference', async () => {
    // Greedy rows only are compared token for token: a random model's next-token
    // distribution is nearly flat over 128k tokens, so a sampled row can flip on
    // the last-bit differences between a batch of six and a batch of one (its
    // seed alone decides its draws; the streamed check above compares one alone).
    // The sampled row still moves every row through the host sampler.
    const jobs = [
      { model: name, messages: chat, max_tokens: 40, temperature: 0 },
      { model: 'a1', messages: chat, max_tokens: 7, temperature: 0 },
      { model: name, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 15, temperature: 0 },
      { model: 'a1', messages: [{ role: 'user', content: 'Up or down?' }], max_tokens: 9, temperature: 0 },
      { model: name, messages: [{ role: 'user', content: 'x' }], max_tokens: 1, temperature: 0 },
      { model: 'a1', messages: chat, max_tokens: 30, temperature: 1, seed: 7 },
    ];
    const refs = [];
    for (const j of jobs)
      refs.push(await reference({ messages: j.messages, maxTokens: j.max_tokens, temperature: j.temperature,
                                  seed: j.seed || 0, withAdapter: j.model === 'a1' }));
    const before = await (await fetch(`${server.info.listening}/health`)).json();
    assert.equal(before.queue.largest_batch, 1, "the checks before this one send one request at a time");
    const results = await Promise.all(jobs.map((j) => client.chat.completions.create(j)));
    results.forEach((r, i) => {
      if (jobs[i].temperature === 0) assert.equal(r.choices[0].message.content, refs[i].text, `request ${i}`);
      assert.equal(r.model, jobs[i].model);
      assert.ok(r.usage.completion_tokens <= jobs[i].max_tokens);
    });
    const after = await (await fetch(`${server.info.listening}/health`)).json();
    assert.ok(after.queue.largest_batch >= 2, JSON.stringify([before.queue, after.queue]));
  });

  await check('refusals arrive as the SDK error classes with param and code', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'nope', messages: chat }),
                         (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
    await assert.rejects(client.chat.completions.create({ model: name, messages: chat, temperature: 3 }),
                         (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
    await assert.rejects(client.chat.completions.create({ model: name, messages: chat, n: 2 }),
                         (e) => e instanceof OpenAI.BadRequestError && e.param === 'n');
    await assert.rejects(client.chat.completions.create({ model: name, messages: chat, max_tokens: 5000 }),
                         (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded');
    await assert.rejects(client.completions.create({ model: name, prompt: [cfg.vocab_size + 1] }),
                         (e) => e instanceof OpenAI.BadRequestError && e.param === 'prompt');
    await assert.rejects(client.completions.create({ model: name, prompt: 'MYC', max_tokens: 5000 }),
                         (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded' &&
                                e.param === 'prompt');
    // Structured output is refused, not ignored; a part with a type that is
    // not a string is a 400 naming the content, not a 500.
    await assert.rejects(client.chat.completions.create({ model: name, messages: chat, max_tokens: 2,
                                                          response_format: { type: 'json_object' } }),
                         (e) => e instanceof OpenAI.BadRequestError && e.param === 'response_format');
    await assert.rejects(client.chat.completions.create({ model: name, max_tokens: 2,
                                                          messages: [{ role: 'user', content: [{ type: null, text: 'hi' }] }] }),
                         (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages[0].content');
  });

  await check('a path that is not UTF-8 once percent-decoded is a 404, and the server goes on', async () => {
    const auth = { headers: { Authorization: `Bearer ${KEY}` } };
    for (const path of ['/%FF', '/v1/models/%FF%FE']) {
      const res = await fetch(`${server.info.listening}${path}`, auth);
      assert.equal(res.status, 404, path);
      assert.match((await res.json()).error.message, /\uFFFD/u, path);
    }
    assert.equal((await client.models.list()).data.length, 2);
  });

  await check('a large body sent form-encoded (curl -d) is a 413 that says to send JSON', async () => {
    // Trailing whitespace is valid JSON: past 8192 bytes with a short prompt.
    const body = JSON.stringify({ model: name, prompt: 'The knockdown of GATA1', max_tokens: 1 }) + ' '.repeat(9000);
    const headers = { Authorization: `Bearer ${KEY}` };
    const form = await fetch(`${server.info.listening}/v1/completions`, {
      method: 'POST', body, headers: { ...headers, 'Content-Type': 'application/x-www-form-urlencoded' } });
    assert.equal(form.status, 413);
    assert.match((await form.json()).error.message, /limited to 8192 bytes; send it with Content-Type: application\/json/);
    const asJson = await fetch(`${server.info.listening}/v1/completions`, {
      method: 'POST', body, headers: { ...headers, 'Content-Type': 'application/json' } });
    assert.equal(asJson.status, 200, JSON.stringify(await asJson.clone().json()));
  });

  await check('a client that leaves mid-stream does not hold up the server', async () => {
    const ac = new AbortController();
    const stream = await client.chat.completions.create({ model: name, messages: chat, max_tokens: 1500, temperature: 1,
                                                          stream: true }, { signal: ac.signal });
    try {
      for await (const c of stream) if (c.choices.length && c.choices[0].delta.content) ac.abort();
    } catch (e) {
      if (!(e instanceof OpenAI.APIUserAbortError)) throw e;
    }
    const ref = await reference({ messages: chat, maxTokens: 3 });
    const res = await client.chat.completions.create({ model: name, messages: chat, max_tokens: 3, temperature: 0 });
    assert.equal(res.choices[0].message.content, ref.text);
  });

  await check('/v1/predict equals `synthpert eval` row by row: scores as --mode score, reasoning as --mode generate', async () => {
    // eval scores one row per batch here, as predict does, so on the base model
    // the two are the same computation (in larger batches fp32 sums differ in
    // the last bits) on a server of its own. The shared server's prefix cache
    // holds keys and values of the chat header that earlier requests computed
    // in batches of other shapes: fp32 rounding apart there. With the adapter,
    // eval attaches it alone while the server applies its bank, which orders
    // the low-rank sums differently: fp32 rounding apart.
    const data = process.env.PERTURBQA_DIR || path.resolve(__dirname, '../../../shared/perturbqa');
    if (!fs.existsSync(path.join(data, 'rpe1-de.csv'))) {
      console.log(`     skipped: no PerturbQA data in ${data}`);
      return;
    }
    // The third evaluation uses other prompt settings and decision offsets;
    // a second server takes them from its eval_config.json (--eval-config).
    // The adapter's evaluation is served that way too: a question naming no
    // model is then answered with the adapter it scored.
    const offsets = path.join(work, 'offsets.json');
    fs.writeFileSync(offsets, JSON.stringify({ offsets: { upregulated: 0.7, downregulated: -0.4 } }));
    const evals = [[name, [], null], ['a1', ['--adapter', adapter], null], ['a1', ['--adapter', adapter], 'adapter-eval'],
                   [name, ['--prompt-template', 'compact', '--no-chat-template', '--blind-view', '--offsets', offsets],
                    'own-settings']];
    for (const [modelName, extra, ownServer] of evals) {
      const out = path.join(work, `eval-${modelName}-${ownServer || 'default'}`);
      await cli(['eval', '--model', model, ...extra, '--perturbqa', data, '--split', 'holdout:rpe1',
                 '--fraction', '0.00005', '--mode', 'score', '--batch', '1', '--bootstrap', '0', '--out', out]);
      const rows = fs.readFileSync(path.join(out, 'predictions.jsonl'), 'utf8').trim().split('\n').map(JSON.parse);
      assert.ok(rows.length >= 2, `${rows.length} rows`);
      // The written answers' reference: eval in generate mode on the same
      // prompts, with the server's --predict-max-tokens.
      const genOut = `${out}-generate`;
      const scoreOnly = new Set(['--blind-view', '--offsets', offsets]);
      await cli(['eval', '--model', model, ...extra.filter((a) => !scoreOnly.has(a)), '--perturbqa', data,
                 '--split', 'holdout:rpe1', '--fraction', '0.00005', '--mode', 'generate', '--max-new-tokens', '6',
                 '--batch', '1', '--bootstrap', '0', '--out', genOut]);
      const written = fs.readFileSync(path.join(genOut, 'predictions.jsonl'), 'utf8').trim().split('\n')
        .map(JSON.parse).map((l) => l.response);
      // The second server also prefills in chunks of 5 tokens, a fraction of
      // each prompt, so its written answers go through chunked prefill.
      const evalConfig = path.join(out, 'eval_config.json');
      if (ownServer && modelName !== name) {
        // Without the adapter it scored, the evaluation cannot be served.
        const refused = await harness.startServe(bin, ['--model', model, '--port', '0', '--eval-config', evalConfig])
          .then((s) => { s.proc.kill('SIGTERM'); return new Error('served without the adapter'); }, (e) => e);
        assert.match(refused.message, /the evaluation scored the adapter .* no --adapter holds its files/);
      }
      // The adapter's own server keeps no prompt prefixes: its answers must
      // equal eval's all the same.
      const cached = ownServer !== 'adapter-eval';
      const target = ownServer ? await startServer(['--eval-config', evalConfig, '--prefill-chunk', '5',
                                                    ...(cached ? [] : ['--prefix-cache-tokens', '0'])]) : server;
      // The own server's questions name no model: its default is the
      // evaluation's (the adapter, or the base model).
      const asked = ownServer ? undefined : modelName;
      try {
        for (const row of rows) {
          const res = await fetch(`${target.info.listening}/v1/predict`, {
            method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({ model: asked, cell_type: row.cell_type, pert: row.pert, gene: row.gene,
                                   reasoning: row === rows[0] }),
          });
          assert.equal(res.status, 200);
          const p = await res.json();
          assert.equal(p.model, modelName);
          const tol = modelName === name && ownServer ? 1e-12 : 1e-5;
          // probs: the model's own scores; the label: the argmax after the
          // offsets, whose probabilities are calibrated_probs (both as eval).
          const decided = row.calibrated_probs || row.probs;
          const sorted = Object.values(decided).sort((x, y) => y - x);
          if (sorted[0] - sorted[1] > 2 * tol) assert.equal(p.label, row.prediction, `${row.pert}/${row.gene}`);
          for (const [label, prob] of Object.entries(row.probs))
            assert.ok(Math.abs(p.probs[label] - prob) < tol,
                      `${modelName} ${ownServer} ${row.pert}/${row.gene} ${label}: ${p.probs[label]} vs ${prob}`);
          assert.equal(Boolean(row.calibrated_probs), ownServer === 'own-settings', 'offsets only in the last evaluation');
          assert.equal(Boolean(p.calibrated_probs), Boolean(row.calibrated_probs), 'calibrated_probs as eval');
          for (const [label, prob] of Object.entries(row.calibrated_probs || {}))
            assert.ok(Math.abs(p.calibrated_probs[label] - prob) < tol, `calibrated ${label}: ${p.calibrated_probs[label]} vs ${prob}`);
          if (row === rows[0]) assert.equal(p.reasoning, written[0], `${modelName} ${ownServer} reasoning`);
          else assert.equal(p.reasoning, null);
        }
        if (ownServer) {
          // Every row at once, twice over: the predictions are scored in
          // batches and their written answers join one continuous batch; each
          // equals its one-row reference (the scores to fp32 rounding of a
          // padded batch, the greedy text exactly).
          const before = await (await fetch(`${target.info.listening}/health`)).json();
          assert.equal(before.predict.default_model, modelName);
          const questions = [...rows, ...rows];
          const answers = await Promise.all(questions.map((row) => fetch(`${target.info.listening}/v1/predict`, {
            method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({ cell_type: row.cell_type, pert: row.pert, gene: row.gene }),
          }).then((res) => res.json())));
          answers.forEach((p, i) => {
            const row = rows[i % rows.length];
            assert.equal(p.reasoning, written[i % rows.length], `concurrent ${i}`);
            for (const [label, prob] of Object.entries(row.probs))
              assert.ok(Math.abs(p.probs[label] - prob) < 1e-5, `concurrent ${i} ${label}: ${p.probs[label]} vs ${prob}`);
          });
          const after = await (await fetch(`${target.info.listening}/health`)).json();
          assert.equal(before.queue.largest_batch, 1, 'one request at a time so far');
          assert.equal(before.predict.largest_scoring_batch, 1, 'one prediction at a time so far');
          assert.ok(after.queue.largest_batch >= 2, JSON.stringify([before.queue, after.queue]));
          assert.ok(after.predict.largest_scoring_batch >= 2, JSON.stringify([before.predict, after.predict]));
          assert.equal(after.predict.predictions - before.predict.predictions, questions.length);
          // Each question comes twice, so the second copies its prompt's keys
          // and values (scoring, then writing its answer) from the store.
          const [b, a] = [before.prefix_cache, after.prefix_cache];
          if (cached) {
            assert.ok(a.tokens_reused > b.tokens_reused && a.tokens_held <= a.max_tokens, JSON.stringify([b, a]));
          } else {
            assert.deepEqual([a.max_tokens, a.entries, a.lookups, a.tokens_reused], [0, 0, 0, 0]);
          }
        }
      } finally {
        if (ownServer) target.proc.kill('SIGTERM');
      }
    }
  });

  await check('serve --chat-template renders /v1/predict\'s questions too, as `eval --chat-template`', async () => {
    const data = process.env.PERTURBQA_DIR || path.resolve(__dirname, '../../../shared/perturbqa');
    if (!fs.existsSync(path.join(data, 'rpe1-de.csv'))) {
      console.log(`     skipped: no PerturbQA data in ${data}`);
      return;
    }
    const tmpl = path.join(work, 'plain-chat.jinja');
    fs.writeFileSync(tmpl, '{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}' +
                           '{% if add_generation_prompt %}[assistant]\n\n{% endif %}');
    const out = path.join(work, 'eval-own-template');
    await cli(['eval', '--model', model, '--chat-template', tmpl, '--perturbqa', data, '--split', 'holdout:rpe1',
               '--fraction', '0.00005', '--mode', 'score', '--batch', '1', '--bootstrap', '0', '--out', out]);
    const rows = fs.readFileSync(path.join(out, 'predictions.jsonl'), 'utf8').trim().split('\n').map(JSON.parse);
    const own = await startServer(['--chat-template', tmpl]);
    try {
      const ask = (target, row) => fetch(`${target.info.listening}/v1/predict`, {
        method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ cell_type: row.cell_type, pert: row.pert, gene: row.gene, reasoning: false }),
      }).then((res) => res.json());
      let differs = false;
      for (const row of rows) {
        const p = await ask(own, row);
        for (const [label, prob] of Object.entries(row.probs))
          assert.ok(Math.abs(p.probs[label] - prob) < 1e-12, `${row.pert}/${row.gene} ${label}: ${p.probs[label]} vs ${prob}`);
        const base = await ask(server, row);  // the model's own template: other prompts, other scores
        differs = differs || Object.keys(row.probs).some((l) => Math.abs(base.probs[l] - p.probs[l]) > 1e-6);
      }
      assert.ok(differs, 'the template changed no score: the check would pass without it');
    } finally {
      own.proc.kill('SIGTERM');
    }
  });

  await check('/v1/predict: a question that does not fit the context is refused before it is queued', async () => {
    const small = await startServer(['--max-context', '32']);
    try {
      const ask = (body) => fetch(`${small.info.listening}/v1/predict`, {
        method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      // The reasoning template's prompt alone is longer than 32 tokens:
      // refused as /v1/completions refuses a prompt, with or without reasoning
      // (scoring needs the prompt and each answer in the context too).
      for (const reasoning of [true, false]) {
        const refused = await ask({ cell_type: 'rpe1', pert: 'MYC', gene: 'TP53', reasoning });
        assert.equal(refused.status, 400, `reasoning ${reasoning}`);
        const body = await refused.json();
        assert.equal(body.error.type, 'invalid_request_error');
        assert.equal(body.error.code, 'context_length_exceeded');
        assert.match(body.error.message, /maximum context length is 32 tokens/);
      }
      // A field far longer than a gene name is refused before it is tokenized.
      const huge = await ask({ cell_type: 'rpe1', pert: 'A'.repeat(4 << 20), gene: 'TP53', reasoning: false });
      assert.equal(huge.status, 400);
      assert.equal((await huge.json()).error.param, 'pert');
      const health = await (await fetch(`${small.info.listening}/health`)).json();
      assert.equal(health.predict.predictions, 0, 'nothing reached the scoring queue');
    } finally {
      small.proc.kill('SIGTERM');
    }
  });

  await check('/v1/predict: a request that cannot be scored fails alone, as a 400; the others are answered', async () => {
    // A template whose answer follows the gene without a separator: after
    // "CDKN1A" the answer "downregulated" merges with the prompt's last
    // token (Llama-3's pre-tokenizer joins "A" and "down"), after "TP53" none
    // does. The question about CDKN1A is a bad input; asked at once with
    // good ones (one scoring batch, before the fix), it alone is refused.
    const tmpl = path.join(work, 'no-separator.txt');
    fs.writeFileSync(tmpl, '[user]\n{cell_id} {pert} {gene}\n[answer]\n{label}\n');
    const bare = await startServer(['--prompt-template', tmpl, '--no-chat-template']);
    try {
      const genes = ['TP53', 'CDKN1A', 'TP53', 'TP53'];
      const answers = await Promise.all(genes.map((gene) => fetch(`${bare.info.listening}/v1/predict`, {
        method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ cell_type: 'rpe1', pert: 'MYC', gene, reasoning: false }),
      }).then(async (res) => ({ status: res.status, body: await res.json() }))));
      answers.forEach((a, i) => {
        if (genes[i] === 'CDKN1A') {
          assert.equal(a.status, 400, JSON.stringify(a.body));
          assert.equal(a.body.error.type, 'invalid_request_error');
          assert.match(a.body.error.message, /merges with the end of the prompt/);
        } else {
          assert.equal(a.status, 200, `${i}: ${JSON.stringify(a.body)}`);
          assert.equal(Object.keys(a.body.probs).length, 3);
        }
      });
    } finally {
      bare.proc.kill('SIGTERM');
    }
  });

  await check('SIGTERM fails the requests in flight with 503 at once instead of finishing them', async () => {
    // Each request alone would write ~2,000 tokens; the server must not wait
    // for them (a non-streamed one used to get its whole answer, 200, first).
    const srv = await harness.startServe(bin, ['--model', model, '--port', '0', '--api-key', KEY,
                                              '--predict-max-tokens', '2000']);
    const base = srv.info.listening;
    try {
      const c = new OpenAI({ baseURL: `${base}/v1`, apiKey: KEY, maxRetries: 0 });
      const settle = (p) => p.then((value) => ({ value }), (error) => ({ error }));
      const completion = settle(c.completions.create({ model: name, prompt: 'MYC', max_tokens: 2000, seed: 1 }));
      const prediction = settle(fetch(`${base}/v1/predict`, {
        method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ cell_type: 'rpe1', pert: 'MYC', gene: 'TP53' }),
      }).then(async (res) => ({ status: res.status, body: await res.json() })));
      const stream = await c.chat.completions.create({ model: name, messages: chat, max_tokens: 1500, seed: 2,
                                                       stream: true });
      const iter = stream[Symbol.asyncIterator]();
      await iter.next();
      for (let t = Date.now(); ;) {  // all three rows generating
        const h = await (await fetch(`${base}/health`)).json();
        if (h.queue.running >= 3) break;
        assert.ok(Date.now() - t < 20000, `rows never all ran: ${JSON.stringify(h.queue)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      const exited = new Promise((resolve) => srv.proc.on('exit', (code) => resolve(code)));
      const t0 = Date.now();
      srv.proc.kill('SIGTERM');
      // The stream ends with OpenAI's SSE error event, which the SDK raises,
      // not with a broken connection.
      await assert.rejects(async () => { while (!(await iter.next()).done); },
                           (e) => e instanceof OpenAI.APIError && /shutting down/.test(e.message));
      const done = await completion;
      assert.ok(done.error, `the completion was answered: ${JSON.stringify(done.value && done.value.usage)}`);
      assert.equal(done.error.status, 503);
      const p = (await prediction).value;
      assert.equal(p.status, 503, JSON.stringify(p.body));
      assert.equal(p.body.error.type, 'server_error');
      assert.equal(await exited, 0);
      console.log(`     stopped ${Date.now() - t0} ms after SIGTERM`);
    } finally {
      srv.proc.kill('SIGKILL');  // only if a check above failed first
    }
  });

  await check('generate stops where serve does: at generation_config.json\'s EOS too, with or without a tokenizer; usage counts the EOS', async () => {
    // A copy of the model whose generation_config.json names, as its only
    // EOS, the token the model greedily emits first; config.json does not.
    const first = (await cli(['generate', '--model', model, '--prompt', 'hello', '--max-new-tokens', '3',
                              '--ignore-eos'])).ids[0];
    const eot = path.join(work, 'model-eot');
    fs.cpSync(model, eot, { recursive: true });
    fs.writeFileSync(path.join(eot, 'generation_config.json'), JSON.stringify({ eos_token_id: [first] }));
    // The stop token itself is not part of the output (as the server's text).
    const text = await cli(['generate', '--model', eot, '--prompt', 'hello', '--max-new-tokens', '3']);
    assert.deepEqual(text.ids, []);
    assert.equal(text.finish_reason, 'stop');
    const ids = await cli(['generate', '--model', eot, '--ids', text.prompt_ids.join(','), '--max-new-tokens', '3']);
    assert.deepEqual(ids.ids, []);
    assert.equal(ids.finish_reason, 'stop');
    const eotServer = await harness.startServe(bin, ['--model', eot, '--port', '0', '--api-key', KEY]);
    try {
      const c = new OpenAI({ baseURL: `${eotServer.info.listening}/v1`, apiKey: KEY, maxRetries: 0 });
      const r = await c.completions.create({ model: eotServer.info.models[0], prompt: 'hello', max_tokens: 3,
                                              temperature: 0 });
      assert.equal(r.choices[0].finish_reason, 'stop');
      assert.equal(r.choices[0].text, '');
      // The EOS that ended it is a generated token: usage counts it (as
      // vLLM), streamed or not, though the text leaves it out.
      assert.equal(r.usage.completion_tokens, 1);
      const stream = await c.completions.create({ model: eotServer.info.models[0], prompt: 'hello', max_tokens: 3,
                                                  temperature: 0, stream: true,
                                                  stream_options: { include_usage: true } });
      let usage = null;
      for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
      assert.equal(usage.completion_tokens, 1);
    } finally {
      eotServer.proc.kill('SIGTERM');
    }
  });

  await check('a server at its request limit answers 429 (as OpenAI\'s rate limit); /health stays reachable', async () => {
    // Three HTTP threads: one request at a time, two kept for /health and /v1/models.
    const busy = await startServer(['--http-threads', '3']);
    const c = new OpenAI({ baseURL: `${busy.info.listening}/v1`, apiKey: KEY, maxRetries: 0 });
    try {
      const stream = await c.completions.create({ model: busy.info.models[0], prompt: 'hello', max_tokens: 1000,
                                                  temperature: 0, stream: true });
      const it = stream[Symbol.asyncIterator]();
      await it.next();  // the stream holds the one request thread now
      await assert.rejects(c.completions.create({ model: busy.info.models[0], prompt: 'hi', max_tokens: 2 }),
                           (e) => e.status === 429 && e.code === 'rate_limit_exceeded' &&
                                  /limit of 1 requests at once/.test(e.message));
      const health = await fetch(`${busy.info.listening}/health`);
      assert.equal(health.status, 200);
      const models = await c.models.list();
      assert.equal(models.data.length, 2);
      stream.controller.abort();
    } finally {
      busy.proc.kill('SIGTERM');
    }
  });

  const exited = new Promise((resolve) => server.proc.on('exit', (code) => resolve(code)));
  server.proc.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 20000))]);
  await check('SIGTERM stops the server cleanly', async () => assert.equal(code, 0));
  if (failures()) console.log(`server log:\n${server.log()}`);
  console.log(failures() ? `${failures()} check(s) failed` : 'all checks passed');
  process.exit(failures() ? 1 : 0);
}

main().catch((e) => {
  console.log(`FAIL ${e.stack || e}`);
  process.exit(1);
});

// `synthpert traces` end to end, as a user runs it:
//   data -> traces (teacher and judge: a scripted mock server here) -> train
// and once against `synthpert serve` as the teacher, a real OpenAI-compatible
// server (itself checked with the official SDK), whose greedy replies must
// equal `synthpert generate` for the same messages.
//
// Usage: node traces_cli_test.cjs SYNTHPERT_BINARY WORK_DIR TOKENIZER_DIR
'use strict';
const http = require('node:http');
const https = require('node:https');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const assert = require('node:assert/strict');
const harness = require('../apps/cli_harness.cjs');

const [bin, work, tokenizerDir] = process.argv.slice(2);
const model = path.join(work, 'model');
const { check, failures } = harness.checker();
const cli = (args, env) => harness.cli(bin, args, env);
const run = (args, env) => harness.run(bin, args, env);
const keys = { SYNTHPERT_TEACHER_API_KEY: 'sk-teacher', SYNTHPERT_JUDGE_API_KEY: 'sk-judge', OPENAI_API_KEY: '' };

const readJsonl = (f) => fs.readFileSync(f, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
const trace = (gene, label) => `<think>\nWhy ${gene} is ${label}.\n</think>\n<answer>${label}</answer>`;
// The mock judge's rule, which the expectations below apply independently:
// genes with an even name length are graded good, the others bad.
const gradeOf = (gene) => (gene.length % 2 === 0 ? 'good' : 'bad');

// Teacher "mock-teacher" and judge "mock-judge", each behind its own key;
// over HTTPS when given a key and certificate.
function startMock(tls = null) {
  // delayMs holds replies back; onTeacher(n) / onJudge(n) run as the n-th
  // teacher / judge request arrives.
  // teacherReply(gene, label) / judgeReply(gene), when set, replace the
  // replies' content.
  const seen = { teacher: 0, judge: 0, delayMs: 0, onTeacher: null, onJudge: null, teacherReply: null,
                 judgeReply: null };
  const handler = (req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const reply = (status, obj) => setTimeout(() => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(obj));
      }, seen.delayMs);
      const b = JSON.parse(body);
      const want = b.model === 'mock-teacher' ? 'sk-teacher' : 'sk-judge';
      if (req.url !== '/v1/chat/completions') return reply(404, { error: { message: `no route ${req.url}` } });
      if (req.headers.authorization !== `Bearer ${want}`)
        return reply(401, { error: { message: 'Incorrect API key provided' } });
      const user = b.messages[b.messages.length - 1].content;
      const gene = /expression of the gene (\S+) upregulated/.exec(user);
      if (!gene) return reply(400, { error: { message: 'no gene in the prompt' } });
      let content;
      if (b.model === 'mock-teacher') {
        seen.teacher++;
        if (seen.onTeacher) seen.onTeacher(seen.teacher);
        const label = /Measured outcome \(for you only\): (.+)$/.exec(user)[1];
        content = seen.teacherReply ? seen.teacherReply(gene[1], label) : `Sure.\n${trace(gene[1], label)}`;
      } else {
        seen.judge++;
        if (seen.onJudge) seen.onJudge(seen.judge);
        content = seen.judgeReply ? seen.judgeReply(gene[1]) : `Fine.\n<grade>${gradeOf(gene[1])}</grade>`;
      }
      reply(200, { choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
                   usage: { prompt_tokens: 3, completion_tokens: 2 } });
    });
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  const scheme = tls ? 'https' : 'http';
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () =>
    resolve({ server, seen, url: `${scheme}://127.0.0.1:${server.address().port}/v1` })));
}

// A self-signed certificate for 127.0.0.1, made with the openssl CLI.
function makeCertificate() {
  const key = path.join(work, 'tls-key.pem'), cert = path.join(work, 'tls-cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
                           '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { key: fs.readFileSync(key), cert: fs.readFileSync(cert), certFile: cert };
}

async function main() {
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  await harness.makeTinyLlama(bin, model, tokenizerDir);
  const data = process.env.PERTURBQA_DIR || path.resolve(__dirname, '../../../shared/perturbqa');
  const rowsFile = path.join(work, 'rows.jsonl');
  await cli(['data', '--perturbqa', data, '--split', 'holdout:rpe1', '--part', 'test', '--fraction', '0.00005',
             '--seed', '4', '--out', rowsFile]);
  const rows = readJsonl(rowsFile);
  const mock = await startMock();
  const out = path.join(work, 'traces.jsonl');

  await check('data -> traces: judged traces split by grade, prompts kept, summary counts', async () => {
    assert.ok(rows.length >= 4, `${rows.length} rows`);
    const summary = await cli(['traces', '--data', rowsFile, '--teacher', mock.url, '--teacher-model', 'mock-teacher',
                               '--judge-model', 'mock-judge', '--workers', '3', '--out', out, '--quiet'], keys);
    const good = rows.filter((r) => gradeOf(r.gene) === 'good');
    assert.ok(good.length > 0 && good.length < rows.length, 'the sample should hold both grades');
    assert.equal(summary.rows, rows.length);
    assert.equal(summary.accepted, good.length);
    assert.deepEqual(summary.rejected, rows.length > good.length ? { grade: rows.length - good.length } : {});
    assert.deepEqual(summary.usage.teacher, { requests: rows.length, failed_requests: 0, retries: 0,
                                              prompt_tokens: 3 * rows.length, completion_tokens: 2 * rows.length });
    assert.equal(mock.seen.judge, rows.length);
    const byGene = new Map(readJsonl(out).map((r) => [`${r.pert}/${r.gene}`, r]));
    assert.equal(byGene.size, good.length);
    for (const r of good) {
      const t = byGene.get(`${r.pert}/${r.gene}`);
      assert.ok(t, `${r.pert}/${r.gene} missing`);
      assert.deepEqual(t.messages, [...r.messages, { role: 'assistant', content: trace(r.gene, r.label) }]);
      assert.equal(t.judge, 'good');
      assert.equal(t.label, r.label);
    }
    assert.equal(readJsonl(path.join(work, 'traces.rejected.jsonl')).length, rows.length - good.length);
  });

  await check('traces -> train: the accepted traces are training data', async () => {
    const trainOut = path.join(work, 'train');
    await cli(['train', '--model', model, '--data', out, '--out', trainOut, '--max-steps', '2', '--lora-r', '4',
               '--batch', '1', '--max-seq-len', '512', '--val-fraction', '0']);
    const steps = readJsonl(path.join(trainOut, 'metrics.jsonl')).filter((m) => m.loss !== undefined);
    assert.equal(steps.length, 2);
    assert.ok(steps.every((m) => Number.isFinite(m.loss) && m.loss > 0));
    assert.ok(fs.existsSync(path.join(trainOut, 'adapter', 'adapter_model.safetensors')));
  });

  await check('train --accept selects by judge grade: traces and SynthPert CSV', async () => {
    const good = rows.filter((r) => gradeOf(r.gene) === 'good').length;
    // Accepted and grade-rejected traces together: --accept picks the good ones again.
    const all = path.join(work, 'all-traces.jsonl');
    fs.writeFileSync(all, fs.readFileSync(out, 'utf8') + fs.readFileSync(path.join(work, 'traces.rejected.jsonl'), 'utf8'));
    const train = (data, accept, name) => run(['train', '--model', model, '--data', data, '--out', path.join(work, name),
                                               '--max-steps', '1', '--lora-r', '2', '--max-seq-len', '512',
                                               '--val-fraction', '0', '--accept', accept]);
    const picked = await train(all, 'good', 'train-accept');
    assert.equal(picked.code, 0, picked.stderr);
    const summary = JSON.parse(picked.stdout);
    assert.equal(summary.train_examples, good);
    assert.equal(summary.not_accepted, rows.length - good);
    const none = await train(all, 'excellent', 'train-none');
    assert.equal(none.code, 2);
    assert.match(none.stderr, new RegExp(`none of its ${rows.length} conversations is selected`));

    const csv = path.join(work, 'synthpert.csv');
    const t = '"<think>x</think><answer>upregulated</answer>"';
    fs.writeFileSync(csv, ['user_prompt,assistant_response,critic_evaluation',
                           `Q1,${t},Excellent`, `Q2,${t},"Weak.
<grade>bad</grade>"`, `Q3,${t},good`].join('\n') + '\n');
    const fromCsv = await train(csv, 'excellent,good', 'train-csv');
    assert.equal(fromCsv.code, 0, fromCsv.stderr);
    assert.equal(JSON.parse(fromCsv.stdout).train_examples, 2);
    fs.writeFileSync(csv, `user_prompt,assistant_response,critic_evaluation\nQ1,${t},meh\n`);
    const unreadable = await train(csv, 'good', 'train-csv-bad');
    assert.equal(unreadable.code, 2);
    assert.match(unreadable.stderr, /row 1: no grade in 'meh'/);
  });

  await check('train --accept on a REJECTED file: records without a trace and ungraded traces are left out', async () => {
    // Row 0's reply has no answer (rejected before the judge: no trace in
    // its record), row 1's verdict no grade (a trace, judge null); the rest
    // are graded as usual.
    const [noAnswer, noGrade] = [rows[0].gene, rows[1].gene];
    mock.seen.teacherReply = (gene, label) => (gene === noAnswer ? 'I cannot say.' : `Sure.\n${trace(gene, label)}`);
    mock.seen.judgeReply = (gene) => (gene === noGrade ? 'Hmm.' : `Fine.\n<grade>${gradeOf(gene)}</grade>`);
    const mixed = path.join(work, 'mixed.jsonl');
    try {
      await cli(['traces', '--data', rowsFile, '--teacher', mock.url, '--teacher-model', 'mock-teacher',
                 '--judge-model', 'mock-judge', '--workers', '1', '--out', mixed, '--quiet'], keys);
    } finally {
      mock.seen.teacherReply = mock.seen.judgeReply = null;
    }
    const rejected = readJsonl(path.join(work, 'mixed.rejected.jsonl'));
    const byGene = new Map(rejected.map((r) => [r.gene, r]));
    assert.ok(!('messages' in byGene.get(noAnswer)), 'a reply without an answer keeps no trace');
    assert.equal(byGene.get(noGrade).judge, null);
    const graded = rejected.filter((r) => typeof r.judge === 'string').length;
    assert.ok(graded > 0, 'the sample should hold graded rejections');
    const r = await run(['train', '--model', model, '--data', path.join(work, 'mixed.rejected.jsonl'),
                         '--out', path.join(work, 'train-rejected'), '--max-steps', '1', '--lora-r', '2',
                         '--max-seq-len', '512', '--val-fraction', '0', '--accept', 'excellent,good,average,bad,terrible']);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.equal(summary.train_examples, graded);
    assert.equal(summary.without_trace, 1);
    assert.equal(summary.not_accepted, rejected.length - graded - 1);
  });

  await check('an existing --out is refused without --resume; --resume has nothing left to do', async () => {
    const again = await run(['traces', '--data', rowsFile, '--teacher', mock.url, '--teacher-model', 'mock-teacher',
                             '--judge-model', 'mock-judge', '--out', out, '--quiet'], keys);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists; pass --resume/);
    const before = mock.seen.teacher;
    const resumed = await cli(['traces', '--data', rowsFile, '--teacher', mock.url, '--teacher-model', 'mock-teacher',
                               '--judge-model', 'mock-judge', '--out', out, '--resume', '--quiet'], keys);
    assert.equal(resumed.rows, 0);
    assert.equal(resumed.already_done, rows.length);
    assert.equal(mock.seen.teacher, before);
  });

  await check('a wrong key stops the run with the server\'s message and exit 2', async () => {
    const r = await run(['traces', '--data', rowsFile, '--teacher', mock.url, '--teacher-model', 'mock-teacher',
                         '--out', path.join(work, 'badkey.jsonl'), '--quiet'], { ...keys, SYNTHPERT_TEACHER_API_KEY: 'x' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /HTTP 401: Incorrect API key provided/);
    assert.match(r.stderr, /--resume continues/);
  });

  await check('SIGINT: the requests in flight are written, exit 130, --resume does the rest', async () => {
    const sOut = path.join(work, 'interrupted.jsonl');
    const args = ['traces', '--data', rowsFile, '--teacher', mock.url, '--teacher-model', 'mock-teacher',
                  '--workers', '2', '--out', sOut, '--quiet'];
    mock.seen.delayMs = 300;
    const { proc, done } = harness.start(bin, args, keys);
    const start = mock.seen.teacher;
    mock.seen.onTeacher = (n) => { if (n === start + 2) proc.kill('SIGINT'); };
    const { code, stdout, stderr } = await done;
    mock.seen.onTeacher = null;
    mock.seen.delayMs = 0;
    assert.equal(code, 130, stderr);
    assert.match(stderr, /interrupted; the rows in flight were written/);
    const summary = JSON.parse(stdout);
    assert.equal(summary.interrupted, true);
    assert.equal(summary.rows, 2);
    assert.equal(mock.seen.teacher - start, 2, 'no row may start after the signal');
    assert.equal(readJsonl(sOut).length, 2);
    const rest = await cli(['traces', ...args.slice(1), '--resume'], keys);
    assert.equal(rest.rows, rows.length - 2);
    assert.equal(rest.interrupted, false);
    assert.equal(readJsonl(sOut).length, rows.length);
  });

  await check('eval --endpoint, SIGINT: the requests in flight are written, exit 130, a rerun does the rest', async () => {
    // The mock judge stands in for a remote model (its replies parse as no answer).
    const evalOut = path.join(work, 'eval-interrupted');
    const args = ['eval', '--endpoint', mock.url, '--endpoint-model', 'mock-judge', '--perturbqa', data,
                  '--split', 'holdout:rpe1', '--fraction', '0.00005', '--seed', '4', '--mode', 'generate',
                  '--batch', '2', '--bootstrap', '0', '--out', evalOut];
    mock.seen.delayMs = 300;
    const { proc, done } = harness.start(bin, args, { SYNTHPERT_EVAL_API_KEY: 'sk-judge' });
    const start = mock.seen.judge;
    mock.seen.onJudge = (n) => { if (n === start + 2) proc.kill('SIGINT'); };
    const { code, stdout, stderr } = await done;
    mock.seen.onJudge = null;
    mock.seen.delayMs = 0;
    assert.equal(code, 130, stderr);
    assert.match(stderr, /finishing the rows in flight/);
    assert.match(stderr, /interrupted after 2 of \d+ rows; run the same command again/);
    const summary = JSON.parse(stdout);
    assert.equal(summary.interrupted, true);
    assert.equal(summary.rows_done, 2);
    assert.equal(mock.seen.judge - start, 2, 'no request may start after the signal');
    const lines = readJsonl(path.join(evalOut, 'predictions.jsonl'));
    assert.equal(lines.length, 2);
    assert.ok(!fs.existsSync(path.join(evalOut, 'metrics.json')), 'no metrics for a partial run');
    const rest = await cli(args, { SYNTHPERT_EVAL_API_KEY: 'sk-judge' });
    assert.equal(rest.rows, summary.rows);
    assert.equal(mock.seen.judge - start, summary.rows, 'the rerun asks only for the rows left');
    const all = readJsonl(path.join(evalOut, 'predictions.jsonl'));
    assert.equal(all.length, summary.rows);
    assert.deepEqual(all.slice(0, 2), lines);
    for (const l of all) assert.equal(l.response, `Fine.\n<grade>${gradeOf(l.gene)}</grade>`);
  });

  await check('bad flags name the rule', async () => {
    const noModel = await run(['traces', '--data', rowsFile, '--teacher', mock.url, '--out', path.join(work, 'x.jsonl')]);
    assert.notEqual(noModel.code, 0);
    assert.match(noModel.stderr, /--teacher-model/);
    const badUrl = await run(['traces', '--data', rowsFile, '--teacher', 'localhost:1', '--teacher-model', 'm',
                              '--out', path.join(work, 'y.jsonl')]);
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /http:\/\/ or https:\/\//);
    const badAccept = await run(['traces', '--data', rowsFile, '--teacher', mock.url, '--teacher-model', 'm',
                                 '--accept', 'great', '--out', path.join(work, 'z.jsonl')]);
    assert.equal(badAccept.code, 2);
    assert.match(badAccept.stderr, /'great' is not a grade/);
  });
  mock.server.close();

  await check('HTTPS: the server certificate is verified against the system store ($SSL_CERT_FILE)', async () => {
    const tls = makeCertificate();
    const secure = await startMock(tls);
    try {
      const args = (name, limit = '1') => ['traces', '--data', rowsFile, '--teacher', secure.url,
                                           '--teacher-model', 'mock-teacher', '--limit', limit, '--workers', '1',
                                           '--retries', '0', '--out', path.join(work, name), '--quiet'];
      const trusted = await cli(args('tls-ok.jsonl'), { ...keys, SSL_CERT_FILE: tls.certFile });
      assert.equal(trusted.accepted, 1);
      // Without the certificate in the store the connection is refused: the
      // row fails (no response), and since the teacher never answered, the
      // run stops there (exit status 2) instead of trying every row.
      const untrusted = await run(args('tls-bad.jsonl', '2'), { ...keys, SSL_CERT_FILE: '/nonexistent.pem' });
      assert.equal(untrusted.code, 2, untrusted.stderr);
      assert.match(untrusted.stderr, /teacher has not answered any request/);
      const failed = readJsonl(path.join(work, 'tls-bad.rejected.jsonl'));
      assert.equal(failed.length, 1);
      assert.match(failed[0].error, /no response/);
    } finally {
      secure.server.close();
    }
  });

  await check('`synthpert serve` as the teacher: greedy replies equal `synthpert generate`', async () => {
    const serve = await harness.startServe(bin, ['--model', model, '--port', '0']);
    try {
      const promptFile = path.join(work, 'teacher.txt');
      fs.writeFileSync(promptFile, '[user]\n{question}\nThe answer is {label}. Explain.\n');
      const sOut = path.join(work, 'served.jsonl');
      const summary = await cli(['traces', '--data', rowsFile, '--teacher', serve.info.listening,
                                 '--teacher-model', serve.info.models[0], '--teacher-prompt', promptFile,
                                 '--temperature', '0', '--max-tokens', '6', '--limit', '2', '--workers', '2',
                                 '--out', sOut, '--quiet'], keys);
      // A random model writes no tags in 6 tokens: both replies are cut off.
      assert.equal(summary.rows, 2);
      assert.deepEqual(summary.rejected, { truncated: 2 });
      assert.equal(summary.usage.teacher.completion_tokens, 12);
      for (const rec of readJsonl(path.join(work, 'served.rejected.jsonl'))) {
        const row = rows.find((r) => r.pert === rec.pert && r.gene === rec.gene);
        const user = row.messages[row.messages.length - 1].content;
        const messagesFile = path.join(work, `m-${rec.gene}.json`);
        fs.writeFileSync(messagesFile, JSON.stringify([
          { role: 'user', content: `${user}\nThe answer is ${row.label}. Explain.` }]));
        const ref = await cli(['generate', '--model', model, '--messages', messagesFile, '--max-new-tokens', '6',
                               '--temperature', '0']);
        assert.equal(rec.teacher_reply, ref.text, `${rec.pert}/${rec.gene}`);
      }
    } finally {
      serve.proc.kill('SIGTERM');
    }
  });

  await check('eval --endpoint (serve) equals eval --model in generate mode: responses, predictions, metrics', async () => {
    const serve = await harness.startServe(bin, ['--model', model, '--port', '0']);
    try {
      const common = ['--perturbqa', data, '--split', 'holdout:rpe1', '--fraction', '0.00005', '--seed', '2',
                      '--mode', 'generate', '--max-new-tokens', '8', '--temperature', '0', '--bootstrap', '0'];
      const remoteOut = path.join(work, 'eval-remote'), localOut = path.join(work, 'eval-local');
      await cli(['eval', '--endpoint', serve.info.listening, '--endpoint-model', serve.info.models[0], '--batch', '3',
                 ...common, '--out', remoteOut]);
      await cli(['eval', '--model', model, ...common, '--out', localOut]);
      const remote = readJsonl(path.join(remoteOut, 'predictions.jsonl'));
      const local = readJsonl(path.join(localOut, 'predictions.jsonl'));
      assert.ok(remote.length >= 4, `${remote.length} rows`);
      assert.equal(remote.length, local.length);
      for (let i = 0; i < local.length; i++) {
        assert.equal(remote[i].response, local[i].response, `row ${i}`);
        assert.equal(remote[i].prediction, local[i].prediction, `row ${i}`);
        assert.equal(remote[i].usage.completion_tokens, 8);
      }
      const metrics = (dir) => JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8')).model;
      assert.deepEqual(metrics(remoteOut), metrics(localOut));
      const config = JSON.parse(fs.readFileSync(path.join(remoteOut, 'eval_config.json'), 'utf8'));
      assert.equal(config.endpoint, serve.info.listening);
      assert.equal(config.generation.temperature, 0);
      const mixed = await run(['eval', '--endpoint', serve.info.listening, '--endpoint-model', 'x', '--model', model,
                               ...common, '--out', path.join(work, 'eval-mixed')]);
      assert.equal(mixed.code, 2);
      assert.match(mixed.stderr, /exclude each other/);
      // A request that fails for good stops the run; nothing after the rows before it is scored.
      const downOut = path.join(work, 'eval-down');
      const down = await run(['eval', '--endpoint', 'http://127.0.0.1:1/v1', '--endpoint-model', 'm', '--retries', '0',
                              ...common, '--out', downOut]);
      assert.equal(down.code, 2, down.stderr);
      assert.match(down.stderr, /no response.*rerun resumes there/);
      assert.equal(fs.readFileSync(path.join(downOut, 'predictions.jsonl'), 'utf8'), '');
    } finally {
      serve.proc.kill('SIGTERM');
    }
  });

  console.log(failures() ? `${failures()} check(s) failed` : 'all checks passed');
  process.exit(failures() ? 1 : 0);
}

main().catch((e) => {
  console.log(`FAIL ${e.stack || e}`);
  process.exit(1);
});

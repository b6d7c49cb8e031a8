// Shared pieces of the node tests that drive the synthpert binary: named
// checks that keep going after a failure, the CLI run as a child process, a
// tiny random Llama with the real Llama-3.1 tokenizer, and `synthpert serve`
// started on a free port.
'use strict';
const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

// check(name, fn) runs fn, prints ok/FAIL with the stack, and counts failures.
function checker() {
  let failures = 0;
  async function check(name, fn) {
    try {
      await fn();
      console.log(`ok   ${name}`);
    } catch (e) {
      failures++;
      const cause = e && e.cause ? `\ncause: ${e.cause.stack || e.cause}` : '';
      console.log(`FAIL ${name}\n     ${(String(e && e.stack || e) + cause).split('\n').join('\n     ')}`);
    }
  }
  return { check, failures: () => failures };
}

// Runs the binary without blocking the event loop (a blocked loop keeps
// undici's idle-connection timers from firing, and a later request would go
// out on a keep-alive socket the server has since closed). Resolves with the
// exit code and both streams; never rejects on a non-zero exit.
function run(bin, args, env = {}) {
  return new Promise((resolve) => {
    execFile(bin, args, { encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, ...env } },
             (error, stdout, stderr) => {
               const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
               resolve({ code, stdout, stderr });
             });
  });
}

// Starts the binary and returns {proc, done}: `done` resolves like run()'s
// promise once it exits, for tests that signal the process while it works.
function start(bin, args, env = {}) {
  const proc = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  proc.stdout.on('data', (d) => { stdout += d; });
  proc.stderr.on('data', (d) => { stderr += d; });
  const done = new Promise((resolve) => proc.on('exit', (code) => resolve({ code, stdout, stderr })));
  return { proc, done };
}

// Runs the binary and parses its JSON stdout; rejects on a non-zero exit.
async function cli(bin, args, env = {}) {
  const r = await run(bin, args, env);
  if (r.code !== 0) throw new Error(`synthpert ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

// A tiny random Llama in `dir` with the real Llama-3.1 tokenizer and chat
// template (tokenizerDir holds tokenizer.json and tokenizer_config.json).
async function makeTinyLlama(bin, dir, tokenizerDir) {
  await cli(bin, ['init-model', '--arch', 'llama', '--preset', 'tiny', '--vocab-size', '128256', '--seed', '5',
                  '--jitter', '--out', dir]);
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    fs.copyFileSync(path.join(tokenizerDir, f), path.join(dir, f));
  const cfgPath = path.join(dir, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  Object.assign(cfg, { bos_token_id: 128000, eos_token_id: [128001, 128009] });
  fs.writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  return cfg;
}

// `synthpert serve ARGS`; resolves once it prints {"listening","models"}.
function startServe(bin, args) {
  const proc = spawn(bin, ['serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ proc, info: JSON.parse(out.slice(0, nl)), log: () => log });
    });
    proc.on('exit', (code) => reject(new Error(`serve exited ${code} before listening:\n${log}`)));
  });
}

module.exports = { checker, run, start, cli, makeTinyLlama, startServe };

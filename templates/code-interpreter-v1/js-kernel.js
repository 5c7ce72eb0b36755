// A persistent JavaScript context of sandboxer's code interpreter: one node process per context,
// started by interpreter.py in a session of its own, listening on a unix socket (argv[2]).
// Each connection sends one JSON line {"code", "env_vars"} and receives the execution as JSON
// lines in the shape of E2B's code interpreter (number_of_executions, stdout, stderr, result,
// error); the connection closes when the execution ends. Executions run one at a time through
// Node's REPL evaluator in one context, so declarations, requires and the cwd persist between
// them, and top-level await works. SIGINT interrupts running code and leaves the context usable.
'use strict';
const net = require('net');
const repl = require('repl');
const vm = require('vm');
const util = require('util');
const { Writable } = require('stream');
const { Console } = require('console');

const socketPath = process.argv[2];
process.on('SIGINT', () => {}); // outside an execution a SIGINT has nothing to interrupt

let current = null;
let count = 0;
const send = (line) => { if (current && !current.destroyed) current.write(JSON.stringify(line) + '\n'); };
const sink = (type) => new Writable({
  write(chunk, _encoding, done) {
    send({ type, text: chunk.toString(), timestamp: new Date().toISOString() });
    done();
  },
});
const userConsole = new Console({ stdout: sink('stdout'), stderr: sink('stderr'), colorMode: false });

// Node's own REPL (its context, and its evaluator for top-level await); nothing reads the REPL's
// input, executions are handed to `evaluate`.
const { PassThrough } = require('stream');
const replServer = repl.start({ input: new PassThrough(), output: new PassThrough(), terminal: false, useGlobal: false,
  breakEvalOnSigint: true, prompt: '' });
const context = replServer.context;
context.console = userConsole;

function text(value) {
  let t = util.inspect(value, { depth: 4, colors: false });
  if (t.length >= 2 && t[0] === t[t.length - 1] && (t[0] === "'" || t[0] === '"')) t = t.slice(1, -1);
  return t;
}

// Static imports (which no REPL takes) as requires: `import x from 'm'`, `import * as x from 'm'`,
// `import { a, b as c } from 'm'`, `import 'm'`.
function rewriteImports(code) {
  const interop = (m) => `((m) => m && m.__esModule ? m.default : m)(require(${m}))`;
  return code
    .replace(/^\s*import\s+\*\s+as\s+([\w$]+)\s+from\s+(['"][^'"]+['"])\s*;?/gm, (_, x, m) => `var ${x} = require(${m});`)
    .replace(/^\s*import\s+([\w$]+)\s*,\s*\{([^}]*)\}\s*from\s+(['"][^'"]+['"])\s*;?/gm,
      (_, d, names, m) => `var ${d} = ${interop(m)}; var {${names.replace(/\s+as\s+/g, ': ')}} = require(${m});`)
    .replace(/^\s*import\s+\{([^}]*)\}\s*from\s+(['"][^'"]+['"])\s*;?/gm,
      (_, names, m) => `var {${names.replace(/\s+as\s+/g, ': ')}} = require(${m});`)
    .replace(/^\s*import\s+([\w$]+)\s+from\s+(['"][^'"]+['"])\s*;?/gm, (_, x, m) => `var ${x} = ${interop(m)};`)
    .replace(/^\s*import\s+(['"][^'"]+['"])\s*;?/gm, (_, m) => `require(${m});`);
}

// The REPL hands an evaluation's error (thrown, or a rejected top-level await) to its domain,
// not to the eval's callback: the domain's handler fails the evaluation that is running.
let failRunning = null;
if (replServer._domain) {
  replServer._domain.removeAllListeners('error');
  replServer._domain.on('error', (error) => { if (failRunning) failRunning(error); });
}

// Code without `await` runs as a script of its own in the REPL's context (SIGINT interrupts it);
// code with it goes through the REPL's evaluator, which rewrites top-level await (a SIGINT
// during that ends the context: the next execution starts a new one).
function evaluate(code) {
  if (!code.includes('await')) {
    try {
      return Promise.resolve(vm.runInContext(code, context, { filename: `cell-${count}.js`, breakOnSigint: true }));
    } catch (error) {
      return Promise.reject(error);
    }
  }
  return new Promise((resolve, reject) => {
    failRunning = reject;
    replServer.eval(code, context, `cell-${count}.js`, (error, value) => (error ? reject(error) : resolve(value)));
  }).finally(() => { failRunning = null; });
}

async function execute(code, envVars) {
  count += 1;
  send({ type: 'number_of_executions', execution_count: count });
  const saved = {};
  for (const [k, v] of Object.entries(envVars)) { saved[k] = process.env[k]; process.env[k] = v; }
  try {
    let value = await evaluate(rewriteImports(code));
    if (value && typeof value.then === 'function') value = await value;
    if (value !== undefined) send({ type: 'result', text: text(value), is_main_result: true, extra: {} });
  } catch (e) {
    const error = (typeof e === "object" && e !== null) || typeof e === "function" ? e : { name: "Error", message: String(e) };
    send({ type: 'error', name: String(error.name || 'Error'), value: String(error.message ?? e), traceback: String(error.stack || error.message || e) });
  } finally {
    for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[k]; else process.env[k] = v; }
  }
}

// One execution at a time, in arrival order.
let queue = Promise.resolve();
net.createServer((connection) => {
  let buffered = '';
  connection.on('error', () => {});
  connection.on('data', (chunk) => {
    buffered += chunk.toString();
    const newline = buffered.indexOf('\n');
    if (newline < 0) return;
    let request;
    try { request = JSON.parse(buffered.slice(0, newline)); } catch { connection.destroy(); return; }
    connection.removeAllListeners('data');
    if (request.ping) { connection.end(); return; }
    queue = queue.then(async () => {
      current = connection;
      await execute(String(request.code ?? ''), request.env_vars || {});
      current = null;
      connection.end();
    });
  });
}).listen(socketPath);

// A persistent JavaScript context of sandboxer's code interpreter: one node process per context,
// started by interpreter.py in a session of its own, listening on a unix socket (argv[2]).
// Each connection sends one JSON line {"code", "env_vars"} and receives the execution as JSON
// lines in the shape of E2B's code interpreter (number_of_executions, stdout, stderr, result,
// error); the connection closes when the execution ends. Executions run one at a time in one
// vm context, so declarations, requires and the cwd persist between them. SIGINT interrupts the
// running code (vm's breakOnSigint) and leaves the context usable.
'use strict';
const net = require('net');
const vm = require('vm');
const util = require('util');
const path = require('path');
const { Writable } = require('stream');
const { Console } = require('console');
const Module = require('module');

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

const globals = {
  console: userConsole, process, Buffer, URL, URLSearchParams, TextEncoder, TextDecoder, AbortController,
  setTimeout, clearTimeout, setInterval, clearInterval, setImmediate, clearImmediate, queueMicrotask, structuredClone,
  require: Module.createRequire(path.join(process.cwd(), 'index.js')),
  module: { exports: {} }, __dirname: process.cwd(), __filename: path.join(process.cwd(), 'index.js'),
};
if (typeof fetch === 'function') globals.fetch = fetch;
const context = vm.createContext(globals);

function text(value) {
  let t = util.inspect(value, { depth: 4, colors: false });
  if (t.length >= 2 && t[0] === t[t.length - 1] && (t[0] === "'" || t[0] === '"')) t = t.slice(1, -1);
  return t;
}

async function execute(code, envVars) {
  count += 1;
  send({ type: 'number_of_executions', execution_count: count });
  const saved = {};
  for (const [k, v] of Object.entries(envVars)) { saved[k] = process.env[k]; process.env[k] = v; }
  try {
    let value = vm.runInContext(code, context, { filename: `cell-${count}.js`, breakOnSigint: true });
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

// harness.js: what every end-to-end test needs to run ktd against the mock upstream.
//
// Owns: starting/stopping the mock (tests/mock/mock-upstream.js) and ktd on free
// ports, writing ktd config YAML into a temp dir, finding worker pids, sending
// signals, HTTP/curl/SDK clients, and always cleaning up (even on failure).
// Does not own: assertions about behaviour; those live in tests/e2e/test_*.js.
//
// Environment: KT_BUILDDIR (holds ktd and kt) and KT_SRCDIR (the source tree), set by
// `make check`; both default to the source tree (../.. from tests/e2e).
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const http = require('node:http');
const nodeTest = require('node:test');

const SRCDIR = process.env.KT_SRCDIR || path.resolve(__dirname, '..', '..', '..');
const BUILDDIR = process.env.KT_BUILDDIR || SRCDIR;
const MOCK_JS = path.join(SRCDIR, 'tests', 'mock', 'mock-upstream.js');
const KEYS = {
  KT_E2E_OPENAI_KEY: 'test-openai-key-e2e-0001',
  KT_E2E_ANTHROPIC_KEY: 'test-anthropic-key-e2e-0001',
};
const CLIENT_KEY = 'client-key-must-not-leak-0001';

// Everything started here, so one exit hook can kill it whatever happened.
// Temp dirs are removed at exit unless a test failed or KT_E2E_KEEP is set.
// stoppers: gateways and mocks still running, for stopAll().
const live = { procs: new Set(), logs: [], dirs: [], failed: false, stoppers: [] };

// Watchdog: a test file never hangs make check (KT_E2E_TIMEOUT_S, default 150).
setTimeout(() => {
  process.stderr.write(`# e2e watchdog: ${process.argv[1]} still running after its time limit\n`);
  dumpLogs('watchdog');
  killAllSync();
  process.exit(1);
}, Number(process.env.KT_E2E_TIMEOUT_S || 150) * 1000).unref();

function killAllSync() {
  for (const p of live.procs) {
    try { process.kill(p.group ? -p.pid : p.pid, 'SIGKILL'); } catch (e) { /* gone */ }
  }
  live.procs.clear();
}
process.on('exit', (code) => {
  killAllSync();
  if (live.failed || code !== 0 || process.exitCode || process.env.KT_E2E_KEEP) {
    if (live.dirs.length) process.stderr.write(`# kept for inspection: ${live.dirs.join(' ')}\n`);
    return;
  }
  for (const d of live.dirs) {
    try { fs.rmSync(d, { recursive: true, force: true }); } catch (e) { /* best effort */ }
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { killAllSync(); process.exit(130); });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Like sleep, but does not keep the process alive (for Promise.race deadlines).
const deadline = (ms, value = null) => new Promise((r) => setTimeout(r, ms, value).unref());

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(fn, { timeoutMs = 5000, intervalMs = 25, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

// ---- HTTP -----------------------------------------------------------------

// One request on a new connection that is closed afterwards (Connection: close).
// Reload tests use it: a server may close an idle keep-alive connection at any
// time, and a client racing that close with a POST legitimately fails.
function requestFresh(url, { method, headers, body, timeoutMs }) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { ...headers, connection: 'close' }, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed;
        try { parsed = JSON.parse(text); } catch (e) { parsed = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json: parsed });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

// fetch wrapper: {status, headers (plain object, lower-case), text, json}.
// fresh: a new connection just for this request (see requestFresh).
async function request(url, { method = 'GET', headers = {}, body, json, timeoutMs = 15000, fresh = false } = {}) {
  const h = { ...headers };
  let b = body;
  if (json !== undefined) {
    b = JSON.stringify(json);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  }
  if (fresh) return requestFresh(url, { method, headers: h, body: b, timeoutMs });
  const res = await fetch(url, { method, headers: h, body: b, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch (e) { parsed = undefined; }
  return { status: res.status, headers: Object.fromEntries(res.headers.entries()), text, json: parsed };
}

// Runs curl (-sS -N, headers included with -i unless raw) and resolves with its output.
function curl(args, { timeoutMs = 20000, input } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn('curl', ['-sS', '-N', '--max-time', String(Math.ceil(timeoutMs / 1000)), ...args]);
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout: out, stderr: err }));
    if (input !== undefined) p.stdin.end(input);
    else p.stdin.end();
  });
}

// Splits a curl -i output into status, headers and body.
function parseCurlI(out) {
  let rest = out;
  let status = 0;
  let headers = {};
  // Skip interim responses (100 Continue).
  for (;;) {
    const idx = rest.indexOf('\r\n\r\n');
    if (idx < 0) break;
    const head = rest.slice(0, idx).split('\r\n');
    const m = /^HTTP\/[\d.]+ (\d+)/.exec(head[0] || '');
    if (!m) break;
    status = Number(m[1]);
    headers = {};
    for (const line of head.slice(1)) {
      const c = line.indexOf(':');
      if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
    }
    rest = rest.slice(idx + 4);
    if (status >= 200) break;
  }
  return { status, headers, body: rest };
}

// Parses an SSE body into [{event, data}] (data joined by \n, as per the spec).
function parseSse(text) {
  const out = [];
  for (const block of text.replace(/\r\n/g, '\n').split('\n\n')) {
    if (!block.trim()) continue;
    let event = null;
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const k = c < 0 ? line : line.slice(0, c);
      let v = c < 0 ? '' : line.slice(c + 1);
      if (v.startsWith(' ')) v = v.slice(1);
      if (k === 'event') event = v;
      else if (k === 'data') data.push(v);
    }
    if (event === null && !data.length) continue;
    out.push({ event, data: data.join('\n') });
  }
  return out;
}

// Streams a POST and reports each chunk with its arrival time.
async function streamChunks(url, { headers = {}, json, signal } = {}) {
  const res = await fetch(url, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(json), signal,
  });
  const chunks = [];
  const dec = new TextDecoder();
  for await (const c of res.body) chunks.push({ t: Date.now(), text: dec.decode(c, { stream: true }) });
  return { status: res.status, headers: Object.fromEntries(res.headers.entries()), chunks, text: chunks.map((c) => c.text).join('') };
}

// Runs fn() in `concurrency` loops until stop() is called; every call is recorded
// as {start, end, ok, status, target, error}. fn returns a request() result.
function load(fn, { concurrency = 4, pauseMs = 0 } = {}) {
  const results = [];
  let stopping = false;
  const loops = [];
  for (let i = 0; i < concurrency; i++) {
    loops.push((async () => {
      while (!stopping) {
        const rec = { start: Date.now() };
        try {
          const r = await fn();
          rec.status = r.status;
          rec.ok = r.status === 200;
          rec.target = r.headers && r.headers['x-kt-target'];
          if (!rec.ok) rec.error = r.text && r.text.slice(0, 200);
        } catch (e) {
          rec.ok = false;
          rec.error = e.cause ? `${e.message}: ${e.cause.code || e.cause.message}` : e.message;
        }
        rec.end = Date.now();
        results.push(rec);
        if (pauseMs) await sleep(pauseMs);
      }
    })());
  }
  return {
    results,
    async stop() { stopping = true; await Promise.all(loops); return results; },
  };
}

// ---- processes -------------------------------------------------------------

function track(child, name, group) {
  const rec = { pid: child.pid, name, group };
  live.procs.add(rec);
  child.on('exit', () => live.procs.delete(rec));
  return rec;
}

function childPids(pid) {
  const out = [];
  let tasks = [];
  try { tasks = fs.readdirSync(`/proc/${pid}/task`); } catch (e) { return out; }
  for (const t of tasks) {
    try {
      const s = fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      if (s) out.push(...s.split(/\s+/).map(Number));
    } catch (e) { /* raced */ }
  }
  return out;
}

function procTitle(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+/g, ' ').trim();
  } catch (e) { return ''; }
}

function procComm(pid) {
  try { return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch (e) { return ''; }
}

// Socket inodes listening on 127.0.0.1:port (from /proc/net/tcp).
function listenInodes(port) {
  const inodes = new Set();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let s = '';
    try { s = fs.readFileSync(f, 'utf8'); } catch (e) { continue; }
    for (const line of s.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const lport = parseInt(cols[1].split(':')[1], 16);
      if (lport === port && cols[3] === '0A') inodes.add(cols[9]);
    }
  }
  return inodes;
}

function holdsInode(pid, inodes) {
  let fds = [];
  try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch (e) { return false; }
  for (const fd of fds) {
    try {
      const l = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      const m = /^socket:\[(\d+)\]$/.exec(l);
      if (m && inodes.has(m[1])) return true;
    } catch (e) { /* closed meanwhile */ }
  }
  return false;
}

// Resident set size of a process in KiB (0 when it is gone).
function rssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch (e) { return 0; }
}

function isAlive(pid) {
  try { process.kill(pid, 0); } catch (e) { return false; }
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) Z /.test(st);
  } catch (e) { return false; }
}

// ---- mock -------------------------------------------------------------------

async function startMock({ tag = 'mock' } = {}) {
  const child = spawn(process.execPath, [MOCK_JS, '--port', '0', '--tag', tag], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child, `mock ${tag}`, false);
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`mock did not start: ${stderr}`)), 5000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /LISTENING (\d+)/.exec(out);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
    child.on('exit', (code) => { clearTimeout(t); reject(new Error(`mock exited ${code}: ${stderr}`)); });
  });
  // Handles must not keep the test process alive: the exit hook kills the mock.
  child.unref();
  child.stdout.unref();
  child.stderr.unref();
  const url = `http://127.0.0.1:${port}`;
  const mock = {
    port, url, tag, pid: child.pid, child,
    get stderr() { return stderr; },
    async requests(filter) {
      const r = await request(`${url}/__mock/requests`);
      const all = r.json;
      return filter ? all.filter((x) => x.path.startsWith(filter)) : all;
    },
    async stats() { return (await request(`${url}/__mock/stats`)).json; },
    async dropConnections() { return (await request(`${url}/__mock/drop_connections`, { method: 'POST' })).json; },
    async next(list) { return (await request(`${url}/__mock/next`, { method: 'POST', json: list })).json; },
    async reset() { return (await request(`${url}/__mock/reset`, { method: 'POST' })).json; },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      await done;
      clearTimeout(t);
    },
  };
  live.logs.push({ name: `mock ${tag}`, get text() { return stderr; } });
  live.stoppers.push(mock);
  return mock;
}

// ---- config ------------------------------------------------------------------

function yamlScalar(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  return JSON.stringify(String(v)); // JSON strings are valid YAML double-quoted scalars
}

// Block-style YAML with JSON-quoted strings: readable, and unambiguous for libyaml.
function toYaml(v, indent = '') {
  if (Array.isArray(v)) {
    if (!v.length) return ' []\n';
    let s = '\n';
    for (const item of v) {
      if (item && typeof item === 'object' && !Array.isArray(item) && Object.keys(item).length) {
        const body = toYaml(item, `${indent}  `).replace(/^\n/, '');
        s += `${indent}- ${body.slice(indent.length + 2)}`;
      } else {
        s += `${indent}-${toYaml(item, `${indent}  `).replace(/^\n/, `\n`)}`;
      }
    }
    return s;
  }
  if (v && typeof v === 'object') {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    if (!keys.length) return ' {}\n';
    let s = '\n';
    for (const k of keys) s += `${indent}${k}:${toYaml(v[k], `${indent}  `)}`;
    return s;
  }
  return ` ${yamlScalar(v)}\n`;
}

function configToYaml(cfg) {
  return `# written by tests/e2e/lib/harness.js\n${toYaml(cfg).replace(/^\n/, '')}`;
}

function isPlainObject(x) { return x && typeof x === 'object' && !Array.isArray(x); }

// Maps merge, lists and scalars replace (the same rule as ktd's config layering).
function merge(a, b) {
  if (!isPlainObject(a) || !isPlainObject(b)) return b === undefined ? a : b;
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = k in a ? merge(a[k], v) : v;
  return out;
}

function openaiTarget(mock, extra = {}) {
  return {
    id: 'mock-openai', provider: 'openai', model: 'gpt-4o', base_url: mock.url,
    secret_key_ref: { env: 'KT_E2E_OPENAI_KEY' }, format: 'openai', timeout_seconds: 10,
    ...extra,
  };
}

function anthropicTarget(mock, extra = {}) {
  return {
    id: 'mock-anthropic', provider: 'anthropic', model: 'claude-sonnet-4-20250514', base_url: mock.url,
    secret_key_ref: { env: 'KT_E2E_ANTHROPIC_KEY' }, format: 'anthropic', timeout_seconds: 10,
    ...extra,
  };
}

function baseConfig(dir, port, targets) {
  return {
    pack: { name: 'e2e', version: '0.0.1', enabled: true },
    server: {
      listen: [`127.0.0.1:${port}`],
      state_dir: path.join(dir, 'state'),
      max_body_bytes: 1048576,
      shutdown_timeout_seconds: 10,
      log: { level: 'info', format: 'text', file: 'stderr' },
    },
    policies: { chain: ['audit-logger'] },
    policy: {
      'audit-logger': { immutable: true, retention_days: 1, log_all_access: true, path: path.join(dir, 'audit.log') },
    },
    providers: {
      strategy: 'single',
      retry: { max_attempts: 1, backoff_ms: 50, max_backoff_ms: 200, retry_on: [429, 500, 502, 503, 504, 'timeout', 'connect'] },
      targets,
    },
  };
}

// ---- ktd ----------------------------------------------------------------------

// Starts ktd: {targets, workers=2, config (merged over the base; or (dir, port) => config), env, args}.
// via: 'kt' runs `kt gateway run --listen ... --policy-config FILE...` instead, with
// `layers` (config objects) written to more files layered over the first.
async function startKtd({ targets, workers = 2, config = {}, env = {}, args = [], waitHealthy = true,
  via = 'ktd', layers = [] } = {}) {
  const prog = path.join(BUILDDIR, via === 'kt' ? 'kt' : 'ktd');
  if (!fs.existsSync(prog)) throw new Error(`no ${via} binary at ${prog} (set KT_BUILDDIR)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-e2e-'));
  live.dirs.push(dir);
  const port = await freePort();
  // config may be a function of the temp dir and port (for paths inside the dir).
  const cfg = merge(baseConfig(dir, port, targets || []), typeof config === 'function' ? config(dir, port) : config);
  const configPath = path.join(dir, 'ktd.yaml');
  fs.writeFileSync(configPath, configToYaml(cfg));
  const layerPaths = layers.map((l, i) => {
    const p = path.join(dir, `layer-${i + 1}.yaml`);
    fs.writeFileSync(p, configToYaml(l));
    return p;
  });
  const argv = via === 'kt'
    ? ['gateway', 'run', '--listen', `127.0.0.1:${port}`, '--workers', String(workers),
      ...[configPath, ...layerPaths].flatMap((p) => ['--policy-config', p]), ...args]
    : ['-c', configPath, '-f', '-w', String(workers), ...args];
  const stderrPath = path.join(dir, 'ktd.stderr');
  const errFd = fs.openSync(stderrPath, 'a');
  const child = spawn(prog, argv, {
    stdio: ['ignore', errFd, errFd], detached: true, cwd: dir,
    env: { ...process.env, ...KEYS, ...env },
  });
  fs.closeSync(errFd);
  const tracked = track(child, 'ktd', true);
  let exit = null;
  const exited = new Promise((r) => child.on('exit', (code, signal) => { exit = { code, signal }; r(exit); }));
  const url = `http://127.0.0.1:${port}`;
  const gw = {
    port, url, dir, configPath, stderrPath, config: cfg, pid: child.pid, child, exited,
    get exit() { return exit; },
    stderr() { try { return fs.readFileSync(stderrPath, 'utf8'); } catch (e) { return ''; } },
    children() { return childPids(child.pid); },
    // True while any process of ktd's process group (master, workers, helpers) lives.
    groupAlive() {
      try { process.kill(-child.pid, 0); return true; } catch (e) { return e.code !== 'ESRCH'; }
    },
    // Worker pids: children titled "worker" (setproctitle), else those holding the listener.
    workerPids() {
      const kids = childPids(child.pid).filter(isAlive);
      const titled = kids.filter((p) => /worker/i.test(procTitle(p)) || /worker/i.test(procComm(p)));
      if (titled.length) return titled;
      const inodes = listenInodes(port);
      return kids.filter((p) => holdsInode(p, inodes));
    },
    signal(sig) { process.kill(child.pid, sig); },
    writeConfig(next) {
      const c = typeof next === 'string' ? next : configToYaml(next);
      fs.writeFileSync(configPath, c);
    },
    // Config with the same dir/port (for reloads): targets and overrides as in startKtd.
    makeConfig({ targets: t, config: c = {} } = {}) {
      return merge(baseConfig(dir, port, t || targets || []), c);
    },
    async waitHealthy(timeoutMs = 10000) {
      const end = Date.now() + timeoutMs;
      let last = 'no answer';
      while (Date.now() < end) {
        if (exit) throw new Error(`ktd exited (${JSON.stringify(exit)}) before /healthz answered 200`);
        try {
          const r = await request(`${url}/healthz`, { timeoutMs: 1000 });
          if (r.status === 200) return;
          last = `status ${r.status}`;
        } catch (e) { last = e.cause ? e.cause.code || e.cause.message : e.message; }
        await sleep(25);
      }
      throw new Error(`ktd /healthz did not answer 200 within ${timeoutMs} ms (${last})`);
    },
    async stop(timeoutMs = 10000) {
      if (!exit) {
        try { process.kill(child.pid, 'SIGTERM'); } catch (e) { /* gone */ }
        const t = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch (e) { /* gone */ } }, timeoutMs);
        await exited;
        clearTimeout(t);
      }
      // Stragglers of the process group (orphaned workers) never outlive a test.
      try { process.kill(-child.pid, 'SIGKILL'); } catch (e) { /* none left */ }
      live.procs.delete(tracked);
      // A sanitizer build reports memory errors and leaks on stderr: that fails the file.
      const san = sanitizerReport(gw.stderr());
      if (san) throw new Error(`ktd stderr (${stderrPath}) has a sanitizer report:\n${san}`);
      return exit;
    },
    openai(opts = {}) { return openaiClient(url, opts); },
    anthropic(opts = {}) { return anthropicClient(url, opts); },
  };
  live.logs.push({ name: `ktd ${port}`, get text() { return gw.stderr(); } });
  live.stoppers.unshift(gw); // gateways stop before the mocks they use
  if (waitHealthy) {
    try {
      await gw.waitHealthy();
    } catch (e) {
      await gw.stop(2000);
      throw new Error(`${e.message}\n--- ktd stderr ---\n${gw.stderr()}`);
    }
  }
  return gw;
}

// Stops every gateway (first) and mock still running, even when one fails,
// then throws the first error (e.g. a sanitizer report). Use it in after().
async function stopAll() {
  const errors = [];
  const list = live.stoppers.splice(0);
  for (const x of list) {
    try { await x.stop(); } catch (e) { errors.push(e); }
  }
  if (errors.length) {
    live.failed = true;
    throw errors[0];
  }
}

const SANITIZER_RE = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: |WARNING: ThreadSanitizer/;

// The first sanitizer report in a log (up to 40 lines), or null.
function sanitizerReport(text) {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => SANITIZER_RE.test(l));
  return i < 0 ? null : lines.slice(i, i + 40).join('\n');
}

// ---- SDK clients ----------------------------------------------------------------

function openaiClient(baseUrl, opts = {}) {
  const OpenAI = require('openai');
  const Ctor = OpenAI.default || OpenAI;
  return new Ctor({ baseURL: `${baseUrl}/v1`, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 20000, ...opts });
}

function anthropicClient(baseUrl, opts = {}) {
  const A = require('@anthropic-ai/sdk');
  const Ctor = A.default || A.Anthropic || A;
  return new Ctor({ baseURL: baseUrl, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 20000, ...opts });
}

// ---- test wrapper ------------------------------------------------------------------

function dumpLogs(title) {
  for (const l of live.logs) {
    const t = l.text;
    if (!t) continue;
    const lines = t.split('\n');
    process.stderr.write(`\n--- ${l.name} stderr (${title}; last 80 lines) ---\n${lines.slice(-80).join('\n')}\n`);
  }
}

// node:test's test(), printing every started process's stderr when the test fails.
function test(name, opts, fn) {
  if (typeof opts === 'function') { fn = opts; opts = {}; }
  return nodeTest.test(name, opts, async (t) => {
    const mark = live.logs.length;
    try {
      await fn(t);
    } catch (e) {
      live.failed = true;
      const saved = live.logs;
      live.logs = saved.slice(mark).length ? saved.slice(mark) : saved;
      dumpLogs(`failed: ${name}`);
      live.logs = saved;
      throw e;
    }
  });
}

module.exports = {
  SRCDIR, BUILDDIR, KEYS, CLIENT_KEY, MOCK_JS,
  sleep, deadline, freePort, waitFor, request, load, curl, parseCurlI, parseSse, streamChunks,
  startMock, startKtd, stopAll, openaiTarget, anthropicTarget, baseConfig, configToYaml, merge,
  openaiClient, anthropicClient, sanitizerReport, childPids, procTitle, isAlive, rssKb, test, dumpLogs,
};

// With immutable audit, a worker never drops a record: while the audit
// process is stopped (SIGSTOP) the worker queues records in memory; once
// the queue cannot take another record it answers 503 instead of serving
// unaudited traffic. After SIGCONT everything queued is written: every
// request answered 200 has exactly one record.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'backpressure' });
  gw = await h.startKtd({ targets: [h.openaiTarget(mock, { id: 'audited' })], workers: 1 });
});
after(async () => {
  if (gw && gw.groupAlive()) await gw.stop();
  if (mock) await mock.stop();
});

const comm = (pid) => { try { return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch (e) { return ''; } };

h.test('a stopped audit process makes the worker answer 503, never lose a record', async () => {
  const audit = gw.children().find((p) => comm(p) === 'ktd: audit');
  assert.ok(audit, 'an audit process');
  process.kill(audit, 'SIGSTOP');
  const big = 'x'.repeat(15000);   // each record carries ~15 KB of prompt (log_all_access)
  const ok = new Set();
  let refused = 0;
  try {
    for (let i = 0; i < 2000 && refused < 5; i++) {
      const id = `bp-${i}`;
      const r = await h.request(`${gw.url}/v1/chat/completions`, {
        method: 'POST', headers: { 'x-request-id': id },
        json: { model: 'gpt-4o', messages: [{ role: 'user', content: `${i} ${big}` }] },
      });
      if (r.status === 200) ok.add(id);
      else if (r.status === 503) {
        refused++;
        assert.equal(r.json.error.code, 'audit_backlog');
        assert.ok(r.headers['retry-after']);
      } else assert.fail(`unexpected status ${r.status}`);
    }
  } finally {
    process.kill(audit, 'SIGCONT');
  }
  assert.ok(refused > 0, `no 503 after ${ok.size} requests`);
  // The backlog drains: traffic is served again.
  let n = 0;
  await h.waitFor(async () => {
    const id = `bp-after-${n++}`;
    const r = await h.request(`${gw.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'x-request-id': id },
      json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'after' }] },
    });
    if (r.status === 200) ok.add(id);
    return r.status === 200;
  }, { timeoutMs: 10000, what: 'service after the audit backlog drained' });
  gw.signal('SIGTERM');
  assert.equal((await gw.exited).code, 0);
  const counts = new Map();
  for (const line of fs.readFileSync(path.join(gw.dir, 'audit.log'), 'utf8').split('\n')) {
    if (!line) continue;
    const id = JSON.parse(line).request_id;
    counts.set(id, (counts.get(id) || 0) + 1);
  }
  assert.deepEqual([...ok].filter((id) => counts.get(id) !== 1), []);
});

// The audit trail never loses a record (SPEC §4, DESIGN.md "Audit"): SIGKILL
// the audit process again and again under load; the master restarts it and
// every request answered before, during and after has exactly one record,
// the hash chain verifies, and SIGTERM flushes everything before exit.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'audit-kill' });
  gw = await h.startKtd({ targets: [h.openaiTarget(mock, { id: 'audited' })], workers: 2 });
});
after(async () => {
  if (gw && gw.groupAlive()) await gw.stop();
  if (mock) await mock.stop();
});

// ktd names its children "ktd: worker", "ktd: audit"... (prctl PR_SET_NAME).
function comm(pid) {
  try { return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch (e) { return ''; }
}
function auditPid() {
  return gw.children().find((p) => comm(p) === 'ktd: audit');
}

h.test('SIGKILL of the audit process under load: exactly one record per request', async () => {
  const sent = new Set();
  const run = h.load(async () => {
    const id = `kill-${Math.random().toString(16).slice(2)}`;
    const r = await h.request(`${gw.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'x-request-id': id },
      json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'count me' }] },
    });
    if (r.status === 200) sent.add(id);
    return r;
  }, { concurrency: 6 });
  let kills = 0;
  for (let i = 0; i < 5; i++) {
    await h.sleep(250);
    const pid = await h.waitFor(() => auditPid(), { timeoutMs: 5000, what: 'an audit process' });
    process.kill(pid, 'SIGKILL');
    kills++;
    await h.waitFor(() => { const p = auditPid(); return p && p !== pid; },
      { timeoutMs: 5000, what: 'the audit process to be restarted' });
  }
  await h.sleep(250);
  const results = await run.stop();
  assert.equal(kills, 5);
  assert.ok(sent.size > 50, `only ${sent.size} requests succeeded`);
  assert.deepEqual(results.filter((r) => !r.ok && r.status !== 503).map((r) => r.error), []);

  // SIGTERM: workers drain, the audit process flushes, the master exits 0.
  gw.signal('SIGTERM');
  const exit = await gw.exited;
  assert.equal(exit.code, 0);

  const log = path.join(gw.dir, 'audit.log');
  const counts = new Map();
  for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
    if (!line) continue;
    const rec = JSON.parse(line);
    counts.set(rec.request_id, (counts.get(rec.request_id) || 0) + 1);
  }
  const missing = [...sent].filter((id) => !counts.has(id));
  const dup = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  assert.deepEqual(missing, [], `${missing.length} of ${sent.size} answered requests have no record`);
  assert.deepEqual(dup, [], 'records written twice');
  const v = spawnSync(path.join(h.BUILDDIR, 'kt'), ['audit', 'verify', log], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stdout + v.stderr);
});

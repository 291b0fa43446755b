// The master supervises its workers: a worker killed with SIGKILL under load is
// replaced within a second, and requests keep succeeding (only those in flight
// on the dead worker may fail).
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'respawn' });
  gw = await h.startKtd({ targets: [h.openaiTarget(mock)], workers: 2 });
});
after(h.stopAll);

const body = { model: 'gpt-4o', messages: [{ role: 'user', content: 'under load' }] };

h.test('SIGKILL a worker under load: replaced within a second, requests keep succeeding', async () => {
  const before_ = await h.waitFor(() => { const w = gw.workerPids(); return w.length === 2 ? w : null; },
    { what: '2 worker processes (children titled "worker" or holding the listener)' });
  const ld = h.load(() => h.request(`${gw.url}/v1/chat/completions`, { method: 'POST', json: body, timeoutMs: 5000 }), { concurrency: 4 });
  await h.sleep(500);
  const victim = before_[0];
  const tKill = Date.now();
  process.kill(victim, 'SIGKILL');
  const after_ = await h.waitFor(() => {
    const w = gw.workerPids();
    return w.length === 2 && !w.includes(victim) ? w : null;
  }, { timeoutMs: 3000, intervalMs: 10, what: 'a replacement worker' });
  const replacedMs = Date.now() - tKill;
  await h.sleep(1500);
  const results = await ld.stop();
  assert.ok(replacedMs <= 1000, `worker replaced after ${replacedMs} ms`);
  assert.ok(after_.includes(before_[1]), 'the surviving worker was restarted too');
  assert.ok(gw.exit === null, 'master died');
  const late = results.filter((r) => r.start > tKill + 1000);
  const lateFailed = late.filter((r) => !r.ok);
  assert.ok(late.length >= 10, `only ${late.length} requests after the replacement`);
  assert.deepEqual(lateFailed, [], 'requests failed after the replacement');
  const failed = results.filter((r) => !r.ok);
  assert.ok(failed.length <= 8, `${failed.length} failed requests around the kill: ${JSON.stringify(failed.slice(0, 3))}`);
  process.stderr.write(`# respawn: replaced in ${replacedMs} ms; ${results.length} requests, ${failed.length} failed around the kill\n`);
});

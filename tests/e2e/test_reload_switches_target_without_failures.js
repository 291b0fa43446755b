// SIGHUP with a good config that changes the target: it takes effect without
// a single failed request (each on a new connection, under load), and the old
// generation of workers finishes and exits.
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'reload-good' });
  gw = await h.startKtd({ targets: [h.openaiTarget(mock, { id: 'gen-1', headers: { 'x-config-gen': '1' } })], workers: 2 });
});
after(h.stopAll);

// A new connection per request: what must never fail is a request ktd accepted
// (a POST racing the close of an idle keep-alive connection may fail on any server).
const chat = () => h.request(`${gw.url}/v1/chat/completions`, {
  method: 'POST', timeoutMs: 5000, fresh: true, json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'reload' }] },
});

h.test('SIGHUP with a good config that changes the target: no failed request', async () => {
  const oldWorkers = gw.workerPids();
  const ld = h.load(chat, { concurrency: 4 });
  await h.sleep(300);
  gw.writeConfig(gw.makeConfig({ targets: [h.openaiTarget(mock, { id: 'gen-2', headers: { 'x-config-gen': '2' } })] }));
  const tHup = Date.now();
  gw.signal('SIGHUP');
  await h.waitFor(() => ld.results.some((r) => r.start > tHup && r.target === 'gen-2'), { timeoutMs: 5000, what: 'responses from gen-2' });
  const switchMs = Date.now() - tHup;
  await h.sleep(500);
  const results = await ld.stop();
  const failed = results.filter((r) => !r.ok);
  assert.deepEqual(failed, [], `${failed.length} of ${results.length} requests failed during the reload`);
  // Once switched, it stays switched.
  const lastGen1 = Math.max(...results.filter((r) => r.target === 'gen-1').map((r) => r.start));
  const firstGen2 = Math.min(...results.filter((r) => r.target === 'gen-2').map((r) => r.start));
  assert.ok(results.filter((r) => r.start > lastGen1).every((r) => r.target === 'gen-2'));
  assert.ok(firstGen2 >= tHup);
  const recs = await mock.requests('/v1/chat/completions');
  assert.equal(recs[recs.length - 1].headers['x-config-gen'], '2');
  // The old generation finishes and exits.
  await h.waitFor(() => oldWorkers.every((p) => !h.isAlive(p)), { timeoutMs: 5000, what: 'old workers to exit' });
  assert.equal(gw.workerPids().length, 2);
  process.stderr.write(`# reload: ${results.length} requests, 0 failed, switched after ${switchMs} ms\n`);
});

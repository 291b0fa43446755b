// SIGHUP reloads the config: a broken config is refused and logged while the
// old one keeps serving; a good config that changes the target takes effect
// without a single failed request, and the old generation of workers exits.
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'reload' });
  gw = await h.startKtd({ targets: [h.openaiTarget(mock, { id: 'gen-1', headers: { 'x-config-gen': '1' } })], workers: 2 });
});
after(async () => {
  if (gw) await gw.stop();
  if (mock) await mock.stop();
});

// A new connection per request: what must never fail is a request ktd accepted
// (a POST racing the close of an idle keep-alive connection may fail on any server).
const chat = () => h.request(`${gw.url}/v1/chat/completions`, {
  method: 'POST', timeoutMs: 5000, fresh: true, json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'reload' }] },
});

h.test('SIGHUP with a broken config: logged, old config keeps serving', async () => {
  const workers = gw.workerPids();
  const logLen = gw.stderr().length;
  gw.writeConfig('server:\n  listen: [127.0.0.1:1\nproviders: {{{\n');
  gw.signal('SIGHUP');
  const logged = await h.waitFor(() => {
    const s = gw.stderr().slice(logLen);
    return /error|invalid|fail|refus/i.test(s) ? s : null;
  }, { timeoutMs: 5000, what: 'the refused reload to be logged' });
  assert.match(logged, /ktd\.yaml|config|reload/i);
  for (let i = 0; i < 5; i++) {
    const r = await chat();
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-kt-target'], 'gen-1');
  }
  assert.equal(gw.exit, null, 'master exited on a bad reload');
  assert.deepEqual(gw.workerPids().sort(), workers.sort(), 'workers were replaced on a refused reload');
  // Unknown keys are config errors too (SPEC §2), not just YAML syntax.
  const cfg = gw.makeConfig({ targets: [h.openaiTarget(mock, { id: 'gen-bad', no_such_key: 1 })] });
  gw.writeConfig(cfg);
  gw.signal('SIGHUP');
  await h.sleep(700);
  const r = await chat();
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-kt-target'], 'gen-1');
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

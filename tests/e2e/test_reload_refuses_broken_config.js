// SIGHUP with a broken config: the new config is refused and every error is
// logged, the old config keeps serving, and the workers are not replaced.
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
after(h.stopAll);

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

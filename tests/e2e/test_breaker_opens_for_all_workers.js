// The circuit breaker's state is shared by all workers (LMDB): after
// failure_threshold failures, no worker calls the broken target again until
// the cooldown, requests fall back to the healthy one, and /readyz reports
// not-ready when every target is open.
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
let gwSingle;
const BREAKER = { enabled: true, failure_threshold: 3, window_seconds: 30, cooldown_seconds: 30, half_open_requests: 1 };
before(async () => {
  mock = await h.startMock({ tag: 'breaker' });
  gw = await h.startKtd({
    workers: 2,
    targets: [
      h.openaiTarget(mock, { id: 'broken', headers: { 'x-mock-status': '500', 'x-which': 'broken' } }),
      h.openaiTarget(mock, { id: 'healthy', headers: { 'x-which': 'healthy' } }),
    ],
    config: { providers: { strategy: 'fallback', retry: { max_attempts: 1 }, circuit_breaker: BREAKER } },
  });
  gwSingle = await h.startKtd({
    targets: [h.openaiTarget(mock, { id: 'lonely', headers: { 'x-mock-status': '503', 'x-which': 'lonely' } })],
    config: { providers: { retry: { max_attempts: 1 }, circuit_breaker: { ...BREAKER, failure_threshold: 2 } } },
  });
});
after(h.stopAll);

const hits = async (which) => (await mock.requests('/v1/chat/completions')).filter((r) => r.headers['x-which'] === which).length;

h.test('after failure_threshold failures no worker calls the broken target; requests fall back', async () => {
  await mock.reset();
  const targets = [];
  for (let i = 0; i < 12; i++) {
    const r = await h.request(`${gw.url}/v1/chat/completions`, { method: 'POST', fresh: true, json: { model: 'gpt-4o', messages: [{ role: 'user', content: `n${i}` }] } });
    assert.equal(r.status, 200, `request ${i}: ${r.status} ${r.text}`);
    targets.push(r.headers['x-kt-target']);
  }
  assert.ok(targets.every((t) => t === 'healthy'), `served by ${targets}`);
  assert.equal(await hits('broken'), BREAKER.failure_threshold, 'the broken target was called more than failure_threshold times: breaker state is not shared');
  assert.equal(await hits('healthy'), 12);
});

h.test('/readyz is not ready once every target is open-circuited', async () => {
  assert.equal((await h.request(`${gwSingle.url}/readyz`)).status, 200);
  for (let i = 0; i < 2; i++) {
    const r = await h.request(`${gwSingle.url}/v1/chat/completions`, { method: 'POST', fresh: true, json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] } });
    assert.ok(r.status >= 500, `status ${r.status}`);
  }
  await h.waitFor(async () => (await h.request(`${gwSingle.url}/readyz`)).status === 503, { timeoutMs: 3000, what: '/readyz 503' });
  const before_ = await hits('lonely');
  const r = await h.request(`${gwSingle.url}/v1/chat/completions`, { method: 'POST', fresh: true, json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] } });
  assert.ok(r.status >= 500, `status ${r.status}`);
  assert.equal(await hits('lonely'), before_, 'an open circuit still called the target');
  assert.equal((await h.request(`${gwSingle.url}/healthz`)).status, 200);
});

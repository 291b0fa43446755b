// A target's rate limit holds across all workers together (issue 4): with
// 4 workers, requests_per_minute: 60 admits exactly 60 of a burst (GCRA: a
// burst of 60 from idle, then one a second), the rest get 429 with
// Retry-After in the client's format; under `fallback` a limited target is
// skipped instead.
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
let gwFallback;
before(async () => {
  mock = await h.startMock({ tag: 'ratelimit' });
  gw = await h.startKtd({
    workers: 4,
    targets: [h.anthropicTarget(mock, { id: 'limited', rate_limit: { requests_per_minute: 60 } })],
  });
  gwFallback = await h.startKtd({
    workers: 2,
    targets: [
      h.anthropicTarget(mock, { id: 'small', rate_limit: { requests_per_minute: 2 } }),
      h.openaiTarget(mock, { id: 'overflow' }),
    ],
    config: { providers: { strategy: 'fallback' } },
  });
});
after(async () => {
  if (gw) await gw.stop();
  if (gwFallback) await gwFallback.stop();
  if (mock) await mock.stop();
});

const msg = (url) => h.request(`${url}/v1/messages`, {
  method: 'POST', fresh: true,
  json: { model: 'claude-sonnet-4-20250514', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] },
});

h.test('requests_per_minute: 60 admits exactly 60 of a burst across 4 workers', async () => {
  const t0 = Date.now();
  const rs = await Promise.all(Array.from({ length: 90 }, () => msg(gw.url)));
  const elapsedS = (Date.now() - t0) / 1000;
  const ok = rs.filter((r) => r.status === 200).length;
  const limited = rs.filter((r) => r.status === 429);
  // GCRA refills one a second: exactly 60 when the burst took under a second.
  assert.ok(ok >= 60 && ok <= 60 + Math.floor(elapsedS), `${ok} admitted in ${elapsedS}s`);
  if (elapsedS < 1) assert.equal(ok, 60);
  assert.equal(ok + limited.length, 90);
  const r = limited[0];
  assert.equal(r.json.type, 'error');
  assert.equal(r.json.error.type, 'rate_limit_error');
  assert.ok(Number(r.headers['retry-after']) >= 1);
  // Spread over several workers, not one.
  assert.equal((await mock.stats()).requests >= ok, true);
});

h.test('under fallback a rate-limited target is skipped, not failed', async () => {
  const rs = [];
  for (let i = 0; i < 6; i++) rs.push(await msg(gwFallback.url));
  assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
  const targets = rs.map((r) => r.headers['x-kt-target']);
  assert.deepEqual(targets.slice(0, 2), ['small', 'small']);
  assert.ok(targets.slice(2).every((t) => t === 'overflow'), targets.join(','));
});

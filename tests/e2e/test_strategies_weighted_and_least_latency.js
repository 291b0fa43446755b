// Routing strategies (SPEC §5): weighted_round_robin spreads requests by
// weight, least_latency prefers the target with the lowest recent latency.
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gwW;
let gwL;
before(async () => {
  mock = await h.startMock({ tag: 'strategies' });
  gwW = await h.startKtd({
    workers: 1,
    targets: [h.openaiTarget(mock, { id: 'heavy', weight: 3 }), h.openaiTarget(mock, { id: 'light', weight: 1 })],
    config: { providers: { strategy: 'weighted_round_robin' } },
  });
  gwL = await h.startKtd({
    workers: 1,
    targets: [
      h.openaiTarget(mock, { id: 'slow', headers: { 'x-mock-delay-headers-ms': '150' } }),
      h.openaiTarget(mock, { id: 'fast' }),
    ],
    config: { providers: { strategy: 'least_latency' } },
  });
});
after(h.stopAll);

const chat = (gw) => h.request(`${gw.url}/v1/chat/completions`, { method: 'POST', json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'route' }] } });

h.test('weighted_round_robin: weights 3:1 give about 3:1 of 40 requests', async () => {
  const n = { heavy: 0, light: 0 };
  for (let i = 0; i < 40; i++) {
    const r = await chat(gwW);
    assert.equal(r.status, 200);
    n[r.headers['x-kt-target']]++;
  }
  assert.equal(n.heavy + n.light, 40);
  assert.ok(n.heavy >= 25 && n.heavy <= 35, `heavy ${n.heavy}, light ${n.light}`);
});

h.test('least_latency: after both are measured, the fast target takes most requests', async () => {
  const n = { slow: 0, fast: 0 };
  for (let i = 0; i < 30; i++) {
    const r = await chat(gwL);
    assert.equal(r.status, 200);
    if (i >= 10) n[r.headers['x-kt-target']]++;
  }
  assert.ok(n.fast >= 16, `of the last 20: fast ${n.fast}, slow ${n.slow}`);
});

// Active health probes (issue 4, SPEC §5): the prober process probes each
// target with a health_probe and records the verdict in the shared state;
// every worker then skips a target that is unhealthy, without ever sending
// it a request, and uses it again once its probes pass.
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'probes' });
  gw = await h.startKtd({
    workers: 2,
    targets: [
      // Probed on a path the mock does not serve: unhealthy after one probe.
      h.openaiTarget(mock, { id: 'sick-primary', health_probe: { interval_seconds: 1, timeout_seconds: 1, path: '/no-such-health', healthy_threshold: 1, unhealthy_threshold: 1 } }),
      h.openaiTarget(mock, { id: 'well-secondary', health_probe: { interval_seconds: 1, timeout_seconds: 1, path: '/healthz', healthy_threshold: 1, unhealthy_threshold: 1 } }),
    ],
    config: { providers: { strategy: 'fallback' } },
  });
});
after(async () => {
  if (gw) await gw.stop();
  if (mock) await mock.stop();
});

const chat = () => h.request(`${gw.url}/v1/chat/completions`, {
  method: 'POST', json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'who serves me?' }] },
});

h.test('an unhealthy target is skipped by every worker without being tried', async () => {
  // The prober needs one round; until then the primary may serve.
  await h.waitFor(async () => (await chat()).headers['x-kt-target'] === 'well-secondary',
    { timeoutMs: 8000, what: 'the primary to be marked unhealthy' });
  await mock.reset();
  for (let i = 0; i < 20; i++) {
    const r = await chat();
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-kt-target'], 'well-secondary');
    assert.equal(r.headers['x-kt-fallback'], undefined, 'skipped, not failed over');
  }
  const posts = (await mock.requests()).filter((x) => x.method === 'POST');
  assert.equal(posts.length, 20, 'each request reached the upstream once: the sick target was never tried');
  // The probes themselves are GETs on each target's path.
  await h.waitFor(async () => (await mock.requests()).some((x) => x.method === 'GET' && x.path === '/no-such-health'),
    { timeoutMs: 4000, what: 'a probe of the sick target' });
});

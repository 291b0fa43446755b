// A request body over server.max_body_bytes is answered 413 in the client's
// format (the client must be able to read that answer: ktd has to drain or
// linger, not just close), and never reaches the upstream; a body just under
// the limit passes.
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

const MAX_BODY = 65536;
let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'bodylimit' });
  gw = await h.startKtd({ targets: [h.openaiTarget(mock), h.anthropicTarget(mock)], config: { server: { max_body_bytes: MAX_BODY } } });
});
after(h.stopAll);

async function upstreamChatCount() {
  const st = await mock.stats();
  return (st.by_path['/v1/chat/completions'] || 0) + (st.by_path['/v1/messages'] || 0);
}

h.test('a body over max_body_bytes → 413, never sent upstream', async () => {
  const before_ = await upstreamChatCount();
  const big = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x'.repeat(MAX_BODY * 2) }] });
  const out = await h.curl(['-i', '-X', 'POST', `${gw.url}/v1/chat/completions`, '-H', 'content-type: application/json', '--data-binary', '@-'], { input: big });
  const r = h.parseCurlI(out.stdout);
  assert.equal(r.status, 413, `curl: ${out.stderr} ${out.stdout.slice(0, 200)}`);
  assert.equal(await upstreamChatCount(), before_);
  // A body just under the limit still passes.
  const ok = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'y'.repeat(MAX_BODY - 200) }] });
  const r2 = await h.request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: ok });
  assert.equal(r2.status, 200);
});

h.test('413 on /v1/messages is Anthropic-shaped, with a small overshoot and with Expect: 100-continue', async () => {
  for (const extra of [[], ['-H', 'Expect: 100-continue']]) {
    const big = JSON.stringify({ model: 'claude-sonnet-4-20250514', max_tokens: 5, messages: [{ role: 'user', content: 'z'.repeat(MAX_BODY + 100) }] });
    const out = await h.curl(['-i', '-X', 'POST', `${gw.url}/v1/messages`, '-H', 'content-type: application/json', '-H', 'anthropic-version: 2023-06-01', ...extra, '--data-binary', '@-'], { input: big });
    const r = h.parseCurlI(out.stdout);
    assert.equal(r.status, 413, `curl ${extra.join(' ')}: ${out.stderr}`);
    const j = JSON.parse(r.body);
    assert.equal(j.type, 'error');
    assert.equal(j.error.type, 'request_too_large');
  }
});

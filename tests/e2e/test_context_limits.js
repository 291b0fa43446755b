// Context limits per target (issue 5): max_messages drops the oldest
// non-system messages before the request goes upstream; a request whose
// estimated tokens exceed max_context_tokens gets a clear 400 in the
// client's format and never reaches the provider.
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'context' });
  gw = await h.startKtd({
    targets: [h.anthropicTarget(mock, { id: 'short-memory', max_messages: 3, max_context_tokens: 2000 })],
  });
});
after(async () => {
  if (gw) await gw.stop();
  if (mock) await mock.stop();
});

h.test('max_messages keeps the system prompt and the newest messages', async () => {
  await mock.reset();
  const messages = [{ role: 'system', content: 'be brief' }];
  for (let i = 1; i <= 7; i++) messages.push({ role: i % 2 ? 'user' : 'assistant', content: `turn ${i}` });
  const r = await h.request(`${gw.url}/v1/chat/completions`, {
    method: 'POST', json: { model: 'claude-sonnet-4-20250514', messages },
  });
  assert.equal(r.status, 200, r.text);
  const [sent] = await mock.requests();
  assert.equal(sent.path, '/v1/messages');
  const texts = sent.body.messages.map((m) => (typeof m.content === 'string' ? m.content : m.content[0].text));
  assert.deepEqual(texts, ['turn 5', 'turn 6', 'turn 7']);
  const system = typeof sent.body.system === 'string' ? sent.body.system : sent.body.system[0].text;
  assert.equal(system, 'be brief');
});

h.test('over max_context_tokens: 400 in the client format, provider not called', async () => {
  await mock.reset();
  const big = 'word '.repeat(4000);
  const oa = await h.request(`${gw.url}/v1/chat/completions`, {
    method: 'POST', json: { model: 'claude-sonnet-4-20250514', messages: [{ role: 'user', content: big }] },
  });
  assert.equal(oa.status, 400);
  assert.equal(oa.json.error.code, 'context_length_exceeded');
  assert.match(oa.json.error.message, /at most 2000/);
  const an = await h.request(`${gw.url}/v1/messages`, {
    method: 'POST', json: { model: 'claude-sonnet-4-20250514', max_tokens: 10, messages: [{ role: 'user', content: big }] },
  });
  assert.equal(an.status, 400);
  assert.equal(an.json.type, 'error');
  assert.equal(an.json.error.type, 'invalid_request_error');
  assert.equal((await mock.stats()).requests, 0);
});

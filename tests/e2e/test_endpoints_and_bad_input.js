// ktd's own endpoints (/v1/models, /healthz, /readyz) and how it refuses bad
// input: malformed JSON (400 in the client's error format), unknown paths
// (404), wrong methods (405). None of these may reach the upstream.
// (Bodies over max_body_bytes: test_body_over_limit_is_413.js.)
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'endpoints' });
  gw = await h.startKtd({
    targets: [h.openaiTarget(mock, { id: 'oa-1', model: 'gpt-4o' }), h.anthropicTarget(mock, { id: 'an-1', model: 'claude-sonnet-4-20250514' })],
  });
});
after(h.stopAll);

async function upstreamChatCount() {
  const st = await mock.stats();
  return (st.by_path['/v1/chat/completions'] || 0) + (st.by_path['/v1/messages'] || 0);
}

h.test('GET /v1/models lists the configured targets in OpenAI list format', async () => {
  const r = await h.request(`${gw.url}/v1/models`);
  assert.equal(r.status, 200);
  assert.equal(r.json.object, 'list');
  const ids = r.json.data.map((m) => m.id);
  assert.ok(ids.includes('gpt-4o'), `models: ${ids}`);
  assert.ok(ids.includes('claude-sonnet-4-20250514'), `models: ${ids}`);
  for (const m of r.json.data) assert.equal(m.object, 'model');
  const list = [];
  for await (const m of gw.openai().models.list()) list.push(m.id);
  assert.deepEqual(list.sort(), ids.slice().sort());
});

h.test('GET /healthz and /readyz answer 200', async () => {
  assert.equal((await h.request(`${gw.url}/healthz`)).status, 200);
  assert.equal((await h.request(`${gw.url}/readyz`)).status, 200);
});

h.test('malformed JSON → 400 with an OpenAI-shaped error on /v1/chat/completions', async () => {
  const before_ = await upstreamChatCount();
  const r = await h.request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": "gpt-4o", "messages": [' });
  assert.equal(r.status, 400);
  assert.ok(r.json, `not JSON: ${r.text}`);
  assert.equal(typeof r.json.error, 'object');
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok(r.json.error.type);
  assert.equal(r.json.type, undefined);
  assert.equal(await upstreamChatCount(), before_);
  await assert.rejects(
    gw.openai().chat.completions.create({ model: 'gpt-4o', messages: 'not a list' }),
    (e) => e.status === 400,
  );
});

h.test('malformed JSON → 400 with an Anthropic-shaped error on /v1/messages', async () => {
  const before_ = await upstreamChatCount();
  const r = await h.request(`${gw.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body: '{"model": ' });
  assert.equal(r.status, 400);
  assert.ok(r.json, `not JSON: ${r.text}`);
  assert.equal(r.json.type, 'error');
  assert.equal(r.json.error.type, 'invalid_request_error');
  assert.equal(typeof r.json.error.message, 'string');
  assert.equal(await upstreamChatCount(), before_);
});

h.test('unknown path → 404, wrong method → 405', async () => {
  assert.equal((await h.request(`${gw.url}/v1/unknown`)).status, 404);
  assert.equal((await h.request(`${gw.url}/nope`, { method: 'POST', body: '{}' })).status, 404);
  assert.equal((await h.request(`${gw.url}/v1/chat/completions`)).status, 405);
  assert.equal((await h.request(`${gw.url}/v1/messages`, { method: 'PUT', body: '{}' })).status, 405);
  assert.equal((await h.request(`${gw.url}/v1/models`, { method: 'POST', body: '{}' })).status, 405);
});

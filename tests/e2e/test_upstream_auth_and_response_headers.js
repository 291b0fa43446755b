// What ktd sends upstream per target (its own key in the provider's header,
// anthropic-version, the target's custom headers; never the client's key) and
// what every response carries (x-request-id, x-kt-target).
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gwO;
let gwA;
before(async () => {
  mock = await h.startMock({ tag: 'auth' });
  gwO = await h.startKtd({ targets: [h.openaiTarget(mock, { id: 'oa-auth', headers: { 'x-team': 'e2e-openai' } })] });
  gwA = await h.startKtd({
    targets: [h.anthropicTarget(mock, { id: 'an-auth', anthropic_version: '2023-06-01', headers: { 'x-team': 'e2e-anthropic', 'anthropic-beta': 'tools-2024-04-04' } })],
  });
});
after(h.stopAll);

function assertNoClientKey(rec) {
  for (const [k, v] of Object.entries(rec.headers)) {
    assert.ok(!String(v).includes(h.CLIENT_KEY), `client key forwarded upstream in ${k}`);
  }
}

h.test('openai target gets Authorization: Bearer <target key>, custom headers, not the client key', async () => {
  await mock.reset();
  await gwO.openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'auth check' }] });
  const [rec] = await mock.requests('/v1/chat/completions');
  assert.equal(rec.headers.authorization, `Bearer ${h.KEYS.KT_E2E_OPENAI_KEY}`);
  assert.equal(rec.headers['x-api-key'], undefined);
  assert.equal(rec.headers['x-team'], 'e2e-openai');
  assertNoClientKey(rec);
});

h.test('anthropic target gets x-api-key and its own anthropic-version, not the client Authorization', async () => {
  await mock.reset();
  // The current SDK sends Authorization: Bearer and anthropic-version 2026-10-21.
  await gwA.anthropic().messages.create({ model: 'claude-sonnet-4-20250514', max_tokens: 8, messages: [{ role: 'user', content: 'auth check' }] });
  const [rec] = await mock.requests('/v1/messages');
  assert.equal(rec.headers['x-api-key'], h.KEYS.KT_E2E_ANTHROPIC_KEY);
  assert.equal(rec.headers.authorization, undefined);
  assert.equal(rec.headers['anthropic-version'], '2023-06-01');
  assert.equal(rec.headers['x-team'], 'e2e-anthropic');
  assert.equal(rec.headers['anthropic-beta'], 'tools-2024-04-04');
  assertNoClientKey(rec);
});

h.test('an old-style anthropic client (x-api-key, 2023-06-01) is accepted and its key not forwarded', async () => {
  await mock.reset();
  const r = await h.request(`${gwA.url}/v1/messages`, {
    method: 'POST', headers: { 'x-api-key': h.CLIENT_KEY, 'anthropic-version': '2023-06-01' },
    json: { model: 'claude-sonnet-4-20250514', max_tokens: 8, messages: [{ role: 'user', content: 'old client' }] },
  });
  assert.equal(r.status, 200);
  const [rec] = await mock.requests('/v1/messages');
  assert.equal(rec.headers['x-api-key'], h.KEYS.KT_E2E_ANTHROPIC_KEY);
  assertNoClientKey(rec);
});

h.test('x-request-id is echoed when given and generated when not; x-kt-target names the target', async () => {
  const body = { model: 'gpt-4o', messages: [{ role: 'user', content: 'ids' }] };
  const r1 = await h.request(`${gwO.url}/v1/chat/completions`, { method: 'POST', headers: { 'x-request-id': 'e2e-req-0042' }, json: body });
  assert.equal(r1.status, 200);
  assert.equal(r1.headers['x-request-id'], 'e2e-req-0042');
  assert.equal(r1.headers['x-kt-target'], 'oa-auth');
  const r2 = await h.request(`${gwO.url}/v1/chat/completions`, { method: 'POST', json: body });
  const r3 = await h.request(`${gwO.url}/v1/chat/completions`, { method: 'POST', json: body });
  assert.ok(r2.headers['x-request-id'] && r2.headers['x-request-id'].length >= 8, 'no generated x-request-id');
  assert.notEqual(r2.headers['x-request-id'], r3.headers['x-request-id']);
  const r4 = await h.request(`${gwA.url}/v1/messages`, {
    method: 'POST', headers: { 'anthropic-version': '2023-06-01' },
    json: { model: 'claude-sonnet-4-20250514', max_tokens: 8, stream: true, messages: [{ role: 'user', content: 'ids' }] },
  });
  assert.equal(r4.status, 200);
  assert.equal(r4.headers['x-kt-target'], 'an-auth');
  assert.ok(r4.headers['x-request-id']);
});

h.test('x-request-id is on error responses too', async () => {
  for (const [url, hdr] of [[`${gwO.url}/v1/chat/completions`, {}], [`${gwA.url}/v1/messages`, { 'anthropic-version': '2023-06-01' }]]) {
    const r = await h.request(url, { method: 'POST', headers: { ...hdr, 'content-type': 'application/json', 'x-request-id': 'e2e-bad-1' }, body: '{nope' });
    assert.equal(r.status, 400);
    assert.equal(r.headers['x-request-id'], 'e2e-bad-1');
  }
  const r404 = await h.request(`${gwO.url}/v1/nothing-here`);
  assert.equal(r404.status, 404);
  assert.ok(r404.headers['x-request-id']);
});

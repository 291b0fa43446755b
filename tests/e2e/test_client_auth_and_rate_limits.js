// Client keys (server.auth): requests without a valid key are refused in the
// client's format, a key limited to some models cannot use others, a key's
// rate limit returns 429 (shared by all workers), and pack.enabled: false puts
// the gateway in maintenance (503).
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { before, after } = require('node:test');
const h = require('./lib/harness');

const sha = (s) => crypto.createHash('sha256').update(s).digest('hex');
const KEY_B = 'client-key-team-b-0002';
const KEY_RL = 'client-key-limited-0003';
const KEY_TPM = 'client-key-tokens-0004';

let mock;
let gw;
let gwOff;
before(async () => {
  mock = await h.startMock({ tag: 'clientauth' });
  gw = await h.startKtd({
    targets: [h.openaiTarget(mock), h.anthropicTarget(mock)],
    config: { server: { auth: { keys: [
      { id: 'team-a', sha256: sha(h.CLIENT_KEY) },
      { id: 'team-b', sha256: sha(KEY_B), models: ['claude-sonnet-4-20250514'] },
      { id: 'limited', sha256: sha(KEY_RL), rate_limit: { requests_per_minute: 3 } },
      { id: 'thrifty', sha256: sha(KEY_TPM), rate_limit: { tokens_per_minute: 30 } },
    ] } } },
  });
  gwOff = await h.startKtd({ targets: [h.openaiTarget(mock)], config: { pack: { enabled: false } }, waitHealthy: false });
  await h.waitFor(async () => (await h.request(`${gwOff.url}/healthz`).catch(() => ({}))).status !== undefined, { what: 'the disabled gateway to listen' });
});
after(h.stopAll);

const oaBody = { model: 'gpt-4o', messages: [{ role: 'user', content: 'auth' }] };
const anBody = { model: 'claude-sonnet-4-20250514', max_tokens: 8, messages: [{ role: 'user', content: 'auth' }] };

h.test('no key or a wrong key → 401/403 in the client format; upstream not called', async () => {
  await mock.reset();
  const r1 = await h.request(`${gw.url}/v1/chat/completions`, { method: 'POST', json: oaBody });
  assert.ok([401, 403].includes(r1.status), `status ${r1.status}`);
  assert.equal(typeof r1.json.error.message, 'string');
  const r2 = await h.request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer wrong-key' }, json: oaBody });
  assert.ok([401, 403].includes(r2.status), `status ${r2.status}`);
  const r3 = await h.request(`${gw.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'wrong-key', 'anthropic-version': '2023-06-01' }, json: anBody });
  assert.ok([401, 403].includes(r3.status), `status ${r3.status}`);
  assert.equal(r3.json.type, 'error');
  assert.equal((await mock.stats()).requests, 0);
});

h.test('a valid key works with both SDKs (Bearer and x-api-key)', async () => {
  const r = await gw.openai().chat.completions.create(oaBody);
  assert.equal(r.choices[0].message.content, 'mock reply: auth');
  const m = await gw.anthropic().messages.create(anBody);
  assert.ok(m.content[0].text.length > 0);
  const old = await h.request(`${gw.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': h.CLIENT_KEY, 'anthropic-version': '2023-06-01' }, json: anBody });
  assert.equal(old.status, 200);
});

h.test('a key limited to some models is refused other models', async () => {
  const r = await h.request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY_B}` }, json: oaBody });
  assert.equal(r.status, 403);
  const ok = await h.request(`${gw.url}/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${KEY_B}`, 'anthropic-version': '2023-06-01' }, json: anBody });
  assert.equal(ok.status, 200);
});

h.test('a key rate limit → 429 in the client format, across workers', async () => {
  const statuses = [];
  let last429;
  for (let i = 0; i < 8; i++) {
    // New connections, so both workers take part.
    const r = await h.request(`${gw.url}/v1/chat/completions`, { method: 'POST', fresh: true, headers: { authorization: `Bearer ${KEY_RL}` }, json: oaBody });
    statuses.push(r.status);
    if (r.status === 429) last429 = r;
  }
  const ok = statuses.filter((s) => s === 200).length;
  assert.ok(ok >= 1 && ok <= 3, `statuses ${statuses}`);
  assert.equal(statuses.filter((s) => s === 429).length, 8 - ok, `statuses ${statuses}`);
  assert.equal(typeof last429.json.error.message, 'string');
});

h.test('a key token budget: charged from usage after each response, 429 once spent', async () => {
  await mock.reset();
  const statuses = [];
  for (let i = 0; i < 8; i++) {
    const r = await h.request(`${gw.url}/v1/chat/completions`, {
      method: 'POST', fresh: true, headers: { authorization: `Bearer ${KEY_TPM}` },
      json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'spend some tokens on a reply of several words' }] },
    });
    statuses.push(r.status);
    if (r.status === 429) assert.ok(Number(r.headers['retry-after']) >= 1);
  }
  const ok = statuses.filter((x) => x === 200).length;
  assert.ok(ok >= 1 && ok < 8, `statuses ${statuses}`);
  assert.deepEqual(statuses.slice(ok), Array(8 - ok).fill(429), `statuses ${statuses}`);
  assert.equal((await mock.stats()).requests, ok, 'refused requests never reach the provider');
});

h.test('pack.enabled: false → 503 for traffic', async () => {
  const r = await h.request(`${gwOff.url}/v1/chat/completions`, { method: 'POST', json: oaBody });
  assert.equal(r.status, 503);
  assert.equal(typeof r.json.error.message, 'string');
});

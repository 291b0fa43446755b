// The kt CLI (SPEC §1): `kt gateway run` serves with the same engine as ktd,
// and repeated --policy-config files layer (maps merge, lists replace);
// `kt audit tail` prints the records; `kt version` names the libraries.
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'ktcli' });
  gw = await h.startKtd({
    via: 'kt', workers: 1,
    targets: [h.openaiTarget(mock, { id: 'base-target' })],
    layers: [
      // A list replaces: only layer-target remains.
      { providers: { targets: [h.openaiTarget(mock, { id: 'layer-target', headers: { 'x-layer': '1' } })] } },
      // A map merges: server keeps listen and state_dir from the base.
      { server: { max_body_bytes: 4096 } },
    ],
  });
});
after(h.stopAll);

const kt = path.join(h.BUILDDIR, 'kt');

h.test('kt gateway run serves, with later --policy-config files layered over earlier ones', async () => {
  const r = await gw.openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'layers' }] }).withResponse();
  assert.equal(r.data.choices[0].message.content, 'mock reply: layers');
  assert.equal(r.response.headers.get('x-kt-target'), 'layer-target');
  const [rec] = await mock.requests('/v1/chat/completions');
  assert.equal(rec.headers['x-layer'], '1');
  assert.equal(rec.headers.authorization, `Bearer ${h.KEYS.KT_E2E_OPENAI_KEY}`);
  const big = await h.request(`${gw.url}/v1/chat/completions`, { method: 'POST', json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'b'.repeat(8000) }] } });
  assert.equal(big.status, 413);
});

h.test('kt audit tail prints the records of answered requests', async () => {
  const rid = `tail-${Date.now()}`;
  assert.equal((await h.request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'x-request-id': rid }, json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'tail me' }] } })).status, 200);
  const log = gw.config.policy['audit-logger'].path;
  const out = await h.waitFor(() => {
    const r = spawnSync(kt, ['audit', 'tail', log], { encoding: 'utf8', timeout: 5000 });
    return r.status === 0 && r.stdout.includes(rid) ? r.stdout : null;
  }, { timeoutMs: 5000, what: `kt audit tail to show ${rid}` });
  assert.match(out, /layer-target/);
  const v = spawnSync(kt, ['audit', 'verify', log], { encoding: 'utf8', timeout: 5000 });
  assert.equal(v.status, 0, v.stdout + v.stderr);
});

h.test('kt version names kt, ktd and the libraries', () => {
  const r = spawnSync(kt, ['version'], { encoding: 'utf8', timeout: 5000 });
  assert.equal(r.status, 0);
  for (const w of [/ktd/i, /libevent/i, /curl/i, /openssl/i, /lmdb/i, /yaml/i, /json-c/i]) assert.match(r.stdout, w);
});

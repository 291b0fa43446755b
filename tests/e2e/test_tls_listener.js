// server.tls serves HTTPS on the listeners (SPEC §2): JSON and SSE through
// TLS with curl, and a certificate that cannot be loaded fails `ktd -t`.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { before, after } = require('node:test');
const h = require('./lib/harness');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-e2e-tls-'));
const cert = path.join(dir, 'cert.pem');
const key = path.join(dir, 'key.pem');
let mock;
let gw;

before(async () => {
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
    '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  mock = await h.startMock({ tag: 'tls' });
  gw = await h.startKtd({
    targets: [h.openaiTarget(mock, { id: 'tls-openai' })],
    config: { server: { tls: { cert, key } } },
    waitHealthy: false,
  });
  await h.waitFor(async () => (await h.curl(['-k', `https://127.0.0.1:${gw.port}/healthz`])).stdout.includes('ok'),
    { timeoutMs: 5000, what: 'ktd answering over TLS' });
});
after(async () => {
  if (gw) await gw.stop();
  if (mock) await mock.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

h.test('HTTPS listener: a chat completion and a stream over TLS', async () => {
  const url = `https://127.0.0.1:${gw.port}/v1/chat/completions`;
  const body = { model: 'gpt-4o', messages: [{ role: 'user', content: 'over tls' }] };
  const r = await h.curl(['-k', url, '-H', 'content-type: application/json', '-d', JSON.stringify(body)]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).choices[0].message.content, 'mock reply: over tls');
  const s = await h.curl(['-k', url, '-H', 'content-type: application/json',
    '-d', JSON.stringify({ ...body, stream: true })]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /data: \[DONE\]/);
  // Plain HTTP on the TLS port is not served.
  const plain = await h.curl([`http://127.0.0.1:${gw.port}/healthz`], { timeoutMs: 3000 });
  assert.ok(!plain.stdout.includes('"ok"'));
});

h.test('ktd -t refuses a key that does not match the certificate', () => {
  const other = path.join(dir, 'other.pem');
  spawnSync('openssl', ['genrsa', '-out', other, '2048']);
  const cfgPath = path.join(dir, 'bad.yaml');
  const cfg = h.baseConfig(dir, 18099, [h.openaiTarget(mock)]);
  cfg.server.tls = { cert, key: other };
  fs.writeFileSync(cfgPath, h.configToYaml(cfg));
  const r = spawnSync(path.join(h.BUILDDIR, 'ktd'), ['-t', '-c', cfgPath],
    { env: { ...process.env, ...h.KEYS }, encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /server\.tls/);
});

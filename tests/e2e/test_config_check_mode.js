// `ktd -t` tests a config like `nginx -t` (0 ok, 1 with FILE:LINE:COL errors),
// `ktd -T` also prints the effective config with secrets masked, and
// `kt policy lint` reports the same errors (SPEC §1).
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./lib/harness');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-e2e-cfg-'));
process.on('exit', (code) => { if (code === 0) fs.rmSync(dir, { recursive: true, force: true }); });
const ktd = path.join(h.BUILDDIR, 'ktd');
const kt = path.join(h.BUILDDIR, 'kt');
const env = { ...process.env, ...h.KEYS };
const fakeMock = { url: 'http://127.0.0.1:9' };

function write(name, cfg) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, typeof cfg === 'string' ? cfg : h.configToYaml(cfg));
  return p;
}
const good = write('good.yaml', h.baseConfig(dir, 18080, [h.openaiTarget(fakeMock), h.anthropicTarget(fakeMock)]));
const bad = write('bad.yaml', h.baseConfig(dir, 18080, [h.openaiTarget(fakeMock, { timeout_secs: 5 })]));
const dup = write('dup.yaml', h.baseConfig(dir, 18080, [h.openaiTarget(fakeMock), h.openaiTarget(fakeMock)]));
const reEsc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

h.test('ktd -t: a good config exits 0', () => {
  const r = spawnSync(ktd, ['-t', '-c', good], { env, encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, r.stderr);
});

h.test('ktd -t: errors as FILE:LINE:COL, exit 1 (unknown key, duplicate id)', () => {
  const r = spawnSync(ktd, ['-t', '-c', bad], { env, encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 1);
  assert.match(r.stdout + r.stderr, new RegExp(`${reEsc(bad)}:\\d+:\\d+: .*timeout_secs`));
  const d = spawnSync(ktd, ['-t', '-c', dup], { env, encoding: 'utf8', timeout: 10000 });
  assert.equal(d.status, 1);
  assert.match(d.stdout + d.stderr, new RegExp(`${reEsc(dup)}:\\d+:\\d+: .*duplicate`));
});

h.test('ktd -t: a missing secret env var is an error', () => {
  const e = { ...env };
  delete e.KT_E2E_OPENAI_KEY;
  const r = spawnSync(ktd, ['-t', '-c', good], { env: e, encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 1);
  assert.match(r.stdout + r.stderr, /KT_E2E_OPENAI_KEY/);
});

h.test('ktd -T prints the effective config with defaults and no secret', () => {
  const r = spawnSync(ktd, ['-T', '-c', good], { env, encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /anthropic_version/);
  assert.match(r.stdout, /x-api-key/);
  for (const k of Object.values(h.KEYS)) assert.ok(!(r.stdout + r.stderr).includes(k), 'a secret was printed');
});

h.test('kt policy lint reports the same errors', () => {
  const ok = spawnSync(kt, ['policy', 'lint', '--file', good], { env, encoding: 'utf8', timeout: 10000 });
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  const r = spawnSync(kt, ['policy', 'lint', '--file', bad], { env, encoding: 'utf8', timeout: 10000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stdout + r.stderr, /:\d+:\d+: .*timeout_secs/);
});

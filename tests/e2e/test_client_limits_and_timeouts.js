// Bad clients never wedge a worker (issue 2, "Bad input"): oversized headers
// are cut, a slow client that never finishes its headers and an idle
// (half-open) connection are closed by server.read_timeout_seconds, and the
// same worker keeps serving everyone else meanwhile.
'use strict';

const assert = require('node:assert/strict');
const net = require('node:net');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'limits' });
  gw = await h.startKtd({
    workers: 1,
    targets: [h.openaiTarget(mock)],
    config: { server: { read_timeout_seconds: 1, max_header_bytes: 8192 } },
  });
});
after(async () => {
  if (gw) await gw.stop();
  if (mock) await mock.stop();
});

// rawClient: send bytes, resolve with what came back and how long until close.
function rawClient(port, chunks, { gapMs = 0, timeoutMs = 8000 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const done = (how) => { clearTimeout(timer); s.destroy(); resolve({ got, ms: Date.now() - t0, how }); };
    const timer = setTimeout(() => done('still-open'), timeoutMs);
    s.on('data', (d) => { got += d; });
    s.on('close', () => done('closed'));
    s.on('error', () => done('closed'));
    s.on('connect', async () => {
      for (const c of chunks) {
        if (s.destroyed) return;
        s.write(c);
        if (gapMs) await h.sleep(gapMs);
      }
    });
  });
}

const ok = async () => (await h.request(`${gw.url}/v1/chat/completions`, {
  method: 'POST', fresh: true, json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'still here?' }] },
})).status;

h.test('oversized headers: the connection is cut, the worker keeps serving', async () => {
  const big = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${'X-Pad: ' + 'a'.repeat(4000) + '\r\n'}`.repeat(1)
    + Array.from({ length: 8 }, (_, i) => `X-More-${i}: ${'b'.repeat(2000)}\r\n`).join('') + '\r\n';
  const r = await rawClient(gw.port, [big]);
  assert.equal(r.how, 'closed');
  assert.doesNotMatch(r.got, /^HTTP\/1\.1 200/);
  assert.equal(await ok(), 200);
});

h.test('a slow client that never finishes its headers is closed by the read timeout', async () => {
  const pending = rawClient(gw.port, ['POST /v1/chat/completions HTTP/1.1\r\n', 'Host: x\r\n'], { gapMs: 200 });
  // Served meanwhile: one slow client does not hold the worker.
  assert.equal(await ok(), 200);
  const r = await pending;
  assert.equal(r.how, 'closed');
  assert.ok(r.ms >= 900 && r.ms < 5000, `closed after ${r.ms} ms`);
});

h.test('an idle (half-open) connection is closed by the read timeout', async () => {
  const r = await rawClient(gw.port, []);
  assert.equal(r.how, 'closed');
  assert.ok(r.ms >= 900 && r.ms < 5000, `closed after ${r.ms} ms`);
  assert.equal(await ok(), 200);
});

// Backpressure (DESIGN "Backpressure and disconnects"): a client that stops
// reading a big stream pauses the upstream transfer instead of making ktd
// buffer it; when the client reads again the stream completes intact.
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

const PAD = 48 * 1024 * 1024; // 48 MiB of reply, far more than socket buffers hold
const EVENTS = 768;           // 64 KiB per event
let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'backpressure' });
  gw = await h.startKtd({ targets: [h.openaiTarget(mock, { timeout_seconds: 60 })], workers: 1 });
});
after(h.stopAll);

h.test('a client that stops reading pauses the upstream; ktd does not buffer the stream', async () => {
  const [worker] = await h.waitFor(() => { const w = gw.workerPids(); return w.length === 1 ? w : null; }, { what: 'the worker' });
  const rss0 = h.rssKb(worker);
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: `big [[mock:pad=${PAD},events=${EVENTS}]]` }] }),
  });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  let bytes = (await reader.read()).value.length;
  // Stop reading. The chain fills up, then the mock must be stuck waiting for drain.
  await h.sleep(1500);
  const [mid] = await mock.requests('/v1/chat/completions');
  const rssPaused = h.rssKb(worker);
  await h.sleep(1000);
  const [later] = await mock.requests('/v1/chat/completions');
  assert.equal(later.outcome, 'streaming', 'the upstream stream already finished: nothing held it back');
  assert.equal(later.events_sent, mid.events_sent, `upstream kept sending while the client was not reading (${mid.events_sent} → ${later.events_sent} events)`);
  assert.ok(later.events_sent < EVENTS);
  const grewMb = (rssPaused - rss0) / 1024;
  assert.ok(grewMb < 28, `worker RSS grew ${grewMb.toFixed(1)} MiB while the client was paused`);
  // Read the rest: the whole stream arrives.
  const dec = new TextDecoder();
  let tail = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    bytes += value.length;
    tail = (tail + dec.decode(value, { stream: true })).slice(-200);
  }
  assert.ok(tail.endsWith('data: [DONE]\n\n'), `stream cut: ${tail.slice(-80)}`);
  assert.ok(bytes > PAD, `only ${bytes} bytes`);
  const [done] = await mock.requests('/v1/chat/completions');
  assert.equal(done.outcome, 'completed');
  assert.ok(done.blocked_ms >= 900, `mock blocked only ${done.blocked_ms} ms`);
  process.stderr.write(`# backpressure: paused at event ${mid.events_sent}/${EVENTS}, worker RSS +${grewMb.toFixed(1)} MiB, mock blocked ${done.blocked_ms} ms\n`);
});

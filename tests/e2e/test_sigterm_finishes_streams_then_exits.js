// SIGTERM is a graceful stop: a slow stream in flight when the signal arrives
// finishes completely, then the master exits 0.
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'sigterm' });
  gw = await h.startKtd({ targets: [h.openaiTarget(mock, { stream_timeout_seconds: 30 })], workers: 2 });
});
after(h.stopAll);

h.test('SIGTERM during a slow stream: the stream finishes, then the master exits 0', async () => {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'slow goodbye [[mock:events=8,event_interval_ms=250]]' }] }),
  });
  assert.equal(res.status, 200);
  const dec = new TextDecoder();
  let text = '';
  let signalled = 0;
  for await (const c of res.body) {
    text += dec.decode(c, { stream: true });
    if (!signalled) { gw.signal('SIGTERM'); signalled = Date.now(); }
  }
  assert.ok(signalled, 'no chunk before the end of the stream');
  assert.ok(Date.now() - signalled >= 1000, 'stream ended too soon after SIGTERM');
  assert.ok(text.endsWith('data: [DONE]\n\n'), `stream cut: ...${text.slice(-200)}`);
  const events = h.parseSse(text).slice(0, -1).map((e) => JSON.parse(e.data));
  const content = events.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join('');
  assert.equal(content, 'mock reply: slow goodbye');
  const [rec] = await mock.requests('/v1/chat/completions');
  assert.equal(rec.outcome, 'completed');
  const exit = await Promise.race([gw.exited, h.deadline(12000)]);
  assert.ok(exit, 'master did not exit within shutdown_timeout_seconds');
  assert.deepEqual(exit, { code: 0, signal: null });
  // Nothing of the process group is left behind.
  await h.waitFor(() => !gw.groupAlive(), { timeoutMs: 2000, what: 'every ktd process to exit' });
});

// Upstream failures as the client sees them: a hung upstream becomes 504 after
// timeout_seconds, an upstream 500 comes back as an error in the client's
// format, and a client that disconnects mid-stream makes ktd drop the upstream
// transfer (the mock sees its socket close before the stream ends).
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gwO;
let gwA;
let gwSlow;
before(async () => {
  mock = await h.startMock({ tag: 'failures' });
  gwO = await h.startKtd({ targets: [h.openaiTarget(mock, { timeout_seconds: 1, stream_timeout_seconds: 30 })] });
  gwA = await h.startKtd({ targets: [h.anthropicTarget(mock, { timeout_seconds: 1, stream_timeout_seconds: 30 })] });
  gwSlow = await h.startKtd({ targets: [h.openaiTarget(mock, { timeout_seconds: 20 })] });
});
after(h.stopAll);

const AV = { 'anthropic-version': '2023-06-01' };

h.test('a hung upstream → 504 after timeout_seconds, in the client format', async () => {
  await mock.reset();
  let t0 = Date.now();
  const r = await h.request(`${gwO.url}/v1/chat/completions`, { method: 'POST', json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'wait [[mock:hang]]' }] } });
  let dt = Date.now() - t0;
  assert.equal(r.status, 504);
  assert.ok(dt >= 900 && dt < 5000, `took ${dt} ms`);
  assert.equal(typeof r.json.error.message, 'string');
  t0 = Date.now();
  const r2 = await h.request(`${gwA.url}/v1/messages`, { method: 'POST', headers: AV, json: { model: 'claude-sonnet-4-20250514', max_tokens: 5, messages: [{ role: 'user', content: 'wait [[mock:hang]]' }] } });
  dt = Date.now() - t0;
  assert.equal(r2.status, 504);
  assert.ok(dt >= 900 && dt < 5000, `took ${dt} ms`);
  assert.equal(r2.json.type, 'error');
  // ktd gave up on the hung upstream connections.
  await h.waitFor(async () => (await mock.requests()).every((x) => x.outcome === 'client_closed'), { what: 'mock to see ktd close hung requests' });
});

h.test('an upstream 500 is relayed as a 5xx error in the client format', async () => {
  await mock.reset();
  const r = await h.request(`${gwO.url}/v1/chat/completions`, { method: 'POST', json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'boom [[mock:status=500]]' }] } });
  assert.ok([500, 502].includes(r.status), `status ${r.status}`);
  assert.equal(typeof r.json.error.message, 'string');
  assert.equal(r.headers['x-kt-target'], 'mock-openai');
  const r2 = await h.request(`${gwA.url}/v1/messages`, { method: 'POST', headers: AV, json: { model: 'claude-sonnet-4-20250514', max_tokens: 5, messages: [{ role: 'user', content: 'boom [[mock:status=500]]' }] } });
  assert.ok([500, 502].includes(r2.status), `status ${r2.status}`);
  assert.equal(r2.json.type, 'error');
  assert.equal(typeof r2.json.error.message, 'string');
  // retry.max_attempts is 1 in the harness config: exactly one upstream call each.
  assert.equal((await mock.stats()).requests, 2);
  await assert.rejects(
    gwO.openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'boom [[mock:status=500]]' }] }),
    (e) => e.status >= 500 && typeof e.error.message === 'string',
  );
});

h.test('a client that hangs up before the upstream answers: ktd drops the upstream transfer at once', async () => {
  await mock.reset();
  const ac = new AbortController();
  const pending = fetch(`${gwSlow.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, signal: ac.signal,
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'wait [[mock:hang]]' }] }),
  }).catch(() => null);
  await h.waitFor(async () => (await mock.requests()).length === 1, { what: 'the request to reach the mock' });
  const t0 = Date.now();
  ac.abort();
  await pending;
  // Far sooner than timeout_seconds (20): the hang-up itself cancelled it.
  await h.waitFor(async () => {
    const [x] = await mock.requests();
    return x && x.outcome === 'client_closed';
  }, { timeoutMs: 5000, what: 'mock to see ktd drop the upstream transfer' });
  assert.ok(Date.now() - t0 < 5000);
  // The worker keeps serving.
  const r = await h.request(`${gwSlow.url}/v1/chat/completions`, { method: 'POST', json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] } });
  assert.equal(r.status, 200);
});

h.test('pooled upstream connections the provider closed while idle are replaced, without errors or hangs', async () => {
  await mock.reset();
  const chat = (i) => h.request(`${gwSlow.url}/v1/chat/completions`, { method: 'POST', json: { model: 'gpt-4o', messages: [{ role: 'user', content: `pool ${i}` }] } });
  for (let round = 0; round < 4; round++) {
    // several connections in ktd's pool (both workers), then all of them closed by the server
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => chat(round * 10 + i)));
    for (const r of rs) assert.equal(r.status, 200);
    const { dropped } = await mock.dropConnections();
    assert.ok(dropped > 0, 'ktd kept no upstream connection open');
    await h.sleep(50);
  }
  const t0 = Date.now();
  const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => chat(100 + i)));
  for (const r of rs) assert.equal(r.status, 200);
  assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
  assert.equal((await mock.stats()).requests, 40);
});

async function disconnectMidStream(gw, path, json, headers) {
  await mock.reset();
  const ac = new AbortController();
  const res = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(json), signal: ac.signal });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  const first = await reader.read();
  assert.ok(first.value && first.value.length > 0);
  ac.abort();
  await reader.cancel().catch(() => {});
  const t0 = Date.now();
  const rec = await h.waitFor(async () => {
    const [x] = await mock.requests(path);
    return x && x.outcome === 'client_closed' ? x : null;
  }, { timeoutMs: 3000, what: 'mock to see the upstream socket close' });
  assert.ok(rec.events_sent < 20, `mock sent ${rec.events_sent} events: the upstream transfer was not cancelled`);
  return Date.now() - t0;
}

h.test('client disconnect mid-stream cancels the upstream transfer (openai)', async () => {
  await disconnectMidStream(gwO, '/v1/chat/completions',
    { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'long [[mock:events=30,event_interval_ms=100]]' }] });
});

h.test('client disconnect mid-stream cancels the upstream transfer (anthropic)', async () => {
  await disconnectMidStream(gwA, '/v1/messages',
    { model: 'claude-sonnet-4-20250514', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'long [[mock:events=30,event_interval_ms=100]]' }] }, AV);
});

h.test('upstream reset mid-stream ends the client stream (no hang)', async () => {
  await mock.reset();
  const t0 = Date.now();
  let text = null;
  try {
    const r = await h.streamChunks(`${gwO.url}/v1/chat/completions`, { json: { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'cut [[mock:reset_after_events=3]]' }] } });
    text = r.text;
  } catch (e) { /* a cut connection is an acceptable way to end */ }
  assert.ok(Date.now() - t0 < 5000);
  // Either the client connection is cut, or the stream ends with an error event.
  if (text !== null) assert.match(text, /"error"/, `stream ended as if complete: ${text.slice(-300)}`);
});

h.test('a stream longer than timeout_seconds lives by stream_timeout_seconds', async () => {
  await mock.reset();
  // timeout_seconds is 1 and the stream takes about 2 s: it must not be cut.
  const s = await gwO.openai().chat.completions.create({
    model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'long but fine [[mock:events=6,event_interval_ms=300]]' }],
  });
  let text = '';
  for await (const c of s) text += (c.choices[0] && c.choices[0].delta.content) || '';
  assert.equal(text, 'mock reply: long but fine');
  const [rec] = await mock.requests('/v1/chat/completions');
  assert.equal(rec.outcome, 'completed');
});

h.test('a malformed upstream SSE event ends the stream and ktd keeps serving', async () => {
  for (const [gw, path, json, hdr] of [
    [gwO, '/v1/chat/completions', { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'bad sse [[mock:malformed_sse]]' }] }, {}],
    [gwA, '/v1/messages', { model: 'claude-sonnet-4-20250514', max_tokens: 20, stream: true, messages: [{ role: 'user', content: 'bad sse [[mock:malformed_sse]]' }] }, AV],
    // Translated: the OpenAI client on the anthropic target has to parse the broken event.
    [gwA, '/v1/chat/completions', { model: 'claude-sonnet-4-20250514', stream: true, messages: [{ role: 'user', content: 'bad sse [[mock:malformed_sse]]' }] }, {}],
  ]) {
    const t0 = Date.now();
    try {
      const r = await h.streamChunks(`${gw.url}${path}`, { json, headers: hdr });
      assert.ok(r.status === 200 || r.status >= 500, `status ${r.status}`);
    } catch (e) { /* a cut connection is an acceptable end */ }
    assert.ok(Date.now() - t0 < 5000, 'the stream did not end');
    const ok = await h.request(`${gw.url}${path}`, { method: 'POST', headers: hdr, json: { ...json, stream: false, messages: [{ role: 'user', content: 'still alive' }] } });
    assert.equal(ok.status, 200);
  }
});

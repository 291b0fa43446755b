// Routing resilience (SPEC §5): retries on retryable statuses, fallback to the
// next target (across formats too), and never a retry once the first byte has
// reached the client.
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gwRetry;
let gwFallback;
before(async () => {
  mock = await h.startMock({ tag: 'resilience' });
  gwRetry = await h.startKtd({
    targets: [h.openaiTarget(mock, { id: 'only' })],
    config: { providers: { retry: { max_attempts: 3, backoff_ms: 50, max_backoff_ms: 200 } } },
  });
  gwFallback = await h.startKtd({
    targets: [
      // x-mock-status makes every request to this target fail (ktd sends target headers upstream).
      h.anthropicTarget(mock, { id: 'broken-primary', headers: { 'x-mock-status': '503' } }),
      h.openaiTarget(mock, { id: 'healthy-secondary' }),
    ],
    config: { providers: { strategy: 'fallback', retry: { max_attempts: 1 } } },
  });
});
after(h.stopAll);

const chat = (gw, content, extra = {}) => h.request(`${gw.url}/v1/chat/completions`, {
  method: 'POST', json: { model: 'gpt-4o', messages: [{ role: 'user', content }], ...extra },
});

h.test('a 503 then success: retried, the client sees only the success', async () => {
  await mock.reset();
  await mock.next([{ status: 503 }, { status: 502 }]);
  const r = await chat(gwRetry, 'retry me');
  assert.equal(r.status, 200);
  assert.equal(r.json.choices[0].message.content, 'mock reply: retry me');
  const st = await mock.stats();
  assert.equal(st.requests, 3);
  assert.equal(st.errors_injected, 2);
});

h.test('a non-retryable 400 is not retried', async () => {
  await mock.reset();
  const r = await chat(gwRetry, 'bad [[mock:status=400]]');
  assert.equal(r.status, 400);
  assert.equal((await mock.stats()).requests, 1);
});

h.test('retries give up after max_attempts with a 502 in the client format', async () => {
  await mock.reset();
  const r = await chat(gwRetry, 'always failing [[mock:status=503]]');
  assert.ok([502, 503].includes(r.status), `status ${r.status}`);
  assert.equal(typeof r.json.error.message, 'string');
  assert.equal((await mock.stats()).requests, 3);
});

h.test('fallback: a failing anthropic primary falls back to the openai secondary, translated', async () => {
  await mock.reset();
  // The client asks for the primary's model (a model names its targets first).
  const r = await chat(gwFallback, 'fall back please', { model: 'claude-sonnet-4-20250514' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-kt-target'], 'healthy-secondary');
  assert.equal(r.json.choices[0].message.content, 'mock reply: fall back please');
  const recs = await mock.requests();
  assert.deepEqual(recs.map((x) => [x.path, x.status]), [['/v1/messages', 503], ['/v1/chat/completions', 200]]);
});

h.test('no retry after the first byte: a stream cut mid-way ends with an error, upstream called once', async () => {
  await mock.reset();
  let text = null;
  try {
    const r = await h.streamChunks(`${gwRetry.url}/v1/chat/completions`, { json: { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'cut me [[mock:reset_after_events=2]]' }] } });
    assert.equal(r.status, 200);
    text = r.text;
  } catch (e) { /* the connection may be cut instead */ }
  if (text !== null) assert.match(text, /"error"/);
  assert.equal((await mock.stats()).requests, 1);
});

// The mock upstream's wire shapes are what the official SDKs parse: every test
// here points an SDK straight at the mock (no ktd), so a failure elsewhere in
// the e2e suite is ktd's, not the mock's. Also covers fault injection and
// introspection, which the other tests rely on.
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let oa;
let an;
before(async () => {
  mock = await h.startMock({ tag: 'selftest' });
  oa = h.openaiClient(mock.url);
  an = h.anthropicClient(mock.url);
});
after(h.stopAll);

const TOOLS_OA = [{ type: 'function', function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string' } }, required: ['location'] } } }];
const TOOLS_AN = [{ name: 'get_weather', description: 'weather', input_schema: { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string' } }, required: ['location'] } }];

h.test('openai sdk parses a chat completion with usage', async () => {
  const r = await oa.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello there mock' }] });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.choices[0].message.content, 'mock reply: hello there mock');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.usage.prompt_tokens, 3);
  assert.equal(r.usage.completion_tokens, 5);
  assert.equal(r.usage.total_tokens, 8);
  assert.equal(r.model, 'gpt-4o');
});

h.test('openai sdk streams deltas, finish_reason and the usage chunk', async () => {
  const s = await oa.chat.completions.create({
    model: 'gpt-4o', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'stream me please [[mock:events=6]]' }],
  });
  let text = '';
  let finish = null;
  let usage = null;
  let n = 0;
  for await (const c of s) {
    n++;
    if (c.choices.length) {
      text += c.choices[0].delta.content || '';
      if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
    }
    if (c.usage) usage = c.usage;
  }
  assert.equal(text, 'mock reply: stream me please');
  assert.equal(finish, 'stop');
  assert.equal(usage.prompt_tokens, 4);
  assert.equal(n, 1 + 6 + 1 + 1); // role, 6 deltas, finish, usage
  const last = (await mock.requests('/v1/chat')).pop();
  assert.equal(last.outcome, 'completed');
});

h.test('openai sdk stream helper assembles a streamed tool call', async () => {
  const s = oa.chat.completions.stream({
    model: 'gpt-4o', tools: TOOLS_OA, messages: [{ role: 'user', content: 'weather? [[tool]]' }],
  });
  const final = await s.finalChatCompletion();
  const tc = final.choices[0].message.tool_calls[0];
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  assert.equal(tc.function.name, 'get_weather');
  assert.match(tc.id, /^call_/);
  assert.deepEqual(JSON.parse(tc.function.arguments), { location: 'Paris', unit: 'celsius' });
});

h.test('openai tool round trip: a tool result gets a text reply', async () => {
  const msgs = [{ role: 'user', content: 'weather? [[tool]]' }];
  const r1 = await oa.chat.completions.create({ model: 'gpt-4o', tools: TOOLS_OA, messages: msgs });
  const tc = r1.choices[0].message.tool_calls[0];
  assert.equal(r1.choices[0].message.content, null);
  msgs.push(r1.choices[0].message, { role: 'tool', tool_call_id: tc.id, content: 'sunny 21C' });
  const r2 = await oa.chat.completions.create({ model: 'gpt-4o', tools: TOOLS_OA, messages: msgs });
  assert.equal(r2.choices[0].message.content, 'mock reply: tool result: sunny 21C');
});

h.test('anthropic sdk parses a message and sends its own auth headers', async () => {
  await mock.reset();
  const r = await an.messages.create({ model: 'claude-sonnet-4-20250514', max_tokens: 100, system: 'be brief', messages: [{ role: 'user', content: 'hello anthropic' }] });
  assert.equal(r.type, 'message');
  assert.match(r.id, /^msg_01/);
  assert.equal(r.content[0].text, 'mock reply: hello anthropic');
  assert.equal(r.stop_reason, 'end_turn');
  assert.equal(r.usage.input_tokens, 4);
  assert.equal(r.usage.output_tokens, 4);
  const [rec] = await mock.requests('/v1/messages');
  assert.ok(rec.headers['anthropic-version']);
  assert.equal(rec.headers.authorization || rec.headers['x-api-key'] ? 'auth' : 'none', 'auth');
  assert.equal(rec.body.max_tokens, 100);
});

h.test('anthropic sdk messages.stream yields text and the final message', async () => {
  const s = an.messages.stream({ model: 'claude-sonnet-4-20250514', max_tokens: 100, messages: [{ role: 'user', content: 'stream anthropic [[mock:events=5]]' }] });
  const deltas = [];
  s.on('text', (t) => deltas.push(t));
  const m = await s.finalMessage();
  assert.equal(deltas.length, 5);
  assert.equal(deltas.join(''), 'mock reply: stream anthropic');
  assert.equal(m.content[0].text, 'mock reply: stream anthropic');
  assert.equal(m.stop_reason, 'end_turn');
  assert.equal(m.usage.input_tokens, 3);
  assert.equal(m.usage.output_tokens, 4);
});

h.test('anthropic raw stream has the full event sequence', async () => {
  const r = await h.request(`${mock.url}/v1/messages`, {
    method: 'POST', headers: { 'anthropic-version': '2023-06-01', 'x-api-key': 'k' },
    json: { model: 'm', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'seq' }] },
  });
  const types = h.parseSse(r.text).map((e) => e.event);
  assert.deepEqual(types, ['message_start', 'content_block_start', 'ping', 'content_block_delta', 'content_block_delta',
    'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
});

h.test('anthropic sdk streams a tool_use block with parsed input, and thinking', async () => {
  const s = an.messages.stream({
    model: 'claude-sonnet-4-20250514', max_tokens: 2000, tools: TOOLS_AN,
    thinking: { type: 'enabled', budget_tokens: 1024 },
    messages: [{ role: 'user', content: 'use the tool [[tool]]' }],
  });
  const m = await s.finalMessage();
  assert.equal(m.stop_reason, 'tool_use');
  assert.equal(m.content[0].type, 'thinking');
  assert.equal(m.content[0].thinking, 'mock thinking about: use the tool [[tool]]');
  assert.ok(m.content[0].signature.startsWith('sig_'));
  assert.equal(m.content[1].type, 'tool_use');
  assert.equal(m.content[1].name, 'get_weather');
  assert.deepEqual(m.content[1].input, { location: 'Paris', unit: 'celsius' });
});

h.test('anthropic tool round trip and image counting', async () => {
  const msgs = [{ role: 'user', content: [{ type: 'text', text: 'what is it' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }] }];
  const r0 = await an.messages.create({ model: 'c', max_tokens: 10, messages: msgs });
  assert.equal(r0.content[0].text, 'mock reply: what is it [images:1]');
  const m2 = [{ role: 'user', content: 'weather [[tool]]' }];
  const r1 = await an.messages.create({ model: 'c', max_tokens: 10, tools: TOOLS_AN, messages: m2 });
  const tu = r1.content[0];
  assert.equal(tu.type, 'tool_use');
  m2.push({ role: 'assistant', content: r1.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: 'rainy' }] });
  const r2 = await an.messages.create({ model: 'c', max_tokens: 10, tools: TOOLS_AN, messages: m2 });
  assert.equal(r2.content[0].text, 'mock reply: tool result: rainy');
});

h.test('injected status gives a provider-shaped error the SDKs understand', async () => {
  await assert.rejects(
    an.messages.create({ model: 'c', max_tokens: 10, messages: [{ role: 'user', content: 'x [[mock:status=529]]' }] }),
    (e) => e.status === 529 && e.error.type === 'error' && e.error.error.type === 'overloaded_error',
  );
  await assert.rejects(
    oa.chat.completions.create({ model: 'g', messages: [{ role: 'user', content: 'x [[mock:status=429,retry_after=7]]' }] }),
    (e) => e.status === 429 && e.code === 'rate_limit_exceeded' && e.headers.get('retry-after') === '7',
  );
  const r = await h.request(`${mock.url}/v1/chat/completions`, { method: 'POST', headers: { 'x-mock-status': '500' }, json: { model: 'g', messages: [] } });
  assert.equal(r.status, 500);
  assert.equal(r.json.error.type, 'server_error');
});

h.test('control api queues behaviours for the next requests, then resets', async () => {
  await mock.reset();
  await mock.next([{ status: 503 }, 'status=502']);
  const body = { model: 'g', messages: [{ role: 'user', content: 'q' }] };
  const url = `${mock.url}/v1/chat/completions`;
  assert.equal((await h.request(url, { method: 'POST', json: body })).status, 503);
  assert.equal((await h.request(url, { method: 'POST', json: body })).status, 502);
  assert.equal((await h.request(url, { method: 'POST', json: body })).status, 200);
  const st = await mock.stats();
  assert.equal(st.requests, 3);
  assert.equal(st.errors_injected, 2);
  assert.equal(st.by_status['200'], 1);
});

h.test('reset_after_events and malformed_sse break the stream for the SDK', async () => {
  await mock.reset();
  await assert.rejects(async () => {
    const s = await oa.chat.completions.create({ model: 'g', stream: true, messages: [{ role: 'user', content: 'a b c [[mock:reset_after_events=2]]' }] });
    for await (const _ of s) { /* drain */ }
  });
  await assert.rejects(async () => {
    const s = an.messages.stream({ model: 'c', max_tokens: 5, messages: [{ role: 'user', content: 'a b [[mock:malformed_sse]]' }] });
    await s.finalMessage();
  });
  const recs = await mock.requests();
  assert.equal(recs[0].outcome, 'reset');
  assert.equal(recs[0].events_sent, 2);
});

h.test('hang never answers and the mock records the client giving up', async () => {
  await mock.reset();
  const t0 = Date.now();
  await assert.rejects(h.request(`${mock.url}/v1/messages`, { method: 'POST', timeoutMs: 300, headers: { 'x-mock-hang': '1' }, json: { model: 'c', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] } }));
  assert.ok(Date.now() - t0 >= 290);
  await h.waitFor(async () => (await mock.requests())[0].outcome === 'client_closed', { what: 'client_closed' });
});

h.test('event_interval_ms paces events and delay_headers_ms delays headers', async () => {
  const t0 = Date.now();
  const r = await h.streamChunks(`${mock.url}/v1/chat/completions`, {
    headers: { 'x-mock': 'event_interval_ms=100,delay_headers_ms=200' },
    json: { model: 'g', stream: true, messages: [{ role: 'user', content: 'pace' }] },
  });
  const elapsed = Date.now() - t0;
  assert.equal(r.status, 200);
  assert.ok(elapsed >= 200 + 6 * 100, `elapsed ${elapsed}`);
  assert.ok(r.chunks.length >= 4, `chunks ${r.chunks.length}`);
  assert.ok(r.text.endsWith('data: [DONE]\n\n'));
});

h.test('models in both shapes and health', async () => {
  const ms = await oa.models.list();
  const ids = [];
  for await (const m of ms) ids.push(m.id);
  assert.ok(ids.includes('gpt-4o'));
  const am = await an.models.list();
  assert.ok(am.data.some((m) => m.type === 'model' && m.id.startsWith('claude')));
  const hz = await h.request(`${mock.url}/health`);
  assert.equal(hz.status, 200);
});

h.test('requests the real APIs refuse get a 400 in that API format', async () => {
  const r1 = await h.request(`${mock.url}/v1/messages`, { method: 'POST', json: { model: 'c', messages: [{ role: 'user', content: 'no max_tokens' }] } });
  assert.equal(r1.status, 400);
  assert.equal(r1.json.type, 'error');
  assert.equal(r1.json.error.type, 'invalid_request_error');
  const r2 = await h.request(`${mock.url}/v1/messages`, { method: 'POST', json: { model: 'c', max_tokens: 5, messages: [{ role: 'system', content: 'x' }] } });
  assert.equal(r2.status, 400);
  const r3 = await h.request(`${mock.url}/v1/chat/completions`, { method: 'POST', json: { model: 'g', messages: 'nope' } });
  assert.equal(r3.status, 400);
  assert.equal(r3.json.error.type, 'invalid_request_error');
  const r4 = await h.request(`${mock.url}/v1/chat/completions`, { method: 'POST', body: '{broken' });
  assert.equal(r4.status, 400);
});

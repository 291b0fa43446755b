// Same-format proxying: an OpenAI client through ktd to an openai-format target,
// an Anthropic client to an anthropic-format target; JSON and streaming, with
// curl and with the official SDKs. What the client sees must be what the mock
// sent, and streams must be relayed event by event, not buffered.
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gwO; // openai-format target
let gwA; // anthropic-format target
before(async () => {
  mock = await h.startMock({ tag: 'same' });
  gwO = await h.startKtd({ targets: [h.openaiTarget(mock)] });
  gwA = await h.startKtd({ targets: [h.anthropicTarget(mock)] });
});
after(h.stopAll);

async function lastUpstream(pathPrefix) {
  const recs = await mock.requests(pathPrefix);
  assert.ok(recs.length, `mock saw no request on ${pathPrefix}`);
  return recs[recs.length - 1];
}

h.test('openai sdk → openai target: chat completion equals what the mock sent', async () => {
  const r = await gwO.openai().chat.completions.create({
    model: 'gpt-4o', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello through ktd' }],
  });
  const up = await lastUpstream('/v1/chat/completions');
  assert.equal(up.body.messages[1].content, 'hello through ktd');
  assert.equal(r.choices[0].message.content, 'mock reply: hello through ktd');
  assert.equal(r.choices[0].message.content, up.response.choices[0].message.content);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.deepEqual(
    { p: r.usage.prompt_tokens, c: r.usage.completion_tokens, t: r.usage.total_tokens },
    { p: up.response.usage.prompt_tokens, c: up.response.usage.completion_tokens, t: up.response.usage.total_tokens },
  );
});

h.test('openai sdk → openai target: streaming with include_usage', async () => {
  const s = await gwO.openai().chat.completions.create({
    model: 'gpt-4o', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'stream through ktd [[mock:events=5]]' }],
  });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const c of s) {
    if (c.choices.length) {
      text += c.choices[0].delta.content || '';
      finish = c.choices[0].finish_reason || finish;
    }
    if (c.usage) usage = c.usage;
  }
  const up = await lastUpstream('/v1/chat/completions');
  assert.equal(up.body.stream, true);
  assert.equal(text, up.response.choices[0].message.content);
  assert.equal(finish, 'stop');
  assert.ok(usage, 'no usage chunk');
  assert.equal(usage.prompt_tokens, up.response.usage.prompt_tokens);
  assert.equal(usage.completion_tokens, up.response.usage.completion_tokens);
  assert.equal(up.outcome, 'completed');
});

h.test('anthropic sdk → anthropic target: message equals what the mock sent', async () => {
  const r = await gwA.anthropic().messages.create({
    model: 'claude-sonnet-4-20250514', max_tokens: 64, system: 'be brief',
    messages: [{ role: 'user', content: 'hello anthropic through ktd' }],
  });
  const up = await lastUpstream('/v1/messages');
  assert.equal(r.content[0].text, 'mock reply: hello anthropic through ktd');
  assert.equal(r.content[0].text, up.response.content[0].text);
  assert.equal(r.id, up.response.id);
  assert.equal(r.stop_reason, 'end_turn');
  assert.equal(r.usage.input_tokens, up.response.usage.input_tokens);
  assert.equal(r.usage.output_tokens, up.response.usage.output_tokens);
});

h.test('anthropic sdk → anthropic target: messages.stream with tools and thinking', async () => {
  const tools = [{ name: 'get_weather', description: 'w', input_schema: { type: 'object', properties: { location: { type: 'string' } } } }];
  const s = gwA.anthropic().messages.stream({
    model: 'claude-sonnet-4-20250514', max_tokens: 2048, tools, thinking: { type: 'enabled', budget_tokens: 1024 },
    messages: [{ role: 'user', content: 'weather please [[tool]]' }],
  });
  const m = await s.finalMessage();
  const up = await lastUpstream('/v1/messages');
  assert.equal(m.stop_reason, 'tool_use');
  assert.deepEqual(m.content.map((b) => b.type), ['thinking', 'tool_use']);
  assert.equal(m.content[0].thinking, up.response.content[0].thinking);
  assert.equal(m.content[1].id, up.response.content[1].id);
  assert.deepEqual(m.content[1].input, up.response.content[1].input);
  assert.equal(m.usage.output_tokens, up.response.usage.output_tokens);
});

h.test('anthropic sdk → anthropic target: text stream deltas arrive one by one', async () => {
  const s = gwA.anthropic().messages.stream({
    model: 'claude-sonnet-4-20250514', max_tokens: 64,
    messages: [{ role: 'user', content: 'five deltas please [[mock:events=5]]' }],
  });
  const deltas = [];
  s.on('text', (t) => deltas.push(t));
  const m = await s.finalMessage();
  assert.equal(deltas.length, 5);
  assert.equal(deltas.join(''), m.content[0].text);
  assert.equal(m.content[0].text, 'mock reply: five deltas please');
});

h.test('curl → openai target: JSON and SSE ending in [DONE]', async () => {
  const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'curl json' }] });
  const r1 = h.parseCurlI((await h.curl(['-i', '-X', 'POST', `${gwO.url}/v1/chat/completions`,
    '-H', 'content-type: application/json', '-H', `authorization: Bearer ${h.CLIENT_KEY}`, '--data-binary', '@-'], { input: body })).stdout);
  assert.equal(r1.status, 200);
  assert.match(r1.headers['content-type'], /application\/json/);
  assert.equal(JSON.parse(r1.body).choices[0].message.content, 'mock reply: curl json');

  const sbody = JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'curl stream' }] });
  const r2 = h.parseCurlI((await h.curl(['-i', '-X', 'POST', `${gwO.url}/v1/chat/completions`,
    '-H', 'content-type: application/json', '--data-binary', '@-'], { input: sbody })).stdout);
  assert.equal(r2.status, 200);
  assert.match(r2.headers['content-type'], /text\/event-stream/);
  const ev = h.parseSse(r2.body);
  assert.equal(ev[ev.length - 1].data, '[DONE]');
  const text = ev.slice(0, -1).map((e) => JSON.parse(e.data)).map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join('');
  assert.equal(text, 'mock reply: curl stream');
});

h.test('curl → anthropic target: JSON and the native SSE event sequence', async () => {
  const hdr = ['-H', 'content-type: application/json', '-H', 'anthropic-version: 2023-06-01', '-H', `x-api-key: ${h.CLIENT_KEY}`];
  const body = JSON.stringify({ model: 'claude-sonnet-4-20250514', max_tokens: 20, messages: [{ role: 'user', content: 'curl json' }] });
  const r1 = h.parseCurlI((await h.curl(['-i', '-X', 'POST', `${gwA.url}/v1/messages`, ...hdr, '--data-binary', '@-'], { input: body })).stdout);
  assert.equal(r1.status, 200);
  assert.equal(JSON.parse(r1.body).content[0].text, 'mock reply: curl json');

  const sbody = JSON.stringify({ model: 'claude-sonnet-4-20250514', max_tokens: 20, stream: true, messages: [{ role: 'user', content: 'curl stream' }] });
  const r2 = h.parseCurlI((await h.curl(['-i', '-X', 'POST', `${gwA.url}/v1/messages`, ...hdr, '--data-binary', '@-'], { input: sbody })).stdout);
  assert.equal(r2.status, 200);
  assert.match(r2.headers['content-type'], /text\/event-stream/);
  const ev = h.parseSse(r2.body);
  assert.deepEqual(ev.map((e) => e.event), ['message_start', 'content_block_start', 'ping', 'content_block_delta',
    'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
  for (const e of ev) assert.equal(JSON.parse(e.data).type, e.event);
  const text = ev.filter((e) => e.event === 'content_block_delta').map((e) => JSON.parse(e.data).delta.text).join('');
  assert.equal(text, 'mock reply: curl stream');
});

// The first event must reach the client long before the mock sends its last one.
async function assertRelayedIncrementally(gw, path, json, headers) {
  const t0 = Date.now();
  const r = await h.streamChunks(`${gw.url}${path}`, { json, headers });
  assert.equal(r.status, 200);
  const up = await lastUpstream(path);
  assert.equal(up.outcome, 'completed');
  const first = r.chunks[0].t;
  assert.ok(up.end_ms - first >= 600, `first chunk at +${first - t0} ms, mock finished at +${up.end_ms - t0} ms: stream was buffered`);
  assert.ok(r.chunks.length >= 4, `only ${r.chunks.length} network chunks`);
  return r;
}

h.test('openai stream is relayed event by event (event_interval_ms=250)', async () => {
  const r = await assertRelayedIncrementally(gwO, '/v1/chat/completions',
    { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'slow [[mock:event_interval_ms=250]]' }] });
  assert.ok(r.text.endsWith('data: [DONE]\n\n'));
});

h.test('anthropic stream is relayed event by event (event_interval_ms=250)', async () => {
  const r = await assertRelayedIncrementally(gwA, '/v1/messages',
    { model: 'claude-sonnet-4-20250514', max_tokens: 20, stream: true, messages: [{ role: 'user', content: 'slow [[mock:event_interval_ms=250]]' }] },
    { 'anthropic-version': '2023-06-01' });
  assert.match(r.text, /event: message_stop/);
});

// Cross-format translation through ktd (SPEC §3): the OpenAI SDK against an
// anthropic-format target and the Anthropic SDK against an openai-format
// target. The text, tool calls and usage each SDK sees must equal what the mock
// sent in the other format, and what reached the mock must be a correct
// request in the target's format.
//
// PENDING until translation is wired (listed in KT_E2E_PENDING in mk/e2e.am).
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gwToAnthropic; // clients speak OpenAI, the target speaks Anthropic
let gwToOpenai;    // clients speak Anthropic, the target speaks OpenAI
before(async () => {
  mock = await h.startMock({ tag: 'translation' });
  gwToAnthropic = await h.startKtd({ targets: [h.anthropicTarget(mock, { id: 'to-anthropic' })] });
  gwToOpenai = await h.startKtd({ targets: [h.openaiTarget(mock, { id: 'to-openai' })] });
});
after(h.stopAll);

const OA_TOOLS = [{ type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['location'] } } }];
const AN_TOOLS = [{ name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string' } }, required: ['location'] } }];
// A 1x1 PNG.
const PNG_B64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

async function last(path) {
  const recs = await mock.requests(path);
  assert.ok(recs.length, `nothing reached the mock on ${path}`);
  return recs[recs.length - 1];
}

// ---- OpenAI client → anthropic target ---------------------------------------

h.test('openai sdk → anthropic target: chat completion', async () => {
  const r = await gwToAnthropic.openai().chat.completions.create({
    model: 'claude-sonnet-4-20250514', max_tokens: 100,
    messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'translate me please' }],
  });
  const up = await last('/v1/messages');
  // The upstream request is a valid Anthropic request.
  assert.equal(up.headers['x-api-key'], h.KEYS.KT_E2E_ANTHROPIC_KEY);
  assert.ok(up.headers['anthropic-version']);
  assert.ok(up.body.max_tokens > 0);
  assert.match(JSON.stringify(up.body.system), /be brief/);
  assert.ok(up.body.messages.every((m) => m.role !== 'system'));
  assert.equal(up.body.messages[up.body.messages.length - 1].role, 'user');
  // The client sees what the mock sent.
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, up.response.content[0].text);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.usage.prompt_tokens, up.response.usage.input_tokens);
  assert.equal(r.usage.completion_tokens, up.response.usage.output_tokens);
  assert.equal(r.usage.total_tokens, up.response.usage.input_tokens + up.response.usage.output_tokens);
});

h.test('openai sdk → anthropic target: streaming with usage', async () => {
  const s = await gwToAnthropic.openai().chat.completions.create({
    model: 'claude-sonnet-4-20250514', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'stream translated [[mock:events=5]]' }],
  });
  let text = '';
  let deltas = 0;
  let finish = null;
  let usage = null;
  for await (const c of s) {
    if (c.choices.length) {
      if (c.choices[0].delta.content) { text += c.choices[0].delta.content; deltas++; }
      finish = c.choices[0].finish_reason || finish;
    }
    if (c.usage) usage = c.usage;
  }
  const up = await last('/v1/messages');
  assert.equal(up.body.stream, true);
  assert.equal(text, up.response.content[0].text);
  assert.ok(deltas >= 5, `${deltas} content deltas; the stream was buffered`);
  assert.equal(finish, 'stop');
  assert.ok(usage, 'no usage chunk despite include_usage');
  assert.equal(usage.prompt_tokens, up.response.usage.input_tokens);
  assert.equal(usage.completion_tokens, up.response.usage.output_tokens);
});

h.test('openai sdk → anthropic target: full tool round trip', async () => {
  const client = gwToAnthropic.openai();
  const msgs = [{ role: 'user', content: 'what is the weather in Paris? [[tool]]' }];
  const r1 = await client.chat.completions.create({ model: 'claude-sonnet-4-20250514', tools: OA_TOOLS, messages: msgs });
  const up1 = await last('/v1/messages');
  assert.equal(up1.body.tools[0].name, 'get_weather');
  assert.deepEqual(up1.body.tools[0].input_schema, OA_TOOLS[0].function.parameters);
  const sent = up1.response.content.find((b) => b.type === 'tool_use');
  assert.equal(r1.choices[0].finish_reason, 'tool_calls');
  const tc = r1.choices[0].message.tool_calls[0];
  assert.equal(tc.type, 'function');
  assert.equal(tc.id, sent.id);
  assert.equal(tc.function.name, sent.name);
  assert.deepEqual(JSON.parse(tc.function.arguments), sent.input);

  msgs.push(r1.choices[0].message, { role: 'tool', tool_call_id: tc.id, content: 'sunny, 21C' });
  const r2 = await client.chat.completions.create({ model: 'claude-sonnet-4-20250514', tools: OA_TOOLS, messages: msgs });
  const up2 = await last('/v1/messages');
  const asst = up2.body.messages.find((m) => m.role === 'assistant');
  assert.ok(asst.content.some((b) => b.type === 'tool_use' && b.id === sent.id && b.name === 'get_weather'));
  const lastMsg = up2.body.messages[up2.body.messages.length - 1];
  assert.equal(lastMsg.role, 'user');
  const tr = lastMsg.content.find((b) => b.type === 'tool_result');
  assert.equal(tr.tool_use_id, sent.id);
  assert.equal(r2.choices[0].message.content, 'mock reply: tool result: sunny, 21C');
  assert.equal(r2.choices[0].finish_reason, 'stop');
});

h.test('openai sdk → anthropic target: streamed tool call', async () => {
  const s = gwToAnthropic.openai().chat.completions.stream({ model: 'claude-sonnet-4-20250514', tools: OA_TOOLS, messages: [{ role: 'user', content: 'weather [[tool]]' }] });
  const final = await s.finalChatCompletion();
  const up = await last('/v1/messages');
  const sent = up.response.content.find((b) => b.type === 'tool_use');
  const tc = final.choices[0].message.tool_calls[0];
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  assert.equal(tc.id, sent.id);
  assert.equal(tc.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(tc.function.arguments), sent.input);
});

h.test('openai sdk → anthropic target: an image (data URL) becomes an Anthropic image block', async () => {
  const r = await gwToAnthropic.openai().chat.completions.create({
    model: 'claude-sonnet-4-20250514',
    messages: [{ role: 'user', content: [{ type: 'text', text: 'describe this' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG_B64}` } }] }],
  });
  const up = await last('/v1/messages');
  const img = up.body.messages[0].content.find((b) => b.type === 'image');
  assert.ok(img, 'no image block upstream');
  assert.deepEqual(img.source, { type: 'base64', media_type: 'image/png', data: PNG_B64 });
  assert.equal(r.choices[0].message.content, 'mock reply: describe this [images:1]');
});

h.test('openai sdk → anthropic target: upstream error comes back OpenAI-shaped', async () => {
  await assert.rejects(
    gwToAnthropic.openai().chat.completions.create({ model: 'claude-sonnet-4-20250514', messages: [{ role: 'user', content: 'x [[mock:status=400]]' }] }),
    (e) => e.status === 400 && typeof e.error.message === 'string',
  );
});

// ---- Anthropic client → openai target ------------------------------------------

h.test('anthropic sdk → openai target: messages.create', async () => {
  const r = await gwToOpenai.anthropic().messages.create({
    model: 'gpt-4o', max_tokens: 64, system: 'be brief',
    messages: [{ role: 'user', content: 'hello from anthropic sdk' }],
  });
  const up = await last('/v1/chat/completions');
  assert.equal(up.headers.authorization, `Bearer ${h.KEYS.KT_E2E_OPENAI_KEY}`);
  assert.equal(up.body.messages[0].role, 'system');
  assert.match(JSON.stringify(up.body.messages[0].content), /be brief/);
  assert.equal(r.type, 'message');
  assert.equal(r.role, 'assistant');
  assert.equal(r.content[0].type, 'text');
  assert.equal(r.content[0].text, up.response.choices[0].message.content);
  assert.equal(r.stop_reason, 'end_turn');
  assert.equal(r.usage.input_tokens, up.response.usage.prompt_tokens);
  assert.equal(r.usage.output_tokens, up.response.usage.completion_tokens);
});

h.test('anthropic sdk → openai target: messages.stream', async () => {
  const s = gwToOpenai.anthropic().messages.stream({
    model: 'gpt-4o', max_tokens: 64, messages: [{ role: 'user', content: 'stream to openai [[mock:events=5]]' }],
  });
  const deltas = [];
  s.on('text', (t) => deltas.push(t));
  const m = await s.finalMessage();
  const up = await last('/v1/chat/completions');
  assert.equal(up.body.stream, true);
  assert.equal(m.content[0].text, up.response.choices[0].message.content);
  assert.equal(deltas.join(''), m.content[0].text);
  assert.ok(deltas.length >= 5, `${deltas.length} text deltas; the stream was buffered`);
  assert.equal(m.stop_reason, 'end_turn');
  assert.equal(m.usage.output_tokens, up.response.usage.completion_tokens);
});

h.test('anthropic sdk → openai target: tools, streamed and not, and the tool result', async () => {
  const client = gwToOpenai.anthropic();
  const msgs = [{ role: 'user', content: 'weather please [[tool]]' }];
  const r1 = await client.messages.create({ model: 'gpt-4o', max_tokens: 64, tools: AN_TOOLS, messages: msgs });
  const up1 = await last('/v1/chat/completions');
  assert.equal(up1.body.tools[0].type, 'function');
  assert.equal(up1.body.tools[0].function.name, 'get_weather');
  assert.deepEqual(up1.body.tools[0].function.parameters, AN_TOOLS[0].input_schema);
  const sent = up1.response.choices[0].message.tool_calls[0];
  assert.equal(r1.stop_reason, 'tool_use');
  const tu = r1.content.find((b) => b.type === 'tool_use');
  assert.equal(tu.id, sent.id);
  assert.equal(tu.name, 'get_weather');
  assert.deepEqual(tu.input, JSON.parse(sent.function.arguments));

  msgs.push({ role: 'assistant', content: r1.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: 'cloudy' }] });
  const r2 = await client.messages.create({ model: 'gpt-4o', max_tokens: 64, tools: AN_TOOLS, messages: msgs });
  const up2 = await last('/v1/chat/completions');
  const toolMsg = up2.body.messages.find((m) => m.role === 'tool');
  assert.equal(toolMsg.tool_call_id, sent.id);
  assert.equal(r2.content[0].text, 'mock reply: tool result: cloudy');

  const s = client.messages.stream({ model: 'gpt-4o', max_tokens: 64, tools: AN_TOOLS, messages: [{ role: 'user', content: 'again [[tool]]' }] });
  const m = await s.finalMessage();
  const up3 = await last('/v1/chat/completions');
  const sent3 = up3.response.choices[0].message.tool_calls[0];
  assert.equal(m.stop_reason, 'tool_use');
  const tu3 = m.content.find((b) => b.type === 'tool_use');
  assert.equal(tu3.id, sent3.id);
  assert.deepEqual(tu3.input, JSON.parse(sent3.function.arguments));
});

h.test('anthropic sdk → openai target: an image block becomes an image_url part', async () => {
  const r = await gwToOpenai.anthropic().messages.create({
    model: 'gpt-4o', max_tokens: 64,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG_B64 } }] }],
  });
  const up = await last('/v1/chat/completions');
  const part = up.body.messages[up.body.messages.length - 1].content.find((p) => p.type === 'image_url');
  assert.ok(part, 'no image_url part upstream');
  assert.equal(part.image_url.url, `data:image/png;base64,${PNG_B64}`);
  assert.equal(r.content[0].text, 'mock reply: what is this [images:1]');
});

h.test('anthropic sdk → openai target: upstream 429 comes back Anthropic-shaped', async () => {
  await assert.rejects(
    gwToOpenai.anthropic().messages.create({ model: 'gpt-4o', max_tokens: 5, messages: [{ role: 'user', content: 'x [[mock:status=429]]' }] }),
    (e) => e.status >= 429 && e.error && e.error.type === 'error' && typeof e.error.error.type === 'string',
  );
});

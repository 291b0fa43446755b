// Every audit record carries token usage, streams included: for an OpenAI
// stream whose client did not ask for usage, ktd asks the provider
// (stream_options.include_usage) and keeps the extra usage chunk from the
// client, whose stream looks exactly as it asked.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'stream-usage' });
  gw = await h.startKtd({ targets: [h.openaiTarget(mock, { id: 'oa', pricing: { prompt: 2.5, completion: 10 } })] });
});
after(h.stopAll);

h.test('an OpenAI stream without include_usage is audited with its tokens and cost', async () => {
  await mock.reset();
  const body = { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'count my tokens please' }] };
  const r = await h.curl([`${gw.url}/v1/chat/completions`, '-H', 'content-type: application/json',
    '-H', 'x-request-id: su-1', '-d', JSON.stringify(body)]);
  const events = h.parseSse(r.stdout).map((e) => e.data).filter((d) => d && d !== '[DONE]').map(JSON.parse);
  assert.ok(events.length > 2);
  assert.ok(events.every((e) => e.choices.length > 0), 'no usage-only chunk reaches the client');
  assert.match(r.stdout, /data: \[DONE\]/);
  const [sent] = await mock.requests();
  assert.equal(sent.body.stream_options.include_usage, true);
  await h.waitFor(() => {
    try { return fs.readFileSync(path.join(gw.dir, 'audit.log'), 'utf8').includes('"su-1"'); } catch (e) { return false; }
  }, { what: 'the audit record' });
  const rec = fs.readFileSync(path.join(gw.dir, 'audit.log'), 'utf8').split('\n').filter(Boolean)
    .map(JSON.parse).find((x) => x.request_id === 'su-1');
  assert.ok(rec.usage.input > 0 && rec.usage.output > 0, JSON.stringify(rec.usage));
  assert.ok(rec.cost_usd > 0);
});

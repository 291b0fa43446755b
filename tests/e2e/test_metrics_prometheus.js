// GET /metrics answers Prometheus text format, and its counters move with the
// traffic: requests, responses by status class, streams, upstream errors and
// the tokens the upstream reported.
'use strict';

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const h = require('./lib/harness');

let mock;
let gw;
before(async () => {
  mock = await h.startMock({ tag: 'metrics' });
  // One worker: the counters are per worker.
  gw = await h.startKtd({ targets: [h.openaiTarget(mock)], workers: 1 });
});
after(h.stopAll);

const LINE_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? [-+]?([0-9.]+([eE][-+]?[0-9]+)?|NaN|\+Inf|-Inf)( [0-9]+)?$/;

async function scrape() {
  const r = await h.request(`${gw.url}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/plain/);
  const m = new Map();
  for (const line of r.text.split('\n')) {
    if (!line || line.startsWith('#')) {
      if (line.startsWith('# TYPE')) assert.match(line, /^# TYPE \S+ (counter|gauge|histogram|summary|untyped)$/);
      continue;
    }
    assert.match(line, LINE_RE, `not Prometheus text: ${line}`);
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i).replace(/pack="[^"]*",?/, '').replace('{}', ''), Number(line.slice(i + 1)));
  }
  return m;
}

h.test('/metrics is Prometheus text and its counters follow the traffic', async () => {
  await mock.reset();
  const m0 = await scrape();
  assert.ok([...m0.keys()].some((k) => k.startsWith('kt_requests_total')), [...m0.keys()].join(' '));
  const body = (content, extra = {}) => ({ method: 'POST', json: { model: 'gpt-4o', messages: [{ role: 'user', content }], ...extra } });
  assert.equal((await h.request(`${gw.url}/v1/chat/completions`, body('one two three'))).status, 200);
  assert.equal((await h.request(`${gw.url}/v1/chat/completions`, body('four five'))).status, 200);
  const bad = await h.request(`${gw.url}/v1/chat/completions`, body('boom [[mock:status=500]]'));
  assert.ok(bad.status >= 500);
  const st = await h.request(`${gw.url}/v1/chat/completions`, body('streamed', { stream: true, stream_options: { include_usage: true } }));
  assert.equal(st.status, 200);
  await h.sleep(100);
  const m1 = await scrape();
  const d = (k) => (m1.get(k) || 0) - (m0.get(k) || 0);
  assert.ok(d('kt_requests_total') >= 4, `requests +${d('kt_requests_total')}`);
  assert.equal(d('kt_responses_total{class="5xx"}'), 1);
  assert.ok(d('kt_responses_total{class="2xx"}') >= 3);
  assert.equal(d('kt_stream_requests_total'), 1);
  const ups = (await mock.requests('/v1/chat/completions')).filter((x) => x.response && x.response.usage);
  const input = ups.reduce((a, x) => a + x.response.usage.prompt_tokens, 0);
  const output = ups.reduce((a, x) => a + x.response.usage.completion_tokens, 0);
  assert.equal(d('kt_tokens_total{direction="input"}'), input);
  assert.equal(d('kt_tokens_total{direction="output"}'), output);
});

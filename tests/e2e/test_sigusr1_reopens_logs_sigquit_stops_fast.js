// The remaining master signals (SPEC §1): SIGUSR1 reopens log files (so
// logrotate can move them away), SIGQUIT is a fast stop that does not wait for
// in-flight streams.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { after } = require('node:test');
const h = require('./lib/harness');

after(h.stopAll);

h.test('SIGUSR1: after the log file is moved away, ktd logs into a new file', async () => {
  const mock = await h.startMock({ tag: 'usr1' });
  const gw2 = await h.startKtd({ targets: [h.openaiTarget(mock)], config: (dir) => ({ server: { log: { level: 'debug', file: path.join(dir, 'ktd.log') } } }) });
  const logPath = path.join(gw2.dir, 'ktd.log');
  const chat = () => h.request(`${gw2.url}/v1/chat/completions`, { method: 'POST', json: { model: 'gpt-4o', messages: [{ role: 'user', content: 'log me' }] } });
  assert.equal((await chat()).status, 200);
  await h.waitFor(() => fs.existsSync(logPath) && fs.statSync(logPath).size > 0, { what: 'ktd.log to be written' });
  fs.renameSync(logPath, `${logPath}.1`);
  gw2.signal('SIGUSR1');
  // Every process reopens: the new file appears and gets what is logged next.
  await h.waitFor(async () => {
    await chat();
    return fs.existsSync(logPath) && fs.statSync(logPath).size > 0;
  }, { timeoutMs: 5000, what: 'a new ktd.log after SIGUSR1' });
  // Each process reopens on its own schedule: wait until the new file says
  // the audit process and every worker have, before checking the old one.
  const workers = new Set([...fs.readFileSync(`${logPath}.1`, 'utf8').matchAll(/worker\[(\d+)\]: worker ready/g)].map((m) => m[1]));
  assert.ok(workers.size > 0, 'no worker ready lines in the old log');
  await h.waitFor(() => {
    const text = fs.readFileSync(logPath, 'utf8');
    const reopened = new Set([...text.matchAll(/worker\[(\d+)\]: worker: log reopened/g)].map((m) => m[1]));
    return text.includes('audit: reopened') && [...workers].every((pid) => reopened.has(pid));
  }, { timeoutMs: 5000, what: 'every process to reopen its log' });
  const sizeOld = fs.statSync(`${logPath}.1`).size;
  assert.equal((await chat()).status, 200);
  await h.sleep(200);
  assert.equal(fs.statSync(`${logPath}.1`).size, sizeOld, 'ktd still writes into the moved-away file');
});

h.test('SIGQUIT: fast stop, in-flight streams are not waited for', async () => {
  const mock = await h.startMock({ tag: 'quit' });
  const gw = await h.startKtd({ targets: [h.openaiTarget(mock, { stream_timeout_seconds: 60 })] });
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'very slow [[mock:events=40,event_interval_ms=250]]' }] }),
  });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  await reader.read();
  const t0 = Date.now();
  gw.signal('SIGQUIT');
  const exit = await Promise.race([gw.exited, h.deadline(3000)]);
  assert.ok(exit, 'master still running 3 s after SIGQUIT');
  assert.ok(Date.now() - t0 < 3000);
  await h.waitFor(() => !gw.groupAlive(), { timeoutMs: 2000, what: 'every ktd process to exit' });
  // The stream was cut, not finished.
  let text = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
  } catch (e) { /* cut: expected */ }
  assert.ok(!text.includes('[DONE]'), 'the stream finished: SIGQUIT waited for it');
  const [rec] = await mock.requests('/v1/chat/completions');
  assert.ok(rec.events_sent < 40);
});

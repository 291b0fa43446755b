#!/usr/bin/env node
// mock-upstream.js: a fake AI provider for ktd's end-to-end tests.
//
// Owns: the OpenAI Chat Completions and Anthropic Messages wire shapes (JSON
// and SSE), deterministic replies, fault injection and request introspection.
// Does not own: anything about ktd; tests drive both through tests/e2e/lib.
//
//   node tests/mock/mock-upstream.js [--port N] [--host 127.0.0.1] [--tag NAME]
//   prints "LISTENING <port>" on stdout once ready (port 0 = pick a free one).
//
// Endpoints
//   POST /v1/chat/completions     OpenAI, JSON or SSE (stream, stream_options.include_usage)
//   POST /v1/messages             Anthropic, JSON or SSE (full event sequence)
//   POST /v1/messages/count_tokens
//   GET  /v1/models               OpenAI list, or Anthropic list when anthropic-version is sent
//   GET  /health, /healthz        {"status":"ok"}
//   GET  /__mock/requests         every request received (method, path, headers, body, time,
//                                 outcome, events_sent, and `response`: the message sent back)
//   GET  /__mock/stats            counters
//   POST /__mock/next             JSON list of behaviours for the next N requests
//   POST /__mock/reset            forget requests, counters and queued behaviours
//   POST /__mock/drop_connections close every other open connection (idle keep-alive
//                                 ones included), as a server that restarts would
//
// Behaviours (fault injection), from any of, later ones overriding earlier:
//   1. the next queued behaviour from POST /__mock/next,
//   2. request headers: x-mock: "status=503,retry_after=1" or one header per
//      key: x-mock-status: 503, x-mock-retry-after: 1, x-mock-hang: 1 ...
//   3. directives in the last user text: [[mock:status=503,retry_after=1]]
// Keys: status=N retry_after=S delay_headers_ms=N hang reset_after_events=N
//   malformed_sse event_interval_ms=N events=N text=STR (replaces the reply text)
//   error_type=STR error_message=STR (override the error body)
//   pad=N (append " " and N dots to the reply text: big streams for backpressure tests)
// Streams honour backpressure (the next event waits for 'drain'); requests record
// blocked_count and blocked_ms.
//
// Replies are deterministic: "mock reply: <last user text>" (directives removed,
// " [images:N]" appended when the request carries images), split into `events`
// text deltas (default 4). When the request has tools and the last user text
// contains [[tool]], the reply is a call to the first tool with MOCK_TOOL_ARGS.
// When the last message is a tool result the reply is "mock reply: tool result: <content>".
// Requests the real API would refuse (no model, messages not a list, Anthropic without
// max_tokens or with a system role in messages) get a 400 after any injected fault.
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');

const MOCK_TOOL_ARGS = { location: 'Paris', unit: 'celsius' };
const DEFAULT_EVENTS = 4;

// Error type per status, for each wire format (what the real APIs send).
const ANTHROPIC_ERROR_TYPES = {
  400: 'invalid_request_error', 401: 'authentication_error', 402: 'billing_error',
  403: 'permission_error', 404: 'not_found_error', 413: 'request_too_large',
  429: 'rate_limit_error', 500: 'api_error', 502: 'api_error', 503: 'overloaded_error',
  504: 'timeout_error', 529: 'overloaded_error',
};
const OPENAI_ERROR_TYPES = {
  400: ['invalid_request_error', null], 401: ['invalid_request_error', 'invalid_api_key'],
  403: ['invalid_request_error', 'unsupported_country_region_territory'],
  404: ['invalid_request_error', 'model_not_found'], 413: ['invalid_request_error', null],
  429: ['requests', 'rate_limit_exceeded'], 500: ['server_error', null],
  502: ['server_error', null], 503: ['server_error', null], 504: ['server_error', null],
};

// Keys a behaviour may carry and how to read their values.
const BEHAVIOUR_KEYS = {
  status: 'int', retry_after: 'int', delay_headers_ms: 'int', hang: 'bool',
  reset_after_events: 'int', malformed_sse: 'bool', event_interval_ms: 'int',
  events: 'int', text: 'str', error_type: 'str', error_message: 'str', pad: 'int',
};

function parseArgs(argv) {
  const o = { port: 0, host: '127.0.0.1', tag: 'mock' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') o.port = Number(argv[++i]);
    else if (a === '--host') o.host = argv[++i];
    else if (a === '--tag') o.tag = argv[++i];
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: mock-upstream.js [--port N] [--host H] [--tag NAME]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

function coerce(key, v) {
  const kind = BEHAVIOUR_KEYS[key];
  if (!kind) return undefined;
  if (kind === 'int') { const n = Number(v); return Number.isFinite(n) ? n : undefined; }
  if (kind === 'bool') return v === undefined || v === true || v === '' || v === '1' || v === 'true' || v === 1;
  return String(v);
}

// "status=503,retry_after=1,hang" -> {status:503, retry_after:1, hang:true}
function parseBehaviourString(s) {
  const b = {};
  for (const part of String(s).split(/[,;&\s]+/)) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = (eq < 0 ? part : part.slice(0, eq)).trim().replace(/-/g, '_');
    const v = eq < 0 ? undefined : decodeURIComponent(part.slice(eq + 1).trim());
    const c = coerce(k, v);
    if (c !== undefined) b[k] = c;
  }
  return b;
}

function normaliseBehaviour(obj) {
  if (typeof obj === 'string') return parseBehaviourString(obj);
  const b = {};
  for (const [k0, v] of Object.entries(obj || {})) {
    const k = k0.replace(/-/g, '_');
    const c = coerce(k, v);
    if (c !== undefined) b[k] = c;
  }
  return b;
}

function behaviourFromHeaders(headers) {
  let b = {};
  if (headers['x-mock']) b = parseBehaviourString(headers['x-mock']);
  for (const [h, v] of Object.entries(headers)) {
    if (!h.startsWith('x-mock-')) continue;
    const k = h.slice(7).replace(/-/g, '_');
    const c = coerce(k, v);
    if (c !== undefined) b[k] = c;
  }
  return b;
}

const DIRECTIVE_RE = /\[\[mock:([^\]]*)\]\]/g;

function behaviourFromText(text) {
  let b = {};
  for (const m of text.matchAll(DIRECTIVE_RE)) b = { ...b, ...parseBehaviourString(m[1]) };
  return b;
}

function stripDirectives(text) {
  return text.replace(DIRECTIVE_RE, '').replace(/\s+/g, ' ').trim();
}

// ---- reading the request, both formats -----------------------------------

function contentText(content) {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .filter((p) => p && (p.type === 'text' || p.type === 'input_text'))
    .map((p) => p.text || '')
    .join(' ');
}

function countImages(content) {
  if (!Array.isArray(content)) return 0;
  return content.filter((p) => p && (p.type === 'image' || p.type === 'image_url')).length;
}

function words(s) {
  const t = String(s || '').trim();
  return t ? t.split(/\s+/).length : 0;
}

function toolResultText(content) {
  if (typeof content === 'string') return content;
  return contentText(content);
}

// What the reply depends on, extracted from either format.
function analyse(format, body) {
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  let lastUserText = '';
  let images = 0;
  let lastToolResult = null;
  let allText = '';
  if (format === 'anthropic') allText += contentText(body.system) + ' ';
  for (const m of msgs) {
    if (!m) continue;
    allText += contentText(m.content) + ' ';
    if (m.role === 'tool') allText += toolResultText(m.content) + ' ';
  }
  const last = msgs[msgs.length - 1];
  if (last) {
    if (format === 'openai' && last.role === 'tool') lastToolResult = toolResultText(last.content);
    if (format === 'anthropic' && last.role === 'user' && Array.isArray(last.content)) {
      const tr = last.content.find((p) => p && p.type === 'tool_result');
      if (tr) lastToolResult = toolResultText(tr.content);
    }
  }
  for (let i = msgs.length - 1; i >= 0; i--) {
    const m = msgs[i];
    if (m && m.role === 'user' && contentText(m.content).trim() !== '') {
      lastUserText = contentText(m.content);
      images = countImages(m.content);
      break;
    }
  }
  const tools = Array.isArray(body.tools) ? body.tools : [];
  let firstTool = null;
  if (tools.length) {
    const t = tools[0];
    firstTool = format === 'openai' ? (t.function && t.function.name) || t.name : t.name;
  }
  return {
    lastUserText, images, lastToolResult, firstTool,
    inputTokens: Math.max(1, words(allText)),
    wantsTool: !!firstTool && lastToolResult === null && lastUserText.includes('[[tool]]'),
    thinking: format === 'anthropic' && body.thinking && body.thinking.type === 'enabled',
  };
}

function replyText(a, behaviour) {
  const t = replyText0(a, behaviour);
  return behaviour.pad ? t + ' ' + '.'.repeat(behaviour.pad) : t;
}

function replyText0(a, behaviour) {
  if (behaviour.text !== undefined) return behaviour.text;
  if (a.lastToolResult !== null) return `mock reply: tool result: ${a.lastToolResult}`;
  let t = `mock reply: ${stripDirectives(a.lastUserText.replace(/\[\[tool\]\]/g, ''))}`;
  if (a.images) t += ` [images:${a.images}]`;
  return t;
}

// Split into n pieces on word boundaries where possible; concatenation == text.
function splitText(text, n) {
  n = Math.max(1, n | 0);
  const out = [];
  const size = Math.ceil(text.length / n) || 1;
  let i = 0;
  while (out.length < n - 1 && i < text.length) {
    let j = Math.min(text.length, i + size);
    out.push(text.slice(i, j));
    i = j;
  }
  out.push(text.slice(i));
  while (out.length < n) out.push('');
  return out;
}

// The checks the real APIs make that a translator most easily gets wrong.
function validate(format, body) {
  if (typeof body.model !== 'string' || !body.model) return 'model: field required';
  if (!Array.isArray(body.messages)) return 'messages: expected an array';
  if (format === 'anthropic') {
    if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1) return 'max_tokens: field required';
    if (!body.messages.length) return 'messages: at least one message is required';
    for (const m of body.messages) {
      if (!m || (m.role !== 'user' && m.role !== 'assistant')) return `messages: unexpected role ${m && m.role}`;
    }
  } else {
    for (const m of body.messages) {
      if (!m || !['system', 'developer', 'user', 'assistant', 'tool'].includes(m.role)) return `messages: unexpected role ${m && m.role}`;
    }
  }
  return null;
}

// ---- ids -------------------------------------------------------------------

const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
function rid(n) {
  const bytes = crypto.randomBytes(n);
  let s = '';
  for (const b of bytes) s += B62[b % 62];
  return s;
}

// ---- the server --------------------------------------------------------------

function createMock(opts = {}) {
  const tag = opts.tag || 'mock';
  const state = { requests: [], queue: [], seq: 0, stats: null };
  function resetStats() {
    state.stats = {
      requests: 0, by_path: {}, by_status: {}, completed: 0, client_closed: 0,
      reset: 0, hung: 0, in_flight: 0, streams: 0, errors_injected: 0,
    };
  }
  resetStats();
  const sockets = new Set();

  function record(req, rawBody, parsed) {
    const rec = {
      seq: ++state.seq, time: new Date().toISOString(), time_ms: Date.now(),
      method: req.method, path: req.url, headers: { ...req.headers },
      body: parsed, raw_body: parsed === undefined ? rawBody : undefined,
      body_bytes: Buffer.byteLength(rawBody), status: null, outcome: 'pending',
      events_sent: 0, blocked_count: 0, blocked_ms: 0, behaviour: {}, tag,
    };
    return rec;
  }

  function finish(rec, outcome) {
    if (rec.outcome !== 'pending' && rec.outcome !== 'hanging' && rec.outcome !== 'streaming') return;
    rec.outcome = outcome;
    rec.end_ms = Date.now();
    state.stats.in_flight--;
    if (outcome in state.stats) state.stats[outcome]++;
  }

  function sendJson(res, rec, status, obj, extraHeaders = {}) {
    const body = JSON.stringify(obj);
    rec.status = status;
    state.stats.by_status[status] = (state.stats.by_status[status] || 0) + 1;
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      ...extraHeaders,
    });
    res.end(body);
  }

  function errorBody(format, status, b) {
    if (format === 'anthropic') {
      return {
        type: 'error',
        error: {
          type: b.error_type || ANTHROPIC_ERROR_TYPES[status] || 'api_error',
          message: b.error_message || `mock injected error ${status}`,
        },
        request_id: `req_${rid(24)}`,
      };
    }
    const [type, code] = OPENAI_ERROR_TYPES[status] || ['server_error', null];
    return {
      error: {
        message: b.error_message || `mock injected error ${status}`,
        type: b.error_type || type, param: null, code,
      },
    };
  }

  function providerHeaders(format) {
    if (format === 'anthropic') {
      return { 'request-id': `req_${rid(24)}`, 'anthropic-organization-id': 'mock-org' };
    }
    return {
      'x-request-id': `req_${rid(32)}`, 'openai-organization': 'mock-org',
      'openai-processing-ms': '1', 'openai-version': '2020-10-01',
    };
  }

  // Runs the body of an SSE response: writes events with pacing, honours
  // reset_after_events and malformed_sse, and stops if the client goes away.
  function runStream(req, res, rec, b, events, format) {
    state.stats.streams++;
    rec.outcome = 'streaming';
    rec.status = 200;
    state.stats.by_status[200] = (state.stats.by_status[200] || 0) + 1;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      ...providerHeaders(format),
    });
    if (res.flushHeaders) res.flushHeaders();
    const interval = b.event_interval_ms || 0;
    let i = 0;
    const step = () => {
      if (rec.outcome !== 'streaming') return; // the client went away
      if (b.reset_after_events !== undefined && i >= b.reset_after_events) {
        finish(rec, 'reset');
        req.socket.destroy();
        return;
      }
      if (i >= events.length) {
        res.end();
        finish(rec, 'completed');
        return;
      }
      const flushed = res.write(events[i++]);
      rec.events_sent = i;
      // The response ends with its last event (no pause): a client that stops
      // reading at [DONE] / message_stop has not cut the stream short.
      if (i >= events.length && b.reset_after_events === undefined) {
        res.end();
        finish(rec, 'completed');
        return;
      }
      // Honour backpressure like a real server: wait for the reader to drain.
      const next = () => (interval > 0 ? setTimeout(step, interval) : setImmediate(step));
      if (flushed) return next();
      const t0 = Date.now();
      rec.blocked_count++;
      res.once('drain', () => { rec.blocked_ms += Date.now() - t0; next(); });
    };
    step();
  }

  function sse(event, data) {
    return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  // ---- Anthropic ---------------------------------------------------------

  function anthropicMessage(body, a, b) {
    const model = body.model || 'claude-mock';
    const id = `msg_01${rid(22)}`;
    const content = [];
    let outTokens = 0;
    let stop = 'end_turn';
    if (a.thinking) {
      const th = `mock thinking about: ${stripDirectives(a.lastUserText)}`;
      content.push({ type: 'thinking', thinking: th, signature: `sig_${rid(40)}` });
      outTokens += words(th);
    }
    if (a.wantsTool) {
      content.push({ type: 'tool_use', id: `toolu_01${rid(22)}`, name: a.firstTool, input: { ...MOCK_TOOL_ARGS } });
      outTokens += 10;
      stop = 'tool_use';
    } else {
      const text = replyText(a, b);
      content.push({ type: 'text', text });
      outTokens += words(text);
    }
    return {
      id, type: 'message', role: 'assistant', model, content,
      stop_reason: stop, stop_sequence: null,
      usage: {
        input_tokens: a.inputTokens, cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0, output_tokens: Math.max(1, outTokens),
        service_tier: 'standard',
      },
    };
  }

  function anthropicEvents(msg, b) {
    const n = b.events !== undefined ? b.events : DEFAULT_EVENTS;
    const ev = [];
    const start = { ...msg, content: [], stop_reason: null, stop_sequence: null,
      usage: { ...msg.usage, output_tokens: 1 } };
    ev.push(sse('message_start', { type: 'message_start', message: start }));
    msg.content.forEach((block, index) => {
      if (block.type === 'text') {
        ev.push(sse('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } }));
        if (index === 0) ev.push(sse('ping', { type: 'ping' }));
        const parts = splitText(block.text, n);
        parts.forEach((p, k) => {
          if (b.malformed_sse && k === 1) {
            ev.push('event: content_block_delta\ndata: {"type":"content_block_delta","index":' + index + ',"delta":{"type":"text_delta","text":"brok\n\n');
            ev.malformedAt = ev.length;
          }
          ev.push(sse('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: p } }));
        });
      } else if (block.type === 'thinking') {
        ev.push(sse('content_block_start', { type: 'content_block_start', index, content_block: { type: 'thinking', thinking: '', signature: '' } }));
        if (index === 0) ev.push(sse('ping', { type: 'ping' }));
        for (const p of splitText(block.thinking, 2)) {
          ev.push(sse('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking: p } }));
        }
        ev.push(sse('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: block.signature } }));
      } else if (block.type === 'tool_use') {
        ev.push(sse('content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } }));
        if (index === 0) ev.push(sse('ping', { type: 'ping' }));
        const json = JSON.stringify(block.input);
        for (const p of ['', ...splitText(json, 3)]) {
          ev.push(sse('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: p } }));
        }
      }
      ev.push(sse('content_block_stop', { type: 'content_block_stop', index }));
    });
    ev.push(sse('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: msg.stop_reason, stop_sequence: null },
      usage: { output_tokens: msg.usage.output_tokens },
    }));
    ev.push(sse('message_stop', { type: 'message_stop' }));
    if (b.malformed_sse) return ev.slice(0, ev.malformedAt || ev.length);
    return ev;
  }

  // ---- OpenAI ------------------------------------------------------------

  function openaiCompletion(body, a, b) {
    const model = body.model || 'gpt-mock';
    const id = `chatcmpl-${rid(29)}`;
    const created = Math.floor(Date.now() / 1000);
    let message;
    let finish = 'stop';
    let outTokens;
    if (a.wantsTool) {
      message = {
        role: 'assistant', content: null,
        tool_calls: [{ id: `call_${rid(24)}`, type: 'function',
          function: { name: a.firstTool, arguments: JSON.stringify(MOCK_TOOL_ARGS) } }],
        refusal: null, annotations: [],
      };
      finish = 'tool_calls';
      outTokens = 10;
    } else {
      const text = replyText(a, b);
      message = { role: 'assistant', content: text, refusal: null, annotations: [] };
      outTokens = Math.max(1, words(text));
    }
    return {
      id, object: 'chat.completion', created, model,
      choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
      usage: {
        prompt_tokens: a.inputTokens, completion_tokens: outTokens,
        total_tokens: a.inputTokens + outTokens,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0,
          accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
      },
      service_tier: 'default', system_fingerprint: 'fp_mock0001',
    };
  }

  function openaiEvents(comp, body, b) {
    const n = b.events !== undefined ? b.events : DEFAULT_EVENTS;
    const includeUsage = !!(body.stream_options && body.stream_options.include_usage);
    const base = { id: comp.id, object: 'chat.completion.chunk', created: comp.created,
      model: comp.model, service_tier: 'default', system_fingerprint: comp.system_fingerprint };
    const chunk = (delta, finish) => {
      const c = { ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] };
      if (includeUsage) c.usage = null;
      return `data: ${JSON.stringify(c)}\n\n`;
    };
    const ev = [];
    const msg = comp.choices[0].message;
    if (msg.tool_calls) {
      const tc = msg.tool_calls[0];
      ev.push(chunk({ role: 'assistant', content: null,
        tool_calls: [{ index: 0, id: tc.id, type: 'function', function: { name: tc.function.name, arguments: '' } }],
        refusal: null }, null));
      for (const p of splitText(tc.function.arguments, 3)) {
        ev.push(chunk({ tool_calls: [{ index: 0, function: { arguments: p } }] }, null));
      }
    } else {
      ev.push(chunk({ role: 'assistant', content: '', refusal: null }, null));
      splitText(msg.content, n).forEach((p, k) => {
        if (b.malformed_sse && k === 1) {
          ev.push(`data: {"id":"${comp.id}","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"brok\n\n`);
          ev.malformedAt = ev.length;
        }
        ev.push(chunk({ content: p }, null));
      });
    }
    ev.push(chunk({}, comp.choices[0].finish_reason));
    if (includeUsage) {
      ev.push(`data: ${JSON.stringify({ ...base, choices: [], usage: comp.usage })}\n\n`);
    }
    ev.push('data: [DONE]\n\n');
    if (b.malformed_sse) return ev.slice(0, ev.malformedAt || ev.length);
    return ev;
  }

  // ---- models ----------------------------------------------------------------

  const MODELS = ['claude-sonnet-4-20250514', 'claude-3-5-haiku-20241022', 'gpt-4o', 'gpt-4o-mini'];
  function modelsBody(anthropicShape) {
    if (anthropicShape) {
      const data = MODELS.filter((m) => m.startsWith('claude')).map((id) => ({
        type: 'model', id, display_name: id, created_at: '2025-05-14T00:00:00Z' }));
      return { data, has_more: false, first_id: data[0].id, last_id: data[data.length - 1].id };
    }
    return { object: 'list', data: MODELS.map((id) => ({ id, object: 'model', created: 1715367049, owned_by: 'mock' })) };
  }

  // ---- dispatch -------------------------------------------------------------

  const ROUTES = {
    'POST /v1/chat/completions': 'openai',
    'POST /chat/completions': 'openai',
    'POST /v1/messages': 'anthropic',
  };

  function handleControl(req, res, path, raw) {
    const reply = (status, obj) => {
      const s = JSON.stringify(obj);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
      res.end(s);
    };
    if (req.method === 'GET' && path === '/__mock/requests') return reply(200, state.requests);
    if (req.method === 'GET' && path === '/__mock/stats') {
      return reply(200, { ...state.stats, queued: state.queue.length, tag });
    }
    if (req.method === 'POST' && path === '/__mock/reset') {
      state.requests = []; state.queue = []; resetStats();
      return reply(200, { ok: true });
    }
    if (req.method === 'POST' && path === '/__mock/drop_connections') {
      let dropped = 0;
      for (const sock of sockets) {
        if (sock !== req.socket) { sock.destroy(); dropped++; }
      }
      return reply(200, { ok: true, dropped });
    }
    if (req.method === 'POST' && path === '/__mock/next') {
      let j;
      try { j = JSON.parse(raw || '[]'); } catch (e) { return reply(400, { error: 'bad json' }); }
      // Accepts [b, b, ...] or {count: N, behaviour: b} or a single b.
      let list;
      if (Array.isArray(j)) list = j;
      else if (j && j.behaviour !== undefined) list = Array(j.count || 1).fill(j.behaviour);
      else list = [j];
      for (const x of list) state.queue.push(normaliseBehaviour(x));
      return reply(200, { ok: true, queued: state.queue.length });
    }
    return reply(404, { error: 'unknown control path' });
  }

  function handle(req, res, raw) {
    const path = req.url.split('?')[0];
    if (path.startsWith('/__mock/')) return handleControl(req, res, path, raw);

    let parsed;
    if (raw.length) { try { parsed = JSON.parse(raw); } catch (e) { parsed = undefined; } }
    const rec = record(req, raw, parsed);
    state.requests.push(rec);
    state.stats.requests++;
    state.stats.in_flight++;
    state.stats.by_path[path] = (state.stats.by_path[path] || 0) + 1;
    res.on('close', () => { if (!res.writableFinished) finish(rec, 'client_closed'); });

    if (req.method === 'GET' && (path === '/health' || path === '/healthz')) {
      sendJson(res, rec, 200, { status: 'ok', tag });
      return finish(rec, 'completed');
    }
    if (req.method === 'GET' && path === '/v1/models') {
      const anth = !!req.headers['anthropic-version'] || !!req.headers['x-api-key'];
      sendJson(res, rec, 200, modelsBody(anth), providerHeaders(anth ? 'anthropic' : 'openai'));
      return finish(rec, 'completed');
    }
    if (req.method === 'POST' && path === '/v1/messages/count_tokens') {
      const a = analyse('anthropic', parsed || {});
      sendJson(res, rec, 200, { input_tokens: a.inputTokens });
      return finish(rec, 'completed');
    }
    const format = ROUTES[`${req.method} ${path}`];
    if (!format) {
      const f = path.includes('messages') ? 'anthropic' : 'openai';
      sendJson(res, rec, 404, errorBody(f, 404, { error_message: `mock: no route ${req.method} ${path}` }));
      return finish(rec, 'completed');
    }
    if (parsed === undefined || typeof parsed !== 'object' || parsed === null) {
      sendJson(res, rec, 400, errorBody(format, 400, { error_message: 'mock: body is not valid JSON' }));
      return finish(rec, 'completed');
    }

    const a = analyse(format, parsed);
    const queued = state.queue.length ? state.queue.shift() : {};
    const b = { ...queued, ...behaviourFromHeaders(req.headers), ...behaviourFromText(a.lastUserText) };
    rec.behaviour = b;

    if (b.hang) {
      rec.outcome = 'hanging';
      state.stats.hung++;
      return; // never answer; 'close' records the client giving up
    }
    const go = () => {
      if (rec.outcome !== 'pending') return; // client already left
      if (b.status && b.status >= 300) {
        state.stats.errors_injected++;
        const extra = { ...providerHeaders(format) };
        if (b.retry_after !== undefined) extra['retry-after'] = String(b.retry_after);
        if (format === 'anthropic' && b.status === 429) extra['anthropic-ratelimit-requests-remaining'] = '0';
        rec.response = errorBody(format, b.status, b);
        sendJson(res, rec, b.status, rec.response, extra);
        return finish(rec, 'completed');
      }
      const invalid = validate(format, parsed);
      if (invalid) {
        rec.response = errorBody(format, 400, { error_message: invalid });
        sendJson(res, rec, 400, rec.response, providerHeaders(format));
        return finish(rec, 'completed');
      }
      if (format === 'anthropic') {
        const msg = anthropicMessage(parsed, a, b);
        rec.response = msg;
        if (parsed.stream) return runStream(req, res, rec, b, anthropicEvents(msg, b), format);
        sendJson(res, rec, 200, msg, providerHeaders(format));
      } else {
        const comp = openaiCompletion(parsed, a, b);
        rec.response = comp;
        if (parsed.stream) return runStream(req, res, rec, b, openaiEvents(comp, parsed, b), format);
        sendJson(res, rec, 200, comp, providerHeaders(format));
      }
      return finish(rec, 'completed');
    };
    if (b.delay_headers_ms) setTimeout(go, b.delay_headers_ms);
    else go();
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        handle(req, res, Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        process.stderr.write(`mock: handler error: ${e.stack}\n`);
        if (!res.headersSent) { res.writeHead(500); res.end(); }
      }
    });
  });
  server.keepAliveTimeout = 30000;
  server.headersTimeout = 0;
  server.requestTimeout = 0;
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });

  return {
    server, state,
    listen(port = 0, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve(server.address().port));
      });
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

module.exports = { createMock, parseBehaviourString, splitText, MOCK_TOOL_ARGS };

if (require.main === module) {
  const o = parseArgs(process.argv.slice(2));
  const m = createMock({ tag: o.tag });
  m.listen(o.port, o.host).then((port) => {
    process.stdout.write(`LISTENING ${port}\n`);
  }, (e) => {
    process.stderr.write(`mock: cannot listen: ${e.message}\n`);
    process.exit(1);
  });
  const stop = () => { m.close().then(() => process.exit(0)); setTimeout(() => process.exit(0), 500).unref(); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

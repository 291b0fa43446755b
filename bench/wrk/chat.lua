-- chat.lua: wrk script of the benchmark. POSTs a realistic ~1 KB OpenAI
-- Chat Completions body (system prompt, a short exchange, a user question).
-- Arguments after `--`: PATH MODEL STREAM(0|1)
--   PATH          request path, e.g. /v1/chat/completions (ktd) or
--                 /json/v1/messages (nginx -> mock)
--   MODEL         model name; ktd picks the target by it
--   STREAM        1 sets "stream": true
-- done() prints one machine-readable line starting with "BENCH ".

local path, model, stream = "/v1/chat/completions", "claude-json", false

local function body_for(m, s)
  return '{"model":"' .. m .. '","max_tokens":512,"temperature":0.2,' ..
    (s and '"stream":true,' or '') ..
    '"messages":[' ..
    '{"role":"system","content":"You are a careful financial analyst assistant for an ' ..
    'internal reporting team. Answer concisely, cite the figures you use, and say so ' ..
    'when the data given is not enough to answer. Use plain English and short paragraphs."},' ..
    '{"role":"user","content":"Here are the headline numbers for the third quarter: ' ..
    'revenue 48.2 million, up from 43.0 million a year earlier; operating costs 31.5 ' ..
    'million against 31.1 million; headcount 412 against 398. Marketing spend moved ' ..
    'from 4.4 million to 3.9 million after the autumn campaign was cut short."},' ..
    '{"role":"assistant","content":"Thanks. Revenue grew about 12 percent year on year ' ..
    'while operating costs were nearly flat, so the operating margin widened. Do you ' ..
    'want the margin figures or a comparison with the second quarter?"},' ..
    '{"role":"user","content":"Please give me a short summary of the quarter that I can ' ..
    'paste into the board update, in three sentences at most, and mention the change in ' ..
    'marketing spend and what it means for the fourth quarter plan."}]}'
end

function init(args)
  if args[1] then path = args[1] end
  if args[2] then model = args[2] end
  stream = args[3] == "1"
  wrk.method = "POST"
  wrk.path = path
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer sk-bench-unused"
  wrk.body = body_for(model, stream)
  req = wrk.format()
end

function request()
  return req
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d bytes=%d err_connect=%d err_read=%d " ..
    "err_write=%d err_status=%d err_timeout=%d p50_us=%d p90_us=%d p99_us=%d " ..
    "mean_us=%.1f max_us=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read,
    e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end

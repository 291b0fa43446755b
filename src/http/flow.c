/* flow.c: one LLM request through a worker, as an explicit state machine
 * (nginx's upstream module is the model):
 *
 *   DECODE → POLICIES(request) → PICK target → ATTEMPT ⇄ RETRY/FALLBACK
 *          → RELAY (stream) or COLLECT (JSON) → POLICIES(response)
 *          → REPLY → AUDIT → FREE
 *
 * Owns: the per-request arena and buffers, the choice of target among the
 * candidates, retries (only before the first byte reaches the client),
 * translation between the client's and the target's formats, and the one
 * place the request is freed (the evhtp request-fini hook), so every path,
 * client disconnects included, frees exactly once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <evhtp.h>

#include "kt/arena.h"
#include "kt/buf.h"
#include "kt/flow.h"
#include "kt/log.h"
#include "kt/mock.h"
#include "kt/server.h"
#include "kt/sse.h"
#include "kt/upstream.h"
#include "kt/util.h"
#include "kt/wire.h"

#define MAX_CANDIDATES 64
#define MAX_RESPONSE_BYTES (64u << 20)
#define CLIENT_BACKLOG_PAUSE (1u << 20)   /* pause upstream past 1 MiB unsent */

enum phase { PH_UPSTREAM, PH_STREAMING, PH_DONE };

struct kt_flow {
    struct kt_srv *s;
    evhtp_request_t *req;          /* NULL once evhtp freed it */
    struct kt_arena arena;
    enum kt_format cfmt;
    char rid[136];
    uint64_t t0_us;
    enum phase phase;
    int paused_req;                /* evhtp_request_pause() in effect */

    const char *body;
    size_t body_len;
    struct kt_request ireq;

    /* routing */
    struct kt_target_rt *cands[MAX_CANDIDATES];
    size_t ncands, cur;
    int attempts_on_cur, attempts_total;
    struct event *retry_timer;

    /* the current upstream attempt */
    struct kt_target_rt *trt;
    struct kt_buf up_body;
    const char *up_bytes;
    size_t up_len;
    struct kt_upcall *call;
    struct kt_mockcall *mock;
    int up_status, retry_after;
    int up_is_sse;
    uint64_t attempt_t0_us;

    /* response */
    struct kt_buf resp;            /* collected body (JSON or an error) */
    struct kt_sse_parser sse;
    int sse_inited;
    struct kt_stream_xlate *xl;    /* translating streams */
    struct kt_stream_dec *dec;     /* pass-through streams: usage only */
    struct kt_buf out;             /* bytes for the client, reused */
    struct kt_usage usage;
    int upstream_paused;
    struct event *dc_watch;        /* client-gone watch while paused */
    int status_sent;
};

static void flow_finish(struct kt_flow *f, int status);
static void attempt_start(struct kt_flow *f);

/* ---- small helpers ----------------------------------------------------- */

static const char *hdr_in(struct kt_flow *f, const char *name)
{
    return f->req ? evhtp_header_find(f->req->headers_in, name) : NULL;
}

static void hdr_out(struct kt_flow *f, const char *k, const char *v)
{
    evhtp_headers_add_header(f->req->headers_out, evhtp_header_new(k, v, 1, 1));
}

static void unpause_client(struct kt_flow *f)
{
    if (f->dc_watch) {
        event_free(f->dc_watch);
        f->dc_watch = NULL;
    }
    if (f->paused_req && f->req) {
        f->paused_req = 0;
        evhtp_request_resume(f->req);
    }
}

static void reply_error(struct kt_flow *f, int status, enum kt_ir_err_type type, const char *code,
                        const char *msg, long retry_after)
{
    if (f->req == NULL)
        return;
    unpause_client(f);
    if (retry_after >= 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%ld", retry_after);
        hdr_out(f, "retry-after", ra);
    }
    if (f->trt)
        hdr_out(f, "x-kt-target", f->trt->t->id);
    f->status_sent = status;
    flow_finish(f, status);
    kt_srv_reply_error(f->s, f->req, f->cfmt, status, type, code, msg);
}

/* ---- the client going away --------------------------------------------- */

static void call_cancel(struct kt_flow *f)
{
    if (f->call) {
        kt_upcall_cancel(f->call);
        f->call = NULL;
    }
    if (f->mock) {
        kt_mock_cancel(f->mock);
        f->mock = NULL;
    }
}

static void call_resume(struct kt_flow *f)
{
    f->upstream_paused = 0;
    if (f->call)
        kt_upcall_resume(f->call);
    if (f->mock)
        kt_mock_resume(f->mock);
}

static void flow_free(struct kt_flow *f)
{
    call_cancel(f);
    if (f->retry_timer)
        event_free(f->retry_timer);
    if (f->dc_watch)
        event_free(f->dc_watch);
    if (f->sse_inited)
        kt_sse_parser_free(&f->sse);
    kt_buf_free(&f->up_body);
    kt_buf_free(&f->resp);
    kt_buf_free(&f->out);
    kt_arena_free(&f->arena);
    free(f);
}

/* on_fini: evhtp frees the request (reply done, or the connection died).
 * The one place a flow is freed. */
static evhtp_res on_fini(evhtp_request_t *req, void *arg)
{
    struct kt_flow *f = arg;
    /* The connection may serve more requests: drop our hook from it. */
    evhtp_connection_t *conn = evhtp_request_get_connection(req);
    if (conn)
        evhtp_connection_unset_hook(conn, evhtp_hook_on_write);
    f->req = NULL;
    if (f->phase != PH_DONE) {
        /* The client left before we finished: stop the upstream work. */
        kt_debug("request %s: client went away", f->rid);
        call_cancel(f);
        flow_finish(f, 499);
    }
    flow_free(f);
    return EVHTP_RES_OK;
}

/* on_client_readable: while the request is paused evhtp does not read, so
 * a client that hangs up would go unnoticed; peek to find out. */
static void on_client_readable(evutil_socket_t fd, short what, void *arg)
{
    struct kt_flow *f = arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) {
        /* Pipelined bytes: leave them to evhtp; stop watching. */
        if (n > 0) {
            event_free(f->dc_watch);
            f->dc_watch = NULL;
        }
        return;
    }
    if (f->req) {
        evhtp_connection_t *conn = evhtp_request_get_connection(f->req);
        evhtp_connection_free(conn);   /* runs on_fini */
    }
}

static evhtp_res on_client_write(evhtp_connection_t *conn, void *arg)
{
    struct kt_flow *f = arg;
    if (f->upstream_paused) {
        struct evbuffer *o = bufferevent_get_output(evhtp_connection_get_bev(conn));
        if (evbuffer_get_length(o) < CLIENT_BACKLOG_PAUSE / 2)
            call_resume(f);
    }
    return EVHTP_RES_OK;
}

/* ---- finishing --------------------------------------------------------- */

static void flow_finish(struct kt_flow *f, int status)
{
    if (f->phase == PH_DONE)
        return;
    f->phase = PH_DONE;
    struct kt_srv *s = f->s;
    s->metrics.tokens_in += f->usage.input > 0 ? (uint64_t)f->usage.input : 0;
    s->metrics.tokens_out += f->usage.output > 0 ? (uint64_t)f->usage.output : 0;
    kt_debug("request %s done: status %d target %s latency %lluus", f->rid, status,
             f->trt ? f->trt->t->id : "-", (unsigned long long)(kt_now_us() - f->t0_us));
    kt_srv_request_done(s);
}

/* ---- choosing targets -------------------------------------------------- */

/* pick_candidates: the client's model names a target (by model or id);
 * otherwise the strategy orders all targets. */
static void pick_candidates(struct kt_flow *f)
{
    struct kt_srv *s = f->s;
    const struct kt_providers *p = &s->cfg->providers;
    f->ncands = 0;
    const char *model = f->ireq.model;
    if (model) {
        for (size_t i = 0; i < p->ntargets && f->ncands < MAX_CANDIDATES; i++)
            if (strcmp(p->targets[i].model, model) == 0 || strcmp(p->targets[i].id, model) == 0)
                f->cands[f->ncands++] = &s->targets[i];
    }
    if (f->ncands > 0 && p->strategy != KT_STRAT_FALLBACK)
        return;
    if (f->ncands > 0) {
        /* fallback: the named target first, then the rest in order. */
        for (size_t i = 0; i < p->ntargets && f->ncands < MAX_CANDIDATES; i++) {
            int have = 0;
            for (size_t k = 0; k < f->ncands; k++)
                if (f->cands[k] == &s->targets[i])
                    have = 1;
            if (!have)
                f->cands[f->ncands++] = &s->targets[i];
        }
        return;
    }
    size_t n = p->strategy == KT_STRAT_SINGLE ? 1 : p->ntargets;
    for (size_t i = 0; i < n && i < MAX_CANDIDATES; i++)
        f->cands[f->ncands++] = &s->targets[i];
}

/* ---- upstream callbacks ------------------------------------------------ */

static int write_client(struct kt_flow *f, const char *data, size_t len)
{
    if (f->req == NULL || len == 0)
        return 0;
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, data, len);
    evhtp_send_reply_chunk(f->req, b);
    evbuffer_free(b);
    struct bufferevent *bev = evhtp_connection_get_bev(evhtp_request_get_connection(f->req));
    if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > CLIENT_BACKLOG_PAUSE) {
        f->upstream_paused = 1;
        return 1;
    }
    return 0;
}

static int on_dec_event(void *ud, struct kt_stream_ev *ev)
{
    struct kt_flow *f = ud;
    if (ev->type == KT_EV_MESSAGE_START || ev->type == KT_EV_USAGE || ev->type == KT_EV_FINISH)
        kt_usage_merge(&f->usage, &ev->usage);
    return 0;
}

/* on_sse_event: one upstream SSE event while relaying a stream. */
static int on_sse_event(void *ud, const char *event, const char *data, size_t len)
{
    struct kt_flow *f = ud;
    if (f->xl)
        return kt_stream_xlate_feed_event(f->xl, event, data, len, &f->out);
    struct kt_err err;
    kt_stream_dec_feed(f->dec, event, data, len, on_dec_event, f, &err);
    return 0;
}

static void start_client_stream(struct kt_flow *f)
{
    unpause_client(f);
    hdr_out(f, "content-type", "text/event-stream");
    hdr_out(f, "cache-control", "no-cache");
    hdr_out(f, "x-kt-target", f->trt->t->id);
    if (f->attempts_total > 1 || f->cur > 0) {
        char n[16];
        snprintf(n, sizeof n, "%d", f->attempts_total);
        hdr_out(f, "x-kt-attempts", n);
    }
    if (f->cur > 0)
        hdr_out(f, "x-kt-fallback", "true");
    evhtp_send_reply_chunk_start(f->req, EVHTP_RES_OK);
    f->status_sent = 200;
    f->phase = PH_STREAMING;
    f->s->metrics.stream_requests++;
    kt_srv_count_status(f->s, 200);
    kt_sse_parser_init(&f->sse, 0);
    f->sse_inited = 1;
    enum kt_format tfmt = f->trt->t->format;
    if (tfmt != f->cfmt) {
        struct kt_stream_opts o = { .include_usage = f->ireq.include_usage };
        f->xl = kt_stream_xlate_new(&f->arena, tfmt, f->cfmt, &o);
    } else {
        f->dec = kt_stream_dec_new(&f->arena, tfmt);
    }
}

static void up_headers(void *ud, int status, const char *ctype, int retry_after)
{
    struct kt_flow *f = ud;
    f->up_status = status;
    f->retry_after = retry_after;
    f->up_is_sse = ctype && strncasecmp(ctype, "text/event-stream", 17) == 0;
    if (status >= 200 && status < 300 && f->ireq.stream && f->req)
        start_client_stream(f);
}

static int up_data(void *ud, const char *data, size_t len)
{
    struct kt_flow *f = ud;
    if (f->req == NULL)
        return -1;
    if (f->phase == PH_STREAMING) {
        struct kt_err err;
        kt_buf_reset(&f->out);
        if (f->xl == NULL) {
            /* Same format: relay the bytes as they are; parse for usage. */
            kt_sse_parser_feed(&f->sse, data, len, on_sse_event, f, &err);
            return write_client(f, data, len);
        }
        if (kt_sse_parser_feed(&f->sse, data, len, on_sse_event, f, &err) < 0)
            kt_warn("request %s: bad upstream stream: %s", f->rid, err.msg);
        return write_client(f, f->out.data, f->out.len);
    }
    if (f->resp.len + len > MAX_RESPONSE_BYTES)
        return -1;
    kt_buf_append(&f->resp, data, len);
    return 0;
}

static int retryable(struct kt_flow *f, enum kt_upcall_result r, int status)
{
    const struct kt_retry *rt = &f->s->cfg->providers.retry;
    if (r == KT_UP_TIMEOUT)
        return rt->on_timeout;
    if (r == KT_UP_CONNECT)
        return rt->on_connect;
    if (r != KT_UP_OK)
        return rt->on_connect;   /* a connection reset before any byte */
    return kt_cfg_retry_status(rt, status);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    attempt_start(arg);
}

/* next_attempt: retry the same target (with backoff) or fall back to the
 * next candidate; 0 when another attempt was scheduled. */
static int next_attempt(struct kt_flow *f, int retry_after_s)
{
    const struct kt_providers *p = &f->s->cfg->providers;
    long delay_ms = 0;
    if (f->attempts_on_cur < p->retry.max_attempts) {
        long base = p->retry.backoff_ms;
        for (int i = 1; i < f->attempts_on_cur && base < p->retry.max_backoff_ms; i++)
            base *= 2;
        if (base > p->retry.max_backoff_ms)
            base = p->retry.max_backoff_ms;
        /* Full jitter keeps workers from retrying in lockstep. */
        delay_ms = base > 0 ? (long)(kt_random_u64() % (uint64_t)base) : 0;
        if (retry_after_s > 0) {
            if ((long)retry_after_s * 1000 > p->retry.max_backoff_ms)
                goto fallback;   /* waiting that long: better try another target */
            delay_ms = (long)retry_after_s * 1000;
        }
    } else {
fallback:
        if (f->cur + 1 >= f->ncands)
            return -1;
        f->cur++;
        f->attempts_on_cur = 0;
        delay_ms = 0;
    }
    if (f->retry_timer == NULL)
        f->retry_timer = evtimer_new(f->s->base, on_retry_timer, f);
    struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };
    evtimer_add(f->retry_timer, &tv);
    return 0;
}

static void reply_upstream_error(struct kt_flow *f)
{
    enum kt_format tfmt = f->trt->t->format;
    if (tfmt == f->cfmt && f->resp.len > 0) {
        /* Same format: the provider's own error, as it sent it. */
        unpause_client(f);
        if (f->retry_after >= 0) {
            char ra[24];
            snprintf(ra, sizeof ra, "%d", f->retry_after);
            hdr_out(f, "retry-after", ra);
        }
        hdr_out(f, "x-kt-target", f->trt->t->id);
        f->status_sent = f->up_status;
        flow_finish(f, f->up_status);
        kt_srv_reply_json(f->s, f->req, f->up_status, f->resp.data, f->resp.len);
        return;
    }
    struct kt_ir_error e;
    kt_wire_decode_error(tfmt, f->up_status, f->resp.data ? f->resp.data : "", f->resp.len, &f->arena, &e);
    e.retry_after = f->retry_after;
    struct kt_buf out = {0};
    int status = f->up_status;
    kt_wire_encode_error(f->cfmt, &e, &out, &status);
    unpause_client(f);
    if (f->retry_after >= 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%d", f->retry_after);
        hdr_out(f, "retry-after", ra);
    }
    hdr_out(f, "x-kt-target", f->trt->t->id);
    f->status_sent = status;
    flow_finish(f, status);
    kt_srv_reply_json(f->s, f->req, status, out.data, out.len);
    kt_buf_free(&out);
}

static void reply_response(struct kt_flow *f)
{
    enum kt_format tfmt = f->trt->t->format;
    struct kt_response resp;
    struct kt_err err;
    if (kt_wire_decode_response(tfmt, f->resp.data ? f->resp.data : "", f->resp.len, &f->arena,
                                &resp, &err) != 0) {
        reply_error(f, 502, KT_IRE_API_ERROR, "bad_upstream_response", "the provider sent a response ktd could not read", -1);
        return;
    }
    f->usage = resp.usage;
    unpause_client(f);
    hdr_out(f, "x-kt-target", f->trt->t->id);
    if (f->cur > 0)
        hdr_out(f, "x-kt-fallback", "true");
    if (f->attempts_total > 1) {
        char n[16];
        snprintf(n, sizeof n, "%d", f->attempts_total);
        hdr_out(f, "x-kt-attempts", n);
    }
    f->status_sent = f->up_status;
    flow_finish(f, f->up_status);
    if (tfmt == f->cfmt && !resp.modified) {
        kt_srv_reply_json(f->s, f->req, f->up_status, f->resp.data, f->resp.len);
    } else {
        kt_buf_reset(&f->out);
        kt_wire_encode_response(f->cfmt, &resp, &f->out);
        kt_srv_reply_json(f->s, f->req, f->up_status, f->out.data, f->out.len);
    }
}

static void up_done(void *ud, enum kt_upcall_result r, int status, const char *errmsg)
{
    struct kt_flow *f = ud;
    f->call = NULL;
    f->mock = NULL;
    if (f->req == NULL)
        return;
    if (f->phase == PH_STREAMING) {
        struct kt_err err;
        kt_buf_reset(&f->out);
        if (r != KT_UP_OK) {
            struct kt_ir_error e;
            kt_ir_error_make(&e, &f->arena, r == KT_UP_TIMEOUT ? KT_IRE_TIMEOUT : KT_IRE_API_ERROR,
                             r == KT_UP_TIMEOUT ? 504 : 502, "upstream_error",
                             r == KT_UP_TIMEOUT ? "the provider stream timed out" : "the provider stream broke off");
            if (f->xl) {
                kt_stream_xlate_error(f->xl, &e, &f->out);
            } else {
                struct kt_buf eb = {0};
                int st;
                kt_wire_encode_error(f->cfmt, &e, &eb, &st);
                kt_sse_write_event(&f->out, f->cfmt == KT_FMT_ANTHROPIC ? "error" : NULL, eb.data, eb.len);
                kt_buf_free(&eb);
            }
            kt_warn("request %s: upstream %s failed mid-stream: %s", f->rid, f->trt->t->id,
                    errmsg ? errmsg : "error");
            f->s->metrics.upstream_errors++;
        } else {
            kt_sse_parser_finish(&f->sse, on_sse_event, f, &err);
            if (f->xl)
                kt_stream_xlate_finish(f->xl, &f->out);
        }
        if (f->xl)
            kt_usage_merge(&f->usage, kt_stream_xlate_usage(f->xl));
        write_client(f, f->out.data, f->out.len);
        flow_finish(f, r == KT_UP_OK ? 200 : 502);
        evhtp_send_reply_chunk_end(f->req);
        return;
    }
    if (r != KT_UP_OK || status >= 400 || status < 200) {
        f->s->metrics.upstream_errors++;
        kt_info("request %s: target %s attempt %d failed: %s", f->rid, f->trt->t->id,
                f->attempts_total, r != KT_UP_OK ? (errmsg ? errmsg : "error") : "HTTP error status");
        if (retryable(f, r, status) && next_attempt(f, f->retry_after) == 0)
            return;
        if (r == KT_UP_TIMEOUT) {
            reply_error(f, 504, KT_IRE_TIMEOUT, "upstream_timeout", "the provider did not answer in time", -1);
            return;
        }
        if (r != KT_UP_OK) {
            reply_error(f, 502, KT_IRE_API_ERROR, "upstream_unreachable", "the provider could not be reached", -1);
            return;
        }
        reply_upstream_error(f);
        return;
    }
    reply_response(f);
}

static const struct kt_upcall_cbs up_cbs = { up_headers, up_data, up_done };

/* ---- attempts ---------------------------------------------------------- */

static void attempt_start(struct kt_flow *f)
{
    if (f->req == NULL)
        return;
    f->trt = f->cands[f->cur];
    const struct kt_target *t = f->trt->t;
    f->attempts_on_cur++;
    f->attempts_total++;
    f->s->metrics.upstream_attempts++;
    f->up_status = 0;
    f->retry_after = -1;
    kt_buf_reset(&f->resp);
    f->attempt_t0_us = kt_now_us();

    kt_buf_reset(&f->up_body);
    if (kt_wire_encode_request(t->format, &f->ireq, t->model, &f->up_body) != 0) {
        reply_error(f, 400, KT_IRE_INVALID_REQUEST, "translation_error",
                    "the request cannot be expressed in the target's format", -1);
        return;
    }
    f->up_bytes = f->up_body.data;
    f->up_len = f->up_body.len;

    if (t->provider_kind == KT_PROV_MOCK) {
        f->mock = kt_mock_start(f->s->base, t->format, &f->ireq, t->model, &up_cbs, f);
        if (f->mock == NULL)
            reply_error(f, 500, KT_IRE_API_ERROR, "internal_error", "out of memory", -1);
        return;
    }
    if (f->trt->url == NULL) {
        reply_error(f, 501, KT_IRE_API_ERROR, "unsupported_target",
                    "this target kind cannot serve HTTP requests", -1);
        return;
    }
    /* Header lines: the target's own, then pass-through auth when the
     * target has no key of its own, then a few client headers worth keeping. */
    const char *hdrs[80];
    size_t n = 0;
    for (char **h = f->trt->hdrs; *h && n < 70; h++)
        hdrs[n++] = *h;
    if (t->api_key == NULL && !f->s->cfg->server.auth_enabled) {
        const char *a = hdr_in(f, "authorization"), *x = hdr_in(f, "x-api-key");
        if (t->format == KT_FMT_ANTHROPIC && x)
            hdrs[n++] = kt_arena_printf(&f->arena, "x-api-key: %s", x);
        else if (a)
            hdrs[n++] = kt_arena_printf(&f->arena, "Authorization: %s", a);
        else if (x)
            hdrs[n++] = kt_arena_printf(&f->arena, "Authorization: Bearer %s", x);
    }
    const char *beta = hdr_in(f, "anthropic-beta");
    if (beta && t->format == KT_FMT_ANTHROPIC && f->cfmt == KT_FMT_ANTHROPIC)
        hdrs[n++] = kt_arena_printf(&f->arena, "anthropic-beta: %s", beta);
    if (f->ireq.stream)
        hdrs[n++] = "Accept: text/event-stream";
    hdrs[n++] = kt_arena_printf(&f->arena, "x-request-id: %s", f->rid);
    hdrs[n] = NULL;

    long timeout_s = f->ireq.stream ? t->stream_timeout_seconds : t->timeout_seconds;
    struct kt_upcall_req ur = {
        .url = f->trt->url, .headers = hdrs, .body = f->up_bytes, .body_len = f->up_len,
        .timeout_ms = timeout_s * 1000, .connect_timeout_ms = timeout_s * 1000 < 10000 ? timeout_s * 1000 : 10000,
        .stream = f->ireq.stream,
    };
    f->call = kt_upcall_start(f->s->up, &ur, &up_cbs, f);
    if (f->call == NULL)
        reply_error(f, 500, KT_IRE_API_ERROR, "internal_error", "cannot start the upstream request", -1);
}

/* ---- entry ------------------------------------------------------------- */

void kt_flow_start(struct kt_srv *s, evhtp_request_t *req, enum kt_format fmt, const char *request_id)
{
    struct kt_flow *f = calloc(1, sizeof *f);
    if (f == NULL) {
        kt_srv_reply_error(s, req, fmt, 500, KT_IRE_API_ERROR, "internal_error", "out of memory");
        return;
    }
    f->s = s;
    f->req = req;
    f->cfmt = fmt;
    f->t0_us = kt_now_us();
    snprintf(f->rid, sizeof f->rid, "%s", request_id);
    kt_arena_init(&f->arena, 16384);
    s->inflight++;
    evhtp_request_set_hook(req, evhtp_hook_on_request_fini, (evhtp_hook)on_fini, f);

    if (!s->cfg->pack.enabled || s->stopping) {
        reply_error(f, 503, KT_IRE_OVERLOADED, "unavailable",
                    s->stopping ? "the gateway is shutting down" : "the gateway is in maintenance (pack disabled)", -1);
        return;
    }
    size_t len = evbuffer_get_length(req->buffer_in);
    if (len > s->cfg->server.max_body_bytes) {
        reply_error(f, 413, KT_IRE_REQUEST_TOO_LARGE, "request_too_large", "request body too large", -1);
        return;
    }
    /* One contiguous copy of the body in the arena; it outlives the IR. */
    char *body = kt_arena_alloc(&f->arena, len + 1);
    if (body == NULL) {
        reply_error(f, 500, KT_IRE_API_ERROR, "internal_error", "out of memory", -1);
        return;
    }
    evbuffer_copyout(req->buffer_in, body, len);
    f->body = body;
    f->body_len = len;

    struct kt_err err = {0};
    if (kt_wire_decode_request(fmt, body, len, &f->arena, &f->ireq, &err) != 0) {
        reply_error(f, 400, KT_IRE_INVALID_REQUEST, "invalid_request", err.msg, -1);
        return;
    }
    pick_candidates(f);
    if (f->ncands == 0) {
        reply_error(f, 503, KT_IRE_OVERLOADED, "no_target", "no target can serve this request", -1);
        return;
    }
    /* Hold the connection until the upstream answers; watch for hang-ups. */
    evhtp_request_pause(req);
    f->paused_req = 1;
    evhtp_connection_t *conn = evhtp_request_get_connection(req);
    evhtp_connection_set_hook(conn, evhtp_hook_on_write, (evhtp_hook)on_client_write, f);
    struct bufferevent *bev = evhtp_connection_get_bev(conn);
    if (bev) {
        f->dc_watch = event_new(s->base, bufferevent_getfd(bev), EV_READ | EV_PERSIST, on_client_readable, f);
        if (f->dc_watch)
            event_add(f->dc_watch, NULL);
    }
    attempt_start(f);
}

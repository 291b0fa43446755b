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

#include <openssl/evp.h>

#include "kt/arena.h"
#include "kt/audit.h"
#include "kt/breaker.h"
#include "kt/health.h"
#include "kt/policy.h"
#include "kt/ratelimit.h"
#include "kt/strategy.h"
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
#define MAX_ATTEMPTS 16
#define COMPLETION_AUDIT_MAX 16384
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

    /* client */
    const struct kt_client_key *key;   /* NULL without server.auth */
    struct kt_policy_result pol;       /* every decision, both phases */

    /* routing */
    struct kt_target_rt *cands[MAX_CANDIDATES];
    size_t ncands, cur;
    struct kt_breaker_ticket ticket;
    int have_ticket;
    struct { const char *target; int status; uint64_t ms; const char *error; } att[MAX_ATTEMPTS];
    size_t natt;
    int attempts_on_cur, attempts_total;
    struct event *retry_timer;

    /* the current upstream attempt */
    struct kt_target_rt *trt;
    struct kt_buf up_body;
    struct kt_upcall *call;
    struct kt_mockcall *mock;
    int up_status, retry_after;
    uint64_t attempt_t0_us;

    /* response */
    struct kt_buf resp;            /* collected body (JSON or an error) */
    struct kt_sse_parser sse;
    int sse_inited;
    struct kt_stream_dec *dec;     /* upstream events → IR */
    struct kt_stream_enc *enc;     /* IR → client events; NULL = relay bytes as they are */
    struct kt_policy_stream *ps;   /* response policies on the stream */
    struct kt_buf completion;      /* response text for the audit log (bounded) */
    struct kt_buf out;             /* bytes for the client, reused */
    struct evbuffer *chunk;        /* one chunk on its way to evhtp, reused */
    struct kt_usage usage;
    int upstream_paused;
    int hidden_usage;              /* we asked upstream for usage the client did not */
    struct event *dc_watch;        /* client-gone watch while paused */
    struct kt_flow *flush_prev, *flush_next;   /* on s->flush_head */
};

static void flow_finish(struct kt_flow *f, int status);
static void attempt_start(struct kt_flow *f);

/* ---- small helpers ----------------------------------------------------- */

static const char *hdr_in(struct kt_flow *f, const char *name)
{
    return f->req ? evhtp_header_find(f->req->headers_in, name) : NULL;
}

/* hdr_out: k is always a literal, so only the value is copied;
 * hdr_out_static: v lives as long as the worker (a literal, a target id). */
static void hdr_out(struct kt_flow *f, const char *k, const char *v)
{
    evhtp_headers_add_header(f->req->headers_out, evhtp_header_new(k, v, 0, 1));
}

static void hdr_out_static(struct kt_flow *f, const char *k, const char *v)
{
    evhtp_headers_add_header(f->req->headers_out, evhtp_header_new(k, v, 0, 0));
}

/* unpause_client: evhtp reads again (from its resume callback, later in
 * this loop pass). The hang-up watch stays until the flow is freed: were it
 * dropped first, the fd would have no read event for a moment and libevent
 * would tell the kernel twice (an epoll_ctl per request). While both watch,
 * a hang-up is seen by whichever runs first; either frees the connection. */
static void unpause_client(struct kt_flow *f)
{
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
        hdr_out_static(f, "x-kt-target", f->trt->t->id);
    if (f->pol.nd) {
        char ph[256];
        kt_policy_header(&f->pol, ph, sizeof ph);
        hdr_out(f, "x-kt-policy", ph);
    }
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

/* Buffers that grew past this are freed rather than kept in the cache, so
 * one huge response does not pin its memory in an idle worker. */
#define FLOW_CACHE_BUF_MAX (256u << 10)

static void flow_release(struct kt_flow *f)
{
    kt_buf_free(&f->up_body);
    kt_buf_free(&f->resp);
    kt_buf_free(&f->out);
    kt_buf_free(&f->completion);
    if (f->chunk)
        evbuffer_free(f->chunk);
    kt_arena_free(&f->arena);
    free(f);
}

static void buf_recycle(struct kt_buf *b)
{
    if (b->cap > FLOW_CACHE_BUF_MAX)
        kt_buf_free(b);
    else
        kt_buf_reset(b);
}

/* flow_new: a zeroed flow, from the server's cache when it has one: the
 * flow keeps its buffers' capacity and its arena's first block, so a
 * request in the steady state mallocs none of them. */
static struct kt_flow *flow_new(struct kt_srv *s)
{
    if (s->nflow_cache == 0) {
        struct kt_flow *f = calloc(1, sizeof *f);
        if (f)
            kt_arena_init(&f->arena, 16384);
        return f;
    }
    struct kt_flow *f = s->flow_cache[--s->nflow_cache];
    struct kt_buf up_body = f->up_body, resp = f->resp, out = f->out, completion = f->completion;
    struct kt_arena arena = f->arena;
    struct evbuffer *chunk = f->chunk;
    memset(f, 0, sizeof *f);
    f->up_body = up_body;
    f->resp = resp;
    f->out = out;
    f->completion = completion;
    f->arena = arena;
    f->chunk = chunk;
    return f;
}

/* flush_queued: f is on s->flush_head (bytes waiting for flush_due) */
static int flush_queued(const struct kt_flow *f)
{
    return f->flush_prev != NULL || f->s->flush_head == f;
}

static void flush_unlink(struct kt_flow *f)
{
    if (!flush_queued(f))
        return;
    if (f->flush_prev)
        f->flush_prev->flush_next = f->flush_next;
    else
        f->s->flush_head = f->flush_next;
    if (f->flush_next)
        f->flush_next->flush_prev = f->flush_prev;
    f->flush_prev = f->flush_next = NULL;
}

static void flow_free(struct kt_flow *f)
{
    flush_unlink(f);
    call_cancel(f);
    if (f->retry_timer)
        event_free(f->retry_timer);
    if (f->dc_watch)
        event_free(f->dc_watch);
    if (f->sse_inited)
        kt_sse_parser_free(&f->sse);
    struct kt_srv *s = f->s;
    if (s->nflow_cache == KT_SRV_FLOW_CACHE || s->stopping) {
        flow_release(f);
        return;
    }
    buf_recycle(&f->up_body);
    buf_recycle(&f->resp);
    buf_recycle(&f->out);
    buf_recycle(&f->completion);
    if (f->chunk)
        evbuffer_drain(f->chunk, evbuffer_get_length(f->chunk));
    kt_arena_reset(&f->arena);
    s->flow_cache[s->nflow_cache++] = f;
}

void kt_flow_srv_free(struct kt_srv *s)
{
    while (s->nflow_cache)
        flow_release(s->flow_cache[--s->nflow_cache]);
    if (s->flush_ev) {
        event_free(s->flush_ev);
        s->flush_ev = NULL;
    }
}

/* flush_due: write every stream's queued bytes. Runs once the callback that
 * queued them (usually one curl pass: events, then the stream's end) is
 * done, so a stream's last events and its final chunk leave in one write. */
static void flush_due(evutil_socket_t fd, short what, void *arg)
{
    struct kt_srv *s = arg;
    while (s->flush_head) {
        struct kt_flow *f = s->flush_head;
        flush_unlink(f);
        if (f->req)
            kt_srv_flush(s, f->req);
    }
}

/* flush_later: queue f's client bytes for flush_due, later in this loop
 * pass (an active event, not a timer: no epoll_wait before it runs). */
static void flush_later(struct kt_flow *f)
{
    struct kt_srv *s = f->s;
    if (flush_queued(f))
        return;
    if (s->flush_ev == NULL && (s->flush_ev = event_new(s->base, -1, 0, flush_due, s)) == NULL) {
        kt_srv_flush(s, f->req);
        return;
    }
    f->flush_prev = NULL;
    f->flush_next = s->flush_head;
    if (s->flush_head)
        s->flush_head->flush_prev = f;
    s->flush_head = f;
    event_active(s->flush_ev, EV_TIMEOUT, 1);
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
        /* A half-open trial slot we hold was never judged: give it back. */
        if (f->have_ticket && f->s->state && f->trt) {
            kt_breaker_release(f->s->state, f->trt->t->id, &f->ticket, NULL);
            f->have_ticket = 0;
        }
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

static const char *result_name(enum kt_upcall_result r)
{
    static const char *const names[] = { "ok", "timeout", "connect", "io", "aborted" };
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "error";
}

static void note_attempt(struct kt_flow *f, int status, const char *error)
{
    if (f->natt >= MAX_ATTEMPTS || f->trt == NULL)
        return;
    f->att[f->natt].target = f->trt->t->id;
    f->att[f->natt].status = status;
    f->att[f->natt].ms = (kt_now_us() - f->attempt_t0_us) / 1000u;
    f->att[f->natt].error = error;
    f->natt++;
}

/* audit_write: the one record of this request (SPEC §4 audit-logger). */
static void audit_write(struct kt_flow *f, int status)
{
    struct kt_srv *s = f->s;
    if (s->audit == NULL)
        return;
    const struct kt_cfg_audit *ac = &s->cfg->policies.audit;
    struct kt_audit_decision dec[KT_POLICY_MAX_DECISIONS];
    for (size_t i = 0; i < f->pol.nd; i++)
        dec[i] = (struct kt_audit_decision){ f->pol.d[i].policy, f->pol.d[i].action,
                                             f->pol.d[i].detail[0] ? f->pol.d[i].detail : NULL,
                                             f->pol.d[i].score };
    struct kt_audit_attempt att[MAX_ATTEMPTS];
    for (size_t i = 0; i < f->natt; i++)
        att[i] = (struct kt_audit_attempt){ f->att[i].target, f->att[i].status, f->att[i].ms, f->att[i].error };
    const struct kt_target *t = f->trt ? f->trt->t : NULL;
    struct kt_audit_record r = {
        .request_id = f->rid,
        .client_key_id = f->key ? f->key->id : NULL,
        .pack_name = s->cfg->pack.name, .pack_version = s->cfg->pack.version,
        .endpoint = f->cfmt == KT_FMT_ANTHROPIC ? "/v1/messages" : "/v1/chat/completions",
        .client_format = kt_format_name(f->cfmt),
        .stream = f->ireq.stream,
        .target = t ? t->id : NULL,
        .model = t ? t->model : f->ireq.model,
        .status = status,
        .decisions = dec, .n_decisions = f->pol.nd,
        .usage = { f->usage.input > 0 ? f->usage.input : 0, f->usage.output > 0 ? f->usage.output : 0,
                   f->usage.cache_read > 0 ? f->usage.cache_read : 0,
                   f->usage.cache_creation > 0 ? f->usage.cache_creation : 0 },
        .latency_ms = (kt_now_us() - f->t0_us) / 1000u,
        .attempts = att, .n_attempts = f->natt,
    };
    if (t && t->pricing.has) {
        r.has_cost = 1;
        r.cost_usd = kt_audit_cost_usd(t->pricing.prompt, t->pricing.completion,
                                       kt_usage_prompt_total(&f->usage) > 0 ? kt_usage_prompt_total(&f->usage) : 0,
                                       r.usage.output);
    }
    /* Prompts and completions only when asked for, and never for a target
     * that promises zero data retention (or when no target was reached). */
    if (ac->log_all_access && t && !t->data_policy.zero_data_retention) {
        r.prompt = f->up_body.len ? f->up_body.data : f->body;
        r.completion = f->completion.data;
    }
    if (kt_audit_writer_log(s->audit, &r) != 0)
        kt_error("request %s: audit record could not be queued", f->rid);
}

static void flow_finish(struct kt_flow *f, int status)
{
    if (f->phase == PH_DONE)
        return;
    f->phase = PH_DONE;
    struct kt_srv *s = f->s;
    s->metrics.tokens_in += f->usage.input > 0 ? (uint64_t)f->usage.input : 0;
    s->metrics.tokens_out += f->usage.output > 0 ? (uint64_t)f->usage.output : 0;
    /* Tokens are known only now: charge them to the target's budget and
     * to the client key's. */
    long tokens = kt_usage_prompt_total(&f->usage) + (f->usage.output > 0 ? f->usage.output : 0);
    char key[KT_STATE_KEY_MAX];
    if (s->state && tokens > 0 && f->trt && f->trt->t->rate_limit.tokens_per_minute > 0 &&
        kt_ratelimit_key(key, sizeof key, 't', f->trt->t->id, "tpm") == 0)
        kt_ratelimit_charge(s->state, key, &s->route[f->trt - s->targets].tpm, (uint64_t)tokens,
                            kt_wall_ms(), NULL);
    if (s->state && tokens > 0 && f->key && f->key->rate_limit.tokens_per_minute > 0 &&
        kt_ratelimit_key(key, sizeof key, 'k', f->key->id, "tpm") == 0) {
        struct kt_ratelimit lim = { (uint64_t)f->key->rate_limit.tokens_per_minute, 60000 };
        kt_ratelimit_charge(s->state, key, &lim, (uint64_t)tokens, kt_wall_ms(), NULL);
    }
    audit_write(f, status);
    kt_debug("request %s done: status %d target %s latency %lluus", f->rid, status,
             f->trt ? f->trt->t->id : "-", (unsigned long long)(kt_now_us() - f->t0_us));
    kt_srv_request_done(s);
}

/* ---- choosing targets -------------------------------------------------- */

/* pick_candidates: the targets the client's model names (by model or id),
 * else all; then the strategy orders them, skipping open circuits,
 * unhealthy targets and exhausted rate limits. 0, or the status to answer. */
static int pick_candidates(struct kt_flow *f, long *retry_after_s)
{
    struct kt_srv *s = f->s;
    const struct kt_providers *p = &s->cfg->providers;
    struct kt_strategy_target cands[MAX_CANDIDATES];
    size_t n = 0;
    const char *model = f->ireq.model;
    enum kt_route_strategy strat = s->strategy;
    if (model) {
        for (size_t i = 0; i < p->ntargets && n < MAX_CANDIDATES; i++)
            if (strcmp(p->targets[i].model, model) == 0 || strcmp(p->targets[i].id, model) == 0)
                cands[n++] = s->route[i];
        if (n > 0 && strat == KT_STRATEGY_FALLBACK) {
            /* The named targets first, then the others as fallbacks. */
            for (size_t i = 0; i < p->ntargets && n < MAX_CANDIDATES; i++) {
                int have = 0;
                for (size_t k = 0; k < n; k++)
                    if (cands[k].index == i)
                        have = 1;
                if (!have)
                    cands[n++] = s->route[i];
            }
        } else if (n > 1 && strat == KT_STRATEGY_SINGLE) {
            strat = KT_STRATEGY_FALLBACK;
        }
    }
    if (n == 0)
        for (size_t i = 0; i < p->ntargets && n < MAX_CANDIDATES; i++)
            cands[n++] = s->route[i];
    if (s->state == NULL) {
        f->ncands = strat == KT_STRATEGY_SINGLE ? 1 : n;
        for (size_t i = 0; i < f->ncands; i++)
            f->cands[i] = &s->targets[cands[i].index];
        return 0;
    }
    size_t order[MAX_CANDIDATES];
    struct kt_strategy_result res;
    struct kt_err err;
    kt_strategy_plan(s->state, strat, &s->wrr, &s->breaker, cands, n, kt_wall_ms(), order, NULL, &res, &err);
    if (res.n == 0) {
        *retry_after_s = res.retry_after_ms ? (long)((res.retry_after_ms + 999) / 1000) : -1;
        return res.http_status ? res.http_status : 503;
    }
    f->ncands = res.n;
    for (size_t i = 0; i < res.n; i++)
        f->cands[i] = &s->targets[cands[order[i]].index];
    return 0;
}

/* admit: claim the current candidate (rate limit, breaker). 0 admitted;
 * otherwise move to the next candidate and try again; the status to answer
 * when none is left. */
static int admit(struct kt_flow *f, long *retry_after_s)
{
    struct kt_srv *s = f->s;
    if (s->state == NULL)
        return 0;
    for (;;) {
        struct kt_target_rt *rt = f->cands[f->cur];
        uint64_t ra_ms = 0;
        struct kt_err err;
        int rc = kt_strategy_admit(s->state, &s->route[rt - s->targets], &s->breaker, kt_wall_ms(),
                                   &f->ticket, &ra_ms, &err);
        if (rc == 0) {
            f->have_ticket = 1;
            return 0;
        }
        if (f->cur + 1 < f->ncands) {
            f->cur++;
            f->attempts_on_cur = 0;
            continue;
        }
        *retry_after_s = ra_ms ? (long)((ra_ms + 999) / 1000) : -1;
        return rc == KT_ELIMIT ? 429 : 503;
    }
}

/* report: the attempt's outcome to the breaker and the latency average. */
static void report(struct kt_flow *f, int success)
{
    struct kt_srv *s = f->s;
    if (s->state == NULL || f->trt == NULL)
        return;
    uint64_t now = kt_wall_ms();
    if (f->have_ticket) {
        kt_breaker_report(s->state, f->trt->t->id, &s->breaker, &f->ticket, success, now, NULL);
        f->have_ticket = 0;
    }
    /* Only least_latency reads the average; a write transaction per request
     * (and LMDB's writer lock across workers) is not free. */
    if (success && s->strategy == KT_STRATEGY_LEAST_LATENCY)
        kt_latency_observe(s->state, f->trt->t->id, (uint32_t)((kt_now_us() - f->attempt_t0_us) / 1000u), NULL);
}

/* ---- upstream callbacks ------------------------------------------------ */

static int write_client(struct kt_flow *f, const char *data, size_t len)
{
    if (f->req == NULL || len == 0)
        return 0;
    if (f->chunk == NULL && (f->chunk = evbuffer_new()) == NULL)
        return -1;
    evbuffer_add(f->chunk, data, len);
    evhtp_send_reply_chunk(f->req, f->chunk);   /* copies and frames it */
    evbuffer_drain(f->chunk, evbuffer_get_length(f->chunk));
    flush_later(f);
    struct bufferevent *bev = evhtp_connection_get_bev(evhtp_request_get_connection(f->req));
    if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > CLIENT_BACKLOG_PAUSE) {
        f->upstream_paused = 1;
        return 1;
    }
    return 0;
}

static void keep_completion(struct kt_flow *f, const char *text, size_t len)
{
    if (f->s->audit == NULL || !f->s->cfg->policies.audit.log_all_access)
        return;
    if (f->completion.len + len > COMPLETION_AUDIT_MAX)
        len = COMPLETION_AUDIT_MAX > f->completion.len ? COMPLETION_AUDIT_MAX - f->completion.len : 0;
    kt_buf_append(&f->completion, text, len);
}

static int encode_ev(struct kt_flow *f, const struct kt_stream_ev *ev)
{
    return f->enc ? kt_stream_enc_event(f->enc, ev, &f->out) : 0;
}

/* flush_held: text the redactor held back for block `index` (all when < 0)
 * goes out as text deltas before the event that ends the block. */
static void flush_held(struct kt_flow *f, int index)
{
    if (f->ps == NULL)
        return;
    struct kt_buf held = {0};
    int b;
    while ((b = kt_policy_stream_flush(f->ps, index, &held)) >= 0) {
        struct kt_stream_ev ev = { .type = KT_EV_TEXT_DELTA, .index = b, .text = held.data, .len = held.len };
        keep_completion(f, held.data, held.len);
        encode_ev(f, &ev);
        if (index >= 0)
            break;
    }
    kt_buf_free(&held);
}

/* on_ir_event: one upstream event in canonical form: usage bookkeeping,
 * response policies, then the client's encoding. */
static int on_ir_event(void *ud, struct kt_stream_ev *ev)
{
    struct kt_flow *f = ud;
    switch (ev->type) {
    case KT_EV_MESSAGE_START:
    case KT_EV_USAGE:
    case KT_EV_FINISH:
        kt_usage_merge(&f->usage, &ev->usage);
        break;
    default:
        break;
    }
    if (f->enc == NULL)
        return 0;
    if (ev->type == KT_EV_BLOCK_STOP)
        flush_held(f, ev->index);
    else if (ev->type == KT_EV_FINISH || ev->type == KT_EV_DONE || ev->type == KT_EV_ERROR)
        flush_held(f, -1);
    if (ev->type == KT_EV_TEXT_DELTA) {
        if (f->ps) {
            struct kt_policy_result pr = {0};
            kt_policy_stream_event(f->ps, ev, &pr);
            kt_policy_result_merge(&f->pol, &pr);
            if (ev->len == 0)
                return 0;   /* all held back for now */
        }
        keep_completion(f, ev->text, ev->len);
    }
    return encode_ev(f, ev);
}

static int on_sse_event(void *ud, const char *event, const char *data, size_t len)
{
    struct kt_flow *f = ud;
    struct kt_err err;
    if (kt_stream_dec_feed(f->dec, event, data, len, on_ir_event, f, &err) != 0)
        kt_debug("request %s: upstream event not understood: %s", f->rid, err.msg);
    return 0;
}

static void add_route_headers(struct kt_flow *f)
{
    hdr_out_static(f, "x-kt-target", f->trt->t->id);
    if (f->cur > 0)
        hdr_out_static(f, "x-kt-fallback", "true");
    if (f->attempts_total > 1) {
        char n[16];
        snprintf(n, sizeof n, "%d", f->attempts_total);
        hdr_out(f, "x-kt-attempts", n);
    }
    if (f->pol.nd) {
        char ph[256];
        kt_policy_header(&f->pol, ph, sizeof ph);
        hdr_out(f, "x-kt-policy", ph);
    }
}

static void start_client_stream(struct kt_flow *f)
{
    unpause_client(f);
    hdr_out_static(f, "content-type", "text/event-stream");
    hdr_out_static(f, "cache-control", "no-cache");
    add_route_headers(f);
    kt_srv_last_on_conn(f->s, f->req);
    evhtp_send_reply_chunk_start(f->req, EVHTP_RES_OK);
    f->phase = PH_STREAMING;
    f->s->metrics.stream_requests++;
    kt_srv_count_status(f->s, 200);
    kt_sse_parser_init(&f->sse, 0);
    f->sse_inited = 1;
    enum kt_format tfmt = f->trt->t->format;
    f->dec = kt_stream_dec_new(&f->arena, tfmt);
    int policies = kt_policy_chain_has_response_phase(f->s->chain);
    if (tfmt != f->cfmt || policies || f->hidden_usage) {
        struct kt_stream_opts o = { .include_usage = f->ireq.include_usage && !f->hidden_usage };
        f->enc = kt_stream_enc_new(&f->arena, f->cfmt, &o);
        if (policies)
            f->ps = kt_policy_stream_new(f->s->chain, &f->arena);
    }
}

static void up_headers(void *ud, int status, const char *ctype, int retry_after)
{
    struct kt_flow *f = ud;
    f->up_status = status;
    f->retry_after = retry_after;
    if (status >= 200 && status < 300 && f->ireq.stream && f->req) {
        report(f, 1);
        start_client_stream(f);
    }
}

static int up_data(void *ud, const char *data, size_t len)
{
    struct kt_flow *f = ud;
    if (f->req == NULL)
        return -1;
    if (f->phase == PH_STREAMING) {
        struct kt_err err;
        kt_buf_reset(&f->out);
        if (kt_sse_parser_feed(&f->sse, data, len, on_sse_event, f, &err) < 0)
            kt_warn("request %s: bad upstream stream: %s", f->rid, err.msg);
        if (f->enc == NULL)
            return write_client(f, data, len);   /* same format: the bytes as they came */
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
    if (r != KT_UP_OK)
        return rt->on_connect;   /* refused, reset or unreachable before any byte */
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
    int same = f->attempts_on_cur < p->retry.max_attempts;
    if (same) {
        long base = p->retry.backoff_ms;
        for (int i = 1; i < f->attempts_on_cur && base < p->retry.max_backoff_ms; i++)
            base *= 2;
        if (base > p->retry.max_backoff_ms)
            base = p->retry.max_backoff_ms;
        /* Full jitter keeps workers from retrying in lockstep. */
        delay_ms = base > 0 ? (long)(kt_random_u64() % (uint64_t)base) : 0;
        if (retry_after_s > 0) {
            if ((long)retry_after_s * 1000 > p->retry.max_backoff_ms && f->cur + 1 < f->ncands)
                same = 0;   /* that long a wait: another target is better */
            else
                delay_ms = (long)retry_after_s * 1000;
        }
    }
    if (!same) {
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

static void send_retry_after(struct kt_flow *f, long seconds)
{
    if (seconds >= 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%ld", seconds);
        hdr_out(f, "retry-after", ra);
    }
}

static void reply_upstream_error(struct kt_flow *f)
{
    enum kt_format tfmt = f->trt->t->format;
    unpause_client(f);
    send_retry_after(f, f->retry_after);
    add_route_headers(f);
    if (tfmt == f->cfmt && f->resp.len > 0) {
        /* Same format: the provider's own error, as it sent it. */
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
    flow_finish(f, status);
    kt_srv_reply_json(f->s, f->req, status, out.data, out.len);
    kt_buf_free(&out);
}

static int collect_text(void *ud, enum kt_text_place place, enum kt_role role, const char *text,
                        size_t len, const char **repl, size_t *repl_len)
{
    if (place == KT_TEXT_MESSAGE)
        keep_completion(ud, text, len);
    return 0;
}

static void reply_response(struct kt_flow *f)
{
    enum kt_format tfmt = f->trt->t->format;
    struct kt_response resp;
    struct kt_err err;
    if (kt_wire_decode_response(tfmt, f->resp.data ? f->resp.data : "", f->resp.len, &f->arena,
                                &resp, &err) != 0) {
        reply_error(f, 502, KT_IRE_API_ERROR, "bad_upstream_response",
                    "the provider sent a response ktd could not read", -1);
        return;
    }
    f->usage = resp.usage;
    struct kt_policy_result pr = {0};
    kt_policy_response(f->s->chain, &resp, &f->arena, &pr);
    kt_policy_result_merge(&f->pol, &pr);
    if (pr.blocked) {
        f->s->metrics.policy_blocks++;
        reply_error(f, pr.http_status, pr.http_status == 400 ? KT_IRE_POLICY_VIOLATION : KT_IRE_API_ERROR,
                    pr.policy, pr.message, -1);
        return;
    }
    kt_ir_response_texts(&resp, &f->arena, collect_text, f);
    unpause_client(f);
    add_route_headers(f);
    flow_finish(f, f->up_status);
    if (tfmt == f->cfmt && !resp.modified) {
        kt_srv_reply_json(f->s, f->req, f->up_status, f->resp.data, f->resp.len);
    } else {
        kt_buf_reset(&f->out);
        kt_wire_encode_response(f->cfmt, &resp, &f->out);
        kt_srv_reply_json(f->s, f->req, f->up_status, f->out.data, f->out.len);
    }
}

/* end_stream: the upstream stream ended (well or not); close the client's. */
static void end_stream(struct kt_flow *f, enum kt_upcall_result r, const char *errmsg)
{
    struct kt_err err;
    kt_buf_reset(&f->out);
    if (r == KT_UP_OK) {
        kt_sse_parser_finish(&f->sse, on_sse_event, f, &err);
        if (f->enc) {
            flush_held(f, -1);
            kt_stream_enc_finish(f->enc, &f->out);
        }
        note_attempt(f, f->up_status, NULL);
    } else {
        struct kt_ir_error e;
        kt_ir_error_make(&e, &f->arena, r == KT_UP_TIMEOUT ? KT_IRE_TIMEOUT : KT_IRE_API_ERROR,
                         r == KT_UP_TIMEOUT ? 504 : 502, "upstream_error",
                         r == KT_UP_TIMEOUT ? "the provider stream timed out"
                                            : "the provider stream broke off");
        if (f->enc) {
            flush_held(f, -1);
            kt_stream_enc_error(f->enc, &e, &f->out);
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
        note_attempt(f, f->up_status, result_name(r));
    }
    write_client(f, f->out.data, f->out.len);
    flow_finish(f, r == KT_UP_OK ? 200 : (r == KT_UP_TIMEOUT ? 504 : 502));
    /* The reply is chunked, so chunk_end queues the last chunk and evhtp
     * cannot finish (and free) the request before the flush sends it. */
    evhtp_send_reply_chunk_end(f->req);
    flush_later(f);
}

static void up_done(void *ud, enum kt_upcall_result r, int status, const char *errmsg)
{
    struct kt_flow *f = ud;
    f->call = NULL;
    f->mock = NULL;
    if (f->req == NULL)
        return;
    if (f->phase == PH_STREAMING) {
        end_stream(f, r, errmsg);
        return;
    }
    if (r != KT_UP_OK || status >= 400 || status < 200) {
        f->s->metrics.upstream_errors++;
        note_attempt(f, r == KT_UP_OK ? status : 0, r == KT_UP_OK ? NULL : result_name(r));
        /* 4xx other than 429 is the request's fault, not the target's. */
        report(f, r == KT_UP_OK && status < 500 && status != 429);
        kt_info("request %s: target %s attempt %d failed: %s (status %d)", f->rid, f->trt->t->id,
                f->attempts_total, r != KT_UP_OK ? (errmsg ? errmsg : "error") : "HTTP error", status);
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
    note_attempt(f, status, NULL);
    report(f, 1);
    reply_response(f);
}

static const struct kt_upcall_cbs up_cbs = { up_headers, up_data, up_done };

/* ---- attempts ---------------------------------------------------------- */

/* fit_context: the target's max_messages drops the oldest non-system
 * messages; an estimate (4 bytes a token) over max_context_tokens is the
 * client's problem: 400. 0, or -1 when a reply was sent. */
static int fit_context(struct kt_flow *f, const struct kt_target *t)
{
    struct kt_request *r = &f->ireq;
    if (t->max_messages > 0 && r->nmsgs > (size_t)t->max_messages) {
        size_t drop = r->nmsgs - (size_t)t->max_messages;
        /* Never start on a tool result whose call was dropped. */
        while (drop < r->nmsgs && r->msgs[drop].role != KT_ROLE_USER)
            drop++;
        for (size_t i = drop; i < r->nmsgs && r->msgs[i].role == KT_ROLE_USER; i++) {
            int orphan = 0;
            for (size_t k = 0; k < r->msgs[i].nparts; k++)
                if (r->msgs[i].parts[k].type == KT_PART_TOOL_RESULT)
                    orphan = 1;
            if (!orphan)
                break;
            drop = i + 1;
        }
        if (drop < r->nmsgs) {
            r->msgs += drop;
            r->nmsgs -= drop;
            r->modified = 1;
        }
    }
    if (t->max_context_tokens > 0) {
        size_t bytes = 0;
        for (size_t i = 0; i < r->nsystem; i++)
            bytes += r->system[i].len;
        for (size_t i = 0; i < r->nmsgs; i++)
            for (size_t k = 0; k < r->msgs[i].nparts; k++) {
                const struct kt_part *p = &r->msgs[i].parts[k];
                bytes += p->len + (p->input_json ? strlen(p->input_json) : 0);
            }
        long est = (long)(bytes / 4) + 4 * (long)r->nmsgs;
        if (est > t->max_context_tokens) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "the request has about %ld tokens of context; this target accepts at most %d",
                     est, t->max_context_tokens);
            reply_error(f, 400, KT_IRE_INVALID_REQUEST, "context_length_exceeded", msg, -1);
            return -1;
        }
    }
    return 0;
}

static void attempt_start(struct kt_flow *f)
{
    if (f->req == NULL)
        return;
    long ra = -1;
    int st = admit(f, &ra);
    if (st != 0) {
        f->trt = f->natt ? f->trt : NULL;
        if (st == 429)
            reply_error(f, 429, KT_IRE_RATE_LIMIT, "rate_limited", "rate limit exceeded for every target", ra);
        else
            reply_error(f, 503, KT_IRE_OVERLOADED, "no_target", "no target is available (circuits open)", ra);
        return;
    }
    f->trt = f->cands[f->cur];
    const struct kt_target *t = f->trt->t;
    f->attempts_on_cur++;
    f->attempts_total++;
    f->s->metrics.upstream_attempts++;
    f->up_status = 0;
    f->retry_after = -1;
    kt_buf_reset(&f->resp);
    f->attempt_t0_us = kt_now_us();

    if (fit_context(f, t) != 0)
        return;
    /* An OpenAI stream reports usage only when asked; the audit record needs
     * it, so ask upstream and keep the extra chunk from a client that did not. */
    if (f->ireq.stream && t->format == KT_FMT_OPENAI && !f->ireq.include_usage && f->s->audit) {
        f->ireq.modified = 1;
        f->ireq.include_usage = 1;
        f->hidden_usage = 1;
    }
    kt_buf_reset(&f->up_body);
    if (kt_wire_encode_request(t->format, &f->ireq, t->model, &f->up_body) != 0) {
        reply_error(f, 400, KT_IRE_INVALID_REQUEST, "translation_error",
                    "the request cannot be expressed in the target's format", -1);
        return;
    }

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
     * target has no key of its own and ktd does no client auth itself. */
    const char *hdrs[80];
    size_t n = 0;
    for (char **h = f->trt->hdrs; *h && n < 70; h++)
        hdrs[n++] = *h;
    if (t->api_key == NULL && !f->s->cfg->server.auth_enabled) {
        const char *a = hdr_in(f, "authorization"), *x = hdr_in(f, "x-api-key");
        if (t->format == KT_FMT_ANTHROPIC && x)
            hdrs[n++] = kt_arena_concat(&f->arena, "x-api-key: ", x);
        else if (a)
            hdrs[n++] = kt_arena_concat(&f->arena, "Authorization: ", a);
        else if (x)
            hdrs[n++] = kt_arena_concat(&f->arena, "Authorization: Bearer ", x);
    }
    const char *beta = hdr_in(f, "anthropic-beta");
    if (beta && t->format == KT_FMT_ANTHROPIC && f->cfmt == KT_FMT_ANTHROPIC)
        hdrs[n++] = kt_arena_concat(&f->arena, "anthropic-beta: ", beta);
    if (f->ireq.stream)
        hdrs[n++] = "Accept: text/event-stream";
    hdrs[n++] = kt_arena_concat(&f->arena, "x-request-id: ", f->rid);
    hdrs[n] = NULL;

    long timeout_s = f->ireq.stream ? t->stream_timeout_seconds : t->timeout_seconds;
    struct kt_upcall_req ur = {
        .url = f->trt->url, .headers = hdrs, .body = f->up_body.data, .body_len = f->up_body.len,
        .timeout_ms = timeout_s * 1000,
        .connect_timeout_ms = timeout_s * 1000 < 10000 ? timeout_s * 1000 : 10000,
        .stream = f->ireq.stream,
    };
    f->call = kt_upcall_start(f->s->up, &ur, &up_cbs, f);
    if (f->call == NULL)
        reply_error(f, 500, KT_IRE_API_ERROR, "internal_error", "cannot start the upstream request", -1);
}

/* ---- client authentication ---------------------------------------------- */

/* authenticate: with server.auth, the client presents a key the way its
 * SDK does (Authorization: Bearer, or x-api-key); ktd stores only SHA-256
 * hashes of keys. 0, or the status to answer (401, 403). */
static int authenticate(struct kt_flow *f, const char **why)
{
    const struct kt_server *sv = &f->s->cfg->server;
    if (!sv->auth_enabled)
        return 0;
    const char *key = hdr_in(f, "x-api-key");
    const char *a = hdr_in(f, "authorization");
    if (key == NULL && a && strncasecmp(a, "Bearer ", 7) == 0)
        key = a + 7;
    if (key == NULL || key[0] == '\0') {
        *why = "missing API key: send Authorization: Bearer KEY or x-api-key";
        return 401;
    }
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(key, strlen(key), md, &mdlen, EVP_sha256(), NULL);
    char hex[65];
    kt_hex_encode(md, 32, hex);
    for (size_t i = 0; i < sv->nkeys; i++) {
        if (strcmp(sv->keys[i].sha256, hex) != 0)
            continue;
        f->key = &sv->keys[i];
        if (f->key->models.n == 0 || f->ireq.model == NULL)
            return 0;
        for (size_t m = 0; m < f->key->models.n; m++)
            if (strcmp(f->key->models.v[m], f->ireq.model) == 0)
                return 0;
        *why = "this API key may not use that model";
        return 403;
    }
    *why = "invalid API key";
    return 401;
}

/* client_rate_limit: per client key limits, the "k:<id>:rpm" and
 * "k:<id>:tpm" keys (tokens are charged after the response, in
 * flow_finish, and checked here before the next request). */
static int client_rate_limit(struct kt_flow *f, long *retry_after_s)
{
    if (f->key == NULL || f->s->state == NULL)
        return 0;
    const struct kt_rate_limit *rl = &f->key->rate_limit;
    char key[KT_STATE_KEY_MAX];
    uint64_t ra = 0, now = kt_wall_ms();
    if (rl->tokens_per_minute > 0 && kt_ratelimit_key(key, sizeof key, 'k', f->key->id, "tpm") == 0) {
        struct kt_ratelimit lim = { (uint64_t)rl->tokens_per_minute, 60000 };
        if (kt_ratelimit_check(f->s->state, key, &lim, now, &ra, NULL) == KT_ELIMIT) {
            *retry_after_s = (long)((ra + 999) / 1000);
            return 429;
        }
    }
    if (rl->requests_per_minute > 0 && kt_ratelimit_key(key, sizeof key, 'k', f->key->id, "rpm") == 0) {
        struct kt_ratelimit lim = { (uint64_t)rl->requests_per_minute, 60000 };
        if (kt_ratelimit_take(f->s->state, key, &lim, 1, now, &ra, NULL) == KT_ELIMIT) {
            *retry_after_s = (long)((ra + 999) / 1000);
            return 429;
        }
    }
    return 0;
}

/* ---- entry ------------------------------------------------------------- */

void kt_flow_start(struct kt_srv *s, evhtp_request_t *req, enum kt_format fmt, const char *request_id)
{
    struct kt_flow *f = flow_new(s);
    if (f == NULL) {
        kt_srv_reply_error(s, req, fmt, 500, KT_IRE_API_ERROR, "internal_error", "out of memory");
        return;
    }
    f->s = s;
    f->req = req;
    f->cfmt = fmt;
    f->t0_us = kt_now_us();
    size_t rid_len = strnlen(request_id, sizeof f->rid - 1);
    memcpy(f->rid, request_id, rid_len);
    f->rid[rid_len] = '\0';
    s->inflight++;
    evhtp_request_set_hook(req, evhtp_hook_on_request_fini, (evhtp_hook)on_fini, f);

    /* A worker that is draining (reload or stop) still serves requests on
     * connections it already has; they get Connection: close. */
    if (!s->cfg->pack.enabled) {
        reply_error(f, 503, KT_IRE_OVERLOADED, "unavailable", "the gateway is in maintenance (pack disabled)", -1);
        return;
    }
    size_t len = evbuffer_get_length(req->buffer_in);
    if (len > s->cfg->server.max_body_bytes) {
        reply_error(f, 413, KT_IRE_REQUEST_TOO_LARGE, "request_too_large", "request body too large", -1);
        return;
    }
    /* The body made contiguous in place (no copy when it already is); it
     * lives with the evhtp request, which outlives the flow's use of it. */
    const char *body = len ? (const char *)evbuffer_pullup(req->buffer_in, -1) : "";
    if (body == NULL) {
        reply_error(f, 500, KT_IRE_API_ERROR, "internal_error", "out of memory", -1);
        return;
    }
    f->body = body;
    f->body_len = len;

    struct kt_err err = {0};
    if (kt_wire_decode_request(fmt, body, len, &f->arena, &f->ireq, &err) != 0) {
        reply_error(f, 400, KT_IRE_INVALID_REQUEST, "invalid_request", err.msg, -1);
        return;
    }
    const char *why = NULL;
    int st = authenticate(f, &why);
    if (st != 0) {
        reply_error(f, st, st == 401 ? KT_IRE_AUTHENTICATION : KT_IRE_PERMISSION, "unauthorized", why, -1);
        return;
    }
    long ra = -1;
    if (client_rate_limit(f, &ra) != 0) {
        reply_error(f, 429, KT_IRE_RATE_LIMIT, "rate_limited", "rate limit exceeded for this API key", ra);
        return;
    }
    /* An immutable audit log never drops a record: refuse up front when the
     * record could not be queued. */
    if (s->audit && s->cfg->policies.audit.immutable && !kt_audit_writer_has_room(s->audit, KT_AUDIT_RECORD_ESTIMATE)) {
        reply_error(f, 503, KT_IRE_OVERLOADED, "audit_backlog", "the audit log is behind; try again shortly", 1);
        return;
    }
    if (s->chain) {
        kt_policy_request(s->chain, &f->ireq, &f->arena, &f->pol);
        if (f->pol.blocked) {
            s->metrics.policy_blocks++;
            reply_error(f, f->pol.http_status, f->pol.http_status == 400 ? KT_IRE_POLICY_VIOLATION : KT_IRE_API_ERROR,
                        f->pol.policy, f->pol.message, -1);
            return;
        }
    }
    st = pick_candidates(f, &ra);
    if (st != 0) {
        reply_error(f, st, st == 429 ? KT_IRE_RATE_LIMIT : KT_IRE_OVERLOADED,
                    st == 429 ? "rate_limited" : "no_target",
                    st == 429 ? "rate limit exceeded for every target" : "no target is available", ra);
        return;
    }
    /* Hold the connection until the upstream answers; watch for hang-ups.
     * The watch goes on before evhtp stops reading, so the fd keeps a read
     * event throughout and libevent has nothing to tell the kernel. */
    evhtp_connection_t *conn = evhtp_request_get_connection(req);
    evhtp_connection_set_hook(conn, evhtp_hook_on_write, (evhtp_hook)on_client_write, f);
    struct bufferevent *bev = evhtp_connection_get_bev(conn);
    if (bev) {
        f->dc_watch = event_new(s->base, bufferevent_getfd(bev), EV_READ | EV_PERSIST, on_client_readable, f);
        if (f->dc_watch)
            event_add(f->dc_watch, NULL);
    }
    evhtp_request_pause(req);
    f->paused_req = 1;
    attempt_start(f);
}

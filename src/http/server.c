/* server.c: the worker's HTTP front end. Owns: libevhtp setup on the
 * inherited listeners, endpoint dispatch, the small endpoints (/healthz,
 * /readyz, /v1/models, /metrics), error replies in the client's format and
 * the per-target runtime (URLs, auth header lines) built once per worker.
 * The LLM endpoints are handed to flow.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <evhtp.h>
#include <event2/bufferevent_struct.h>   /* ev_write, for kt_srv_flush */

#include "kt/arena.h"
#include "kt/breaker.h"
#include "kt/buf.h"
#include "kt/flow.h"
#include "kt/log.h"
#include "kt/server.h"
#include "kt/util.h"
#include "kt/wire.h"

void kt_srv_count_status(struct kt_srv *s, int status)
{
    if (status < 300)
        s->metrics.responses_2xx++;
    else if (status < 500)
        s->metrics.responses_4xx++;
    else
        s->metrics.responses_5xx++;
}

/* add_header: k is a literal; v is copied (evhtp frees it with the request). */
static void add_header(evhtp_request_t *req, const char *k, const char *v)
{
    evhtp_headers_add_header(req->headers_out, evhtp_header_new(k, v, 0, 1));
}

/* ensure_request_id: the client's x-request-id, else a fresh one; always
 * echoed on the response. */
const char *kt_srv_request_id(evhtp_request_t *req, char *buf, size_t len)
{
    const char *rid = evhtp_header_find(req->headers_in, "x-request-id");
    if (rid && rid[0] && strlen(rid) < len && strlen(rid) <= 128) {
        snprintf(buf, len, "%s", rid);
    } else {
        kt_request_id(buf, len);
    }
    if (evhtp_header_find(req->headers_out, "x-request-id") == NULL)
        add_header(req, "x-request-id", buf);
    return buf;
}

/* Requests served on one connection before it is closed, as nginx's
 * keepalive_requests: the last reply says Connection: close. */
#define KEEPALIVE_REQUESTS 10000

void kt_srv_last_on_conn(struct kt_srv *s, evhtp_request_t *req)
{
    evhtp_connection_t *c = evhtp_request_get_connection(req);
    if (s->stopping || (c && c->num_requests >= KEEPALIVE_REQUESTS))
        evhtp_request_set_keepalive(req, 0);   /* tell the client not to come back here */
}

/* kt_srv_flush: a bufferevent writes only when epoll says the socket is
 * writable, which costs every reply an EPOLLOUT round trip (epoll_ctl,
 * epoll_wait, epoll_ctl) and a loop pass of latency, though a client's
 * socket is nearly always writable. Write now instead, the way nginx does;
 * then run the bufferevent's write callback in this same loop pass, so
 * evhtp still finishes the request (keep-alive, hooks) as usual and the
 * pending EPOLLOUT is cancelled before it reaches the kernel. What the
 * socket does not take stays for the bufferevent. Plain TCP only: a TLS
 * bufferevent must encrypt what it writes. */
void kt_srv_flush(struct kt_srv *s, evhtp_request_t *req)
{
    if (s->cfg->server.tls_cert && s->cfg->server.tls_key)
        return;
    evhtp_connection_t *c = evhtp_request_get_connection(req);
    struct bufferevent *bev = c ? evhtp_connection_get_bev(c) : NULL;
    if (bev == NULL)
        return;
    struct evbuffer *out = bufferevent_get_output(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd < 0 || evbuffer_get_length(out) == 0)
        return;
    evbuffer_unfreeze(out, 1);          /* a socket bufferevent freezes its output's start */
    int n = evbuffer_write(out, fd);
    evbuffer_freeze(out, 1);
    if (n > 0 && evbuffer_get_length(out) == 0)
        event_active(&bev->ev_write, EV_WRITE, 1);
}

void kt_srv_reply_json(struct kt_srv *s, evhtp_request_t *req, int status, const char *body, size_t len)
{
    kt_srv_last_on_conn(s, req);
    add_header(req, "content-type", "application/json");
    evbuffer_add(req->buffer_out, body, len);
    kt_srv_count_status(s, status);
    evhtp_send_reply(req, (evhtp_res)status);
    kt_srv_flush(s, req);
}

void kt_srv_reply_error(struct kt_srv *s, evhtp_request_t *req, enum kt_format fmt, int status,
                        enum kt_ir_err_type type, const char *code, const char *msg)
{
    struct kt_ir_error e = { .http_status = status, .type = type, .message = (char *)msg,
                             .code = (char *)code, .retry_after = -1 };
    struct kt_buf out = {0};
    int send_status = status;
    kt_wire_encode_error(fmt, &e, &out, &send_status);
    /* Our own errors keep the status we chose (e.g. 405, 413). */
    kt_srv_reply_json(s, req, status, out.data ? out.data : "{}", out.len);
    kt_buf_free(&out);
}

/* ---- per-target runtime ------------------------------------------------ */

static char *join_url(const char *base, const char *path)
{
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    /* base_url may already carry /v1 (OpenAI-compatible servers often do). */
    if (bl >= 3 && strncmp(base + bl - 3, "/v1", 3) == 0 && strncmp(path, "/v1", 3) == 0)
        path += 3;
    size_t pl = strlen(path);
    char *u = malloc(bl + pl + 1);
    if (u) {
        memcpy(u, base, bl);
        memcpy(u + bl, path, pl + 1);
    }
    return u;
}

static char *header_line(const char *name, const char *prefix, const char *value)
{
    size_t n = strlen(name) + 2 + strlen(prefix) + strlen(value) + 1;
    char *h = malloc(n);
    if (h)
        snprintf(h, n, "%s: %s%s", name, prefix, value);
    return h;
}

/* Config strategy → routing strategy; the two enums stay separate so the
 * routing library never depends on the config. */
static const enum kt_route_strategy strategy_map[] = {
    [KT_STRAT_SINGLE] = KT_STRATEGY_SINGLE,
    [KT_STRAT_FALLBACK] = KT_STRATEGY_FALLBACK,
    [KT_STRAT_WRR] = KT_STRATEGY_WRR,
    [KT_STRAT_LEAST_LATENCY] = KT_STRATEGY_LEAST_LATENCY,
};

static int build_targets(struct kt_srv *s)
{
    const struct kt_providers *p = &s->cfg->providers;
    s->targets = calloc(p->ntargets, sizeof *s->targets);
    s->route = calloc(p->ntargets, sizeof *s->route);
    if (s->targets == NULL || s->route == NULL || kt_wrr_init(&s->wrr, p->ntargets) != 0)
        return -1;
    s->strategy = strategy_map[p->strategy];
    if (p->breaker.enabled)
        s->breaker = (struct kt_breaker_params){
            .failure_threshold = (unsigned)p->breaker.failure_threshold,
            .window_seconds = (unsigned)p->breaker.window_seconds,
            .cooldown_seconds = (unsigned)p->breaker.cooldown_seconds,
            .half_open_requests = (unsigned)p->breaker.half_open_requests,
        };
    for (size_t i = 0; i < p->ntargets; i++) {
        const struct kt_target *t = &p->targets[i];
        s->route[i] = (struct kt_strategy_target){
            .id = t->id, .weight = t->weight, .index = i,
            .rpm = { (uint64_t)t->rate_limit.requests_per_minute, 60000 },
            .tpm = { (uint64_t)t->rate_limit.tokens_per_minute, 60000 },
            /* A probe verdict older than three missed probes is stale. */
            .health_max_age_ms = t->health_probe.enabled
                ? (uint64_t)(3 * t->health_probe.interval_seconds + t->health_probe.timeout_seconds) * 1000u
                : 0,
        };
    }
    for (size_t i = 0; i < p->ntargets; i++) {
        const struct kt_target *t = &p->targets[i];
        struct kt_target_rt *rt = &s->targets[i];
        rt->t = t;
        if (t->base_url)
            rt->url = join_url(t->base_url, t->format == KT_FMT_ANTHROPIC ? "/v1/messages"
                                                                          : "/v1/chat/completions");
        rt->hdrs = calloc(t->nheaders + 5, sizeof *rt->hdrs);
        if (rt->hdrs == NULL)
            return -1;
        size_t n = 0;
        rt->hdrs[n++] = header_line("Content-Type", "", "application/json");
        if (t->api_key)
            rt->hdrs[n++] = header_line(t->api_key_header, t->api_key_prefix ? t->api_key_prefix : "",
                                        t->api_key);
        if (t->format == KT_FMT_ANTHROPIC)
            rt->hdrs[n++] = header_line("anthropic-version", "", t->anthropic_version);
        for (size_t k = 0; k < t->nheaders; k++)
            rt->hdrs[n++] = header_line(t->headers[k].name, "", t->headers[k].value);
    }
    return 0;
}

static void free_targets(struct kt_srv *s)
{
    if (s->targets == NULL)
        return;
    for (size_t i = 0; i < s->cfg->providers.ntargets; i++) {
        free(s->targets[i].url);
        for (char **h = s->targets[i].hdrs; h && *h; h++)
            free(*h);
        free(s->targets[i].hdrs);
    }
    free(s->targets);
    free(s->route);
    kt_wrr_free(&s->wrr);
    s->targets = NULL;
    s->route = NULL;
}

/* ---- small endpoints --------------------------------------------------- */

static void reply_models(struct kt_srv *s, evhtp_request_t *req)
{
    struct kt_buf b = {0};
    kt_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
    const struct kt_providers *p = &s->cfg->providers;
    for (size_t i = 0; i < p->ntargets; i++) {
        const struct kt_target *t = &p->targets[i];
        int dup = 0;
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->targets[j].model, t->model) == 0)
                dup = 1;
        if (dup)
            continue;
        if (b.data[b.len - 1] != '[')
            kt_buf_putc(&b, ',');
        kt_buf_puts(&b, "{\"id\":");
        kt_buf_json_str(&b, t->model, strlen(t->model));
        kt_buf_puts(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":");
        kt_buf_json_str(&b, t->provider_type ? t->provider_type : t->provider,
                        strlen(t->provider_type ? t->provider_type : t->provider));
        kt_buf_puts(&b, ",\"display_name\":");
        kt_buf_json_str(&b, t->model, strlen(t->model));
        kt_buf_puts(&b, ",\"type\":\"model\"}");
    }
    kt_buf_puts(&b, "],\"has_more\":false}");
    kt_srv_reply_json(s, req, 200, b.data, b.len);
    kt_buf_free(&b);
}

/* reply_ready: ready when the config is loaded, the pack is enabled and at
 * least one target's circuit is not open. */
static void reply_ready(struct kt_srv *s, evhtp_request_t *req)
{
    const struct kt_providers *p = &s->cfg->providers;
    uint64_t now = kt_wall_ms();
    const char *states[p->ntargets ? p->ntargets : 1];
    int usable = 0;
    for (size_t i = 0; i < p->ntargets; i++) {
        states[i] = "closed";
        struct kt_breaker_info info;
        if (s->state && p->breaker.enabled &&
            kt_breaker_peek(s->state, p->targets[i].id, &s->breaker, now, &info, NULL) == 0)
            states[i] = kt_breaker_state_name(info.state);
        if (strcmp(states[i], "open") != 0)
            usable = 1;
    }
    int ready = usable && s->cfg->pack.enabled && !s->stopping;
    struct kt_buf b = {0};
    kt_buf_printf(&b, "{\"status\":\"%s\",\"pack\":", ready ? "ready" : "not_ready");
    kt_buf_json_str(&b, s->cfg->pack.name, strlen(s->cfg->pack.name));
    kt_buf_puts(&b, ",\"targets\":[");
    for (size_t i = 0; i < p->ntargets; i++) {
        kt_buf_printf(&b, "%s{\"id\":", i ? "," : "");
        kt_buf_json_str(&b, p->targets[i].id, strlen(p->targets[i].id));
        kt_buf_printf(&b, ",\"circuit\":\"%s\"}", states[i]);
    }
    kt_buf_puts(&b, "]}");
    kt_srv_reply_json(s, req, ready ? 200 : 503, b.data, b.len);
    kt_buf_free(&b);
}

static void reply_metrics(struct kt_srv *s, evhtp_request_t *req)
{
    const struct kt_metrics *m = &s->metrics;
    struct kt_buf b = {0};
    const char *pack = s->cfg->pack.name;
    kt_buf_printf(&b,
        "# HELP kt_requests_total Requests received by this worker.\n# TYPE kt_requests_total counter\n"
        "kt_requests_total{pack=\"%s\"} %llu\n"
        "# HELP kt_responses_total Responses sent, by status class.\n# TYPE kt_responses_total counter\n"
        "kt_responses_total{pack=\"%s\",class=\"2xx\"} %llu\n"
        "kt_responses_total{pack=\"%s\",class=\"4xx\"} %llu\n"
        "kt_responses_total{pack=\"%s\",class=\"5xx\"} %llu\n"
        "# HELP kt_upstream_attempts_total Upstream attempts, retries included.\n# TYPE kt_upstream_attempts_total counter\n"
        "kt_upstream_attempts_total{pack=\"%s\"} %llu\n"
        "kt_upstream_errors_total{pack=\"%s\"} %llu\n"
        "kt_stream_requests_total{pack=\"%s\"} %llu\n"
        "kt_policy_blocks_total{pack=\"%s\"} %llu\n"
        "kt_tokens_total{pack=\"%s\",direction=\"input\"} %llu\n"
        "kt_tokens_total{pack=\"%s\",direction=\"output\"} %llu\n"
        "# HELP kt_inflight_requests Requests in flight in this worker.\n# TYPE kt_inflight_requests gauge\n"
        "kt_inflight_requests{pack=\"%s\"} %zu\n",
        pack, (unsigned long long)m->requests, pack, (unsigned long long)m->responses_2xx,
        pack, (unsigned long long)m->responses_4xx, pack, (unsigned long long)m->responses_5xx,
        pack, (unsigned long long)m->upstream_attempts, pack, (unsigned long long)m->upstream_errors,
        pack, (unsigned long long)m->stream_requests, pack, (unsigned long long)m->policy_blocks,
        pack, (unsigned long long)m->tokens_in, pack, (unsigned long long)m->tokens_out,
        pack, s->inflight);
    add_header(req, "content-type", "text/plain; version=0.0.4");
    evbuffer_add(req->buffer_out, b.data, b.len);
    kt_srv_count_status(s, 200);
    evhtp_send_reply(req, EVHTP_RES_OK);
    kt_buf_free(&b);
}

/* ---- dispatch ---------------------------------------------------------- */

/* Set on a request whose body went past max_body_bytes (see on_body). */
#define BODY_TOO_LARGE_MARK "x-kt-body-too-large"


struct route {
    const char *path;
    htp_method method;
    int kind;
};
enum { R_CHAT, R_MESSAGES, R_MODELS, R_HEALTHZ, R_READYZ, R_METRICS };
static const struct route routes[] = {
    { "/v1/chat/completions", htp_method_POST, R_CHAT },
    { "/v1/messages", htp_method_POST, R_MESSAGES },
    { "/v1/models", htp_method_GET, R_MODELS },
    { "/healthz", htp_method_GET, R_HEALTHZ },
    { "/readyz", htp_method_GET, R_READYZ },
    { "/metrics", htp_method_GET, R_METRICS },
};

static void on_request(evhtp_request_t *req, void *arg)
{
    struct kt_srv *s = arg;
    s->metrics.requests++;
    char rid[136];
    kt_srv_request_id(req, rid, sizeof rid);
    const char *path = req->uri && req->uri->path && req->uri->path->full ? req->uri->path->full : "/";
    size_t plen = strlen(path);
    while (plen > 1 && path[plen - 1] == '/')
        plen--;
    htp_method method = evhtp_request_get_method(req);
    /* Errors for unknown paths use the format the path suggests. */
    enum kt_format fmt = strstr(path, "/messages") ? KT_FMT_ANTHROPIC : KT_FMT_OPENAI;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strlen(routes[i].path) != plen || strncmp(routes[i].path, path, plen) != 0)
            continue;
        if (method != routes[i].method && !(method == htp_method_HEAD && routes[i].method == htp_method_GET)) {
            add_header(req, "allow", routes[i].method == htp_method_POST ? "POST" : "GET, HEAD");
            kt_srv_reply_error(s, req, fmt, 405, KT_IRE_INVALID_REQUEST, "method_not_allowed",
                               "method not allowed on this endpoint");
            return;
        }
        if (evhtp_header_find(req->headers_in, BODY_TOO_LARGE_MARK)) {
            kt_srv_reply_error(s, req, fmt, 413, KT_IRE_REQUEST_TOO_LARGE, "request_too_large",
                               "request body larger than server.max_body_bytes");
            return;
        }
        switch (routes[i].kind) {
        case R_CHAT: kt_flow_start(s, req, KT_FMT_OPENAI, rid); return;
        case R_MESSAGES: kt_flow_start(s, req, KT_FMT_ANTHROPIC, rid); return;
        case R_MODELS: reply_models(s, req); return;
        case R_HEALTHZ: kt_srv_reply_json(s, req, 200, "{\"status\":\"ok\"}", 15); return;
        case R_READYZ: reply_ready(s, req); return;
        case R_METRICS: reply_metrics(s, req); return;
        }
    }
    kt_srv_reply_error(s, req, fmt, 404, KT_IRE_NOT_FOUND, "not_found", "unknown endpoint");
}

/* on_headers: count header bytes; past server.max_header_bytes the
 * connection is cut (evhtp's parser bounds each line; this bounds all). */
static evhtp_res on_header(evhtp_request_t *req, evhtp_header_t *hdr, void *arg)
{
    struct kt_srv *s = arg;
    size_t sum = 0;
    evhtp_header_t *h;
    TAILQ_FOREACH(h, req->headers_in, next)
        sum += h->klen + h->vlen + 4;
    if (sum > s->cfg->server.max_header_bytes)
        return EVHTP_RES_ERROR;
    return EVHTP_RES_OK;
}

/* A body over max_body_bytes must get a 413 in the client's format, not a
 * cut connection (what evhtp's own limit does). So the body is counted as
 * it arrives; past the limit the rest is drained and the request marked,
 * and on_request answers 413. evhtp's hard limit stays as a backstop
 * against a client that would stream forever. */

static evhtp_res on_body(evhtp_request_t *req, struct evbuffer *buf, void *arg)
{
    struct kt_srv *s = arg;
    if (evhtp_header_find(req->headers_in, BODY_TOO_LARGE_MARK)) {
        evbuffer_drain(buf, evbuffer_get_length(buf));
        return EVHTP_RES_OK;
    }
    if (evbuffer_get_length(req->buffer_in) + evbuffer_get_length(buf) > s->cfg->server.max_body_bytes) {
        evhtp_headers_add_header(req->headers_in, evhtp_header_new(BODY_TOO_LARGE_MARK, "1", 0, 0));
        evbuffer_drain(buf, evbuffer_get_length(buf));
        evbuffer_drain(req->buffer_in, evbuffer_get_length(req->buffer_in));
    }
    return EVHTP_RES_OK;
}

static evhtp_res on_conn_fini(evhtp_connection_t *conn, void *arg)
{
    struct kt_srv *s = arg;
    if (s->nconns)
        s->nconns--;
    return EVHTP_RES_OK;
}

static evhtp_res on_conn_accept(evhtp_connection_t *conn, void *arg)
{
    struct kt_srv *s = arg;
    /* While stopping, a connection accepted a moment before the listener
     * closed is still served (and closed after its request). */
    if (s->cfg->server.max_connections > 0 && s->nconns >= (size_t)s->cfg->server.max_connections) {
        kt_warn("max_connections (%d) reached: refusing a connection", s->cfg->server.max_connections);
        return EVHTP_RES_ERROR;
    }
    s->nconns++;
    evhtp_connection_set_hook(conn, evhtp_hook_on_header, (evhtp_hook)on_header, s);
    evhtp_connection_set_hook(conn, evhtp_hook_on_read, (evhtp_hook)on_body, s);
    evhtp_connection_set_hook(conn, evhtp_hook_on_connection_fini, (evhtp_hook)on_conn_fini, s);
    return EVHTP_RES_OK;
}

int kt_srv_init(struct kt_srv *s, struct event_base *base, const struct kt_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->base = base;
    s->cfg = cfg;
    return build_targets(s);
}

int kt_srv_listen(struct kt_srv *s, const int *fds, size_t n)
{
    const struct kt_server *sv = &s->cfg->server;
    for (size_t i = 0; i < n && i < KT_SRV_MAX_LISTEN; i++) {
        evhtp_t *h = evhtp_new(s->base, s);
        if (h == NULL)
            return -1;
        evhtp_set_gencb(h, on_request, s);
        evhtp_set_post_accept_cb(h, on_conn_accept, s);
        evhtp_set_max_body_size(h, (uint64_t)sv->max_body_bytes * 16 + (1u << 20));
        struct timeval rt = { sv->read_timeout_seconds > 0 ? sv->read_timeout_seconds : 60, 0 };
        struct timeval wt = { 60, 0 };
        evhtp_set_timeouts(h, &rt, &wt);
        /* No libevhtp cap: it closes the socket without telling the client
         * (whose next POST then fails); kt_srv_last_on_conn does it right. */
        evhtp_disable_flag(h, EVHTP_FLAG_ENABLE_100_CONT);
        if (sv->tls_cert && sv->tls_key) {
            /* HTTPS on every listener; TLS 1.2 and newer only. */
            evhtp_ssl_cfg_t tls = {
                .pemfile = sv->tls_cert, .privfile = sv->tls_key,
                .ssl_opts = SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                            SSL_OP_NO_COMPRESSION,
                .scache_type = evhtp_ssl_scache_type_internal,
                .scache_timeout = 300,
            };
            if (evhtp_ssl_init(h, &tls) != 0) {
                kt_error("TLS: cannot load %s / %s", sv->tls_cert, sv->tls_key);
                evhtp_free(h);
                return -1;
            }
        }
        if (evhtp_accept_socket(h, fds[i], 511) != 0) {
            kt_error("cannot serve on listener fd %d", fds[i]);
            evhtp_free(h);
            return -1;
        }
        s->htp[s->nhtp++] = h;
    }
    return 0;
}

void kt_srv_stop_accepting(struct kt_srv *s)
{
    s->stopping = 1;
    for (size_t i = 0; i < s->nhtp; i++)
        evhtp_unbind_socket(s->htp[i]);
}

void kt_srv_request_done(struct kt_srv *s)
{
    if (s->inflight)
        s->inflight--;
}

void kt_srv_free(struct kt_srv *s)
{
    kt_flow_srv_free(s);
    for (size_t i = 0; i < s->nhtp; i++)
        evhtp_free(s->htp[i]);
    s->nhtp = 0;
    free_targets(s);
}

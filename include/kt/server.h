/* server.h: a worker's HTTP front end (libevhtp) and the services a request
 * uses. One struct kt_srv per worker process, owned by its event loop. */
#ifndef KT_SERVER_H
#define KT_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

#include "kt/config.h"
#include "kt/format.h"
#include "kt/ir.h"
#include "kt/strategy.h"

struct kt_upstream;
struct kt_state;
struct kt_audit_writer;
struct kt_policy_chain;
struct evhtp_request;
struct evhtp;

#define KT_SRV_MAX_LISTEN 32
#define KT_SRV_FLOW_CACHE 64

/* Per-target runtime, derived once per worker from the config. */
struct kt_target_rt {
    const struct kt_target *t;
    char *url;                /* full endpoint URL for the target's format */
    char **hdrs;              /* "Name: value" lines: auth, version, custom; NULL-ended */
};

struct kt_metrics {
    uint64_t requests, responses_2xx, responses_4xx, responses_5xx;
    uint64_t upstream_attempts, upstream_errors, stream_requests;
    uint64_t policy_blocks, tokens_in, tokens_out;
};

struct kt_flow;

struct kt_srv {
    struct event_base *base;
    const struct kt_config *cfg;
    int generation;
    struct kt_upstream *up;
    struct kt_state *state;             /* NULL when unavailable */
    struct kt_audit_writer *audit;      /* NULL without audit-logger */
    struct kt_policy_chain *chain;
    struct kt_target_rt *targets;       /* cfg->providers.ntargets entries */
    struct kt_strategy_target *route;   /* routing view of each target (same order) */
    struct kt_wrr wrr;                  /* smooth WRR state, per process as in nginx */
    struct kt_breaker_params breaker;   /* failure_threshold 0 = no breaker */
    enum kt_route_strategy strategy;
    struct evhtp *htp[KT_SRV_MAX_LISTEN];
    size_t nhtp;
    size_t inflight;                    /* requests not yet finished */
    /* finished flows kept for the next requests with their buffers and
     * first arena block: no malloc storm per request (flow.c) */
    struct kt_flow *flow_cache[KT_SRV_FLOW_CACHE];
    size_t nflow_cache;
    /* streams with bytes queued for their client, written together once
     * the current callback is done (flow.c, flush_later) */
    struct kt_flow *flush_head;
    struct event *flush_ev;
    size_t nconns;                      /* open client connections */
    int stopping;
    struct kt_metrics metrics;
};

int kt_srv_init(struct kt_srv *s, struct event_base *base, const struct kt_config *cfg);
/* kt_srv_listen: serve on already-bound listening sockets. */
int kt_srv_listen(struct kt_srv *s, const int *fds, size_t n);
/* kt_srv_stop_accepting: graceful stop, first step (close our listeners). */
void kt_srv_stop_accepting(struct kt_srv *s);
void kt_srv_free(struct kt_srv *s);

/* kt_srv_reply_error: an error body in the client's wire format. */
void kt_srv_reply_error(struct kt_srv *s, struct evhtp_request *req, enum kt_format fmt,
                        int status, enum kt_ir_err_type type, const char *code, const char *msg);
/* kt_srv_reply_json: send a complete JSON reply with this status. */
void kt_srv_reply_json(struct kt_srv *s, struct evhtp_request *req, int status,
                       const char *body, size_t len);
/* kt_srv_flush: write a reply's queued bytes to the client now rather than
 * on the next loop pass (plain TCP; see server.c). */
void kt_srv_flush(struct kt_srv *s, struct evhtp_request *req);
/* kt_srv_last_on_conn: mark the reply Connection: close when the
 * connection should not be reused (draining, or keep-alive cap reached). */
void kt_srv_last_on_conn(struct kt_srv *s, struct evhtp_request *req);
/* kt_srv_request_id: the client's x-request-id or a new one, set on the reply. */
const char *kt_srv_request_id(struct evhtp_request *req, char *buf, size_t len);
/* kt_srv_request_done: a request finished (for graceful stop accounting). */
void kt_srv_request_done(struct kt_srv *s);
void kt_srv_count_status(struct kt_srv *s, int status);

#endif

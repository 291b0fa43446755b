/* worker.c: a worker process. Owns its event base, its HTTP server, its
 * upstream client, its handle on the shared state and its audit writer.
 * SIGTERM/SIGINT: stop accepting, finish every in-flight request (streams
 * included), flush audit records, exit 0. SIGQUIT: exit at once. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include <event2/event.h>

#include "kt/audit.h"
#include "kt/log.h"
#include "kt/policy.h"
#include "kt/proc.h"
#include "kt/server.h"
#include "kt/state.h"
#include "kt/upstream.h"
#include "kt/util.h"
#include "kt/worker.h"

struct worker {
    struct kt_srv srv;
    struct event *sig_term, *sig_int, *sig_quit, *sig_usr1, *drain_timer;
    uint64_t stop_deadline_ms;
    uint64_t idle_since_ms;          /* no request in flight since then; 0 = busy */
    struct kt_audit_writer audit;
    int have_audit;
};

/* check_drained: exit once nothing is in flight and either no client
 * connection is left or the idle ones had a moment to send one last request
 * (answered with Connection: close), so a keep-alive client racing the
 * shutdown is served instead of cut off. */
static void check_drained(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    uint64_t now = kt_now_ms();
    if (w->srv.inflight)
        w->idle_since_ms = 0;
    else if (w->idle_since_ms == 0)
        w->idle_since_ms = now;
    int drained = w->srv.inflight == 0 && (w->srv.nconns == 0 || now - w->idle_since_ms >= 1000);
    if (drained || now > w->stop_deadline_ms) {
        if (w->srv.inflight)
            kt_warn("shutdown timeout with %zu request(s) in flight", w->srv.inflight);
        event_base_loopbreak(w->srv.base);
        return;
    }
    struct timeval tv = { 0, 20 * 1000 };
    evtimer_add(w->drain_timer, &tv);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;
    if (w->srv.stopping)
        return;
    kt_info("stopping: %zu request(s) in flight", w->srv.inflight);
    kt_srv_stop_accepting(&w->srv);
    int t = w->srv.cfg->server.shutdown_timeout_seconds;
    w->stop_deadline_ms = kt_now_ms() + (uint64_t)(t > 0 ? t : 1) * 1000u;
    check_drained(-1, 0, w);
}

static void on_quit(evutil_socket_t sig, short what, void *arg)
{
    _exit(0);
}

static void on_usr1(evutil_socket_t sig, short what, void *arg)
{
    kt_log_reopen();
    kt_debug("worker: log reopened");   /* the first line of the new file */
}

int kt_worker_run(const struct kt_worker_ctx *ctx)
{
    static struct worker w;
    memset(&w, 0, sizeof w);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* The changelist folds an event_del/event_add pair within one loop turn
     * into no epoll_ctl at all (libcurl and evhtp both do such pairs). */
    struct event_config *ecfg = event_config_new();
    if (ecfg)
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = ecfg ? event_base_new_with_config(ecfg) : event_base_new();
    if (ecfg)
        event_config_free(ecfg);
    if (base == NULL || kt_srv_init(&w.srv, base, ctx->cfg) != 0) {
        kt_error("worker: cannot initialise");
        return 1;
    }
    w.srv.generation = ctx->generation;
    w.srv.up = kt_upstream_new(base);
    if (w.srv.up == NULL) {
        kt_error("worker: cannot create the upstream client");
        return 1;
    }
    struct kt_err err;
    if (kt_state_open(ctx->cfg->server.state_dir, &w.srv.state, &err) != 0) {
        /* Soft state: serve without it rather than not at all. */
        kt_warn("shared state unavailable, routing state is per-process: %s", err.msg);
        w.srv.state = NULL;
    }
    if (ctx->audit_fd >= 0) {
        struct kt_audit_opts ao;
        kt_proc_audit_opts(ctx->cfg, &ao);
        if (kt_audit_writer_init(&w.audit, ctx->audit_fd, base, ao.worker_queue_max_bytes) != 0) {
            kt_error("worker: cannot set up the audit writer");
            return 1;
        }
        w.have_audit = 1;
        w.srv.audit = &w.audit;
    }
    w.srv.chain = kt_policy_chain_new(ctx->cfg);
    if (w.srv.chain == NULL) {
        kt_error("worker: cannot set up the policy chain");
        return 1;
    }
    if (kt_srv_listen(&w.srv, ctx->listen_fds, ctx->nlisten) != 0)
        return 1;
    w.sig_term = evsignal_new(base, SIGTERM, on_stop, &w);
    w.sig_int = evsignal_new(base, SIGINT, on_stop, &w);
    w.sig_quit = evsignal_new(base, SIGQUIT, on_quit, &w);
    w.sig_usr1 = evsignal_new(base, SIGUSR1, on_usr1, &w);
    w.drain_timer = evtimer_new(base, check_drained, &w);
    event_add(w.sig_term, NULL);
    event_add(w.sig_int, NULL);
    event_add(w.sig_quit, NULL);
    event_add(w.sig_usr1, NULL);
    kt_debug("worker ready (generation %d)", ctx->generation);

    event_base_dispatch(base);

    if (w.have_audit) {
        if (kt_audit_writer_flush_blocking(&w.audit, 5000) != 0)
            kt_error("audit: %zu byte(s) of records could not be handed over",
                     kt_audit_writer_queued(&w.audit));
        kt_audit_writer_free(&w.audit);
    }
    kt_srv_free(&w.srv);
    kt_policy_chain_free(w.srv.chain);
    kt_upstream_free(w.srv.up);
    if (w.srv.state)
        w.srv.state->ops->close(w.srv.state);
    event_free(w.sig_term);
    event_free(w.sig_int);
    event_free(w.sig_quit);
    event_free(w.sig_usr1);
    event_free(w.drain_timer);
    event_base_free(base);
    curl_global_cleanup();
    return 0;
}

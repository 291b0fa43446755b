/* prober.c: active health probes (prober.h). Owns the per-target interval
 * timers and the threshold counting; the GETs go through the workers' own
 * non-blocking HTTP client (upstream.h) on the caller's libevent base.
 * Results go to the health db; nothing here blocks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "kt/err.h"
#include "kt/health.h"
#include "kt/log.h"
#include "kt/prober.h"
#include "kt/state.h"
#include "kt/upstream.h"
#include "kt/util.h"

struct probe {
    struct kt_prober *p;
    const struct kt_probe_spec *spec;
    struct event *timer;          /* next round */
    struct kt_upcall *call;       /* in flight, or NULL */
    uint64_t started_us;
    unsigned ok_run, fail_run;
    enum kt_health_status status;
};

struct kt_prober {
    struct event_base *base;
    struct kt_upstream *up;       /* the same HTTP client the workers use */
    struct probe *probes;
    size_t n;
    struct kt_state *st;
    unsigned long rounds;
};

static struct timeval tv_of_seconds(double s)
{
    struct timeval tv;
    tv.tv_sec = (time_t)s;
    tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
    return tv;
}

static double interval_of(const struct kt_probe_spec *s)
{
    return s->interval_seconds > 0 ? s->interval_seconds : 10.0;
}

/* Apply the thresholds to one probe's outcome and record it. */
static void probe_finished(struct probe *pr, int ok, uint32_t latency_ms)
{
    const struct kt_probe_spec *s = pr->spec;
    unsigned up = s->healthy_threshold ? s->healthy_threshold : 1;
    unsigned down = s->unhealthy_threshold ? s->unhealthy_threshold : 1;
    if (ok) {
        pr->ok_run++;
        pr->fail_run = 0;
        if (pr->ok_run >= up)
            pr->status = KT_HEALTH_HEALTHY;
    } else {
        pr->fail_run++;
        pr->ok_run = 0;
        if (pr->fail_run >= down)
            pr->status = KT_HEALTH_UNHEALTHY;
    }
    pr->p->rounds++;
    struct kt_err err;
    if (kt_health_put(pr->p->st, s->target_id, pr->status, ok, latency_ms, kt_wall_ms(), &err) != 0)
        (void)err;  /* soft state: the next round writes again */
    struct timeval tv = tv_of_seconds(interval_of(s));
    evtimer_add(pr->timer, &tv);
}

static int discard_body(void *ud, const char *data, size_t len)
{
    return 0;
}

static void on_probe_done(void *ud, enum kt_upcall_result r, int status, const char *errmsg)
{
    struct probe *pr = ud;
    pr->call = NULL;
    long max = pr->spec->ok_status_max > 0 ? pr->spec->ok_status_max : 299;
    int ok = r == KT_UP_OK && status >= 200 && status <= max;
    probe_finished(pr, ok, (uint32_t)((kt_now_us() - pr->started_us) / 1000u));
}

static const struct kt_upcall_cbs probe_cbs = { NULL, discard_body, on_probe_done };

static void on_probe_timer(evutil_socket_t fd, short events, void *arg)
{
    struct probe *pr = arg;
    const struct kt_probe_spec *s = pr->spec;
    if (pr->call != NULL)
        return;
    long timeout_ms = (long)((s->timeout_seconds > 0 ? s->timeout_seconds : 5.0) * 1000.0);
    struct kt_upcall_req req = {
        .url = s->url, .headers = s->headers, .body = NULL,   /* no body: a GET */
        .timeout_ms = timeout_ms, .connect_timeout_ms = timeout_ms,
    };
    pr->started_us = kt_now_us();
    pr->call = kt_upcall_start(pr->p->up, &req, &probe_cbs, pr);
    if (pr->call == NULL)
        probe_finished(pr, 0, 0);
}

int kt_prober_new(struct event_base *base, const struct kt_probe_spec *specs, size_t n,
                  struct kt_state *st, struct kt_prober **out, struct kt_err *err)
{
    if (st == NULL || base == NULL || (n > 0 && specs == NULL))
        return kt_err_set(err, KT_EINVAL, "prober: no event base, state or specs");
    for (size_t i = 0; i < n; i++)
        if (specs[i].target_id == NULL || specs[i].url == NULL)
            return kt_err_set(err, KT_EINVAL, "probe %zu: target id and url are required", i);
    struct kt_prober *p = calloc(1, sizeof *p);
    if (p == NULL)
        return kt_err_set(err, KT_ENOMEM, "out of memory");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    p->base = base;
    p->st = st;
    p->n = n;
    p->probes = calloc(n ? n : 1, sizeof *p->probes);
    p->up = kt_upstream_new(base);
    if (p->probes == NULL || p->up == NULL) {
        kt_prober_free(p);
        return kt_err_set(err, KT_ENOMEM, "prober: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        struct probe *pr = &p->probes[i];
        pr->p = p;
        pr->spec = &specs[i];
        /* Carry on from the last verdict: a restarted prober must not turn
         * an unhealthy target routable before its thresholds say so. */
        struct kt_health_info h;
        if (kt_health_get(st, specs[i].target_id, &h, NULL) == 0)
            pr->status = h.status;
        pr->timer = evtimer_new(base, on_probe_timer, pr);
        if (pr->timer == NULL) {
            kt_prober_free(p);
            return kt_err_set(err, KT_ENOMEM, "prober: out of memory");
        }
        struct timeval now = { 0, 0 };
        evtimer_add(pr->timer, &now);
    }
    *out = p;
    return 0;
}

void kt_prober_free(struct kt_prober *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; p->probes != NULL && i < p->n; i++) {
        struct probe *pr = &p->probes[i];
        kt_upcall_cancel(pr->call);
        if (pr->timer != NULL)
            event_free(pr->timer);
    }
    kt_upstream_free(p->up);
    free(p->probes);
    free(p);
    curl_global_cleanup();
}

unsigned long kt_prober_rounds(const struct kt_prober *p)
{
    return p->rounds;
}

int kt_prober_run(struct event_base *base, const struct kt_probe_spec *specs, size_t n,
                  struct kt_state *st)
{
    struct kt_prober *p;
    struct kt_err err;
    int rc = kt_prober_new(base, specs, n, st, &p, &err);
    if (rc != 0) {
        kt_error("prober: %s", err.msg);
        return rc;
    }
    event_base_dispatch(base);
    kt_prober_free(p);
    return 0;
}

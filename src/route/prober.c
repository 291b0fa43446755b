/* prober.c: active health probes (prober.h). Owns one libcurl multi handle
 * driven by the caller's libevent base (CURLMOPT_SOCKETFUNCTION and
 * TIMERFUNCTION with event_assign), the per-target interval timers and the
 * threshold counting. Results go to the health db; nothing here blocks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "kt/err.h"
#include "kt/health.h"
#include "kt/log.h"
#include "kt/prober.h"
#include "kt/state.h"
#include "kt/util.h"

struct probe {
    struct kt_prober *p;
    const struct kt_probe_spec *spec;
    struct event *timer;          /* next round */
    CURL *easy;                   /* in flight, or NULL */
    struct curl_slist *hdrs;
    unsigned ok_run, fail_run;
    enum kt_health_status status;
};

/* One per socket curl asks us to watch. */
struct sock_ctx {
    struct event ev;
    curl_socket_t fd;
    struct kt_prober *p;
    struct sock_ctx *next;
};

struct kt_prober {
    struct event_base *base;
    CURLM *multi;
    struct event *curl_timer;
    struct probe *probes;
    size_t n;
    struct kt_state *st;
    struct sock_ctx *socks;
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

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    return size * nmemb;
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

static void check_done(struct kt_prober *p)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(p->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        struct probe *pr = NULL;
        long status = 0;
        double total = 0;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&pr);
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &total);
        curl_multi_remove_handle(p->multi, easy);
        curl_easy_cleanup(easy);
        if (pr == NULL)
            continue;
        curl_slist_free_all(pr->hdrs);
        pr->hdrs = NULL;
        pr->easy = NULL;
        long max = pr->spec->ok_status_max > 0 ? pr->spec->ok_status_max : 299;
        int ok = result == CURLE_OK && status >= 200 && status <= max;
        probe_finished(pr, ok, (uint32_t)(total * 1000.0));
    }
}

static void on_curl_timer(evutil_socket_t fd, short events, void *arg)
{
    struct kt_prober *p = arg;
    int running;
    curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(p);
}

static void on_socket(evutil_socket_t fd, short events, void *arg)
{
    struct kt_prober *p = arg;
    int action = ((events & EV_READ) ? CURL_CSELECT_IN : 0) |
                 ((events & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(p->multi, fd, action, &running);
    check_done(p);
    if (running <= 0)
        evtimer_del(p->curl_timer);
}

static void sock_forget(struct kt_prober *p, struct sock_ctx *sc)
{
    for (struct sock_ctx **pp = &p->socks; *pp != NULL; pp = &(*pp)->next)
        if (*pp == sc) {
            *pp = sc->next;
            break;
        }
    event_del(&sc->ev);
    free(sc);
}

static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct kt_prober *p = userp;
    struct sock_ctx *sc = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sc != NULL) {
            curl_multi_assign(p->multi, s, NULL);
            sock_forget(p, sc);
        }
        return 0;
    }
    if (sc == NULL) {
        sc = calloc(1, sizeof *sc);
        if (sc == NULL)
            return -1;
        sc->fd = s;
        sc->p = p;
        sc->next = p->socks;
        p->socks = sc;
        curl_multi_assign(p->multi, s, sc);
    } else {
        event_del(&sc->ev);
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
                         ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    event_assign(&sc->ev, p->base, s, kind, on_socket, p);
    event_add(&sc->ev, NULL);
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct kt_prober *p = userp;
    if (timeout_ms < 0) {
        evtimer_del(p->curl_timer);
        return 0;
    }
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    evtimer_add(p->curl_timer, &tv);
    return 0;
}

/* Start one round for a probe; a setup failure counts as a failed probe. */
static void on_probe_timer(evutil_socket_t fd, short events, void *arg)
{
    struct probe *pr = arg;
    const struct kt_probe_spec *s = pr->spec;
    if (pr->easy != NULL)
        return;
    CURL *easy = curl_easy_init();
    if (easy == NULL) {
        probe_finished(pr, 0, 0);
        return;
    }
    for (const char *const *h = s->headers; h != NULL && *h != NULL; h++) {
        struct curl_slist *nl = curl_slist_append(pr->hdrs, *h);
        if (nl != NULL)
            pr->hdrs = nl;
    }
    long timeout_ms = (long)((s->timeout_seconds > 0 ? s->timeout_seconds : 5.0) * 1000.0);
    curl_easy_setopt(easy, CURLOPT_URL, s->url);
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, pr->hdrs);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)pr);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "ktd-prober");
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    pr->easy = easy;
    if (curl_multi_add_handle(pr->p->multi, easy) != CURLM_OK) {
        pr->easy = NULL;
        curl_easy_cleanup(easy);
        curl_slist_free_all(pr->hdrs);
        pr->hdrs = NULL;
        probe_finished(pr, 0, 0);
    }
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
    p->multi = curl_multi_init();
    p->curl_timer = evtimer_new(base, on_curl_timer, p);
    if (p->probes == NULL || p->multi == NULL || p->curl_timer == NULL) {
        kt_prober_free(p);
        return kt_err_set(err, KT_ENOMEM, "prober: out of memory");
    }
    curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p);
    curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p);
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
        if (pr->easy != NULL) {
            curl_multi_remove_handle(p->multi, pr->easy);
            curl_easy_cleanup(pr->easy);
        }
        curl_slist_free_all(pr->hdrs);
        if (pr->timer != NULL)
            event_free(pr->timer);
    }
    if (p->multi != NULL)
        curl_multi_cleanup(p->multi);
    while (p->socks != NULL)
        sock_forget(p, p->socks);
    if (p->curl_timer != NULL)
        event_free(p->curl_timer);
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

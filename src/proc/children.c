/* children.c: bodies of the audit and prober processes, and the master's
 * state-dir chores. Each maps the config onto its subsystem's options. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <unistd.h>
#include <event2/event.h>

#include "kt/audit.h"
#include "kt/log.h"
#include "kt/prober.h"
#include "kt/proc.h"
#include "kt/state.h"

void kt_proc_audit_opts(const struct kt_config *cfg, struct kt_audit_opts *o)
{
    const struct kt_cfg_audit *a = &cfg->policies.audit;
    memset(o, 0, sizeof *o);
    o->path = a->path;
    o->immutable = a->immutable;
    o->retention_days = a->retention_days;
    o->max_file_bytes = (size_t)a->max_file_bytes;
    o->fsync_every_ms = 200;
    o->fsync_every_records = a->fsync_batch > 0 ? (size_t)a->fsync_batch : 64;
    o->worker_queue_max_bytes = 8u << 20;
}

int kt_proc_audit_main(const struct kt_config *cfg, const int *fds, size_t nfds)
{
    struct kt_audit_opts o;
    kt_proc_audit_opts(cfg, &o);
    return kt_audit_proc_run(&o, fds, nfds);
}

int kt_proc_state_prepare(const struct kt_config *cfg)
{
    struct kt_err err;
    if (kt_state_create(cfg->server.state_dir, &err) != 0) {
        kt_error("state_dir: %s", err.msg);
        return -1;
    }
    /* Children drop to server.user: the state files must be theirs. */
    if (cfg->server.user && geteuid() == 0) {
        struct passwd *pw = getpwnam(cfg->server.user);
        if (pw == NULL) {
            kt_error("server.user %s: no such user", cfg->server.user);
            return -1;
        }
        if (kt_state_chown(cfg->server.state_dir, pw->pw_uid, pw->pw_gid, &err) != 0) {
            kt_error("state_dir: %s", err.msg);
            return -1;
        }
    }
    return 0;
}

void kt_proc_state_reader_check(const struct kt_config *cfg)
{
    struct kt_err err;
    int dead = 0;
    if (kt_state_reader_check(cfg->server.state_dir, &dead, &err) != 0)
        kt_warn("state reader check: %s", err.msg);
    else if (dead > 0)
        kt_info("cleared %d stale state reader slot(s)", dead);
}

/* ---- prober ------------------------------------------------------------ */

static struct event_base *g_prober_base;

static void prober_stop(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(g_prober_base);
}

static void prober_reopen(evutil_socket_t sig, short what, void *arg)
{
    kt_log_reopen();
    kt_debug("prober: log reopened");
}

int kt_proc_prober_main(const struct kt_config *cfg)
{
    const struct kt_providers *p = &cfg->providers;
    struct kt_probe_spec *specs = calloc(p->ntargets, sizeof *specs);
    char **urls = calloc(p->ntargets, sizeof *urls);
    char ***hdrs = calloc(p->ntargets, sizeof *hdrs);
    if (specs == NULL || urls == NULL || hdrs == NULL)
        return 1;
    size_t n = 0;
    for (size_t i = 0; i < p->ntargets; i++) {
        const struct kt_target *t = &p->targets[i];
        if (!t->health_probe.enabled || t->base_url == NULL)
            continue;
        const char *path = t->health_probe.path ? t->health_probe.path : "/v1/models";
        size_t bl = strlen(t->base_url);
        while (bl && t->base_url[bl - 1] == '/')
            bl--;
        if (bl >= 3 && strncmp(t->base_url + bl - 3, "/v1", 3) == 0 && strncmp(path, "/v1/", 4) == 0)
            path += 3;
        urls[n] = malloc(bl + strlen(path) + 1);
        if (urls[n] == NULL)
            return 1;
        memcpy(urls[n], t->base_url, bl);
        strcpy(urls[n] + bl, path);
        /* Probes authenticate like requests: a 401 would say nothing. */
        hdrs[n] = calloc(4 + t->nheaders, sizeof(char *));
        size_t k = 0;
        if (t->api_key && hdrs[n]) {
            size_t len = strlen(t->api_key_header) + strlen(t->api_key_prefix) + strlen(t->api_key) + 3;
            hdrs[n][k] = malloc(len);
            if (hdrs[n][k])
                snprintf(hdrs[n][k++], len, "%s: %s%s", t->api_key_header, t->api_key_prefix, t->api_key);
        }
        if (t->format == KT_FMT_ANTHROPIC && hdrs[n]) {
            size_t len = strlen(t->anthropic_version) + 20;
            hdrs[n][k] = malloc(len);
            if (hdrs[n][k])
                snprintf(hdrs[n][k++], len, "anthropic-version: %s", t->anthropic_version);
        }
        for (size_t h = 0; h < t->nheaders && hdrs[n]; h++) {
            size_t len = strlen(t->headers[h].name) + strlen(t->headers[h].value) + 3;
            hdrs[n][k] = malloc(len);
            if (hdrs[n][k])
                snprintf(hdrs[n][k++], len, "%s: %s", t->headers[h].name, t->headers[h].value);
        }
        specs[n] = (struct kt_probe_spec){
            .target_id = t->id, .url = urls[n], .headers = (const char *const *)hdrs[n],
            .interval_seconds = t->health_probe.interval_seconds,
            .timeout_seconds = t->health_probe.timeout_seconds,
            .healthy_threshold = (unsigned)t->health_probe.healthy_threshold,
            .unhealthy_threshold = (unsigned)t->health_probe.unhealthy_threshold,
        };
        n++;
    }
    struct kt_err err;
    struct kt_state *st = NULL;
    if (kt_state_open(cfg->server.state_dir, &st, &err) != 0) {
        kt_error("prober: %s", err.msg);
        return 1;
    }
    g_prober_base = event_base_new();
    struct event *t1 = evsignal_new(g_prober_base, SIGTERM, prober_stop, NULL);
    struct event *t2 = evsignal_new(g_prober_base, SIGINT, prober_stop, NULL);
    struct event *t3 = evsignal_new(g_prober_base, SIGUSR1, prober_reopen, NULL);
    event_add(t1, NULL);
    event_add(t2, NULL);
    event_add(t3, NULL);
    kt_info("probing %zu target(s)", n);
    int rc = kt_prober_run(g_prober_base, specs, n, st);
    event_free(t1);
    event_free(t2);
    event_free(t3);
    event_base_free(g_prober_base);
    st->ops->close(st);
    for (size_t i = 0; i < n; i++) {
        free(urls[i]);
        for (char **h = hdrs[i]; h && *h; h++)
            free(*h);
        free(hdrs[i]);
    }
    free(urls);
    free(hdrs);
    free(specs);
    return rc == 0 ? 0 : 1;
}

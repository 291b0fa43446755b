/* prober.h: active health probes, run in the prober process. Each spec is
 * probed every interval with an HTTP GET (libcurl multi driven by the
 * process's libevent loop, so nothing blocks); consecutive successes and
 * failures against the thresholds decide healthy/unhealthy, written to
 * the shared health db where workers' strategies read it. A probe passes
 * on a 2xx answer (or up to ok_status_max when set) within the timeout. */
#ifndef KT_PROBER_H
#define KT_PROBER_H

#include <stddef.h>

#include <event2/event.h>

#include "kt/err.h"
#include "kt/state.h"

struct kt_probe_spec {
    const char *target_id;
    const char *url;                /* base_url + health_probe.path */
    const char *const *headers;     /* "Name: value", NULL-terminated; may be NULL */
    double interval_seconds;        /* <= 0: 10 */
    double timeout_seconds;         /* <= 0: 5 */
    unsigned healthy_threshold;     /* 0: 1 */
    unsigned unhealthy_threshold;   /* 0: 1 */
    int ok_status_max;              /* 0: 299 (e.g. 499 to accept 401/404 as "up") */
};

struct kt_prober;

/* kt_prober_new: set up probes on base (the first round starts at once).
 * specs and their strings must outlive the prober. */
int kt_prober_new(struct event_base *base, const struct kt_probe_spec *specs, size_t n,
                  struct kt_state *st, struct kt_prober **out, struct kt_err *err);
void kt_prober_free(struct kt_prober *p);
/* Probes finished so far (all specs), for tests and metrics. */
unsigned long kt_prober_rounds(const struct kt_prober *p);

/* kt_prober_run: the prober process's main loop: new, event_base_dispatch
 * until someone calls event_base_loopbreak/loopexit (its SIGTERM handler),
 * free. Returns 0, or a negative KT_E* if setup failed. */
int kt_prober_run(struct event_base *base, const struct kt_probe_spec *specs, size_t n,
                  struct kt_state *st);

#endif

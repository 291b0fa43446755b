/* strategy.c: turns a candidate list into an ordered attempt list
 * (strategy.h). Owns the usability checks (breaker, health, rate limits;
 * read-only), the four orderings and the per-process WRR weights. Does not
 * own retries or the upstream call: the caller walks the list. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kt/breaker.h"
#include "kt/err.h"
#include "kt/health.h"
#include "kt/ratelimit.h"
#include "kt/state.h"
#include "kt/strategy.h"

static const struct {
    const char *name;
    enum kt_route_strategy s;
} strategies[] = {
    { "single", KT_STRATEGY_SINGLE },
    { "fallback", KT_STRATEGY_FALLBACK },
    { "weighted_round_robin", KT_STRATEGY_WRR },
    { "least_latency", KT_STRATEGY_LEAST_LATENCY },
};

static const char *const skip_names[] = {
    [KT_SKIP_NONE] = "none",
    [KT_SKIP_CIRCUIT_OPEN] = "circuit_open",
    [KT_SKIP_UNHEALTHY] = "unhealthy",
    [KT_SKIP_RATE_LIMITED] = "rate_limited",
};

#define NSTRATEGIES (sizeof strategies / sizeof strategies[0])

int kt_strategy_parse(const char *name, enum kt_route_strategy *out)
{
    for (size_t i = 0; name != NULL && i < NSTRATEGIES; i++)
        if (strcmp(name, strategies[i].name) == 0) {
            *out = strategies[i].s;
            return 0;
        }
    return KT_EINVAL;
}

const char *kt_strategy_name(enum kt_route_strategy s)
{
    for (size_t i = 0; i < NSTRATEGIES; i++)
        if (strategies[i].s == s)
            return strategies[i].name;
    return "unknown";
}

const char *kt_strategy_skip_name(enum kt_strategy_skip s)
{
    return (unsigned)s < sizeof skip_names / sizeof skip_names[0] ? skip_names[s] : "unknown";
}

int kt_wrr_init(struct kt_wrr *w, size_t ntargets)
{
    w->n = ntargets;
    w->current = calloc(ntargets ? ntargets : 1, sizeof *w->current);
    return w->current ? 0 : KT_ENOMEM;
}

void kt_wrr_free(struct kt_wrr *w)
{
    free(w->current);
    w->current = NULL;
    w->n = 0;
}

/* Weights as integers (thousandths) so the smooth WRR sequence is exact
 * and matches nginx's for integer weights. */
static int64_t wrr_weight(double w)
{
    if (!(w > 0.001))
        return 1;
    if (w > 1e6)
        w = 1e6;
    return (int64_t)llround(w * 1000.0);
}

static int tkey(char *out, size_t n, const struct kt_strategy_target *t, const char *kind)
{
    return kt_ratelimit_key(out, n, 't', t->id, kind);
}

/* Read-only usability of one target; *retry_ms when it frees up (0 unknown). */
static enum kt_strategy_skip check_target(struct kt_state *st, const struct kt_strategy_target *t,
                                          const struct kt_breaker_params *bp, uint64_t now_ms,
                                          struct kt_health_info *h, uint64_t *retry_ms)
{
    struct kt_err e;
    *retry_ms = 0;
    if (bp != NULL && bp->failure_threshold > 0) {
        struct kt_breaker_info bi;
        if (kt_breaker_peek(st, t->id, bp, now_ms, &bi, &e) == 0 && !bi.available) {
            *retry_ms = bi.retry_at_ms > now_ms ? bi.retry_at_ms - now_ms : 0;
            return KT_SKIP_CIRCUIT_OPEN;
        }
    }
    if (kt_health_get(st, t->id, h, &e) == 0 && h->status == KT_HEALTH_UNHEALTHY &&
        (t->health_max_age_ms == 0 || h->last_check_ms >= now_ms ||
         now_ms - h->last_check_ms <= t->health_max_age_ms))
        return KT_SKIP_UNHEALTHY;
    char key[KT_STATE_KEY_MAX + 1];
    uint64_t ra = 0, worst = 0;
    int limited = 0;
    if (t->rpm.limit && tkey(key, sizeof key, t, "rpm") == 0 &&
        kt_ratelimit_check(st, key, &t->rpm, now_ms, &ra, &e) == KT_ELIMIT) {
        limited = 1;
        worst = ra;
    }
    if (t->tpm.limit && tkey(key, sizeof key, t, "tpm") == 0 &&
        kt_ratelimit_check(st, key, &t->tpm, now_ms, &ra, &e) == KT_ELIMIT) {
        limited = 1;
        if (ra > worst)
            worst = ra;
    }
    if (limited) {
        *retry_ms = worst;
        return KT_SKIP_RATE_LIMITED;
    }
    return KT_SKIP_NONE;
}

/* Smooth weighted round robin over the usable ones (nginx's
 * ngx_http_upstream_get_peer): every peer gains its weight, the largest
 * wins (the first on ties) and pays back the total. */
static size_t wrr_pick(struct kt_wrr *w, const struct kt_strategy_target *cands,
                       const size_t *usable, size_t nu)
{
    int64_t total = 0;
    size_t best = SIZE_MAX;
    for (size_t k = 0; k < nu; k++) {
        const struct kt_strategy_target *t = &cands[usable[k]];
        if (t->index >= w->n)
            continue;
        int64_t weight = wrr_weight(t->weight);
        w->current[t->index] += weight;
        total += weight;
        if (best == SIZE_MAX || w->current[t->index] > w->current[cands[usable[best]].index])
            best = k;
    }
    if (best == SIZE_MAX)
        return 0;
    w->current[cands[usable[best]].index] -= total;
    return best;
}

int kt_strategy_plan(struct kt_state *st, enum kt_route_strategy strategy, struct kt_wrr *wrr,
                     const struct kt_breaker_params *bp,
                     const struct kt_strategy_target *cands, size_t n, uint64_t now_ms,
                     size_t *order, enum kt_strategy_skip *skips,
                     struct kt_strategy_result *res, struct kt_err *err)
{
    memset(res, 0, sizeof *res);
    if (n > 0 && (cands == NULL || order == NULL))
        return kt_err_set(err, KT_EINVAL, "strategy: no candidate or order array");
    /* Usable candidates, in config order, with what least_latency needs. */
    size_t nu = 0;
    int all_rate_limited = n > 0;
    uint64_t soonest = 0;
    /* The usual handful of targets fits on the stack: no allocation per request. */
    double lat_stack[32];
    uint64_t samples_stack[32];
    double *lat = lat_stack;
    uint64_t *samples = samples_stack;
    if (n > 32) {
        lat = calloc(n, sizeof *lat);
        samples = calloc(n, sizeof *samples);
        if (lat == NULL || samples == NULL) {
            free(lat);
            free(samples);
            return kt_err_set(err, KT_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct kt_health_info h;
        uint64_t retry_ms;
        memset(&h, 0, sizeof h);
        enum kt_strategy_skip why = check_target(st, &cands[i], bp, now_ms, &h, &retry_ms);
        if (skips != NULL)
            skips[i] = why;
        if (why == KT_SKIP_NONE) {
            lat[nu] = h.latency_ewma_ms;
            samples[nu] = h.latency_samples;
            order[nu++] = i;
            continue;
        }
        if (why != KT_SKIP_RATE_LIMITED)
            all_rate_limited = 0;
        if (retry_ms > 0 && (soonest == 0 || retry_ms < soonest))
            soonest = retry_ms;
    }
    if (nu == 0) {
        res->http_status = all_rate_limited ? 429 : 503;
        res->retry_after_ms = soonest;
        goto out;
    }
    switch (strategy) {
    case KT_STRATEGY_SINGLE:
        nu = 1;
        break;
    case KT_STRATEGY_WRR:
        if (wrr != NULL) {
            size_t k = wrr_pick(wrr, cands, order, nu);
            size_t first = order[k];
            memmove(order + 1, order, k * sizeof *order);   /* the rest keep their order */
            order[0] = first;
        }
        break;
    case KT_STRATEGY_LEAST_LATENCY:
        /* Stable insertion sort: unmeasured first (they need a sample),
         * then by EWMA; equal ones keep config order. */
        for (size_t a = 1; a < nu; a++) {
            size_t o = order[a];
            double l = lat[a];
            uint64_t s = samples[a];
            size_t b = a;
            while (b > 0) {
                int before = s == 0 ? samples[b - 1] != 0 : (samples[b - 1] != 0 && l < lat[b - 1]);
                if (!before)
                    break;
                order[b] = order[b - 1];
                lat[b] = lat[b - 1];
                samples[b] = samples[b - 1];
                b--;
            }
            order[b] = o;
            lat[b] = l;
            samples[b] = s;
        }
        break;
    default:
        break;
    }
    res->n = nu;
out:
    if (lat != lat_stack) {
        free(lat);
        free(samples);
    }
    return 0;
}

int kt_strategy_admit(struct kt_state *st, const struct kt_strategy_target *t,
                      const struct kt_breaker_params *bp, uint64_t now_ms,
                      struct kt_breaker_ticket *ticket, uint64_t *retry_after_ms,
                      struct kt_err *err)
{
    char key[KT_STATE_KEY_MAX + 1];
    uint64_t ra = 0;
    if (ticket != NULL)
        memset(ticket, 0, sizeof *ticket);
    if (retry_after_ms != NULL)
        *retry_after_ms = 0;
    if (t->tpm.limit && tkey(key, sizeof key, t, "tpm") == 0 &&
        kt_ratelimit_check(st, key, &t->tpm, now_ms, &ra, err) == KT_ELIMIT) {
        if (retry_after_ms != NULL)
            *retry_after_ms = ra;
        return KT_ELIMIT;
    }
    if (t->rpm.limit && tkey(key, sizeof key, t, "rpm") == 0 &&
        kt_ratelimit_take(st, key, &t->rpm, 1, now_ms, &ra, err) == KT_ELIMIT) {
        if (retry_after_ms != NULL)
            *retry_after_ms = ra;
        return KT_ELIMIT;
    }
    if (bp == NULL)
        return 0;
    int allowed = 1;
    if (kt_breaker_acquire(st, t->id, bp, now_ms, &allowed, ticket, err) == 0 && !allowed)
        return kt_err_set(err, KT_EAGAIN, "target %s: circuit open", t->id);
    return 0;
}

/* strategy.h: routing strategies. Given the candidate targets (already
 * filtered by the caller when the client's model names one), produce the
 * ordered attempt list, skipping open circuits, unhealthy targets and
 * exhausted rate limits, all read from the shared state without claiming
 * anything. When every candidate is skipped, say why (429 or 503).
 * kt_strategy_admit then claims a target right before it is tried. */
#ifndef KT_STRATEGY_H
#define KT_STRATEGY_H

#include <stddef.h>
#include <stdint.h>

#include "kt/breaker.h"
#include "kt/err.h"
#include "kt/ratelimit.h"
#include "kt/state.h"

enum kt_route_strategy {
    KT_STRATEGY_SINGLE = 0,        /* the first usable target */
    KT_STRATEGY_FALLBACK,          /* every usable target, in config order */
    KT_STRATEGY_WRR,               /* smooth weighted round robin first, then the rest */
    KT_STRATEGY_LEAST_LATENCY,     /* unmeasured first, then lowest latency EWMA */
};

/* "single", "fallback", "weighted_round_robin", "least_latency". */
int kt_strategy_parse(const char *name, enum kt_route_strategy *out);
const char *kt_strategy_name(enum kt_route_strategy s);

struct kt_strategy_target {
    const char *id;
    double weight;              /* WRR; <= 0 counts as the smallest weight (0.001) */
    size_t index;               /* position in the config: the WRR slot */
    struct kt_ratelimit rpm;    /* requests; limit 0 = none */
    struct kt_ratelimit tpm;    /* tokens; limit 0 = none */
    /* How long a probe verdict counts: set it to about 3 x interval +
     * timeout of the target's health_probe, so that a verdict nobody
     * renews (the probe was removed on reload, the prober is gone) stops
     * skipping the target. 0: no age limit. */
    uint64_t health_max_age_ms;
};

enum kt_strategy_skip {
    KT_SKIP_NONE = 0,
    KT_SKIP_CIRCUIT_OPEN,
    KT_SKIP_UNHEALTHY,
    KT_SKIP_RATE_LIMITED,
};
const char *kt_strategy_skip_name(enum kt_strategy_skip s);

/* Per-process smooth WRR state (as nginx keeps it per worker), one slot
 * per configured target, indexed by kt_strategy_target.index. */
struct kt_wrr {
    size_t n;
    int64_t *current;
};
int kt_wrr_init(struct kt_wrr *w, size_t ntargets);
void kt_wrr_free(struct kt_wrr *w);

struct kt_strategy_result {
    size_t n;                   /* attempts written to order[] */
    int http_status;            /* 0 when n > 0; else 429 (every candidate rate
                                 * limited) or 503 (any other reason, or none given) */
    uint64_t retry_after_ms;    /* when n == 0: soonest a skipped one frees up, 0 unknown */
};

/* kt_strategy_plan: order[] (capacity n) receives indexes into cands;
 * skips[] (capacity n, may be NULL) the reason each candidate was skipped.
 * wrr may be NULL unless strategy is WRR (then it acts as fallback).
 * State read errors never skip a target (fail open). Returns 0 or KT_EINVAL. */
int kt_strategy_plan(struct kt_state *st, enum kt_route_strategy strategy, struct kt_wrr *wrr,
                     const struct kt_breaker_params *bp,
                     const struct kt_strategy_target *cands, size_t n, uint64_t now_ms,
                     size_t *order, enum kt_strategy_skip *skips,
                     struct kt_strategy_result *res, struct kt_err *err);

/* kt_strategy_admit: claim target t for one attempt now: its tokens-per-
 * minute has room, a request unit is taken from its rpm, and the breaker
 * admits (claiming a half-open trial slot if needed; pass *ticket to
 * kt_breaker_report afterwards). Returns 0 admitted, KT_ELIMIT rate
 * limited (*retry_after_ms set), KT_EAGAIN circuit open. State errors
 * admit (fail open). */
int kt_strategy_admit(struct kt_state *st, const struct kt_strategy_target *t,
                      const struct kt_breaker_params *bp, uint64_t now_ms,
                      struct kt_breaker_ticket *ticket, uint64_t *retry_after_ms,
                      struct kt_err *err);

#endif

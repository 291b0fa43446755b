/* health.h: per-target health in the state layer's "health" db: the
 * active prober's verdict (healthy / unhealthy / unknown), the last
 * probe, a latency EWMA fed by real requests (least_latency reads it), and
 * counts of passive outcomes. Written by the prober and by workers. */
#ifndef KT_HEALTH_H
#define KT_HEALTH_H

#include <stdint.h>

#include "kt/err.h"
#include "kt/state.h"

enum kt_health_status { KT_HEALTH_UNKNOWN = 0, KT_HEALTH_HEALTHY, KT_HEALTH_UNHEALTHY };

/* EWMA weight of a new latency sample. */
#define KT_LATENCY_ALPHA 0.3

struct kt_health_info {
    enum kt_health_status status;  /* UNKNOWN when never probed: routable */
    uint64_t last_check_ms;        /* last probe, 0 if none */
    uint32_t probe_latency_ms;     /* latency of the last probe */
    uint32_t consecutive_ok, consecutive_fail;   /* probes */
    double latency_ewma_ms;        /* from observed requests; 0 if none */
    uint64_t latency_samples;
    uint64_t passive_ok, passive_fail;
    uint64_t last_passive_ms;
};

const char *kt_health_status_name(enum kt_health_status s);

/* kt_health_put: a probe result (the prober applies its thresholds and
 * passes the resulting status; ok says whether this probe itself passed). */
int kt_health_put(struct kt_state *st, const char *target_id, enum kt_health_status status,
                  int ok, uint32_t latency_ms, uint64_t now_ms, struct kt_err *err);

/* kt_health_get: an unknown target gives status UNKNOWN and zeros, rc 0. */
int kt_health_get(struct kt_state *st, const char *target_id, struct kt_health_info *out,
                  struct kt_err *err);

/* kt_latency_observe: one request's latency (ms to first byte or to the
 * end, as the caller chooses consistently) into the EWMA. */
int kt_latency_observe(struct kt_state *st, const char *target_id, uint32_t ms,
                       struct kt_err *err);

/* kt_latency_get: *ewma_ms (0 when unmeasured) and *samples (may be NULL). */
int kt_latency_get(struct kt_state *st, const char *target_id, double *ewma_ms,
                   uint64_t *samples, struct kt_err *err);

/* kt_health_passive: the outcome of a real request; latency_ms > 0 also
 * feeds the EWMA (one write instead of two). */
int kt_health_passive(struct kt_state *st, const char *target_id, int success,
                      uint32_t latency_ms, uint64_t now_ms, struct kt_err *err);

#endif

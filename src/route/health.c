/* health.c: the per-target health record (health.h): probe verdicts from
 * the prober, latency EWMA and passive outcomes from workers, all in one
 * record per target so a routing decision reads it in one get. */
#include <stdint.h>
#include <string.h>

#include "kt/err.h"
#include "kt/health.h"
#include "kt/state.h"

#define HEALTH_VERSION 1u

struct health_rec {
    uint32_t version;
    uint32_t status;
    uint64_t last_check_ms;
    uint32_t probe_latency_ms;
    uint32_t consecutive_ok, consecutive_fail, pad;
    double latency_ewma_ms;
    uint64_t latency_samples;
    uint64_t passive_ok, passive_fail, last_passive_ms;
};

static const char *const status_names[] = {
    [KT_HEALTH_UNKNOWN] = "unknown",
    [KT_HEALTH_HEALTHY] = "healthy",
    [KT_HEALTH_UNHEALTHY] = "unhealthy",
};

const char *kt_health_status_name(enum kt_health_status s)
{
    return (unsigned)s < sizeof status_names / sizeof status_names[0] ? status_names[s] : "unknown";
}

static void rec_load(struct health_rec *r, const void *cur, size_t len)
{
    memset(r, 0, sizeof *r);
    if (cur != NULL && len == sizeof *r) {
        memcpy(r, cur, sizeof *r);
        if (r->version != HEALTH_VERSION || r->status > KT_HEALTH_UNHEALTHY)
            memset(r, 0, sizeof *r);
    }
    r->version = HEALTH_VERSION;
}

static int rec_store(const struct health_rec *r, void *out, size_t cap, size_t *out_len)
{
    if (cap < sizeof *r)
        return KT_EINVAL;
    memcpy(out, r, sizeof *r);
    *out_len = sizeof *r;
    return KT_STATE_WRITE;
}

static void ewma_add(struct health_rec *r, uint32_t ms)
{
    if (r->latency_samples == 0)
        r->latency_ewma_ms = ms;
    else
        r->latency_ewma_ms = KT_LATENCY_ALPHA * ms + (1 - KT_LATENCY_ALPHA) * r->latency_ewma_ms;
    r->latency_samples++;
}

/* One update shape for every writer: which fields to touch. */
enum { UPD_PROBE = 1, UPD_LATENCY = 2, UPD_PASSIVE = 4 };

struct upd_ud {
    unsigned what;
    enum kt_health_status status;
    int ok;
    uint32_t latency_ms;
    uint64_t now_ms;
};

static int update_cb(void *ud, const void *cur, size_t cur_len, void *out, size_t cap, size_t *out_len)
{
    const struct upd_ud *u = ud;
    struct health_rec r;
    rec_load(&r, cur, cur_len);
    if (u->what & UPD_PROBE) {
        r.status = u->status;
        r.last_check_ms = u->now_ms;
        r.probe_latency_ms = u->latency_ms;
        if (u->ok) {
            r.consecutive_ok++;
            r.consecutive_fail = 0;
        } else {
            r.consecutive_fail++;
            r.consecutive_ok = 0;
        }
    }
    if (u->what & UPD_PASSIVE) {
        if (u->ok)
            r.passive_ok++;
        else
            r.passive_fail++;
        r.last_passive_ms = u->now_ms;
    }
    if ((u->what & UPD_LATENCY) && u->latency_ms > 0)
        ewma_add(&r, u->latency_ms);
    return rec_store(&r, out, cap, out_len);
}

static int health_update(struct kt_state *st, const char *target_id, const struct upd_ud *u,
                         struct kt_err *err)
{
    return kt_state_update(st, KT_STATE_HEALTH, target_id, update_cb, (void *)u, err);
}

int kt_health_put(struct kt_state *st, const char *target_id, enum kt_health_status status,
                  int ok, uint32_t latency_ms, uint64_t now_ms, struct kt_err *err)
{
    struct upd_ud u = { UPD_PROBE, status, ok, latency_ms, now_ms };
    return health_update(st, target_id, &u, err);
}

int kt_latency_observe(struct kt_state *st, const char *target_id, uint32_t ms,
                       struct kt_err *err)
{
    struct upd_ud u = { UPD_LATENCY, KT_HEALTH_UNKNOWN, 1, ms, 0 };
    return health_update(st, target_id, &u, err);
}

int kt_health_passive(struct kt_state *st, const char *target_id, int success,
                      uint32_t latency_ms, uint64_t now_ms, struct kt_err *err)
{
    struct upd_ud u = { UPD_PASSIVE | UPD_LATENCY, KT_HEALTH_UNKNOWN, success, latency_ms, now_ms };
    return health_update(st, target_id, &u, err);
}

int kt_health_get(struct kt_state *st, const char *target_id, struct kt_health_info *out,
                  struct kt_err *err)
{
    struct health_rec raw, r;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    int rc = kt_state_get(st, KT_STATE_HEALTH, target_id, &raw, sizeof raw, &len, err);
    if (rc != 0 && rc != KT_ENOENT && rc != KT_ELIMIT)
        return rc;
    rec_load(&r, rc == 0 ? &raw : NULL, len);
    out->status = (enum kt_health_status)r.status;
    out->last_check_ms = r.last_check_ms;
    out->probe_latency_ms = r.probe_latency_ms;
    out->consecutive_ok = r.consecutive_ok;
    out->consecutive_fail = r.consecutive_fail;
    out->latency_ewma_ms = r.latency_ewma_ms;
    out->latency_samples = r.latency_samples;
    out->passive_ok = r.passive_ok;
    out->passive_fail = r.passive_fail;
    out->last_passive_ms = r.last_passive_ms;
    return 0;
}

int kt_latency_get(struct kt_state *st, const char *target_id, double *ewma_ms,
                   uint64_t *samples, struct kt_err *err)
{
    struct kt_health_info h;
    int rc = kt_health_get(st, target_id, &h, err);
    *ewma_ms = h.latency_ewma_ms;
    if (samples != NULL)
        *samples = h.latency_samples;
    return rc;
}

/* ratelimit.c: GCRA rate limiting over the state layer (see ratelimit.h).
 * Owns the TAT arithmetic and the key format; the caller owns which keys
 * and limits apply to a request. Times are microseconds inside so that a
 * per-unit interval like 60 s / 100000 tokens stays exact enough. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kt/err.h"
#include "kt/ratelimit.h"
#include "kt/state.h"

int kt_ratelimit_key(char *out, size_t outlen, char scope, const char *id, const char *kind)
{
    int n = snprintf(out, outlen, "%c:%s:%s", scope, id, kind);
    if (n < 0 || (size_t)n >= outlen || n > KT_STATE_KEY_MAX)
        return KT_EINVAL;
    return 0;
}

/* Emission interval of cost units: cost * period / limit, in µs. */
static uint64_t interval_us(const struct kt_ratelimit *lim, uint64_t cost)
{
    unsigned __int128 v = (unsigned __int128)cost * lim->period_ms * 1000u / lim->limit;
    return v > UINT64_MAX / 4 ? UINT64_MAX / 4 : (uint64_t)v;
}

static uint64_t ceil_ms(uint64_t us)
{
    return (us + 999) / 1000;
}

static uint64_t tat_decode(const void *cur, size_t len)
{
    uint64_t tat = 0;
    if (cur != NULL && len == sizeof tat)
        memcpy(&tat, cur, sizeof tat);
    return tat;
}

struct gcra_ud {
    const struct kt_ratelimit *lim;
    uint64_t cost, now_us;
    int force;                 /* charge: store even past the burst */
    int admitted;
    uint64_t retry_after_us;
};

static int gcra_cb(void *ud, const void *cur, size_t cur_len, void *out, size_t cap, size_t *out_len)
{
    struct gcra_ud *g = ud;
    uint64_t tat = tat_decode(cur, cur_len);
    if (tat < g->now_us)
        tat = g->now_us;
    uint64_t next = tat + interval_us(g->lim, g->cost);
    uint64_t tau = g->lim->period_ms * 1000u;
    if (!g->force && next - g->now_us > tau) {
        g->admitted = 0;
        g->retry_after_us = next - g->now_us - tau;
        return KT_STATE_KEEP;
    }
    g->admitted = 1;
    if (cap < sizeof next)
        return KT_EINVAL;
    memcpy(out, &next, sizeof next);
    *out_len = sizeof next;
    return KT_STATE_WRITE;
}

int kt_ratelimit_take(struct kt_state *st, const char *key, const struct kt_ratelimit *lim,
                      uint64_t cost, uint64_t now_ms, uint64_t *retry_after_ms,
                      struct kt_err *err)
{
    if (retry_after_ms != NULL)
        *retry_after_ms = 0;
    if (lim->limit == 0 || lim->period_ms == 0 || cost == 0)
        return 0;
    if (cost > lim->limit) {
        if (retry_after_ms != NULL)
            *retry_after_ms = UINT64_MAX;
        return kt_err_set(err, KT_ELIMIT, "%s: cost %llu exceeds the limit of %llu",
                          key, (unsigned long long)cost, (unsigned long long)lim->limit);
    }
    struct gcra_ud g = { lim, cost, now_ms * 1000u, 0, 0, 0 };
    int rc = kt_state_update(st, KT_STATE_RATELIMIT, key, gcra_cb, &g, err);
    if (rc != 0)
        return rc;
    if (g.admitted)
        return 0;
    if (retry_after_ms != NULL)
        *retry_after_ms = ceil_ms(g.retry_after_us);
    return kt_err_set(err, KT_ELIMIT, "%s: rate limit of %llu per %llu ms reached", key,
                      (unsigned long long)lim->limit, (unsigned long long)lim->period_ms);
}

int kt_ratelimit_charge(struct kt_state *st, const char *key, const struct kt_ratelimit *lim,
                        uint64_t cost, uint64_t now_ms, struct kt_err *err)
{
    if (lim->limit == 0 || lim->period_ms == 0 || cost == 0)
        return 0;
    struct gcra_ud g = { lim, cost, now_ms * 1000u, 1, 0, 0 };
    return kt_state_update(st, KT_STATE_RATELIMIT, key, gcra_cb, &g, err);
}

/* Current TAT, never before now. */
static int tat_read(struct kt_state *st, const char *key, uint64_t now_us, uint64_t *tat,
                    struct kt_err *err)
{
    uint64_t raw = 0;
    size_t len = 0;
    int rc = kt_state_get(st, KT_STATE_RATELIMIT, key, &raw, sizeof raw, &len, err);
    if (rc != 0 && rc != KT_ENOENT && rc != KT_ELIMIT)
        return rc;
    *tat = rc == 0 ? tat_decode(&raw, len) : 0;
    if (*tat < now_us)
        *tat = now_us;
    return 0;
}

int kt_ratelimit_check(struct kt_state *st, const char *key, const struct kt_ratelimit *lim,
                       uint64_t now_ms, uint64_t *retry_after_ms, struct kt_err *err)
{
    if (retry_after_ms != NULL)
        *retry_after_ms = 0;
    if (lim->limit == 0 || lim->period_ms == 0)
        return 0;
    uint64_t now_us = now_ms * 1000u, tat;
    int rc = tat_read(st, key, now_us, &tat, err);
    if (rc != 0)
        return rc;
    uint64_t next = tat + interval_us(lim, 1), tau = lim->period_ms * 1000u;
    if (next - now_us <= tau)
        return 0;
    if (retry_after_ms != NULL)
        *retry_after_ms = ceil_ms(next - now_us - tau);
    return kt_err_set(err, KT_ELIMIT, "%s: rate limit of %llu per %llu ms reached", key,
                      (unsigned long long)lim->limit, (unsigned long long)lim->period_ms);
}

int kt_ratelimit_remaining(struct kt_state *st, const char *key, const struct kt_ratelimit *lim,
                           uint64_t now_ms, uint64_t *remaining, struct kt_err *err)
{
    *remaining = UINT64_MAX;
    if (lim->limit == 0 || lim->period_ms == 0)
        return 0;
    uint64_t now_us = now_ms * 1000u, tat;
    int rc = tat_read(st, key, now_us, &tat, err);
    if (rc != 0)
        return rc;
    uint64_t used = tat - now_us, tau = lim->period_ms * 1000u;
    if (used >= tau) {
        *remaining = 0;
        return 0;
    }
    /* Largest n with interval(n) <= tau - used. */
    unsigned __int128 n = (unsigned __int128)(tau - used) * lim->limit / (lim->period_ms * 1000u);
    while (n > 0 && interval_us(lim, (uint64_t)n) > tau - used)
        n--;
    while (n < lim->limit && interval_us(lim, (uint64_t)n + 1) <= tau - used)
        n++;
    *remaining = (uint64_t)n;
    return 0;
}

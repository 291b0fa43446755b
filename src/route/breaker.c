/* breaker.c: circuit breakers kept in the state layer's "breaker" db, one
 * record per target, so a breaker opened by one worker is open for all.
 * Owns the state machine and the record layout; not the decision of what
 * counts as a failure (the caller reports success or failure). */
#include <stdint.h>
#include <string.h>

#include "kt/breaker.h"
#include "kt/err.h"
#include "kt/state.h"

/* Failure times kept for the sliding window; larger thresholds fall back
 * to a fixed window counted from its first failure. */
#define BRK_RING 32
#define BRK_VERSION 1u
/* A trial slot whose holder never reported (its worker died) is given
 * back after this long. */
#define BRK_TRIAL_TIMEOUT_MS 120000u

struct brk_rec {
    uint32_t version;
    uint32_t state;            /* enum kt_breaker_state, as stored */
    uint64_t gen;              /* open episodes so far */
    uint64_t opened_at_ms;
    uint64_t retry_at_ms;      /* opened_at + cooldown */
    uint64_t half_open_since_ms;
    uint32_t trials, trial_limit;
    uint32_t nfail, head;      /* ring of failure times */
    uint64_t win_start_ms;     /* fixed window (threshold > BRK_RING) */
    uint32_t win_count, pad;
    uint64_t fails[BRK_RING];
};

static const char *const state_names[] = {
    [KT_BREAKER_CLOSED] = "closed",
    [KT_BREAKER_OPEN] = "open",
    [KT_BREAKER_HALF_OPEN] = "half_open",
};

const char *kt_breaker_state_name(enum kt_breaker_state s)
{
    return (unsigned)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "unknown";
}

/* Decode a stored record; anything unrecognised reads as closed. */
static void rec_load(struct brk_rec *r, const void *cur, size_t len)
{
    memset(r, 0, sizeof *r);
    if (cur != NULL && len == sizeof *r) {
        memcpy(r, cur, sizeof *r);
        if (r->version != BRK_VERSION || r->state > KT_BREAKER_HALF_OPEN || r->nfail > BRK_RING)
            memset(r, 0, sizeof *r);
    }
    r->version = BRK_VERSION;
}

static int rec_store(const struct brk_rec *r, void *out, size_t cap, size_t *out_len)
{
    if (cap < sizeof *r)
        return KT_EINVAL;
    memcpy(out, r, sizeof *r);
    *out_len = sizeof *r;
    return KT_STATE_WRITE;
}

static uint64_t ms_of(unsigned seconds)
{
    return (uint64_t)seconds * 1000u;
}

static unsigned trial_limit(const struct kt_breaker_params *p)
{
    return p->half_open_requests ? p->half_open_requests : 1;
}

/* Failures within the window ending at now. */
static unsigned failures_in_window(const struct brk_rec *r, const struct kt_breaker_params *p,
                                   uint64_t now)
{
    uint64_t win = p ? ms_of(p->window_seconds) : UINT64_MAX;
    if (p != NULL && p->failure_threshold > BRK_RING)
        return (now - r->win_start_ms <= win || now < r->win_start_ms) ? r->win_count : 0;
    unsigned n = 0;
    for (uint32_t i = 0; i < r->nfail; i++) {
        uint64_t t = r->fails[i];
        if (t > now || now - t <= win)
            n++;
    }
    return n;
}

static void record_failure(struct brk_rec *r, const struct kt_breaker_params *p, uint64_t now)
{
    if (p->failure_threshold > BRK_RING) {
        if (r->win_count == 0 || now < r->win_start_ms ||
            now - r->win_start_ms > ms_of(p->window_seconds)) {
            r->win_start_ms = now;
            r->win_count = 0;
        }
        r->win_count++;
        return;
    }
    r->fails[r->head] = now;
    r->head = (r->head + 1) % BRK_RING;
    if (r->nfail < BRK_RING)
        r->nfail++;
}

static void trip_open(struct brk_rec *r, const struct kt_breaker_params *p, uint64_t now)
{
    uint64_t gen = r->gen + 1;
    memset(r, 0, sizeof *r);
    r->version = BRK_VERSION;
    r->state = KT_BREAKER_OPEN;
    r->gen = gen;
    r->opened_at_ms = now;
    r->retry_at_ms = now + ms_of(p->cooldown_seconds);
}

static void close_breaker(struct brk_rec *r)
{
    uint64_t gen = r->gen;
    memset(r, 0, sizeof *r);
    r->version = BRK_VERSION;
    r->gen = gen;
}

/* The wall clock went back: do not stay open longer than one cooldown.
 * Returns 1 when it changed the record (acquire then stores it). */
static int clamp_clock(struct brk_rec *r, const struct kt_breaker_params *p, uint64_t now)
{
    if (r->state == KT_BREAKER_OPEN && r->retry_at_ms > now + ms_of(p->cooldown_seconds)) {
        r->retry_at_ms = now + ms_of(p->cooldown_seconds);
        return 1;
    }
    return 0;
}

static int rec_read(struct kt_state *st, const char *target_id, struct brk_rec *r,
                    struct kt_err *err)
{
    struct brk_rec raw;
    size_t len = 0;
    int rc = kt_state_get(st, KT_STATE_BREAKER, target_id, &raw, sizeof raw, &len, err);
    if (rc == KT_ENOENT || rc == KT_ELIMIT) {
        rec_load(r, NULL, 0);
        return 0;
    }
    if (rc != 0)
        return rc;
    rec_load(r, &raw, len);
    return 0;
}

/* ---- acquire ---- */

struct acq_ud {
    const struct kt_breaker_params *p;
    uint64_t now;
    int allowed;
    struct kt_breaker_ticket ticket;
};

static int acquire_cb(void *ud, const void *cur, size_t cur_len, void *out, size_t cap, size_t *out_len)
{
    struct acq_ud *a = ud;
    struct brk_rec r;
    rec_load(&r, cur, cur_len);
    int clamped = clamp_clock(&r, a->p, a->now);
    a->allowed = 0;
    a->ticket.trial = 0;
    a->ticket.gen = r.gen;
    switch (r.state) {
    case KT_BREAKER_CLOSED:
        a->allowed = 1;
        return KT_STATE_KEEP;
    case KT_BREAKER_OPEN:
        if (a->now < r.retry_at_ms)
            return clamped ? rec_store(&r, out, cap, out_len) : KT_STATE_KEEP;
        r.state = KT_BREAKER_HALF_OPEN;
        r.trials = 0;
        r.trial_limit = trial_limit(a->p);
        r.half_open_since_ms = a->now;
        break;
    default:
        if (r.trials >= r.trial_limit && a->now - r.half_open_since_ms > BRK_TRIAL_TIMEOUT_MS) {
            r.trials = 0;                  /* holders died without reporting */
            r.half_open_since_ms = a->now;
        }
        break;
    }
    if (r.trials >= r.trial_limit)
        return KT_STATE_KEEP;
    r.trials++;
    a->allowed = 1;
    a->ticket.trial = 1;
    return rec_store(&r, out, cap, out_len);
}

int kt_breaker_acquire(struct kt_state *st, const char *target_id,
                       const struct kt_breaker_params *p, uint64_t now_ms,
                       int *allowed, struct kt_breaker_ticket *ticket, struct kt_err *err)
{
    struct kt_breaker_ticket none = {0, 0};
    *allowed = 1;
    if (ticket != NULL)
        *ticket = none;
    if (p->failure_threshold == 0)
        return 0;
    /* Read first: closed, or open within its cooldown, needs no write. */
    struct brk_rec r;
    int rc = rec_read(st, target_id, &r, err);
    if (rc != 0)
        return rc;
    int clamped = clamp_clock(&r, p, now_ms);
    if (r.state == KT_BREAKER_CLOSED)
        return 0;
    if (r.state == KT_BREAKER_OPEN && now_ms < r.retry_at_ms && !clamped) {
        *allowed = 0;
        return 0;
    }
    struct acq_ud a = { p, now_ms, 0, none };
    rc = kt_state_update(st, KT_STATE_BREAKER, target_id, acquire_cb, &a, err);
    if (rc != 0)
        return rc;
    *allowed = a.allowed;
    if (ticket != NULL)
        *ticket = a.ticket;
    return 0;
}

/* ---- report ---- */

struct rep_ud {
    const struct kt_breaker_params *p;
    const struct kt_breaker_ticket *ticket;
    int success;
    uint64_t now;
};

static int report_cb(void *ud, const void *cur, size_t cur_len, void *out, size_t cap, size_t *out_len)
{
    struct rep_ud *u = ud;
    struct brk_rec r;
    rec_load(&r, cur, cur_len);
    int trial = u->ticket != NULL && u->ticket->trial;
    if (trial) {
        /* Only a trial of the current half-open episode decides it. */
        if (r.state != KT_BREAKER_HALF_OPEN || r.gen != u->ticket->gen)
            return KT_STATE_KEEP;
        if (u->success)
            close_breaker(&r);
        else
            trip_open(&r, u->p, u->now);
        return rec_store(&r, out, cap, out_len);
    }
    /* Requests admitted while closed: their failures count only while
     * still closed (late failures of an old burst must not re-open). */
    if (u->success || r.state != KT_BREAKER_CLOSED)
        return KT_STATE_KEEP;
    record_failure(&r, u->p, u->now);
    if (failures_in_window(&r, u->p, u->now) >= u->p->failure_threshold)
        trip_open(&r, u->p, u->now);
    return rec_store(&r, out, cap, out_len);
}

int kt_breaker_report(struct kt_state *st, const char *target_id,
                      const struct kt_breaker_params *p, const struct kt_breaker_ticket *ticket,
                      int success, uint64_t now_ms, struct kt_err *err)
{
    if (p->failure_threshold == 0)
        return 0;
    /* The hot path: a success outside a trial changes nothing. */
    if (success && (ticket == NULL || !ticket->trial))
        return 0;
    struct rep_ud u = { p, ticket, success, now_ms };
    return kt_state_update(st, KT_STATE_BREAKER, target_id, report_cb, &u, err);
}

static int release_cb(void *ud, const void *cur, size_t cur_len, void *out, size_t cap, size_t *out_len)
{
    const struct kt_breaker_ticket *t = ud;
    struct brk_rec r;
    rec_load(&r, cur, cur_len);
    if (r.state != KT_BREAKER_HALF_OPEN || r.gen != t->gen || r.trials == 0)
        return KT_STATE_KEEP;
    r.trials--;
    return rec_store(&r, out, cap, out_len);
}

int kt_breaker_release(struct kt_state *st, const char *target_id,
                       const struct kt_breaker_ticket *ticket, struct kt_err *err)
{
    if (ticket == NULL || !ticket->trial)
        return 0;
    return kt_state_update(st, KT_STATE_BREAKER, target_id, release_cb, (void *)ticket, err);
}

int kt_breaker_peek(struct kt_state *st, const char *target_id,
                    const struct kt_breaker_params *p, uint64_t now_ms,
                    struct kt_breaker_info *info, struct kt_err *err)
{
    struct brk_rec r;
    int rc = rec_read(st, target_id, &r, err);
    memset(info, 0, sizeof *info);
    if (rc != 0) {
        info->state_name = kt_breaker_state_name(KT_BREAKER_CLOSED);
        info->available = 1;
        return rc;
    }
    if (p != NULL)
        clamp_clock(&r, p, now_ms);
    info->state = (enum kt_breaker_state)r.state;
    info->opened_at_ms = r.opened_at_ms;
    info->trials_in_flight = r.trials;
    switch (r.state) {
    case KT_BREAKER_CLOSED:
        info->failures = failures_in_window(&r, p, now_ms);
        info->available = 1;
        break;
    case KT_BREAKER_OPEN:
        if (now_ms < r.retry_at_ms) {
            info->retry_at_ms = r.retry_at_ms;
        } else {
            info->state = KT_BREAKER_HALF_OPEN;   /* the next acquire claims a trial */
            info->available = 1;
        }
        break;
    default:
        info->available = r.trials < r.trial_limit ||
                          now_ms - r.half_open_since_ms > BRK_TRIAL_TIMEOUT_MS;
        break;
    }
    if (p != NULL && p->failure_threshold == 0)
        info->available = 1;
    info->state_name = kt_breaker_state_name(info->state);
    return 0;
}

static int reset_cb(void *ud, const void *cur, size_t cur_len, void *out, size_t cap, size_t *out_len)
{
    return KT_STATE_DELETE;
}

int kt_breaker_reset(struct kt_state *st, const char *target_id, struct kt_err *err)
{
    return kt_state_update(st, KT_STATE_BREAKER, target_id, reset_cb, NULL, err);
}

/* breaker.h: per-target circuit breakers shared by every ktd process
 * through the state layer. closed -> open after failure_threshold failures
 * within window_seconds -> half-open once cooldown_seconds have passed,
 * letting half_open_requests trial requests through (counted across all
 * processes) -> closed on a trial's success, open again on its failure.
 *
 * now_ms: pass kt_wall_ms(); the records outlive a reboot, and a clock
 * going backwards is clamped. Only transitions write; the common closed
 * path is a read transaction. */
#ifndef KT_BREAKER_H
#define KT_BREAKER_H

#include <stdint.h>

#include "kt/err.h"
#include "kt/state.h"

struct kt_breaker_params {
    unsigned failure_threshold;   /* 0 disables the breaker */
    unsigned window_seconds;
    unsigned cooldown_seconds;
    unsigned half_open_requests;  /* trial requests at once; 0 is taken as 1 */
};

enum kt_breaker_state { KT_BREAKER_CLOSED = 0, KT_BREAKER_OPEN, KT_BREAKER_HALF_OPEN };

/* What kt_breaker_acquire handed out; give it back to kt_breaker_report. */
struct kt_breaker_ticket {
    int trial;          /* 1: holds a half-open slot */
    uint64_t gen;       /* the open episode the slot belongs to */
};

struct kt_breaker_info {
    enum kt_breaker_state state;  /* effective: open past cooldown reads half-open */
    const char *state_name;       /* "closed", "open", "half_open" */
    unsigned failures;            /* failures within the window (closed) */
    uint64_t opened_at_ms;        /* 0 when closed */
    uint64_t retry_at_ms;         /* open: when it turns half-open; else 0 */
    unsigned trials_in_flight;    /* half-open slots claimed */
    int available;                /* 1 when acquire would admit now */
};

const char *kt_breaker_state_name(enum kt_breaker_state s);

/* kt_breaker_acquire: may a request go to target_id now? *allowed = 1/0.
 * In half-open it claims a trial slot atomically (one write txn). Returns
 * 0, or a negative KT_E* when the state failed (callers should then admit:
 * a broken state store must not take the gateway down). */
int kt_breaker_acquire(struct kt_state *st, const char *target_id,
                       const struct kt_breaker_params *p, uint64_t now_ms,
                       int *allowed, struct kt_breaker_ticket *ticket, struct kt_err *err);

/* kt_breaker_report: the outcome of a request admitted by acquire.
 * success: the upstream answered (not 5xx/429/timeout/connect failure). */
int kt_breaker_report(struct kt_state *st, const char *target_id,
                      const struct kt_breaker_params *p, const struct kt_breaker_ticket *ticket,
                      int success, uint64_t now_ms, struct kt_err *err);

/* kt_breaker_release: give back a trial slot that was never used (the
 * request was abandoned before reaching the upstream). No-op otherwise. */
int kt_breaker_release(struct kt_state *st, const char *target_id,
                       const struct kt_breaker_ticket *ticket, struct kt_err *err);

/* kt_breaker_peek: read-only view for routing, /readyz and metrics. An
 * unknown target reads closed. */
int kt_breaker_peek(struct kt_state *st, const char *target_id,
                    const struct kt_breaker_params *p, uint64_t now_ms,
                    struct kt_breaker_info *info, struct kt_err *err);

/* kt_breaker_reset: force closed (admin, tests). */
int kt_breaker_reset(struct kt_state *st, const char *target_id, struct kt_err *err);

#endif

/* ratelimit.h: rate limits enforced across every ktd process together, by
 * GCRA over the state layer's "ratelimit" db: one 8-byte theoretical
 * arrival time (TAT, microseconds) per key, updated in one write txn.
 * A limit of L per period P admits a burst of L from idle, then one every
 * P/L. Requests are taken before sending (kt_ratelimit_take, cost 1);
 * tokens are known only after the response, so they are charged then
 * (kt_ratelimit_charge, which may push the TAT past now so that later
 * requests wait) and checked before sending (kt_ratelimit_check).
 *
 * Keys: "t:<target>:rpm", "t:<target>:tpm" per target, "k:<keyid>:rpm" and
 * "k:<keyid>:tpm" per client key (kt_ratelimit_key builds them).
 * now_ms: pass kt_wall_ms(). */
#ifndef KT_RATELIMIT_H
#define KT_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "kt/err.h"
#include "kt/state.h"

struct kt_ratelimit {
    uint64_t limit;        /* per period; 0 = unlimited */
    uint64_t period_ms;    /* 60000 for "per minute"; short in tests */
};

/* kt_ratelimit_key: "<scope>:<id>:<kind>", e.g. ('t', "anthropic", "rpm").
 * Returns 0, or KT_EINVAL when it does not fit in out. */
int kt_ratelimit_key(char *out, size_t outlen, char scope, const char *id, const char *kind);

/* kt_ratelimit_take: admit cost units now or refuse. Returns 0 when
 * admitted, KT_ELIMIT when refused (*retry_after_ms: when cost units will
 * fit), another negative KT_E* when the state failed (callers should then
 * admit and log). A cost above the limit can never be admitted: KT_ELIMIT
 * with *retry_after_ms = UINT64_MAX. */
int kt_ratelimit_take(struct kt_state *st, const char *key, const struct kt_ratelimit *lim,
                      uint64_t cost, uint64_t now_ms, uint64_t *retry_after_ms,
                      struct kt_err *err);

/* kt_ratelimit_charge: count cost units that were already spent (tokens
 * from a response's usage), unconditionally. */
int kt_ratelimit_charge(struct kt_state *st, const char *key, const struct kt_ratelimit *lim,
                        uint64_t cost, uint64_t now_ms, struct kt_err *err);

/* kt_ratelimit_check: read-only; 0 when at least one unit would be admitted
 * now, KT_ELIMIT with *retry_after_ms otherwise. */
int kt_ratelimit_check(struct kt_state *st, const char *key, const struct kt_ratelimit *lim,
                       uint64_t now_ms, uint64_t *retry_after_ms, struct kt_err *err);

/* kt_ratelimit_remaining: units that would be admitted now (for
 * x-ratelimit-remaining style headers and metrics). */
int kt_ratelimit_remaining(struct kt_state *st, const char *key, const struct kt_ratelimit *lim,
                           uint64_t now_ms, uint64_t *remaining, struct kt_err *err);

#endif

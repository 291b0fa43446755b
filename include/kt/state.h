/* state.h: the shared soft state every ktd process sees (circuit breakers,
 * rate-limit counters, health). A small interface with an ops vtable so a
 * backend other than LMDB (Redis, for a fleet) can implement it later;
 * today kt_state_open gives the LMDB one (src/state/lmdb_store.c).
 *
 * Fork rules: the master calls kt_state_create once (and
 * kt_state_reader_check after a child dies); it never keeps an env open.
 * Each child calls kt_state_open after fork. A kt_state is single-threaded. */
#ifndef KT_STATE_H
#define KT_STATE_H

#include <stddef.h>

#include "kt/err.h"

/* The named databases. */
enum kt_state_db {
    KT_STATE_BREAKER = 0,   /* target id -> breaker record */
    KT_STATE_RATELIMIT,     /* limit key -> GCRA TAT */
    KT_STATE_HEALTH,        /* target id -> probe result, latency EWMA */
    KT_STATE_NDB
};

/* Largest key and value the state layer stores. */
#define KT_STATE_KEY_MAX 256
#define KT_STATE_VAL_MAX 1024

/* kt_state_update_fn: runs inside one write transaction. cur is the
 * current value (NULL, cur_len 0 when absent). Write the new value into out
 * (out_cap bytes) and set *out_len. Return KT_STATE_WRITE to store it,
 * KT_STATE_KEEP to leave the key unchanged, KT_STATE_DELETE to remove it,
 * or a negative KT_E* code to abort (nothing is written, the code is
 * returned by the update call). Must not call back into the state. */
enum { KT_STATE_WRITE = 0, KT_STATE_KEEP = 1, KT_STATE_DELETE = 2 };
typedef int (*kt_state_update_fn)(void *ud, const void *cur, size_t cur_len,
                                  void *out, size_t out_cap, size_t *out_len);

struct kt_state;

struct kt_state_ops {
    /* get: copy the value into val (cap bytes), set *len to its full size.
     * KT_ENOENT when absent; KT_ELIMIT when cap is too small. */
    int (*get)(struct kt_state *st, enum kt_state_db db, const char *key,
               void *val, size_t cap, size_t *len, struct kt_err *err);
    int (*put)(struct kt_state *st, enum kt_state_db db, const char *key,
               const void *val, size_t len, struct kt_err *err);
    /* update: read-modify-write of one key, atomic across processes. */
    int (*update)(struct kt_state *st, enum kt_state_db db, const char *key,
                  kt_state_update_fn fn, void *ud, struct kt_err *err);
    /* reader_check: clear reader slots of dead processes; *dead = count. */
    int (*reader_check)(struct kt_state *st, int *dead, struct kt_err *err);
    void (*close)(struct kt_state *st);
};

struct kt_state {
    const struct kt_state_ops *ops;
};

/* kt_state_create: master, before fork. mkdir -p dir (0700), check it is
 * writable, open the env once (creating data.mdb, lock.mdb and the named
 * databases), walk every record, close. A missing parent that cannot be
 * created, an unwritable dir or a corrupt data.mdb give KT_ESTATE with a
 * message naming the path and what to do. The open and walk run in a
 * short-lived child (LMDB may abort on a damaged tree; the master must
 * not): call it before installing a SIGCHLD handler that reaps with
 * waitpid(-1) (the verdict comes through a pipe, so even then it works,
 * only the crash signal number is lost). */
int kt_state_create(const char *dir, struct kt_err *err);

/* kt_state_chown: master, when started as root and children drop to
 * server.user: hand the dir, data.mdb and lock.mdb to uid:gid. */
int kt_state_chown(const char *dir, unsigned uid, unsigned gid, struct kt_err *err);

/* kt_state_open: each child after fork (an env must never cross a fork). */
int kt_state_open(const char *dir, struct kt_state **out, struct kt_err *err);

/* kt_state_reader_check: master, after a child died: open, clear stale
 * reader slots, close. *dead (may be NULL) = slots cleared. */
int kt_state_reader_check(const char *dir, int *dead, struct kt_err *err);

/* Thin wrappers over the vtable. */
static inline int kt_state_get(struct kt_state *st, enum kt_state_db db, const char *key,
                               void *val, size_t cap, size_t *len, struct kt_err *err)
{
    return st->ops->get(st, db, key, val, cap, len, err);
}
static inline int kt_state_put(struct kt_state *st, enum kt_state_db db, const char *key,
                               const void *val, size_t len, struct kt_err *err)
{
    return st->ops->put(st, db, key, val, len, err);
}
static inline int kt_state_update(struct kt_state *st, enum kt_state_db db, const char *key,
                                  kt_state_update_fn fn, void *ud, struct kt_err *err)
{
    return st->ops->update(st, db, key, fn, ud, err);
}
static inline void kt_state_close(struct kt_state *st)
{
    if (st != NULL)
        st->ops->close(st);
}

#endif

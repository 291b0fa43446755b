/* lmdb_store.c: the LMDB backend of the state interface (state.h). Owns
 * the env in state_dir, its three named databases, one reusable read
 * transaction per process, and the validation done by the master before
 * fork. It knows nothing about what the values mean (breaker.c,
 * ratelimit.c and health.c do). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "kt/err.h"
#include "kt/state.h"

/* 64 MiB holds far more than every breaker, limit key and health record a
 * config can name; records are a few dozen bytes. */
#define KT_LMDB_MAPSIZE ((size_t)64 << 20)
#define KT_LMDB_MAXREADERS 512
/* NOSYNC/NOMETASYNC: the state is soft, losing the last second on power loss
 * is fine. NOTLS: read txns belong to our handle, not to a thread. */
#define KT_LMDB_FLAGS (MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS | MDB_NORDAHEAD)

static const char *const db_names[KT_STATE_NDB] = {
    [KT_STATE_BREAKER] = "breaker",
    [KT_STATE_RATELIMIT] = "ratelimit",
    [KT_STATE_HEALTH] = "health",
};

struct kt_lmdb {
    struct kt_state base;       /* first: a kt_state * is a kt_lmdb * */
    MDB_env *env;
    MDB_dbi dbi[KT_STATE_NDB];
    MDB_txn *rtxn;              /* reset between reads, renewed on the next */
    char dir[PATH_MAX];
};

static int lmdb_fail(struct kt_err *err, int rc, const char *what, const char *dir)
{
    if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED ||
        rc == MDB_PAGE_NOTFOUND)
        return kt_err_set(err, KT_ESTATE,
                          "state_dir %s: %s: %s; data.mdb is damaged or not an LMDB file, "
                          "remove %s/data.mdb and %s/lock.mdb (the state is soft: breakers, "
                          "limits and health start fresh)",
                          dir, what, mdb_strerror(rc), dir, dir);
    if (rc == MDB_MAP_FULL)
        return kt_err_set(err, KT_ESTATE, "state_dir %s: %s: the state map is full (%zu MiB)",
                          dir, what, KT_LMDB_MAPSIZE >> 20);
    return kt_err_set(err, KT_ESTATE, "state_dir %s: %s: %s", dir, what, mdb_strerror(rc));
}

/* mkdir -p with mode 0700 for the parts we create. */
static int mkdir_p(const char *dir, struct kt_err *err)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return kt_err_set(err, KT_EINVAL, "state_dir '%s': empty or too long", dir);
    memcpy(path, dir, n + 1);
    for (char *p = path + 1; ; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return kt_err_set(err, KT_ESTATE, "state_dir %s: cannot create %s: %s",
                              dir, path, strerror(errno));
        *p = c;
        if (c == '\0')
            break;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return kt_err_set(err, KT_ESTATE, "state_dir %s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return kt_err_set(err, KT_ESTATE, "state_dir %s: exists and is not a directory", dir);
    return 0;
}

static int env_open(const char *dir, MDB_env **out, struct kt_err *err)
{
    MDB_env *env = NULL;
    int rc = mdb_env_create(&env);
    if (rc != 0)
        return lmdb_fail(err, rc, "mdb_env_create", dir);
    mdb_env_set_mapsize(env, KT_LMDB_MAPSIZE);
    mdb_env_set_maxdbs(env, KT_STATE_NDB);
    mdb_env_set_maxreaders(env, KT_LMDB_MAXREADERS);
    rc = mdb_env_open(env, dir, KT_LMDB_FLAGS, 0600);
    if (rc != 0) {
        mdb_env_close(env);
        if (rc == EACCES || rc == EROFS || rc == EPERM)
            return kt_err_set(err, KT_ESTATE,
                              "state_dir %s: cannot open the state files: %s "
                              "(the directory must be writable by the ktd user)",
                              dir, strerror(rc));
        return lmdb_fail(err, rc, "open", dir);
    }
    *out = env;
    return 0;
}

/* Open (creating if needed) the named databases in one write txn. */
static int dbis_open(MDB_env *env, MDB_dbi *dbi, const char *dir, struct kt_err *err)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc != 0)
        return lmdb_fail(err, rc, "begin", dir);
    for (int i = 0; i < KT_STATE_NDB; i++) {
        rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &dbi[i]);
        if (rc != 0) {
            mdb_txn_abort(txn);
            return lmdb_fail(err, rc, db_names[i], dir);
        }
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return lmdb_fail(err, rc, "commit", dir);
    return 0;
}

/* Walk every record once so a damaged tree is reported by the master at
 * startup rather than found by a worker on the request path. */
static int env_validate(MDB_env *env, const MDB_dbi *dbi, const char *dir, struct kt_err *err)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return lmdb_fail(err, rc, "begin", dir);
    for (int i = 0; i < KT_STATE_NDB && rc == 0; i++) {
        MDB_cursor *cur;
        rc = mdb_cursor_open(txn, dbi[i], &cur);
        if (rc != 0)
            break;
        MDB_val k, v;
        while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
            ;
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    mdb_txn_abort(txn);
    return rc ? lmdb_fail(err, rc, "validate", dir) : 0;
}

/* Open, create the named dbs, walk every record, close. */
static int create_and_validate(const char *dir, struct kt_err *err)
{
    MDB_env *env;
    int rc = env_open(dir, &env, err);
    if (rc != 0)
        return rc;
    MDB_dbi dbi[KT_STATE_NDB];
    rc = dbis_open(env, dbi, dir, err);
    if (rc == 0)
        rc = env_validate(env, dbi, dir, err);
    if (rc == 0) {
        int dead = 0;
        mdb_reader_check(env, &dead);
    }
    mdb_env_close(env);
    return rc;
}

/* LMDB trusts its pages: a damaged tree can make it assert or fault. The
 * master must never crash on a bad file, so the walk runs in a short-lived
 * child that sends its verdict through a pipe; no verdict means it died. */
static int validate_in_child(const char *dir, struct kt_err *err)
{
    int fds[2];
    if (pipe(fds) != 0)
        return kt_err_set(err, KT_ESTATE, "state_dir %s: pipe: %s", dir, strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return kt_err_set(err, KT_ESTATE, "state_dir %s: fork: %s", dir, strerror(errno));
    }
    if (pid == 0) {
        struct kt_err cerr;
        memset(&cerr, 0, sizeof cerr);
        cerr.code = create_and_validate(dir, &cerr);
        close(fds[0]);
        ssize_t w = write(fds[1], &cerr, sizeof cerr);
        _exit(w == (ssize_t)sizeof cerr ? 0 : 1);
    }
    close(fds[1]);
    struct kt_err verdict;
    size_t got = 0;
    while (got < sizeof verdict) {
        ssize_t r = read(fds[0], (char *)&verdict + got, sizeof verdict - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != sizeof verdict) {
        char how[48];
        if (WIFSIGNALED(status))
            snprintf(how, sizeof how, "crashed with signal %d", WTERMSIG(status));
        else
            snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
        return kt_err_set(err, KT_ESTATE,
                          "state_dir %s: checking data.mdb %s: it is damaged; "
                          "remove %s/data.mdb and %s/lock.mdb (the state is soft: breakers, "
                          "limits and health start fresh)", dir, how, dir, dir);
    }
    if (verdict.code != 0 && err != NULL)
        *err = verdict;
    return verdict.code;
}

int kt_state_create(const char *dir, struct kt_err *err)
{
    if (dir == NULL)
        return kt_err_set(err, KT_EINVAL, "state_dir is not set");
    int rc = mkdir_p(dir, err);
    if (rc != 0)
        return rc;
    if (access(dir, W_OK | X_OK) != 0)
        return kt_err_set(err, KT_ESTATE, "state_dir %s: not writable: %s "
                          "(chown it to the ktd user or pick another server.state_dir)",
                          dir, strerror(errno));
    return validate_in_child(dir, err);
}

int kt_state_chown(const char *dir, unsigned uid, unsigned gid, struct kt_err *err)
{
    static const char *const leaves[] = { "", "/data.mdb", "/lock.mdb" };
    for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s%s", dir, leaves[i]) >= (int)sizeof path)
            return kt_err_set(err, KT_EINVAL, "state_dir %s: path too long", dir);
        if (chown(path, (uid_t)uid, (gid_t)gid) != 0)
            return kt_err_set(err, KT_ESTATE, "state_dir %s: chown %s to %u:%u: %s",
                              dir, path, uid, gid, strerror(errno));
    }
    return 0;
}

int kt_state_reader_check(const char *dir, int *dead, struct kt_err *err)
{
    MDB_env *env;
    int rc = env_open(dir, &env, err);
    if (rc != 0)
        return rc;
    int n = 0;
    rc = mdb_reader_check(env, &n);
    mdb_env_close(env);
    if (dead != NULL)
        *dead = n;
    return rc ? lmdb_fail(err, rc, "reader check", dir) : 0;
}

/* ---- the vtable ---- */

static int key_val(const char *key, MDB_val *k, struct kt_err *err)
{
    size_t n = strlen(key);
    if (n == 0 || n > KT_STATE_KEY_MAX)
        return kt_err_set(err, KT_EINVAL, "state key of %zu bytes (1..%d)", n, KT_STATE_KEY_MAX);
    k->mv_data = (void *)key;
    k->mv_size = n;
    return 0;
}

static int lm_get(struct kt_state *st, enum kt_state_db db, const char *key,
                  void *val, size_t cap, size_t *len, struct kt_err *err)
{
    struct kt_lmdb *s = (struct kt_lmdb *)st;
    MDB_val k, v;
    int rc = key_val(key, &k, err);
    if (rc != 0)
        return rc;
    if (s->rtxn != NULL)
        rc = mdb_txn_renew(s->rtxn);
    else
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn);
    if (rc != 0) {
        if (s->rtxn != NULL) {
            mdb_txn_abort(s->rtxn);
            s->rtxn = NULL;
        }
        return lmdb_fail(err, rc, "read", s->dir);
    }
    rc = mdb_get(s->rtxn, s->dbi[db], &k, &v);
    int ret = 0;
    if (rc == MDB_NOTFOUND) {
        ret = KT_ENOENT;
    } else if (rc != 0) {
        ret = lmdb_fail(err, rc, "get", s->dir);
    } else {
        if (len != NULL)
            *len = v.mv_size;
        if (v.mv_size > cap)
            ret = kt_err_set(err, KT_ELIMIT, "state value of %zu bytes > %zu", v.mv_size, cap);
        else
            memcpy(val, v.mv_data, v.mv_size);
    }
    mdb_txn_reset(s->rtxn);
    return ret;
}

static int lm_update(struct kt_state *st, enum kt_state_db db, const char *key,
                     kt_state_update_fn fn, void *ud, struct kt_err *err)
{
    struct kt_lmdb *s = (struct kt_lmdb *)st;
    MDB_val k, v;
    int rc = key_val(key, &k, err);
    if (rc != 0)
        return rc;
    MDB_txn *txn;
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return lmdb_fail(err, rc, "begin write", s->dir);
    const void *cur = NULL;
    size_t cur_len = 0;
    rc = mdb_get(txn, s->dbi[db], &k, &v);
    if (rc == 0) {
        cur = v.mv_data;
        cur_len = v.mv_size;
    } else if (rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return lmdb_fail(err, rc, "get", s->dir);
    }
    unsigned char out[KT_STATE_VAL_MAX];
    size_t out_len = 0;
    int what = fn(ud, cur, cur_len, out, sizeof out, &out_len);
    if (what < 0) {
        mdb_txn_abort(txn);
        return what;
    }
    if (what == KT_STATE_KEEP) {
        mdb_txn_abort(txn);
        return 0;
    }
    if (what == KT_STATE_DELETE) {
        rc = cur ? mdb_del(txn, s->dbi[db], &k, NULL) : 0;
    } else {
        if (out_len > sizeof out) {
            mdb_txn_abort(txn);
            return kt_err_set(err, KT_EINVAL, "state value of %zu bytes", out_len);
        }
        v.mv_data = out;
        v.mv_size = out_len;
        rc = mdb_put(txn, s->dbi[db], &k, &v, 0);
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return lmdb_fail(err, rc, "put", s->dir);
    }
    rc = mdb_txn_commit(txn);
    return rc ? lmdb_fail(err, rc, "commit", s->dir) : 0;
}

struct put_ud { const void *val; size_t len; };

static int put_cb(void *ud, const void *cur, size_t cur_len, void *out, size_t cap, size_t *out_len)
{
    const struct put_ud *p = ud;
    if (p->len > cap)
        return KT_EINVAL;
    memcpy(out, p->val, p->len);
    *out_len = p->len;
    return KT_STATE_WRITE;
}

static int lm_put(struct kt_state *st, enum kt_state_db db, const char *key,
                  const void *val, size_t len, struct kt_err *err)
{
    if (len > KT_STATE_VAL_MAX)
        return kt_err_set(err, KT_EINVAL, "state value of %zu bytes > %d", len, KT_STATE_VAL_MAX);
    struct put_ud p = { val, len };
    return lm_update(st, db, key, put_cb, &p, err);
}

static int lm_reader_check(struct kt_state *st, int *dead, struct kt_err *err)
{
    struct kt_lmdb *s = (struct kt_lmdb *)st;
    int n = 0;
    int rc = mdb_reader_check(s->env, &n);
    if (dead != NULL)
        *dead = n;
    return rc ? lmdb_fail(err, rc, "reader check", s->dir) : 0;
}

static void lm_close(struct kt_state *st)
{
    struct kt_lmdb *s = (struct kt_lmdb *)st;
    if (s->rtxn != NULL)
        mdb_txn_abort(s->rtxn);
    mdb_env_close(s->env);
    free(s);
}

static const struct kt_state_ops lmdb_ops = {
    .get = lm_get,
    .put = lm_put,
    .update = lm_update,
    .reader_check = lm_reader_check,
    .close = lm_close,
};

int kt_state_open(const char *dir, struct kt_state **out, struct kt_err *err)
{
    if (dir == NULL)
        return kt_err_set(err, KT_EINVAL, "state_dir is not set");
    struct kt_lmdb *s = calloc(1, sizeof *s);
    if (s == NULL)
        return kt_err_set(err, KT_ENOMEM, "out of memory");
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    int rc = env_open(dir, &s->env, err);
    if (rc != 0) {
        free(s);
        return rc;
    }
    if ((rc = dbis_open(s->env, s->dbi, dir, err)) != 0) {
        mdb_env_close(s->env);
        free(s);
        return rc;
    }
    s->base.ops = &lmdb_ops;
    *out = &s->base;
    return 0;
}

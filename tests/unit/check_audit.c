/* check_audit: the audit pipeline with real processes. The test plays the
 * master (creates the slot socketpairs, keeps both ends) and the workers
 * (kt_audit_writer), forks kt_audit_proc_run children, kills them, and
 * checks the log: every record exactly once, chain verifiable, tampering
 * named, rotation and retention. */
#define _GNU_SOURCE 1
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-c/json.h>
#include <openssl/sha.h>
#include <math.h>
#include <stdint.h>

#include "kt/audit.h"
#include "kt/err.h"
#include "kt/log.h"
#include "kt/util.h"

enum { MAX_SLOTS = 8 };

struct rig {
    char dir[64];
    char path[128];
    struct kt_audit_opts o;
    size_t nslots;
    int sv[MAX_SLOTS][2];           /* [0] worker end, [1] audit end */
    int afd[MAX_SLOTS];
    pid_t pid;
    struct event_base *base;
    struct kt_audit_writer w[MAX_SLOTS];
    int crash_after;                /* KT_AUDIT_CRASH_AFTER_APPEND for the next spawn */
    long fsize_limit;               /* RLIMIT_FSIZE for the next spawn: a full disk */
    char logpath[160];              /* non-empty: the child logs at debug level here */
};

static void rig_init(struct rig *r, size_t nslots, int immutable)
{
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "/tmp/kt-audit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(r->dir));
    snprintf(r->path, sizeof r->path, "%s/audit.log", r->dir);
    r->o.path = r->path;
    r->o.immutable = immutable;
    r->o.fsync_every_ms = 50;
    r->o.fsync_every_records = 50;
    r->o.worker_queue_max_bytes = 4 << 20;
    r->nslots = nslots;
    r->base = event_base_new();
    for (size_t i = 0; i < nslots; i++) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r->sv[i]), 0);
        r->afd[i] = r->sv[i][1];
    }
}

static void rig_writers(struct rig *r)
{
    for (size_t i = 0; i < r->nslots; i++)
        ck_assert_int_eq(kt_audit_writer_init(&r->w[i], r->sv[i][0], r->base,
                                              r->o.worker_queue_max_bytes), 0);
}

static void rig_spawn(struct rig *r)
{
    /* the child must not start with check's SIGTERM handler (it kills the
     * whole group), and rig_ready watches for the child's own handler */
    struct sigaction dfl = { .sa_handler = SIG_DFL }, old_term, old_int;
    sigaction(SIGTERM, &dfl, &old_term);
    sigaction(SIGINT, &dfl, &old_int);
    pid_t pid = fork();
    if (pid != 0) {
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGINT, &old_int, NULL);
    }
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (r->logpath[0])
            kt_log_setup(KT_LOG_DEBUG, 0, r->logpath, "audit");
        else
            kt_log_setup(getenv("KT_TEST_LOG") ? KT_LOG_DEBUG : KT_LOG_ERROR, 0, NULL, "audit");
        if (r->fsize_limit) {
            struct rlimit rl = { (rlim_t)r->fsize_limit, (rlim_t)r->fsize_limit };
            signal(SIGXFSZ, SIG_IGN);   /* writes past it fail with EFBIG */
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        if (r->crash_after) {
            char v[16];
            snprintf(v, sizeof v, "%d", r->crash_after);
            setenv("KT_AUDIT_CRASH_AFTER_APPEND", v, 1);
        }
        _exit(kt_audit_proc_run(&r->o, r->afd, r->nslots) == 0 ? 0 : 3);
    }
    r->pid = pid;
}

static void pump(struct rig *r);

/* rig_wait: reap the audit child, pumping the writers meanwhile (a child
 * may be waiting for the records still queued in them). */
static int rig_wait(struct rig *r)
{
    int st = 0;
    pid_t got;
    while ((got = waitpid(r->pid, &st, WNOHANG)) == 0) {
        pump(r);
        usleep(1000);
    }
    ck_assert_int_eq(got, r->pid);
    r->pid = 0;
    return st;
}

static void rig_kill(struct rig *r)
{
    kill(r->pid, SIGKILL);
    rig_wait(r);
}

/* rig_ready: the child has installed its SIGTERM handler (SigCgt bit 15). */
static void rig_ready(struct rig *r)
{
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", (int)r->pid);
    for (int i = 0; i < 5000; i++) {
        FILE *f = fopen(p, "r");
        unsigned long long mask = 0;
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "SigCgt: %llx", &mask) == 1)
                break;
        if (f)
            fclose(f);
        if (mask & (1ull << (SIGTERM - 1)))
            return;
        pump(r);
        usleep(1000);
    }
    ck_abort_msg("audit process never installed its SIGTERM handler");
}

/* rig_term: SIGTERM; the audit process must exit 0. */
static void rig_term(struct rig *r)
{
    rig_ready(r);
    kill(r->pid, SIGTERM);
    int st = rig_wait(r);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "audit process status %d", st);
}

static void rig_free(struct rig *r)
{
    if (r->pid > 0)
        rig_kill(r);
    for (size_t i = 0; i < r->nslots; i++) {
        kt_audit_writer_free(&r->w[i]);
        close(r->sv[i][0]);
        close(r->sv[i][1]);
    }
    event_base_free(r->base);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", r->dir);
    if (getenv("KT_TEST_KEEP") == NULL && system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", r->dir);
}

static void pump(struct rig *r)
{
    event_base_loop(r->base, EVLOOP_NONBLOCK);
}

/* submit: one record from slot i; waits (pumping) while the queue is full. */
static void submit(struct rig *r, size_t slot, int n)
{
    char reqid[48];
    snprintf(reqid, sizeof reqid, "s%zu-%d", slot, n);
    struct kt_audit_decision d[] = { { "pii-detector", "redact", "EMAIL", -1 },
                                     { "prompt-injection", "flag", NULL, 0.42 } };
    struct kt_audit_record rec = {
        .request_id = reqid, .client_key_id = "team-a", .pack_name = "p", .pack_version = "1",
        .endpoint = "/v1/messages", .client_format = "anthropic", .target = "t1",
        .model = "claude-sonnet-4-20250514", .status = 200, .decisions = d, .n_decisions = 2,
        .usage = { 12, 34, 0, 0 }, .has_cost = 1, .cost_usd = 0.000123, .latency_ms = 42,
        .prompt = "hello there, this pads the record a little bit",
    };
    int rc;
    while ((rc = kt_audit_writer_log(&r->w[slot], &rec)) == KT_EAGAIN) {
        pump(r);
        usleep(200);
    }
    ck_assert_int_eq(rc, 0);
}

struct lines {
    char **v;
    size_t n;
};

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* read_log: every line of every file (rotated first). */
static void read_log(const char *path, struct lines *l)
{
    char **files;
    size_t nf;
    memset(l, 0, sizeof *l);
    ck_assert_int_eq(kt_audit_files(path, &files, &nf), 0);
    size_t cap = 0;
    for (size_t i = 0; i < nf; i++) {
        FILE *f = fopen(files[i], "r");
        if (f == NULL)
            continue;
        char *line = NULL;
        size_t lc = 0;
        ssize_t len;
        while ((len = getline(&line, &lc, f)) > 0) {
            if (l->n == cap) {
                cap = cap ? cap * 2 : 256;
                l->v = realloc(l->v, cap * sizeof *l->v);
            }
            if (line[len - 1] == '\n')
                line[len - 1] = '\0';
            l->v[l->n++] = strdup(line);
        }
        free(line);
        fclose(f);
    }
    kt_audit_files_free(files, nf);
}

static size_t count_records(const char *path)
{
    struct lines l;
    read_log(path, &l);
    size_t n = l.n;
    lines_free(&l);
    return n;
}

static void wait_count(struct rig *r, size_t want)
{
    for (int i = 0; i < 2000 && count_records(r->path) < want; i++) {
        pump(r);
        usleep(5000);
    }
    ck_assert_uint_eq(count_records(r->path), want);
}

/* check_exactly_once: every (slot, n < per_slot) appears exactly once. */
static void check_exactly_once(const char *path, size_t nslots, int per_slot)
{
    struct lines l;
    read_log(path, &l);
    int *seen = calloc(nslots * (size_t)per_slot, sizeof *seen);
    size_t records = 0;
    for (size_t i = 0; i < l.n; i++) {
        const char *p = strstr(l.v[i], "\"request_id\":\"s");
        if (p == NULL)
            continue;   /* a fragment, counted by the caller */
        unsigned slot;
        int n;
        ck_assert_int_eq(sscanf(p, "\"request_id\":\"s%u-%d", &slot, &n), 2);
        ck_assert_uint_lt(slot, nslots);
        ck_assert_int_lt(n, per_slot);
        seen[slot * (size_t)per_slot + (size_t)n]++;
        records++;
    }
    for (size_t i = 0; i < nslots * (size_t)per_slot; i++)
        ck_assert_msg(seen[i] == 1, "record s%zu-%zu appears %d times", i / (size_t)per_slot,
                      i % (size_t)per_slot, seen[i]);
    ck_assert_uint_eq(records, nslots * (size_t)per_slot);
    free(seen);
    lines_free(&l);
}

/* verify_all: kt_audit_verify over path's files; output into msg. */
static int verify_all(const char *path, char *msg, size_t msglen)
{
    char **files;
    size_t nf;
    ck_assert_int_eq(kt_audit_files(path, &files, &nf), 0);
    char *buf = NULL;
    size_t blen = 0;
    FILE *out = open_memstream(&buf, &blen);
    int rc = kt_audit_verify((const char *const *)files, nf, out);
    fclose(out);
    snprintf(msg, msglen, "%s", buf ? buf : "");
    free(buf);
    kt_audit_files_free(files, nf);
    return rc;
}

static int verify_lines(const char *dir, const char *const *v, size_t n, char *msg, size_t msglen)
{
    char p[160];
    snprintf(p, sizeof p, "%s/tampered.log", dir);
    FILE *f = fopen(p, "w");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", v[i]);
    fclose(f);
    const char *paths[] = { p };
    char *buf = NULL;
    size_t blen = 0;
    FILE *out = open_memstream(&buf, &blen);
    int rc = kt_audit_verify(paths, 1, out);
    fclose(out);
    snprintf(msg, msglen, "%s", buf ? buf : "");
    free(buf);
    return rc;
}

/* ---- records --------------------------------------------------------- */

START_TEST(test_record_encode)
{
    struct kt_audit_decision d[] = { { "pii-detector", "redact", "EMAIL x1", 0.9 } };
    struct kt_audit_attempt at[] = { { "a", 503, 10, "upstream 503" }, { "b", 200, 30, NULL } };
    struct kt_audit_record rec = {
        .ts_ms = 1764088667123ull, .rid = "abc-1", .request_id = "req_1", .endpoint = "/v1/chat/completions",
        .client_format = "openai", .stream = 1, .target = "b", .model = "gpt-4o", .status = 200,
        .decisions = d, .n_decisions = 1, .usage = { 1000, 2000, 5, 6 }, .has_cost = 1,
        .cost_usd = kt_audit_cost_usd(3.0, 15.0, 1000, 2000), .latency_ms = 40,
        .attempts = at, .n_attempts = 2, .completion = "quote\" and \n newline",
    };
    struct kt_buf b = {0};
    char ctl[20001];
    memset(ctl, 1, 20000);   /* control bytes escape to 6 bytes each */
    ctl[20000] = '\0';
    ck_assert_int_eq(kt_audit_record_encode(&rec, &b), 0);
    ck_assert_int_eq(strncmp(b.data, "{\"rid\":\"abc-1\",", 15), 0);
    ck_assert_int_eq(b.data[b.len - 1], '\n');
    ck_assert_ptr_null(memchr(b.data, '\n', b.len - 1));
    json_object *o = json_tokener_parse(b.data);
    ck_assert_ptr_nonnull(o);
    json_object *v, *u;
    ck_assert(json_object_object_get_ex(o, "ts", &v));
    ck_assert_str_eq(json_object_get_string(v), "2025-11-25T16:37:47.123Z");
    ck_assert(json_object_object_get_ex(o, "cost_usd", &v));
    ck_assert_double_eq_tol(json_object_get_double(v), 0.033, 1e-9);
    ck_assert(json_object_object_get_ex(o, "usage", &u));
    ck_assert(json_object_object_get_ex(u, "cache_creation", &v));
    ck_assert_int_eq(json_object_get_int(v), 6);
    ck_assert(json_object_object_get_ex(o, "attempts", &v));
    ck_assert_int_eq((int)json_object_array_length(v), 2);
    ck_assert(json_object_object_get_ex(o, "completion", &v));
    ck_assert_str_eq(json_object_get_string(v), "quote\" and \n newline");
    ck_assert(!json_object_object_get_ex(o, "prompt", &v));         /* NULL: omitted */
    ck_assert(!json_object_object_get_ex(o, "client_key_id", &v));
    ck_assert(!json_object_object_get_ex(o, "pack", &v));
    ck_assert(json_object_object_get_ex(o, "stream", &v) && json_object_get_boolean(v));
    json_object_put(o);

    /* long text is cut at a UTF-8 boundary and marked: "a" then é (2 bytes)
     * puts byte KT_AUDIT_TEXT_MAX in the middle of a sequence */
    size_t big = KT_AUDIT_TEXT_MAX + 101;
    char *text = malloc(big + 1);
    text[0] = 'a';
    for (size_t i = 1; i < big; i += 2) {
        text[i] = (char)0xc3;
        text[i + 1] = (char)0xa9;
    }
    text[big] = '\0';
    memset(&rec, 0, sizeof rec);
    rec.rid = "r";
    rec.prompt = text;
    rec.completion = ctl;
    kt_buf_reset(&b);
    ck_assert_int_eq(kt_audit_record_encode(&rec, &b), 0);
    ck_assert_uint_lt(b.len, 2 * KT_AUDIT_TEXT_MAX + 400);
    o = json_tokener_parse(b.data);
    ck_assert_ptr_nonnull(o);
    ck_assert(json_object_object_get_ex(o, "prompt", &v));
    ck_assert_uint_eq(strlen(json_object_get_string(v)), KT_AUDIT_TEXT_MAX - 1);
    ck_assert_int_eq((unsigned char)json_object_get_string(v)[KT_AUDIT_TEXT_MAX - 2], 0xa9);
    ck_assert(json_object_object_get_ex(o, "completion_truncated", &v) && json_object_get_boolean(v));
    ck_assert(json_object_object_get_ex(o, "completion_bytes", &v));
    ck_assert_int_eq(json_object_get_int(v), 20000);
    ck_assert(json_object_object_get_ex(o, "prompt_truncated", &v) && json_object_get_boolean(v));
    ck_assert(json_object_object_get_ex(o, "prompt", &v));
    ck_assert_uint_le(strlen(json_object_get_string(v)), KT_AUDIT_TEXT_MAX);
    ck_assert(!json_object_object_get_ex(o, "cost_usd", &v));   /* has_cost = 0 */
    json_object_put(o);
    free(text);
    kt_buf_free(&b);
    ck_assert_double_eq_tol(kt_audit_cost_usd(3, 15, 1000000, 0), 3.0, 1e-12);
}
END_TEST

/* ref_encode: the printf-based encoder this module had before it appended
 * fields directly. The log format must not change by a byte, so every
 * record is compared with it. */
static void ref_put_str(struct kt_buf *b, const char *key, const char *v)
{
    if (v == NULL)
        return;
    kt_buf_printf(b, ",\"%s\":", key);
    kt_buf_json_str(b, v, strlen(v));
}

static void ref_put_num(struct kt_buf *b, const char *key, double v, int prec, int fixed)
{
    if (!isfinite(v))
        return;
    if (fixed)
        kt_buf_printf(b, ",\"%s\":%.*f", key, prec, v);
    else
        kt_buf_printf(b, ",\"%s\":%.*g", key, prec, v);
}

static size_t ref_text_cut(const char *s, size_t len, size_t max)
{
    size_t n = 0, cost = 0;
    for (; n < len; n++) {
        unsigned char c = (unsigned char)s[n];
        size_t w = (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' ||
                    c == '\b' || c == '\f') ? 2 : c < 0x20 ? 6 : 1;
        if (cost + w > max)
            break;
        cost += w;
    }
    if (n == len)
        return len;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static void ref_put_text(struct kt_buf *b, const char *key, const char *v)
{
    if (v == NULL)
        return;
    size_t len = strlen(v), cut = ref_text_cut(v, len, KT_AUDIT_TEXT_MAX);
    kt_buf_printf(b, ",\"%s\":", key);
    kt_buf_json_str(b, v, cut);
    if (cut < len)
        kt_buf_printf(b, ",\"%s_truncated\":true,\"%s_bytes\":%zu", key, key, len);
}

static void ref_encode(const struct kt_audit_record *r, struct kt_buf *b)
{
    char ts[40];
    kt_rfc3339(r->ts_ms, ts, sizeof ts);
    kt_buf_puts(b, "{\"rid\":");
    kt_buf_json_str(b, r->rid ? r->rid : "", r->rid ? strlen(r->rid) : 0);
    ref_put_str(b, "ts", ts);
    ref_put_str(b, "request_id", r->request_id);
    ref_put_str(b, "client_key_id", r->client_key_id);
    if (r->pack_name || r->pack_version) {
        kt_buf_puts(b, ",\"pack\":{\"name\":");
        kt_buf_json_str(b, r->pack_name ? r->pack_name : "", r->pack_name ? strlen(r->pack_name) : 0);
        ref_put_str(b, "version", r->pack_version);
        kt_buf_putc(b, '}');
    }
    ref_put_str(b, "endpoint", r->endpoint);
    ref_put_str(b, "client_format", r->client_format);
    kt_buf_printf(b, ",\"stream\":%s", r->stream ? "true" : "false");
    ref_put_str(b, "target", r->target);
    ref_put_str(b, "model", r->model);
    kt_buf_printf(b, ",\"status\":%d", r->status);
    ref_put_str(b, "error", r->error);
    kt_buf_puts(b, ",\"decisions\":[");
    for (size_t i = 0; i < r->n_decisions; i++) {
        const struct kt_audit_decision *d = &r->decisions[i];
        kt_buf_puts(b, i ? ",{\"policy\":" : "{\"policy\":");
        kt_buf_json_str(b, d->policy ? d->policy : "", d->policy ? strlen(d->policy) : 0);
        ref_put_str(b, "action", d->action);
        ref_put_str(b, "detail", d->detail);
        if (d->score >= 0)
            ref_put_num(b, "score", d->score, 4, 0);
        kt_buf_putc(b, '}');
    }
    kt_buf_printf(b, "],\"usage\":{\"input\":%lld,\"output\":%lld,\"cache_read\":%lld,"
                  "\"cache_creation\":%lld}",
                  (long long)r->usage.input, (long long)r->usage.output,
                  (long long)r->usage.cache_read, (long long)r->usage.cache_creation);
    if (r->has_cost)
        ref_put_num(b, "cost_usd", r->cost_usd, 8, 1);
    kt_buf_printf(b, ",\"latency_ms\":%llu", (unsigned long long)r->latency_ms);
    if (r->n_attempts) {
        kt_buf_puts(b, ",\"attempts\":[");
        for (size_t i = 0; i < r->n_attempts; i++) {
            const struct kt_audit_attempt *a = &r->attempts[i];
            kt_buf_puts(b, i ? ",{\"target\":" : "{\"target\":");
            kt_buf_json_str(b, a->target ? a->target : "", a->target ? strlen(a->target) : 0);
            kt_buf_printf(b, ",\"status\":%d,\"latency_ms\":%llu", a->status,
                          (unsigned long long)a->latency_ms);
            ref_put_str(b, "error", a->error);
            kt_buf_putc(b, '}');
        }
        kt_buf_putc(b, ']');
    }
    ref_put_text(b, "prompt", r->prompt);
    ref_put_text(b, "completion", r->completion);
    kt_buf_puts(b, "}\n");
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* rnd_str: NULL now and then, else bytes that need every kind of escape. */
static const char *rnd_str(char *buf, size_t cap)
{
    static const char pool[] = "abcXYZ019 -_./\"\\\n\r\t\b\f\x01\x1f\x7f\xc3\xa9\xe2\x82\xac";
    if (rnd() % 5 == 0)
        return NULL;
    size_t n = (size_t)(rnd() % cap);
    for (size_t i = 0; i < n; i++)
        buf[i] = pool[rnd() % (sizeof pool - 1)];
    buf[n] = '\0';
    return buf;
}

START_TEST(test_record_encode_same_bytes)
{
    static const uint64_t ts[] = {
        1, 999, 1000, 86399999, 86400000, 951782400000ull /* 2000-02-29 */,
        951868799999ull, 4107542400000ull /* 2100-03-01 */, 4107455999999ull,
        1764088667123ull, 253402300799999ull /* 9999-12-31T23:59:59.999 */,
        253402300800000ull, 32503680000000ull,
    };
    char s[12][64];
    char *big = malloc(3 * KT_AUDIT_TEXT_MAX);
    struct kt_buf a = {0}, b = {0};
    for (int iter = 0; iter < 20000; iter++) {
        struct kt_audit_decision d[3];
        struct kt_audit_attempt at[3];
        for (int i = 0; i < 3; i++) {
            d[i] = (struct kt_audit_decision){ rnd_str(s[0], 20), rnd_str(s[1], 10), rnd_str(s[2], 20),
                                               rnd() % 3 ? (double)(rnd() % 100000) / 997.0 - 10 : -1 };
            at[i] = (struct kt_audit_attempt){ rnd_str(s[3], 12), (int)(rnd() % 1200) - 100,
                                               rnd() % 4 ? rnd() % 100000 : rnd(), rnd_str(s[4], 12) };
        }
        int64_t u[4];
        for (int i = 0; i < 4; i++)
            u[i] = rnd() % 4 ? (int64_t)(rnd() % 100000) : (int64_t)rnd();
        struct kt_audit_record rec = {
            .ts_ms = iter < (int)(sizeof ts / sizeof ts[0]) ? ts[iter] : rnd() % 253402300800000ull + 1,
            .rid = rnd_str(s[5], 40), .request_id = rnd_str(s[6], 30), .client_key_id = rnd_str(s[7], 10),
            .pack_name = rnd_str(s[8], 10), .pack_version = rnd_str(s[9], 6),
            .endpoint = rnd() % 2 ? "/v1/messages" : NULL, .client_format = rnd_str(s[10], 10),
            .stream = (int)(rnd() % 2), .target = rnd_str(s[11], 16), .model = "m",
            .status = rnd() % 8 ? (int)(rnd() % 600) : (int)rnd(), .error = rnd() % 4 ? NULL : "timeout",
            .decisions = d, .n_decisions = (size_t)(rnd() % 4),
            .usage = { u[0], u[1], u[2], u[3] }, .has_cost = (int)(rnd() % 2),
            .cost_usd = rnd() % 10 ? (double)(rnd() % 1000000) / 1e7 : 1.0 / 0.0,
            .latency_ms = rnd() % 4 ? rnd() % 10000 : rnd(),
            .attempts = at, .n_attempts = (size_t)(rnd() % 4),
        };
        if (iter % 50 == 0) {   /* a long prompt: the cut and the _truncated fields */
            size_t n = KT_AUDIT_TEXT_MAX / 8 + rnd() % (2 * KT_AUDIT_TEXT_MAX);
            for (size_t i = 0; i < n; i++)
                big[i] = "ab\"\x01\xc3\xa9"[rnd() % 6];
            big[n] = '\0';
            rec.prompt = big;
            rec.completion = iter % 100 ? "short" : NULL;
        }
        kt_buf_reset(&a);
        kt_buf_reset(&b);
        ck_assert_int_eq(kt_audit_record_encode(&rec, &a), 0);
        ref_encode(&rec, &b);
        size_t at_ = 0;
        while (at_ < a.len && at_ < b.len && a.data[at_] == b.data[at_])
            at_++;
        ck_assert_msg(a.len == b.len && at_ == a.len, "record %d differs at byte %zu:\nnew %.120s\nold %.120s",
                      iter, at_, a.data + (at_ > 40 ? at_ - 40 : 0), b.data + (at_ > 40 ? at_ - 40 : 0));
    }
    kt_buf_free(&a);
    kt_buf_free(&b);
    free(big);

    char d[24];
    ck_assert_uint_eq(kt_audit_u64_str(0, d), 1);
    ck_assert_int_eq(d[0], '0');
    ck_assert_uint_eq(kt_audit_u64_str(UINT64_MAX, d), 20);
    ck_assert_int_eq(memcmp(d, "18446744073709551615", 20), 0);
}
END_TEST

START_TEST(test_writer_rid)
{
    struct kt_audit_writer w;
    memset(&w, 0, sizeof w);
    memcpy(w.rid_prefix, "0123456789abcdef", 17);
    char got[48], want[48];
    w.rid_next = 41;
    ck_assert_str_eq(kt_audit_writer_rid(&w, got, sizeof got), "0123456789abcdef-42");
    w.rid_next = UINT64_MAX - 1;
    ck_assert_str_eq(kt_audit_writer_rid(&w, got, sizeof got), "0123456789abcdef-18446744073709551615");
    w.rid_next = 6;
    snprintf(want, 12, "%s-%d", w.rid_prefix, 7);   /* a short buffer: snprintf's truncation */
    ck_assert_str_eq(kt_audit_writer_rid(&w, got, 12), want);
}
END_TEST

/* ---- the process ------------------------------------------------------ */

/* kill-test variants: file size bound (rotation inside batches when tiny),
 * chained or not */
static const struct { size_t max_file_bytes; int immutable; } kill_cfg[] = {
    { 512 * 1024, 1 },
    { 16 * 1024, 1 },
    { 0, 0 },
};

START_TEST(test_sigkill_under_load_exactly_once)
{
    struct rig r;
    rig_init(&r, 4, kill_cfg[_i].immutable);
    r.o.max_file_bytes = kill_cfg[_i].max_file_bytes;
    rig_writers(&r);
    rig_spawn(&r);
    const int per_slot = 2500;
    int kills = 0;
    for (int n = 0; n < per_slot; n++) {
        for (size_t s = 0; s < r.nslots; s++)
            submit(&r, s, n);
        pump(&r);
        if (n % 100 == 99) {
            usleep((useconds_t)(kt_random_u64() % 3000));
            rig_kill(&r);
            kills++;
            rig_spawn(&r);
        }
    }
    for (size_t s = 0; s < r.nslots; s++)
        ck_assert_int_eq(kt_audit_writer_flush_blocking(&r.w[s], 10000), 0);
    wait_count(&r, r.nslots * per_slot);
    rig_term(&r);
    ck_assert_int_ge(kills, 20);
    check_exactly_once(r.path, r.nslots, per_slot);
    if (r.o.immutable) {
        char msg[2048];
        ck_assert_msg(verify_all(r.path, msg, sizeof msg) == 0, "verify: %s", msg);
        ck_assert_ptr_nonnull(strstr(msg, "ok: 10000 records"));
    }
    char **files;
    size_t nf;
    kt_audit_files(r.path, &files, &nf);
    ck_assert_uint_ge(nf, r.o.max_file_bytes ? 3 : 1);
    for (size_t i = 0; r.o.max_file_bytes && i + 1 < nf; i++) {
        struct stat st;
        ck_assert_int_eq(stat(files[i], &st), 0);
        ck_assert_uint_le((size_t)st.st_size, r.o.max_file_bytes);
    }
    kt_audit_files_free(files, nf);
    rig_free(&r);
}
END_TEST

/* Measures the pipeline: 4 workers' writers → audit process → chained,
 * fsynced (every 100 records) log. Prints records/s; the bound is loose so
 * sanitizer builds pass too. */
START_TEST(test_throughput)
{
    struct rig r;
    rig_init(&r, 4, 1);
    r.o.fsync_every_records = 100;
    r.o.fsync_every_ms = 1000;
    rig_writers(&r);
    rig_spawn(&r);
    const int per_slot = 25000;
    uint64_t t0 = kt_now_us();
    for (int n = 0; n < per_slot; n++)
        for (size_t s = 0; s < r.nslots; s++)
            submit(&r, s, n);
    for (size_t s = 0; s < r.nslots; s++)
        ck_assert_int_eq(kt_audit_writer_flush_blocking(&r.w[s], 30000), 0);
    rig_term(&r);   /* drains the sockets and fsyncs before exiting */
    double secs = (double)(kt_now_us() - t0) / 1e6;
    struct stat st;
    ck_assert_int_eq(stat(r.path, &st), 0);
    fprintf(stderr, "audit throughput: %d records in %.3f s = %.0f records/s, %.1f MB/s\n",
            per_slot * 4, secs, per_slot * 4 / secs, (double)st.st_size / secs / 1e6);
    check_exactly_once(r.path, r.nslots, per_slot);
    ck_assert_double_gt(per_slot * 4 / secs, 2000);
    char msg[512];
    t0 = kt_now_us();
    ck_assert_int_eq(verify_all(r.path, msg, sizeof msg), 0);
    secs = (double)(kt_now_us() - t0) / 1e6;
    fprintf(stderr, "audit verify: %d records in %.3f s = %.0f records/s\n", per_slot * 4, secs,
            per_slot * 4 / secs);
    rig_free(&r);
}
END_TEST

/* The crash hook kills the process right after an append, before the bytes
 * are consumed: the restarted process must not write them twice. */
START_TEST(test_crash_between_append_and_consume)
{
    struct rig r;
    rig_init(&r, 2, 1);
    rig_writers(&r);
    for (int n = 0; n < 300; n++)
        for (size_t s = 0; s < r.nslots; s++)
            submit(&r, s, n);
    for (int round = 0; round < 3; round++) {
        r.crash_after = 1;
        rig_spawn(&r);
        int st = rig_wait(&r);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %d", st);
    }
    r.crash_after = 0;
    rig_spawn(&r);
    wait_count(&r, 600);
    rig_term(&r);
    check_exactly_once(r.path, r.nslots, 300);
    char msg[2048];
    ck_assert_msg(verify_all(r.path, msg, sizeof msg) == 0, "verify: %s", msg);
    rig_free(&r);
}
END_TEST

START_TEST(test_torn_last_line_is_cut)
{
    struct rig r;
    rig_init(&r, 1, 1);
    rig_writers(&r);
    rig_spawn(&r);
    for (int n = 0; n < 10; n++)
        submit(&r, 0, n);
    wait_count(&r, 10);
    rig_term(&r);
    int fd = open(r.path, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    const char torn[] = "{\"seq\":11,\"prev\":\"0123";   /* killed inside write(2) */
    ck_assert_int_eq(write(fd, torn, sizeof torn - 1), (ssize_t)(sizeof torn - 1));
    close(fd);
    rig_spawn(&r);
    for (int n = 10; n < 20; n++)
        submit(&r, 0, n);
    wait_count(&r, 20);
    rig_term(&r);
    check_exactly_once(r.path, 1, 20);
    char msg[2048];
    ck_assert_msg(verify_all(r.path, msg, sizeof msg) == 0, "verify: %s", msg);
    rig_free(&r);
}
END_TEST

/* A full disk: writes fail (EFBIG past RLIMIT_FSIZE), nothing half-written
 * stays, nothing is consumed; once there is room again, every record lands
 * exactly once. */
START_TEST(test_full_disk_loses_nothing)
{
    struct rig r;
    rig_init(&r, 2, 1);
    r.fsize_limit = 20000;
    rig_writers(&r);
    rig_spawn(&r);
    for (int n = 0; n < 100; n++) {
        submit(&r, 0, n);
        submit(&r, 1, n);
    }
    for (int i = 0; i < 60; i++) {
        pump(&r);
        usleep(5000);
    }
    struct stat st;
    ck_assert_int_eq(stat(r.path, &st), 0);
    ck_assert_int_le(st.st_size, 20000);
    ck_assert_uint_lt(count_records(r.path), 200);
    char msg[2048];
    ck_assert_msg(verify_all(r.path, msg, sizeof msg) == 0, "verify: %s", msg);   /* no torn line */
    rig_term(&r);               /* stopping with the disk still full: still exit 0 */
    r.fsize_limit = 0;          /* space freed */
    rig_spawn(&r);
    wait_count(&r, 200);
    rig_term(&r);
    check_exactly_once(r.path, 2, 100);
    ck_assert_msg(verify_all(r.path, msg, sizeof msg) == 0, "verify: %s", msg);
    rig_free(&r);
}
END_TEST

START_TEST(test_sigterm_flushes_everything)
{
    struct rig r;
    rig_init(&r, 3, 1);
    r.o.fsync_every_ms = 60000;          /* only the stop path may fsync the tail */
    r.o.fsync_every_records = 100000;
    rig_writers(&r);
    rig_spawn(&r);
    submit(&r, 0, 0);
    wait_count(&r, 1);                   /* the loop is running, handlers installed */
    for (int n = 1; n < 1000; n++)
        submit(&r, 0, n);
    for (int n = 0; n < 1000; n++) {
        submit(&r, 1, n);
        submit(&r, 2, n);
    }
    for (size_t s = 0; s < r.nslots; s++)
        ck_assert_int_eq(kt_audit_writer_flush_blocking(&r.w[s], 5000), 0);
    rig_term(&r);                        /* at once: most records are still in the sockets */
    ck_assert_uint_eq(count_records(r.path), 3000);
    check_exactly_once(r.path, 3, 1000);
    rig_free(&r);
}
END_TEST

START_TEST(test_full_socket_never_blocks_writer)
{
    struct rig r;
    rig_init(&r, 1, 1);
    r.o.worker_queue_max_bytes = 256 * 1024;
    rig_writers(&r);
    /* no audit process: nothing drains the socket */
    uint64_t t0 = kt_now_ms();
    int accepted = 0, rc = 0;
    char reqid[32];
    while (accepted < 100000) {
        snprintf(reqid, sizeof reqid, "s0-%d", accepted);
        struct kt_audit_record rec = { .request_id = reqid, .status = 200,
                                       .prompt = "0123456789012345678901234567890123456789"
                                                 "0123456789012345678901234567890123456789" };
        if ((rc = kt_audit_writer_log(&r.w[0], &rec)) != 0)
            break;
        accepted++;
    }
    uint64_t took = kt_now_ms() - t0;
    ck_assert_int_eq(rc, KT_EAGAIN);
    ck_assert_uint_lt(took, 2000);
    ck_assert_uint_gt(kt_audit_writer_queued(&r.w[0]), 0);
    ck_assert_uint_le(kt_audit_writer_queued(&r.w[0]), r.o.worker_queue_max_bytes);
    ck_assert(!kt_audit_writer_has_room(&r.w[0], 1024));
    ck_assert(kt_audit_writer_has_room(&r.w[0], 0));
    ck_assert_uint_ge(r.w[0].refused, 1);
    /* the audit process comes (back): the queue drains through EV_WRITE */
    rig_spawn(&r);
    for (int i = 0; i < 2000 && kt_audit_writer_queued(&r.w[0]) > 0; i++) {
        event_base_loop(r.base, EVLOOP_ONCE);
    }
    ck_assert_uint_eq(kt_audit_writer_queued(&r.w[0]), 0);
    ck_assert(kt_audit_writer_has_room(&r.w[0], 1024));
    wait_count(&r, (size_t)accepted);
    rig_term(&r);
    check_exactly_once(r.path, 1, accepted);
    rig_free(&r);
}
END_TEST

START_TEST(test_dead_worker_partial_line_becomes_fragment)
{
    struct rig r;
    rig_init(&r, 1, 1);
    rig_spawn(&r);
    /* a worker died mid-line: half a record sits in the slot's socket */
    const char half[] = "{\"rid\":\"dead-1\",\"request_id\":\"x\",\"sta";
    ck_assert_int_eq(write(r.sv[0][0], half, sizeof half - 1), (ssize_t)(sizeof half - 1));
    usleep(20000);
    rig_writers(&r);                     /* its successor in the same slot */
    submit(&r, 0, 0);
    wait_count(&r, 2);
    rig_term(&r);
    struct lines l;
    read_log(r.path, &l);
    ck_assert_ptr_nonnull(strstr(l.v[0], "\"fragment\":\"{\\\"rid\\\":\\\"dead-1\\\""));
    ck_assert_ptr_nonnull(strstr(l.v[1], "\"request_id\":\"s0-0\""));
    lines_free(&l);
    char msg[2048];
    ck_assert_msg(verify_all(r.path, msg, sizeof msg) == 0, "verify: %s", msg);
    rig_free(&r);
}
END_TEST

/* A fragment and a record appended, then killed before consuming: the
 * successor recognises the fragment (by its hash) and the record (by rid). */
START_TEST(test_fragment_not_duplicated_after_crash)
{
    struct rig r;
    rig_init(&r, 1, 1);
    const char half[] = "{\"rid\":\"dead-2\",\"request_id\":\"x\",\"sta";
    ck_assert_int_eq(write(r.sv[0][0], half, sizeof half - 1), (ssize_t)(sizeof half - 1));
    rig_writers(&r);
    submit(&r, 0, 0);
    r.crash_after = 1;
    rig_spawn(&r);
    int st = rig_wait(&r);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %d", st);
    ck_assert_uint_eq(count_records(r.path), 2);
    r.crash_after = 0;
    rig_spawn(&r);
    submit(&r, 0, 1);
    wait_count(&r, 3);
    rig_term(&r);
    ck_assert_uint_eq(count_records(r.path), 3);
    check_exactly_once(r.path, 1, 2);
    char msg[2048];
    ck_assert_msg(verify_all(r.path, msg, sizeof msg) == 0, "verify: %s", msg);
    rig_free(&r);
}
END_TEST

START_TEST(test_oversized_line_goes_through)
{
    struct rig r;
    rig_init(&r, 1, 1);
    rig_writers(&r);
    rig_spawn(&r);
    size_t big = 600 * 1024;
    char *line = malloc(big + 64);
    int n = snprintf(line, 64, "{\"rid\":\"big-1\",\"request_id\":\"s0-0\",\"pad\":\"");
    memset(line + n, 'a', big);
    memcpy(line + n + big, "\"}\n", 3);
    ck_assert_int_eq(kt_audit_writer_submit(&r.w[0], line, (size_t)n + big + 3), 0);
    for (int i = 0; i < 2000 && kt_audit_writer_queued(&r.w[0]) > 0; i++)
        event_base_loop(r.base, EVLOOP_ONCE);
    submit(&r, 0, 1);
    wait_count(&r, 2);
    rig_term(&r);
    struct lines l;
    read_log(r.path, &l);
    /* {"seq":1,"prev":"<64 hex>", spliced before the worker's line minus its "{" */
    ck_assert_uint_eq(strlen(l.v[0]), 83 + ((size_t)n - 1) + big + 2);
    lines_free(&l);
    check_exactly_once(r.path, 1, 2);
    free(line);
    rig_free(&r);
}
END_TEST

/* A busy socket is read on the audit process's tick (group commit) rather
 * than per record: a burst, then an idle pause and a lone record (it must
 * not wait for a tick that no longer runs), then a trickle at about the
 * tick's period. Every record exactly once, the chain intact. */
START_TEST(test_busy_then_idle_exactly_once)
{
    struct rig r;
    rig_init(&r, 2, _i);
    rig_writers(&r);
    rig_spawn(&r);
    const int burst = 2000, trickle = 200;
    for (int n = 0; n < burst; n++)
        for (size_t s = 0; s < r.nslots; s++)
            submit(&r, s, n);
    wait_count(&r, r.nslots * (size_t)burst);
    usleep(20000);
    uint64_t t0 = kt_now_ms();
    for (size_t s = 0; s < r.nslots; s++)
        submit(&r, s, burst);
    wait_count(&r, r.nslots * (size_t)(burst + 1));
    uint64_t took = kt_now_ms() - t0;
    ck_assert_msg(took < 1000, "an idle socket's record took %llu ms", (unsigned long long)took);
    for (int n = burst + 1; n < burst + 1 + trickle; n++) {
        for (size_t s = 0; s < r.nslots; s++)
            submit(&r, s, n);
        pump(&r);
        usleep(n % 3 ? 1000 : 2500);
    }
    wait_count(&r, r.nslots * (size_t)(burst + 1 + trickle));
    rig_term(&r);
    check_exactly_once(r.path, r.nslots, burst + 1 + trickle);
    if (r.o.immutable) {
        char msg[2048];
        ck_assert_msg(verify_all(r.path, msg, sizeof msg) == 0, "verify: %s", msg);
    }
    rig_free(&r);
}
END_TEST

/* Without a chain, well-formed lines go to the log as they came; a batch
 * that also holds a CRLF line, an empty line and a fragment is rewritten
 * from that point on, in order. */
START_TEST(test_unchained_lines_written_as_sent)
{
    struct rig r;
    rig_init(&r, 1, 0);
    rig_spawn(&r);
    const char mixed[] = "{\"rid\":\"a\"}\n{\"rid\":\"b\"}\r\n\n{\"rid\":\"c\",\"x\":1}\nnot json\n"
                         "{\"rid\":\"d\"}\n";
    ck_assert_int_eq(write(r.sv[0][0], mixed, sizeof mixed - 1), (ssize_t)(sizeof mixed - 1));
    wait_count(&r, 5);
    const char clean[] = "{\"rid\":\"e\"}\n{\"rid\":\"f\",\"y\":\"\\n\"}\n";
    ck_assert_int_eq(write(r.sv[0][0], clean, sizeof clean - 1), (ssize_t)(sizeof clean - 1));
    wait_count(&r, 7);
    rig_term(&r);
    struct lines l;
    read_log(r.path, &l);
    ck_assert_uint_eq(l.n, 7);
    ck_assert_str_eq(l.v[0], "{\"rid\":\"a\"}");
    ck_assert_str_eq(l.v[1], "{\"rid\":\"b\"}");
    ck_assert_str_eq(l.v[2], "{\"rid\":\"c\",\"x\":1}");
    ck_assert_ptr_nonnull(strstr(l.v[3], "\"fragment\":\"not json\"}"));
    ck_assert_int_eq(strncmp(l.v[3], "{\"rid\":\"frag-", 13), 0);
    ck_assert_str_eq(l.v[4], "{\"rid\":\"d\"}");
    ck_assert_str_eq(l.v[5], "{\"rid\":\"e\"}");
    ck_assert_str_eq(l.v[6], "{\"rid\":\"f\",\"y\":\"\\n\"}");
    lines_free(&l);
    rig_free(&r);
}
END_TEST

/* The chain prefix, byte for byte: {"seq":N,"prev":"<hex>", spliced before
 * the record's first member (no comma for an empty object); prev is the
 * SHA-256 of the previous line without its newline. */
START_TEST(test_chain_prefix_format)
{
    struct rig r;
    rig_init(&r, 1, 1);
    rig_spawn(&r);
    const char in[] = "{\"rid\":\"a\",\"n\":1}\n{}\n";
    ck_assert_int_eq(write(r.sv[0][0], in, sizeof in - 1), (ssize_t)(sizeof in - 1));
    wait_count(&r, 2);
    rig_term(&r);
    struct lines l;
    read_log(r.path, &l);
    ck_assert_uint_eq(l.n, 2);
    char want[256], h[65];
    snprintf(want, sizeof want, "{\"seq\":1,\"prev\":\"%064d\",\"rid\":\"a\",\"n\":1}", 0);
    ck_assert_str_eq(l.v[0], want);
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)l.v[0], strlen(l.v[0]), md);
    kt_hex_encode(md, sizeof md, h);
    snprintf(want, sizeof want, "{\"seq\":2,\"prev\":\"%s\"}", h);
    ck_assert_str_eq(l.v[1], want);
    lines_free(&l);
    rig_free(&r);
}
END_TEST

/* Group commit: records that piled up in the sockets (the audit process
 * was down, or its fsyncs slow) go in large writes, each followed by one
 * fsync, so the backlog drains with far fewer fsyncs than one per
 * fsync_batch records; while every fsync still covers >= fsync_batch
 * records or the stop's final flush. */
START_TEST(test_pile_is_group_committed)
{
    struct rig r;
    rig_init(&r, 2, _i);
    r.o.fsync_every_records = 10;
    r.o.fsync_every_ms = 60000;
    snprintf(r.logpath, sizeof r.logpath, "%s/audit-process.log", r.dir);
    rig_writers(&r);
    const int per_slot = 500;
    for (int n = 0; n < per_slot; n++)   /* before the process starts: one pile */
        for (size_t s = 0; s < r.nslots; s++)
            submit(&r, s, n);
    rig_spawn(&r);
    for (size_t s = 0; s < r.nslots; s++)
        ck_assert_int_eq(kt_audit_writer_flush_blocking(&r.w[s], 10000), 0);
    wait_count(&r, r.nslots * (size_t)per_slot);
    rig_term(&r);
    check_exactly_once(r.path, r.nslots, per_slot);
    FILE *f = fopen(r.logpath, "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    size_t syncs = 0, synced = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "fdatasync after ");
        if (p == NULL)
            continue;
        size_t k = strtoul(p + 16, NULL, 10);
        ck_assert_uint_ge(k, 1);
        ck_assert_msg(k >= 10 || synced + k == r.nslots * (size_t)per_slot,
                      "an fsync after %zu records, not the last", k);
        syncs++;
        synced += k;
    }
    fclose(f);
    ck_assert_uint_eq(synced, r.nslots * (size_t)per_slot);
    ck_assert_msg(syncs <= r.nslots * (size_t)per_slot / 10 / 4, "%zu fsyncs", syncs);
    rig_free(&r);
}
END_TEST

/* fsync_syncs: the "fdatasync after N records" counts in the child's log. */
static size_t fsync_counts(const char *logpath, size_t *v, size_t max)
{
    FILE *f = fopen(logpath, "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "fdatasync after ");
        if (p && n < max)
            v[n++] = strtoul(p + 16, NULL, 10);
    }
    fclose(f);
    return n;
}

/* In steady traffic (no backlog) every fsync covers exactly fsync_batch
 * records: a batch is cut where the fsync is due. The audit process is
 * stopped while each burst is written so that the burst is one batch. */
START_TEST(test_steady_traffic_fsyncs_every_batch)
{
    struct rig r;
    rig_init(&r, 1, _i);
    r.o.fsync_every_records = 10;
    r.o.fsync_every_ms = 60000;
    snprintf(r.logpath, sizeof r.logpath, "%s/audit-process.log", r.dir);
    rig_writers(&r);
    rig_spawn(&r);
    const int bursts = 40, per_burst = 7;
    rig_ready(&r);
    for (int b = 0; b < bursts; b++) {
        kill(r.pid, SIGSTOP);
        for (int k = 0; k < per_burst; k++)
            submit(&r, 0, b * per_burst + k);
        pump(&r);
        kill(r.pid, SIGCONT);
        wait_count(&r, (size_t)((b + 1) * per_burst));
    }
    wait_count(&r, (size_t)(bursts * per_burst));
    rig_term(&r);
    check_exactly_once(r.path, 1, bursts * per_burst);
    size_t v[256], total = 0;
    size_t n = fsync_counts(r.logpath, v, 256);
    ck_assert_uint_ge(n, 1);
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n)
            ck_assert_msg(v[i] == 10, "fsync %zu after %zu records", i, v[i]);
        total += v[i];
    }
    ck_assert_uint_eq(total, (size_t)(bursts * per_burst));
    rig_free(&r);
}
END_TEST

/* ---- verify ------------------------------------------------------------ */

static void make_log(struct rig *r, int n)
{
    rig_writers(r);
    rig_spawn(r);
    for (int i = 0; i < n; i++)
        submit(r, 0, i);
    wait_count(r, (size_t)n);
    rig_term(r);
}

START_TEST(test_tampering_is_detected_and_named)
{
    struct rig r;
    rig_init(&r, 1, 1);
    make_log(&r, 20);
    struct lines l;
    read_log(r.path, &l);
    ck_assert_uint_eq(l.n, 20);
    const char *v[24];
    char msg[2048];
    for (size_t i = 0; i < l.n; i++)
        v[i] = l.v[i];
    ck_assert_int_eq(verify_lines(r.dir, v, 20, msg, sizeof msg), 0);
    ck_assert_ptr_nonnull(strstr(msg, "ok: 20 records"));

    /* changed: one byte of record 10 (line 10) → line 11's prev no longer matches */
    char *changed = strdup(l.v[9]);
    char *p = strstr(changed, "\"status\":200");
    p[10] = '3';
    v[9] = changed;
    ck_assert_int_eq(verify_lines(r.dir, v, 20, msg, sizeof msg), 1);
    ck_assert_msg(strstr(msg, "tampered.log:11: seq 11: changed: hash mismatch") &&
                  strstr(msg, "tampered.log:10, seq 10"), "%s", msg);
    v[9] = l.v[9];

    /* removed: line 8 */
    const char *rm[24];
    size_t k = 0;
    for (size_t i = 0; i < 20; i++)
        if (i != 7)
            rm[k++] = l.v[i];
    ck_assert_int_eq(verify_lines(r.dir, rm, k, msg, sizeof msg), 1);
    ck_assert_msg(strstr(msg, "tampered.log:8: seq 9: removed: seq gap: expected 8"), "%s", msg);

    /* inserted: a copy of line 5 after itself, and a foreign line */
    const char *ins[24];
    k = 0;
    for (size_t i = 0; i < 20; i++) {
        ins[k++] = l.v[i];
        if (i == 4)
            ins[k++] = l.v[i];
    }
    ck_assert_int_eq(verify_lines(r.dir, ins, k, msg, sizeof msg), 1);
    ck_assert_msg(strstr(msg, "tampered.log:6: seq 5: inserted or duplicate"), "%s", msg);
    k = 0;
    for (size_t i = 0; i < 20; i++) {
        ins[k++] = l.v[i];
        if (i == 12)
            ins[k++] = "{\"rid\":\"forged\",\"status\":200}";
    }
    ck_assert_int_eq(verify_lines(r.dir, ins, k, msg, sizeof msg), 1);
    ck_assert_msg(strstr(msg, "tampered.log:14: inserted"), "%s", msg);

    /* reordered: swap lines 15 and 16 */
    v[14] = l.v[15];
    v[15] = l.v[14];
    ck_assert_int_eq(verify_lines(r.dir, v, 20, msg, sizeof msg), 1);
    ck_assert_msg(strstr(msg, "tampered.log:15: seq 16: reordered"), "%s", msg);
    v[14] = l.v[14];
    v[15] = l.v[15];

    free(changed);
    lines_free(&l);
    rig_free(&r);
}
END_TEST

START_TEST(test_rotation_keeps_chain_across_files)
{
    struct rig r;
    rig_init(&r, 2, 1);
    r.o.max_file_bytes = 4096;
    rig_writers(&r);
    rig_spawn(&r);
    for (int n = 0; n < 100; n++) {
        submit(&r, 0, n);
        submit(&r, 1, n);
        if (n % 10 == 0)
            usleep(2000);   /* several batches, several files */
    }
    wait_count(&r, 200);
    rig_term(&r);
    check_exactly_once(r.path, 2, 100);
    char **files;
    size_t nf;
    ck_assert_int_eq(kt_audit_files(r.path, &files, &nf), 0);
    ck_assert_uint_ge(nf, 4);
    ck_assert_str_eq(files[nf - 1], r.path);
    for (size_t i = 0; i + 1 < nf; i++) {
        struct stat st;
        ck_assert_int_eq(stat(files[i], &st), 0);
        ck_assert_uint_le((size_t)st.st_size, 4096 + 4096);   /* one batch may overshoot */
    }
    char msg[2048];
    ck_assert_msg(verify_all(r.path, msg, sizeof msg) == 0, "verify: %s", msg);
    /* shell glob order (current file first) is accepted too */
    const char **glob = malloc(nf * sizeof *glob);
    glob[0] = files[nf - 1];
    for (size_t i = 0; i + 1 < nf; i++)
        glob[i + 1] = files[i];
    FILE *devnull = fopen("/dev/null", "w");
    ck_assert_int_eq(kt_audit_verify(glob, nf, devnull), 0);
    /* a whole rotated file gone from the middle: a gap at the next file */
    char *buf = NULL;
    size_t blen = 0;
    FILE *out = open_memstream(&buf, &blen);
    const char *skip[MAX_SLOTS * 64];
    size_t k = 0;
    for (size_t i = 0; i < nf; i++)
        if (i != 1)
            skip[k++] = files[i];
    ck_assert_int_eq(kt_audit_verify(skip, k, out), 1);
    fclose(out);
    ck_assert_msg(strstr(buf, "removed: seq gap") != NULL, "%s", buf);
    free(buf);
    fclose(devnull);
    free(glob);
    kt_audit_files_free(files, nf);
    rig_free(&r);
}
END_TEST

START_TEST(test_reopen_on_sigusr1)
{
    struct rig r;
    rig_init(&r, 1, 1);
    rig_writers(&r);
    rig_spawn(&r);
    for (int n = 0; n < 5; n++)
        submit(&r, 0, n);
    wait_count(&r, 5);
    char moved[160];
    snprintf(moved, sizeof moved, "%s/moved.log", r.dir);
    ck_assert_int_eq(rename(r.path, moved), 0);   /* an external logrotate */
    kill(r.pid, SIGUSR1);
    usleep(50000);
    for (int n = 5; n < 10; n++)
        submit(&r, 0, n);
    for (int i = 0; i < 400 && count_records(r.path) < 5; i++)
        usleep(5000);
    rig_term(&r);
    ck_assert_uint_eq(count_records(r.path), 5);
    const char *paths[] = { moved, r.path };
    FILE *devnull = fopen("/dev/null", "w");
    ck_assert_int_eq(kt_audit_verify(paths, 2, devnull), 0);
    fclose(devnull);
    rig_free(&r);
}
END_TEST

START_TEST(test_second_writer_refused)
{
    struct rig r, r2;
    rig_init(&r, 1, 1);
    rig_init(&r2, 1, 1);
    snprintf(r2.path, sizeof r2.path, "%s", r.path);   /* two daemons, one log */
    rig_writers(&r);
    rig_spawn(&r);
    submit(&r, 0, 0);
    wait_count(&r, 1);
    rig_spawn(&r2);
    int st = rig_wait(&r2);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 3, "second writer status %d", st);
    submit(&r, 0, 1);
    wait_count(&r, 2);
    rig_term(&r);
    rig_free(&r2);
    check_exactly_once(r.path, 1, 2);
    rig_free(&r);
}
END_TEST

/* ---- retention and day rotation --------------------------------------- */

static void make_file(const char *path, const char *content, time_t mtime)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
    struct timeval tv[2] = { { mtime, 0 }, { mtime, 0 } };
    ck_assert_int_eq(utimes(path, tv), 0);
}

START_TEST(test_retention_removes_old_rotated_files)
{
    struct rig r;
    rig_init(&r, 1, 0);
    r.o.retention_days = 30;
    char old1[160], old2[160], recent[160], other[160];
    time_t now = time(NULL);
    snprintf(old1, sizeof old1, "%s.20200101-000000", r.path);
    snprintf(old2, sizeof old2, "%s.20200102-000000.001", r.path);
    snprintf(recent, sizeof recent, "%s.20991231-000000", r.path);
    snprintf(other, sizeof other, "%s/unrelated.log", r.dir);
    make_file(old1, "{\"rid\":\"o1\"}\n", now - 40 * 86400);
    make_file(old2, "{\"rid\":\"o2\"}\n", now - 31 * 86400);
    make_file(recent, "{\"rid\":\"r1\"}\n", now - 29 * 86400);
    make_file(other, "x\n", now - 400 * 86400);
    rig_writers(&r);
    rig_spawn(&r);
    submit(&r, 0, 0);
    for (int i = 0; i < 400 && count_records(r.path) < 2; i++)
        usleep(5000);
    rig_term(&r);
    struct stat st;
    ck_assert_int_ne(stat(old1, &st), 0);
    ck_assert_int_ne(stat(old2, &st), 0);
    ck_assert_int_eq(stat(recent, &st), 0);
    ck_assert_int_eq(stat(other, &st), 0);     /* not ours: never touched */
    ck_assert_int_eq(stat(r.path, &st), 0);
    rig_free(&r);
}
END_TEST

START_TEST(test_day_change_rotates)
{
    struct rig r;
    rig_init(&r, 1, 0);
    make_file(r.path, "{\"rid\":\"yesterday-1\",\"request_id\":\"y\"}\n", time(NULL) - 2 * 86400);
    rig_writers(&r);
    rig_spawn(&r);
    submit(&r, 0, 0);
    wait_count(&r, 2);
    rig_term(&r);
    char **files;
    size_t nf;
    ck_assert_int_eq(kt_audit_files(r.path, &files, &nf), 0);
    ck_assert_uint_eq(nf, 2);
    struct lines l;
    read_log(r.path, &l);
    ck_assert_ptr_nonnull(strstr(l.v[0], "yesterday-1"));
    ck_assert_ptr_nonnull(strstr(l.v[1], "s0-0"));
    lines_free(&l);
    kt_audit_files_free(files, nf);
    rig_free(&r);
}
END_TEST

/* ---- tail --------------------------------------------------------------- */

START_TEST(test_tail_prints_and_follows)
{
    struct rig r;
    rig_init(&r, 1, 1);
    make_log(&r, 5);
    char *buf = NULL;
    size_t blen = 0;
    FILE *out = open_memstream(&buf, &blen);
    ck_assert_int_eq(kt_audit_tail(r.path, 0, 2, out), 0);
    fclose(out);
    ck_assert_ptr_null(strstr(buf, "s0-2 "));
    ck_assert_msg(strstr(buf, "#4 s0-3 key=team-a target=t1 model=claude-sonnet-4-20250514 "
                              "status=200 tokens=12/34 cost=$0.000123 42ms "
                              "decisions=pii-detector:redact,prompt-injection:flag") != NULL, "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "#5 s0-4 "));
    free(buf);

    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        FILE *o = fdopen(pfd[1], "w");
        _exit(kt_audit_tail(r.path, 1, 1, o) == 0 ? 0 : 1);
    }
    close(pfd[1]);
    FILE *in = fdopen(pfd[0], "r");
    char line[1024];
    ck_assert_ptr_nonnull(fgets(line, sizeof line, in));
    ck_assert_ptr_nonnull(strstr(line, "s0-4"));
    FILE *f = fopen(r.path, "a");
    fputs("{\"request_id\":\"appended-1\",\"status\":201}\n", f);
    fclose(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, in));
    ck_assert_msg(strstr(line, "appended-1") && strstr(line, "status=201"), "%s", line);
    char rotated[160];
    snprintf(rotated, sizeof rotated, "%s.20260101-000000", r.path);
    ck_assert_int_eq(rename(r.path, rotated), 0);
    f = fopen(r.path, "w");
    fputs("{\"request_id\":\"after-rotation\",\"status\":200}\n", f);
    fclose(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, in));
    ck_assert_msg(strstr(line, "after-rotation") != NULL, "%s", line);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fclose(in);
    rig_free(&r);
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    kt_log_setup(KT_LOG_ERROR, 0, NULL, "test");
    Suite *s = suite_create("audit");
    TCase *tc = tcase_create("audit");
    tcase_set_timeout(tc, 120);
#define ADD(t) do { if (only == NULL || strcmp(only, #t) == 0) tcase_add_test(tc, t); } while (0)
    const char *only = getenv("KT_TEST");   /* run one test by name while debugging */
    ADD(test_record_encode);
    ADD(test_record_encode_same_bytes);
    ADD(test_writer_rid);
    if (only == NULL || strcmp(only, "test_sigkill_under_load_exactly_once") == 0)
        tcase_add_loop_test(tc, test_sigkill_under_load_exactly_once, 0,
                            (int)(sizeof kill_cfg / sizeof kill_cfg[0]));
    ADD(test_throughput);
    ADD(test_crash_between_append_and_consume);
    ADD(test_torn_last_line_is_cut);
    ADD(test_full_disk_loses_nothing);
    ADD(test_sigterm_flushes_everything);
    ADD(test_full_socket_never_blocks_writer);
    ADD(test_dead_worker_partial_line_becomes_fragment);
    ADD(test_fragment_not_duplicated_after_crash);
    ADD(test_oversized_line_goes_through);
    if (only == NULL || strcmp(only, "test_busy_then_idle_exactly_once") == 0)
        tcase_add_loop_test(tc, test_busy_then_idle_exactly_once, 0, 2);
    ADD(test_unchained_lines_written_as_sent);
    ADD(test_chain_prefix_format);
    if (only == NULL || strcmp(only, "test_pile_is_group_committed") == 0)
        tcase_add_loop_test(tc, test_pile_is_group_committed, 0, 2);
    if (only == NULL || strcmp(only, "test_steady_traffic_fsyncs_every_batch") == 0)
        tcase_add_loop_test(tc, test_steady_traffic_fsyncs_every_batch, 0, 2);
    ADD(test_tampering_is_detected_and_named);
    ADD(test_rotation_keeps_chain_across_files);
    ADD(test_reopen_on_sigusr1);
    ADD(test_second_writer_refused);
    ADD(test_retention_removes_old_rotated_files);
    ADD(test_day_change_rotates);
    ADD(test_tail_prints_and_follows);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

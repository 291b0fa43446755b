/* audit.c: the audit process. Sole writer of the audit log: drains every
 * worker slot's socketpair on its own event loop, appends complete lines
 * exactly once, chains them by SHA-256 when immutable, fsyncs in small
 * batches, rotates by size and day, expires old rotated files.
 *
 * Exactly once: a socket is read with MSG_PEEK, the complete lines seen are
 * appended with write(2), and only then are exactly those bytes consumed.
 * A crash between the two leaves them in the socket (the master holds both
 * ends), so on startup we collect the rids of the log's tail and skip a
 * socket's leading records already written. A torn last line (killed inside
 * write) is cut off: its bytes were never consumed and will come again.
 *
 * Not here: spawning/restarting (the master), encoding (audit_record.c). */
#define _GNU_SOURCE 1   /* memmem, memrchr */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/sha.h>

#include "kt/audit.h"
#include "kt/err.h"
#include "kt/log.h"
#include "kt/util.h"

enum {
    PEEK_MAX = 256 * 1024,          /* one read batch per socket */
    CARRY_AT = 64 * 1024,           /* a line longer than this may not fit the socket */
    CARRY_MAX = 16 * 1024 * 1024,   /* a runaway line is flushed as fragments */
    TAIL_SCAN = 4 * 1024 * 1024,    /* log tail scanned for rids: > one batch + prefixes */
    RETRY_MIN_MS = 2,
    RETRY_MAX_MS = 200,
    WRITE_RETRY_MS = 1000,
    RETENTION_EVERY_S = 3600,
    LOCK_WAIT_MS = 2000,            /* a predecessor may still be exiting */
    LINGER_MS = 2,                  /* a busy socket is read on a tick, not per record */
};

static const char zero_hash[65] =
    "0000000000000000000000000000000000000000000000000000000000000000";

struct audit;

struct src {
    struct audit *a;
    int fd;
    struct event *ev, *retry;
    int retry_ms;
    int carry_mode;       /* reading an oversized line into carry (consumed) */
    struct kt_buf carry;
    int eof;
    int paused;           /* retry timer pending, read event off */
    int linger;           /* busy: read event off, read on the audit's tick */
    int full;             /* the last peek filled the buffer: more is waiting */
    uint64_t last_ms;     /* when something was last consumed (monotonic) */
};

struct audit {
    const struct kt_audit_opts *o;
    struct event_base *base;
    int fd;
    int lockfd;            /* flock on PATH.lock: one writer per log, even across daemons */
    size_t size;
    long day;              /* UTC day number the current file belongs to */
    uint64_t seq;
    char prev[65];
    size_t unsynced;
    size_t fsync_records;
    char **seen;           /* sorted rids from the log tail at startup */
    size_t nseen;
    struct src *src;
    size_t nsrc;
    struct kt_buf out, frag;
    char *peek;
    size_t carry_at;
    long crash_after;      /* test hook: SIGKILL self after N appends, before consuming */
    struct event *ev_term, *ev_int, *ev_usr1, *ev_fsync, *ev_retention, *ev_tick;
    EVP_MD_CTX *md;        /* reused for the chain hash (NULL: one-shot SHA256) */
    const EVP_MD *sha256;  /* fetched once: OpenSSL 3 would fetch it per Init */
    uint64_t written, dups, fragments;
    int rc;
};

static long utc_day(time_t t)
{
    return (long)(t / 86400);
}

static void sha_hex(const char *p, size_t n, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)p, n, md);
    kt_hex_encode(md, sizeof md, out);
}

/* chain_hex: sha_hex with the process's reused digest context: a record
 * costs one Init/Update/Final, not a context and an algorithm fetch. */
static void chain_hex(struct audit *a, const char *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (a->md && EVP_DigestInit_ex(a->md, a->sha256, NULL) == 1 &&
        EVP_DigestUpdate(a->md, p, n) == 1 && EVP_DigestFinal_ex(a->md, md, &mdlen) == 1 &&
        mdlen == SHA256_DIGEST_LENGTH) {
        kt_hex_encode(md, mdlen, out);
        return;
    }
    sha_hex(p, n, out);
}

/* rid_of: the value of the first "rid":"..." in a line (NULL if none/empty). */
static const char *rid_of(const char *line, size_t len, size_t *rlen)
{
    static const char key[] = "\"rid\":\"";
    const char *p = memmem(line, len, key, sizeof key - 1);
    if (p == NULL)
        return NULL;
    p += sizeof key - 1;
    const char *e = memchr(p, '"', (size_t)(line + len - p));
    if (e == NULL || e == p)
        return NULL;
    *rlen = (size_t)(e - p);
    return p;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int seen_has(const struct audit *a, const char *rid, size_t n)
{
    char key[256];
    if (a->nseen == 0 || n >= sizeof key)
        return 0;
    memcpy(key, rid, n);
    key[n] = '\0';
    const char *k = key;
    return bsearch(&k, a->seen, a->nseen, sizeof *a->seen, cmp_str) != NULL;
}

/* ---- files ------------------------------------------------------------- */

/* is_rotated_suffix: "YYYYMMDD-HHMMSS" optionally followed by ".NNN". */
static int is_rotated_suffix(const char *s)
{
    for (int i = 0; i < 15; i++) {
        if (i == 8 ? s[i] != '-' : (s[i] < '0' || s[i] > '9'))
            return 0;
    }
    if (s[15] == '\0')
        return 1;
    if (s[15] != '.')
        return 0;
    for (int i = 16; i < 19; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return s[19] == '\0';
}

static void split_path(const char *path, char *dir, size_t dlen, const char **base)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, dlen, ".");
        *base = path;
    } else {
        snprintf(dir, dlen, "%.*s", (int)(slash == path ? 1 : slash - path), path);
        *base = slash + 1;
    }
}

void kt_audit_files_free(char **files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
}

int kt_audit_files(const char *path, char ***out, size_t *nout)
{
    char dir[PATH_MAX];
    const char *base;
    split_path(path, dir, sizeof dir, &base);
    size_t blen = strlen(base), n = 0, cap = 8;
    char **v = malloc(cap * sizeof *v);
    if (v == NULL)
        return KT_ENOMEM;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strncmp(de->d_name, base, blen) != 0 || de->d_name[blen] != '.' ||
                !is_rotated_suffix(de->d_name + blen + 1))
                continue;
            if (n + 2 > cap) {
                char **nv = realloc(v, (cap *= 2) * sizeof *v);
                if (nv == NULL)
                    goto nomem;
                v = nv;
            }
            size_t len = strlen(dir) + 1 + strlen(de->d_name) + 1;
            if ((v[n] = malloc(len)) == NULL)
                goto nomem;
            snprintf(v[n++], len, "%s/%s", dir, de->d_name);
        }
        closedir(d);
        d = NULL;
    }
    qsort(v, n, sizeof *v, cmp_str);
    struct stat st;
    if (stat(path, &st) == 0) {
        if ((v[n] = strdup(path)) == NULL)
            goto nomem;
        n++;
    }
    *out = v;
    *nout = n;
    return 0;
nomem:
    if (d)
        closedir(d);
    kt_audit_files_free(v, n);
    return KT_ENOMEM;
}

static void fsync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *base;
    split_path(path, dir, sizeof dir, &base);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static void retention(struct audit *a)
{
    if (a->o->retention_days <= 0)
        return;
    char **files;
    size_t n;
    if (kt_audit_files(a->o->path, &files, &n) < 0)
        return;
    time_t cutoff = time(NULL) - (time_t)a->o->retention_days * 86400;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (strcmp(files[i], a->o->path) == 0 || stat(files[i], &st) < 0)
            continue;
        if (st.st_mtime < cutoff) {
            if (unlink(files[i]) == 0)
                kt_info("audit: removed %s (older than %d days)", files[i], a->o->retention_days);
            else
                kt_warn("audit: cannot remove %s: %s", files[i], strerror(errno));
        }
    }
    kt_audit_files_free(files, n);
}

static int open_current(struct audit *a)
{
    a->fd = open(a->o->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (a->fd < 0) {
        kt_error("audit: cannot open %s: %s", a->o->path, strerror(errno));
        return KT_EIO;
    }
    struct stat st;
    if (fstat(a->fd, &st) < 0)
        return KT_EIO;
    a->size = (size_t)st.st_size;
    a->day = utc_day(st.st_size > 0 ? st.st_mtime : time(NULL));
    if (st.st_size == 0)
        fsync_dir(a->o->path);   /* a new file's name must survive a crash too */
    return 0;
}

static void do_sync(struct audit *a)
{
    if (a->unsynced == 0)
        return;
    kt_debug("audit: fdatasync after %zu records", a->unsynced);
    if (fdatasync(a->fd) < 0)
        kt_error("audit: fdatasync %s: %s", a->o->path, strerror(errno));
    a->unsynced = 0;
}

/* rotate: current file → path.YYYYMMDD-HHMMSS[.NNN]; the chain continues. */
static int rotate(struct audit *a)
{
    char name[PATH_MAX], stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(name, sizeof name, "%s.%s", a->o->path, stamp);
    struct stat st;
    for (int i = 1; stat(name, &st) == 0 && i < 1000; i++)
        snprintf(name, sizeof name, "%s.%s.%03d", a->o->path, stamp, i);
    if (fdatasync(a->fd) < 0)
        kt_error("audit: fdatasync %s: %s", a->o->path, strerror(errno));
    a->unsynced = 0;
    if (rename(a->o->path, name) < 0) {
        kt_error("audit: cannot rotate %s: %s", a->o->path, strerror(errno));
        return KT_EIO;
    }
    close(a->fd);
    int rc = open_current(a);
    fsync_dir(a->o->path);
    kt_info("audit: rotated to %s", name);
    retention(a);
    return rc;
}

/* ---- startup recovery ---------------------------------------------------- */

/* end_of_last_line: offset just after the file's last '\n' (0 if none). */
static off_t end_of_last_line(int fd, off_t size)
{
    char buf[65536];
    off_t end = size;
    while (end > 0) {
        off_t start = end > (off_t)sizeof buf ? end - (off_t)sizeof buf : 0;
        ssize_t n = pread(fd, buf, (size_t)(end - start), start);
        if (n <= 0)
            return size;   /* can't tell: keep the file as it is */
        for (ssize_t i = n - 1; i >= 0; i--)
            if (buf[i] == '\n')
                return start + i + 1;
        end = start;
    }
    return 0;
}

/* scan_tail: collect rids of the last `budget` bytes of fd (which ends in
 * '\n') and hand back a copy of the last line. */
static int scan_tail(struct audit *a, int fd, off_t size, off_t budget, char **last,
                     size_t *lastlen)
{
    *last = NULL;
    if (size == 0 || budget <= 0)
        return 0;
    off_t start = size > budget ? size - budget : 0;
    size_t len = (size_t)(size - start);
    char *buf = malloc(len + 1);
    if (buf == NULL)
        return KT_ENOMEM;
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, start + (off_t)got);
        if (n <= 0) {
            free(buf);
            return KT_EIO;
        }
        got += (size_t)n;
    }
    char *p = buf, *end = buf + len;
    if (start > 0) {   /* first line is partial */
        char *nl = memchr(p, '\n', len);
        p = nl ? nl + 1 : end;
    }
    size_t cap = a->nseen + 1024;
    char **seen = realloc(a->seen, cap * sizeof *seen);
    if (seen == NULL) {
        free(buf);
        return KT_ENOMEM;
    }
    a->seen = seen;
    const char *lp = NULL;
    size_t ll = 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        size_t rl;
        const char *rid = rid_of(p, (size_t)(nl - p), &rl);
        if (rid) {
            if (a->nseen == cap) {
                seen = realloc(a->seen, (cap *= 2) * sizeof *seen);
                if (seen == NULL) {
                    free(buf);
                    return KT_ENOMEM;
                }
                a->seen = seen;
            }
            if ((a->seen[a->nseen] = strndup(rid, rl)) != NULL)
                a->nseen++;
        }
        if (nl > p) {
            lp = p;
            ll = (size_t)(nl - p);
        }
        p = nl + 1;
    }
    if (lp) {
        *last = strndup(lp, ll);
        *lastlen = ll;
    }
    free(buf);
    return 0;
}

/* parse_seq: N from a line starting {"seq":N,"prev":"<64 hex>" ; 0 if not chained. */
static uint64_t parse_seq(const char *line, size_t len)
{
    if (len < 88 || strncmp(line, "{\"seq\":", 7) != 0)
        return 0;
    char *e;
    unsigned long long v = strtoull(line + 7, &e, 10);
    if (e == line + 7 || strncmp(e, ",\"prev\":\"", 9) != 0)
        return 0;
    return (uint64_t)v;
}

static int recover(struct audit *a)
{
    off_t keep = end_of_last_line(a->fd, (off_t)a->size);
    if ((size_t)keep != a->size) {
        kt_warn("audit: %s ends in a partial line (%zu bytes): cut, it will be re-read",
                a->o->path, a->size - (size_t)keep);
        if (ftruncate(a->fd, keep) < 0)
            return KT_EIO;
        a->size = (size_t)keep;
    }
    char *last = NULL;
    size_t lastlen = 0;
    int in_current = 1;
    off_t budget = TAIL_SCAN;
    int rc = scan_tail(a, a->fd, keep, budget, &last, &lastlen);
    budget -= keep;
    if (rc == 0 && budget > 0) {
        /* the last batch may span rotations (small max_file_bytes), and with
         * an empty current file the chain continues from the newest rotated
         * one: walk back through rotated files until TAIL_SCAN bytes are seen */
        char **files;
        size_t n;
        if (kt_audit_files(a->o->path, &files, &n) == 0) {
            for (size_t i = n; i-- > 0 && budget > 0 && rc == 0;) {
                if (strcmp(files[i], a->o->path) == 0)
                    continue;
                int fd = open(files[i], O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                    continue;
                struct stat st;
                char *rl = NULL;
                size_t rll = 0;
                if (fstat(fd, &st) == 0) {
                    off_t e = end_of_last_line(fd, st.st_size);
                    rc = scan_tail(a, fd, e, budget, &rl, &rll);
                    budget -= e;
                }
                close(fd);
                if (last == NULL && rl) {
                    in_current = 0;
                    last = rl;
                    lastlen = rll;
                } else {
                    free(rl);
                }
            }
            kt_audit_files_free(files, n);
        }
    }
    if (rc < 0) {
        free(last);
        return rc;
    }
    if (a->nseen)
        qsort(a->seen, a->nseen, sizeof *a->seen, cmp_str);
    memcpy(a->prev, zero_hash, sizeof a->prev);
    a->seq = 0;
    if (last && a->o->immutable) {
        uint64_t seq = parse_seq(last, lastlen);
        if (seq > 0) {
            a->seq = seq;
            sha_hex(last, lastlen, a->prev);
        } else if (in_current) {
            /* the file was written without a chain: start the chain in a new file */
            kt_warn("audit: %s is not hash-chained; rotating it to start a chain", a->o->path);
            rc = rotate(a);
        }
    }
    if (last)
        kt_info("audit: resuming %s at seq %llu, %zu recent records known",
                a->o->path, (unsigned long long)a->seq, a->nseen);
    free(last);
    return rc;
}

/* ---- writing ----------------------------------------------------------- */

static int format_line(struct audit *a, const char *line, size_t len, uint64_t *seq,
                       char prev[65]);
static int consume(struct src *s, size_t n);

/* fragment: a line that is not a whole record (a worker died mid-line, or
 * an oversized line was split) is kept, escaped, never merged or dropped.
 * Its rid is a hash of its bytes so a replay after a crash is still
 * recognised as a duplicate. */
static int format_fragment(struct audit *a, const char *line, size_t len, uint64_t *seq,
                           char prev[65])
{
    char h[65];
    sha_hex(line, len, h);
    kt_buf_reset(&a->frag);
    int rc = kt_buf_printf(&a->frag, "{\"rid\":\"frag-%.16s\",\"ts\":\"", h);
    char ts[40];
    rc |= kt_buf_puts(&a->frag, kt_rfc3339(kt_wall_ms(), ts, sizeof ts));
    rc |= kt_buf_puts(&a->frag, "\",\"error\":\"incomplete record from a worker\",\"fragment\":");
    rc |= kt_buf_json_str(&a->frag, line, len);
    rc |= kt_buf_putc(&a->frag, '}');
    if (rc)
        return KT_ENOMEM;
    a->fragments++;
    kt_warn("audit: kept a %zu-byte fragment as its own record", len);
    /* frag is not touched by format_line for a well-formed line */
    return format_line(a, a->frag.data, a->frag.len, seq, prev);
}

static int format_line(struct audit *a, const char *line, size_t len, uint64_t *seq,
                       char prev[65])
{
    if (len < 2 || line[0] != '{' || line[len - 1] != '}')
        return format_fragment(a, line, len, seq, prev);
    struct kt_buf *b = &a->out;
    if (!a->o->immutable) {
        if (kt_buf_append(b, line, len) || kt_buf_putc(b, '\n'))
            return KT_ENOMEM;
        return 0;
    }
    /* {"seq":N,"prev":"<64 hex>", then the line after its '{' */
    if (kt_buf_reserve(b, 128 + len))
        return KT_ENOMEM;
    size_t start = b->len;
    char *o = b->data + start;
    memcpy(o, "{\"seq\":", 7);
    o += 7;
    o += kt_audit_u64_str(*seq + 1, o);
    memcpy(o, ",\"prev\":\"", 9);
    o += 9;
    memcpy(o, prev, 64);
    o += 64;
    *o++ = '"';
    if (len > 2)
        *o++ = ',';
    memcpy(o, line + 1, len - 1);
    o += len - 1;
    b->len = (size_t)(o - b->data);
    chain_hex(a, b->data + start, b->len - start, prev);
    (*seq)++;
    *o++ = '\n';
    *o = '\0';
    b->len++;
    return 0;
}

static int write_all(struct audit *a, const char *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(a->fd, p + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            kt_error("audit: write %s: %s", a->o->path, w < 0 ? strerror(errno) : "short write");
            /* cut what was written so the file never holds half a batch */
            if (done && ftruncate(a->fd, (off_t)a->size) < 0)
                kt_error("audit: truncate %s: %s", a->o->path, strerror(errno));
            return KT_EIO;
        }
        done += (size_t)w;
    }
    a->size += n;
    return 0;
}

/* frag_rid: the rid a malformed line is recorded under (see format_fragment). */
static void frag_rid(const char *line, size_t len, char out[24])
{
    char h[65];
    sha_hex(line, len, h);
    snprintf(out, 24, "frag-%.16s", h);
}

static int is_record(const char *line, size_t len)
{
    return len >= 2 && line[0] == '{' && line[len - 1] == '}';
}

/* write_out: append data[0..len) (whole lines), rotating by day and size
 * between lines. 1 when part of it went to a file since rotated and then a
 * write failed: the caller must stop (the restart's dedup sorts it out). */
static int write_out(struct audit *a, const char *data, size_t len)
{
    size_t off = 0, max = a->o->max_file_bytes;
    while (off < len) {
        if (a->size > 0 && utc_day(time(NULL)) != a->day && rotate(a) < 0)
            return off ? 1 : KT_EIO;
        size_t take = 0;
        if (max == 0 || a->size + (len - off) <= max) {
            take = len - off;   /* all of it fits: no need to walk the lines */
        } else {
            while (off + take < len) {
                const char *p = data + off + take;
                const char *nl = memchr(p, '\n', len - off - take);
                size_t l = nl ? (size_t)(nl - p) + 1 : len - off - take;
                if (max && a->size + take + l > max && (take > 0 || a->size > 0))
                    break;
                take += l;
            }
        }
        if (take == 0) {
            if (rotate(a) < 0)
                return off ? 1 : KT_EIO;
            continue;
        }
        if (write_all(a, data + off, take) < 0)
            return off ? 1 : KT_EIO;
        off += take;
    }
    return 0;
}

/* append_lines: format and append the complete lines in data[0..len) (len
 * ends on '\n'). Chain state advances only after the write succeeded.
 * Without a chain, a run of well-formed records is written straight from
 * data (it is what format_line would copy); a->out is used from the first
 * line that needs rewriting. */
static int append_lines(struct audit *a, const char *data, size_t len)
{
    kt_buf_reset(&a->out);
    uint64_t seq = a->seq;
    char prev[65];
    memcpy(prev, a->prev, sizeof prev);
    size_t nrec = 0, direct = 0;
    int copying = a->o->immutable;
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = (size_t)((nl ? nl : end) - p);
        const char *line = p;
        p += ll + 1;
        if (!copying) {
            if (nl && ll >= 2 && line[0] == '{' && line[ll - 1] == '}') {
                direct += ll + 1;
                nrec++;
                continue;
            }
            copying = 1;
            if (kt_buf_append(&a->out, data, direct))
                return KT_ENOMEM;
        }
        if (ll > 0 && line[ll - 1] == '\r')
            ll--;
        if (ll == 0)
            continue;
        int rc = format_line(a, line, ll, &seq, prev);
        if (rc < 0)
            return rc;
        nrec++;
    }
    const char *out = copying ? a->out.data : data;
    size_t outlen = copying ? a->out.len : direct;
    if (outlen == 0)
        return 0;
    int rc = write_out(a, out, outlen);
    if (rc == 1) {
        kt_error("audit: write failed after a rotation; restarting to recover exactly once");
        a->rc = KT_EIO;
        event_base_loopbreak(a->base);   /* nothing consumed: the successor dedups */
    }
    if (rc != 0)
        return KT_EIO;
    a->seq = seq;
    memcpy(a->prev, prev, sizeof prev);
    a->written += nrec;
    a->unsynced += nrec;
    if (a->crash_after > 0 && --a->crash_after == 0)
        raise(SIGKILL);   /* test hook: die between append and consume */
    if (a->unsynced >= a->fsync_records)
        do_sync(a);
    return 0;
}

/* skip_written: at startup, before anything new is written, consume each
 * socket's leading records that the log already holds (appended by a
 * predecessor killed before it consumed them). Only such a prefix can be a
 * duplicate, and it is wholly in the socket: the predecessor saw it in one
 * peek. Doing this first keeps the invariant that written-but-unconsumed
 * bytes are always the log's last batch. */
static int skip_written(struct audit *a, struct src *s)
{
    ssize_t n = recv(s->fd, a->peek, PEEK_MAX, MSG_PEEK | MSG_DONTWAIT);
    if (n <= 0)
        return 0;
    size_t used = 0, dups = 0;
    const char *p = a->peek, *end = a->peek + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        size_t ll = (size_t)(nl - p);
        if (ll > 0 && p[ll - 1] == '\r')
            ll--;
        if (ll > 0) {
            char fr[24];
            size_t rl = 0;
            const char *rid;
            if (is_record(p, ll)) {
                rid = rid_of(p, ll, &rl);
            } else {
                frag_rid(p, ll, fr);
                rid = fr;
                rl = strlen(fr);
            }
            if (rid == NULL || !seen_has(a, rid, rl))
                break;
            dups++;
        }
        p = nl + 1;
        used = (size_t)(p - a->peek);
    }
    if (used == 0)
        return 0;
    a->dups += dups;
    if (dups)
        kt_info("audit: slot fd %d: %zu records already in the log, skipped", s->fd, dups);
    return consume(s, used);
}

/* ---- reading the sockets -------------------------------------------------- */

static void src_pause(struct src *s, int ms)
{
    event_del(s->ev);
    s->linger = 0;   /* the retry timer owns it now */
    s->paused = 1;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(s->retry, &tv);
}

static void src_eof(struct src *s)
{
    s->eof = 1;
    s->linger = 0;
    s->paused = 0;
    event_del(s->ev);
    evtimer_del(s->retry);
    if (s->carry.len) {
        if (append_lines(s->a, s->carry.data, s->carry.len) < 0)
            kt_error("audit: lost %zu bytes of a partial record at EOF", s->carry.len);
        kt_buf_reset(&s->carry);
    }
}

static int consume(struct src *s, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < PEEK_MAX ? n - got : PEEK_MAX;
        ssize_t r = recv(s->fd, s->a->peek, want, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            kt_error("audit: consume from slot fd %d: %s", s->fd, r < 0 ? strerror(errno) : "EOF");
            return KT_EIO;
        }
        got += (size_t)r;
    }
    return 0;
}

/* carry_read: a line too long to wait for in the socket: consume it into
 * memory until its newline. Only such oversized lines lose crash safety. */
static int carry_read(struct src *s)
{
    struct audit *a = s->a;
    int progress = 0;
    for (;;) {
        if (s->carry.len && s->carry.data[s->carry.len - 1] == '\n') {
            if (append_lines(a, s->carry.data, s->carry.len) < 0) {
                src_pause(s, WRITE_RETRY_MS);
                return progress;
            }
            kt_buf_reset(&s->carry);
            s->carry_mode = 0;
            return 1;
        }
        if (s->carry.len >= CARRY_MAX) {
            kt_buf_putc(&s->carry, '\n');   /* flush as a fragment; the rest follows */
            continue;
        }
        ssize_t n = recv(s->fd, a->peek, PEEK_MAX, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0) {
            src_eof(s);
            return 1;
        }
        if (n < 0)
            return progress;
        char *nl = memchr(a->peek, '\n', (size_t)n);
        size_t take = nl ? (size_t)(nl - a->peek) + 1 : (size_t)n;
        if (kt_buf_append(&s->carry, a->peek, take) || consume(s, take) < 0) {
            src_pause(s, WRITE_RETRY_MS);
            return progress;
        }
        progress = 1;
    }
}

/* lines_prefix: the bytes of the first `max` lines of p[0..len) (len ends
 * on '\n'). */
static size_t lines_prefix(const char *p, size_t len, size_t max)
{
    size_t off = 0;
    while (max-- > 0 && off < len) {
        const char *nl = memchr(p + off, '\n', len - off);
        off = nl ? (size_t)(nl - p) + 1 : len;
    }
    return off;
}

/* src_read: one batch from one socket. 1 when something was consumed. */
static int src_read(struct src *s)
{
    struct audit *a = s->a;
    s->full = 0;
    if (s->eof)
        return 0;
    if (s->carry_mode)
        return carry_read(s);
    ssize_t n = recv(s->fd, a->peek, PEEK_MAX, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) {
        src_eof(s);
        return 0;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            kt_error("audit: read slot fd %d: %s", s->fd, strerror(errno));
            src_eof(s);
        }
        return 0;
    }
    char *last = memrchr(a->peek, '\n', (size_t)n);
    kt_debug("audit: slot fd %d: %zd bytes readable%s", s->fd, n, last ? "" : " (no full line)");
    if (last == NULL) {
        if ((size_t)n >= a->carry_at) {
            s->carry_mode = 1;
            return carry_read(s);
        }
        /* the rest of the line is on its way: look again shortly */
        s->retry_ms = s->retry_ms ? (s->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : s->retry_ms * 2)
                                  : RETRY_MIN_MS;
        src_pause(s, s->retry_ms);
        return 0;
    }
    /* A batch is cut where the next fsync is due (the rest is read right
     * after it), so in steady traffic an fsync covers exactly fsync_batch
     * records. Unless a whole further fsync_batch waits behind that point:
     * a backlog (slow fsyncs, a restart) goes whole, then one fsync (group
     * commit); cutting it would cap throughput at fsync_batch per fsync. */
    size_t used = (size_t)(last - a->peek) + 1, take = used;
    size_t room = a->unsynced < a->fsync_records ? a->fsync_records - a->unsynced : 1;
    if (lines_prefix(a->peek, used, room + a->fsync_records - 1) == used)
        take = lines_prefix(a->peek, used, room);
    if (append_lines(a, a->peek, take) < 0) {
        src_pause(s, WRITE_RETRY_MS);   /* disk full or I/O error: keep it in the socket */
        return 0;
    }
    if (consume(s, take) < 0) {
        src_eof(s);
        return 0;
    }
    s->retry_ms = 0;
    s->full = take < used || (size_t)n == PEEK_MAX;
    return 1;
}

/* src_drain: read s until a peek comes back short. 1 when something was
 * consumed. */
static int src_drain(struct src *s)
{
    int got = 0;
    while (src_read(s)) {
        got = 1;
        if (!s->full)
            break;
    }
    return got;
}

static void tick_arm(struct audit *a)
{
    static const struct timeval tv = { 0, LINGER_MS * 1000 };
    if (!evtimer_pending(a->ev_tick, NULL))
        evtimer_add(a->ev_tick, &tv);
}

/* Group commit: a socket that has records again within LINGER_MS of the
 * last read is busy. Its read event goes off and the tick reads it every
 * LINGER_MS instead, so one wakeup, one peek, one write and one consume
 * carry every record that arrived meanwhile, and the workers' sends wake
 * nobody. Records wait in the socket, where a crash of this process cannot
 * lose them (the master holds both ends); fsyncs follow fsync_batch as
 * before (src_read). A socket the tick finds empty goes back to its read
 * event. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct src *s = arg;
    uint64_t now = kt_now_ms();
    if (!src_drain(s))
        return;
    if (!s->eof && !s->paused && now - s->last_ms < LINGER_MS) {
        event_del(s->ev);
        s->linger = 1;
        tick_arm(s->a);
    }
    s->last_ms = now;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct audit *a = arg;
    int busy = 0;
    uint64_t now = kt_now_ms();
    for (size_t i = 0; i < a->nsrc; i++) {
        struct src *s = &a->src[i];
        if (!s->linger)
            continue;
        if (src_drain(s) && s->linger) {
            s->last_ms = now;
            busy = 1;
            continue;
        }
        if (s->linger) {   /* idle again (not paused, not at EOF) */
            s->linger = 0;
            event_add(s->ev, NULL);
        }
    }
    if (busy)
        tick_arm(a);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct src *s = arg;
    s->paused = 0;
    if (!s->eof)
        event_add(s->ev, NULL);
}

/* ---- signals and timers --------------------------------------------------- */

static void drain_all(struct audit *a)
{
    uint64_t deadline = kt_now_ms() + 5000;
    int progress = 1;
    while (progress && kt_now_ms() < deadline) {
        progress = 0;
        for (size_t i = 0; i < a->nsrc; i++)
            while (src_read(&a->src[i]))
                progress = 1;
    }
    for (size_t i = 0; i < a->nsrc; i++)
        if (a->src[i].carry.len)   /* consumed already: write it rather than lose it */
            if (append_lines(a, a->src[i].carry.data, a->src[i].carry.len) == 0)
                kt_buf_reset(&a->src[i].carry);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct audit *a = arg;
    drain_all(a);
    do_sync(a);
    kt_info("audit: stopping on signal %d: %llu records written, %llu duplicates skipped",
            (int)sig, (unsigned long long)a->written, (unsigned long long)a->dups);
    event_base_loopbreak(a->base);
}

static void on_reopen(evutil_socket_t sig, short what, void *arg)
{
    struct audit *a = arg;
    kt_log_reopen();   /* the process log (server.log.file) too, like every process */
    do_sync(a);
    int old = a->fd;
    if (open_current(a) < 0) {
        a->fd = old;   /* keep writing where we were */
        return;
    }
    close(old);
    kt_info("audit: reopened %s", a->o->path);
}

static void on_fsync(evutil_socket_t fd, short what, void *arg)
{
    do_sync(arg);
}

static void on_retention(evutil_socket_t fd, short what, void *arg)
{
    retention(arg);
}

static void audit_free(struct audit *a)
{
    for (size_t i = 0; i < a->nsrc; i++) {
        if (a->src[i].ev)
            event_free(a->src[i].ev);
        if (a->src[i].retry)
            event_free(a->src[i].retry);
        kt_buf_free(&a->src[i].carry);
    }
    free(a->src);
    struct event *evs[] = { a->ev_term, a->ev_int, a->ev_usr1, a->ev_fsync, a->ev_retention,
                            a->ev_tick };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    for (size_t i = 0; i < a->nseen; i++)
        free(a->seen[i]);
    free(a->seen);
    kt_buf_free(&a->out);
    kt_buf_free(&a->frag);
    free(a->peek);
    EVP_MD_CTX_free(a->md);
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    EVP_MD_free((EVP_MD *)a->sha256);
#endif
    if (a->fd >= 0) {
        fdatasync(a->fd);
        close(a->fd);
    }
    if (a->lockfd >= 0)
        close(a->lockfd);
    if (a->base)
        event_base_free(a->base);
}

/* lock_log: two writers would fork the chain (two daemons, one path). */
static int lock_log(struct audit *a)
{
    char lp[PATH_MAX];
    snprintf(lp, sizeof lp, "%s.lock", a->o->path);
    a->lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (a->lockfd < 0) {
        kt_error("audit: cannot open %s: %s", lp, strerror(errno));
        return KT_EIO;
    }
    for (int waited = 0; flock(a->lockfd, LOCK_EX | LOCK_NB) < 0; waited += 50) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            kt_error("audit: cannot lock %s: %s", lp, strerror(errno));
            return KT_EIO;
        }
        if (waited >= LOCK_WAIT_MS) {
            kt_error("audit: another process is writing %s (lock %s held)", a->o->path, lp);
            return KT_EAGAIN;
        }
        usleep(50 * 1000);
    }
    return 0;
}

int kt_audit_proc_run(const struct kt_audit_opts *o, const int *fds, size_t nfds)
{
    struct audit a;
    memset(&a, 0, sizeof a);
    a.o = o;
    a.fd = -1;
    a.lockfd = -1;
    a.fsync_records = o->fsync_every_records ? o->fsync_every_records : 100;
    const char *hook = getenv("KT_AUDIT_CRASH_AFTER_APPEND");
    a.crash_after = hook ? atol(hook) : 0;
    int rc = KT_ENOMEM;
    if (o->path == NULL || o->path[0] == '\0') {
        kt_error("audit: no log path");
        return KT_EINVAL;
    }
    signal(SIGPIPE, SIG_IGN);
    if ((a.base = event_base_new()) == NULL || (a.peek = malloc(PEEK_MAX)) == NULL ||
        (a.ev_tick = evtimer_new(a.base, on_tick, &a)) == NULL)
        goto out;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    if (o->immutable)
        a.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
#else
    a.sha256 = EVP_sha256();
#endif
    if (o->immutable && (a.sha256 == NULL || (a.md = EVP_MD_CTX_new()) == NULL)) {
        EVP_MD_CTX_free(a.md);   /* chain_hex falls back to one-shot SHA256 */
        a.md = NULL;
    }
    if ((rc = lock_log(&a)) < 0 || (rc = open_current(&a)) < 0 || (rc = recover(&a)) < 0)
        goto out;
    retention(&a);
    rc = KT_ENOMEM;
    if ((a.src = calloc(nfds ? nfds : 1, sizeof *a.src)) == NULL)
        goto out;
    a.nsrc = nfds;
    a.carry_at = CARRY_AT;
    for (size_t i = 0; i < nfds; i++) {
        struct src *s = &a.src[i];
        s->a = &a;
        s->fd = fds[i];
        if (fds[i] < 0) {   /* an unused slot */
            s->eof = 1;
            continue;
        }
        int sndbuf = 0;
        socklen_t sl = sizeof sndbuf;
        /* a line that cannot fit the socket would never show its newline */
        if (getsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl) == 0 && sndbuf > 0 &&
            (size_t)sndbuf / 4 < a.carry_at)
            a.carry_at = (size_t)sndbuf / 4;
        s->ev = event_new(a.base, fds[i], EV_READ | EV_PERSIST, on_readable, s);
        s->retry = evtimer_new(a.base, on_retry, s);
        if (s->ev == NULL || s->retry == NULL || event_add(s->ev, NULL) < 0)
            goto out;
    }
    for (size_t i = 0; i < nfds; i++)
        if (a.nseen && !a.src[i].eof && skip_written(&a, &a.src[i]) < 0)
            a.src[i].eof = 1;
    for (size_t i = 0; i < a.nseen; i++)
        free(a.seen[i]);
    a.nseen = 0;
    int ms = o->fsync_every_ms > 0 ? o->fsync_every_ms : 1000;
    struct timeval fs = { ms / 1000, (ms % 1000) * 1000 }, rt = { RETENTION_EVERY_S, 0 };
    a.ev_term = evsignal_new(a.base, SIGTERM, on_stop, &a);
    a.ev_int = evsignal_new(a.base, SIGINT, on_stop, &a);
    a.ev_usr1 = evsignal_new(a.base, SIGUSR1, on_reopen, &a);
    a.ev_fsync = event_new(a.base, -1, EV_PERSIST, on_fsync, &a);
    a.ev_retention = event_new(a.base, -1, EV_PERSIST, on_retention, &a);
    if (!a.ev_term || !a.ev_int || !a.ev_usr1 || !a.ev_fsync || !a.ev_retention ||
        event_add(a.ev_term, NULL) || event_add(a.ev_int, NULL) || event_add(a.ev_usr1, NULL) ||
        event_add(a.ev_fsync, &fs) || event_add(a.ev_retention, &rt))
        goto out;
    kt_info("audit: writing %s from %zu worker slots%s", o->path, nfds,
            o->immutable ? " (hash-chained)" : "");
    rc = event_base_dispatch(a.base) < 0 ? KT_EIO : a.rc;
out:
    audit_free(&a);
    return rc;
}

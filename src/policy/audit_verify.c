/* audit_verify.c: reading audit logs: `kt audit verify` checks the hash
 * chain the audit process wrote (seq + prev = SHA-256 of the previous line)
 * across rotated files and names the first broken record; `kt audit tail`
 * prints records readably and follows appends and rotation.
 * Not here: writing the log (src/proc/audit.c). */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/sha.h>

#include "kt/audit.h"
#include "kt/err.h"
#include "kt/util.h"

static const char zero_hash[65] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static void sha_hex(const char *p, size_t n, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)p, n, md);
    kt_hex_encode(md, sizeof md, out);
}

/* parse_chain: {"seq":N,"prev":"<64 hex>" ... → 0, else -1. */
static int parse_chain(const char *line, size_t len, uint64_t *seq, char prev[65])
{
    if (len < 88 || strncmp(line, "{\"seq\":", 7) != 0 || line[7] < '0' || line[7] > '9')
        return -1;
    char *e;
    unsigned long long v = strtoull(line + 7, &e, 10);
    if (v == 0 || strncmp(e, ",\"prev\":\"", 9) != 0)
        return -1;
    const char *h = e + 9;
    if ((size_t)(h - line) + 65 > len || h[64] != '"')
        return -1;
    for (int i = 0; i < 64; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return -1;
    memcpy(prev, h, 64);
    prev[64] = '\0';
    *seq = v;
    return 0;
}

/* is_stamp: "YYYYMMDD-HHMMSS" optionally followed by ".NNN" (rotation names). */
static int is_stamp(const char *s)
{
    for (int i = 0; i < 15; i++)
        if (i == 8 ? s[i] != '-' : (s[i] < '0' || s[i] > '9'))
            return 0;
    if (s[15] == '\0')
        return 1;
    for (int i = 16; i < 19; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return s[15] == '.' && s[19] == '\0';
}

/* is_current: another path is p + ".YYYYMMDD-HHMMSS": p is the live file. */
static int is_current(const char *const *paths, size_t n, size_t i)
{
    size_t l = strlen(paths[i]);
    for (size_t j = 0; j < n; j++)
        if (j != i && strncmp(paths[j], paths[i], l) == 0 && paths[j][l] == '.' &&
            is_stamp(paths[j] + l + 1))
            return 1;
    return 0;
}

struct chain {
    int have;
    uint64_t seq, first_seq, records;
    char hash[65];
    const char *file;
    long line;
};

/* next_line: read one line; returns its length without '\n', -1 at EOF.
 * *nl tells whether it ended in '\n'. */
static ssize_t next_line(FILE *f, char **buf, size_t *cap, int *nl)
{
    ssize_t n = getline(buf, cap, f);
    if (n <= 0)
        return -1;
    *nl = (*buf)[n - 1] == '\n';
    if (*nl)
        (*buf)[--n] = '\0';
    return n;
}

static int verify_file(const char *path, struct chain *c, FILE *out)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(out, "%s: cannot open: %s\n", path, strerror(errno));
        return KT_EIO;
    }
    char *line = NULL, *ahead = NULL;
    size_t cap = 0, acap = 0;
    long lineno = 0;
    int nl, broken = 0;
    ssize_t len;
    while ((len = next_line(f, &line, &cap, &nl)) >= 0) {
        lineno++;
        uint64_t seq;
        char prev[65];
        if (!nl) {
            fprintf(out, "%s:%ld: truncated: the last line has no newline (a partial write)\n",
                    path, lineno);
            broken = 1;
            break;
        }
        if (parse_chain(line, (size_t)len, &seq, prev) < 0) {
            fprintf(out, "%s:%ld: inserted: the line is not a chained audit record "
                    "(no valid \"seq\"/\"prev\" prefix)\n", path, lineno);
            broken = 1;
            break;
        }
        if (!c->have) {
            if (seq == 1 && strcmp(prev, zero_hash) != 0) {
                fprintf(out, "%s:%ld: seq 1: changed: the first record's prev is not the zero hash\n",
                        path, lineno);
                broken = 1;
                break;
            }
            if (seq != 1)
                fprintf(out, "note: %s: chain starts at seq %" PRIu64 " (older files not given "
                        "or expired: records before it cannot be checked)\n", path, seq);
            c->first_seq = seq;
        } else {
            uint64_t want = c->seq + 1;
            if (seq == want && strcmp(prev, c->hash) != 0) {
                fprintf(out, "%s:%ld: seq %" PRIu64 ": changed: hash mismatch: its prev is not the "
                        "SHA-256 of the record before it (%s:%ld, seq %" PRIu64 "); that record "
                        "or this one's prev was modified\n",
                        path, lineno, seq, c->file, c->line, c->seq);
                broken = 1;
                break;
            }
            if (seq > want) {
                /* a later record first: was the expected one moved (swap) or removed? */
                uint64_t aseq;
                char aprev[65];
                ssize_t al = next_line(f, &ahead, &acap, &nl);
                if (al >= 0 && parse_chain(ahead, (size_t)al, &aseq, aprev) == 0 && aseq < seq &&
                    aseq >= want)
                    fprintf(out, "%s:%ld: seq %" PRIu64 ": reordered: seq %" PRIu64 " comes before "
                            "seq %" PRIu64 " (next line)\n", path, lineno, seq, seq, aseq);
                else
                    fprintf(out, "%s:%ld: seq %" PRIu64 ": removed: seq gap: expected %" PRIu64
                            ", %" PRIu64 " record(s) missing after %s:%ld\n", path, lineno, seq,
                            want, seq - want, c->file, c->line);
                broken = 1;
                break;
            }
            if (seq == c->seq) {
                fprintf(out, "%s:%ld: seq %" PRIu64 ": inserted or duplicate: seq repeats "
                        "(also at %s:%ld)\n", path, lineno, seq, c->file, c->line);
                broken = 1;
                break;
            }
            if (seq < c->seq) {
                fprintf(out, "%s:%ld: seq %" PRIu64 ": reordered: seq goes back from %" PRIu64
                        " (%s:%ld)\n", path, lineno, seq, c->seq, c->file, c->line);
                broken = 1;
                break;
            }
        }
        c->have = 1;
        c->seq = seq;
        c->records++;
        sha_hex(line, (size_t)len, c->hash);
        c->file = path;
        c->line = lineno;
    }
    free(line);
    free(ahead);
    fclose(f);
    return broken;
}

int kt_audit_verify(const char *const *paths, size_t n, FILE *out)
{
    const char **order = malloc((n ? n : 1) * sizeof *order);
    if (order == NULL)
        return KT_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_current(paths, n, i))
            order[k++] = paths[i];
    for (size_t i = 0; i < n; i++)
        if (is_current(paths, n, i))
            order[k++] = paths[i];
    struct chain c;
    memset(&c, 0, sizeof c);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = verify_file(order[i], &c, out);
    if (rc == 0) {
        if (c.have)
            fprintf(out, "ok: %" PRIu64 " records in %zu file(s), seq %" PRIu64 "..%" PRIu64
                    ", last hash %s\n", c.records, n, c.first_seq, c.seq, c.hash);
        else
            fprintf(out, "ok: no records\n");
    }
    free(order);
    return rc;
}

/* ---- tail ---------------------------------------------------------------- */

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int64_t jint(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

int kt_audit_format_line(const char *line, size_t len, struct kt_buf *out)
{
    json_tokener *tok = json_tokener_new();
    if (tok == NULL)
        return KT_ENOMEM;
    json_object *o = json_tokener_parse_ex(tok, line, (int)len);
    int ok = o && json_tokener_get_error(tok) == json_tokener_success &&
             json_object_is_type(o, json_type_object);
    json_tokener_free(tok);
    if (!ok) {
        if (o)
            json_object_put(o);
        return kt_buf_printf(out, "(not a record) %.*s", (int)(len > 200 ? 200 : len), line);
    }
    int rc = 0;
    json_object *v, *u;
    const char *s;
    rc |= kt_buf_printf(out, "%s", (s = jstr(o, "ts")) ? s : "-");
    if (json_object_object_get_ex(o, "seq", &v))
        rc |= kt_buf_printf(out, " #%" PRId64, json_object_get_int64(v));
    rc |= kt_buf_printf(out, " %s", (s = jstr(o, "request_id")) ? s : "-");
    if ((s = jstr(o, "fragment")) != NULL) {
        rc |= kt_buf_printf(out, " FRAGMENT (%zu bytes) %.80s", strlen(s), s);
        json_object_put(o);
        return rc ? KT_ENOMEM : 0;
    }
    if ((s = jstr(o, "client_key_id")) != NULL)
        rc |= kt_buf_printf(out, " key=%s", s);
    rc |= kt_buf_printf(out, " target=%s", (s = jstr(o, "target")) ? s : "-");
    rc |= kt_buf_printf(out, " model=%s", (s = jstr(o, "model")) ? s : "-");
    rc |= kt_buf_printf(out, " status=%" PRId64, jint(o, "status"));
    if (json_object_object_get_ex(o, "usage", &u))
        rc |= kt_buf_printf(out, " tokens=%" PRId64 "/%" PRId64, jint(u, "input"), jint(u, "output"));
    if (json_object_object_get_ex(o, "cost_usd", &v))
        rc |= kt_buf_printf(out, " cost=$%.6f", json_object_get_double(v));
    rc |= kt_buf_printf(out, " %" PRId64 "ms", jint(o, "latency_ms"));
    if (json_object_object_get_ex(o, "decisions", &v) && json_object_is_type(v, json_type_array) &&
        json_object_array_length(v) > 0) {
        rc |= kt_buf_puts(out, " decisions=");
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *d = json_object_array_get_idx(v, i);
            rc |= kt_buf_printf(out, "%s%s:%s", i ? "," : "", (s = jstr(d, "policy")) ? s : "?",
                                jstr(d, "action") ? jstr(d, "action") : "?");
        }
    }
    if ((s = jstr(o, "error")) != NULL)
        rc |= kt_buf_printf(out, " error=\"%s\"", s);
    json_object_put(o);
    return rc ? KT_ENOMEM : 0;
}

/* start_of_last_lines: offset where the last n complete lines begin. */
static off_t start_of_last_lines(int fd, off_t size, int n)
{
    char buf[65536];
    off_t end = size;
    int seen = 0;
    while (end > 0) {
        off_t start = end > (off_t)sizeof buf ? end - (off_t)sizeof buf : 0;
        ssize_t r = pread(fd, buf, (size_t)(end - start), start);
        if (r <= 0)
            return 0;
        for (ssize_t i = r - 1; i >= 0; i--) {
            if (buf[i] != '\n' || start + i == size - 1)
                continue;
            if (++seen == n)
                return start + i + 1;
        }
        end = start;
    }
    return 0;
}

/* print_lines: format and print every complete line in pend; keep the rest. */
static int print_lines(struct kt_buf *pend, FILE *out)
{
    struct kt_buf line = {0};
    size_t off = 0;
    char *nl;
    int rc = 0;
    while ((nl = memchr(pend->data + off, '\n', pend->len - off)) != NULL) {
        size_t l = (size_t)(nl - (pend->data + off));
        if (l > 0) {
            kt_buf_reset(&line);
            kt_audit_format_line(pend->data + off, l, &line);
            if (fprintf(out, "%s\n", line.data ? line.data : "") < 0)
                rc = KT_EIO;
        }
        off += l + 1;
    }
    kt_buf_consume(pend, off);
    kt_buf_free(&line);
    if (fflush(out) != 0 || ferror(out))
        rc = KT_EIO;
    return rc;
}

static int read_more(int fd, struct kt_buf *pend)
{
    char buf[65536];
    int got = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        if (kt_buf_append(pend, buf, (size_t)r))
            return KT_ENOMEM;
        got = 1;
    }
    return got;
}

int kt_audit_tail(const char *path, int follow, int n, FILE *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(out, "%s: cannot open: %s\n", path, strerror(errno));
        return KT_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return KT_EIO;
    }
    if (n > 0 && lseek(fd, start_of_last_lines(fd, st.st_size, n), SEEK_SET) < 0) {
        close(fd);
        return KT_EIO;
    }
    struct kt_buf pend = {0};
    int rc = read_more(fd, &pend);
    if (rc >= 0)
        rc = print_lines(&pend, out);
    while (follow && rc >= 0) {
        poll(NULL, 0, 200);
        int got = read_more(fd, &pend);
        if (got < 0 || (rc = print_lines(&pend, out)) < 0)
            break;
        if (got)
            continue;
        /* nothing new: was the file rotated away or truncated? */
        struct stat now, cur;
        if (stat(path, &now) < 0 || fstat(fd, &cur) < 0)
            continue;
        if (now.st_ino != cur.st_ino || now.st_dev != cur.st_dev) {
            read_more(fd, &pend);   /* the old file's last appends */
            rc = print_lines(&pend, out);
            int nfd = open(path, O_RDONLY | O_CLOEXEC);
            if (nfd >= 0) {
                close(fd);
                fd = nfd;
                kt_buf_reset(&pend);
            }
        } else if (now.st_size < lseek(fd, 0, SEEK_CUR)) {
            lseek(fd, 0, SEEK_SET);
            kt_buf_reset(&pend);
        }
    }
    kt_buf_free(&pend);
    close(fd);
    return rc < 0 ? rc : 0;
}

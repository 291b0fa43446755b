/* audit_record.c: the worker side of the audit pipeline: encoding a record
 * into one JSON line, and the non-blocking writer that sends lines down the
 * worker slot's socketpair, queueing (bounded) when the socket is full.
 * Not here: the audit process (src/proc/audit.c), verify/tail. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "kt/audit.h"
#include "kt/err.h"
#include "kt/log.h"
#include "kt/util.h"

/* ---- encoding --------------------------------------------------------- */

/* The encoder runs once per request in the worker: fields are appended
 * directly (a literal key, an escaped value, digits) rather than through
 * printf; only the rare floating-point fields keep printf's exact format. */

#define KEY(k) ",\"" k "\":"
#define PUT_LIT(b, lit) kt_buf_append((b), (lit), sizeof(lit) - 1)

size_t kt_audit_u64_str(uint64_t v, char *out)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* put_lit_u64, put_lit_i64: lit (a key, or any literal) then the number. */
static int put_lit_u64(struct kt_buf *b, const char *lit, size_t litlen, uint64_t v)
{
    if (kt_buf_reserve(b, litlen + 21))
        return KT_ENOMEM;
    char *o = b->data + b->len;
    memcpy(o, lit, litlen);
    o += litlen;
    o += kt_audit_u64_str(v, o);
    *o = '\0';
    b->len = (size_t)(o - b->data);
    return 0;
}

static int put_lit_i64(struct kt_buf *b, const char *lit, size_t litlen, int64_t v)
{
    if (v >= 0)
        return put_lit_u64(b, lit, litlen, (uint64_t)v);
    if (kt_buf_append(b, lit, litlen) || kt_buf_putc(b, '-'))
        return KT_ENOMEM;
    return put_lit_u64(b, "", 0, (uint64_t)0 - (uint64_t)v);
}

#define PUT_U64(b, lit, v) put_lit_u64((b), (lit), sizeof(lit) - 1, (v))
#define PUT_I64(b, lit, v) put_lit_i64((b), (lit), sizeof(lit) - 1, (v))

/* put_str: ,"key":"value" (omitted when v is NULL); key as KEY("name"). */
static int put_str_(struct kt_buf *b, const char *key, size_t keylen, const char *v)
{
    if (v == NULL)
        return 0;
    if (kt_buf_append(b, key, keylen))
        return KT_ENOMEM;
    return kt_buf_json_str(b, v, strlen(v));
}
#define put_str(b, k, v) put_str_((b), KEY(k), sizeof(KEY(k)) - 1, (v))

/* put_num: fixed (cost) or %g (score) notation; non-finite values are omitted. */
static int put_num(struct kt_buf *b, const char *key, double v, int prec, int fixed)
{
    if (!isfinite(v))
        return 0;
    return fixed ? kt_buf_printf(b, ",\"%s\":%.*f", key, prec, v)
                 : kt_buf_printf(b, ",\"%s\":%.*g", key, prec, v);
}

/* text_cut: the longest prefix of s whose JSON-escaped form fits max bytes,
 * not splitting a UTF-8 sequence. Bounding the escaped size (control bytes
 * take 6) keeps every record well below the socket buffer. */
static size_t text_cut(const char *s, size_t len, size_t max)
{
    if (len <= max / 6)
        return len;   /* fits even if every byte were a control byte */
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
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)   /* back to a sequence start */
        n--;
    return n;
}

static int put_text(struct kt_buf *b, const char *key, const char *v)
{
    if (v == NULL)
        return 0;
    size_t len = strlen(v), cut = text_cut(v, len, KT_AUDIT_TEXT_MAX);
    if (PUT_LIT(b, ",\"") || kt_buf_puts(b, key) || PUT_LIT(b, "\":") || kt_buf_json_str(b, v, cut))
        return KT_ENOMEM;
    if (cut < len && kt_buf_printf(b, ",\"%s_truncated\":true,\"%s_bytes\":%zu", key, key, len))
        return KT_ENOMEM;
    return 0;
}

/* put2, put4: zero-padded decimal. */
static char *put2(char *o, unsigned v)
{
    o[0] = (char)('0' + v / 10 % 10);
    o[1] = (char)('0' + v % 10);
    return o + 2;
}

/* ts_str: kt_rfc3339's "YYYY-MM-DDTHH:MM:SS.mmmZ" without gmtime/strftime/
 * snprintf (days to civil date: H. Hinnant's algorithm). Years past 9999
 * are left to kt_rfc3339. */
static const char *ts_str(uint64_t ms, char *out, size_t outlen)
{
    if (ms >= 253402300800000ull || outlen < 25)   /* 10000-01-01 */
        return kt_rfc3339(ms, out, outlen);
    uint64_t secs = ms / 1000;
    unsigned sod = (unsigned)(secs % 86400);
    int64_t z = (int64_t)(secs / 86400) + 719468;
    int64_t era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    unsigned y = (unsigned)(yoe + era * 400) + (m <= 2);
    char *o = put2(put2(out, y / 100), y % 100);
    *o++ = '-';
    o = put2(o, m);
    *o++ = '-';
    o = put2(o, d);
    *o++ = 'T';
    o = put2(o, sod / 3600);
    *o++ = ':';
    o = put2(o, sod / 60 % 60);
    *o++ = ':';
    o = put2(o, sod % 60);
    *o++ = '.';
    unsigned msec = (unsigned)(ms % 1000);
    *o++ = (char)('0' + msec / 100);
    o = put2(o, msec % 100);
    *o++ = 'Z';
    *o = '\0';
    return out;
}

int kt_audit_record_encode(const struct kt_audit_record *r, struct kt_buf *b)
{
    char ts[40];
    int rc = 0;
    ts_str(r->ts_ms ? r->ts_ms : kt_wall_ms(), ts, sizeof ts);
    /* rid first: the audit process splices {"seq":N,"prev":"..", before it */
    rc |= PUT_LIT(b, "{\"rid\":");
    rc |= kt_buf_json_str(b, r->rid ? r->rid : "", r->rid ? strlen(r->rid) : 0);
    rc |= put_str(b, "ts", ts);
    rc |= put_str(b, "request_id", r->request_id);
    rc |= put_str(b, "client_key_id", r->client_key_id);
    if (r->pack_name || r->pack_version) {
        rc |= PUT_LIT(b, ",\"pack\":{\"name\":");
        rc |= kt_buf_json_str(b, r->pack_name ? r->pack_name : "",
                              r->pack_name ? strlen(r->pack_name) : 0);
        rc |= put_str(b, "version", r->pack_version);
        rc |= kt_buf_putc(b, '}');
    }
    rc |= put_str(b, "endpoint", r->endpoint);
    rc |= put_str(b, "client_format", r->client_format);
    rc |= r->stream ? PUT_LIT(b, ",\"stream\":true") : PUT_LIT(b, ",\"stream\":false");
    rc |= put_str(b, "target", r->target);
    rc |= put_str(b, "model", r->model);
    rc |= PUT_I64(b, KEY("status"), r->status);
    rc |= put_str(b, "error", r->error);
    rc |= PUT_LIT(b, ",\"decisions\":[");
    for (size_t i = 0; i < r->n_decisions; i++) {
        const struct kt_audit_decision *d = &r->decisions[i];
        rc |= i ? PUT_LIT(b, ",{\"policy\":") : PUT_LIT(b, "{\"policy\":");
        rc |= kt_buf_json_str(b, d->policy ? d->policy : "", d->policy ? strlen(d->policy) : 0);
        rc |= put_str(b, "action", d->action);
        rc |= put_str(b, "detail", d->detail);
        if (d->score >= 0)
            rc |= put_num(b, "score", d->score, 4, 0);
        rc |= kt_buf_putc(b, '}');
    }
    rc |= PUT_I64(b, "],\"usage\":{\"input\":", r->usage.input);
    rc |= PUT_I64(b, KEY("output"), r->usage.output);
    rc |= PUT_I64(b, KEY("cache_read"), r->usage.cache_read);
    rc |= PUT_I64(b, KEY("cache_creation"), r->usage.cache_creation);
    rc |= kt_buf_putc(b, '}');
    if (r->has_cost)
        rc |= put_num(b, "cost_usd", r->cost_usd, 8, 1);
    rc |= PUT_U64(b, KEY("latency_ms"), r->latency_ms);
    if (r->n_attempts) {
        rc |= PUT_LIT(b, ",\"attempts\":[");
        for (size_t i = 0; i < r->n_attempts; i++) {
            const struct kt_audit_attempt *a = &r->attempts[i];
            rc |= i ? PUT_LIT(b, ",{\"target\":") : PUT_LIT(b, "{\"target\":");
            rc |= kt_buf_json_str(b, a->target ? a->target : "", a->target ? strlen(a->target) : 0);
            rc |= PUT_I64(b, KEY("status"), a->status);
            rc |= PUT_U64(b, KEY("latency_ms"), a->latency_ms);
            rc |= put_str(b, "error", a->error);
            rc |= kt_buf_putc(b, '}');
        }
        rc |= kt_buf_putc(b, ']');
    }
    rc |= put_text(b, "prompt", r->prompt);
    rc |= put_text(b, "completion", r->completion);
    rc |= PUT_LIT(b, "}\n");
    return rc ? KT_ENOMEM : 0;
}

double kt_audit_cost_usd(double prompt_per_mtok, double completion_per_mtok,
                         int64_t input_tokens, int64_t output_tokens)
{
    return ((double)input_tokens * prompt_per_mtok +
            (double)output_tokens * completion_per_mtok) / 1e6;
}

/* ---- writer ------------------------------------------------------------ */

static size_t pending(const struct kt_audit_writer *w)
{
    return w->q.len - w->qoff;
}

/* try_send: push queued bytes until the socket is full. 0, or KT_EIO on a
 * real socket error (the bytes stay queued; the master owns the socket). */
static int try_send(struct kt_audit_writer *w)
{
    while (pending(w) > 0) {
        ssize_t n = send(w->fd, w->q.data + w->qoff, pending(w), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            w->qoff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return KT_EIO;
    }
    if (w->qoff == w->q.len) {
        kt_buf_reset(&w->q);
        w->qoff = 0;
    } else if (w->qoff > 65536 && w->qoff > w->q.len / 2) {
        kt_buf_consume(&w->q, w->qoff);   /* compact now and then, not per send */
        w->qoff = 0;
    }
    return 0;
}

static void arm(struct kt_audit_writer *w)
{
    if (w->ev == NULL)
        return;
    if (pending(w) > 0) {
        if (!event_pending(w->ev, EV_WRITE, NULL))
            event_add(w->ev, NULL);
    } else if (event_pending(w->ev, EV_WRITE, NULL)) {
        event_del(w->ev);
    }
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct kt_audit_writer *w = arg;
    if (try_send(w) < 0)
        kt_log(KT_LOG_ERROR, "audit: send to audit process failed: %s (%zu bytes queued)",
               strerror(errno), pending(w));
    arm(w);
}

int kt_audit_writer_init(struct kt_audit_writer *w, int fd, struct event_base *base,
                         size_t queue_max)
{
    memset(w, 0, sizeof *w);
    w->fd = fd;
    w->base = base;
    w->queue_max = queue_max ? queue_max : (size_t)8 << 20;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return KT_EIO;
    if (kt_random_hex(w->rid_prefix, 8) < 0)
        snprintf(w->rid_prefix, sizeof w->rid_prefix, "%016llx",
                 (unsigned long long)(kt_random_u64() ^ kt_wall_ms()));
    if (base) {
        w->ev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_writable, w);
        if (w->ev == NULL)
            return KT_ENOMEM;
    }
    /* resync: end whatever line a dead predecessor left half-sent */
    if (kt_buf_putc(&w->q, '\n'))
        return KT_ENOMEM;
    try_send(w);
    arm(w);
    return 0;
}

const char *kt_audit_writer_rid(struct kt_audit_writer *w, char *out, size_t outlen)
{
    size_t pl = strnlen(w->rid_prefix, sizeof w->rid_prefix - 1);
    if (outlen < pl + 1 + 20 + 1) {
        snprintf(out, outlen, "%s-%llu", w->rid_prefix, (unsigned long long)++w->rid_next);
        return out;
    }
    memcpy(out, w->rid_prefix, pl);
    out[pl] = '-';
    out[pl + 1 + kt_audit_u64_str(++w->rid_next, out + pl + 1)] = '\0';
    return out;
}

int kt_audit_writer_has_room(const struct kt_audit_writer *w, size_t estimate)
{
    return pending(w) + estimate <= w->queue_max;
}

size_t kt_audit_writer_queued(const struct kt_audit_writer *w)
{
    return pending(w);
}

int kt_audit_writer_submit(struct kt_audit_writer *w, const char *line, size_t len)
{
    if (len == 0 || line[len - 1] != '\n')
        return KT_EINVAL;
    if (!kt_audit_writer_has_room(w, len)) {
        w->refused++;
        return KT_EAGAIN;
    }
    if (kt_buf_append(&w->q, line, len))
        return KT_ENOMEM;
    w->submitted++;
    int rc = try_send(w);
    arm(w);
    if (rc < 0)
        kt_log(KT_LOG_ERROR, "audit: send to audit process failed: %s (%zu bytes queued)",
               strerror(errno), pending(w));
    return 0;   /* queued either way: the record is not lost */
}

int kt_audit_writer_log(struct kt_audit_writer *w, const struct kt_audit_record *rec)
{
    struct kt_audit_record r = *rec;
    char rid[48];
    if (r.rid == NULL)
        r.rid = kt_audit_writer_rid(w, rid, sizeof rid);
    kt_buf_reset(&w->scratch);
    int rc = kt_audit_record_encode(&r, &w->scratch);
    if (rc < 0)
        return rc;
    return kt_audit_writer_submit(w, w->scratch.data, w->scratch.len);
}

int kt_audit_writer_flush_blocking(struct kt_audit_writer *w, int timeout_ms)
{
    uint64_t deadline = kt_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (try_send(w) < 0)
            break;
        if (pending(w) == 0) {
            arm(w);
            return 0;
        }
        uint64_t now = kt_now_ms();
        if (now >= deadline)
            break;
        struct pollfd p = { .fd = w->fd, .events = POLLOUT };
        int left = (int)(deadline - now);
        if (poll(&p, 1, left) < 0 && errno != EINTR)
            break;
    }
    arm(w);
    return KT_EAGAIN;
}

void kt_audit_writer_free(struct kt_audit_writer *w)
{
    if (w->ev)
        event_free(w->ev);
    w->ev = NULL;
    kt_buf_free(&w->q);
    kt_buf_free(&w->scratch);
    w->qoff = 0;
}

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

/* put_str: ,"key":"value" (omitted when v is NULL). first: no comma. */
static int put_str(struct kt_buf *b, const char *key, const char *v)
{
    if (v == NULL)
        return 0;
    if (kt_buf_printf(b, ",\"%s\":", key))
        return KT_ENOMEM;
    return kt_buf_json_str(b, v, strlen(v));
}

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
    if (kt_buf_printf(b, ",\"%s\":", key) || kt_buf_json_str(b, v, cut))
        return KT_ENOMEM;
    if (cut < len && kt_buf_printf(b, ",\"%s_truncated\":true,\"%s_bytes\":%zu", key, key, len))
        return KT_ENOMEM;
    return 0;
}

int kt_audit_record_encode(const struct kt_audit_record *r, struct kt_buf *b)
{
    char ts[40];
    int rc = 0;
    kt_rfc3339(r->ts_ms ? r->ts_ms : kt_wall_ms(), ts, sizeof ts);
    /* rid first: the audit process splices {"seq":N,"prev":"..", before it */
    rc |= kt_buf_puts(b, "{\"rid\":");
    rc |= kt_buf_json_str(b, r->rid ? r->rid : "", r->rid ? strlen(r->rid) : 0);
    rc |= put_str(b, "ts", ts);
    rc |= put_str(b, "request_id", r->request_id);
    rc |= put_str(b, "client_key_id", r->client_key_id);
    if (r->pack_name || r->pack_version) {
        rc |= kt_buf_puts(b, ",\"pack\":{\"name\":");
        rc |= kt_buf_json_str(b, r->pack_name ? r->pack_name : "",
                              r->pack_name ? strlen(r->pack_name) : 0);
        rc |= put_str(b, "version", r->pack_version);
        rc |= kt_buf_putc(b, '}');
    }
    rc |= put_str(b, "endpoint", r->endpoint);
    rc |= put_str(b, "client_format", r->client_format);
    rc |= kt_buf_printf(b, ",\"stream\":%s", r->stream ? "true" : "false");
    rc |= put_str(b, "target", r->target);
    rc |= put_str(b, "model", r->model);
    rc |= kt_buf_printf(b, ",\"status\":%d", r->status);
    rc |= put_str(b, "error", r->error);
    rc |= kt_buf_puts(b, ",\"decisions\":[");
    for (size_t i = 0; i < r->n_decisions; i++) {
        const struct kt_audit_decision *d = &r->decisions[i];
        rc |= kt_buf_puts(b, i ? ",{\"policy\":" : "{\"policy\":");
        rc |= kt_buf_json_str(b, d->policy ? d->policy : "", d->policy ? strlen(d->policy) : 0);
        rc |= put_str(b, "action", d->action);
        rc |= put_str(b, "detail", d->detail);
        if (d->score >= 0)
            rc |= put_num(b, "score", d->score, 4, 0);
        rc |= kt_buf_putc(b, '}');
    }
    rc |= kt_buf_printf(b, "],\"usage\":{\"input\":%lld,\"output\":%lld,\"cache_read\":%lld,"
                        "\"cache_creation\":%lld}",
                        (long long)r->usage.input, (long long)r->usage.output,
                        (long long)r->usage.cache_read, (long long)r->usage.cache_creation);
    if (r->has_cost)
        rc |= put_num(b, "cost_usd", r->cost_usd, 8, 1);
    rc |= kt_buf_printf(b, ",\"latency_ms\":%llu", (unsigned long long)r->latency_ms);
    if (r->n_attempts) {
        rc |= kt_buf_puts(b, ",\"attempts\":[");
        for (size_t i = 0; i < r->n_attempts; i++) {
            const struct kt_audit_attempt *a = &r->attempts[i];
            rc |= kt_buf_puts(b, i ? ",{\"target\":" : "{\"target\":");
            rc |= kt_buf_json_str(b, a->target ? a->target : "", a->target ? strlen(a->target) : 0);
            rc |= kt_buf_printf(b, ",\"status\":%d,\"latency_ms\":%llu", a->status,
                                (unsigned long long)a->latency_ms);
            rc |= put_str(b, "error", a->error);
            rc |= kt_buf_putc(b, '}');
        }
        rc |= kt_buf_putc(b, ']');
    }
    rc |= put_text(b, "prompt", r->prompt);
    rc |= put_text(b, "completion", r->completion);
    rc |= kt_buf_puts(b, "}\n");
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
    snprintf(out, outlen, "%s-%llu", w->rid_prefix, (unsigned long long)++w->rid_next);
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

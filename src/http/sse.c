/* sse.c: incremental Server-Sent Events parser and event writer (see sse.h).
 * Owns line splitting and field handling only; what the events mean is the
 * wire codecs' business. */
#include <string.h>

#include "kt/sse.h"

void kt_sse_parser_init(struct kt_sse_parser *p, size_t max_line)
{
    memset(p, 0, sizeof *p);
    p->max_line = max_line ? max_line : KT_SSE_DEFAULT_MAX_LINE;
}

void kt_sse_parser_free(struct kt_sse_parser *p)
{
    kt_buf_free(&p->line);
    kt_buf_free(&p->data);
    kt_buf_free(&p->event);
}

static int dispatch(struct kt_sse_parser *p, kt_sse_cb cb, void *ud)
{
    int rc = 0;
    if (p->has_data) {
        /* the last data line's "\n" is not part of the data */
        size_t n = p->data.len ? p->data.len - 1 : 0;
        if (p->data.data)
            p->data.data[n] = '\0';
        rc = cb(ud, p->has_event ? p->event.data : NULL, p->data.data ? p->data.data : "", n);
    }
    kt_buf_reset(&p->data);
    kt_buf_reset(&p->event);
    p->has_data = p->has_event = 0;
    return rc;
}

/* One complete line (without its terminator). */
static int line(struct kt_sse_parser *p, const char *s, size_t n, kt_sse_cb cb, void *ud,
                struct kt_err *err)
{
    if (n == 0)
        return dispatch(p, cb, ud);
    if (s[0] == ':')
        return 0;                               /* comment */
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    size_t vlen = (size_t)(s + n - v);
    if (vlen && v[0] == ' ') {
        v++;
        vlen--;
    }
    if (flen == 4 && memcmp(s, "data", 4) == 0) {
        if (p->data.len + vlen + 1 > p->max_line)
            return kt_err_set(err, KT_ELIMIT, "SSE event data longer than %zu bytes", p->max_line);
        if (kt_buf_append(&p->data, v, vlen) || kt_buf_putc(&p->data, '\n'))
            return kt_err_set(err, KT_ENOMEM, "out of memory");
        p->has_data = 1;
    } else if (flen == 5 && memcmp(s, "event", 5) == 0) {
        kt_buf_reset(&p->event);
        if (kt_buf_append(&p->event, v, vlen))
            return kt_err_set(err, KT_ENOMEM, "out of memory");
        p->has_event = 1;
    }
    /* "id", "retry" and unknown fields are ignored: upstream streams are
     * never resumed, so the last event id has no use here. */
    return 0;
}

int kt_sse_parser_feed(struct kt_sse_parser *p, const char *bytes, size_t len,
                       kt_sse_cb cb, void *ud, struct kt_err *err)
{
    size_t i = 0;
    if (p->pending_cr && len > 0) {
        p->pending_cr = 0;
        if (bytes[0] == '\n')
            i = 1;                              /* the "\n" of a split "\r\n" */
    }
    while (i < len) {
        const char *s = bytes + i;
        size_t rest = len - i;
        /* two vectorised scans beat a byte loop: '\n' ends nearly every
         * line, a lone '\r' is legal but rare */
        const char *nl = memchr(s, '\n', rest);
        size_t n = nl ? (size_t)(nl - s) : rest;
        const char *cr = memchr(s, '\r', n);
        if (cr)
            n = (size_t)(cr - s);
        if (n == rest) {                        /* no terminator: keep for later */
            if (p->line.len + n > p->max_line)
                return kt_err_set(err, KT_ELIMIT, "SSE line longer than %zu bytes", p->max_line);
            if (kt_buf_append(&p->line, s, n))
                return kt_err_set(err, KT_ENOMEM, "out of memory");
            return 0;
        }
        int rc;
        if (p->line.len) {
            if (p->line.len + n > p->max_line)
                return kt_err_set(err, KT_ELIMIT, "SSE line longer than %zu bytes", p->max_line);
            if (kt_buf_append(&p->line, s, n))
                return kt_err_set(err, KT_ENOMEM, "out of memory");
            rc = line(p, p->line.data, p->line.len, cb, ud, err);
            kt_buf_reset(&p->line);
        } else {
            if (n > p->max_line)
                return kt_err_set(err, KT_ELIMIT, "SSE line longer than %zu bytes", p->max_line);
            rc = line(p, s, n, cb, ud, err);
        }
        if (rc < 0) {
            if (err && err->code == 0)
                kt_err_set(err, rc, "SSE event handler failed");
            return rc;
        }
        i += n;
        if (s[n] == '\r') {
            if (i + 1 < len) {
                if (bytes[i + 1] == '\n')
                    i++;
            } else {
                p->pending_cr = 1;
            }
        }
        i++;
    }
    return 0;
}

int kt_sse_parser_finish(struct kt_sse_parser *p, kt_sse_cb cb, void *ud, struct kt_err *err)
{
    int rc = 0;
    if (p->line.len) {
        rc = line(p, p->line.data, p->line.len, cb, ud, err);
        kt_buf_reset(&p->line);
    }
    if (rc == 0)
        rc = dispatch(p, cb, ud);
    return rc;
}

int kt_sse_write_event(struct kt_buf *out, const char *event, const char *data, size_t len)
{
    if (event && (kt_buf_puts(out, "event: ") || kt_buf_puts(out, event) || kt_buf_putc(out, '\n')))
        return KT_ENOMEM;
    for (size_t i = 0;;) {
        size_t n = 0;
        while (i + n < len && data[i + n] != '\n')
            n++;
        if (kt_buf_puts(out, "data: ") || kt_buf_append(out, data + i, n) || kt_buf_putc(out, '\n'))
            return KT_ENOMEM;
        if (i + n == len)
            break;
        i += n + 1;                             /* "a\n" gives "a" then "" */
    }
    return kt_buf_putc(out, '\n');
}

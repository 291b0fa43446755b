/* buf.h: a growable byte buffer for building bodies and lines. Reused
 * across requests (kt_buf_reset keeps the capacity). */
#ifndef KT_BUF_H
#define KT_BUF_H

#include <stddef.h>

struct kt_buf {
    char *data;     /* always NUL-terminated when non-NULL */
    size_t len, cap;
};

int kt_buf_reserve(struct kt_buf *b, size_t extra);
int kt_buf_append(struct kt_buf *b, const void *p, size_t n);
int kt_buf_puts(struct kt_buf *b, const char *s);
int kt_buf_putc(struct kt_buf *b, char c);
/* kt_buf_put_i64: v in decimal, as "%lld" without printf's cost. */
int kt_buf_put_i64(struct kt_buf *b, long long v);
int kt_buf_printf(struct kt_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* kt_buf_json_str: append s (n bytes) as a quoted, escaped JSON string. */
int kt_buf_json_str(struct kt_buf *b, const char *s, size_t n);
void kt_buf_consume(struct kt_buf *b, size_t n);  /* drop n bytes from the front */
void kt_buf_reset(struct kt_buf *b);
void kt_buf_free(struct kt_buf *b);

#endif

/* buf.c: growable byte buffer (see buf.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "kt/json.h"

int kt_buf_reserve(struct kt_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return KT_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int kt_buf_append(struct kt_buf *b, const void *p, size_t n)
{
    if (kt_buf_reserve(b, n))
        return KT_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int kt_buf_puts(struct kt_buf *b, const char *s)
{
    return kt_buf_append(b, s, strlen(s));
}

int kt_buf_put_i64(struct kt_buf *b, long long v)
{
    char tmp[24], *p = tmp + sizeof tmp;
    /* negate as unsigned: LLONG_MIN has no positive counterpart */
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    return kt_buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

int kt_buf_putc(struct kt_buf *b, char c)
{
    if (b->len + 2 > b->cap && kt_buf_reserve(b, 1))
        return KT_ENOMEM;
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
    return 0;
}

int kt_buf_printf(struct kt_buf *b, const char *fmt, ...)
{
    /* One vsnprintf into the spare room; a second only when it did not fit. */
    if (kt_buf_reserve(b, 64))
        return KT_ENOMEM;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    size_t room = b->cap - b->len;
    int n = vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        b->data[b->len] = '\0';
        return KT_ENOMEM;
    }
    if ((size_t)n >= room) {
        if (kt_buf_reserve(b, (size_t)n)) {
            va_end(ap2);
            b->data[b->len] = '\0';
            return KT_ENOMEM;
        }
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    }
    va_end(ap2);
    b->len += (size_t)n;
    return 0;
}

int kt_buf_json_str(struct kt_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case 6 bytes per input byte; reserve once, then write in place
     * with runs of plain bytes copied whole (this is on every hot path). */
    if (kt_buf_reserve(b, n * 6 + 2))
        return KT_ENOMEM;
    char *o = b->data + b->len;
    *o++ = '"';
    size_t i = 0;
    while (i < n) {
        size_t run = i + kt_json_escape_free_len(s + i, n - i);
        memcpy(o, s + i, run - i);
        o += run - i;
        i = run;
        if (i == n)
            break;
        unsigned char c = (unsigned char)s[i++];
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
            break;
        }
    }
    *o++ = '"';
    *o = '\0';
    b->len = (size_t)(o - b->data);
    return 0;
}

void kt_buf_consume(struct kt_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void kt_buf_reset(struct kt_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void kt_buf_free(struct kt_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

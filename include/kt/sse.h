/* sse.h: Server-Sent Events. An incremental parser (bytes may split
 * anywhere, even inside "\r\n") and a writer for one event. */
#ifndef KT_SSE_H
#define KT_SSE_H

#include <stddef.h>

#include "kt/buf.h"
#include "kt/err.h"

#define KT_SSE_DEFAULT_MAX_LINE (1024 * 1024)

/* cb: one dispatched event. event is NULL when the event had no "event:"
 * field; data is the "data:" lines joined with "\n" (NUL-terminated).
 * Return < 0 to stop parsing (feed returns that code). */
typedef int (*kt_sse_cb)(void *ud, const char *event, const char *data, size_t len);

struct kt_sse_parser {
    struct kt_buf line;         /* a line split across feeds */
    struct kt_buf data;         /* data of the event being built */
    struct kt_buf event;        /* its event name */
    size_t max_line;            /* a longer line or event data is an error */
    int pending_cr;             /* last feed ended with '\r' */
    int has_data;
    int has_event;
};

void kt_sse_parser_init(struct kt_sse_parser *p, size_t max_line);   /* 0 = default */
int kt_sse_parser_feed(struct kt_sse_parser *p, const char *bytes, size_t len,
                       kt_sse_cb cb, void *ud, struct kt_err *err);
/* finish: at end of stream, dispatch an event whose final blank line never
 * came (lenient: some servers omit it). */
int kt_sse_parser_finish(struct kt_sse_parser *p, kt_sse_cb cb, void *ud, struct kt_err *err);
void kt_sse_parser_free(struct kt_sse_parser *p);

/* kt_sse_write_event: "event: NAME\n" (when non-NULL), one "data: " line per
 * line of data, then a blank line. */
int kt_sse_write_event(struct kt_buf *out, const char *event, const char *data, size_t len);

#endif

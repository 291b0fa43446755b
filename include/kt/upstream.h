/* upstream.h: the worker's HTTP client to providers. libcurl's multi
 * interface driven by the worker's own libevent loop: keep-alive pooling,
 * HTTPS with the system CA store, HTTP/2 where offered. Nothing here
 * blocks; every result arrives through callbacks on the event loop. */
#ifndef KT_UPSTREAM_H
#define KT_UPSTREAM_H

#include <stddef.h>
#include <event2/event.h>

struct kt_upstream;
struct kt_upcall;

enum kt_upcall_result {
    KT_UP_OK = 0,
    KT_UP_TIMEOUT,      /* timeout_ms elapsed, or connect timeout */
    KT_UP_CONNECT,      /* could not connect / resolve */
    KT_UP_IO,           /* connection broke mid-transfer */
    KT_UP_ABORTED,      /* the caller aborted from on_data */
};

struct kt_upcall_cbs {
    /* on_headers (may be NULL): the final response status is known; retry_after_s is the
     * Retry-After header in seconds or -1; content_type may be NULL. */
    void (*on_headers)(void *ud, int status, const char *content_type, int retry_after_s);
    /* on_data: a piece of the body. Return 0 to consume it, 1 to pause
     * (the same bytes come again after kt_upcall_resume), -1 to abort. */
    int (*on_data)(void *ud, const char *data, size_t len);
    /* on_done: the transfer ended; the call is freed right after this. */
    void (*on_done)(void *ud, enum kt_upcall_result result, int status, const char *errmsg);
};

struct kt_upcall_req {
    const char *url;
    const char *const *headers;  /* "Name: value" lines, NULL-terminated */
    const char *body;            /* not copied: must outlive the call; NULL = a GET */
    size_t body_len;
    long timeout_ms;             /* whole transfer */
    long connect_timeout_ms;
    int stream;                  /* a long-lived SSE transfer (no buffering) */
};

struct kt_upstream *kt_upstream_new(struct event_base *base);
void kt_upstream_free(struct kt_upstream *up);
/* kt_upcall_start: begin a transfer; NULL on failure (out of memory). */
struct kt_upcall *kt_upcall_start(struct kt_upstream *up, const struct kt_upcall_req *req,
                                  const struct kt_upcall_cbs *cbs, void *ud);
/* kt_upcall_cancel: stop a transfer now; no callback fires afterwards. */
void kt_upcall_cancel(struct kt_upcall *call);
void kt_upcall_resume(struct kt_upcall *call);
size_t kt_upstream_active(const struct kt_upstream *up);

#endif

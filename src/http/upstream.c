/* upstream.c: libcurl multi driven by libevent (the "hiperfifo" pattern).
 * Owns: the per-worker CURLM, its socket events and timer, and each
 * transfer's easy handle. Does not own request bodies or policy: callers
 * get headers, body bytes and completion through callbacks.
 *
 * Re-entrancy: curl forbids removing a handle from inside its own
 * callbacks, so a cancel issued while one of our callbacks is running only
 * marks the call; the wrapper then tells curl to abort and the handle is
 * reaped on the next pass of check_done(). */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "kt/log.h"
#include "kt/upstream.h"

#define EASY_POOL_MAX 64

struct kt_upstream {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct event *kick;       /* on_timer run later in this loop pass */
    struct fd_slot *slots;    /* by fd: parked watches, sockets we opened */
    size_t nslots;
    int in_curl;              /* inside curl_multi_socket_action */
    size_t active;
    /* Finished easy handles, kept with their shared options (easy_get):
     * creating one per request costs more than the request's own work in
     * the client. */
    CURL *pool[EASY_POOL_MAX];
    size_t npool;
};

static size_t header_cb(char *buf, size_t size, size_t n, void *ud);
static size_t write_cb(char *data, size_t size, size_t n, void *ud);
static curl_socket_t open_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr);
static int close_cb(void *clientp, curl_socket_t fd);

/* easy_get: a pooled handle, or a new one with the options every transfer
 * shares. Pooled handles keep those options (no curl_easy_reset): each
 * transfer sets all the options that differ between transfers. */
static CURL *easy_get(struct kt_upstream *up)
{
    if (up->npool)
        return up->pool[--up->npool];
    CURL *e = curl_easy_init();
    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_USERAGENT, "ktd/" PACKAGE_VERSION);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_cb);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, up);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, up);
    return e;
}

static void easy_put(struct kt_upstream *up, CURL *e)
{
    if (up->npool < EASY_POOL_MAX)
        up->pool[up->npool++] = e;
    else
        curl_easy_cleanup(e);
}

struct kt_upcall {
    struct kt_upstream *up;
    CURL *easy;
    struct curl_slist *headers;
    struct kt_upcall_cbs cbs;
    void *ud;
    int status;
    int retry_after_s;
    char content_type[128];
    unsigned headers_done : 1, in_callback : 1, cancelled : 1, paused : 1;
    char errbuf[CURL_ERROR_SIZE];
};

/* A socket's event. Connection sockets stay registered (for reading)
 * while idle in curl's pool, "parked": a keep-alive connection's next
 * request then costs no epoll_ctl to stop and start watching it. Only
 * sockets we opened are parked, because only their closing reaches us
 * (close_cb) to drop the event first; curl's other sockets (the threaded
 * resolver's socketpair) are closed behind our back. */
struct sock_watch {
    struct event ev;
    short kind;               /* EV_READ/EV_WRITE now registered; 0 = none */
    unsigned parked : 1;      /* curl is not watching it: idle in the pool */
    struct kt_upstream *up;
};

/* By fd: the parked watch, and whether we opened the socket. */
struct fd_slot {
    struct sock_watch *w;
    unsigned char ours;
};

static struct fd_slot *fd_slot(struct kt_upstream *up, curl_socket_t fd, int grow)
{
    if (fd < 0)
        return NULL;
    if ((size_t)fd >= up->nslots) {
        if (!grow)
            return NULL;
        size_t n = up->nslots ? up->nslots : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct fd_slot *t = realloc(up->slots, n * sizeof *t);
        if (t == NULL)
            return NULL;
        memset(t + up->nslots, 0, (n - up->nslots) * sizeof *t);
        up->slots = t;
        up->nslots = n;
    }
    return &up->slots[fd];
}

static void watch_set(struct sock_watch *w, curl_socket_t s, short kind);

static curl_socket_t open_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct kt_upstream *up = clientp;
    curl_socket_t fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (fd == CURL_SOCKET_BAD || purpose != CURLSOCKTYPE_IPCXN)
        return fd;
    struct fd_slot *sl = fd_slot(up, fd, 1);
    if (sl) {
        sl->w = NULL;
        sl->ours = 1;
    }
    return fd;
}

static int close_cb(void *clientp, curl_socket_t fd)
{
    struct kt_upstream *up = clientp;
    struct fd_slot *sl = fd_slot(up, fd, 0);
    if (sl) {
        if (sl->w) {                    /* parked: drop its event before the fd goes */
            watch_set(sl->w, fd, 0);
            free(sl->w);
            sl->w = NULL;
        }
        sl->ours = 0;
    }
    return close(fd);
}

static void check_done(struct kt_upstream *up);

static void call_free(struct kt_upcall *c)
{
    curl_multi_remove_handle(c->up->multi, c->easy);
    easy_put(c->up, c->easy);
    curl_slist_free_all(c->headers);
    c->up->active--;
    free(c);
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct sock_watch *w = arg;
    struct kt_upstream *up = w->up;
    if (w->parked) {
        /* An idle pooled connection turned readable: the server closed it
         * (or sent something). Stop watching; curl finds out when it next
         * checks the connection, and closes it through close_cb. */
        watch_set(w, fd, 0);
        return;
    }
    int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    up->in_curl++;
    curl_multi_socket_action(up->multi, fd, action, &running);
    up->in_curl--;
    check_done(up);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct kt_upstream *up = arg;
    int running;
    up->in_curl++;
    curl_multi_socket_action(up->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    up->in_curl--;
    check_done(up);
}

/* watch_set: register exactly `kind` for s (0 = nothing); no epoll_ctl
 * when it is what is registered already. */
static void watch_set(struct sock_watch *w, curl_socket_t s, short kind)
{
    if (w->kind == kind)
        return;
    if (w->kind)
        event_del(&w->ev);
    w->kind = kind;
    if (kind) {
        event_assign(&w->ev, w->up->base, s, EV_PERSIST | kind, on_socket_event, w);
        event_add(&w->ev, NULL);
    }
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct kt_upstream *up = userp;
    struct sock_watch *w = socketp;
    struct fd_slot *sl;
    if (what == CURL_POLL_REMOVE) {
        if (w == NULL)
            return 0;
        curl_multi_assign(up->multi, s, NULL);
        sl = fd_slot(up, s, 0);
        if (sl && sl->ours) {
            /* park: keep reading registered (an idle socket is always
             * writable, so never writing) until curl wants it again or
             * close_cb drops it */
            watch_set(w, s, w->kind == EV_READ ? EV_READ : 0);
            w->parked = 1;
            sl->w = w;
        } else {
            watch_set(w, s, 0);
            free(w);
        }
        return 0;
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0));
    if (w == NULL) {
        sl = fd_slot(up, s, 0);
        if (sl && sl->w) {            /* a parked connection back in use */
            w = sl->w;
            sl->w = NULL;
            w->parked = 0;
        } else if ((w = calloc(1, sizeof *w)) == NULL) {
            return -1;
        } else {
            w->up = up;
        }
        curl_multi_assign(up->multi, s, w);
    }
    watch_set(w, s, kind);
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct kt_upstream *up = userp;
    if (timeout_ms < 0) {
        evtimer_del(up->timer);
        return 0;
    }
    /* "As soon as possible" after a new transfer or a resume: an active
     * event runs later in this same loop pass, where a zero timer would
     * cost an epoll_wait first. Not when curl itself asks from inside
     * socket_action: the loop must get to poll sockets in between. */
    if (timeout_ms == 0 && !up->in_curl) {
        evtimer_del(up->timer);
        event_active(up->kick, EV_TIMEOUT, 1);
        return 0;
    }
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    evtimer_add(up->timer, &tv);
    return 0;
}

static enum kt_upcall_result map_result(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK: return KT_UP_OK;
    case CURLE_OPERATION_TIMEDOUT: return KT_UP_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return KT_UP_CONNECT;
    case CURLE_WRITE_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        return KT_UP_ABORTED;
    default: return KT_UP_IO;
    }
}

static void check_done(struct kt_upstream *up)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(up->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct kt_upcall *c = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        CURLcode rc = msg->data.result;
        if (c->cancelled) {
            call_free(c);
            continue;
        }
        if (!c->headers_done) {
            long code = 0;
            curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
            c->status = (int)code;
        }
        const char *errmsg = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
        /* Detach before the callback so a new call started from it is safe. */
        curl_multi_remove_handle(up->multi, c->easy);
        c->in_callback = 1;
        c->cbs.on_done(c->ud, map_result(rc), c->status, errmsg);
        easy_put(up, c->easy);
        curl_slist_free_all(c->headers);
        up->active--;
        free(c);
    }
}

static int parse_retry_after(const char *v)
{
    while (*v == ' ')
        v++;
    if (isdigit((unsigned char)*v))
        return atoi(v);
    /* An HTTP date: treat as "soon"; providers send seconds. */
    return *v ? 1 : -1;
}

static size_t header_cb(char *buf, size_t size, size_t n, void *ud)
{
    struct kt_upcall *c = ud;
    size_t len = size * n;
    if (c->cancelled)
        return 0;
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* A new header block (after 1xx or a redirect) starts over. */
        c->headers_done = 0;
        c->retry_after_s = -1;
        c->content_type[0] = '\0';
        return len;
    }
    if (len <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
        long code = 0;
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && !c->headers_done) {
            c->headers_done = 1;
            c->status = (int)code;
            c->in_callback = 1;
            if (c->cbs.on_headers)
                c->cbs.on_headers(c->ud, c->status, c->content_type[0] ? c->content_type : NULL,
                                  c->retry_after_s);
            c->in_callback = 0;
            if (c->cancelled)
                return 0;
        }
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (colon == NULL)
        return len;
    size_t nlen = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    while (vlen && (*v == ' ' || *v == '\t'))
        v++, vlen--;
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    if (nlen == 12 && strncasecmp(buf, "content-type", 12) == 0) {
        size_t k = vlen < sizeof c->content_type - 1 ? vlen : sizeof c->content_type - 1;
        memcpy(c->content_type, v, k);
        c->content_type[k] = '\0';
    } else if (nlen == 11 && strncasecmp(buf, "retry-after", 11) == 0) {
        char tmp[64];
        size_t k = vlen < sizeof tmp - 1 ? vlen : sizeof tmp - 1;
        memcpy(tmp, v, k);
        tmp[k] = '\0';
        c->retry_after_s = parse_retry_after(tmp);
    }
    return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *ud)
{
    struct kt_upcall *c = ud;
    size_t len = size * n;
    if (c->cancelled)
        return 0;
    c->in_callback = 1;
    int r = c->cbs.on_data(c->ud, data, len);
    c->in_callback = 0;
    if (c->cancelled || r < 0)
        return 0;
    if (r > 0) {
        c->paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    }
    return len;
}

struct kt_upstream *kt_upstream_new(struct event_base *base)
{
    struct kt_upstream *up = calloc(1, sizeof *up);
    if (up == NULL)
        return NULL;
    up->base = base;
    up->multi = curl_multi_init();
    up->timer = evtimer_new(base, on_timer, up);
    up->kick = event_new(base, -1, 0, on_timer, up);
    if (up->multi == NULL || up->timer == NULL || up->kick == NULL) {
        kt_upstream_free(up);
        return NULL;
    }
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETDATA, up);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERDATA, up);
    curl_multi_setopt(up->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, 256L);
    return up;
}

void kt_upstream_free(struct kt_upstream *up)
{
    if (up == NULL)
        return;
    while (up->npool)
        curl_easy_cleanup(up->pool[--up->npool]);
    if (up->multi)
        curl_multi_cleanup(up->multi);     /* closes pooled connections: close_cb */
    for (size_t i = 0; i < up->nslots; i++)
        if (up->slots[i].w) {
            watch_set(up->slots[i].w, (curl_socket_t)i, 0);
            free(up->slots[i].w);
        }
    free(up->slots);
    if (up->timer)
        event_free(up->timer);
    if (up->kick)
        event_free(up->kick);
    free(up);
}

size_t kt_upstream_active(const struct kt_upstream *up)
{
    return up->active;
}

struct kt_upcall *kt_upcall_start(struct kt_upstream *up, const struct kt_upcall_req *req,
                                  const struct kt_upcall_cbs *cbs, void *ud)
{
    struct kt_upcall *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->up = up;
    c->cbs = *cbs;
    c->ud = ud;
    c->retry_after_s = -1;
    c->easy = easy_get(up);
    if (c->easy == NULL) {
        free(c);
        return NULL;
    }
    for (const char *const *h = req->headers; h && *h; h++)
        c->headers = curl_slist_append(c->headers, *h);
    /* No "Expect: 100-continue" round trip; no Accept-Encoding games. */
    c->headers = curl_slist_append(c->headers, "Expect:");

    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    if (req->body) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    /* 0 = curl's default (none for the whole transfer, 300 s to connect):
     * set on every transfer so a pooled handle never keeps another's */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 0L);
    if (curl_multi_add_handle(up->multi, e) != CURLM_OK) {
        easy_put(up, e);
        curl_slist_free_all(c->headers);
        free(c);
        return NULL;
    }
    up->active++;
    return c;
}

void kt_upcall_cancel(struct kt_upcall *c)
{
    if (c == NULL)
        return;
    if (c->in_callback) {
        c->cancelled = 1;
        /* If paused, curl won't call us again: unpause so it aborts. */
        return;
    }
    call_free(c);
}

void kt_upcall_resume(struct kt_upcall *c)
{
    if (c == NULL || !c->paused || c->cancelled)
        return;
    c->paused = 0;
    curl_easy_pause(c->easy, CURLPAUSE_CONT);
    check_done(c->up);
}

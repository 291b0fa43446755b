/* wire.c: the codec dispatcher (wire.h): picks the per-format codec, owns
 * the same-format fast path, the error type/status tables, the stream
 * translator that chains decoder → policy hook → encoder, and the JSON
 * helpers the codecs share (wire_int.h). Field mappings live in openai.c
 * and anthropic.c. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "kt/util.h"
#include "wire_int.h"

/* ---- JSON helpers ---- */

int kt_wire_int32(const struct kt_json *v)
{
    int64_t i = kt_json_int(v);
    return i > INT_MAX ? INT_MAX : i < INT_MIN ? INT_MIN : (int)i;
}

/* One scratch arena per process for parse trees: the decoders copy what
 * they keep into the request arena, so a tree dies with its decode, and
 * reusing one block saves a malloc per request and per stream event.
 * Workers are single-threaded; a decode nested in another (a stream
 * callback decoding) parses into its caller's arena instead. */
static struct kt_arena scratch;
static int scratch_busy;

struct kt_arena *kt_wire_scratch(struct kt_arena *fallback)
{
    if (scratch_busy)
        return fallback;
    if (scratch.block_size == 0)
        kt_arena_init(&scratch, 32768);
    scratch_busy = 1;
    return &scratch;
}

void kt_wire_scratch_done(struct kt_arena *s)
{
    if (s == &scratch) {
        kt_arena_reset(&scratch);
        scratch_busy = 0;
    }
}

int kt_wire_valid_json(const char *text, size_t len)
{
    return kt_json_valid(text, len, KT_JSON_OBJECT);
}

int kt_wire_put_json_object(struct kt_buf *b, const char *text)
{
    if (text && kt_wire_valid_json(text, strlen(text)))
        return kt_buf_puts(b, text);
    return kt_buf_puts(b, "{}");
}

int kt_wire_put_str(struct kt_buf *b, const char *s)
{
    return s ? kt_buf_json_str(b, s, strlen(s)) : kt_buf_puts(b, "null");
}

int kt_wire_put_double(struct kt_buf *b, double d)
{
    return kt_buf_printf(b, "%.15g", d);
}

int kt_wire_get_number(const struct kt_json *root, const char *key, double *out, int *has,
                       struct kt_err *err)
{
    const struct kt_json *v = kt_wire_member(root, key);
    if (v == NULL)
        return 0;
    if (v->type != KT_JSON_DOUBLE && v->type != KT_JSON_INT)
        return kt_err_set(err, KT_EINVAL, "%s: expected a number", key);
    *out = kt_json_double(v);
    if (has)
        *has = 1;
    return 0;
}

int kt_wire_get_int(const struct kt_json *root, const char *key, long *out, struct kt_err *err)
{
    const struct kt_json *v = kt_wire_member(root, key);
    if (v == NULL)
        return 0;
    if (v->type != KT_JSON_INT || v->u.i < 0)
        return kt_err_set(err, KT_EINVAL, "%s: expected a non-negative integer", key);
    *out = (long)v->u.i;
    return 0;
}

int kt_wire_get_bool(const struct kt_json *root, const char *key, int *out, struct kt_err *err)
{
    const struct kt_json *v = kt_wire_member(root, key);
    if (v == NULL)
        return 0;
    if (v->type != KT_JSON_BOOL)
        return kt_err_set(err, KT_EINVAL, "%s: expected true or false", key);
    *out = kt_json_bool(v);
    return 0;
}

int kt_wire_enc_begin(struct kt_stream_enc *e, const struct kt_stream_ev *ev, const char *id_prefix)
{
    if (e->started)
        return 0;
    e->started = 1;
    if (ev && ev->id && ev->id[0]) {
        e->id = kt_arena_strdup(e->a, ev->id);
    } else {
        char hex[25];
        kt_random_hex(hex, 12);
        e->id = kt_arena_printf(e->a, "%s%s", id_prefix, hex);
    }
    const char *model = e->opts.model ? e->opts.model : ev ? ev->model : NULL;
    e->model = model ? kt_arena_strdup(e->a, model) : NULL;
    if (ev)
        kt_usage_merge(&e->usage, &ev->usage);
    return 1;
}

int kt_wire_decode_head(const struct kt_json *root, struct kt_arena *a, struct kt_request *req,
                        const struct kt_json **msgs, struct kt_err *err)
{
    const struct kt_json *v = kt_json_get(root, "model");
    if (v) {
        if (v->type != KT_JSON_STRING)
            return kt_err_set(err, KT_EINVAL, "model: expected a string");
        req->model = kt_wire_str(a, v, NULL);
    }
    *msgs = kt_wire_get(root, "messages", KT_JSON_ARRAY);
    if (*msgs == NULL)
        return kt_err_set(err, KT_EINVAL, "messages: required, an array of messages");
    if (kt_json_len(*msgs) == 0)
        return kt_err_set(err, KT_EINVAL, "messages: must not be empty");
    return 0;
}

int kt_wire_parse(struct kt_arena *t, const char *body, size_t len, const struct kt_json **out,
                  struct kt_err *err)
{
    *out = NULL;
    if (body == NULL || len == 0)
        return kt_err_set(err, KT_EINVAL, "empty body: expected a JSON object");
    const struct kt_json *o;
    int rc = kt_json_parse(t, body, len, &o, NULL);
    if (rc == KT_ENOMEM)
        return kt_err_set(err, KT_ENOMEM, "out of memory");
    if (rc)
        return kt_err_set(err, KT_EINVAL, "invalid JSON in body");
    if (o->type != KT_JSON_OBJECT)
        return kt_err_set(err, KT_EINVAL, "body must be a JSON object");
    *out = o;
    return 0;
}

void *kt_wire_grow(struct kt_arena *a, void *old, size_t n, size_t newcap, size_t size)
{
    void *p = kt_arena_alloc(a, newcap * size);
    if (p && n)
        memcpy(p, old, n * size);
    return p;
}

int kt_wire_imap_get(const struct kt_wire_imap *m, int key)
{
    return key >= 0 && key < m->cap ? m->v[key] : -1;
}

int kt_wire_imap_set(struct kt_arena *a, struct kt_wire_imap *m, int key, int val)
{
    if (key < 0 || key > 100000)
        return KT_EINVAL;
    if (key >= m->cap) {
        int cap = m->cap ? m->cap : 8;
        while (cap <= key)
            cap *= 2;
        int *v = kt_wire_grow(a, m->v, (size_t)m->cap, (size_t)cap, sizeof *v);
        if (v == NULL)
            return KT_ENOMEM;
        for (int i = m->cap; i < cap; i++)
            v[i] = -1;
        m->v = v;
        m->cap = cap;
    }
    m->v[key] = val;
    return 0;
}

void kt_wire_usage_unset(struct kt_usage *u)
{
    u->input = u->output = u->cache_read = u->cache_creation = -1;
}

/* ---- errors ---- */

/* What each canonical error is called and which status it gets per format. */
static const struct {
    const char *anthropic, *openai;
    int status;
} err_table[] = {
    [KT_IRE_INVALID_REQUEST] = { "invalid_request_error", "invalid_request_error", 400 },
    [KT_IRE_AUTHENTICATION] = { "authentication_error", "authentication_error", 401 },
    [KT_IRE_PERMISSION] = { "permission_error", "permission_error", 403 },
    [KT_IRE_NOT_FOUND] = { "not_found_error", "not_found_error", 404 },
    [KT_IRE_REQUEST_TOO_LARGE] = { "request_too_large", "invalid_request_error", 413 },
    [KT_IRE_RATE_LIMIT] = { "rate_limit_error", "rate_limit_error", 429 },
    [KT_IRE_API_ERROR] = { "api_error", "server_error", 500 },
    [KT_IRE_OVERLOADED] = { "overloaded_error", "server_error", 529 },
    [KT_IRE_TIMEOUT] = { "timeout_error", "timeout_error", 504 },
    [KT_IRE_POLICY_VIOLATION] = { "permission_error", "policy_violation", 400 },
};
#define ERR_TYPES (sizeof err_table / sizeof *err_table)

const char *kt_wire_err_openai_type(enum kt_ir_err_type t)
{
    return (unsigned)t < ERR_TYPES ? err_table[t].openai : "server_error";
}

const char *kt_wire_err_anthropic_type(enum kt_ir_err_type t)
{
    return (unsigned)t < ERR_TYPES ? err_table[t].anthropic : "api_error";
}

int kt_wire_err_anthropic_parse(const char *type, enum kt_ir_err_type *out)
{
    /* policy_violation shares permission_error; the first match wins. */
    for (unsigned i = 0; i < ERR_TYPES; i++) {
        if (type && strcmp(type, err_table[i].anthropic) == 0) {
            *out = (enum kt_ir_err_type)i;
            return 0;
        }
    }
    return KT_ENOENT;
}

static const struct {
    int status;
    enum kt_ir_err_type type;
} status_table[] = {
    { 400, KT_IRE_INVALID_REQUEST }, { 401, KT_IRE_AUTHENTICATION },
    { 403, KT_IRE_PERMISSION }, { 404, KT_IRE_NOT_FOUND },
    { 408, KT_IRE_TIMEOUT }, { 413, KT_IRE_REQUEST_TOO_LARGE },
    { 422, KT_IRE_INVALID_REQUEST }, { 429, KT_IRE_RATE_LIMIT },
    { 500, KT_IRE_API_ERROR }, { 502, KT_IRE_API_ERROR },
    { 503, KT_IRE_OVERLOADED }, { 504, KT_IRE_TIMEOUT }, { 529, KT_IRE_OVERLOADED },
};

enum kt_ir_err_type kt_wire_error_type_for_status(int http_status)
{
    for (size_t i = 0; i < sizeof status_table / sizeof *status_table; i++)
        if (status_table[i].status == http_status)
            return status_table[i].type;
    return http_status >= 400 && http_status < 500 ? KT_IRE_INVALID_REQUEST : KT_IRE_API_ERROR;
}

int kt_wire_decode_error(enum kt_format fmt, int http_status, const char *body, size_t len,
                         struct kt_arena *a, struct kt_ir_error *e)
{
    memset(e, 0, sizeof *e);
    e->http_status = http_status;
    e->type = kt_wire_error_type_for_status(http_status);
    e->retry_after = -1;
    const struct kt_json *root = NULL;
    struct kt_err perr;
    struct kt_arena *t = kt_wire_scratch(a);
    if (body && len && kt_wire_parse(t, body, len, &root, &perr) == 0) {
        const struct kt_json *eo = kt_wire_get(root, "error", KT_JSON_OBJECT), *ty;
        if (eo) {
            e->message = kt_wire_str(a, kt_wire_get(eo, "message", KT_JSON_STRING), NULL);
            char *type = kt_wire_str(t, ty = kt_wire_get(eo, "type", KT_JSON_STRING), NULL);
            enum kt_ir_err_type et;
            if (fmt == KT_FMT_ANTHROPIC && kt_wire_err_anthropic_parse(type, &et) == 0)
                e->type = et;
            else if (fmt == KT_FMT_OPENAI && kt_json_streq(ty, "policy_violation"))
                e->type = KT_IRE_POLICY_VIOLATION;
            const struct kt_json *code = kt_wire_get(eo, "code", KT_JSON_STRING);
            if (fmt == KT_FMT_OPENAI && code)
                e->code = kt_wire_str(a, code, NULL);
        } else if (kt_wire_get(root, "error", KT_JSON_STRING)) {
            e->message = kt_wire_str(a, kt_wire_get(root, "error", KT_JSON_STRING), NULL);
        }
    }
    kt_wire_scratch_done(t);
    if (e->message == NULL) {
        /* not a provider error body (a proxy's HTML page...): keep a bounded excerpt */
        size_t n = body && len ? (len > 200 ? 200 : len) : 0;
        e->message = n ? kt_arena_printf(a, "upstream returned HTTP %d: %.*s", http_status,
                                         (int)n, body)
                       : kt_arena_printf(a, "upstream returned HTTP %d", http_status);
    }
    return 0;
}

int kt_wire_encode_error(enum kt_format fmt, const struct kt_ir_error *e, struct kt_buf *out,
                         int *http_status_out)
{
    int status = e->http_status > 0 ? e->http_status
                 : (unsigned)e->type < ERR_TYPES ? err_table[e->type].status : 500;
    if (fmt == KT_FMT_OPENAI && status == 529)
        status = 503;                           /* OpenAI clients know 503, not 529 */
    if (fmt == KT_FMT_ANTHROPIC && e->type == KT_IRE_OVERLOADED)
        status = 529;
    if (http_status_out)
        *http_status_out = status;
    return fmt == KT_FMT_OPENAI ? kt_wire_openai_error_body(e, out)
                                : kt_wire_anthropic_error_body(e, out);
}

/* ---- requests and responses ---- */

/* Where the top-level "model" values sit in a request body: what the
 * same-format fast path splices. */
#define MODEL_SPANS 4
struct model_spans {
    const char *body;           /* the body they were found in, and its length */
    size_t len;
    int n;                      /* "model" members; -1: too many to keep */
    size_t off[MODEL_SPANS], vlen[MODEL_SPANS];     /* value spans */
    size_t close;               /* offset of the root's closing brace */
    int empty;                  /* the root has no members */
};

static void model_spans_find(struct model_spans *ms, const char *body, size_t len,
                             const struct kt_json *root)
{
    ms->body = body;
    ms->len = len;
    ms->n = 0;
    ms->close = (size_t)(root->raw + root->raw_len - 1 - body);     /* the final '}' */
    ms->empty = root->n == 0;
    for (size_t i = 0; i < root->n; i++) {
        const struct kt_json_member *m = &root->u.members[i];
        if (m->klen != 5 || memcmp(m->key, "model", 5) != 0)
            continue;
        if (ms->n < 0 || ms->n == MODEL_SPANS) {
            ms->n = -1;
            continue;
        }
        ms->off[ms->n] = (size_t)(m->val.raw - body);
        ms->vlen[ms->n] = m->val.raw_len;
        ms->n++;
    }
}

/* The spans of the last request decoded, so that the fast path need not
 * parse the body a second time. Per process (workers are single-threaded);
 * used only for the same body address and length, and checked against the
 * bytes (a live request's body is never another's). */
static struct model_spans last_spans;

int kt_wire_decode_request(enum kt_format fmt, const char *body, size_t len,
                           struct kt_arena *a, struct kt_request *req, struct kt_err *err)
{
    memset(req, 0, sizeof *req);
    req->src_fmt = fmt;
    req->body = body;
    req->body_len = len;
    req->parallel_tool_calls = -1;
    req->top_k = -1;
    const struct kt_json *root;
    struct kt_arena *t = kt_wire_scratch(a);
    last_spans.body = NULL;
    int rc = kt_wire_parse(t, body, len, &root, err);
    if (rc == 0) {
        model_spans_find(&last_spans, body, len, root);
        rc = fmt == KT_FMT_OPENAI ? kt_wire_openai_decode_request(root, a, req, err)
                                  : kt_wire_anthropic_decode_request(root, a, req, err);
    }
    kt_wire_scratch_done(t);
    return rc;
}

/* 1 when the cached spans still describe req's body */
static int model_spans_fit(const struct model_spans *ms, const struct kt_request *req)
{
    if (ms->body != req->body || ms->len != req->body_len || ms->n < 0 ||
        ms->close >= ms->len || req->body[ms->close] != '}')
        return 0;
    for (int i = 0; i < ms->n; i++) {
        const char *v = req->body + ms->off[i];
        if (ms->off[i] + ms->vlen[i] > ms->len || ms->vlen[i] < 2 || v[0] != '"' ||
            v[ms->vlen[i] - 1] != '"')
            return 0;
    }
    /* the last one is the model decoded (last wins) */
    if (ms->n > 0) {
        size_t k = (size_t)ms->n - 1, n = ms->vlen[k] - 2;
        if (req->model == NULL || strlen(req->model) != n ||
            memcmp(req->body + ms->off[k] + 1, req->model, n) != 0)
            return 0;                       /* escapes in it, or a stale entry */
    }
    return 1;
}

/* Same format, nothing changed: the original bytes, with only the model
 * swapped when the target's differs. 1 = done, 0 = encode normally. */
static int fast_path(const struct kt_request *req, const char *model, struct kt_buf *out)
{
    if (req->modified || req->body == NULL)
        return 0;
    if (model == NULL || (req->model && strcmp(req->model, model) == 0))
        return kt_buf_append(out, req->body, req->body_len) ? KT_ENOMEM : 1;
    /* splice: every top-level "model" value replaced in the original
     * bytes, or one added at the end; nothing else is touched */
    struct model_spans ms;
    if (model_spans_fit(&last_spans, req)) {
        ms = last_spans;
    } else {
        struct kt_arena scratch_fallback;
        kt_arena_init(&scratch_fallback, 4096);
        struct kt_arena *t = kt_wire_scratch(&scratch_fallback);
        const struct kt_json *root;
        int ok = kt_wire_parse(t, req->body, req->body_len, &root, NULL) == 0;
        if (ok)
            model_spans_find(&ms, req->body, req->body_len, root);
        kt_wire_scratch_done(t);
        kt_arena_free(&scratch_fallback);
        if (!ok)
            return 0;
        if (ms.n < 0)
            return 0;                       /* a body full of "model" keys: re-encode */
    }
    const char *p = req->body;
    size_t mlen = strlen(model);
    int rc = 0;
    for (int i = 0; i < ms.n; i++) {
        rc |= kt_buf_append(out, p, (size_t)(req->body + ms.off[i] - p));
        rc |= kt_buf_json_str(out, model, mlen);
        p = req->body + ms.off[i] + ms.vlen[i];
    }
    if (ms.n == 0) {
        const char *close = req->body + ms.close;
        rc |= kt_buf_append(out, p, (size_t)(close - p));
        rc |= kt_buf_puts(out, ms.empty ? "\"model\":" : ",\"model\":");
        rc |= kt_buf_json_str(out, model, mlen);
        p = close;
    }
    rc |= kt_buf_append(out, p, (size_t)(req->body + req->body_len - p));
    return rc ? KT_ENOMEM : 1;
}

int kt_wire_encode_request(enum kt_format fmt, const struct kt_request *req,
                           const char *model, struct kt_buf *out)
{
    if (fmt == req->src_fmt) {
        int rc = fast_path(req, model, out);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
    return fmt == KT_FMT_OPENAI ? kt_wire_openai_encode_request(req, model, out)
                                : kt_wire_anthropic_encode_request(req, model, out);
}

int kt_wire_decode_response(enum kt_format fmt, const char *body, size_t len,
                            struct kt_arena *a, struct kt_response *resp, struct kt_err *err)
{
    memset(resp, 0, sizeof *resp);
    resp->src_fmt = fmt;
    resp->body = body;
    resp->body_len = len;
    const struct kt_json *root;
    struct kt_arena *t = kt_wire_scratch(a);
    int rc = kt_wire_parse(t, body, len, &root, err);
    if (rc == 0)
        rc = fmt == KT_FMT_OPENAI ? kt_wire_openai_decode_response(root, a, resp, err)
                                  : kt_wire_anthropic_decode_response(root, a, resp, err);
    kt_wire_scratch_done(t);
    return rc;
}

int kt_wire_encode_response(enum kt_format fmt, const struct kt_response *resp,
                            struct kt_buf *out)
{
    if (fmt == resp->src_fmt && !resp->modified && resp->body)
        return kt_buf_append(out, resp->body, resp->body_len);
    return fmt == KT_FMT_OPENAI ? kt_wire_openai_encode_response(resp, out)
                                : kt_wire_anthropic_encode_response(resp, out);
}

/* ---- streams ---- */

struct kt_stream_dec *kt_stream_dec_new(struct kt_arena *a, enum kt_format fmt)
{
    struct kt_stream_dec *d = kt_arena_alloc(a, sizeof *d);
    if (d) {
        d->fmt = fmt;
        d->a = a;
        d->open_block = -1;
    }
    return d;
}

int kt_stream_dec_feed(struct kt_stream_dec *d, const char *event, const char *data,
                       size_t len, kt_stream_ev_fn cb, void *ud, struct kt_err *err)
{
    return d->fmt == KT_FMT_OPENAI ? kt_wire_openai_dec_event(d, event, data, len, cb, ud, err)
                                   : kt_wire_anthropic_dec_event(d, event, data, len, cb, ud, err);
}

struct kt_stream_enc *kt_stream_enc_new(struct kt_arena *a, enum kt_format fmt,
                                        const struct kt_stream_opts *opts)
{
    struct kt_stream_enc *e = kt_arena_alloc(a, sizeof *e);
    if (e == NULL)
        return NULL;
    e->fmt = fmt;
    e->a = a;
    if (opts)
        e->opts = *opts;
    if (e->opts.model)
        e->opts.model = kt_arena_strdup(a, e->opts.model);
    e->created = (long)(kt_wall_ms() / 1000);
    e->open_in = e->open_out = -1;
    return e;
}

int kt_stream_enc_event(struct kt_stream_enc *e, const struct kt_stream_ev *ev,
                        struct kt_buf *out)
{
    if (e->done)
        return 0;                               /* nothing may follow the end */
    return e->fmt == KT_FMT_OPENAI ? kt_wire_openai_enc_event(e, ev, out)
                                   : kt_wire_anthropic_enc_event(e, ev, out);
}

int kt_stream_enc_error(struct kt_stream_enc *e, const struct kt_ir_error *err,
                        struct kt_buf *out)
{
    struct kt_stream_ev ev = { .type = KT_EV_ERROR, .error = err };
    return kt_stream_enc_event(e, &ev, out);
}

int kt_stream_enc_finish(struct kt_stream_enc *e, struct kt_buf *out)
{
    if (e->done)
        return 0;
    if (e->finished) {
        struct kt_stream_ev ev = { .type = KT_EV_DONE };
        return kt_stream_enc_event(e, &ev, out);
    }
    struct kt_ir_error err = {
        .http_status = 502, .type = KT_IRE_API_ERROR, .retry_after = -1,
        .message = (char *)"upstream stream ended before the message was complete",
    };
    int rc = kt_stream_enc_error(e, &err, out);
    return rc ? rc : KT_EIO;
}

int kt_stream_enc_done(const struct kt_stream_enc *e)
{
    return e->done;
}

struct kt_stream_xlate {
    struct kt_stream_dec *dec;
    struct kt_stream_enc *enc;
    struct kt_buf *out;
    struct kt_err err;
};

static int xlate_cb(void *ud, struct kt_stream_ev *ev)
{
    struct kt_stream_xlate *x = ud;
    if (x->enc->opts.hook) {
        int rc = x->enc->opts.hook(x->enc->opts.hook_ud, ev);
        if (rc < 0)
            return kt_err_set(&x->err, rc, "stream stopped by a response policy");
    }
    if ((ev->type == KT_EV_TEXT_DELTA || ev->type == KT_EV_THINKING_DELTA) && ev->len == 0)
        return 0;                               /* the hook held it back */
    int rc = kt_stream_enc_event(x->enc, ev, x->out);
    return rc ? kt_err_set(&x->err, rc, "out of memory") : 0;
}

struct kt_stream_xlate *kt_stream_xlate_new(struct kt_arena *a, enum kt_format upstream_fmt,
                                            enum kt_format client_fmt,
                                            const struct kt_stream_opts *opts)
{
    struct kt_stream_xlate *x = kt_arena_alloc(a, sizeof *x);
    if (x == NULL)
        return NULL;
    x->dec = kt_stream_dec_new(a, upstream_fmt);
    x->enc = kt_stream_enc_new(a, client_fmt, opts);
    return x->dec && x->enc ? x : NULL;
}

int kt_stream_xlate_feed_event(struct kt_stream_xlate *x, const char *event,
                               const char *data, size_t len, struct kt_buf *out)
{
    x->out = out;
    int rc = kt_stream_dec_feed(x->dec, event, data, len, xlate_cb, x, &x->err);
    x->out = NULL;
    return rc;
}

int kt_stream_xlate_inject(struct kt_stream_xlate *x, const struct kt_stream_ev *ev)
{
    if (x->out == NULL)
        return KT_EINVAL;                       /* only valid during a feed */
    return kt_stream_enc_event(x->enc, ev, x->out);
}

int kt_stream_xlate_finish(struct kt_stream_xlate *x, struct kt_buf *out)
{
    return kt_stream_enc_finish(x->enc, out);
}

int kt_stream_xlate_error(struct kt_stream_xlate *x, const struct kt_ir_error *e,
                          struct kt_buf *out)
{
    return kt_stream_enc_error(x->enc, e, out);
}

const struct kt_usage *kt_stream_xlate_usage(const struct kt_stream_xlate *x)
{
    return &x->enc->usage;
}

enum kt_finish kt_stream_xlate_finish_reason(const struct kt_stream_xlate *x)
{
    return x->enc->finish;
}

const struct kt_err *kt_stream_xlate_last_err(const struct kt_stream_xlate *x)
{
    return &x->err;
}

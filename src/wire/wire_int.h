/* wire_int.h: private to src/wire: the per-format codec entry points the
 * dispatcher (wire.c) calls, stream codec state, and small JSON helpers.
 * Not installed, not included outside src/wire. */
#ifndef KT_WIRE_INT_H
#define KT_WIRE_INT_H

#include "kt/json.h"
#include "kt/wire.h"

/* ---- JSON helpers (wire.c) ----
 * Decoders read kt_json trees (json.h). A tree lives in a scratch arena
 * for the length of one decode: everything the IR keeps is copied into
 * the request arena. */
/* kt_wire_get: member key of o when it has type t (KT_JSON_NULL never
 * matches: a null member reads as absent). */
static inline const struct kt_json *kt_wire_get(const struct kt_json *o, const char *key,
                                                enum kt_json_type t)
{
    return t == KT_JSON_NULL ? NULL : kt_json_get_type(o, key, t);
}
/* kt_wire_member: member key of o, NULL when absent or null (json-c's
 * json_object_object_get_ex gave NULL for both). */
static inline const struct kt_json *kt_wire_member(const struct kt_json *o, const char *key)
{
    const struct kt_json *v = kt_json_get(o, key);
    return v && v->type != KT_JSON_NULL ? v : NULL;
}
/* A provider's finish-reason names: kt_wire_finish_parse maps the string
 * node v (or NULL, absent) through such a table; unknown names read as a
 * plain stop. */
struct kt_finish_name {
    const char *s;
    enum kt_finish f;
};
static inline enum kt_finish kt_wire_finish_parse(const struct kt_finish_name *t, size_t n,
                                                  const struct kt_json *v)
{
    for (size_t i = 0; v && i < n; i++)
        if (kt_json_streq(v, t[i].s))
            return t[i].f;
    return v ? KT_FINISH_STOP : KT_FINISH_NONE;
}
/* kt_wire_str: arena copy of a JSON string, NUL-terminated (len optional);
 * NULL when s is not a string. */
static inline char *kt_wire_str(struct kt_arena *a, const struct kt_json *s, size_t *len)
{
    return kt_json_strdup(a, s, len);
}
/* kt_wire_json_text: compact JSON text of any value, in the arena: its
 * source bytes without insignificant whitespace (no re-serialising). */
static inline char *kt_wire_json_text(struct kt_arena *a, const struct kt_json *o)
{
    return kt_json_text(a, o, NULL);
}
/* kt_wire_int32: an integer member value clamped to int (json-c's get_int) */
int kt_wire_int32(const struct kt_json *v);
/* kt_wire_put_json_object: append text when it is a JSON object, else "{}". */
int kt_wire_put_json_object(struct kt_buf *b, const char *text);
int kt_wire_put_str(struct kt_buf *b, const char *s);       /* JSON string or null */
int kt_wire_put_double(struct kt_buf *b, double d);
/* kt_wire_scratch: the arena a decode parses into: the process's scratch
 * arena, or fallback when a decode is already using it (a nested decode).
 * kt_wire_scratch_done: give it back (resetting it). */
struct kt_arena *kt_wire_scratch(struct kt_arena *fallback);
void kt_wire_scratch_done(struct kt_arena *s);
/* kt_wire_parse: parse body into t; KT_EINVAL with "invalid JSON ..." when
 * it is not an object. */
int kt_wire_parse(struct kt_arena *t, const char *body, size_t len, const struct kt_json **out,
                  struct kt_err *err);
/* kt_wire_decode_head: what both request formats start with: an optional
 * string "model" and a non-empty "messages" array (returned in *msgs). */
int kt_wire_decode_head(const struct kt_json *root, struct kt_arena *a, struct kt_request *req,
                        const struct kt_json **msgs, struct kt_err *err);
/* kt_wire_grow: arena array growth: returns a new array of newcap elements
 * holding the first n of old. */
void *kt_wire_grow(struct kt_arena *a, void *old, size_t n, size_t newcap, size_t size);
/* kt_wire_valid_json: 1 when text is a well-formed JSON object. */
int kt_wire_valid_json(const char *text, size_t len);

/* small int map for block → index translation in streams */
struct kt_wire_imap {
    int *v;
    int cap;
};
int kt_wire_imap_get(const struct kt_wire_imap *m, int key);  /* -1 absent */
int kt_wire_imap_set(struct kt_arena *a, struct kt_wire_imap *m, int key, int val);

/* ---- stream state shared by both formats ---- */
struct kt_stream_dec {
    enum kt_format fmt;
    struct kt_arena *a;
    int started;
    int next_block;              /* OpenAI: next canonical block index */
    int open_block;              /* OpenAI: block receiving deltas, -1 none */
    int open_kind;               /* OpenAI: 0 text, 1 thinking, 2 tool */
    struct kt_wire_imap tools;   /* OpenAI: tool_calls[].index → block */
    int finished;
};

struct kt_stream_enc {
    enum kt_format fmt;
    struct kt_arena *a;
    struct kt_stream_opts opts;
    char *id, *model;
    long created;
    int started, finished, done;
    enum kt_finish finish;
    char *stop_sequence;
    struct kt_usage usage;
    /* Anthropic client: blocks are renumbered 0.. in output order */
    int open_in, open_out;
    enum kt_part_type open_type;
    int next_out;
    struct kt_wire_imap out_of;
    /* OpenAI client: block → tool_calls index */
    struct kt_wire_imap tool_of;
    int ntools;
    /* OpenAI client: `data: {"id":..,"object":..,"created":..,"model":..`,
     * the same for every chunk of a stream: built once */
    char *chunk_head;
    size_t chunk_head_len;
};

/* Optional typed members of a request object: absent leaves *out alone;
 * the wrong type is a KT_EINVAL naming the key. has (may be NULL) is set to
 * 1 when the number was present. */
int kt_wire_get_number(const struct kt_json *root, const char *key, double *out, int *has,
                       struct kt_err *err);
int kt_wire_get_int(const struct kt_json *root, const char *key, long *out, struct kt_err *err);  /* >= 0 */
int kt_wire_get_bool(const struct kt_json *root, const char *key, int *out, struct kt_err *err);

/* kt_wire_enc_begin: the first event of a client stream fixes its id (the
 * upstream's, else id_prefix + random hex) and model. 1 when this call
 * started the stream, 0 when it had started already. */
int kt_wire_enc_begin(struct kt_stream_enc *e, const struct kt_stream_ev *ev, const char *id_prefix);

/* ---- per-format entry points ---- */
int kt_wire_openai_decode_request(const struct kt_json *root, struct kt_arena *a,
                                  struct kt_request *req, struct kt_err *err);
int kt_wire_openai_encode_request(const struct kt_request *req, const char *model,
                                  struct kt_buf *out);
int kt_wire_openai_decode_response(const struct kt_json *root, struct kt_arena *a,
                                   struct kt_response *resp, struct kt_err *err);
int kt_wire_openai_encode_response(const struct kt_response *resp, struct kt_buf *out);
int kt_wire_openai_dec_event(struct kt_stream_dec *d, const char *event, const char *data,
                             size_t len, kt_stream_ev_fn cb, void *ud, struct kt_err *err);
int kt_wire_openai_enc_event(struct kt_stream_enc *e, const struct kt_stream_ev *ev,
                             struct kt_buf *out);
int kt_wire_openai_error_body(const struct kt_ir_error *e, struct kt_buf *out);

int kt_wire_anthropic_decode_request(const struct kt_json *root, struct kt_arena *a,
                                     struct kt_request *req, struct kt_err *err);
int kt_wire_anthropic_encode_request(const struct kt_request *req, const char *model,
                                     struct kt_buf *out);
int kt_wire_anthropic_decode_response(const struct kt_json *root, struct kt_arena *a,
                                      struct kt_response *resp, struct kt_err *err);
int kt_wire_anthropic_encode_response(const struct kt_response *resp, struct kt_buf *out);
int kt_wire_anthropic_dec_event(struct kt_stream_dec *d, const char *event, const char *data,
                                size_t len, kt_stream_ev_fn cb, void *ud, struct kt_err *err);
int kt_wire_anthropic_enc_event(struct kt_stream_enc *e, const struct kt_stream_ev *ev,
                                struct kt_buf *out);
int kt_wire_anthropic_error_body(const struct kt_ir_error *e, struct kt_buf *out);

/* error type tables (wire.c) */
const char *kt_wire_err_openai_type(enum kt_ir_err_type t);
const char *kt_wire_err_anthropic_type(enum kt_ir_err_type t);
int kt_wire_err_anthropic_parse(const char *type, enum kt_ir_err_type *out);
/* usage decoding shared by stream and response decoders */
void kt_wire_usage_unset(struct kt_usage *u);

#endif

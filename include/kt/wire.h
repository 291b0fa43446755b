/* wire.h: OpenAI Chat Completions and Anthropic Messages codecs to and from
 * the IR (ir.h): requests, responses, errors and streams. A pure library:
 * no sockets, no policy. Translation is always decode + encode.
 * See docs/translation.md for every field mapping. */
#ifndef KT_WIRE_H
#define KT_WIRE_H

#include <stddef.h>

#include "kt/arena.h"
#include "kt/buf.h"
#include "kt/err.h"
#include "kt/format.h"
#include "kt/ir.h"

/* Anthropic requires max_tokens; used when the OpenAI client sent none. */
#define KT_WIRE_DEFAULT_MAX_TOKENS 4096

/* Requests. decode: bad client input → KT_EINVAL with a message meant for
 * the client (the caller answers 400 in the client's format). body must
 * outlive req (req->body points at it, for the pass-through fast path). */
int kt_wire_decode_request(enum kt_format fmt, const char *body, size_t len,
                           struct kt_arena *a, struct kt_request *req, struct kt_err *err);
/* encode: model overrides req->model when non-NULL. When fmt equals the
 * source format and !req->modified, the original bytes are sent (with only
 * "model" replaced if it differs). */
int kt_wire_encode_request(enum kt_format fmt, const struct kt_request *req,
                           const char *model, struct kt_buf *out);

/* Responses (non-streaming). */
int kt_wire_decode_response(enum kt_format fmt, const char *body, size_t len,
                            struct kt_arena *a, struct kt_response *resp, struct kt_err *err);
int kt_wire_encode_response(enum kt_format fmt, const struct kt_response *resp,
                            struct kt_buf *out);

/* Errors. decode never fails: an unparsable body still gives an error typed
 * from the status. encode sets *http_status_out to the status to send. */
int kt_wire_decode_error(enum kt_format fmt, int http_status, const char *body, size_t len,
                         struct kt_arena *a, struct kt_ir_error *e);
int kt_wire_encode_error(enum kt_format fmt, const struct kt_ir_error *e,
                         struct kt_buf *out, int *http_status_out);
/* kt_wire_error_from_status: the canonical type for an upstream HTTP status. */
enum kt_ir_err_type kt_wire_error_type_for_status(int http_status);

/* ---- streaming ----
 * Decoder: SSE events of the upstream format → IR stream events (callback).
 * Encoder: IR stream events → SSE bytes of the client format.
 * Translator: both, with an optional hook between them (response policies). */
typedef int (*kt_stream_ev_fn)(void *ud, struct kt_stream_ev *ev);

struct kt_stream_dec;
struct kt_stream_enc;
struct kt_stream_xlate;

struct kt_stream_opts {
    int include_usage;          /* OpenAI client asked stream_options.include_usage */
    int emit_reasoning;         /* OpenAI client: thinking as delta.reasoning_content */
    const char *model;          /* model name shown to the client; NULL = upstream's */
    kt_stream_ev_fn hook;       /* called on each event before encoding; may rewrite
                                   text; return < 0 to abort the stream */
    void *hook_ud;
};

struct kt_stream_dec *kt_stream_dec_new(struct kt_arena *a, enum kt_format fmt);
/* event may be NULL (no "event:" line). Returns 0, or < 0 with err filled on
 * malformed upstream data or when cb fails. */
int kt_stream_dec_feed(struct kt_stream_dec *d, const char *event, const char *data,
                       size_t len, kt_stream_ev_fn cb, void *ud, struct kt_err *err);

struct kt_stream_enc *kt_stream_enc_new(struct kt_arena *a, enum kt_format fmt,
                                        const struct kt_stream_opts *opts);
int kt_stream_enc_event(struct kt_stream_enc *e, const struct kt_stream_ev *ev,
                        struct kt_buf *out);
/* finish: close the client stream properly. KT_EIO (after writing an error
 * event) when the upstream never finished the message. */
int kt_stream_enc_finish(struct kt_stream_enc *e, struct kt_buf *out);
int kt_stream_enc_error(struct kt_stream_enc *e, const struct kt_ir_error *err,
                        struct kt_buf *out);
int kt_stream_enc_done(const struct kt_stream_enc *e);      /* 1 once fully closed */

struct kt_stream_xlate *kt_stream_xlate_new(struct kt_arena *a, enum kt_format upstream_fmt,
                                            enum kt_format client_fmt,
                                            const struct kt_stream_opts *opts);
int kt_stream_xlate_feed_event(struct kt_stream_xlate *x, const char *event,
                               const char *data, size_t len, struct kt_buf *out);
/* inject: from inside the hook only, encode an extra event into the output
 * being built, ahead of the event the hook was given. A redactor holding a
 * carry-over window flushes it this way on BLOCK_STOP, FINISH or DONE. */
int kt_stream_xlate_inject(struct kt_stream_xlate *x, const struct kt_stream_ev *ev);
int kt_stream_xlate_finish(struct kt_stream_xlate *x, struct kt_buf *out);
int kt_stream_xlate_error(struct kt_stream_xlate *x, const struct kt_ir_error *e,
                          struct kt_buf *out);
/* Usage and finish seen so far (for audit and metrics). */
const struct kt_usage *kt_stream_xlate_usage(const struct kt_stream_xlate *x);
enum kt_finish kt_stream_xlate_finish_reason(const struct kt_stream_xlate *x);
const struct kt_err *kt_stream_xlate_last_err(const struct kt_stream_xlate *x);

#endif

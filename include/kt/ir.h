/* ir.h: the canonical intermediate representation (IR) of a request, a
 * response, a stream event and an error. Every wire format decodes into it
 * and encodes from it; policies see only the IR. All IR memory comes from a
 * per-request struct kt_arena (one free per request). Strings are
 * NUL-terminated and also carry a length where they may hold NUL bytes. */
#ifndef KT_IR_H
#define KT_IR_H

#include <stddef.h>

#include "kt/arena.h"
#include "kt/format.h"

enum kt_role { KT_ROLE_USER, KT_ROLE_ASSISTANT, KT_ROLE_TOOL };

enum kt_part_type {
    KT_PART_TEXT,
    KT_PART_IMAGE,              /* base64 data + media type, or a URL */
    KT_PART_TOOL_USE,           /* assistant's call: id, name, input JSON */
    KT_PART_TOOL_RESULT,        /* tool_use_id, text content, is_error */
    KT_PART_THINKING,           /* text + signature (Anthropic) */
    KT_PART_REDACTED_THINKING,  /* opaque data (Anthropic) */
    KT_PART_RAW,                /* a block this IR does not model: raw JSON,
                                   re-emitted only to its own format */
};

struct kt_part {
    enum kt_part_type type;
    char *text;                 /* TEXT, THINKING, TOOL_RESULT content */
    size_t len;
    /* IMAGE */
    int is_url;                 /* 1: data is a URL; 0: data is base64 */
    char *media_type;           /* "image/png"; NULL for URLs */
    char *data;                 /* base64 or URL; REDACTED_THINKING data */
    /* TOOL_USE */
    char *id, *name;
    char *input_json;           /* JSON text (an object when well-formed) */
    /* TOOL_RESULT */
    char *tool_use_id;
    int is_error;
    /* THINKING */
    char *signature;
    /* RAW */
    char *raw_json;
    enum kt_format raw_fmt;
};

struct kt_msg {
    enum kt_role role;
    struct kt_part *parts;
    size_t nparts;
};

struct kt_tool {
    char *name, *description;
    char *schema_json;          /* JSON Schema object text; NULL = none */
    char *raw_json;             /* non-function tools (Anthropic server tools) */
    enum kt_format raw_fmt;
};

enum kt_tool_choice { KT_TC_UNSET, KT_TC_AUTO, KT_TC_NONE, KT_TC_REQUIRED, KT_TC_NAMED };

struct kt_request {
    enum kt_format src_fmt;     /* format it was decoded from */
    const char *body;           /* original bytes (not copied: caller keeps them) */
    size_t body_len;
    int modified;               /* set when anything changed after decode */

    char *model;                /* NULL when the client sent none */
    struct kt_part *system;     /* TEXT parts, in order */
    size_t nsystem;
    struct kt_msg *msgs;
    size_t nmsgs;
    struct kt_tool *tools;
    size_t ntools;
    enum kt_tool_choice tool_choice;
    char *tool_choice_name;     /* KT_TC_NAMED */
    int parallel_tool_calls;    /* -1 unset, 0, 1 */
    long max_tokens;            /* 0 = unset */
    int has_temperature, has_top_p;
    double temperature, top_p;
    long top_k;                 /* -1 = unset */
    char **stop;
    size_t nstop;
    int stream;
    int include_usage;          /* OpenAI stream_options.include_usage */
    char *user;                 /* OpenAI user / Anthropic metadata.user_id */
    long thinking_budget;       /* 0 = extended thinking off */
};

enum kt_finish {
    KT_FINISH_NONE,             /* not known (yet) */
    KT_FINISH_STOP,             /* end_turn / stop */
    KT_FINISH_STOP_SEQUENCE,    /* a stop sequence matched */
    KT_FINISH_LENGTH,           /* max_tokens / length */
    KT_FINISH_TOOL_CALLS,       /* tool_use / tool_calls */
    KT_FINISH_CONTENT_FILTER,   /* refusal / content_filter */
    KT_FINISH_PAUSE,            /* Anthropic pause_turn */
};

/* Token usage. input excludes cached tokens (Anthropic's meaning); OpenAI
 * prompt_tokens = input + cache_read + cache_creation. In stream events a
 * field is -1 when that event does not report it. */
struct kt_usage {
    long input, output, cache_read, cache_creation;
};

struct kt_response {
    enum kt_format src_fmt;
    const char *body;
    size_t body_len;
    int modified;
    char *id, *model;
    long created;               /* unix seconds; 0 = now */
    struct kt_part *parts;
    size_t nparts;
    enum kt_finish finish;
    char *stop_sequence;
    struct kt_usage usage;
};

enum kt_ir_err_type {
    KT_IRE_INVALID_REQUEST, KT_IRE_AUTHENTICATION, KT_IRE_PERMISSION,
    KT_IRE_NOT_FOUND, KT_IRE_REQUEST_TOO_LARGE, KT_IRE_RATE_LIMIT,
    KT_IRE_API_ERROR, KT_IRE_OVERLOADED, KT_IRE_TIMEOUT, KT_IRE_POLICY_VIOLATION,
};

struct kt_ir_error {
    int http_status;            /* 0 = the type's default */
    enum kt_ir_err_type type;
    char *message;
    char *code;                 /* OpenAI "code" (e.g. the policy name); may be NULL */
    long retry_after;           /* seconds; -1 unknown (the lead fills it from headers) */
};

enum kt_ev_type {
    KT_EV_MESSAGE_START,        /* id, model, usage (input side) */
    KT_EV_TEXT_DELTA,           /* index, text */
    KT_EV_TOOL_CALL_START,      /* index, id, name */
    KT_EV_TOOL_ARGS_DELTA,      /* index, text = JSON fragment */
    KT_EV_THINKING_DELTA,       /* index, text */
    KT_EV_SIGNATURE_DELTA,      /* index, text = signature */
    KT_EV_BLOCK_STOP,           /* index */
    KT_EV_USAGE,                /* usage (fields -1 when absent) */
    KT_EV_FINISH,               /* finish, stop_sequence, usage */
    KT_EV_DONE,                 /* the upstream message is complete */
    KT_EV_ERROR,                /* error */
};

/* One stream event. Pointers are valid only during the callback that
 * receives the event; a policy may point text/len at its own memory to
 * replace a delta (len 0 drops it). index is the canonical content block. */
struct kt_stream_ev {
    enum kt_ev_type type;
    int index;
    const char *id, *model, *name;
    const char *text;
    size_t len;
    enum kt_finish finish;
    const char *stop_sequence;
    struct kt_usage usage;
    const struct kt_ir_error *error;
};

/* ---- helpers ---- */

const char *kt_format_name(enum kt_format f);              /* "openai" */
const char *kt_finish_name(enum kt_finish f);              /* "stop", "length"... */
const char *kt_ir_err_type_name(enum kt_ir_err_type t);    /* "rate_limit" */

/* kt_usage_merge: copy into dst every field of src that is >= 0. */
void kt_usage_merge(struct kt_usage *dst, const struct kt_usage *src);
long kt_usage_prompt_total(const struct kt_usage *u);      /* input + cache */

/* Text access for policies. The callback sees each text (system, message
 * text, tool result content, assistant text; not tool inputs) with its
 * place. To rewrite it, set *repl and *repl_len (memory owned by the callback,
 * copied into the arena); that sets `modified`. Return < 0 to stop. */
enum kt_text_place { KT_TEXT_SYSTEM, KT_TEXT_MESSAGE, KT_TEXT_TOOL_RESULT, KT_TEXT_THINKING };
typedef int (*kt_text_fn)(void *ud, enum kt_text_place place, enum kt_role role,
                          const char *text, size_t len,
                          const char **repl, size_t *repl_len);
int kt_ir_request_texts(struct kt_request *req, struct kt_arena *a, kt_text_fn fn, void *ud);
int kt_ir_response_texts(struct kt_response *resp, struct kt_arena *a, kt_text_fn fn, void *ud);

/* kt_ir_error_make: fill e with a message (copied into a). */
void kt_ir_error_make(struct kt_ir_error *e, struct kt_arena *a, enum kt_ir_err_type type,
                      int http_status, const char *code, const char *message);

#endif

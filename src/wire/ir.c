/* ir.c: helpers on the canonical IR (see ir.h): names, usage arithmetic and
 * the text walk policies use to read and rewrite requests and responses.
 * Decoding and encoding live in the per-format codecs. */
#include <string.h>

#include "kt/ir.h"

static const char *const format_names[] = {
    [KT_FMT_OPENAI] = "openai",
    [KT_FMT_ANTHROPIC] = "anthropic",
};

static const char *const finish_names[] = {
    [KT_FINISH_NONE] = "none",
    [KT_FINISH_STOP] = "stop",
    [KT_FINISH_STOP_SEQUENCE] = "stop_sequence",
    [KT_FINISH_LENGTH] = "length",
    [KT_FINISH_TOOL_CALLS] = "tool_calls",
    [KT_FINISH_CONTENT_FILTER] = "content_filter",
    [KT_FINISH_PAUSE] = "pause",
};

static const char *const err_type_names[] = {
    [KT_IRE_INVALID_REQUEST] = "invalid_request",
    [KT_IRE_AUTHENTICATION] = "authentication",
    [KT_IRE_PERMISSION] = "permission",
    [KT_IRE_NOT_FOUND] = "not_found",
    [KT_IRE_REQUEST_TOO_LARGE] = "request_too_large",
    [KT_IRE_RATE_LIMIT] = "rate_limit",
    [KT_IRE_API_ERROR] = "api_error",
    [KT_IRE_OVERLOADED] = "overloaded",
    [KT_IRE_TIMEOUT] = "timeout",
    [KT_IRE_POLICY_VIOLATION] = "policy_violation",
};

const char *kt_format_name(enum kt_format f)
{
    return (unsigned)f < sizeof format_names / sizeof *format_names ? format_names[f] : "?";
}

const char *kt_finish_name(enum kt_finish f)
{
    return (unsigned)f < sizeof finish_names / sizeof *finish_names ? finish_names[f] : "?";
}

const char *kt_ir_err_type_name(enum kt_ir_err_type t)
{
    return (unsigned)t < sizeof err_type_names / sizeof *err_type_names ? err_type_names[t] : "?";
}

void kt_usage_merge(struct kt_usage *dst, const struct kt_usage *src)
{
    if (src->input >= 0)
        dst->input = src->input;
    if (src->output >= 0)
        dst->output = src->output;
    if (src->cache_read >= 0)
        dst->cache_read = src->cache_read;
    if (src->cache_creation >= 0)
        dst->cache_creation = src->cache_creation;
}

long kt_usage_prompt_total(const struct kt_usage *u)
{
    long t = 0;
    if (u->input > 0)
        t += u->input;
    if (u->cache_read > 0)
        t += u->cache_read;
    if (u->cache_creation > 0)
        t += u->cache_creation;
    return t;
}

/* Visit one text slot; copy a replacement into the arena. */
static int visit(struct kt_arena *a, int *modified, kt_text_fn fn, void *ud,
                 enum kt_text_place place, enum kt_role role, char **text, size_t *len)
{
    const char *repl = NULL;
    size_t rlen = 0;
    int rc = fn(ud, place, role, *text ? *text : "", *text ? *len : 0, &repl, &rlen);
    if (rc < 0)
        return rc;
    if (repl) {
        char *copy = kt_arena_strndup(a, repl, rlen);
        if (copy == NULL)
            return -2;   /* KT_ENOMEM */
        *text = copy;
        *len = rlen;
        *modified = 1;
    }
    return 0;
}

static int visit_parts(struct kt_arena *a, int *modified, kt_text_fn fn, void *ud,
                       enum kt_role role, struct kt_part *parts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct kt_part *p = &parts[i];
        enum kt_text_place place;
        switch (p->type) {
        case KT_PART_TEXT: place = KT_TEXT_MESSAGE; break;
        case KT_PART_TOOL_RESULT: place = KT_TEXT_TOOL_RESULT; break;
        case KT_PART_THINKING: place = KT_TEXT_THINKING; break;
        default: continue;
        }
        int rc = visit(a, modified, fn, ud, place, role, &p->text, &p->len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int kt_ir_request_texts(struct kt_request *req, struct kt_arena *a, kt_text_fn fn, void *ud)
{
    for (size_t i = 0; i < req->nsystem; i++) {
        int rc = visit(a, &req->modified, fn, ud, KT_TEXT_SYSTEM, KT_ROLE_USER,
                       &req->system[i].text, &req->system[i].len);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < req->nmsgs; i++) {
        int rc = visit_parts(a, &req->modified, fn, ud, req->msgs[i].role,
                             req->msgs[i].parts, req->msgs[i].nparts);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int kt_ir_response_texts(struct kt_response *resp, struct kt_arena *a, kt_text_fn fn, void *ud)
{
    return visit_parts(a, &resp->modified, fn, ud, KT_ROLE_ASSISTANT, resp->parts, resp->nparts);
}

void kt_ir_error_make(struct kt_ir_error *e, struct kt_arena *a, enum kt_ir_err_type type,
                      int http_status, const char *code, const char *message)
{
    memset(e, 0, sizeof *e);
    e->type = type;
    e->http_status = http_status;
    e->retry_after = -1;
    e->code = code ? kt_arena_strdup(a, code) : NULL;
    e->message = kt_arena_strdup(a, message ? message : "");
}

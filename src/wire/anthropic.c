/* anthropic.c: the Anthropic Messages codec: request, response, error and
 * stream events to and from the IR. Blocks the IR does not model (documents,
 * server tool results...) survive as RAW parts for Anthropic targets only.
 * Mapping decisions are in docs/translation.md. */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "kt/util.h"
#include "wire_int.h"

#define BAD(...) kt_err_set(err, KT_EINVAL, __VA_ARGS__)

/* ---- decoding ---- */

static int decode_image(struct kt_arena *a, const struct kt_json *blk, struct kt_part *p,
                        const char *where, struct kt_err *err)
{
    const struct kt_json *src = kt_wire_get(blk, "source", KT_JSON_OBJECT);
    const struct kt_json *type = kt_wire_get(src, "type", KT_JSON_STRING);
    p->type = KT_PART_IMAGE;
    if (kt_json_streq(type, "base64")) {
        p->media_type = kt_wire_str(a, kt_wire_get(src, "media_type", KT_JSON_STRING), NULL);
        p->data = kt_wire_str(a, kt_wire_get(src, "data", KT_JSON_STRING), NULL);
        if (p->media_type == NULL || p->data == NULL)
            return BAD("%s.source: base64 images need media_type and data", where);
        return 0;
    }
    if (kt_json_streq(type, "url")) {
        p->is_url = 1;
        p->data = kt_wire_str(a, kt_wire_get(src, "url", KT_JSON_STRING), NULL);
        if (p->data == NULL)
            return BAD("%s.source.url: expected a string", where);
        return 0;
    }
    return BAD("%s.source.type: expected \"base64\" or \"url\"", where);
}

/* tool_result content: a string or text/image blocks; the IR keeps text. */
static int decode_tool_result(struct kt_arena *a, const struct kt_json *blk, struct kt_part *p,
                              const char *where, struct kt_err *err)
{
    p->type = KT_PART_TOOL_RESULT;
    p->tool_use_id = kt_wire_str(a, kt_wire_get(blk, "tool_use_id", KT_JSON_STRING), NULL);
    if (p->tool_use_id == NULL)
        return BAD("%s.tool_use_id: required", where);
    p->is_error = kt_json_bool(kt_wire_get(blk, "is_error", KT_JSON_BOOL));
    const struct kt_json *c = kt_wire_member(blk, "content");
    if (c == NULL) {
        p->text = kt_arena_strdup(a, "");
        return 0;
    }
    if (c->type == KT_JSON_STRING) {
        p->text = kt_wire_str(a, c, &p->len);
        return 0;
    }
    if (c->type != KT_JSON_ARRAY)
        return BAD("%s.content: expected a string or an array of blocks", where);
    /* text blocks joined with "\n": size it first, then copy once */
    size_t n = kt_json_len(c), total = 0;
    for (size_t i = 0; i < n; i++) {
        const struct kt_json *t = kt_wire_get(kt_json_at(c, i), "text", KT_JSON_STRING);
        if (t)
            total += t->n + 1;
    }
    char *o = kt_arena_alloc(a, total + 1), *q = o;
    if (o == NULL)
        return KT_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct kt_json *t = kt_wire_get(kt_json_at(c, i), "text", KT_JSON_STRING);
        if (t == NULL)
            continue;
        if (q != o)
            *q++ = '\n';
        memcpy(q, t->u.s, t->n);
        q += t->n;
    }
    *q = '\0';
    p->text = o;
    p->len = (size_t)(q - o);
    return 0;
}

static int decode_block(struct kt_arena *a, const struct kt_json *blk, struct kt_part *p,
                        const char *where, struct kt_err *err)
{
    const struct kt_json *type = kt_wire_get(blk, "type", KT_JSON_STRING);
    if (type == NULL)
        return BAD("%s: expected a content block with a string \"type\"", where);
    if (kt_json_streq(type, "text")) {
        const struct kt_json *t = kt_wire_get(blk, "text", KT_JSON_STRING);
        if (t == NULL)
            return BAD("%s.text: expected a string", where);
        p->type = KT_PART_TEXT;
        p->text = kt_wire_str(a, t, &p->len);
        return 0;
    }
    if (kt_json_streq(type, "image"))
        return decode_image(a, blk, p, where, err);
    if (kt_json_streq(type, "tool_use")) {
        p->type = KT_PART_TOOL_USE;
        p->id = kt_wire_str(a, kt_wire_get(blk, "id", KT_JSON_STRING), NULL);
        p->name = kt_wire_str(a, kt_wire_get(blk, "name", KT_JSON_STRING), NULL);
        const struct kt_json *in = kt_wire_get(blk, "input", KT_JSON_OBJECT);
        if (p->id == NULL || p->name == NULL)
            return BAD("%s: tool_use needs id and name", where);
        p->input_json = in ? kt_wire_json_text(a, in) : kt_arena_strdup(a, "{}");
        return 0;
    }
    if (kt_json_streq(type, "tool_result"))
        return decode_tool_result(a, blk, p, where, err);
    if (kt_json_streq(type, "thinking")) {
        p->type = KT_PART_THINKING;
        p->text = kt_wire_str(a, kt_wire_get(blk, "thinking", KT_JSON_STRING), &p->len);
        p->signature = kt_wire_str(a, kt_wire_get(blk, "signature", KT_JSON_STRING), NULL);
        if (p->text == NULL)
            p->text = kt_arena_strdup(a, "");
        return 0;
    }
    if (kt_json_streq(type, "redacted_thinking")) {
        p->type = KT_PART_REDACTED_THINKING;
        p->data = kt_wire_str(a, kt_wire_get(blk, "data", KT_JSON_STRING), NULL);
        return 0;
    }
    /* document, search_result, server_tool_use, web_search_tool_result...:
     * kept verbatim for Anthropic targets */
    p->type = KT_PART_RAW;
    p->raw_fmt = KT_FMT_ANTHROPIC;
    p->raw_json = kt_wire_json_text(a, blk);
    return 0;
}

/* content: a string or an array of blocks. */
static int decode_blocks(struct kt_arena *a, const struct kt_json *c, struct kt_part **parts,
                         size_t *nparts, const char *where, struct kt_err *err)
{
    if (c->type == KT_JSON_STRING) {
        struct kt_part *p = kt_arena_alloc(a, sizeof *p);
        if (p == NULL)
            return KT_ENOMEM;
        p->type = KT_PART_TEXT;
        p->text = kt_wire_str(a, c, &p->len);
        *parts = p;
        *nparts = 1;
        return 0;
    }
    if (c->type != KT_JSON_ARRAY)
        return BAD("%s: expected a string or an array of content blocks", where);
    size_t n = kt_json_len(c);
    *parts = kt_arena_alloc(a, (n ? n : 1) * sizeof **parts);
    if (*parts == NULL)
        return KT_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char w[96];
        snprintf(w, sizeof w, "%s[%zu]", where, i);
        int rc = decode_block(a, kt_json_at(c, i), &(*parts)[i], w, err);
        if (rc)
            return rc;
    }
    *nparts = n;
    return 0;
}

static int decode_tools(struct kt_arena *a, const struct kt_json *tools, struct kt_request *req,
                        struct kt_err *err)
{
    size_t n = kt_json_len(tools);
    req->tools = kt_arena_alloc(a, (n ? n : 1) * sizeof *req->tools);
    if (req->tools == NULL)
        return KT_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct kt_json *t = kt_json_at(tools, i);
        struct kt_tool *tool = &req->tools[req->ntools++];
        const struct kt_json *type = kt_wire_get(t, "type", KT_JSON_STRING);
        const struct kt_json *schema = kt_wire_get(t, "input_schema", KT_JSON_OBJECT);
        tool->name = kt_wire_str(a, kt_wire_get(t, "name", KT_JSON_STRING), NULL);
        if (tool->name == NULL)
            return BAD("tools[%zu].name: required", i);
        if ((type && !kt_json_streq(type, "custom")) || schema == NULL) {
            /* server and versioned tools (web_search_..., bash_...) */
            tool->raw_json = kt_wire_json_text(a, t);
            tool->raw_fmt = KT_FMT_ANTHROPIC;
            continue;
        }
        tool->description = kt_wire_str(a, kt_wire_get(t, "description", KT_JSON_STRING), NULL);
        tool->schema_json = kt_wire_json_text(a, schema);
    }
    return 0;
}

static const struct { const char *s; enum kt_tool_choice v; } tc_table[] = {
    { "auto", KT_TC_AUTO }, { "none", KT_TC_NONE }, { "any", KT_TC_REQUIRED }, { "tool", KT_TC_NAMED },
};

static int decode_tool_choice(struct kt_arena *a, const struct kt_json *tc, struct kt_request *req,
                              struct kt_err *err)
{
    const struct kt_json *type = kt_wire_get(tc, "type", KT_JSON_STRING);
    for (size_t i = 0; type && i < sizeof tc_table / sizeof *tc_table; i++) {
        if (!kt_json_streq(type, tc_table[i].s))
            continue;
        req->tool_choice = tc_table[i].v;
        if (req->tool_choice == KT_TC_NAMED) {
            req->tool_choice_name = kt_wire_str(a, kt_wire_get(tc, "name", KT_JSON_STRING), NULL);
            if (req->tool_choice_name == NULL)
                return BAD("tool_choice.name: required when type is \"tool\"");
        }
        const struct kt_json *dp = kt_wire_get(tc, "disable_parallel_tool_use", KT_JSON_BOOL);
        if (dp)
            req->parallel_tool_calls = !kt_json_bool(dp);
        return 0;
    }
    return BAD("tool_choice.type: expected \"auto\", \"any\", \"tool\" or \"none\"");
}

int kt_wire_anthropic_decode_request(const struct kt_json *root, struct kt_arena *a,
                                     struct kt_request *req, struct kt_err *err)
{
    int rc;
    const struct kt_json *v = NULL, *msgs = NULL;
    if ((rc = kt_wire_decode_head(root, a, req, &msgs, err)))
        return rc;
    size_t n = kt_json_len(msgs);
    if ((v = kt_wire_member(root, "system"))) {
        if ((rc = decode_blocks(a, v, &req->system, &req->nsystem, "system", err)))
            return rc;
        for (size_t i = 0; i < req->nsystem; i++)
            if (req->system[i].type != KT_PART_TEXT)
                return BAD("system[%zu]: only text blocks are allowed", i);
    }
    req->msgs = kt_arena_alloc(a, n * sizeof *req->msgs);
    if (req->msgs == NULL)
        return KT_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct kt_json *m = kt_json_at(msgs, i);
        const struct kt_json *role = kt_wire_get(m, "role", KT_JSON_STRING);
        struct kt_msg *msg = &req->msgs[i];
        if (kt_json_streq(role, "user"))
            msg->role = KT_ROLE_USER;
        else if (kt_json_streq(role, "assistant"))
            msg->role = KT_ROLE_ASSISTANT;
        else
            return BAD("messages[%zu].role: expected \"user\" or \"assistant\"", i);
        const struct kt_json *c = kt_wire_member(m, "content");
        if (c == NULL)
            return BAD("messages[%zu].content: required", i);
        char where[64];
        snprintf(where, sizeof where, "messages[%zu].content", i);
        if ((rc = decode_blocks(a, c, &msg->parts, &msg->nparts, where, err)))
            return rc;
    }
    req->nmsgs = n;
    if ((rc = kt_wire_get_int(root, "max_tokens", &req->max_tokens, err)) ||
        (rc = kt_wire_get_number(root, "temperature", &req->temperature, &req->has_temperature, err)) ||
        (rc = kt_wire_get_number(root, "top_p", &req->top_p, &req->has_top_p, err)) ||
        (rc = kt_wire_get_int(root, "top_k", &req->top_k, err)))
        return rc;
    if ((v = kt_wire_member(root, "stream"))) {
        if (v->type != KT_JSON_BOOL)
            return BAD("stream: expected true or false");
        req->stream = kt_json_bool(v);
    }
    if ((v = kt_wire_member(root, "stop_sequences"))) {
        if (v->type != KT_JSON_ARRAY)
            return BAD("stop_sequences: expected an array of strings");
        size_t ns = kt_json_len(v);
        req->stop = kt_arena_alloc(a, (ns ? ns : 1) * sizeof *req->stop);
        for (size_t i = 0; i < ns; i++) {
            const struct kt_json *s = kt_json_at(v, i);
            if (s->type != KT_JSON_STRING)
                return BAD("stop_sequences[%zu]: expected a string", i);
            req->stop[req->nstop++] = kt_wire_str(a, s, NULL);
        }
    }
    if ((v = kt_wire_member(root, "tools"))) {
        if (v->type != KT_JSON_ARRAY)
            return BAD("tools: expected an array");
        if ((rc = decode_tools(a, v, req, err)))
            return rc;
    }
    const struct kt_json *tc = kt_wire_get(root, "tool_choice", KT_JSON_OBJECT);
    if (tc && (rc = decode_tool_choice(a, tc, req, err)))
        return rc;
    const struct kt_json *md = kt_wire_get(root, "metadata", KT_JSON_OBJECT);
    req->user = kt_wire_str(a, kt_wire_get(md, "user_id", KT_JSON_STRING), NULL);
    const struct kt_json *th = kt_wire_get(root, "thinking", KT_JSON_OBJECT);
    if (kt_json_streq(kt_wire_get(th, "type", KT_JSON_STRING), "enabled") &&
        (rc = kt_wire_get_int(th, "budget_tokens", &req->thinking_budget, err)))
        return rc;
    return 0;
}

/* ---- encoding blocks ---- */

static int put_block(struct kt_buf *b, const struct kt_part *p, int *first)
{
    int rc = 0;
    switch (p->type) {
    case KT_PART_TEXT:
        if (p->len == 0)
            return 0;                   /* Anthropic rejects empty text blocks */
        break;
    case KT_PART_THINKING:
        if (p->signature == NULL)
            return 0;                   /* unsigned thinking cannot be sent back */
        break;
    case KT_PART_RAW:
        if (p->raw_fmt != KT_FMT_ANTHROPIC)
            return 0;
        break;
    default:
        break;
    }
    if (!*first)
        rc |= kt_buf_putc(b, ',');
    *first = 0;
    switch (p->type) {
    case KT_PART_TEXT:
        rc |= kt_buf_puts(b, "{\"type\":\"text\",\"text\":");
        rc |= kt_buf_json_str(b, p->text, p->len);
        rc |= kt_buf_putc(b, '}');
        break;
    case KT_PART_IMAGE:
        if (p->is_url) {
            rc |= kt_buf_puts(b, "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":");
            rc |= kt_wire_put_str(b, p->data);
        } else {
            rc |= kt_buf_puts(b, "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":");
            rc |= kt_wire_put_str(b, p->media_type ? p->media_type : "image/png");
            rc |= kt_buf_puts(b, ",\"data\":");
            rc |= kt_wire_put_str(b, p->data ? p->data : "");
        }
        rc |= kt_buf_puts(b, "}}");
        break;
    case KT_PART_TOOL_USE:
        rc |= kt_buf_puts(b, "{\"type\":\"tool_use\",\"id\":");
        rc |= kt_wire_put_str(b, p->id ? p->id : "");
        rc |= kt_buf_puts(b, ",\"name\":");
        rc |= kt_wire_put_str(b, p->name ? p->name : "");
        rc |= kt_buf_puts(b, ",\"input\":");
        rc |= kt_wire_put_json_object(b, p->input_json);
        rc |= kt_buf_putc(b, '}');
        break;
    case KT_PART_TOOL_RESULT:
        rc |= kt_buf_puts(b, "{\"type\":\"tool_result\",\"tool_use_id\":");
        rc |= kt_wire_put_str(b, p->tool_use_id ? p->tool_use_id : "");
        rc |= kt_buf_puts(b, ",\"content\":");
        rc |= kt_buf_json_str(b, p->text ? p->text : "", p->text ? p->len : 0);
        if (p->is_error)
            rc |= kt_buf_puts(b, ",\"is_error\":true");
        rc |= kt_buf_putc(b, '}');
        break;
    case KT_PART_THINKING:
        rc |= kt_buf_puts(b, "{\"type\":\"thinking\",\"thinking\":");
        rc |= kt_buf_json_str(b, p->text ? p->text : "", p->text ? p->len : 0);
        rc |= kt_buf_puts(b, ",\"signature\":");
        rc |= kt_wire_put_str(b, p->signature ? p->signature : "");
        rc |= kt_buf_putc(b, '}');
        break;
    case KT_PART_REDACTED_THINKING:
        rc |= kt_buf_puts(b, "{\"type\":\"redacted_thinking\",\"data\":");
        rc |= kt_wire_put_str(b, p->data ? p->data : "");
        rc |= kt_buf_putc(b, '}');
        break;
    case KT_PART_RAW:
        rc |= kt_buf_puts(b, p->raw_json);
        break;
    }
    return rc;
}

static int is_user_side(enum kt_role r)
{
    return r == KT_ROLE_USER || r == KT_ROLE_TOOL;
}

static int only_space(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

int kt_wire_anthropic_encode_request(const struct kt_request *req, const char *model,
                                     struct kt_buf *out)
{
    const char *m = model ? model : req->model;
    int rc = kt_buf_puts(out, "{\"model\":");
    rc |= kt_wire_put_str(out, m ? m : "");
    /* Anthropic requires max_tokens, and above the thinking budget */
    long max = req->max_tokens > 0 ? req->max_tokens : KT_WIRE_DEFAULT_MAX_TOKENS;
    if (req->max_tokens <= 0 && req->thinking_budget >= max)
        max = req->thinking_budget + KT_WIRE_DEFAULT_MAX_TOKENS;
    rc |= kt_buf_puts(out, ",\"max_tokens\":");
    rc |= kt_buf_put_i64(out, max);
    if (req->nsystem) {
        /* several system/developer messages become one system string, "\n"-joined */
        struct kt_buf sys = {0};
        for (size_t i = 0; i < req->nsystem; i++) {
            if (i)
                rc |= kt_buf_putc(&sys, '\n');
            rc |= kt_buf_append(&sys, req->system[i].text, req->system[i].len);
        }
        rc |= kt_buf_puts(out, ",\"system\":");
        rc |= kt_buf_json_str(out, sys.data ? sys.data : "", sys.len);
        kt_buf_free(&sys);
    }
    rc |= kt_buf_puts(out, ",\"messages\":[");
    /* Consecutive user and tool messages form one user turn (tool_result
     * blocks first, as OpenAI sends tool messages before the next user text). */
    int firstmsg = 1;
    for (size_t i = 0; i < req->nmsgs;) {
        size_t j = i + 1;
        int user = is_user_side(req->msgs[i].role);
        while (j < req->nmsgs && is_user_side(req->msgs[j].role) == user)
            j++;
        size_t mark = out->len;
        rc |= firstmsg ? 0 : kt_buf_putc(out, ',');
        rc |= kt_buf_puts(out, user ? "{\"role\":\"user\",\"content\":["
                                    : "{\"role\":\"assistant\",\"content\":[");
        int first = 1;
        for (size_t k = i; k < j; k++)
            for (size_t q = 0; q < req->msgs[k].nparts; q++)
                rc |= put_block(out, &req->msgs[k].parts[q], &first);
        if (first) {
            out->len = mark;            /* nothing to send: drop the empty turn */
            out->data[mark] = '\0';
        } else {
            rc |= kt_buf_puts(out, "]}");
            firstmsg = 0;
        }
        i = j;
    }
    rc |= kt_buf_putc(out, ']');
    if (req->has_temperature) {
        rc |= kt_buf_puts(out, ",\"temperature\":");
        rc |= kt_wire_put_double(out, req->temperature > 1.0 ? 1.0 : req->temperature);
    }
    if (req->has_top_p) {
        rc |= kt_buf_puts(out, ",\"top_p\":");
        rc |= kt_wire_put_double(out, req->top_p);
    }
    if (req->top_k >= 0) {
        rc |= kt_buf_puts(out, ",\"top_k\":");
        rc |= kt_buf_put_i64(out, req->top_k);
    }
    size_t nstop = 0;
    for (size_t i = 0; i < req->nstop; i++)
        nstop += !only_space(req->stop[i]);
    if (nstop) {
        rc |= kt_buf_puts(out, ",\"stop_sequences\":[");
        int f = 1;
        for (size_t i = 0; i < req->nstop; i++) {
            if (only_space(req->stop[i]))
                continue;               /* Anthropic refuses whitespace-only sequences */
            rc |= f ? 0 : kt_buf_putc(out, ',');
            f = 0;
            rc |= kt_wire_put_str(out, req->stop[i]);
        }
        rc |= kt_buf_putc(out, ']');
    }
    if (req->stream)
        rc |= kt_buf_puts(out, ",\"stream\":true");
    if (req->ntools) {
        rc |= kt_buf_puts(out, ",\"tools\":[");
        for (size_t i = 0; i < req->ntools; i++) {
            const struct kt_tool *t = &req->tools[i];
            if (i)
                rc |= kt_buf_putc(out, ',');
            if (t->raw_json) {
                rc |= kt_buf_puts(out, t->raw_json);
                continue;
            }
            rc |= kt_buf_puts(out, "{\"name\":");
            rc |= kt_wire_put_str(out, t->name);
            if (t->description) {
                rc |= kt_buf_puts(out, ",\"description\":");
                rc |= kt_wire_put_str(out, t->description);
            }
            rc |= kt_buf_puts(out, ",\"input_schema\":");
            if (t->schema_json)
                rc |= kt_wire_put_json_object(out, t->schema_json);
            else
                rc |= kt_buf_puts(out, "{\"type\":\"object\",\"properties\":{}}");
            rc |= kt_buf_putc(out, '}');
        }
        rc |= kt_buf_putc(out, ']');
        enum kt_tool_choice tc = req->tool_choice;
        if (tc == KT_TC_UNSET && req->parallel_tool_calls == 0)
            tc = KT_TC_AUTO;            /* disable_parallel_tool_use needs a type */
        if (tc != KT_TC_UNSET) {
            const char *type = "auto";
            for (size_t i = 0; i < sizeof tc_table / sizeof *tc_table; i++)
                if (tc_table[i].v == tc)
                    type = tc_table[i].s;
            rc |= kt_buf_printf(out, ",\"tool_choice\":{\"type\":\"%s\"", type);
            if (tc == KT_TC_NAMED) {
                rc |= kt_buf_puts(out, ",\"name\":");
                rc |= kt_wire_put_str(out, req->tool_choice_name);
            }
            if (req->parallel_tool_calls == 0 && tc != KT_TC_NONE)
                rc |= kt_buf_puts(out, ",\"disable_parallel_tool_use\":true");
            rc |= kt_buf_putc(out, '}');
        }
    }
    if (req->user) {
        rc |= kt_buf_puts(out, ",\"metadata\":{\"user_id\":");
        rc |= kt_wire_put_str(out, req->user);
        rc |= kt_buf_putc(out, '}');
    }
    if (req->thinking_budget > 0)
        rc |= kt_buf_printf(out, ",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":%ld}",
                            req->thinking_budget);
    rc |= kt_buf_putc(out, '}');
    return rc ? KT_ENOMEM : 0;
}

/* ---- responses ---- */

static const struct kt_finish_name stop_table[] = {
    { "end_turn", KT_FINISH_STOP }, { "stop_sequence", KT_FINISH_STOP_SEQUENCE },
    { "max_tokens", KT_FINISH_LENGTH }, { "tool_use", KT_FINISH_TOOL_CALLS },
    { "refusal", KT_FINISH_CONTENT_FILTER }, { "pause_turn", KT_FINISH_PAUSE },
    { "model_context_window_exceeded", KT_FINISH_LENGTH },
};

/* v: the stop_reason string node, or NULL */
static enum kt_finish stop_parse(const struct kt_json *v)
{
    return kt_wire_finish_parse(stop_table, sizeof stop_table / sizeof *stop_table, v);
}

static const char *stop_str(enum kt_finish f)
{
    for (size_t i = 0; i < sizeof stop_table / sizeof *stop_table; i++)
        if (stop_table[i].f == f)
            return stop_table[i].s;
    return "end_turn";
}

/* fields absent from u stay as they are */
static void usage_decode(const struct kt_json *u, struct kt_usage *out)
{
    static const struct { const char *key; size_t off; } fields[] = {
        { "input_tokens", offsetof(struct kt_usage, input) },
        { "output_tokens", offsetof(struct kt_usage, output) },
        { "cache_read_input_tokens", offsetof(struct kt_usage, cache_read) },
        { "cache_creation_input_tokens", offsetof(struct kt_usage, cache_creation) },
    };
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        const struct kt_json *v = kt_wire_get(u, fields[i].key, KT_JSON_INT);
        if (v)
            *(long *)((char *)out + fields[i].off) = (long)v->u.i;
    }
}

static int put_usage(struct kt_buf *b, const struct kt_usage *u)
{
    int rc = kt_buf_puts(b, "{\"input_tokens\":");
    rc |= kt_buf_put_i64(b, u->input > 0 ? u->input : 0);
    rc |= kt_buf_puts(b, ",\"cache_creation_input_tokens\":");
    rc |= kt_buf_put_i64(b, u->cache_creation > 0 ? u->cache_creation : 0);
    rc |= kt_buf_puts(b, ",\"cache_read_input_tokens\":");
    rc |= kt_buf_put_i64(b, u->cache_read > 0 ? u->cache_read : 0);
    rc |= kt_buf_puts(b, ",\"output_tokens\":");
    rc |= kt_buf_put_i64(b, u->output > 0 ? u->output : 0);
    rc |= kt_buf_putc(b, '}');
    return rc;
}

int kt_wire_anthropic_decode_response(const struct kt_json *root, struct kt_arena *a,
                                      struct kt_response *resp, struct kt_err *err)
{
    const struct kt_json *content = kt_wire_get(root, "content", KT_JSON_ARRAY);
    if (content == NULL)
        return BAD("Anthropic response: content missing");
    resp->id = kt_wire_str(a, kt_wire_get(root, "id", KT_JSON_STRING), NULL);
    resp->model = kt_wire_str(a, kt_wire_get(root, "model", KT_JSON_STRING), NULL);
    int rc = decode_blocks(a, content, &resp->parts, &resp->nparts, "content", err);
    if (rc)
        return rc;
    resp->finish = stop_parse(kt_wire_get(root, "stop_reason", KT_JSON_STRING));
    resp->stop_sequence = kt_wire_str(a, kt_wire_get(root, "stop_sequence", KT_JSON_STRING), NULL);
    usage_decode(kt_wire_get(root, "usage", KT_JSON_OBJECT), &resp->usage);
    return 0;
}

int kt_wire_anthropic_encode_response(const struct kt_response *resp, struct kt_buf *out)
{
    int rc = kt_buf_puts(out, "{\"id\":");
    rc |= kt_wire_put_str(out, resp->id ? resp->id : "msg_kt");
    rc |= kt_buf_puts(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    rc |= kt_wire_put_str(out, resp->model ? resp->model : "");
    rc |= kt_buf_puts(out, ",\"content\":[");
    int first = 1;
    for (size_t i = 0; i < resp->nparts; i++) {
        const struct kt_part *p = &resp->parts[i];
        if (p->type == KT_PART_THINKING && p->signature == NULL) {
            /* reasoning from an OpenAI-compatible server: no signature exists */
            struct kt_part signed_p = *p;
            signed_p.signature = (char *)"";
            rc |= put_block(out, &signed_p, &first);
        } else {
            rc |= put_block(out, p, &first);
        }
    }
    rc |= kt_buf_puts(out, "],\"stop_reason\":\"");
    rc |= kt_buf_puts(out, stop_str(resp->finish));
    rc |= kt_buf_puts(out, "\",\"stop_sequence\":");
    rc |= kt_wire_put_str(out, resp->finish == KT_FINISH_STOP_SEQUENCE ? resp->stop_sequence : NULL);
    rc |= kt_buf_puts(out, ",\"usage\":");
    rc |= put_usage(out, &resp->usage);
    rc |= kt_buf_putc(out, '}');
    return rc ? KT_ENOMEM : 0;
}

int kt_wire_anthropic_error_body(const struct kt_ir_error *e, struct kt_buf *out)
{
    int rc = kt_buf_printf(out, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":",
                           kt_wire_err_anthropic_type(e->type));
    rc |= kt_wire_put_str(out, e->message ? e->message : "");
    rc |= kt_buf_puts(out, "}}");
    return rc ? KT_ENOMEM : 0;
}

/* ---- stream decoding: Anthropic SSE events → IR events ---- */

static int emit(kt_stream_ev_fn cb, void *ud, struct kt_stream_ev *ev, struct kt_err *err)
{
    int rc = cb(ud, ev);
    if (rc < 0 && err && err->code == 0)
        kt_err_set(err, rc, "stream event handler failed");
    return rc;
}

/* a delta event for string s (NUL-terminated copy in the scratch arena t)
 * when it is not empty */
static int str_ev(struct kt_arena *t, kt_stream_ev_fn cb, void *ud, enum kt_ev_type type,
                  int index, const struct kt_json *s, struct kt_err *err)
{
    if (s == NULL || s->n == 0)
        return 0;
    struct kt_stream_ev ev = { .type = type, .index = index };
    ev.text = kt_json_strdup(t, s, &ev.len);
    if (ev.text == NULL)
        return kt_err_set(err, KT_ENOMEM, "out of memory");
    return emit(cb, ud, &ev, err);
}

static int dec_event(struct kt_stream_dec *d, struct kt_arena *t, const struct kt_json *root,
                     kt_stream_ev_fn cb, void *ud, struct kt_err *err)
{
    const struct kt_json *type = kt_wire_get(root, "type", KT_JSON_STRING);
    if (type == NULL)
        return 0;
    int index = kt_wire_int32(kt_wire_get(root, "index", KT_JSON_INT));
    struct kt_stream_ev ev = { .index = index };
    kt_wire_usage_unset(&ev.usage);
    if (kt_json_streq(type, "message_start")) {
        const struct kt_json *m = kt_wire_get(root, "message", KT_JSON_OBJECT);
        ev.type = KT_EV_MESSAGE_START;
        ev.id = kt_json_strdup(t, kt_wire_get(m, "id", KT_JSON_STRING), NULL);
        ev.model = kt_json_strdup(t, kt_wire_get(m, "model", KT_JSON_STRING), NULL);
        usage_decode(kt_wire_get(m, "usage", KT_JSON_OBJECT), &ev.usage);
        d->started = 1;
        return emit(cb, ud, &ev, err);
    }
    if (kt_json_streq(type, "content_block_start")) {
        const struct kt_json *blk = kt_wire_get(root, "content_block", KT_JSON_OBJECT);
        const struct kt_json *bt = kt_wire_get(blk, "type", KT_JSON_STRING);
        if (bt == NULL)
            return 0;
        if (kt_json_streq(bt, "text"))
            return str_ev(t, cb, ud, KT_EV_TEXT_DELTA, index, kt_wire_get(blk, "text", KT_JSON_STRING), err);
        if (kt_json_streq(bt, "thinking"))
            return str_ev(t, cb, ud, KT_EV_THINKING_DELTA, index,
                          kt_wire_get(blk, "thinking", KT_JSON_STRING), err);
        if (kt_json_streq(bt, "tool_use")) {
            ev.type = KT_EV_TOOL_CALL_START;
            ev.id = kt_json_strdup(t, kt_wire_get(blk, "id", KT_JSON_STRING), NULL);
            ev.name = kt_json_strdup(t, kt_wire_get(blk, "name", KT_JSON_STRING), NULL);
            return emit(cb, ud, &ev, err);
        }
        return 0;   /* redacted_thinking, server tool blocks: not streamed through */
    }
    if (kt_json_streq(type, "content_block_delta")) {
        const struct kt_json *dl = kt_wire_get(root, "delta", KT_JSON_OBJECT);
        const struct kt_json *dt = kt_wire_get(dl, "type", KT_JSON_STRING);
        static const struct { const char *type, *field; enum kt_ev_type ev; } deltas[] = {
            { "text_delta", "text", KT_EV_TEXT_DELTA },
            { "input_json_delta", "partial_json", KT_EV_TOOL_ARGS_DELTA },
            { "thinking_delta", "thinking", KT_EV_THINKING_DELTA },
            { "signature_delta", "signature", KT_EV_SIGNATURE_DELTA },
        };
        for (size_t i = 0; dt && i < sizeof deltas / sizeof *deltas; i++)
            if (kt_json_streq(dt, deltas[i].type))
                return str_ev(t, cb, ud, deltas[i].ev, index,
                              kt_wire_get(dl, deltas[i].field, KT_JSON_STRING), err);
        return 0;   /* citations_delta and future kinds */
    }
    if (kt_json_streq(type, "content_block_stop")) {
        ev.type = KT_EV_BLOCK_STOP;
        return emit(cb, ud, &ev, err);
    }
    if (kt_json_streq(type, "message_delta")) {
        const struct kt_json *dl = kt_wire_get(root, "delta", KT_JSON_OBJECT);
        ev.type = KT_EV_FINISH;
        ev.finish = stop_parse(kt_wire_get(dl, "stop_reason", KT_JSON_STRING));
        ev.stop_sequence = kt_json_strdup(t, kt_wire_get(dl, "stop_sequence", KT_JSON_STRING), NULL);
        usage_decode(kt_wire_get(root, "usage", KT_JSON_OBJECT), &ev.usage);
        d->finished = 1;
        return emit(cb, ud, &ev, err);
    }
    if (kt_json_streq(type, "message_stop")) {
        ev.type = KT_EV_DONE;
        return emit(cb, ud, &ev, err);
    }
    if (kt_json_streq(type, "error")) {
        struct kt_ir_error ie = { .http_status = 0, .type = KT_IRE_API_ERROR, .retry_after = -1 };
        const struct kt_json *eo = kt_wire_get(root, "error", KT_JSON_OBJECT);
        kt_wire_err_anthropic_parse(kt_json_strdup(t, kt_wire_get(eo, "type", KT_JSON_STRING), NULL),
                                    &ie.type);
        ie.message = kt_wire_str(d->a, kt_wire_get(eo, "message", KT_JSON_STRING), NULL);
        ev.type = KT_EV_ERROR;
        ev.error = &ie;
        return emit(cb, ud, &ev, err);
    }
    return 0;       /* ping and unknown future events */
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 63));
        o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* fast_text_delta: most events of a text stream have exactly this shape;
 * decode it without building a JSON tree (json-c costs ~10k instructions an
 * event). Anything else, or anything odd inside, returns 0 and the event
 * takes the general path. out holds outcap bytes; *n gets the text length. */
static int fast_text_delta(const char *p, size_t len, int *index, char *out, size_t outcap, size_t *n)
{
    static const char head[] = "{\"type\":\"content_block_delta\",\"index\":";
    static const char mid[] = ",\"delta\":{\"type\":\"text_delta\",\"text\":\"";
    const char *end = p + len;
    if (len < sizeof head + sizeof mid || memcmp(p, head, sizeof head - 1) != 0)
        return 0;
    p += sizeof head - 1;
    int idx = 0, digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 6) {
        idx = idx * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || (size_t)(end - p) < sizeof mid - 1 || memcmp(p, mid, sizeof mid - 1) != 0)
        return 0;
    p += sizeof mid - 1;
    size_t o = 0;
    for (;;) {
        /* plain runs copied whole; the rest judged as kt_json judges it */
        size_t run = kt_json_plain_len(p, (size_t)(end - p));
        if (o + run + 5 > outcap)      /* the run, a UTF-8 sequence and the NUL */
            return 0;
        memcpy(out + o, p, run);
        o += run;
        p += run;
        if (p >= end)
            return 0;
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c >= 0x80) {
            size_t k = kt_json_utf8_len(p, (size_t)(end - p));
            if (k == 0)
                return 0;              /* malformed UTF-8: the general path refuses it */
            memcpy(out + o, p, k);
            o += k;
            p += k;
            continue;
        }
        if (c != '\\')
            return 0;                  /* a control character */
        if (end - p < 2)
            return 0;
        char e = p[1];
        p += 2;
        switch (e) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            if (end - p < 4)
                return 0;
            int cp = hex4(p);
            p += 4;
            if (cp < 0)
                return 0;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                    return 0;
                int lo = hex4(p + 2);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return 0;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return 0;
            }
            o += put_utf8(out + o, (unsigned)cp);
            break;
        }
        default:
            return 0;
        }
    }
    p++;                                   /* the closing quote */
    if (end - p < 2 || p[0] != '}' || p[1] != '}')
        return 0;
    for (p += 2; p < end; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
            return 0;
    *index = idx;
    *n = o;
    return 1;
}

int kt_wire_anthropic_dec_event(struct kt_stream_dec *d, const char *event, const char *data,
                                size_t len, kt_stream_ev_fn cb, void *ud, struct kt_err *err)
{
    char text[4096];
    int index;
    size_t n;
    if (fast_text_delta(data, len, &index, text, sizeof text, &n)) {
        if (n == 0)
            return 0;
        text[n] = '\0';   /* fits: fast_text_delta keeps room for it */
        struct kt_stream_ev ev = { .type = KT_EV_TEXT_DELTA, .index = index, .text = text, .len = n };
        int rc = emit(cb, ud, &ev, err);
        return rc < 0 ? rc : 0;
    }
    const struct kt_json *root;
    struct kt_arena *t = kt_wire_scratch(d->a);
    if (kt_wire_parse(t, data, len, &root, err)) {
        kt_wire_scratch_done(t);
        return kt_err_set(err, KT_EINVAL, "upstream sent a malformed Anthropic stream event%s%s",
                          event ? " " : "", event ? event : "");
    }
    int rc = dec_event(d, t, root, cb, ud, err);
    kt_wire_scratch_done(t);
    return rc < 0 ? rc : 0;
}

/* ---- stream encoding: IR events → Anthropic SSE ---- */

static int ev_head(struct kt_buf *out, const char *name)
{
    int rc = kt_buf_puts(out, "event: ");
    rc |= kt_buf_puts(out, name);
    rc |= kt_buf_puts(out, "\ndata: {\"type\":\"");
    rc |= kt_buf_puts(out, name);
    rc |= kt_buf_putc(out, '"');
    return rc;
}

static int enc_start(struct kt_stream_enc *e, const struct kt_stream_ev *ev, struct kt_buf *out)
{
    if (!kt_wire_enc_begin(e, ev, "msg_"))
        return 0;
    int rc = ev_head(out, "message_start");
    rc |= kt_buf_puts(out, ",\"message\":{\"id\":");
    rc |= kt_wire_put_str(out, e->id);
    rc |= kt_buf_puts(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    rc |= kt_wire_put_str(out, e->model ? e->model : "");
    rc |= kt_buf_puts(out, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
    rc |= put_usage(out, &e->usage);
    rc |= kt_buf_puts(out, "}}\n\n");
    return rc;
}

static int close_block(struct kt_stream_enc *e, struct kt_buf *out)
{
    if (e->open_out < 0)
        return 0;
    int rc = ev_head(out, "content_block_stop");
    rc |= kt_buf_puts(out, ",\"index\":");
    rc |= kt_buf_put_i64(out, e->open_out);
    rc |= kt_buf_puts(out, "}\n\n");
    e->open_in = e->open_out = -1;
    return rc;
}

/* Make block `in` of kind `type` the open one; returns its output index. */
static int open_block(struct kt_stream_enc *e, int in, enum kt_part_type type,
                      const struct kt_stream_ev *ev, struct kt_buf *out, int *rc)
{
    if (e->open_out >= 0 && e->open_in == in && e->open_type == type)
        return e->open_out;
    *rc |= close_block(e, out);
    int k = e->next_out++;
    if (kt_wire_imap_set(e->a, &e->out_of, in, k))
        *rc |= KT_EINVAL;
    e->open_in = in;
    e->open_out = k;
    e->open_type = type;
    *rc |= ev_head(out, "content_block_start");
    *rc |= kt_buf_puts(out, ",\"index\":");
    *rc |= kt_buf_put_i64(out, k);
    *rc |= kt_buf_puts(out, ",\"content_block\":");
    if (type == KT_PART_TEXT) {
        *rc |= kt_buf_puts(out, "{\"type\":\"text\",\"text\":\"\"}");
    } else if (type == KT_PART_THINKING) {
        *rc |= kt_buf_puts(out, "{\"type\":\"thinking\",\"thinking\":\"\"}");
    } else {
        *rc |= kt_buf_puts(out, "{\"type\":\"tool_use\",\"id\":");
        *rc |= kt_wire_put_str(out, ev->id ? ev->id : "");
        *rc |= kt_buf_puts(out, ",\"name\":");
        *rc |= kt_wire_put_str(out, ev->name ? ev->name : "");
        *rc |= kt_buf_puts(out, ",\"input\":{}}");
    }
    *rc |= kt_buf_puts(out, "}\n\n");
    return k;
}

static int put_delta(struct kt_buf *out, int k, const char *type, const char *field,
                     const char *text, size_t len)
{
    int rc = ev_head(out, "content_block_delta");
    rc |= kt_buf_puts(out, ",\"index\":");
    rc |= kt_buf_put_i64(out, k);
    rc |= kt_buf_puts(out, ",\"delta\":{\"type\":\"");
    rc |= kt_buf_puts(out, type);
    rc |= kt_buf_puts(out, "\",\"");
    rc |= kt_buf_puts(out, field);
    rc |= kt_buf_puts(out, "\":");
    rc |= kt_buf_json_str(out, text, len);
    rc |= kt_buf_puts(out, "}}\n\n");
    return rc;
}

int kt_wire_anthropic_enc_event(struct kt_stream_enc *e, const struct kt_stream_ev *ev,
                                struct kt_buf *out)
{
    int rc = 0, k;
    if (ev->type == KT_EV_MESSAGE_START)
        return enc_start(e, ev, out) ? KT_ENOMEM : 0;
    if (ev->type != KT_EV_ERROR && !e->started)
        rc |= enc_start(e, NULL, out);
    switch (ev->type) {
    case KT_EV_TEXT_DELTA:
        k = open_block(e, ev->index, KT_PART_TEXT, ev, out, &rc);
        rc |= put_delta(out, k, "text_delta", "text", ev->text, ev->len);
        break;
    case KT_EV_THINKING_DELTA:
        k = open_block(e, ev->index, KT_PART_THINKING, ev, out, &rc);
        rc |= put_delta(out, k, "thinking_delta", "thinking", ev->text, ev->len);
        break;
    case KT_EV_SIGNATURE_DELTA:
        k = open_block(e, ev->index, KT_PART_THINKING, ev, out, &rc);
        rc |= put_delta(out, k, "signature_delta", "signature", ev->text, ev->len);
        break;
    case KT_EV_TOOL_CALL_START:
        open_block(e, ev->index, KT_PART_TOOL_USE, ev, out, &rc);
        break;
    case KT_EV_TOOL_ARGS_DELTA:
        k = e->open_in == ev->index ? e->open_out : kt_wire_imap_get(&e->out_of, ev->index);
        if (k >= 0)
            rc |= put_delta(out, k, "input_json_delta", "partial_json", ev->text, ev->len);
        break;
    case KT_EV_BLOCK_STOP:
        if (e->open_in == ev->index)
            rc |= close_block(e, out);
        break;
    case KT_EV_USAGE:
        kt_usage_merge(&e->usage, &ev->usage);
        break;
    case KT_EV_FINISH:
        kt_usage_merge(&e->usage, &ev->usage);
        e->finished = 1;
        e->finish = ev->finish;
        if (ev->stop_sequence)
            e->stop_sequence = kt_arena_strdup(e->a, ev->stop_sequence);
        rc |= close_block(e, out);
        break;
    case KT_EV_DONE:
        rc |= close_block(e, out);
        if (!e->finished) {
            e->finished = 1;
            e->finish = KT_FINISH_STOP;
        }
        /* usage goes out here, not at FINISH: OpenAI sends it after the
         * finish_reason chunk */
        rc |= ev_head(out, "message_delta");
        rc |= kt_buf_printf(out, ",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":",
                            stop_str(e->finish));
        rc |= kt_wire_put_str(out, e->finish == KT_FINISH_STOP_SEQUENCE ? e->stop_sequence : NULL);
        rc |= kt_buf_puts(out, "},\"usage\":");
        rc |= put_usage(out, &e->usage);
        rc |= kt_buf_puts(out, "}\n\n");
        rc |= ev_head(out, "message_stop");
        rc |= kt_buf_puts(out, "}\n\n");
        e->done = 1;
        break;
    case KT_EV_ERROR:
        rc |= kt_buf_puts(out, "event: error\ndata: ");
        rc |= kt_wire_anthropic_error_body(ev->error, out);
        rc |= kt_buf_puts(out, "\n\n");
        e->done = 1;
        break;
    default:
        break;
    }
    return rc ? (rc == KT_EINVAL ? KT_EINVAL : KT_ENOMEM) : 0;
}

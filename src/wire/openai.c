/* openai.c: the OpenAI Chat Completions codec: request, response, error and
 * stream chunks to and from the IR. OpenAI-compatible servers (vLLM, Ollama,
 * llama.cpp) use it too. Mapping decisions are in docs/translation.md. */
#include <stdio.h>
#include <string.h>

#include "kt/util.h"
#include "wire_int.h"

#define BAD(...) kt_err_set(err, KT_EINVAL, __VA_ARGS__)

/* ---- request decoding ---- */

/* Parts array that grows in the arena. */
struct parts {
    struct kt_part *v;
    size_t n, cap;
};

static struct kt_part *parts_add(struct kt_arena *a, struct parts *ps)
{
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 4;
        struct kt_part *v = kt_wire_grow(a, ps->v, ps->n, cap, sizeof *v);
        if (v == NULL)
            return NULL;
        ps->v = v;
        ps->cap = cap;
    }
    struct kt_part *p = &ps->v[ps->n++];
    memset(p, 0, sizeof *p);
    return p;
}

/* data:image/png;base64,AAAA → base64 source; http(s) URL → url source.
 * url holds len bytes, not NUL-terminated. */
static int image_from_url(struct kt_arena *a, const char *url, size_t len, struct kt_part *p,
                          const char *where, struct kt_err *err)
{
    p->type = KT_PART_IMAGE;
    if (len > 5 && memcmp(url, "data:", 5) == 0) {
        const char *comma = memchr(url, ',', len);
        const char *b64 = comma ? memchr(url, ';', (size_t)(comma - url)) : NULL;
        if (comma == NULL || b64 == NULL || (size_t)(url + len - b64) < 8 ||
            memcmp(b64, ";base64,", 8) != 0)
            return BAD("%s: data URLs must be base64 (data:MEDIA_TYPE;base64,DATA)", where);
        p->media_type = kt_arena_strndup(a, url + 5, (size_t)(b64 - url - 5));
        p->data = kt_arena_strndup(a, comma + 1, len - (size_t)(comma + 1 - url));
        return p->media_type && p->data ? 0 : KT_ENOMEM;
    }
    if ((len >= 8 && memcmp(url, "https://", 8) == 0) || (len >= 7 && memcmp(url, "http://", 7) == 0)) {
        p->is_url = 1;
        p->data = kt_arena_strndup(a, url, len);
        return p->data ? 0 : KT_ENOMEM;
    }
    return BAD("%s: expected an http(s) URL or a base64 data URL", where);
}

/* content: string | array of parts | null. Text parts of a tool message or
 * a system message are joined by the caller. */
static int decode_content(struct kt_arena *a, const struct kt_json *c, struct parts *ps,
                          const char *where, struct kt_err *err)
{
    if (c == NULL || c->type == KT_JSON_NULL)
        return 0;
    if (c->type == KT_JSON_STRING) {
        struct kt_part *p = parts_add(a, ps);
        if (p == NULL)
            return KT_ENOMEM;
        p->type = KT_PART_TEXT;
        p->text = kt_wire_str(a, c, &p->len);
        return p->text ? 0 : KT_ENOMEM;
    }
    if (c->type != KT_JSON_ARRAY)
        return BAD("%s.content: expected a string, an array of content parts or null", where);
    size_t n = kt_json_len(c);
    for (size_t i = 0; i < n; i++) {
        const struct kt_json *o = kt_json_at(c, i);
        const struct kt_json *type = kt_wire_get(o, "type", KT_JSON_STRING);
        if (type == NULL)
            return BAD("%s.content[%zu]: expected an object with a string \"type\"", where, i);
        struct kt_part *p = parts_add(a, ps);
        if (p == NULL)
            return KT_ENOMEM;
        if (kt_json_streq(type, "text") || kt_json_streq(type, "refusal")) {
            const char *key = kt_json_streq(type, "text") ? "text" : "refusal";
            const struct kt_json *t = kt_wire_get(o, key, KT_JSON_STRING);
            if (t == NULL)
                return BAD("%s.content[%zu].%s: expected a string", where, i, key);
            p->type = KT_PART_TEXT;
            p->text = kt_wire_str(a, t, &p->len);
        } else if (kt_json_streq(type, "image_url")) {
            const struct kt_json *iu = kt_wire_get(o, "image_url", KT_JSON_OBJECT);
            const struct kt_json *u = iu ? kt_wire_get(iu, "url", KT_JSON_STRING)
                                         : kt_wire_get(o, "image_url", KT_JSON_STRING);
            if (u == NULL)
                return BAD("%s.content[%zu].image_url.url: expected a string", where, i);
            char w[300];
            snprintf(w, sizeof w, "%s.content[%zu].image_url.url", where, i);
            size_t ulen = 0;
            const char *url = kt_json_str(u, &ulen);
            int rc = image_from_url(a, url, ulen, p, w, err);
            if (rc)
                return rc;
        } else {
            return BAD("%s.content[%zu]: content part type '%.*s' is not supported", where, i,
                       (int)strnlen(type->u.s, type->n), type->u.s);
        }
    }
    return 0;
}

/* Join the text parts of ps into one string (tool results, system). */
static char *join_text(struct kt_arena *a, const struct parts *ps, const char *sep, size_t *len)
{
    size_t n = 0, seplen = strlen(sep);
    for (size_t i = 0; i < ps->n; i++)
        n += ps->v[i].len + seplen;
    char *s = kt_arena_alloc(a, n + 1), *q = s;
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < ps->n; i++) {
        if (ps->v[i].type != KT_PART_TEXT)
            continue;
        if (q != s) {
            memcpy(q, sep, seplen);
            q += seplen;
        }
        memcpy(q, ps->v[i].text, ps->v[i].len);
        q += ps->v[i].len;
    }
    *q = '\0';
    *len = (size_t)(q - s);
    return s;
}

static int decode_tool_calls(struct kt_arena *a, const struct kt_json *tcs, struct parts *ps,
                             const char *where, struct kt_err *err)
{
    size_t n = kt_json_len(tcs);
    for (size_t i = 0; i < n; i++) {
        const struct kt_json *tc = kt_json_at(tcs, i);
        const struct kt_json *fn = kt_wire_get(tc, "function", KT_JSON_OBJECT);
        const struct kt_json *id = kt_wire_get(tc, "id", KT_JSON_STRING);
        const struct kt_json *name = kt_wire_get(fn, "name", KT_JSON_STRING);
        if (fn == NULL || id == NULL || name == NULL)
            return BAD("%s.tool_calls[%zu]: expected {id, type: \"function\", function: {name, arguments}}",
                       where, i);
        struct kt_part *p = parts_add(a, ps);
        if (p == NULL)
            return KT_ENOMEM;
        p->type = KT_PART_TOOL_USE;
        p->id = kt_wire_str(a, id, NULL);
        p->name = kt_wire_str(a, name, NULL);
        const struct kt_json *args = kt_wire_get(fn, "arguments", KT_JSON_STRING);
        p->input_json = args && args->n > 0 ? kt_wire_str(a, args, NULL) : kt_arena_strdup(a, "{}");
    }
    return 0;
}

struct msgs {
    struct kt_msg *v;
    size_t n;
};

/* C string for messages: up to the first NUL, as json-c showed it */
#define JS(v) (int)strnlen((v)->u.s, (v)->n), (v)->u.s

static int decode_message(struct kt_arena *a, const struct kt_json *m, size_t i,
                          struct parts *sys, struct msgs *ms, struct kt_err *err)
{
    char where[64];
    snprintf(where, sizeof where, "messages[%zu]", i);
    const struct kt_json *role = kt_wire_get(m, "role", KT_JSON_STRING);
    if (role == NULL)
        return BAD("%s: expected an object with a string \"role\"", where);
    const struct kt_json *content = kt_wire_member(m, "content");
    struct parts ps = {0};
    int rc;

    if (kt_json_streq(role, "system") || kt_json_streq(role, "developer")) {
        /* hoisted into the system prompt, in order */
        size_t before = sys->n;
        if ((rc = decode_content(a, content, sys, where, err)))
            return rc;
        for (size_t k = before; k < sys->n; k++)
            if (sys->v[k].type != KT_PART_TEXT)
                return BAD("%s.content: %.*s messages may only hold text", where, JS(role));
        return 0;
    }
    struct kt_msg *msg = &ms->v[ms->n];
    if (kt_json_streq(role, "user")) {
        msg->role = KT_ROLE_USER;
        if ((rc = decode_content(a, content, &ps, where, err)))
            return rc;
    } else if (kt_json_streq(role, "assistant")) {
        msg->role = KT_ROLE_ASSISTANT;
        if ((rc = decode_content(a, content, &ps, where, err)))
            return rc;
        const struct kt_json *tcs = kt_wire_get(m, "tool_calls", KT_JSON_ARRAY);
        if (tcs && (rc = decode_tool_calls(a, tcs, &ps, where, err)))
            return rc;
    } else if (kt_json_streq(role, "tool")) {
        const struct kt_json *id = kt_wire_get(m, "tool_call_id", KT_JSON_STRING);
        if (id == NULL)
            return BAD("%s.tool_call_id: required for role \"tool\"", where);
        if ((rc = decode_content(a, content, &ps, where, err)))
            return rc;
        struct kt_part *p = kt_arena_alloc(a, sizeof *p);
        if (p == NULL)
            return KT_ENOMEM;
        p->type = KT_PART_TOOL_RESULT;
        p->tool_use_id = kt_wire_str(a, id, NULL);
        p->text = join_text(a, &ps, "\n", &p->len);
        msg->role = KT_ROLE_TOOL;
        msg->parts = p;
        msg->nparts = 1;
        ms->n++;
        return p->text ? 0 : KT_ENOMEM;
    } else if (kt_json_streq(role, "function")) {
        return BAD("%s: role \"function\" (deprecated) is not supported; use tools and role \"tool\"", where);
    } else {
        return BAD("%s.role: unknown role '%.*s'", where, JS(role));
    }
    msg->parts = ps.v;
    msg->nparts = ps.n;
    ms->n++;
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
        const struct kt_json *fn = kt_wire_get(t, "function", KT_JSON_OBJECT);
        if (!kt_json_streq(kt_wire_get(t, "type", KT_JSON_STRING), "function") || fn == NULL)
            return BAD("tools[%zu]: only {type: \"function\", function: {...}} tools are supported", i);
        const struct kt_json *name = kt_wire_get(fn, "name", KT_JSON_STRING);
        if (name == NULL)
            return BAD("tools[%zu].function.name: required", i);
        struct kt_tool *tool = &req->tools[req->ntools++];
        tool->name = kt_wire_str(a, name, NULL);
        tool->description = kt_wire_str(a, kt_wire_get(fn, "description", KT_JSON_STRING), NULL);
        const struct kt_json *params = kt_wire_get(fn, "parameters", KT_JSON_OBJECT);
        if (params)
            tool->schema_json = kt_wire_json_text(a, params);
    }
    return 0;
}

static int decode_tool_choice(struct kt_arena *a, const struct kt_json *tc, struct kt_request *req,
                              struct kt_err *err)
{
    static const struct { const char *s; enum kt_tool_choice v; } names[] = {
        { "auto", KT_TC_AUTO }, { "none", KT_TC_NONE }, { "required", KT_TC_REQUIRED },
    };
    if (tc->type == KT_JSON_STRING) {
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            if (kt_json_streq(tc, names[i].s)) {
                req->tool_choice = names[i].v;
                return 0;
            }
        }
        return BAD("tool_choice: expected \"auto\", \"none\", \"required\" or {type: \"function\", function: {name}}");
    }
    const struct kt_json *fn = kt_wire_get(tc, "function", KT_JSON_OBJECT);
    const struct kt_json *name = kt_wire_get(fn, "name", KT_JSON_STRING);
    if (name == NULL)
        return BAD("tool_choice.function.name: required");
    req->tool_choice = KT_TC_NAMED;
    req->tool_choice_name = kt_wire_str(a, name, NULL);
    return 0;
}

int kt_wire_openai_decode_request(const struct kt_json *root, struct kt_arena *a,
                                  struct kt_request *req, struct kt_err *err)
{
    int rc;
    const struct kt_json *v = NULL, *msgs = NULL;
    if ((rc = kt_wire_decode_head(root, a, req, &msgs, err)))
        return rc;
    size_t n = kt_json_len(msgs);

    long nchoices = 1;
    if ((rc = kt_wire_get_int(root, "n", &nchoices, err)))
        return rc;
    if (nchoices != 1)
        return BAD("n: only n = 1 is supported (got %ld)", nchoices);
    if (kt_json_get(root, "functions") || kt_json_get(root, "function_call"))
        return BAD("functions/function_call (deprecated) are not supported; use tools and tool_choice");

    struct parts sys = {0};
    struct msgs ms = { kt_arena_alloc(a, n * sizeof *ms.v), 0 };
    if (ms.v == NULL)
        return KT_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if ((rc = decode_message(a, kt_json_at(msgs, i), i, &sys, &ms, err)))
            return rc;
    req->system = sys.v;
    req->nsystem = sys.n;
    req->msgs = ms.v;
    req->nmsgs = ms.n;

    if ((rc = kt_wire_get_int(root, "max_completion_tokens", &req->max_tokens, err)))
        return rc;
    if (req->max_tokens == 0 && (rc = kt_wire_get_int(root, "max_tokens", &req->max_tokens, err)))
        return rc;
    if ((rc = kt_wire_get_number(root, "temperature", &req->temperature, &req->has_temperature, err)) ||
        (rc = kt_wire_get_number(root, "top_p", &req->top_p, &req->has_top_p, err)) ||
        (rc = kt_wire_get_int(root, "top_k", &req->top_k, err)) ||
        (rc = kt_wire_get_bool(root, "stream", &req->stream, err)))
        return rc;
    const struct kt_json *so = kt_wire_get(root, "stream_options", KT_JSON_OBJECT);
    if (so && (rc = kt_wire_get_bool(so, "include_usage", &req->include_usage, err)))
        return rc;

    if ((v = kt_wire_member(root, "stop"))) {
        if (v->type == KT_JSON_STRING) {
            req->stop = kt_arena_alloc(a, sizeof *req->stop);
            req->stop[0] = kt_wire_str(a, v, NULL);
            req->nstop = 1;
        } else if (v->type == KT_JSON_ARRAY) {
            size_t ns = kt_json_len(v);
            req->stop = kt_arena_alloc(a, (ns ? ns : 1) * sizeof *req->stop);
            for (size_t i = 0; i < ns; i++) {
                const struct kt_json *s = kt_json_at(v, i);
                if (s->type != KT_JSON_STRING)
                    return BAD("stop[%zu]: expected a string", i);
                req->stop[req->nstop++] = kt_wire_str(a, s, NULL);
            }
        } else {
            return BAD("stop: expected a string or an array of strings");
        }
    }

    if ((v = kt_wire_member(root, "tools"))) {
        if (v->type != KT_JSON_ARRAY)
            return BAD("tools: expected an array");
        if ((rc = decode_tools(a, v, req, err)))
            return rc;
    }
    if ((v = kt_wire_member(root, "tool_choice")) && (rc = decode_tool_choice(a, v, req, err)))
        return rc;
    if ((rc = kt_wire_get_bool(root, "parallel_tool_calls", &req->parallel_tool_calls, err)))
        return rc;
    if ((v = kt_wire_member(root, "user"))) {
        if (v->type != KT_JSON_STRING)
            return BAD("user: expected a string");
        req->user = kt_wire_str(a, v, NULL);
    }
    /* Anthropic's compatibility layer takes extended thinking through
     * extra_body: {"thinking": {"type": "enabled", "budget_tokens": N}} */
    const struct kt_json *th = kt_wire_get(root, "thinking", KT_JSON_OBJECT);
    if (kt_json_streq(kt_wire_get(th, "type", KT_JSON_STRING), "enabled") &&
        (rc = kt_wire_get_int(th, "budget_tokens", &req->thinking_budget, err)))
        return rc;
    return 0;
}

/* ---- request encoding ---- */

static int put_usage(struct kt_buf *b, const struct kt_usage *u)
{
    long in = kt_usage_prompt_total(u), outp = u->output > 0 ? u->output : 0;
    long cached = u->cache_read > 0 ? u->cache_read : 0;
    int rc = kt_buf_puts(b, "{\"prompt_tokens\":");
    rc |= kt_buf_put_i64(b, in);
    rc |= kt_buf_puts(b, ",\"completion_tokens\":");
    rc |= kt_buf_put_i64(b, outp);
    rc |= kt_buf_puts(b, ",\"total_tokens\":");
    rc |= kt_buf_put_i64(b, in + outp);
    rc |= kt_buf_puts(b, ",\"prompt_tokens_details\":{\"cached_tokens\":");
    rc |= kt_buf_put_i64(b, cached);
    rc |= kt_buf_puts(b, "}}");
    return rc;
}

static int put_image_url(struct kt_buf *b, const struct kt_part *p)
{
    int rc = kt_buf_puts(b, "{\"type\":\"image_url\",\"image_url\":{\"url\":");
    if (p->is_url) {
        rc |= kt_wire_put_str(b, p->data);
    } else {
        /* data:MEDIA;base64,DATA: media type and base64 need no escaping
         * beyond what kt_buf_json_str does, so build it as one string */
        rc |= kt_buf_puts(b, "\"data:");
        struct kt_buf tmp = {0};
        rc |= kt_buf_json_str(&tmp, p->media_type ? p->media_type : "image/png",
                              strlen(p->media_type ? p->media_type : "image/png"));
        if (tmp.data)
            rc |= kt_buf_append(b, tmp.data + 1, tmp.len - 2);
        kt_buf_reset(&tmp);
        rc |= kt_buf_puts(b, ";base64,");
        rc |= kt_buf_json_str(&tmp, p->data ? p->data : "", p->data ? strlen(p->data) : 0);
        if (tmp.data)
            rc |= kt_buf_append(b, tmp.data + 1, tmp.len - 2);
        kt_buf_free(&tmp);
        rc |= kt_buf_putc(b, '"');
    }
    rc |= kt_buf_puts(b, "}}");
    return rc;
}

static int put_tool_message(struct kt_buf *b, const struct kt_part *p, int *first)
{
    int rc = *first ? 0 : kt_buf_putc(b, ',');
    *first = 0;
    rc |= kt_buf_puts(b, "{\"role\":\"tool\",\"tool_call_id\":");
    rc |= kt_wire_put_str(b, p->tool_use_id ? p->tool_use_id : "");
    rc |= kt_buf_puts(b, ",\"content\":");
    rc |= kt_buf_json_str(b, p->text ? p->text : "", p->text ? p->len : 0);
    rc |= kt_buf_putc(b, '}');
    return rc;
}

static int put_user_message(struct kt_buf *b, const struct kt_msg *m, int *first)
{
    int rc = 0;
    size_t ntext = 0, nother = 0;
    /* Anthropic carries tool results inside user turns; OpenAI wants one
     * role "tool" message each, before the user's own content. */
    for (size_t i = 0; i < m->nparts; i++) {
        const struct kt_part *p = &m->parts[i];
        if (p->type == KT_PART_TOOL_RESULT)
            rc |= put_tool_message(b, p, first);
        else if (p->type == KT_PART_TEXT)
            ntext++;
        else if (p->type == KT_PART_IMAGE || (p->type == KT_PART_RAW && p->raw_fmt == KT_FMT_OPENAI))
            nother++;
    }
    if (m->role == KT_ROLE_TOOL || ntext + nother == 0)
        return rc;
    rc |= *first ? 0 : kt_buf_putc(b, ',');
    *first = 0;
    rc |= kt_buf_puts(b, "{\"role\":\"user\",\"content\":");
    if (ntext == 1 && nother == 0) {
        for (size_t i = 0; i < m->nparts; i++)
            if (m->parts[i].type == KT_PART_TEXT)
                rc |= kt_buf_json_str(b, m->parts[i].text, m->parts[i].len);
        rc |= kt_buf_putc(b, '}');
        return rc;
    }
    rc |= kt_buf_putc(b, '[');
    int f = 1;
    for (size_t i = 0; i < m->nparts; i++) {
        const struct kt_part *p = &m->parts[i];
        if (p->type != KT_PART_TEXT && p->type != KT_PART_IMAGE &&
            !(p->type == KT_PART_RAW && p->raw_fmt == KT_FMT_OPENAI))
            continue;
        rc |= f ? 0 : kt_buf_putc(b, ',');
        f = 0;
        if (p->type == KT_PART_TEXT) {
            rc |= kt_buf_puts(b, "{\"type\":\"text\",\"text\":");
            rc |= kt_buf_json_str(b, p->text, p->len);
            rc |= kt_buf_putc(b, '}');
        } else if (p->type == KT_PART_IMAGE) {
            rc |= put_image_url(b, p);
        } else {
            rc |= kt_buf_puts(b, p->raw_json);
        }
    }
    rc |= kt_buf_puts(b, "]}");
    return rc;
}

static int put_tool_calls(struct kt_buf *b, const struct kt_part *parts, size_t n)
{
    int rc = kt_buf_puts(b, ",\"tool_calls\":["), f = 1;
    for (size_t i = 0; i < n; i++) {
        const struct kt_part *p = &parts[i];
        if (p->type != KT_PART_TOOL_USE)
            continue;
        rc |= f ? 0 : kt_buf_putc(b, ',');
        f = 0;
        rc |= kt_buf_puts(b, "{\"id\":");
        rc |= kt_wire_put_str(b, p->id ? p->id : "");
        rc |= kt_buf_puts(b, ",\"type\":\"function\",\"function\":{\"name\":");
        rc |= kt_wire_put_str(b, p->name ? p->name : "");
        rc |= kt_buf_puts(b, ",\"arguments\":");
        const char *args = p->input_json ? p->input_json : "{}";
        rc |= kt_buf_json_str(b, args, strlen(args));
        rc |= kt_buf_puts(b, "}}");
    }
    rc |= kt_buf_putc(b, ']');
    return rc;
}

/* assistant text joined; NULL-content when there is none */
static int put_assistant_content(struct kt_buf *b, const struct kt_part *parts, size_t n,
                                 size_t *ntools)
{
    size_t ntext = 0;
    *ntools = 0;
    for (size_t i = 0; i < n; i++) {
        ntext += parts[i].type == KT_PART_TEXT;
        *ntools += parts[i].type == KT_PART_TOOL_USE;
    }
    if (ntext == 0)
        return kt_buf_puts(b, "null");
    struct kt_buf tmp = {0};
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (parts[i].type == KT_PART_TEXT)
            rc |= kt_buf_append(&tmp, parts[i].text, parts[i].len);
    rc |= kt_buf_json_str(b, tmp.data ? tmp.data : "", tmp.len);
    kt_buf_free(&tmp);
    return rc;
}

int kt_wire_openai_encode_request(const struct kt_request *req, const char *model,
                                  struct kt_buf *out)
{
    const char *m = model ? model : req->model;
    int rc = kt_buf_puts(out, "{\"model\":");
    rc |= kt_wire_put_str(out, m ? m : "");
    rc |= kt_buf_puts(out, ",\"messages\":[");
    int first = 1;
    for (size_t i = 0; i < req->nsystem; i++) {
        rc |= first ? 0 : kt_buf_putc(out, ',');
        first = 0;
        rc |= kt_buf_puts(out, "{\"role\":\"system\",\"content\":");
        rc |= kt_buf_json_str(out, req->system[i].text, req->system[i].len);
        rc |= kt_buf_putc(out, '}');
    }
    for (size_t i = 0; i < req->nmsgs; i++) {
        const struct kt_msg *msg = &req->msgs[i];
        if (msg->role != KT_ROLE_ASSISTANT) {
            rc |= put_user_message(out, msg, &first);
            continue;
        }
        rc |= first ? 0 : kt_buf_putc(out, ',');
        first = 0;
        size_t ntools;
        rc |= kt_buf_puts(out, "{\"role\":\"assistant\",\"content\":");
        rc |= put_assistant_content(out, msg->parts, msg->nparts, &ntools);
        if (ntools)
            rc |= put_tool_calls(out, msg->parts, msg->nparts);
        rc |= kt_buf_putc(out, '}');
    }
    rc |= kt_buf_putc(out, ']');
    if (req->max_tokens > 0) {
        rc |= kt_buf_puts(out, ",\"max_tokens\":");
        rc |= kt_buf_put_i64(out, req->max_tokens);
    }
    if (req->has_temperature) {
        rc |= kt_buf_puts(out, ",\"temperature\":");
        rc |= kt_wire_put_double(out, req->temperature);
    }
    if (req->has_top_p) {
        rc |= kt_buf_puts(out, ",\"top_p\":");
        rc |= kt_wire_put_double(out, req->top_p);
    }
    if (req->nstop) {
        rc |= kt_buf_puts(out, ",\"stop\":[");
        for (size_t i = 0; i < req->nstop; i++) {
            rc |= i ? kt_buf_putc(out, ',') : 0;
            rc |= kt_wire_put_str(out, req->stop[i]);
        }
        rc |= kt_buf_putc(out, ']');
    }
    if (req->stream)   /* always ask for usage: audit and metrics need it */
        rc |= kt_buf_puts(out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    size_t ntools = 0;
    for (size_t i = 0; i < req->ntools; i++)
        ntools += req->tools[i].raw_json == NULL;
    if (ntools) {
        rc |= kt_buf_puts(out, ",\"tools\":[");
        int f = 1;
        for (size_t i = 0; i < req->ntools; i++) {
            const struct kt_tool *t = &req->tools[i];
            if (t->raw_json)
                continue;          /* Anthropic server tools have no OpenAI form */
            rc |= f ? 0 : kt_buf_putc(out, ',');
            f = 0;
            rc |= kt_buf_puts(out, "{\"type\":\"function\",\"function\":{\"name\":");
            rc |= kt_wire_put_str(out, t->name);
            if (t->description) {
                rc |= kt_buf_puts(out, ",\"description\":");
                rc |= kt_wire_put_str(out, t->description);
            }
            rc |= kt_buf_puts(out, ",\"parameters\":");
            rc |= t->schema_json ? kt_wire_put_json_object(out, t->schema_json)
                                 : kt_buf_puts(out, "{\"type\":\"object\",\"properties\":{}}");
            rc |= kt_buf_puts(out, "}}");
        }
        rc |= kt_buf_putc(out, ']');
        static const char *const tc[] = {
            [KT_TC_AUTO] = "\"auto\"", [KT_TC_NONE] = "\"none\"", [KT_TC_REQUIRED] = "\"required\"",
        };
        if (req->tool_choice == KT_TC_NAMED) {
            rc |= kt_buf_puts(out, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":");
            rc |= kt_wire_put_str(out, req->tool_choice_name);
            rc |= kt_buf_puts(out, "}}");
        } else if (req->tool_choice != KT_TC_UNSET) {
            rc |= kt_buf_printf(out, ",\"tool_choice\":%s", tc[req->tool_choice]);
        }
        if (req->parallel_tool_calls >= 0)
            rc |= kt_buf_printf(out, ",\"parallel_tool_calls\":%s",
                                req->parallel_tool_calls ? "true" : "false");
    }
    if (req->user) {
        rc |= kt_buf_puts(out, ",\"user\":");
        rc |= kt_wire_put_str(out, req->user);
    }
    rc |= kt_buf_putc(out, '}');
    return rc ? KT_ENOMEM : 0;
}

/* ---- responses ---- */

static const struct kt_finish_name finish_table[] = {
    { "stop", KT_FINISH_STOP }, { "length", KT_FINISH_LENGTH },
    { "tool_calls", KT_FINISH_TOOL_CALLS }, { "function_call", KT_FINISH_TOOL_CALLS },
    { "content_filter", KT_FINISH_CONTENT_FILTER },
};

/* v: the finish_reason string node, or NULL */
static enum kt_finish finish_parse(const struct kt_json *v)
{
    return kt_wire_finish_parse(finish_table, sizeof finish_table / sizeof *finish_table, v);
}

static const char *finish_str(enum kt_finish f)
{
    static const char *const names[] = {
        [KT_FINISH_NONE] = "stop", [KT_FINISH_STOP] = "stop",
        [KT_FINISH_STOP_SEQUENCE] = "stop", [KT_FINISH_LENGTH] = "length",
        [KT_FINISH_TOOL_CALLS] = "tool_calls", [KT_FINISH_CONTENT_FILTER] = "content_filter",
        [KT_FINISH_PAUSE] = "stop",
    };
    return (unsigned)f < sizeof names / sizeof *names ? names[f] : "stop";
}

static void usage_decode(const struct kt_json *u, struct kt_usage *out)
{
    long prompt = (long)kt_json_int(kt_wire_get(u, "prompt_tokens", KT_JSON_INT));
    const struct kt_json *d = kt_wire_get(u, "prompt_tokens_details", KT_JSON_OBJECT);
    long cached = (long)kt_json_int(kt_wire_get(d, "cached_tokens", KT_JSON_INT));
    out->cache_read = cached;
    out->cache_creation = 0;
    out->input = prompt - cached > 0 ? prompt - cached : 0;
    out->output = (long)kt_json_int(kt_wire_get(u, "completion_tokens", KT_JSON_INT));
}

int kt_wire_openai_decode_response(const struct kt_json *root, struct kt_arena *a,
                                   struct kt_response *resp, struct kt_err *err)
{
    const struct kt_json *choices = kt_wire_get(root, "choices", KT_JSON_ARRAY);
    const struct kt_json *c0 = kt_json_at(choices, 0);
    const struct kt_json *msg = kt_wire_get(c0, "message", KT_JSON_OBJECT);
    if (msg == NULL)
        return BAD("OpenAI response: choices[0].message missing");
    resp->id = kt_wire_str(a, kt_wire_get(root, "id", KT_JSON_STRING), NULL);
    resp->model = kt_wire_str(a, kt_wire_get(root, "model", KT_JSON_STRING), NULL);
    resp->created = (long)kt_json_int(kt_wire_get(root, "created", KT_JSON_INT));
    struct parts ps = {0};
    const struct kt_json *v;
    /* reasoning_content: the de-facto field of OpenAI-compatible servers */
    if ((v = kt_wire_get(msg, "reasoning_content", KT_JSON_STRING)) ||
        (v = kt_wire_get(msg, "reasoning", KT_JSON_STRING))) {
        struct kt_part *p = parts_add(a, &ps);
        if (p == NULL)
            return KT_ENOMEM;
        p->type = KT_PART_THINKING;
        p->text = kt_wire_str(a, v, &p->len);
    }
    if ((v = kt_wire_get(msg, "content", KT_JSON_STRING)) ||
        (v = kt_wire_get(msg, "refusal", KT_JSON_STRING))) {
        struct kt_part *p = parts_add(a, &ps);
        if (p == NULL)
            return KT_ENOMEM;
        p->type = KT_PART_TEXT;
        p->text = kt_wire_str(a, v, &p->len);
    }
    const struct kt_json *tcs = kt_wire_get(msg, "tool_calls", KT_JSON_ARRAY);
    int rc;
    if (tcs && (rc = decode_tool_calls(a, tcs, &ps, "choices[0].message", err)))
        return rc;
    resp->parts = ps.v;
    resp->nparts = ps.n;
    resp->finish = finish_parse(kt_wire_get(c0, "finish_reason", KT_JSON_STRING));
    usage_decode(kt_wire_get(root, "usage", KT_JSON_OBJECT), &resp->usage);
    return 0;
}

int kt_wire_openai_encode_response(const struct kt_response *resp, struct kt_buf *out)
{
    int rc = kt_buf_puts(out, "{\"id\":");
    rc |= kt_wire_put_str(out, resp->id ? resp->id : "chatcmpl-kt");
    rc |= kt_buf_puts(out, ",\"object\":\"chat.completion\",\"created\":");
    rc |= kt_buf_put_i64(out, resp->created ? resp->created : (long)(kt_wall_ms() / 1000));
    rc |= kt_buf_puts(out, ",\"model\":");
    rc |= kt_wire_put_str(out, resp->model ? resp->model : "");
    rc |= kt_buf_puts(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    size_t ntools;
    rc |= put_assistant_content(out, resp->parts, resp->nparts, &ntools);
    rc |= kt_buf_puts(out, ",\"refusal\":null");
    if (ntools)
        rc |= put_tool_calls(out, resp->parts, resp->nparts);
    rc |= kt_buf_puts(out, "},\"logprobs\":null,\"finish_reason\":\"");
    rc |= kt_buf_puts(out, finish_str(resp->finish));
    rc |= kt_buf_puts(out, "\"}],\"usage\":");
    rc |= put_usage(out, &resp->usage);
    rc |= kt_buf_putc(out, '}');
    return rc ? KT_ENOMEM : 0;
}

int kt_wire_openai_error_body(const struct kt_ir_error *e, struct kt_buf *out)
{
    int rc = kt_buf_puts(out, "{\"error\":{\"message\":");
    rc |= kt_wire_put_str(out, e->message ? e->message : "");
    rc |= kt_buf_printf(out, ",\"type\":\"%s\",\"param\":null,\"code\":", kt_wire_err_openai_type(e->type));
    rc |= kt_wire_put_str(out, e->code);
    rc |= kt_buf_puts(out, "}}");
    return rc ? KT_ENOMEM : 0;
}

/* ---- stream decoding: chat.completion.chunk → IR events ---- */

static int emit(kt_stream_ev_fn cb, void *ud, struct kt_stream_ev *ev, struct kt_err *err)
{
    int rc = cb(ud, ev);
    if (rc < 0 && err && err->code == 0)
        kt_err_set(err, rc, "stream event handler failed");
    return rc;
}

/* Switch the open block: OpenAI has no blocks, so text, reasoning and each
 * tool call get canonical block numbers in arrival order. */
static int open_block(struct kt_stream_dec *d, int kind, kt_stream_ev_fn cb, void *ud,
                      struct kt_err *err)
{
    if (d->open_block >= 0 && d->open_kind == kind && kind != 2)
        return d->open_block;
    if (d->open_block >= 0) {
        struct kt_stream_ev stop = { .type = KT_EV_BLOCK_STOP, .index = d->open_block };
        int rc = emit(cb, ud, &stop, err);
        if (rc < 0)
            return rc;
    }
    d->open_block = d->next_block++;
    d->open_kind = kind;
    return d->open_block;
}

/* A string of the event being decoded, NUL-terminated in the scratch
 * arena t (it lives as long as the event's tree); NULL when v is not a
 * string. */
static const char *ev_str(struct kt_arena *t, const struct kt_json *v, size_t *len)
{
    return kt_json_strdup(t, v, len);
}

/* a text delta event for string v when it is not empty */
static int text_ev(struct kt_arena *t, kt_stream_ev_fn cb, void *ud, enum kt_ev_type type,
                   int idx, const struct kt_json *v, struct kt_err *err)
{
    struct kt_stream_ev ev = { .type = type, .index = idx };
    ev.text = ev_str(t, v, &ev.len);
    if (ev.text == NULL)
        return kt_err_set(err, KT_ENOMEM, "out of memory");
    return emit(cb, ud, &ev, err);
}

static int dec_chunk(struct kt_stream_dec *d, struct kt_arena *t, const struct kt_json *root,
                     kt_stream_ev_fn cb, void *ud, struct kt_err *err)
{
    int rc;
    const struct kt_json *choices = kt_wire_get(root, "choices", KT_JSON_ARRAY);
    if (!d->started && kt_json_len(choices) == 0 &&
        kt_wire_get(root, "usage", KT_JSON_OBJECT) == NULL)
        return 0;   /* Azure's leading prompt_filter_results chunk: no id, no model yet */
    if (!d->started) {
        d->started = 1;
        struct kt_stream_ev ev = { .type = KT_EV_MESSAGE_START };
        ev.id = ev_str(t, kt_wire_get(root, "id", KT_JSON_STRING), NULL);
        ev.model = ev_str(t, kt_wire_get(root, "model", KT_JSON_STRING), NULL);
        kt_wire_usage_unset(&ev.usage);
        if ((rc = emit(cb, ud, &ev, err)) < 0)
            return rc;
    }
    const struct kt_json *c0 = kt_json_at(choices, 0);
    const struct kt_json *delta = kt_wire_get(c0, "delta", KT_JSON_OBJECT);
    const struct kt_json *v;
    if ((v = kt_wire_get(delta, "reasoning_content", KT_JSON_STRING)) ||
        (v = kt_wire_get(delta, "reasoning", KT_JSON_STRING))) {
        if (v->n > 0) {
            int idx = open_block(d, 1, cb, ud, err);
            if (idx < 0)
                return idx;
            if ((rc = text_ev(t, cb, ud, KT_EV_THINKING_DELTA, idx, v, err)) < 0)
                return rc;
        }
    }
    if ((v = kt_wire_get(delta, "content", KT_JSON_STRING)) && v->n > 0) {
        int idx = open_block(d, 0, cb, ud, err);
        if (idx < 0)
            return idx;
        if ((rc = text_ev(t, cb, ud, KT_EV_TEXT_DELTA, idx, v, err)) < 0)
            return rc;
    }
    const struct kt_json *tcs = kt_wire_get(delta, "tool_calls", KT_JSON_ARRAY);
    size_t ntc = kt_json_len(tcs);
    for (size_t i = 0; i < ntc; i++) {
        const struct kt_json *tc = kt_json_at(tcs, i);
        const struct kt_json *fn = kt_wire_get(tc, "function", KT_JSON_OBJECT);
        const struct kt_json *ti = kt_wire_get(tc, "index", KT_JSON_INT);
        int tidx = ti ? kt_wire_int32(ti) : (int)i;
        int idx = kt_wire_imap_get(&d->tools, tidx);
        if (idx < 0) {
            idx = open_block(d, 2, cb, ud, err);
            if (idx < 0)
                return idx;
            if ((rc = kt_wire_imap_set(d->a, &d->tools, tidx, idx)))
                return kt_err_set(err, rc, "tool call index %d out of range", tidx);
            struct kt_stream_ev ev = { .type = KT_EV_TOOL_CALL_START, .index = idx };
            ev.id = ev_str(t, kt_wire_get(tc, "id", KT_JSON_STRING), NULL);
            ev.name = ev_str(t, kt_wire_get(fn, "name", KT_JSON_STRING), NULL);
            if (ev.id == NULL)
                ev.id = "";
            if (ev.name == NULL)
                ev.name = "";
            if ((rc = emit(cb, ud, &ev, err)) < 0)
                return rc;
        }
        const struct kt_json *args = kt_wire_get(fn, "arguments", KT_JSON_STRING);
        if (args && args->n > 0 && (rc = text_ev(t, cb, ud, KT_EV_TOOL_ARGS_DELTA, idx, args, err)) < 0)
            return rc;
    }
    const struct kt_json *fr = kt_wire_get(c0, "finish_reason", KT_JSON_STRING);
    const struct kt_json *u = kt_wire_get(root, "usage", KT_JSON_OBJECT);
    if (fr) {
        if (d->open_block >= 0) {
            struct kt_stream_ev stop = { .type = KT_EV_BLOCK_STOP, .index = d->open_block };
            if ((rc = emit(cb, ud, &stop, err)) < 0)
                return rc;
            d->open_block = -1;
        }
        struct kt_stream_ev ev = { .type = KT_EV_FINISH, .finish = finish_parse(fr) };
        kt_wire_usage_unset(&ev.usage);
        if (u)
            usage_decode(u, &ev.usage);
        d->finished = 1;
        if ((rc = emit(cb, ud, &ev, err)) < 0)
            return rc;
    } else if (u) {
        struct kt_stream_ev ev = { .type = KT_EV_USAGE };
        usage_decode(u, &ev.usage);
        if ((rc = emit(cb, ud, &ev, err)) < 0)
            return rc;
    }
    return 0;
}

int kt_wire_openai_dec_event(struct kt_stream_dec *d, const char *event, const char *data,
                             size_t len, kt_stream_ev_fn cb, void *ud, struct kt_err *err)
{
    (void)event;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        struct kt_stream_ev ev = { .type = KT_EV_DONE };
        return emit(cb, ud, &ev, err);
    }
    const struct kt_json *root;
    struct kt_arena *t = kt_wire_scratch(d->a);
    int rc = kt_wire_parse(t, data, len, &root, err);
    if (rc) {
        kt_wire_scratch_done(t);
        return kt_err_set(err, KT_EINVAL, "upstream sent a malformed OpenAI stream chunk");
    }
    const struct kt_json *eo = kt_wire_get(root, "error", KT_JSON_OBJECT);
    if (eo) {
        struct kt_ir_error ie;
        kt_wire_decode_error(KT_FMT_OPENAI, 500, data, len, d->a, &ie);
        struct kt_stream_ev ev = { .type = KT_EV_ERROR, .error = &ie };
        rc = emit(cb, ud, &ev, err);
    } else {
        rc = dec_chunk(d, t, root, cb, ud, err);
    }
    kt_wire_scratch_done(t);
    return rc < 0 ? rc : 0;
}

/* ---- stream encoding: IR events → chat.completion.chunk ---- */

static int chunk_head(struct kt_stream_enc *e, struct kt_buf *out)
{
    if (e->chunk_head == NULL) {
        struct kt_buf h = {0};
        int rc = kt_buf_puts(&h, "data: {\"id\":");
        rc |= kt_wire_put_str(&h, e->id);
        rc |= kt_buf_printf(&h, ",\"object\":\"chat.completion.chunk\",\"created\":%ld,\"model\":",
                            e->created);
        rc |= kt_wire_put_str(&h, e->model ? e->model : "");
        if (rc == 0) {
            e->chunk_head = kt_arena_strndup(e->a, h.data, h.len);
            e->chunk_head_len = h.len;
        }
        kt_buf_free(&h);
        if (rc != 0 || e->chunk_head == NULL)
            return KT_ENOMEM;
    }
    return kt_buf_append(out, e->chunk_head, e->chunk_head_len);
}

static int delta_open(struct kt_stream_enc *e, struct kt_buf *out)
{
    int r = chunk_head(e, out);
    r |= kt_buf_puts(out, ",\"choices\":[{\"index\":0,\"delta\":{");
    return r;
}

static int delta_close(struct kt_buf *out, const char *finish)
{
    if (finish == NULL)
        return kt_buf_puts(out, "},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    int rc = kt_buf_puts(out, "},\"logprobs\":null,\"finish_reason\":\"");
    rc |= kt_buf_puts(out, finish);
    rc |= kt_buf_puts(out, "\"}]}\n\n");
    return rc;
}

static int enc_start(struct kt_stream_enc *e, const struct kt_stream_ev *ev, struct kt_buf *out)
{
    if (!kt_wire_enc_begin(e, ev, "chatcmpl-"))
        return 0;
    int r = delta_open(e, out);
    r |= kt_buf_puts(out, "\"role\":\"assistant\",\"content\":\"\"");
    r |= delta_close(out, NULL);
    return r;
}

int kt_wire_openai_enc_event(struct kt_stream_enc *e, const struct kt_stream_ev *ev,
                             struct kt_buf *out)
{
    int rc = 0;
    if (ev->type == KT_EV_MESSAGE_START)
        return enc_start(e, ev, out) ? KT_ENOMEM : 0;
    if (ev->type != KT_EV_ERROR && !e->started)
        rc |= enc_start(e, NULL, out);
    switch (ev->type) {
    case KT_EV_TEXT_DELTA:
        rc |= delta_open(e, out);
        rc |= kt_buf_puts(out, "\"content\":");
        rc |= kt_buf_json_str(out, ev->text, ev->len);
        rc |= delta_close(out, NULL);
        break;
    case KT_EV_THINKING_DELTA:
        if (!e->opts.emit_reasoning)
            break;
        rc |= delta_open(e, out);
        rc |= kt_buf_puts(out, "\"reasoning_content\":");
        rc |= kt_buf_json_str(out, ev->text, ev->len);
        rc |= delta_close(out, NULL);
        break;
    case KT_EV_TOOL_CALL_START: {
        int ti = e->ntools++;
        if (kt_wire_imap_set(e->a, &e->tool_of, ev->index, ti))
            return KT_EINVAL;
        rc |= delta_open(e, out);
        rc |= kt_buf_puts(out, "\"tool_calls\":[{\"index\":");
        rc |= kt_buf_put_i64(out, ti);
        rc |= kt_buf_puts(out, ",\"id\":");
        rc |= kt_wire_put_str(out, ev->id ? ev->id : "");
        rc |= kt_buf_puts(out, ",\"type\":\"function\",\"function\":{\"name\":");
        rc |= kt_wire_put_str(out, ev->name ? ev->name : "");
        rc |= kt_buf_puts(out, ",\"arguments\":\"\"}}]");
        rc |= delta_close(out, NULL);
        break;
    }
    case KT_EV_TOOL_ARGS_DELTA: {
        int ti = kt_wire_imap_get(&e->tool_of, ev->index);
        if (ti < 0 || ev->len == 0)
            break;
        rc |= delta_open(e, out);
        rc |= kt_buf_puts(out, "\"tool_calls\":[{\"index\":");
        rc |= kt_buf_put_i64(out, ti);
        rc |= kt_buf_puts(out, ",\"function\":{\"arguments\":");
        rc |= kt_buf_json_str(out, ev->text, ev->len);
        rc |= kt_buf_puts(out, "}}]");
        rc |= delta_close(out, NULL);
        break;
    }
    case KT_EV_USAGE:
        kt_usage_merge(&e->usage, &ev->usage);
        break;
    case KT_EV_FINISH:
        kt_usage_merge(&e->usage, &ev->usage);
        if (e->finished)
            break;
        e->finished = 1;
        e->finish = ev->finish;
        rc |= delta_open(e, out);
        rc |= delta_close(out, finish_str(ev->finish));
        break;
    case KT_EV_DONE:
        if (!e->finished) {
            e->finished = 1;
            e->finish = KT_FINISH_STOP;
            rc |= delta_open(e, out);
            rc |= delta_close(out, "stop");
        }
        if (e->opts.include_usage) {
            rc |= chunk_head(e, out);
            rc |= kt_buf_puts(out, ",\"choices\":[],\"usage\":");
            rc |= put_usage(out, &e->usage);
            rc |= kt_buf_puts(out, "}\n\n");
        }
        rc |= kt_buf_puts(out, "data: [DONE]\n\n");
        e->done = 1;
        break;
    case KT_EV_ERROR:
        /* the OpenAI SDKs raise an APIError on a chunk carrying "error" */
        rc |= kt_buf_puts(out, "data: ");
        rc |= kt_wire_openai_error_body(ev->error, out);
        rc |= kt_buf_puts(out, "\n\ndata: [DONE]\n\n");
        e->done = 1;
        break;
    default:
        break;
    }
    return rc ? KT_ENOMEM : 0;
}

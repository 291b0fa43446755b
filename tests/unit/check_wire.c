/* check_wire: every mapping rule of the OpenAI ⇄ Anthropic codecs, on the
 * providers' documented payloads (tests/data/wire): requests, responses,
 * errors, round trips, the same-format fast path, policy text rewriting,
 * and streams in both directions split at awkward boundaries. */
#define _GNU_SOURCE
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/sse.h"
#include "kt/wire.h"

#ifndef KT_WIRE_DATA
#define KT_WIRE_DATA "tests/data/wire"
#endif

/* ---- helpers: fixtures and JSON paths (freed per test) ---- */

static struct json_object *jpool[64];
static int njpool;
static char *spool[64];
static int nspool;

static void pool_free(void)
{
    for (int i = 0; i < njpool; i++)
        json_object_put(jpool[i]);
    for (int i = 0; i < nspool; i++)
        free(spool[i]);
    njpool = nspool = 0;
}

static char *slurp(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", KT_WIRE_DATA, name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    ck_assert_int_lt(nspool, 64);
    spool[nspool++] = s;
    return s;
}

static struct json_object *J(const char *s)
{
    struct json_object *o = json_tokener_parse(s);
    ck_assert_msg(o != NULL, "not JSON: %s", s);
    ck_assert_int_lt(njpool, 64);
    jpool[njpool++] = o;
    return o;
}

/* "a.b[0].c" */
static struct json_object *jp(struct json_object *o, const char *path)
{
    char key[128];
    const char *p = path;
    while (o && *p) {
        if (*p == '.') {
            p++;
            continue;
        }
        if (*p == '[') {
            int idx = atoi(p + 1);
            o = json_object_is_type(o, json_type_array) ? json_object_array_get_idx(o, (size_t)idx) : NULL;
            p = strchr(p, ']') + 1;
            continue;
        }
        size_t n = strcspn(p, ".[");
        snprintf(key, sizeof key, "%.*s", (int)n, p);
        struct json_object *v = NULL;
        if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
            return NULL;
        o = v;
        p += n;
    }
    return o;
}

static const char *js(struct json_object *o, const char *path)
{
    struct json_object *v = jp(o, path);
    ck_assert_msg(v && json_object_is_type(v, json_type_string), "no string at %s in %s", path,
                  json_object_to_json_string(o));
    return json_object_get_string(v);
}

static long ji(struct json_object *o, const char *path)
{
    struct json_object *v = jp(o, path);
    ck_assert_msg(v && json_object_is_type(v, json_type_int), "no int at %s in %s", path,
                  json_object_to_json_string(o));
    return (long)json_object_get_int64(v);
}

static size_t jlen(struct json_object *o, const char *path)
{
    struct json_object *v = jp(o, path);
    ck_assert_msg(v && json_object_is_type(v, json_type_array), "no array at %s", path);
    return json_object_array_length(v);
}

static int jhas(struct json_object *o, const char *path)
{
    return jp(o, path) != NULL;
}

static struct json_object *xreq(enum kt_format from, enum kt_format to, const char *body,
                                const char *model)
{
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_request req;
    struct kt_err err = {0};
    int rc = kt_wire_decode_request(from, body, strlen(body), &a, &req, &err);
    ck_assert_msg(rc == 0, "decode: %s", err.msg);
    struct kt_buf out = {0};
    ck_assert_int_eq(kt_wire_encode_request(to, &req, model, &out), 0);
    struct json_object *o = J(out.data);
    kt_buf_free(&out);
    kt_arena_free(&a);
    return o;
}

static struct json_object *xresp(enum kt_format from, enum kt_format to, const char *body)
{
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_response resp;
    struct kt_err err = {0};
    int rc = kt_wire_decode_response(from, body, strlen(body), &a, &resp, &err);
    ck_assert_msg(rc == 0, "decode: %s", err.msg);
    struct kt_buf out = {0};
    ck_assert_int_eq(kt_wire_encode_response(to, &resp, &out), 0);
    struct json_object *o = J(out.data);
    kt_buf_free(&out);
    kt_arena_free(&a);
    return o;
}

static int decode_fails(enum kt_format fmt, const char *body, const char *needle)
{
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_request req;
    struct kt_err err = {0};
    int rc = kt_wire_decode_request(fmt, body, strlen(body), &a, &req, &err);
    kt_arena_free(&a);
    ck_assert_msg(rc == KT_EINVAL, "expected KT_EINVAL for %s, got %d", body, rc);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
    return 1;
}

/* ---- requests: OpenAI client → Anthropic target ---- */

START_TEST(test_req_openai_to_anthropic_basic)
{
    struct json_object *o = xreq(KT_FMT_OPENAI, KT_FMT_ANTHROPIC,
                                 slurp("openai_request_basic.json", NULL), "claude-sonnet-4-20250514");
    ck_assert_str_eq(js(o, "model"), "claude-sonnet-4-20250514");
    /* system and developer messages concatenate into system */
    ck_assert_str_eq(js(o, "system"), "You are a helpful assistant.\nAnswer in English.");
    ck_assert_uint_eq(jlen(o, "messages"), 1);
    ck_assert_str_eq(js(o, "messages[0].role"), "user");
    ck_assert_str_eq(js(o, "messages[0].content[0].text"), "Hello!");
    ck_assert_int_eq(ji(o, "max_tokens"), 300);          /* from max_completion_tokens */
    ck_assert_double_eq(json_object_get_double(jp(o, "temperature")), 1.0);  /* 1.5 capped */
    ck_assert_double_eq_tol(json_object_get_double(jp(o, "top_p")), 0.9, 1e-9);
    ck_assert_uint_eq(jlen(o, "stop_sequences"), 1);        /* whitespace-only dropped */
    ck_assert_str_eq(js(o, "stop_sequences[0]"), "\n\nHuman:");
    ck_assert(json_object_get_boolean(jp(o, "stream")));
    ck_assert_str_eq(js(o, "metadata.user_id"), "user-1234");
    /* ignored OpenAI-only fields never reach Anthropic */
    ck_assert(!jhas(o, "seed") && !jhas(o, "logprobs") && !jhas(o, "presence_penalty") &&
              !jhas(o, "response_format") && !jhas(o, "stream_options") && !jhas(o, "user"));
    pool_free();
}
END_TEST

START_TEST(test_req_openai_to_anthropic_tools_images)
{
    struct json_object *o = xreq(KT_FMT_OPENAI, KT_FMT_ANTHROPIC,
                                 slurp("openai_request_tools.json", NULL), NULL);
    ck_assert_str_eq(js(o, "model"), "gpt-4o");
    ck_assert_int_eq(ji(o, "max_tokens"), KT_WIRE_DEFAULT_MAX_TOKENS);
    ck_assert_uint_eq(jlen(o, "messages"), 3);
    /* user: text, data URL → base64 source, http URL → url source */
    ck_assert_str_eq(js(o, "messages[0].content[1].type"), "image");
    ck_assert_str_eq(js(o, "messages[0].content[1].source.type"), "base64");
    ck_assert_str_eq(js(o, "messages[0].content[1].source.media_type"), "image/jpeg");
    ck_assert_str_eq(js(o, "messages[0].content[1].source.data"), "/9j/4AAQSkZJRg==");
    ck_assert_str_eq(js(o, "messages[0].content[2].source.type"), "url");
    ck_assert_str_eq(js(o, "messages[0].content[2].source.url"),
                     "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg");
    /* assistant tool_calls → tool_use with input objects */
    ck_assert_str_eq(js(o, "messages[1].role"), "assistant");
    ck_assert_uint_eq(jlen(o, "messages[1].content"), 2);
    ck_assert_str_eq(js(o, "messages[1].content[0].type"), "tool_use");
    ck_assert_str_eq(js(o, "messages[1].content[0].id"), "call_abc123");
    ck_assert_str_eq(js(o, "messages[1].content[0].name"), "get_current_weather");
    ck_assert_str_eq(js(o, "messages[1].content[0].input.location"), "Boston, MA");
    ck_assert_str_eq(js(o, "messages[1].content[1].input.location"), "Paris");
    /* two tool messages and the next user text merge into one user turn */
    ck_assert_str_eq(js(o, "messages[2].role"), "user");
    ck_assert_uint_eq(jlen(o, "messages[2].content"), 3);
    ck_assert_str_eq(js(o, "messages[2].content[0].type"), "tool_result");
    ck_assert_str_eq(js(o, "messages[2].content[0].tool_use_id"), "call_abc123");
    ck_assert_str_eq(js(o, "messages[2].content[0].content"), "{\"temperature\": 22, \"unit\": \"celsius\"}");
    ck_assert_str_eq(js(o, "messages[2].content[1].tool_use_id"), "call_def456");
    ck_assert_str_eq(js(o, "messages[2].content[1].content"), "sunny");
    ck_assert_str_eq(js(o, "messages[2].content[2].text"), "Thanks. And tomorrow?");
    /* tools and tool_choice */
    ck_assert_str_eq(js(o, "tools[0].name"), "get_current_weather");
    ck_assert_str_eq(js(o, "tools[0].description"), "Get the current weather in a given location");
    ck_assert_str_eq(js(o, "tools[0].input_schema.required[0]"), "location");
    ck_assert(!jhas(o, "tools[0].strict"));
    ck_assert_str_eq(js(o, "tool_choice.type"), "tool");
    ck_assert_str_eq(js(o, "tool_choice.name"), "get_current_weather");
    ck_assert(json_object_get_boolean(jp(o, "tool_choice.disable_parallel_tool_use")));
    pool_free();
}
END_TEST

START_TEST(test_req_tool_choice_table)
{
    static const struct { const char *oa, *an, *back; } rows[] = {
        { "\"auto\"", "auto", "auto" }, { "\"none\"", "none", "none" },
        { "\"required\"", "any", "required" },
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                 "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":%s}",
                 rows[i].oa);
        struct json_object *o = xreq(KT_FMT_OPENAI, KT_FMT_ANTHROPIC, body, NULL);
        ck_assert_str_eq(js(o, "tool_choice.type"), rows[i].an);
        ck_assert_str_eq(js(o, "tools[0].input_schema.type"), "object");
        /* and back */
        struct json_object *b = xreq(KT_FMT_ANTHROPIC, KT_FMT_OPENAI, json_object_to_json_string(o), NULL);
        ck_assert_str_eq(js(b, "tool_choice"), rows[i].back);
        pool_free();
    }
}
END_TEST

START_TEST(test_req_openai_errors)
{
    decode_fails(KT_FMT_OPENAI, "{\"model\":\"m\",\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "n = 1");
    decode_fails(KT_FMT_OPENAI, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}", "invalid JSON");
    decode_fails(KT_FMT_OPENAI, "[1,2]", "JSON object");
    decode_fails(KT_FMT_OPENAI, "{\"model\":\"m\"}", "messages: required");
    decode_fails(KT_FMT_OPENAI, "{\"model\":\"m\",\"messages\":[]}", "must not be empty");
    decode_fails(KT_FMT_OPENAI, "{\"model\":\"m\",\"messages\":\"hi\"}", "messages: required");
    decode_fails(KT_FMT_OPENAI, "{\"model\":7,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model");
    decode_fails(KT_FMT_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content");
    decode_fails(KT_FMT_OPENAI, "{\"messages\":[{\"content\":\"x\"}]}", "messages[0]");
    decode_fails(KT_FMT_OPENAI, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "unknown role");
    decode_fails(KT_FMT_OPENAI, "{\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"x\"}]}", "function");
    decode_fails(KT_FMT_OPENAI, "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "tool_call_id");
    decode_fails(KT_FMT_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}", "temperature");
    decode_fails(KT_FMT_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":-5}", "max_tokens");
    decode_fails(KT_FMT_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}", "stream");
    decode_fails(KT_FMT_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"functions\":[]}", "functions");
    decode_fails(KT_FMT_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}", "input_audio");
    decode_fails(KT_FMT_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"ftp://x\"}}]}]}", "image_url.url");
    decode_fails(KT_FMT_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"code_interpreter\"}]}", "tools[0]");
    decode_fails(KT_FMT_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"sometimes\"}", "tool_choice");
    decode_fails(KT_FMT_OPENAI, "{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]},{\"role\":\"user\",\"content\":\"x\"}]}", "only hold text");
    decode_fails(KT_FMT_ANTHROPIC, "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}", "role");
    decode_fails(KT_FMT_ANTHROPIC, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", "content: required");
    decode_fails(KT_FMT_ANTHROPIC, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"file\"}}]}]}", "source.type");
    decode_fails(KT_FMT_ANTHROPIC, "{\"model\":\"m\",\"max_tokens\":\"many\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "max_tokens");
    /* n = 1 explicitly is fine */
    struct json_object *o = xreq(KT_FMT_OPENAI, KT_FMT_ANTHROPIC,
                                 "{\"model\":\"m\",\"n\":1,\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL);
    ck_assert_int_eq(ji(o, "max_tokens"), 9);
    pool_free();
}
END_TEST

/* ---- requests: Anthropic client → OpenAI target ---- */

START_TEST(test_req_anthropic_to_openai_basic)
{
    struct json_object *o = xreq(KT_FMT_ANTHROPIC, KT_FMT_OPENAI,
                                 slurp("anthropic_request_basic.json", NULL), "gpt-4o");
    ck_assert_str_eq(js(o, "model"), "gpt-4o");
    ck_assert_uint_eq(jlen(o, "messages"), 4);
    ck_assert_str_eq(js(o, "messages[0].role"), "system");
    ck_assert_str_eq(js(o, "messages[0].content"), "You are a seasoned data scientist.");
    ck_assert_str_eq(js(o, "messages[1].content"), "Hello, Claude");
    ck_assert_str_eq(js(o, "messages[2].role"), "assistant");
    ck_assert_str_eq(js(o, "messages[2].content"), "Hello!");
    ck_assert_str_eq(js(o, "messages[3].content"), "Can you describe LLMs to me?");
    ck_assert_int_eq(ji(o, "max_tokens"), 1024);
    ck_assert_double_eq_tol(json_object_get_double(jp(o, "temperature")), 0.7, 1e-9);
    ck_assert_str_eq(js(o, "stop[0]"), "END");
    ck_assert_str_eq(js(o, "user"), "13803d75-b4b5-4c3e-b2a2-6f21399b021b");
    ck_assert(!jhas(o, "top_k") && !jhas(o, "stream") && !jhas(o, "metadata"));
    pool_free();
}
END_TEST

START_TEST(test_req_anthropic_to_openai_tools)
{
    struct json_object *o = xreq(KT_FMT_ANTHROPIC, KT_FMT_OPENAI,
                                 slurp("anthropic_request_tools.json", NULL), NULL);
    ck_assert_uint_eq(jlen(o, "messages"), 4);
    ck_assert_str_eq(js(o, "messages[0].content[0].type"), "image_url");
    ck_assert_str_eq(js(o, "messages[0].content[0].image_url.url"), "data:image/png;base64,iVBORw0KGgo=");
    ck_assert_str_eq(js(o, "messages[0].content[1].image_url.url"),
                     "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg");
    ck_assert_str_eq(js(o, "messages[0].content[2].text"), "What's the weather like in San Francisco?");
    /* assistant: thinking dropped, text kept, tool_use → tool_calls */
    ck_assert_str_eq(js(o, "messages[1].content"), "I'll check the weather.");
    ck_assert_str_eq(js(o, "messages[1].tool_calls[0].id"), "toolu_01A09q90qw90lq917835lq9");
    ck_assert_str_eq(js(o, "messages[1].tool_calls[0].type"), "function");
    ck_assert_str_eq(js(o, "messages[1].tool_calls[0].function.name"), "get_weather");
    struct json_object *args = J(js(o, "messages[1].tool_calls[0].function.arguments"));
    ck_assert_str_eq(js(args, "location"), "San Francisco, CA");
    /* tool_result → role tool before the rest of the user turn */
    ck_assert_str_eq(js(o, "messages[2].role"), "tool");
    ck_assert_str_eq(js(o, "messages[2].tool_call_id"), "toolu_01A09q90qw90lq917835lq9");
    ck_assert_str_eq(js(o, "messages[2].content"), "15 degrees");
    ck_assert_str_eq(js(o, "messages[3].role"), "user");
    ck_assert_str_eq(js(o, "messages[3].content"), "And in Celsius?");
    /* server tool (web_search) has no OpenAI form */
    ck_assert_uint_eq(jlen(o, "tools"), 1);
    ck_assert_str_eq(js(o, "tools[0].function.name"), "get_weather");
    ck_assert_str_eq(js(o, "tools[0].function.parameters.properties.location.type"), "string");
    ck_assert_str_eq(js(o, "tool_choice"), "required");
    ck_assert(!json_object_get_boolean(jp(o, "parallel_tool_calls")));
    ck_assert_int_eq(ji(o, "max_tokens"), 16000);
    pool_free();
}
END_TEST

START_TEST(test_req_stream_asks_usage)
{
    struct json_object *o = xreq(KT_FMT_ANTHROPIC, KT_FMT_OPENAI,
                                 "{\"model\":\"m\",\"max_tokens\":5,\"stream\":true,"
                                 "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL);
    ck_assert(json_object_get_boolean(jp(o, "stream")));
    ck_assert(json_object_get_boolean(jp(o, "stream_options.include_usage")));
    pool_free();
}
END_TEST

/* Anthropic → IR → OpenAI → IR → Anthropic keeps what both formats share. */
START_TEST(test_req_roundtrip)
{
    const char *an = slurp("anthropic_request_tools.json", NULL);
    struct json_object *oa = xreq(KT_FMT_ANTHROPIC, KT_FMT_OPENAI, an, NULL);
    struct json_object *back = xreq(KT_FMT_OPENAI, KT_FMT_ANTHROPIC, json_object_to_json_string(oa), NULL);
    ck_assert_uint_eq(jlen(back, "messages"), 3);
    ck_assert_str_eq(js(back, "messages[0].content[0].source.media_type"), "image/png");
    ck_assert_str_eq(js(back, "messages[0].content[0].source.data"), "iVBORw0KGgo=");
    ck_assert_str_eq(js(back, "messages[0].content[1].source.type"), "url");
    ck_assert_str_eq(js(back, "messages[1].content[1].type"), "tool_use");
    ck_assert_str_eq(js(back, "messages[1].content[1].input.location"), "San Francisco, CA");
    ck_assert_str_eq(js(back, "messages[2].content[0].tool_use_id"), "toolu_01A09q90qw90lq917835lq9");
    ck_assert_str_eq(js(back, "messages[2].content[1].text"), "And in Celsius?");
    ck_assert_str_eq(js(back, "tool_choice.type"), "any");
    ck_assert(json_object_get_boolean(jp(back, "tool_choice.disable_parallel_tool_use")));

    const char *oab = slurp("openai_request_tools.json", NULL);
    struct json_object *a2 = xreq(KT_FMT_OPENAI, KT_FMT_ANTHROPIC, oab, NULL);
    struct json_object *o2 = xreq(KT_FMT_ANTHROPIC, KT_FMT_OPENAI, json_object_to_json_string(a2), NULL);
    ck_assert_uint_eq(jlen(o2, "messages"), 5);
    ck_assert_str_eq(js(o2, "messages[1].tool_calls[1].id"), "call_def456");
    ck_assert_str_eq(js(o2, "messages[2].role"), "tool");
    ck_assert_str_eq(js(o2, "messages[3].tool_call_id"), "call_def456");
    ck_assert_str_eq(js(o2, "messages[4].content"), "Thanks. And tomorrow?");
    ck_assert_str_eq(js(o2, "tool_choice.function.name"), "get_current_weather");
    ck_assert_str_eq(js(o2, "messages[0].content[1].image_url.url"), "data:image/jpeg;base64,/9j/4AAQSkZJRg==");
    pool_free();
}
END_TEST

/* ---- fast path and policy rewriting ---- */

static int redact_cb(void *ud, enum kt_text_place place, enum kt_role role, const char *text,
                     size_t len, const char **repl, size_t *repl_len)
{
    int *count = ud;
    (*count)++;
    const char *hit = memmem(text, len, "Claude", 6);
    if (hit && place == KT_TEXT_MESSAGE) {
        static char out[256];
        snprintf(out, sizeof out, "%.*s[REDACTED:NAME]%.*s", (int)(hit - text), text,
                 (int)(len - (size_t)(hit - text) - 6), hit + 6);
        *repl = out;
        *repl_len = strlen(out);
    }
    return 0;
}

START_TEST(test_fast_path_and_rewrite)
{
    const char *body = slurp("anthropic_request_basic.json", NULL);
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_request req;
    struct kt_err err = {0};
    ck_assert_int_eq(kt_wire_decode_request(KT_FMT_ANTHROPIC, body, strlen(body), &a, &req, &err), 0);
    struct kt_buf out = {0};
    /* unchanged, same model: the original bytes */
    ck_assert_int_eq(kt_wire_encode_request(KT_FMT_ANTHROPIC, &req, "claude-sonnet-4-20250514", &out), 0);
    ck_assert_str_eq(out.data, body);
    /* another model: only the model changes; fields the IR does not model survive */
    kt_buf_reset(&out);
    ck_assert_int_eq(kt_wire_encode_request(KT_FMT_ANTHROPIC, &req, "claude-opus-4-1", &out), 0);
    struct json_object *o = J(out.data);
    ck_assert_str_eq(js(o, "model"), "claude-opus-4-1");
    ck_assert_str_eq(js(o, "system[0].cache_control.type"), "ephemeral");
    /* a policy rewrites text: modified, re-encoded */
    int count = 0;
    ck_assert_int_eq(kt_ir_request_texts(&req, &a, redact_cb, &count), 0);
    ck_assert_int_eq(count, 4);                  /* system + 3 message texts */
    ck_assert(req.modified);
    kt_buf_reset(&out);
    ck_assert_int_eq(kt_wire_encode_request(KT_FMT_ANTHROPIC, &req, NULL, &out), 0);
    o = J(out.data);
    ck_assert_str_eq(js(o, "messages[0].content[0].text"), "Hello, [REDACTED:NAME]");
    ck_assert_str_eq(js(o, "system"), "You are a seasoned data scientist.");
    ck_assert_int_eq(ji(o, "top_k"), 40);
    kt_buf_free(&out);
    kt_arena_free(&a);
    pool_free();
}
END_TEST

START_TEST(test_response_rewrite)
{
    const char *body = slurp("anthropic_response_basic.json", NULL);
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_response resp;
    ck_assert_int_eq(kt_wire_decode_response(KT_FMT_ANTHROPIC, body, strlen(body), &a, &resp, NULL), 0);
    struct kt_buf out = {0};
    ck_assert_int_eq(kt_wire_encode_response(KT_FMT_ANTHROPIC, &resp, &out), 0);
    ck_assert_str_eq(out.data, body);            /* pass-through */
    int count = 0;
    kt_ir_response_texts(&resp, &a, redact_cb, &count);
    ck_assert_int_eq(count, 1);
    kt_buf_reset(&out);
    kt_wire_encode_response(KT_FMT_ANTHROPIC, &resp, &out);
    struct json_object *o = J(out.data);
    ck_assert_str_eq(js(o, "content[0].text"), "Hi! My name is [REDACTED:NAME].");
    ck_assert_int_eq(ji(o, "usage.cache_read_input_tokens"), 1000);
    kt_buf_free(&out);
    kt_arena_free(&a);
    pool_free();
}
END_TEST

/* ---- responses ---- */

START_TEST(test_resp_anthropic_to_openai)
{
    struct json_object *o = xresp(KT_FMT_ANTHROPIC, KT_FMT_OPENAI, slurp("anthropic_response_basic.json", NULL));
    ck_assert_str_eq(js(o, "id"), "msg_013Zva2CMHLNnXjNJJKqJ2EF");
    ck_assert_str_eq(js(o, "object"), "chat.completion");
    ck_assert_int_gt(ji(o, "created"), 1700000000);
    ck_assert_str_eq(js(o, "model"), "claude-sonnet-4-20250514");
    ck_assert_uint_eq(jlen(o, "choices"), 1);
    ck_assert_str_eq(js(o, "choices[0].message.role"), "assistant");
    ck_assert_str_eq(js(o, "choices[0].message.content"), "Hi! My name is Claude.");
    ck_assert_str_eq(js(o, "choices[0].finish_reason"), "stop");
    /* prompt_tokens = input + cache_read + cache_creation */
    ck_assert_int_eq(ji(o, "usage.prompt_tokens"), 2095 + 1000 + 100);
    ck_assert_int_eq(ji(o, "usage.completion_tokens"), 503);
    ck_assert_int_eq(ji(o, "usage.total_tokens"), 3195 + 503);
    ck_assert_int_eq(ji(o, "usage.prompt_tokens_details.cached_tokens"), 1000);

    o = xresp(KT_FMT_ANTHROPIC, KT_FMT_OPENAI, slurp("anthropic_response_tools.json", NULL));
    ck_assert_str_eq(js(o, "choices[0].finish_reason"), "tool_calls");
    ck_assert_str_eq(js(o, "choices[0].message.content"), "I'll check the current weather in San Francisco for you.");
    ck_assert_str_eq(js(o, "choices[0].message.tool_calls[0].id"), "toolu_01A09q90qw90lq917835lq9");
    ck_assert_str_eq(js(o, "choices[0].message.tool_calls[0].function.name"), "get_weather");
    struct json_object *args = J(js(o, "choices[0].message.tool_calls[0].function.arguments"));
    ck_assert_str_eq(js(args, "unit"), "celsius");
    pool_free();
}
END_TEST

START_TEST(test_resp_openai_to_anthropic)
{
    struct json_object *o = xresp(KT_FMT_OPENAI, KT_FMT_ANTHROPIC, slurp("openai_response_basic.json", NULL));
    ck_assert_str_eq(js(o, "type"), "message");
    ck_assert_str_eq(js(o, "role"), "assistant");
    ck_assert_str_eq(js(o, "id"), "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT");
    ck_assert_str_eq(js(o, "content[0].type"), "text");
    ck_assert_str_eq(js(o, "content[0].text"), "Hello! How can I assist you today?");
    ck_assert_str_eq(js(o, "stop_reason"), "end_turn");
    ck_assert(json_object_is_type(jp(o, "stop_sequence"), json_type_null));
    ck_assert_int_eq(ji(o, "usage.input_tokens"), 19);
    ck_assert_int_eq(ji(o, "usage.output_tokens"), 10);

    o = xresp(KT_FMT_OPENAI, KT_FMT_ANTHROPIC, slurp("openai_response_tools.json", NULL));
    ck_assert_str_eq(js(o, "stop_reason"), "tool_use");
    ck_assert_uint_eq(jlen(o, "content"), 1);
    ck_assert_str_eq(js(o, "content[0].type"), "tool_use");
    ck_assert_str_eq(js(o, "content[0].id"), "call_abc123");
    ck_assert_str_eq(js(o, "content[0].input.location"), "Boston, MA");
    ck_assert_int_eq(ji(o, "usage.input_tokens"), 2082 - 1920);
    ck_assert_int_eq(ji(o, "usage.cache_read_input_tokens"), 1920);
    pool_free();
}
END_TEST

START_TEST(test_finish_reason_table)
{
    static const struct { const char *anthropic, *openai, *back; } rows[] = {
        { "end_turn", "stop", "end_turn" },
        { "stop_sequence", "stop", "end_turn" },
        { "max_tokens", "length", "max_tokens" },
        { "tool_use", "tool_calls", "tool_use" },
        { "refusal", "content_filter", "refusal" },
        { "pause_turn", "stop", "end_turn" },
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\","
                 "\"content\":[{\"type\":\"text\",\"text\":\"x\"}],\"stop_reason\":\"%s\","
                 "\"stop_sequence\":%s,\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}",
                 rows[i].anthropic, strcmp(rows[i].anthropic, "stop_sequence") ? "null" : "\"END\"");
        struct json_object *o = xresp(KT_FMT_ANTHROPIC, KT_FMT_OPENAI, body);
        ck_assert_str_eq(js(o, "choices[0].finish_reason"), rows[i].openai);
        struct json_object *b = xresp(KT_FMT_OPENAI, KT_FMT_ANTHROPIC, json_object_to_json_string(o));
        ck_assert_str_eq(js(b, "stop_reason"), rows[i].back);
        /* Anthropic → Anthropic re-encode keeps stop_sequence */
        struct kt_arena a;
        kt_arena_init(&a, 0);
        struct kt_response resp;
        kt_wire_decode_response(KT_FMT_ANTHROPIC, body, strlen(body), &a, &resp, NULL);
        resp.modified = 1;
        struct kt_buf out = {0};
        kt_wire_encode_response(KT_FMT_ANTHROPIC, &resp, &out);
        struct json_object *s = J(out.data);
        ck_assert_str_eq(js(s, "stop_reason"), rows[i].anthropic);
        if (strcmp(rows[i].anthropic, "stop_sequence") == 0)
            ck_assert_str_eq(js(s, "stop_sequence"), "END");
        kt_buf_free(&out);
        kt_arena_free(&a);
        pool_free();
    }
}
END_TEST

/* ---- errors ---- */

static struct json_object *xerr(enum kt_format from, int status, const char *body,
                                enum kt_format to, int *status_out, struct kt_ir_error *ie_out)
{
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_ir_error ie;
    ck_assert_int_eq(kt_wire_decode_error(from, status, body, body ? strlen(body) : 0, &a, &ie), 0);
    struct kt_buf out = {0};
    ck_assert_int_eq(kt_wire_encode_error(to, &ie, &out, status_out), 0);
    struct json_object *o = J(out.data);
    if (ie_out) {
        *ie_out = ie;
        ie_out->message = NULL;
        ie_out->code = NULL;
    }
    kt_buf_free(&out);
    kt_arena_free(&a);
    return o;
}

START_TEST(test_errors_translate)
{
    int st;
    struct kt_ir_error ie;
    struct json_object *o = xerr(KT_FMT_ANTHROPIC, 529, slurp("anthropic_error_overloaded.json", NULL),
                                 KT_FMT_OPENAI, &st, &ie);
    ck_assert_int_eq(ie.type, KT_IRE_OVERLOADED);
    ck_assert_int_eq(st, 503);                   /* 529 → 503 for OpenAI clients */
    ck_assert_str_eq(js(o, "error.message"), "Overloaded");
    ck_assert_str_eq(js(o, "error.type"), "server_error");

    o = xerr(KT_FMT_ANTHROPIC, 429, slurp("anthropic_error_rate_limit.json", NULL), KT_FMT_OPENAI, &st, &ie);
    ck_assert_int_eq(st, 429);
    ck_assert_int_eq(ie.type, KT_IRE_RATE_LIMIT);
    ck_assert_ptr_nonnull(strstr(js(o, "error.message"), "rate limit"));

    o = xerr(KT_FMT_OPENAI, 429, slurp("openai_error_rate_limit.json", NULL), KT_FMT_ANTHROPIC, &st, &ie);
    ck_assert_int_eq(st, 429);
    ck_assert_str_eq(js(o, "type"), "error");
    ck_assert_str_eq(js(o, "error.type"), "rate_limit_error");
    ck_assert_ptr_nonnull(strstr(js(o, "error.message"), "try again in 20s"));

    o = xerr(KT_FMT_OPENAI, 401, slurp("openai_error_invalid_key.json", NULL), KT_FMT_ANTHROPIC, &st, &ie);
    ck_assert_int_eq(st, 401);
    ck_assert_str_eq(js(o, "error.type"), "authentication_error");

    /* OpenAI 503 → Anthropic overloaded 529 */
    o = xerr(KT_FMT_OPENAI, 503, "{\"error\":{\"message\":\"busy\",\"type\":\"server_error\"}}",
             KT_FMT_ANTHROPIC, &st, &ie);
    ck_assert_int_eq(st, 529);
    ck_assert_str_eq(js(o, "error.type"), "overloaded_error");

    /* not a JSON body: typed from the status, excerpt kept */
    o = xerr(KT_FMT_ANTHROPIC, 502, "<html>Bad Gateway</html>", KT_FMT_OPENAI, &st, &ie);
    ck_assert_int_eq(st, 502);
    ck_assert_ptr_nonnull(strstr(js(o, "error.message"), "HTTP 502"));
    ck_assert_ptr_nonnull(strstr(js(o, "error.message"), "Bad Gateway"));
    o = xerr(KT_FMT_OPENAI, 500, NULL, KT_FMT_ANTHROPIC, &st, &ie);
    ck_assert_str_eq(js(o, "error.type"), "api_error");
    pool_free();
}
END_TEST

START_TEST(test_error_status_table)
{
    static const struct { int status; const char *anthropic; const char *openai; int oa_status; } rows[] = {
        { 400, "invalid_request_error", "invalid_request_error", 400 },
        { 401, "authentication_error", "authentication_error", 401 },
        { 403, "permission_error", "permission_error", 403 },
        { 404, "not_found_error", "not_found_error", 404 },
        { 413, "request_too_large", "invalid_request_error", 413 },
        { 429, "rate_limit_error", "rate_limit_error", 429 },
        { 500, "api_error", "server_error", 500 },
        { 504, "timeout_error", "timeout_error", 504 },
        { 529, "overloaded_error", "server_error", 503 },
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        int st;
        struct json_object *an = xerr(KT_FMT_OPENAI, rows[i].status, "{}", KT_FMT_ANTHROPIC, &st, NULL);
        ck_assert_str_eq(js(an, "error.type"), rows[i].anthropic);
        struct json_object *oa = xerr(KT_FMT_ANTHROPIC, rows[i].status, "{}", KT_FMT_OPENAI, &st, NULL);
        ck_assert_str_eq(js(oa, "error.type"), rows[i].openai);
        ck_assert_int_eq(st, rows[i].oa_status);
        pool_free();
    }
}
END_TEST

START_TEST(test_policy_error)
{
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_ir_error e;
    kt_ir_error_make(&e, &a, KT_IRE_POLICY_VIOLATION, 0, "pii-detector", "request blocked: EMAIL found");
    struct kt_buf out = {0};
    int st;
    kt_wire_encode_error(KT_FMT_OPENAI, &e, &out, &st);
    struct json_object *o = J(out.data);
    ck_assert_int_eq(st, 400);
    ck_assert_str_eq(js(o, "error.type"), "policy_violation");
    ck_assert_str_eq(js(o, "error.code"), "pii-detector");
    ck_assert_str_eq(js(o, "error.message"), "request blocked: EMAIL found");
    kt_buf_reset(&out);
    e.http_status = 403;
    kt_wire_encode_error(KT_FMT_ANTHROPIC, &e, &out, &st);
    o = J(out.data);
    ck_assert_int_eq(st, 403);
    ck_assert_str_eq(js(o, "type"), "error");
    ck_assert_str_eq(js(o, "error.type"), "permission_error");
    kt_buf_free(&out);
    kt_arena_free(&a);
    pool_free();
}
END_TEST

/* ---- streams ---- */

struct feed {
    struct kt_stream_xlate *x;
    struct kt_buf *out;
};

static int feed_cb(void *ud, const char *event, const char *data, size_t len)
{
    struct feed *f = ud;
    return kt_stream_xlate_feed_event(f->x, event, data, len, f->out);
}

/* Run a recorded upstream stream through the parser and translator, fed in
 * pieces of `chunk` bytes; returns kt_stream_xlate_finish's code. */
static int run_stream(enum kt_format up, enum kt_format cl, const struct kt_stream_opts *opts,
                      const char *fixture, size_t chunk, size_t stop_after, struct kt_buf *out,
                      struct kt_usage *usage)
{
    size_t len;
    char *data = slurp(fixture, &len);
    if (stop_after && stop_after < len)
        len = stop_after;
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_stream_xlate *x = kt_stream_xlate_new(&a, up, cl, opts);
    ck_assert_ptr_nonnull(x);
    struct kt_sse_parser p;
    kt_sse_parser_init(&p, 0);
    struct feed f = { x, out };
    struct kt_err err = {0};
    for (size_t i = 0; i < len; i += chunk) {
        size_t n = len - i < chunk ? len - i : chunk;
        int rc = kt_sse_parser_feed(&p, data + i, n, feed_cb, &f, &err);
        ck_assert_msg(rc == 0, "feed: %d %s / %s", rc, err.msg, kt_stream_xlate_last_err(x)->msg);
    }
    int rc = kt_stream_xlate_finish(x, out);
    if (usage)
        *usage = *kt_stream_xlate_usage(x);
    kt_sse_parser_free(&p);
    kt_arena_free(&a);
    return rc;
}

/* What an OpenAI SDK would assemble from the chunks. */
struct oa_view {
    int nchunks, role_first, done, after_done, error, nfinish, has_usage, bad_object;
    char content[1024], reasoning[1024], finish[32], err_type[64], id[96];
    int ntools;
    char tool_id[4][64], tool_name[4][64], tool_args[4][256];
    long prompt, completion, total, cached;
};

static int oa_cb(void *ud, const char *event, const char *data, size_t len)
{
    struct oa_view *v = ud;
    ck_assert_ptr_null(event);
    if (v->done) {
        v->after_done++;
        return 0;
    }
    if (strcmp(data, "[DONE]") == 0) {
        v->done = 1;
        return 0;
    }
    struct json_object *o = json_tokener_parse(data);
    ck_assert_msg(o != NULL, "chunk is not JSON: %s", data);
    struct json_object *e = jp(o, "error");
    if (e) {
        v->error = 1;
        snprintf(v->err_type, sizeof v->err_type, "%s", json_object_get_string(jp(e, "type")));
        json_object_put(o);
        return 0;
    }
    if (!jp(o, "object") || strcmp(json_object_get_string(jp(o, "object")), "chat.completion.chunk"))
        v->bad_object++;
    snprintf(v->id, sizeof v->id, "%s", json_object_get_string(jp(o, "id")));
    struct json_object *ch = jp(o, "choices");
    if (ch && json_object_array_length(ch) == 0) {
        v->has_usage = 1;
        v->prompt = (long)json_object_get_int64(jp(o, "usage.prompt_tokens"));
        v->completion = (long)json_object_get_int64(jp(o, "usage.completion_tokens"));
        v->total = (long)json_object_get_int64(jp(o, "usage.total_tokens"));
        v->cached = (long)json_object_get_int64(jp(o, "usage.prompt_tokens_details.cached_tokens"));
    } else {
        struct json_object *d = jp(o, "choices[0].delta");
        if (v->nchunks == 0)
            v->role_first = jp(d, "role") != NULL;
        struct json_object *s;
        if ((s = jp(d, "content")) && json_object_is_type(s, json_type_string))
            strncat(v->content, json_object_get_string(s), sizeof v->content - strlen(v->content) - 1);
        if ((s = jp(d, "reasoning_content")))
            strncat(v->reasoning, json_object_get_string(s), sizeof v->reasoning - strlen(v->reasoning) - 1);
        struct json_object *tcs = jp(d, "tool_calls");
        for (size_t i = 0; tcs && i < json_object_array_length(tcs); i++) {
            struct json_object *tc = json_object_array_get_idx(tcs, i);
            int idx = json_object_get_int(jp(tc, "index"));
            ck_assert(idx >= 0 && idx < 4);
            if (idx + 1 > v->ntools)
                v->ntools = idx + 1;
            if (jp(tc, "id"))
                snprintf(v->tool_id[idx], 64, "%s", json_object_get_string(jp(tc, "id")));
            if (jp(tc, "function.name"))
                snprintf(v->tool_name[idx], 64, "%s", json_object_get_string(jp(tc, "function.name")));
            if (jp(tc, "function.arguments"))
                strncat(v->tool_args[idx], json_object_get_string(jp(tc, "function.arguments")),
                        255 - strlen(v->tool_args[idx]));
        }
        struct json_object *fr = jp(o, "choices[0].finish_reason");
        if (fr && json_object_is_type(fr, json_type_string)) {
            v->nfinish++;
            snprintf(v->finish, sizeof v->finish, "%s", json_object_get_string(fr));
        }
    }
    v->nchunks++;
    json_object_put(o);
    (void)len;
    return 0;
}

static void oa_parse(const struct kt_buf *out, struct oa_view *v)
{
    memset(v, 0, sizeof *v);
    struct kt_sse_parser p;
    kt_sse_parser_init(&p, 0);
    ck_assert_int_eq(kt_sse_parser_feed(&p, out->data, out->len, oa_cb, v, NULL), 0);
    kt_sse_parser_free(&p);
}

/* What @anthropic-ai/sdk's MessageStream would accept and assemble; any
 * breach of the event grammar counts in `violations`. */
struct an_view {
    int started, open, next, stopped, error, violations, nblocks, after_stop;
    char types[8][24], text[1024], thinking[1024], signature[128], stop_reason[32], err_type[64];
    char tool_id[8][64], tool_name[8][64], tool_input[8][256];
    long in, out, cache_read;
    char why[256];
};

static void violation(struct an_view *v, const char *why)
{
    if (v->violations++ == 0)
        snprintf(v->why, sizeof v->why, "%s", why);
}

static int an_cb(void *ud, const char *event, const char *data, size_t len)
{
    struct an_view *v = ud;
    struct json_object *o = json_tokener_parse(data);
    ck_assert_msg(o != NULL, "event data is not JSON: %s", data);
    const char *type = json_object_get_string(jp(o, "type"));
    if (event == NULL || type == NULL || strcmp(event, type) != 0)
        violation(v, "event name differs from data type");
    if (v->stopped)
        v->after_stop++;
    int idx = jp(o, "index") ? json_object_get_int(jp(o, "index")) : -1;
    if (strcmp(type, "message_start") == 0) {
        if (v->started)
            violation(v, "second message_start");
        v->started = 1;
        v->open = -1;
        if (!jp(o, "message.usage.input_tokens") || !jp(o, "message.content"))
            violation(v, "message_start without usage or content");
        v->in = (long)json_object_get_int64(jp(o, "message.usage.input_tokens"));
    } else if (!v->started && strcmp(type, "error") != 0) {
        violation(v, "event before message_start");
    } else if (strcmp(type, "content_block_start") == 0) {
        if (v->open != -1 || idx != v->next)
            violation(v, "content_block_start out of order");
        v->open = idx;
        v->next++;
        const char *bt = json_object_get_string(jp(o, "content_block.type"));
        if (idx >= 0 && idx < 8) {
            snprintf(v->types[idx], 24, "%s", bt);
            v->nblocks = idx + 1;
            if (strcmp(bt, "tool_use") == 0) {
                snprintf(v->tool_id[idx], 64, "%s", json_object_get_string(jp(o, "content_block.id")));
                snprintf(v->tool_name[idx], 64, "%s", json_object_get_string(jp(o, "content_block.name")));
            }
        }
    } else if (strcmp(type, "content_block_delta") == 0) {
        if (idx != v->open || idx < 0 || idx >= 8) {
            violation(v, "delta for a block that is not open");
        } else {
            const char *dt = json_object_get_string(jp(o, "delta.type"));
            if (strcmp(dt, "text_delta") == 0 && strcmp(v->types[idx], "text") == 0)
                strncat(v->text, json_object_get_string(jp(o, "delta.text")), 1023 - strlen(v->text));
            else if (strcmp(dt, "thinking_delta") == 0 && strcmp(v->types[idx], "thinking") == 0)
                strncat(v->thinking, json_object_get_string(jp(o, "delta.thinking")), 1023 - strlen(v->thinking));
            else if (strcmp(dt, "signature_delta") == 0 && strcmp(v->types[idx], "thinking") == 0)
                strncat(v->signature, json_object_get_string(jp(o, "delta.signature")), 127 - strlen(v->signature));
            else if (strcmp(dt, "input_json_delta") == 0 && strcmp(v->types[idx], "tool_use") == 0)
                strncat(v->tool_input[idx], json_object_get_string(jp(o, "delta.partial_json")),
                        255 - strlen(v->tool_input[idx]));
            else
                violation(v, "delta type does not match the block type");
        }
    } else if (strcmp(type, "content_block_stop") == 0) {
        if (idx != v->open)
            violation(v, "stop for a block that is not open");
        v->open = -1;
    } else if (strcmp(type, "message_delta") == 0) {
        if (v->open != -1)
            violation(v, "message_delta with an open block");
        snprintf(v->stop_reason, sizeof v->stop_reason, "%s", json_object_get_string(jp(o, "delta.stop_reason")));
        if (!jp(o, "usage.output_tokens"))
            violation(v, "message_delta without usage.output_tokens");
        v->out = (long)json_object_get_int64(jp(o, "usage.output_tokens"));
        if (jp(o, "usage.input_tokens"))
            v->in = (long)json_object_get_int64(jp(o, "usage.input_tokens"));
        v->cache_read = (long)json_object_get_int64(jp(o, "usage.cache_read_input_tokens"));
    } else if (strcmp(type, "message_stop") == 0) {
        if (!v->stop_reason[0])
            violation(v, "message_stop before message_delta");
        v->stopped = 1;
    } else if (strcmp(type, "error") == 0) {
        v->error = 1;
        v->stopped = 1;
        snprintf(v->err_type, sizeof v->err_type, "%s", json_object_get_string(jp(o, "error.type")));
    } else if (strcmp(type, "ping") != 0) {
        violation(v, "unknown event type");
    }
    json_object_put(o);
    (void)len;
    return 0;
}

static void an_parse(const struct kt_buf *out, struct an_view *v)
{
    memset(v, 0, sizeof *v);
    v->open = -1;
    struct kt_sse_parser p;
    kt_sse_parser_init(&p, 0);
    ck_assert_int_eq(kt_sse_parser_feed(&p, out->data, out->len, an_cb, v, NULL), 0);
    kt_sse_parser_free(&p);
}

static const size_t chunks[] = { 1, 2, 3, 5, 7, 13, 64, 100000 };
#define NCHUNKS (sizeof chunks / sizeof *chunks)

START_TEST(test_stream_anthropic_text_to_openai)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        struct kt_buf out = {0};
        struct kt_stream_opts opts = { .include_usage = 1 };
        struct kt_usage u;
        ck_assert_int_eq(run_stream(KT_FMT_ANTHROPIC, KT_FMT_OPENAI, &opts, "anthropic_stream_text.sse",
                                    chunks[c], 0, &out, &u), 0);
        struct oa_view v;
        oa_parse(&out, &v);
        ck_assert(v.role_first);
        ck_assert_int_eq(v.bad_object, 0);
        ck_assert_str_eq(v.id, "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
        ck_assert_str_eq(v.content, "Hello! \"quoted\"\nnew line");
        ck_assert_str_eq(v.finish, "stop");
        ck_assert_int_eq(v.nfinish, 1);
        ck_assert(v.has_usage);
        ck_assert_int_eq(v.prompt, 30);          /* 25 + 5 cache read */
        ck_assert_int_eq(v.cached, 5);
        ck_assert_int_eq(v.completion, 15);
        ck_assert_int_eq(v.total, 45);
        ck_assert(v.done);
        ck_assert_int_eq(v.after_done, 0);
        ck_assert_int_eq(u.input, 25);
        ck_assert_int_eq(u.output, 15);
        kt_buf_free(&out);
        pool_free();
    }
}
END_TEST

START_TEST(test_stream_anthropic_tools_to_openai)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        struct kt_buf out = {0};
        struct kt_stream_opts opts = { .include_usage = 0, .model = "claude-alias" };
        ck_assert_int_eq(run_stream(KT_FMT_ANTHROPIC, KT_FMT_OPENAI, &opts, "anthropic_stream_tools.sse",
                                    chunks[c], 0, &out, NULL), 0);
        struct oa_view v;
        oa_parse(&out, &v);
        ck_assert_ptr_nonnull(strstr(out.data, "\"model\":\"claude-alias\""));
        ck_assert_str_eq(v.content, "Okay, let's check the weather.");
        ck_assert_int_eq(v.ntools, 2);
        ck_assert_str_eq(v.tool_id[0], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
        ck_assert_str_eq(v.tool_name[0], "get_weather");
        struct json_object *args = J(v.tool_args[0]);
        ck_assert_str_eq(js(args, "location"), "San Francisco, CA");
        ck_assert_str_eq(js(args, "unit"), "fahrenheit");
        ck_assert_str_eq(v.tool_name[1], "get_time");
        ck_assert_str_eq(v.tool_args[1], "{\"tz\": \"PST\"}");
        ck_assert_str_eq(v.finish, "tool_calls");
        ck_assert(!v.has_usage);                 /* client did not ask */
        ck_assert(v.done);
        kt_buf_free(&out);
        pool_free();
    }
}
END_TEST

START_TEST(test_stream_anthropic_thinking)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        /* to OpenAI, reasoning shown only on request */
        struct kt_buf out = {0};
        struct kt_stream_opts opts = { .emit_reasoning = 1 };
        ck_assert_int_eq(run_stream(KT_FMT_ANTHROPIC, KT_FMT_OPENAI, &opts, "anthropic_stream_thinking.sse",
                                    chunks[c], 0, &out, NULL), 0);
        struct oa_view v;
        oa_parse(&out, &v);
        ck_assert_str_eq(v.reasoning, "Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3");
        ck_assert_str_eq(v.content, "27 * 453 = 12,231");
        kt_buf_reset(&out);
        opts.emit_reasoning = 0;
        run_stream(KT_FMT_ANTHROPIC, KT_FMT_OPENAI, &opts, "anthropic_stream_thinking.sse", chunks[c], 0, &out, NULL);
        oa_parse(&out, &v);
        ck_assert_str_eq(v.reasoning, "");
        ck_assert_str_eq(v.content, "27 * 453 = 12,231");
        /* Anthropic → Anthropic through the IR keeps thinking and its signature */
        kt_buf_reset(&out);
        ck_assert_int_eq(run_stream(KT_FMT_ANTHROPIC, KT_FMT_ANTHROPIC, NULL, "anthropic_stream_thinking.sse",
                                    chunks[c], 0, &out, NULL), 0);
        struct an_view an;
        an_parse(&out, &an);
        ck_assert_msg(an.violations == 0, "%s", an.why);
        ck_assert_str_eq(an.types[0], "thinking");
        ck_assert_str_eq(an.types[1], "text");
        ck_assert_str_eq(an.signature, "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds");
        ck_assert_str_eq(an.text, "27 * 453 = 12,231");
        ck_assert_str_eq(an.stop_reason, "end_turn");
        ck_assert_int_eq(an.out, 120);
        ck_assert(an.stopped);
        kt_buf_free(&out);
        pool_free();
    }
}
END_TEST

START_TEST(test_stream_openai_text_to_anthropic)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        struct kt_buf out = {0};
        struct kt_usage u;
        ck_assert_int_eq(run_stream(KT_FMT_OPENAI, KT_FMT_ANTHROPIC, NULL, "openai_stream_text.sse",
                                    chunks[c], 0, &out, &u), 0);
        struct an_view v;
        an_parse(&out, &v);
        ck_assert_msg(v.violations == 0, "%s", v.why);
        ck_assert_int_eq(v.nblocks, 1);
        ck_assert_str_eq(v.types[0], "text");
        ck_assert_str_eq(v.text, "Hello! \"quoted\"\nnew line");
        ck_assert_str_eq(v.stop_reason, "end_turn");
        ck_assert_int_eq(v.out, 15);
        ck_assert_int_eq(v.in, 25);               /* 30 prompt - 5 cached */
        ck_assert_int_eq(v.cache_read, 5);
        ck_assert(v.stopped);
        ck_assert_int_eq(v.after_stop, 0);
        ck_assert_int_eq(u.output, 15);
        kt_buf_free(&out);
        pool_free();
    }
}
END_TEST

START_TEST(test_stream_openai_tools_to_anthropic)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        struct kt_buf out = {0};
        ck_assert_int_eq(run_stream(KT_FMT_OPENAI, KT_FMT_ANTHROPIC, NULL, "openai_stream_tools.sse",
                                    chunks[c], 0, &out, NULL), 0);
        struct an_view v;
        an_parse(&out, &v);
        ck_assert_msg(v.violations == 0, "%s", v.why);
        ck_assert_int_eq(v.nblocks, 2);
        ck_assert_str_eq(v.types[0], "tool_use");
        ck_assert_str_eq(v.tool_id[0], "call_DdmO9pD3xa9XTPNJ32zg2hcA");
        ck_assert_str_eq(v.tool_name[0], "get_weather");
        struct json_object *in = J(v.tool_input[0]);
        ck_assert_str_eq(js(in, "location"), "Paris, France");
        ck_assert_str_eq(v.tool_id[1], "call_2");
        ck_assert_str_eq(v.tool_input[1], "{\"tz\": \"CET\"}");
        ck_assert_str_eq(v.stop_reason, "tool_use");
        ck_assert_int_eq(v.out, 40);
        kt_buf_free(&out);
        pool_free();
    }
}
END_TEST

START_TEST(test_stream_openai_reasoning_to_anthropic)
{
    struct kt_buf out = {0};
    ck_assert_int_eq(run_stream(KT_FMT_OPENAI, KT_FMT_ANTHROPIC, NULL, "openai_stream_reasoning.sse",
                                3, 0, &out, NULL), 0);
    struct an_view v;
    an_parse(&out, &v);
    ck_assert_msg(v.violations == 0, "%s", v.why);
    ck_assert_str_eq(v.types[0], "thinking");
    ck_assert_str_eq(v.thinking, "Think: 2+2");
    ck_assert_str_eq(v.types[1], "text");
    ck_assert_str_eq(v.text, "4");
    ck_assert_str_eq(v.stop_reason, "max_tokens");
    ck_assert_int_eq(v.out, 7);
    kt_buf_free(&out);
    pool_free();
}
END_TEST

START_TEST(test_stream_upstream_error_event)
{
    struct kt_buf out = {0};
    /* the upstream's error event ends the client stream in its own format */
    run_stream(KT_FMT_ANTHROPIC, KT_FMT_OPENAI, NULL, "anthropic_stream_error.sse", 7, 0, &out, NULL);
    struct oa_view v;
    oa_parse(&out, &v);
    ck_assert_str_eq(v.content, "Partial");
    ck_assert(v.error);
    ck_assert_str_eq(v.err_type, "server_error");
    ck_assert(v.done);
    kt_buf_reset(&out);
    run_stream(KT_FMT_ANTHROPIC, KT_FMT_ANTHROPIC, NULL, "anthropic_stream_error.sse", 7, 0, &out, NULL);
    struct an_view an;
    an_parse(&out, &an);
    ck_assert_msg(an.violations == 0, "%s", an.why);
    ck_assert(an.error);
    ck_assert_str_eq(an.err_type, "overloaded_error");
    ck_assert_int_eq(an.after_stop, 0);
    kt_buf_free(&out);
    pool_free();
}
END_TEST

START_TEST(test_stream_truncated_and_explicit_error)
{
    struct kt_buf out = {0};
    /* upstream connection dropped halfway: finish reports it and writes an error */
    ck_assert_int_eq(run_stream(KT_FMT_ANTHROPIC, KT_FMT_OPENAI, NULL, "anthropic_stream_tools.sse",
                                11, 1500, &out, NULL), KT_EIO);
    struct oa_view v;
    oa_parse(&out, &v);
    ck_assert(v.error);
    ck_assert(v.done);
    kt_buf_reset(&out);
    ck_assert_int_eq(run_stream(KT_FMT_OPENAI, KT_FMT_ANTHROPIC, NULL, "openai_stream_tools.sse",
                                11, 900, &out, NULL), KT_EIO);
    struct an_view an;
    an_parse(&out, &an);
    ck_assert(an.error);
    ck_assert_str_eq(an.err_type, "api_error");

    /* the lead ends a stream with its own error (e.g. a policy block mid-stream) */
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_stream_xlate *x = kt_stream_xlate_new(&a, KT_FMT_OPENAI, KT_FMT_ANTHROPIC, NULL);
    kt_buf_reset(&out);
    const char *chunk = "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
                        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}";
    ck_assert_int_eq(kt_stream_xlate_feed_event(x, NULL, chunk, strlen(chunk), &out), 0);
    struct kt_ir_error e;
    kt_ir_error_make(&e, &a, KT_IRE_POLICY_VIOLATION, 400, "pii-detector", "blocked");
    ck_assert_int_eq(kt_stream_xlate_error(x, &e, &out), 0);
    size_t len = out.len;
    ck_assert_int_eq(kt_stream_xlate_feed_event(x, NULL, chunk, strlen(chunk), &out), 0);
    ck_assert_int_eq(kt_stream_xlate_finish(x, &out), 0);
    ck_assert_uint_eq(out.len, len);             /* nothing after the end */
    an_parse(&out, &an);
    ck_assert_msg(an.violations == 0, "%s", an.why);
    ck_assert_str_eq(an.text, "hi");
    ck_assert_str_eq(an.err_type, "permission_error");
    kt_arena_free(&a);

    /* malformed upstream data is an error for the lead, not a crash */
    kt_arena_init(&a, 0);
    x = kt_stream_xlate_new(&a, KT_FMT_ANTHROPIC, KT_FMT_OPENAI, NULL);
    ck_assert_int_eq(kt_stream_xlate_feed_event(x, "message_start", "{oops", 5, &out), KT_EINVAL);
    ck_assert_ptr_nonnull(strstr(kt_stream_xlate_last_err(x)->msg, "malformed"));
    kt_arena_free(&a);
    kt_buf_free(&out);
    pool_free();
}
END_TEST

/* The policy hook sees each text delta and may rewrite or hold it back. */
static int upper_hook(void *ud, struct kt_stream_ev *ev)
{
    int *seen = ud;
    if (ev->type == KT_EV_TEXT_DELTA) {
        (*seen)++;
        if (ev->len >= 5 && memcmp(ev->text, "Hello", 5) == 0) {
            ev->text = "HELLO";
            ev->len = 5;
        }
        if (strstr(ev->text, "quoted"))
            ev->len = 0;                         /* held back */
    }
    return 0;
}

static int abort_hook(void *ud, struct kt_stream_ev *ev)
{
    return ev->type == KT_EV_TEXT_DELTA ? -1 : 0;
}

START_TEST(test_stream_policy_hook)
{
    int seen = 0;
    struct kt_buf out = {0};
    struct kt_stream_opts opts = { .hook = upper_hook, .hook_ud = &seen };
    ck_assert_int_eq(run_stream(KT_FMT_ANTHROPIC, KT_FMT_OPENAI, &opts, "anthropic_stream_text.sse",
                                100000, 0, &out, NULL), 0);
    struct oa_view v;
    oa_parse(&out, &v);
    ck_assert_int_eq(seen, 2);
    ck_assert_str_eq(v.content, "HELLO");
    kt_buf_reset(&out);

    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_stream_opts ab = { .hook = abort_hook };
    struct kt_stream_xlate *x = kt_stream_xlate_new(&a, KT_FMT_ANTHROPIC, KT_FMT_OPENAI, &ab);
    const char *d = "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}";
    ck_assert_int_lt(kt_stream_xlate_feed_event(x, "content_block_delta", d, strlen(d), &out), 0);
    ck_assert_ptr_nonnull(strstr(kt_stream_xlate_last_err(x)->msg, "policy"));
    kt_arena_free(&a);
    kt_buf_free(&out);
    pool_free();
}
END_TEST

/* Separate decode and encode calls, for leads that run policies in between. */
struct collect {
    struct kt_stream_enc *enc;
    struct kt_buf *out;
    int n[KT_EV_ERROR + 1];
};

static int dec_to_enc(void *ud, struct kt_stream_ev *ev)
{
    struct collect *c = ud;
    c->n[ev->type]++;
    return kt_stream_enc_event(c->enc, ev, c->out);
}

START_TEST(test_stream_decode_encode_separately)
{
    size_t len;
    char *data = slurp("openai_stream_tools.sse", &len);
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_buf out = {0};
    struct kt_stream_dec *d = kt_stream_dec_new(&a, KT_FMT_OPENAI);
    struct collect c = { .enc = kt_stream_enc_new(&a, KT_FMT_OPENAI, &(struct kt_stream_opts){ .include_usage = 1 }),
                         .out = &out };
    /* each SSE event is a line pair; parse them by hand here */
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "data: ", 6) == 0)
            ck_assert_int_eq(kt_stream_dec_feed(d, NULL, line + 6, strlen(line + 6), dec_to_enc, &c, NULL), 0);
    }
    ck_assert_int_eq(c.n[KT_EV_MESSAGE_START], 1);
    ck_assert_int_eq(c.n[KT_EV_TOOL_CALL_START], 2);
    ck_assert_int_eq(c.n[KT_EV_TOOL_ARGS_DELTA], 6);
    ck_assert_int_eq(c.n[KT_EV_FINISH], 1);
    ck_assert_int_eq(c.n[KT_EV_USAGE], 1);
    ck_assert_int_eq(c.n[KT_EV_DONE], 1);
    ck_assert(kt_stream_enc_done(c.enc));
    struct oa_view v;
    oa_parse(&out, &v);
    ck_assert_str_eq(v.tool_args[0], "{\"location\":\"Paris, France\"}");
    ck_assert_int_eq(v.prompt, 80);
    ck_assert(v.done);
    kt_buf_free(&out);
    kt_arena_free(&a);
    pool_free();
}
END_TEST


START_TEST(test_req_thinking_and_raw_blocks)
{
    /* OpenAI client enabling thinking through extra_body, no max_tokens */
    struct json_object *o = xreq(KT_FMT_OPENAI, KT_FMT_ANTHROPIC,
                                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                                 "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":8000}}", NULL);
    ck_assert_int_eq(ji(o, "thinking.budget_tokens"), 8000);
    ck_assert_int_gt(ji(o, "max_tokens"), 8000);
    /* blocks the IR does not model survive to Anthropic, not to OpenAI */
    const char *body = "{\"model\":\"m\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\",\"content\":["
                       "{\"type\":\"document\",\"source\":{\"type\":\"text\",\"media_type\":\"text/plain\",\"data\":\"doc\"}},"
                       "{\"type\":\"text\",\"text\":\"summarize\"}]}],\"temperature\":0.5}";
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_request req;
    ck_assert_int_eq(kt_wire_decode_request(KT_FMT_ANTHROPIC, body, strlen(body), &a, &req, NULL), 0);
    req.modified = 1;
    struct kt_buf out = {0};
    kt_wire_encode_request(KT_FMT_ANTHROPIC, &req, NULL, &out);
    o = J(out.data);
    ck_assert_str_eq(js(o, "messages[0].content[0].type"), "document");
    ck_assert_str_eq(js(o, "messages[0].content[0].source.data"), "doc");
    ck_assert_str_eq(js(o, "messages[0].content[1].text"), "summarize");
    kt_buf_reset(&out);
    kt_wire_encode_request(KT_FMT_OPENAI, &req, NULL, &out);
    o = J(out.data);
    ck_assert_str_eq(js(o, "messages[0].content"), "summarize");
    kt_buf_free(&out);
    kt_arena_free(&a);
    pool_free();
}
END_TEST

START_TEST(test_resp_reasoning_to_anthropic)
{
    struct json_object *o = xresp(KT_FMT_OPENAI, KT_FMT_ANTHROPIC,
        "{\"id\":\"c\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"r1\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"4\",\"reasoning_content\":\"2+2\"},"
        "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}");
    ck_assert_str_eq(js(o, "content[0].type"), "thinking");
    ck_assert_str_eq(js(o, "content[0].thinking"), "2+2");
    ck_assert_str_eq(js(o, "content[0].signature"), "");
    ck_assert_str_eq(js(o, "content[1].text"), "4");
    ck_assert_str_eq(js(o, "stop_reason"), "max_tokens");
    /* and an OpenAI response body that is not one */
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_response resp;
    struct kt_err err = {0};
    ck_assert_int_eq(kt_wire_decode_response(KT_FMT_OPENAI, "{\"choices\":[]}", 14, &a, &resp, &err), KT_EINVAL);
    ck_assert_int_eq(kt_wire_decode_response(KT_FMT_ANTHROPIC, "{\"id\":1}", 8, &a, &resp, &err), KT_EINVAL);
    kt_arena_free(&a);
    pool_free();
}
END_TEST

/* OpenAI → OpenAI through the IR (a response policy is on): the usage chunk
 * ktd asked for upstream is not shown to a client that did not ask. */
START_TEST(test_stream_openai_same_format)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        struct kt_buf out = {0};
        struct kt_usage u;
        ck_assert_int_eq(run_stream(KT_FMT_OPENAI, KT_FMT_OPENAI, NULL, "openai_stream_text.sse",
                                    chunks[c], 0, &out, &u), 0);
        struct oa_view v;
        oa_parse(&out, &v);
        ck_assert_str_eq(v.id, "chatcmpl-123");
        ck_assert_str_eq(v.content, "Hello! \"quoted\"\nnew line");
        ck_assert_str_eq(v.finish, "stop");
        ck_assert(!v.has_usage);
        ck_assert(v.done);
        ck_assert_int_eq(u.input, 25);
        ck_assert_int_eq(u.cache_read, 5);
        ck_assert_int_eq(u.output, 15);
        kt_buf_free(&out);
        pool_free();
    }
}
END_TEST

START_TEST(test_stream_azure_leading_chunk)
{
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_buf out = {0};
    struct kt_stream_xlate *x = kt_stream_xlate_new(&a, KT_FMT_OPENAI, KT_FMT_ANTHROPIC, NULL);
    const char *c0 = "{\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\","
                     "\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{}}]}";
    const char *c1 = "{\"id\":\"chatcmpl-az\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"gpt-4o\","
                     "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}";
    ck_assert_int_eq(kt_stream_xlate_feed_event(x, NULL, c0, strlen(c0), &out), 0);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_int_eq(kt_stream_xlate_feed_event(x, NULL, c1, strlen(c1), &out), 0);
    ck_assert_int_eq(kt_stream_xlate_feed_event(x, NULL, "[DONE]", 6, &out), 0);
    ck_assert_int_eq(kt_stream_xlate_finish(x, &out), 0);
    ck_assert_ptr_nonnull(strstr(out.data, "\"id\":\"chatcmpl-az\""));
    ck_assert_ptr_nonnull(strstr(out.data, "\"model\":\"gpt-4o\""));
    struct an_view v;
    an_parse(&out, &v);
    ck_assert_msg(v.violations == 0, "%s", v.why);
    ck_assert_str_eq(v.text, "ok");
    ck_assert_int_eq(kt_stream_xlate_finish_reason(x), KT_FINISH_STOP);
    kt_buf_free(&out);
    kt_arena_free(&a);
}
END_TEST

/* A redactor-like hook: holds every text delta back and releases the
 * block's text at BLOCK_STOP through kt_stream_xlate_inject. */
struct holder {
    struct kt_stream_xlate *x;
    char held[512];
    size_t n;
    int index;
};

static int hold_hook(void *ud, struct kt_stream_ev *ev)
{
    struct holder *h = ud;
    if (ev->type == KT_EV_TEXT_DELTA) {
        memcpy(h->held + h->n, ev->text, ev->len);
        h->n += ev->len;
        h->index = ev->index;
        ev->len = 0;
    } else if ((ev->type == KT_EV_BLOCK_STOP || ev->type == KT_EV_FINISH) && h->n) {
        char *at = memmem(h->held, h->n, "quoted", 6);
        if (at)
            memcpy(at, "XXXXXX", 6);
        struct kt_stream_ev t = { .type = KT_EV_TEXT_DELTA, .index = h->index, .text = h->held, .len = h->n };
        int rc = kt_stream_xlate_inject(h->x, &t);
        h->n = 0;
        return rc;
    }
    return 0;
}

START_TEST(test_stream_hook_holds_and_injects)
{
    for (int up = 0; up < 2; up++) {
        for (int cl = 0; cl < 2; cl++) {
            struct kt_arena a;
            kt_arena_init(&a, 0);
            struct holder h = {0};
            struct kt_stream_opts opts = { .hook = hold_hook, .hook_ud = &h };
            h.x = kt_stream_xlate_new(&a, up ? KT_FMT_OPENAI : KT_FMT_ANTHROPIC,
                                      cl ? KT_FMT_OPENAI : KT_FMT_ANTHROPIC, &opts);
            size_t len;
            char *data = slurp(up ? "openai_stream_text.sse" : "anthropic_stream_text.sse", &len);
            struct kt_sse_parser p;
            kt_sse_parser_init(&p, 0);
            struct kt_buf out = {0};
            struct feed f = { h.x, &out };
            for (size_t i = 0; i < len; i += 9)
                ck_assert_int_eq(kt_sse_parser_feed(&p, data + i, len - i < 9 ? len - i : 9, feed_cb, &f, NULL), 0);
            ck_assert_int_eq(kt_stream_xlate_finish(h.x, &out), 0);
            ck_assert_int_eq(kt_stream_xlate_inject(h.x, &(struct kt_stream_ev){ .type = KT_EV_USAGE }), KT_EINVAL);
            if (cl) {
                struct oa_view v;
                oa_parse(&out, &v);
                ck_assert_str_eq(v.content, "Hello! \"XXXXXX\"\nnew line");
                ck_assert_int_eq(v.nchunks, 3);  /* role, one content chunk, finish */
            } else {
                struct an_view v;
                an_parse(&out, &v);
                ck_assert_msg(v.violations == 0, "%s", v.why);
                ck_assert_str_eq(v.text, "Hello! \"XXXXXX\"\nnew line");
            }
            kt_sse_parser_free(&p);
            kt_buf_free(&out);
            kt_arena_free(&a);
            pool_free();
        }
    }
}
END_TEST


/* The Anthropic text_delta fast path (no JSON tree) must decode exactly
 * what the general json-c path decodes, escapes and surrogates included,
 * and leave every other shape to the general path. */
struct delta_seen {
    char text[256];
    size_t len;
    int index, n;
};

static int collect_delta(void *ud, struct kt_stream_ev *ev)
{
    struct delta_seen *d = ud;
    if (ev->type == KT_EV_TEXT_DELTA) {
        memcpy(d->text + d->len, ev->text, ev->len);
        d->len += ev->len;
        d->index = ev->index;
        d->n++;
    }
    return 0;
}

START_TEST(test_stream_anthropic_text_delta_fast_path)
{
    static const char *const fast[] = {
        "{\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00/\\/\"}}",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"plain words \"}}\n",
        "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"text_delta\",\"text\":\"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 and a longer run of plain ASCII text\\tafter it\"}}",
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"lone \\udc00 and \\ud800\\u0041\"}}",
    };
    static const char *const slow[] = {   /* the same content, other shapes */
        "{\"type\": \"content_block_delta\", \"index\": 3, \"delta\": {\"type\": \"text_delta\", \"text\": \"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00/\\/\"}}",
        "{\"index\":0,\"type\":\"content_block_delta\",\"delta\":{\"text\":\"plain words \",\"type\":\"text_delta\"}}",
        "{\"index\":2,\"type\":\"content_block_delta\",\"delta\":{\"text\":\"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 and a longer run of plain ASCII text\\tafter it\",\"type\":\"text_delta\"}}",
        "{\"index\":1,\"type\":\"content_block_delta\",\"delta\":{\"text\":\"lone \\udc00 and \\ud800\\u0041\",\"type\":\"text_delta\"}}",
    };
    for (size_t i = 0; i < sizeof fast / sizeof *fast; i++) {
        struct kt_arena a;
        kt_arena_init(&a, 4096);
        struct delta_seen f = {0}, g = {0};
        struct kt_stream_dec *d = kt_stream_dec_new(&a, KT_FMT_ANTHROPIC);
        ck_assert_int_eq(kt_stream_dec_feed(d, "content_block_delta", fast[i], strlen(fast[i]), collect_delta, &f, NULL), 0);
        ck_assert_int_eq(kt_stream_dec_feed(d, "content_block_delta", slow[i], strlen(slow[i]), collect_delta, &g, NULL), 0);
        ck_assert_int_eq(f.n, 1);
        ck_assert_int_eq(g.n, 1);
        ck_assert_int_eq(f.index, g.index);
        ck_assert_uint_eq(f.len, g.len);
        ck_assert_int_eq(memcmp(f.text, g.text, f.len), 0);
        kt_arena_free(&a);
    }
    /* A lone low surrogate or a bad escape is not the fast path's to judge. */
    struct kt_arena a;
    kt_arena_init(&a, 4096);
    struct delta_seen h = {0};
    struct kt_stream_dec *d = kt_stream_dec_new(&a, KT_FMT_ANTHROPIC);
    const char *odd = "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\\q\"}}";
    ck_assert_int_ne(kt_stream_dec_feed(d, "content_block_delta", odd, strlen(odd), collect_delta, &h, NULL), 0);
    ck_assert_int_eq(h.n, 0);
    /* malformed UTF-8 is refused whatever the event's shape */
    static const char *const bad8[] = {
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\xff y\"}}",
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\xc3\"}}",
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"\xed\xa0\x80\"}}",
        "{\"index\":1,\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"x\xff y\"}}",
    };
    for (size_t i = 0; i < sizeof bad8 / sizeof *bad8; i++)
        ck_assert_int_eq(kt_stream_dec_feed(d, "content_block_delta", bad8[i], strlen(bad8[i]), collect_delta, &h, NULL), KT_EINVAL);
    ck_assert_int_eq(h.n, 0);
    kt_arena_free(&a);
}
END_TEST

/* ---- kt_json decoding: strictness, raw spans, the model splice ---- */

static char *swap_model(enum kt_format fmt, const char *body, const char *model, struct kt_buf *out)
{
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_request req;
    struct kt_err err = {0};
    ck_assert_int_eq(kt_wire_decode_request(fmt, body, strlen(body), &a, &req, &err), 0);
    kt_buf_reset(out);
    ck_assert_int_eq(kt_wire_encode_request(fmt, &req, model, out), 0);
    kt_arena_free(&a);
    return out->data;
}

START_TEST(test_fast_path_model_splice)
{
    struct kt_buf out = {0};
    /* only the model's value changes: spacing, key order, escapes and
     * number spellings of everything else are the client's bytes */
    ck_assert_str_eq(swap_model(KT_FMT_OPENAI,
        "{ \"messages\" : [ {\"role\":\"user\",\"content\":\"caf\\u00e9 \\/\"} ],\n \"model\": \"gpt-4o\", \"temperature\": 1.50 }",
        "claude-x", &out),
        "{ \"messages\" : [ {\"role\":\"user\",\"content\":\"caf\\u00e9 \\/\"} ],\n \"model\": \"claude-x\", \"temperature\": 1.50 }");
    /* no model: added at the end */
    ck_assert_str_eq(swap_model(KT_FMT_ANTHROPIC,
        "{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}] }\n", "m\"1", &out),
        "{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}] ,\"model\":\"m\\\"1\"}\n");
    /* a repeated model: every copy replaced, whichever one upstream reads */
    ck_assert_str_eq(swap_model(KT_FMT_OPENAI,
        "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"model\":\"keep\"}],\"model\":\"b\"}",
        "c", &out),
        "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"model\":\"keep\"}],\"model\":\"c\"}");
    /* an escaped model: found again by parsing */
    ck_assert_str_eq(swap_model(KT_FMT_OPENAI,
        "{\"model\":\"g\\u0070t\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "c", &out),
        "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    /* two requests decoded, the first encoded: its own spans, not the
     * second's (the fast path remembers only the last decode) */
    {
        struct kt_arena a;
        kt_arena_init(&a, 0);
        struct kt_request r1, r2;
        const char *b1 = "{\"messages\":[{\"role\":\"user\",\"content\":\"one\"}], \"model\":\"m1\"}";
        const char *b2 = "{\"model\":\"m2\",\"messages\":[{\"role\":\"user\",\"content\":\"two\"}]}";
        ck_assert_int_eq(kt_wire_decode_request(KT_FMT_OPENAI, b1, strlen(b1), &a, &r1, NULL), 0);
        ck_assert_int_eq(kt_wire_decode_request(KT_FMT_OPENAI, b2, strlen(b2), &a, &r2, NULL), 0);
        kt_buf_reset(&out);
        ck_assert_int_eq(kt_wire_encode_request(KT_FMT_OPENAI, &r1, "zz", &out), 0);
        ck_assert_str_eq(out.data, "{\"messages\":[{\"role\":\"user\",\"content\":\"one\"}], \"model\":\"zz\"}");
        kt_buf_reset(&out);
        ck_assert_int_eq(kt_wire_encode_request(KT_FMT_OPENAI, &r2, "zz", &out), 0);
        ck_assert_str_eq(out.data, "{\"model\":\"zz\",\"messages\":[{\"role\":\"user\",\"content\":\"two\"}]}");
        kt_arena_free(&a);
    }
    /* same model: the original bytes */
    const char *same = "{\"model\" :\"c\" , \"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    ck_assert_str_eq(swap_model(KT_FMT_OPENAI, same, "c", &out), same);
    kt_buf_free(&out);
}
END_TEST

START_TEST(test_strict_json_is_400)
{
    /* RFC 8259 only: what json-c tolerated is now "invalid JSON" too */
    static const char *const bad[] = {
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],}",
        "{\"model\":'m',\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        "/* hi */{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":NaN}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"tab\tin string\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]} trailing",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        decode_fails(KT_FMT_OPENAI, bad[i], "invalid JSON in body");
        decode_fails(KT_FMT_ANTHROPIC, bad[i], "invalid JSON in body");
    }
    decode_fails(KT_FMT_OPENAI, "\"just a string\"", "body must be a JSON object");
    decode_fails(KT_FMT_OPENAI, "", "empty body");
    /* null reads as absent where json-c's get_ex gave NULL, and as the
     * wrong type where a value is required */
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_request req;
    struct kt_err err = {0};
    const char *body = "{\"model\":\"m\",\"temperature\":null,\"stop\":null,\"tools\":null,\"user\":null,"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9\\ud83d\\ude00\\u0000!\"}]}";
    ck_assert_int_eq(kt_wire_decode_request(KT_FMT_OPENAI, body, strlen(body), &a, &req, &err), 0);
    ck_assert_int_eq(req.has_temperature, 0);
    ck_assert_uint_eq(req.nstop, 0);
    ck_assert_ptr_null(req.user);
    ck_assert_uint_eq(req.msgs[0].parts[0].len, 9);
    ck_assert_int_eq(memcmp(req.msgs[0].parts[0].text, "h\xc3\xa9\xf0\x9f\x98\x80\0!", 10), 0);
    kt_arena_free(&a);
    decode_fails(KT_FMT_OPENAI, "{\"model\":null,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model");
    decode_fails(KT_FMT_ANTHROPIC, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":null}]}", "content: required");
}
END_TEST

START_TEST(test_opaque_json_spans)
{
    /* tool schemas and tool inputs travel as their own bytes, minus
     * insignificant whitespace: no re-serialisation */
    struct json_object *o = xreq(KT_FMT_OPENAI, KT_FMT_ANTHROPIC,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"parameters\":{ \"type\" : \"object\",\n \"properties\" : { \"q\" : "
        "{\"type\":\"string\", \"description\": \"a b\\u00e9\", \"maximum\": 1e3 } } } }}]}", NULL);
    struct json_object *schema = jp(o, "tools[0].input_schema");
    ck_assert_ptr_nonnull(schema);
    ck_assert_str_eq(json_object_to_json_string_ext(schema, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                     "{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\",\"description\":\"a bé\",\"maximum\":1e3}}}");
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_request req;
    struct kt_err err = {0};
    const char *body = "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\",\"content\":["
                       "{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\": { \"q\" : \"x y\\\"z\" , \"n\" : [ 1 , 2 ] } },"
                       "{\"type\":\"document\", \"source\": {\"type\":\"text\", \"data\": \"d  d\"} }]}]}";
    ck_assert_int_eq(kt_wire_decode_request(KT_FMT_ANTHROPIC, body, strlen(body), &a, &req, &err), 0);
    ck_assert_str_eq(req.msgs[0].parts[0].input_json, "{\"q\":\"x y\\\"z\",\"n\":[1,2]}");
    ck_assert_int_eq(req.msgs[0].parts[1].type, KT_PART_RAW);
    ck_assert_str_eq(req.msgs[0].parts[1].raw_json, "{\"type\":\"document\",\"source\":{\"type\":\"text\",\"data\":\"d  d\"}}");
    kt_arena_free(&a);
    pool_free();
}
END_TEST

/* A callback that decodes while a stream event is being decoded: the
 * nested decode must not reuse the scratch arena the event lives in. */
struct nested_seen {
    char text[64];
    int n;
};

static int nested_cb(void *ud, struct kt_stream_ev *ev)
{
    struct nested_seen *s = ud;
    if (ev->type != KT_EV_TEXT_DELTA)
        return 0;
    struct kt_arena a;
    kt_arena_init(&a, 0);
    struct kt_request req;
    const char *body = "{\"model\":\"zzzzzzzzzzzzzzzz\",\"messages\":[{\"role\":\"user\",\"content\":\"q\\u0071q\"}]}";
    ck_assert_int_eq(kt_wire_decode_request(KT_FMT_OPENAI, body, strlen(body), &a, &req, NULL), 0);
    kt_arena_free(&a);
    ck_assert_uint_lt(ev->len, sizeof s->text);
    memcpy(s->text, ev->text, ev->len);
    s->text[ev->len] = '\0';
    ck_assert_uint_eq(strlen(ev->text), ev->len);          /* NUL-terminated */
    s->n++;
    return 0;
}

START_TEST(test_stream_nested_decode)
{
    struct kt_arena a;
    kt_arena_init(&a, 4096);
    struct nested_seen seen = {0};
    struct kt_stream_dec *d = kt_stream_dec_new(&a, KT_FMT_OPENAI);
    const char *chunk = "{\"id\":\"c1\",\"model\":\"g\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"h\\u00e9llo\"}}]}";
    ck_assert_int_eq(kt_stream_dec_feed(d, NULL, chunk, strlen(chunk), nested_cb, &seen, NULL), 0);
    ck_assert_int_eq(seen.n, 1);
    ck_assert_str_eq(seen.text, "h\xc3\xa9llo");
    struct kt_stream_dec *d2 = kt_stream_dec_new(&a, KT_FMT_ANTHROPIC);
    const char *ev = "{ \"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"w\\u00f6rld\"}}";
    ck_assert_int_eq(kt_stream_dec_feed(d2, "content_block_delta", ev, strlen(ev), nested_cb, &seen, NULL), 0);
    ck_assert_int_eq(seen.n, 2);
    ck_assert_str_eq(seen.text, "w\xc3\xb6rld");
    /* malformed events still fail */
    struct kt_err err = {0};
    ck_assert_int_eq(kt_stream_dec_feed(d, NULL, "{\"choices\":[}", 13, nested_cb, &seen, &err), KT_EINVAL);
    ck_assert_int_eq(kt_stream_dec_feed(d2, "x", "{\"type\":\"ping\",}", 16, nested_cb, &seen, &err), KT_EINVAL);
    kt_arena_free(&a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("wire");
    tcase_add_test(tc, test_req_openai_to_anthropic_basic);
    tcase_add_test(tc, test_req_openai_to_anthropic_tools_images);
    tcase_add_test(tc, test_req_tool_choice_table);
    tcase_add_test(tc, test_req_openai_errors);
    tcase_add_test(tc, test_req_anthropic_to_openai_basic);
    tcase_add_test(tc, test_req_anthropic_to_openai_tools);
    tcase_add_test(tc, test_req_stream_asks_usage);
    tcase_add_test(tc, test_req_roundtrip);
    tcase_add_test(tc, test_fast_path_and_rewrite);
    tcase_add_test(tc, test_fast_path_model_splice);
    tcase_add_test(tc, test_strict_json_is_400);
    tcase_add_test(tc, test_opaque_json_spans);
    tcase_add_test(tc, test_stream_nested_decode);
    tcase_add_test(tc, test_response_rewrite);
    tcase_add_test(tc, test_resp_anthropic_to_openai);
    tcase_add_test(tc, test_resp_openai_to_anthropic);
    tcase_add_test(tc, test_finish_reason_table);
    tcase_add_test(tc, test_errors_translate);
    tcase_add_test(tc, test_error_status_table);
    tcase_add_test(tc, test_policy_error);
    tcase_add_test(tc, test_stream_anthropic_text_to_openai);
    tcase_add_test(tc, test_stream_anthropic_tools_to_openai);
    tcase_add_test(tc, test_stream_anthropic_thinking);
    tcase_add_test(tc, test_stream_openai_text_to_anthropic);
    tcase_add_test(tc, test_stream_openai_tools_to_anthropic);
    tcase_add_test(tc, test_stream_openai_reasoning_to_anthropic);
    tcase_add_test(tc, test_stream_upstream_error_event);
    tcase_add_test(tc, test_stream_truncated_and_explicit_error);
    tcase_add_test(tc, test_stream_policy_hook);
    tcase_add_test(tc, test_stream_decode_encode_separately);
    tcase_add_test(tc, test_req_thinking_and_raw_blocks);
    tcase_add_test(tc, test_resp_reasoning_to_anthropic);
    tcase_add_test(tc, test_stream_openai_same_format);
    tcase_add_test(tc, test_stream_azure_leading_chunk);
    tcase_add_test(tc, test_stream_hook_holds_and_injects);
    tcase_add_test(tc, test_stream_anthropic_text_delta_fast_path);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

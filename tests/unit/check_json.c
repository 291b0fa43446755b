/* check_json: the kt_json parser: RFC 8259 and JSONTestSuite-style accept
 * and reject cases, escapes and surrogates, depth, numbers, truncation,
 * NUL bytes, getters and raw spans, and a differential test against
 * json-c (same trees on every document both accept; nothing accepted that
 * json-c refuses). */
#include <check.h>
#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "kt/json.h"

static const struct kt_json *P(struct kt_arena *a, const char *s)
{
    const struct kt_json *v = NULL;
    int rc = kt_json_parse(a, s, strlen(s), &v, NULL);
    ck_assert_msg(rc == 0, "refused valid JSON: %s", s);
    return v;
}

static int parses(const char *s, size_t n)
{
    struct kt_arena a;
    kt_arena_init(&a, 0);
    const struct kt_json *v;
    int rc = kt_json_parse(&a, s, n, &v, NULL);
    kt_arena_free(&a);
    ck_assert_int_eq(kt_json_valid(s, n, -1), rc == 0);      /* both entry points agree */
    return rc == 0;
}

/* JSONTestSuite y_*: must parse */
static const char *const valid[] = {
    "{}", "[]", "\"\"", "0", "-0", "1", "-1", "0.5", "-0.5e-3", "1E10", "1e+2", "1.5E-2",
    "true", "false", "null", " \t\r\n[ \t\r\n] \t\r\n",
    "[[]   ]", "[\"\"]", "[1,null,null,null,2]", "[-1]", "[-0]", "[1E22]", "[1e1]", "[0e+1]",
    "[123e65]", "[123.456e78]", "[-9223372036854775808]", "[100000000000000000000]",
    "[1.7976931348623157e308]", "[5e-324]", "[1e-400]", "[1e400]",
    "{\"asd\":\"sdf\", \"dfg\":\"fgh\"}", "{\"a\":[]}", "{\"\":0}", "{\"foo\\u0000bar\": 42}",
    "{\"a\":\"b\",\"a\":\"c\"}", "{\"a\":\"b\",\"a\":\"b\"}",
    "[\"\\u0060\\u012a\\u12AB\"]", "[\"\\uD801\\udc37\"]", "[\"\\ud83d\\ude39\\ud83d\\udc8d\"]",
    "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", "[\"\\\\u0000\"]", "[\"\\u0000\"]", "[\"\\u002c\"]",
    "[\"a/*b*/c/*d//e\"]", "[\"\\uFFFF\"]", "[\"\\uDBFF\\uDFFF\"]", "[\"\xe2\x82\xac\xf0\x9d\x84\x9e\"]",
    "[\"\xef\xbf\xbf\"]", "[\"\xf4\x8f\xbf\xbf\"]", "[\"\xc2\x80\"]", "[\"\xed\x9f\xbf\"]",
    "[\"\\ud800\"]", "[\"\\udc00\"]", "[\"\\ud800\\ud800\"]", "[\"\\uD800\\u0041\"]",   /* lone surrogates: U+FFFD */
    "[\"\x7f\"]", "[\"new\\u000Aline\"]", "[\" \"]", "[\"asd \"]",
    "{\"model\":\"claude\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":5}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",          /* 32 deep */
};

/* JSONTestSuite n_* plus what json-c tolerates and RFC 8259 does not */
static const char *const invalid[] = {
    "", " ", "[", "]", "{", "}", "[1,]", "[,1]", "[1,,2]", "{\"a\":1,}", "{,}", "{\"a\" 1}",
    "{\"a\":}", "{1:1}", "{'a':1}", "['x']", "[1 2]", "[\"a\",\n4\n,1,", "{\"a\":1}x", "[]]",
    "[NaN]", "[-NaN]", "[Infinity]", "[-Infinity]", "[True]", "[tRUE]", "[nul]", "[truth]",
    "[01]", "[-01]", "[1.]", "[.5]", "[+1]", "[-]", "[0x1]", "[1e]", "[1e+]", "[2.e3]",
    "[- 1]", "[1.0e]", "[0.e1]", "[1 000]", "[\"\\x\"]", "[\"\\u12\"]", "[\"\\uqqqq\"]",
    "[\"\\'\"]", "[\"\\a\"]", "[\"\t\"]", "[\"a\nb\"]", "[\"\x01\"]", "[\"\\", "[\"abc",
    "\"", "/*c*/[]", "[]//c", "[1]/**/", "\xef\xbb\xbf{}", "[\"\xff\"]", "[\"\xc3\"]",
    "[\"\xc0\xaf\"]", "[\"\xe0\x80\xaf\"]", "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]",
    "[\"\xf8\x88\x80\x80\x80\"]", "[\"\x80\"]", "[\"\xe2\x82\"]", "[1]\v", "\f[1]", "[1,\v2]",
    "nulll", "truefalse", "[][]", "{}{}", "1 2", "{\"a\":1 \"b\":2}", "{\"a\"::1}", "[:]",
    "{\"a\":1,,\"b\":2}", "{\"a\",\"b\"}", "[\"a\":1]", "[\xc2\xa0]", "[\x00]", "\x00",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",        /* 33 deep */
};

START_TEST(test_accepts_valid)
{
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++)
        ck_assert_msg(parses(valid[i], strlen(valid[i])), "refused: %s", valid[i]);
}
END_TEST

START_TEST(test_rejects_invalid)
{
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++)
        ck_assert_msg(!parses(invalid[i], strlen(invalid[i])), "accepted: %s", invalid[i]);
    ck_assert(!parses("[\0]", 3));                          /* NUL outside a string */
    ck_assert(!parses("[\"a\0b\"]", 7));                    /* raw NUL inside one */
    ck_assert(!parses("{}\0", 3));                          /* NUL after the value */
    ck_assert(!parses(NULL, 0));
}
END_TEST

START_TEST(test_scalars_and_numbers)
{
    struct kt_arena a;
    kt_arena_init(&a, 0);
    static const struct { const char *s; int64_t v; } ints[] = {
        { "0", 0 }, { "-0", 0 }, { "42", 42 }, { "-7", -7 },
        { "9223372036854775807", INT64_MAX }, { "9223372036854775808", INT64_MAX },
        { "18446744073709551616", INT64_MAX }, { "123456789012345678901234567890", INT64_MAX },
        { "-9223372036854775808", INT64_MIN }, { "-9223372036854775809", INT64_MIN },
        { "-99999999999999999999999", INT64_MIN },
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        const struct kt_json *v = P(&a, ints[i].s);
        ck_assert_int_eq(v->type, KT_JSON_INT);
        ck_assert_msg(kt_json_int(v) == ints[i].v, "%s", ints[i].s);
    }
    static const struct { const char *s; double v; } dbls[] = {
        { "0.5", 0.5 }, { "-1.25", -1.25 }, { "1e2", 100.0 }, { "1E+2", 100.0 },
        { "2.5e-1", 0.25 }, { "1.0", 1.0 }, { "-0.0", -0.0 }, { "1e-400", 0.0 },
        { "0.10000000000000000000000000000000000000000000000000000000000000000000001", 0.1 },
    };
    for (size_t i = 0; i < sizeof dbls / sizeof *dbls; i++) {
        const struct kt_json *v = P(&a, dbls[i].s);
        ck_assert_int_eq(v->type, KT_JSON_DOUBLE);
        ck_assert_double_eq(kt_json_double(v), dbls[i].v);
    }
    ck_assert_double_eq(kt_json_double(P(&a, "1e400")), HUGE_VAL);
    ck_assert_int_eq(kt_json_int(P(&a, "2.9")), 2);
    ck_assert_int_eq(kt_json_int(P(&a, "1e300")), INT64_MAX);
    ck_assert_double_eq(kt_json_double(P(&a, "3")), 3.0);
    ck_assert_int_eq(P(&a, "true")->type, KT_JSON_BOOL);
    ck_assert(kt_json_bool(P(&a, " true ")));
    ck_assert(!kt_json_bool(P(&a, "false")));
    ck_assert(!kt_json_bool(P(&a, "1")));
    ck_assert_int_eq(P(&a, "null")->type, KT_JSON_NULL);
    ck_assert_int_eq(kt_json_int(P(&a, "null")), 0);
    ck_assert_int_eq(kt_json_int(P(&a, "\"5\"")), 0);
    kt_arena_free(&a);
}
END_TEST

static void str_is(struct kt_arena *a, const char *json, const char *want, size_t wantlen)
{
    const struct kt_json *v = P(a, json);
    size_t n;
    const char *s = kt_json_str(v, &n);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(n == wantlen && memcmp(s, want, n) == 0, "%s decoded wrong", json);
}

START_TEST(test_strings_and_escapes)
{
    struct kt_arena a;
    kt_arena_init(&a, 0);
    str_is(&a, "\"plain\"", "plain", 5);
    str_is(&a, "\"\"", "", 0);
    str_is(&a, "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8);
    str_is(&a, "\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6);
    str_is(&a, "\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4);
    str_is(&a, "\"\\uD834\\uDD1E\"", "\xf0\x9d\x84\x9e", 4);
    str_is(&a, "\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4);
    /* json-c turns U+2D800 (CJK extension C) into U+FFFD: its surrogate
     * test looks at the low 16 bits of the decoded code point */
    str_is(&a, "\"\\uD876\\uDC00\"", "\xf0\xad\xa0\x80", 4);
    str_is(&a, "\"\\ud800\"", "\xef\xbf\xbd", 3);                    /* lone high */
    str_is(&a, "\"\\udc00x\"", "\xef\xbf\xbdx", 4);                 /* lone low */
    str_is(&a, "\"\\ud800\\u0041\"", "\xef\xbf\xbd" "A", 4);        /* high, not low */
    str_is(&a, "\"\\ud800\\ud800\\udc00\"", "\xef\xbf\xbd\xf0\x90\x80\x80", 7);
    str_is(&a, "\"a\\u0000b\"", "a\0b", 3);                          /* embedded NUL */
    str_is(&a, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14);
    /* no escapes: the node points into the source; escapes: into the arena */
    const char *src = "[\"abc\",\"a\\nb\"]";
    const struct kt_json *v = P(&a, src);
    ck_assert_ptr_eq(kt_json_str(kt_json_at(v, 0), NULL), src + 2);
    ck_assert_ptr_ne(kt_json_str(kt_json_at(v, 1), NULL), src + 8);
    ck_assert(kt_json_streq(kt_json_at(v, 0), "abc"));
    ck_assert(!kt_json_streq(kt_json_at(v, 0), "ab"));
    ck_assert(!kt_json_streq(kt_json_at(v, 0), "abcd"));
    ck_assert(!kt_json_streq(v, "abc"));
    size_t n;
    char *d = kt_json_strdup(&a, kt_json_at(v, 1), &n);
    ck_assert_str_eq(d, "a\nb");
    ck_assert_uint_eq(n, 3);
    ck_assert_ptr_null(kt_json_strdup(&a, v, NULL));
    /* keys unescape too */
    v = P(&a, "{\"k\\u0065y\":1,\"\\u00e9\":2}");
    ck_assert_int_eq(kt_json_int(kt_json_get(v, "key")), 1);
    ck_assert_int_eq(kt_json_int(kt_json_get(v, "\xc3\xa9")), 2);
    kt_arena_free(&a);
}
END_TEST

/* The string scan reads 8 bytes at a time: every byte value at every
 * offset must still be seen. */
START_TEST(test_every_byte_every_offset)
{
    /* lengths that end in the 16-byte, the 8-byte and the bytewise scan */
    static const size_t lens[] = { 5, 13, 24, 37, 48 };
    struct kt_arena a;
    kt_arena_init(&a, 0);
    for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
        size_t n = lens[l];
        for (int c = 0; c < 256; c++) {
            for (size_t at = 0; at < n; at++) {
                char doc[64];
                doc[0] = '"';
                memset(doc + 1, 'a', n);
                doc[1 + at] = (char)c;
                doc[n + 1] = '"';
                const struct kt_json *v;
                int ok = kt_json_parse(&a, doc, n + 2, &v, NULL) == 0;
                int want = c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
                ck_assert_msg(ok == want, "byte %d at %zu of %zu", c, at, n);
                if (ok) {
                    ck_assert_uint_eq(v->n, n);
                    ck_assert_int_eq(memcmp(v->u.s, doc + 1, n), 0);
                }
            }
            kt_arena_reset(&a);
        }
    }
    kt_arena_free(&a);
    /* the exported helpers say the same */
    ck_assert_uint_eq(kt_json_plain_len("abc\"d", 5), 3);
    ck_assert_uint_eq(kt_json_plain_len("abcdefghijklmnopqrstuvwxyz\\", 27), 26);
    ck_assert_uint_eq(kt_json_plain_len("abcdefghijklmnopqrstuvwxyz\xc3\xa9", 28), 26);
    ck_assert_uint_eq(kt_json_plain_len("abcdefghij\x1f", 11), 10);
    ck_assert_uint_eq(kt_json_plain_len("", 0), 0);
    ck_assert_uint_eq(kt_json_utf8_len("\xc3\xa9", 2), 2);
    ck_assert_uint_eq(kt_json_utf8_len("\xc3", 1), 0);
    ck_assert_uint_eq(kt_json_utf8_len("\xf0\x9f\x98\x80", 4), 4);
    ck_assert_uint_eq(kt_json_utf8_len("\xed\xa0\x80", 3), 0);
    ck_assert_uint_eq(kt_json_utf8_len("a", 1), 0);
}
END_TEST

START_TEST(test_depth)
{
    char buf[20001];
    for (int depth = 1; depth <= 40; depth++) {
        for (int i = 0; i < depth; i++) {
            buf[i] = '[';
            buf[2 * depth - 1 - i] = ']';
        }
        ck_assert_int_eq(parses(buf, (size_t)(2 * depth)), depth <= KT_JSON_MAX_DEPTH);
        /* objects count the same way */
        struct kt_buf b = {0};
        for (int i = 0; i < depth; i++)
            kt_buf_puts(&b, "{\"a\":");
        kt_buf_puts(&b, "{}");
        for (int i = 0; i < depth; i++)
            kt_buf_putc(&b, '}');
        ck_assert_int_eq(parses(b.data, b.len), depth + 1 <= KT_JSON_MAX_DEPTH);
        kt_buf_free(&b);
    }
    /* far too deep: refused, not a stack overflow */
    memset(buf, '[', sizeof buf);
    ck_assert(!parses(buf, sizeof buf));
    memset(buf, '{', sizeof buf);
    ck_assert(!parses(buf, sizeof buf));
}
END_TEST

START_TEST(test_truncated)
{
    static const char *const docs[] = {
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9llo \\ud83d\\ude00\"}],"
        "\"temperature\":0.5,\"stream\":true,\"stop\":null,\"n\":-12e3}",
        "[true,false,null,\"\xe2\x82\xac\",[],{}]",
    };
    for (size_t d = 0; d < 2; d++) {
        size_t len = strlen(docs[d]);
        ck_assert(parses(docs[d], len));
        for (size_t n = 0; n < len; n++) {
            char *cut = malloc(n ? n : 1);          /* exact size: ASan catches over-reads */
            memcpy(cut, docs[d], n);
            ck_assert_msg(!parses(cut, n), "prefix of %zu accepted", n);
            free(cut);
        }
    }
    /* a number or literal cut at the buffer's end, read without over-reading */
    static const char *const cuts[] = { "-", "1.", "1e", "1e+", "tru", "fals", "nul", "\"\\u12", "\"\\" };
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        size_t n = strlen(cuts[i]);
        char *c = malloc(n);
        memcpy(c, cuts[i], n);
        ck_assert(!parses(c, n));
        free(c);
    }
    char *c = malloc(3);
    memcpy(c, "123", 3);
    ck_assert(parses(c, 3));
    free(c);
}
END_TEST

START_TEST(test_getters_and_spans)
{
    struct kt_arena a;
    kt_arena_init(&a, 0);
    const char *src = "{ \"a\" : 1, \"s\": { \"t\" : [ 1 , \"x y\" , {\"k\" :\"\\\" }\"} ] }, \"a\": \"two\" ,"
                      " \"n\": null, \"arr\": [10, 20, 30] }";
    const struct kt_json *v = P(&a, src);
    ck_assert_int_eq(v->type, KT_JSON_OBJECT);
    ck_assert_uint_eq(kt_json_len(v), 5);
    ck_assert(kt_json_streq(kt_json_get(v, "a"), "two"));         /* last one wins */
    ck_assert_ptr_null(kt_json_get_type(v, "a", KT_JSON_INT));
    ck_assert_ptr_nonnull(kt_json_get_type(v, "a", KT_JSON_STRING));
    ck_assert_ptr_null(kt_json_get(v, "missing"));
    ck_assert_ptr_null(kt_json_get(v, ""));
    ck_assert_ptr_null(kt_json_get(NULL, "a"));
    ck_assert_ptr_null(kt_json_get(kt_json_get(v, "arr"), "a"));  /* not an object */
    const struct kt_json *n = kt_json_get(v, "n");
    ck_assert(kt_json_is(n, KT_JSON_NULL));
    ck_assert_ptr_null(kt_json_get_type(v, "n", KT_JSON_STRING));
    const struct kt_json *arr = kt_json_get_type(v, "arr", KT_JSON_ARRAY);
    ck_assert_uint_eq(kt_json_len(arr), 3);
    ck_assert_int_eq(kt_json_int(kt_json_at(arr, 2)), 30);
    ck_assert_ptr_null(kt_json_at(arr, 3));
    ck_assert_ptr_null(kt_json_at(v, 0));
    ck_assert_uint_eq(kt_json_len(kt_json_get(v, "a")), 0);
    /* raw spans and minified text */
    const struct kt_json *s = kt_json_get(v, "s");
    ck_assert_uint_eq(s->raw_len, strlen("{ \"t\" : [ 1 , \"x y\" , {\"k\" :\"\\\" }\"} ] }"));
    ck_assert_int_eq(memcmp(s->raw, "{ \"t\"", 5), 0);
    size_t len;
    char *t = kt_json_text(&a, s, &len);
    ck_assert_str_eq(t, "{\"t\":[1,\"x y\",{\"k\":\"\\\" }\"}]}");
    ck_assert_uint_eq(len, strlen(t));
    ck_assert(kt_json_valid(t, len, KT_JSON_OBJECT));
    ck_assert_str_eq(kt_json_text(&a, kt_json_at(arr, 1), NULL), "20");
    const struct kt_json *str = kt_json_get(v, "a");
    ck_assert_int_eq(str->raw_len, 5);
    ck_assert_str_eq(kt_json_text(&a, v, NULL),
                     "{\"a\":1,\"s\":{\"t\":[1,\"x y\",{\"k\":\"\\\" }\"}]},\"a\":\"two\",\"n\":null,\"arr\":[10,20,30]}");
    /* kt_json_valid checks the top type */
    ck_assert(kt_json_valid("{}", 2, KT_JSON_OBJECT));
    ck_assert(!kt_json_valid("[]", 2, KT_JSON_OBJECT));
    ck_assert(kt_json_valid(" [] ", 4, KT_JSON_ARRAY));
    ck_assert(!kt_json_valid("{", 1, -1));
    /* many members: the staging stack grows beyond its inline room */
    struct kt_buf b = {0};
    kt_buf_putc(&b, '{');
    for (int i = 0; i < 1000; i++)
        kt_buf_printf(&b, "%s\"k%d\":[%d,{\"x\":[%d]}]", i ? "," : "", i, i, i);
    kt_buf_putc(&b, '}');
    v = P(&a, b.data);
    ck_assert_uint_eq(kt_json_len(v), 1000);
    for (int i = 0; i < 1000; i += 97) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        const struct kt_json *e = kt_json_get(v, k);
        ck_assert_int_eq(kt_json_int(kt_json_at(e, 0)), i);
        ck_assert_int_eq(kt_json_int(kt_json_at(kt_json_get(kt_json_at(e, 1), "x"), 0)), i);
    }
    kt_buf_free(&b);
    kt_arena_free(&a);
}
END_TEST

/* ---- differential test against json-c ---- */

static uint64_t rng_state = 88172645463325252ull;

static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

static void gen_ws(struct kt_buf *b)
{
    static const char ws[] = " \t\n\r";
    while (rnd(4) == 0)
        kt_buf_putc(b, ws[rnd(4)]);
}

static void gen_string(struct kt_buf *b)
{
    kt_buf_putc(b, '"');
    unsigned n = rnd(12);
    for (unsigned i = 0; i < n; i++) {
        switch (rnd(14)) {
        case 0: kt_buf_puts(b, "\\n"); break;
        case 1: kt_buf_puts(b, "\\\""); break;
        case 2: kt_buf_puts(b, "\\\\"); break;
        case 3: kt_buf_puts(b, "\\/"); break;
        case 4: kt_buf_printf(b, "\\u%04x", rnd(0xD800)); break;
        case 5: kt_buf_printf(b, "\\u%04X\\u%04x", 0xD800 + rnd(0x400), 0xDC00 + rnd(0x400)); break;
        case 6: kt_buf_printf(b, "\\u%04x", 0xD800 + rnd(0x800)); break;         /* lone */
        case 7: kt_buf_puts(b, "\xc3\xa9"); break;
        case 8: kt_buf_puts(b, "\xe2\x82\xac"); break;
        case 9: kt_buf_puts(b, "\xf0\x9f\x98\x80"); break;
        case 10: kt_buf_puts(b, "\\t\\b\\f\\r"); break;
        case 11: kt_buf_puts(b, "\\u0000"); break;
        default: {
            char c = (char)(' ' + rnd(95));
            kt_buf_putc(b, c == '"' || c == '\\' ? 'q' : c);
            break;
        }
        }
    }
    kt_buf_putc(b, '"');
}

static void gen_number(struct kt_buf *b)
{
    switch (rnd(6)) {
    case 0: kt_buf_printf(b, "%d", (int)rnd(100000) - 50000); break;
    case 1: kt_buf_printf(b, "%s%u%u%u", rnd(2) ? "-" : "", 1 + rnd(9), rnd(1000000000), rnd(1000000000)); break;
    case 2: kt_buf_printf(b, "%d.%u", (int)rnd(2000) - 1000, rnd(100000)); break;
    case 3: kt_buf_printf(b, "%u%se%s%u", rnd(100), rnd(2) ? ".5" : "", rnd(2) ? "-" : "+", rnd(400)); break;
    case 4: kt_buf_puts(b, rnd(2) ? "0" : "-0"); break;
    default: kt_buf_printf(b, "%uE%u", rnd(10), rnd(30)); break;
    }
}

static void gen_value(struct kt_buf *b, int depth)
{
    unsigned k = depth >= 10 ? rnd(5) : rnd(8);
    gen_ws(b);
    switch (k) {
    case 0: gen_string(b); break;
    case 1: gen_number(b); break;
    case 2: kt_buf_puts(b, rnd(2) ? "true" : "false"); break;
    case 3: kt_buf_puts(b, "null"); break;
    case 4: gen_string(b); break;
    case 5: case 6: {
        kt_buf_putc(b, '{');
        unsigned n = rnd(5);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                kt_buf_putc(b, ',');
            gen_ws(b);
            if (rnd(4) == 0)
                kt_buf_printf(b, "\"k%u\"", rnd(3));   /* duplicate keys now and then */
            else
                gen_string(b);
            gen_ws(b);
            kt_buf_putc(b, ':');
            gen_value(b, depth + 1);
        }
        gen_ws(b);
        kt_buf_putc(b, '}');
        break;
    }
    default: {
        kt_buf_putc(b, '[');
        unsigned n = rnd(5);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                kt_buf_putc(b, ',');
            gen_value(b, depth + 1);
        }
        gen_ws(b);
        kt_buf_putc(b, ']');
        break;
    }
    }
    gen_ws(b);
}

/* json-c parses "null" to NULL */
static int only_null(const char *t, size_t len)
{
    size_t i = 0;
    while (i < len && (t[i] == ' ' || t[i] == '\n' || t[i] == '\r' || t[i] == '\t'))
        i++;
    return len - i >= 4 && memcmp(t + i, "null", 4) == 0;
}

static struct json_object *jc_parse(const char *s, size_t n, int *ok)
{
    /* a space after the text ends a bare top-level number for json-c */
    char *t = malloc(n + 1);
    memcpy(t, s, n);
    t[n] = ' ';
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, t, (int)n + 1);
    if (o && json_tokener_get_error(tok) == json_tokener_success) {
        for (size_t i = json_tokener_get_parse_end(tok); i <= n; i++)
            if (t[i] != ' ' && t[i] != '\n' && t[i] != '\r' && t[i] != '\t') {
                json_object_put(o);
                o = NULL;
                break;
            }
    } else if (o) {
        json_object_put(o);
        o = NULL;
    }
    *ok = o != NULL || (json_tokener_get_error(tok) == json_tokener_success &&
                        json_tokener_get_parse_end(tok) == n + 1 && only_null(t, n));
    json_tokener_free(tok);
    free(t);
    return o;
}

/* json-c's surrogate test masks the low 16 bits of the decoded code point,
 * so it writes U+FFFD for U+1D800-1DFFF, U+2D800-2DFFF...; kt_json decodes
 * them. 1 when s holds such a code point. */
static int jsonc_cp_bug(const char *s, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++) {
        const unsigned char *u = (const unsigned char *)s + i;
        if (u[0] >= 0xF0 && u[0] <= 0xF4) {
            unsigned cp = (unsigned)(u[0] & 7) << 18 | (unsigned)(u[1] & 63) << 12 |
                          (unsigned)(u[2] & 63) << 6 | (u[3] & 63);
            if ((cp & 0xF800) == 0xD800)
                return 1;
        }
    }
    return 0;
}

static int same(const struct kt_json *k, struct json_object *j)
{
    switch (k->type) {
    case KT_JSON_NULL:
        return j == NULL;
    case KT_JSON_BOOL:
        return json_object_is_type(j, json_type_boolean) && json_object_get_boolean(j) == k->u.i;
    case KT_JSON_INT:
        return json_object_is_type(j, json_type_int) && json_object_get_int64(j) == k->u.i;
    case KT_JSON_DOUBLE:
        return json_object_is_type(j, json_type_double) &&
               memcmp(&k->u.d, &(double){ json_object_get_double(j) }, sizeof(double)) == 0;
    case KT_JSON_STRING:
        return json_object_is_type(j, json_type_string) &&
               (jsonc_cp_bug(k->u.s, k->n) ||
                ((size_t)json_object_get_string_len(j) == k->n &&
                 memcmp(json_object_get_string(j), k->u.s, k->n) == 0));
    case KT_JSON_ARRAY:
        if (!json_object_is_type(j, json_type_array) || json_object_array_length(j) != k->n)
            return 0;
        for (size_t i = 0; i < k->n; i++)
            if (!same(&k->u.items[i], json_object_array_get_idx(j, i)))
                return 0;
        return 1;
    case KT_JSON_OBJECT: {
        if (!json_object_is_type(j, json_type_object))
            return 0;
        /* every json-c member is what kt_json_get finds (keys without NULs:
         * json-c keys are C strings) */
        json_object_object_foreach(j, key, val) {
            const struct kt_json *m = kt_json_get(k, key);
            if (m == NULL || !same(m, val))
                return 0;
        }
        /* and kt_json has no key json-c lacks */
        for (size_t i = 0; i < k->n; i++) {
            char kz[256];
            if (k->u.members[i].klen >= sizeof kz || memchr(k->u.members[i].key, 0, k->u.members[i].klen))
                continue;
            memcpy(kz, k->u.members[i].key, k->u.members[i].klen);
            kz[k->u.members[i].klen] = '\0';
            if (!json_object_object_get_ex(j, kz, NULL))
                return 0;
        }
        return 1;
    }
    }
    return 0;
}

static int has_nul_key(const struct kt_json *k)
{
    if (k->type == KT_JSON_ARRAY)
        for (size_t i = 0; i < k->n; i++)
            if (has_nul_key(&k->u.items[i]))
                return 1;
    if (k->type == KT_JSON_OBJECT)
        for (size_t i = 0; i < k->n; i++)
            if (memchr(k->u.members[i].key, 0, k->u.members[i].klen) ||
                jsonc_cp_bug(k->u.members[i].key, k->u.members[i].klen) ||
                has_nul_key(&k->u.members[i].val))
                return 1;
    return 0;
}

/* 1 when both agree on the document, by the rules in the file comment */
static int differ(const char *s, size_t n, int must_parse)
{
    struct kt_arena a;
    kt_arena_init(&a, 0);
    const struct kt_json *k = NULL;
    int rc = kt_json_parse(&a, s, n, &k, NULL);
    int jok;
    struct json_object *j = jc_parse(s, n, &jok);
    int bad = 0;
    if (must_parse && (rc != 0 || !jok))
        bad = 1;
    else if (rc == 0 && !jok)
        bad = 1;                                /* accepted what json-c refuses */
    else if (rc == 0 && !has_nul_key(k) && !same(k, j))
        bad = 1;
    if (bad)
        fprintf(stderr, "differs (kt %d, json-c %s): %.*s\n", rc, jok ? "ok" : "refused", (int)n, s);
    json_object_put(j);
    kt_arena_free(&a);
    return bad;
}

START_TEST(test_differential_json_c)
{
    int bad = 0;
    struct kt_buf b = {0};
    for (int i = 0; i < 4000; i++) {
        kt_buf_reset(&b);
        gen_value(&b, 0);
        bad += differ(b.data, b.len, 1);
        /* mutants: one byte replaced, dropped or inserted; kt_json may
         * refuse more (json-c is lenient) but never accept what json-c
         * refuses nor read it differently */
        static const char bytes[] = "{}[]\",:\\ 0-.eE+tfnu\xc3\xa9\x80\xff\x01a/";
        for (int m = 0; m < 8; m++) {
            char *t = malloc(b.len + 1);
            size_t n = b.len, at = rnd((unsigned)b.len);
            memcpy(t, b.data, n);
            switch (rnd(3)) {
            case 0: t[at] = bytes[rnd(sizeof bytes - 1)]; break;
            case 1: memmove(t + at, t + at + 1, n - at - 1); n--; break;
            default:
                memmove(t + at + 1, t + at, n - at);
                t[at] = bytes[rnd(sizeof bytes - 1)];
                n++;
                break;
            }
            bad += differ(t, n, 0);
            free(t);
        }
    }
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++)
        bad += differ(valid[i], strlen(valid[i]), 0);
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++)
        bad += differ(invalid[i], strlen(invalid[i]), 0);
    kt_buf_free(&b);
    ck_assert_int_eq(bad, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_accepts_valid);
    tcase_add_test(tc, test_rejects_invalid);
    tcase_add_test(tc, test_scalars_and_numbers);
    tcase_add_test(tc, test_strings_and_escapes);
    tcase_add_test(tc, test_every_byte_every_offset);
    tcase_add_test(tc, test_depth);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_getters_and_spans);
    tcase_add_test(tc, test_differential_json_c);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

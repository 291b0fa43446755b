/* json.h: a strict RFC 8259 JSON parser for the request path. One parse is
 * one pass over the text into nodes allocated from a struct kt_arena; no
 * malloc per value, no hash tables. Objects are small arrays of members
 * (LLM payloads have a handful of keys: a linear scan beats hashing).
 * Strings without escapes point into the source text (which must outlive
 * the nodes); strings with escapes are unescaped into the arena. Every
 * value keeps its raw span in the source, so opaque subtrees (tool
 * schemas, unknown blocks) are passed on without re-serialising.
 *
 * What it accepts: exactly RFC 8259 (no comments, no trailing commas, no
 * NaN, no single quotes), UTF-8 validated in strings (RFC 3629: no
 * overlongs, no encoded surrogates). Like json-c: a lone \u surrogate
 * escape decodes to U+FFFD; integers out of int64 range clamp to
 * INT64_MIN/INT64_MAX; duplicate keys: the last one wins on lookup.
 * Nesting deeper than KT_JSON_MAX_DEPTH arrays/objects is refused. */
#ifndef KT_JSON_H
#define KT_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kt/arena.h"

#define KT_JSON_MAX_DEPTH 32    /* json-c's default tokener depth */

enum kt_json_type {
    KT_JSON_NULL,
    KT_JSON_BOOL,
    KT_JSON_INT,                /* integral literal: no fraction, no exponent */
    KT_JSON_DOUBLE,
    KT_JSON_STRING,
    KT_JSON_ARRAY,
    KT_JSON_OBJECT,
};

struct kt_json_member;

struct kt_json {
    enum kt_json_type type;
    uint32_t n;                 /* STRING: bytes; ARRAY: items; OBJECT: members */
    const char *raw;            /* the value's text in the source */
    size_t raw_len;
    union {
        int64_t i;              /* INT; BOOL: 0 or 1 */
        double d;               /* DOUBLE */
        const char *s;          /* STRING: n bytes, may hold NULs; not NUL-terminated */
        struct kt_json *items;  /* ARRAY */
        struct kt_json_member *members;   /* OBJECT, in document order */
    } u;
};

struct kt_json_member {
    const char *key;            /* unescaped, klen bytes, not NUL-terminated */
    uint32_t klen;
    struct kt_json val;
};

/* kt_json_parse: parse len bytes of text (one value, optional whitespace
 * around it) into *out. 0, KT_EINVAL for malformed text (*err_off, when
 * not NULL, gets the byte offset of the error), KT_ENOMEM. */
int kt_json_parse(struct kt_arena *a, const char *text, size_t len, const struct kt_json **out,
                  size_t *err_off);
/* kt_json_valid: 1 when text is one well-formed value whose type is want
 * (or any type when want < 0), else 0. Allocates nothing. */
int kt_json_valid(const char *text, size_t len, int want);

/* kt_json_getn: member key (klen bytes) of object o (the last one when
 * repeated), NULL when o is NULL, not an object, or has no such key. */
const struct kt_json *kt_json_getn(const struct kt_json *o, const char *key, size_t klen);
/* kt_json_get: the same for a C string key (inline: a literal's length is
 * folded at compile time). */
static inline const struct kt_json *kt_json_get(const struct kt_json *o, const char *key)
{
    return kt_json_getn(o, key, strlen(key));
}
/* kt_json_get_type: the same, NULL unless the member has type t. */
static inline const struct kt_json *kt_json_get_type(const struct kt_json *o, const char *key,
                                                     enum kt_json_type t)
{
    const struct kt_json *v = kt_json_get(o, key);
    return v && v->type == t ? v : NULL;
}
/* kt_json_text: the value's text without insignificant whitespace,
 * NUL-terminated, in the arena (strings are kept byte for byte). */
char *kt_json_text(struct kt_arena *a, const struct kt_json *v, size_t *len);
/* kt_json_strdup: arena copy of a string value, NUL-terminated; NULL when
 * v is not a string. */
char *kt_json_strdup(struct kt_arena *a, const struct kt_json *v, size_t *len);

/* For hand-written fast paths over string bodies that must agree with the
 * parser. kt_json_plain_len: how many leading bytes of s are printable
 * ASCII other than '"' and '\\' (copied as they are). kt_json_utf8_len:
 * the length of the well-formed UTF-8 sequence at s (s[0] >= 0x80), else 0. */
size_t kt_json_plain_len(const char *s, size_t n);
size_t kt_json_utf8_len(const char *s, size_t n);
/* kt_json_escape_free_len: how many leading bytes of s a JSON string can
 * carry as they are (anything but '"', '\\' and control bytes). */
size_t kt_json_escape_free_len(const char *s, size_t n);

static inline int kt_json_is(const struct kt_json *v, enum kt_json_type t)
{
    return v != NULL && v->type == t;
}

/* string bytes (len optional), NULL when v is not a string */
static inline const char *kt_json_str(const struct kt_json *v, size_t *len)
{
    if (v == NULL || v->type != KT_JSON_STRING)
        return NULL;
    if (len)
        *len = v->n;
    return v->u.s;
}

/* 1 when v is the string s exactly */
static inline int kt_json_streq(const struct kt_json *v, const char *s)
{
    size_t n = strlen(s);
    return v && v->type == KT_JSON_STRING && v->n == n && memcmp(v->u.s, s, n) == 0;
}

static inline size_t kt_json_len(const struct kt_json *v)
{
    return v && (v->type == KT_JSON_ARRAY || v->type == KT_JSON_OBJECT) ? v->n : 0;
}

/* item i of an array, NULL when out of range or not an array */
static inline const struct kt_json *kt_json_at(const struct kt_json *v, size_t i)
{
    return v && v->type == KT_JSON_ARRAY && i < v->n ? &v->u.items[i] : NULL;
}

/* INT as is, DOUBLE truncated, BOOL 0/1, anything else 0 (json-c's rules) */
int64_t kt_json_int(const struct kt_json *v);
/* INT or DOUBLE as a double, anything else 0 */
double kt_json_double(const struct kt_json *v);

static inline int kt_json_bool(const struct kt_json *v)
{
    return v && v->type == KT_JSON_BOOL && v->u.i;
}

#endif

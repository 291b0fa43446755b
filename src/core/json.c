/* json.c: strict RFC 8259 parser into arena nodes (see json.h). Recursive
 * descent, bounded by KT_JSON_MAX_DEPTH. The children of open containers
 * are staged on one stack (on the C stack while small) and copied into
 * the arena in one piece when their container closes, so every array and
 * object is one exact-sized allocation. Does not serialise: encoders
 * write JSON with kt_buf. */
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kt/err.h"
#include "kt/json.h"

struct parser {
    const unsigned char *p, *end;
    struct kt_arena *a;             /* NULL: validate only, allocate nothing */
    int depth;
    int err;                        /* KT_EINVAL or KT_ENOMEM once failed */
    const unsigned char *err_at;
    struct kt_json_member *stk;     /* children of the open containers */
    size_t nstk, cap;
    struct kt_json_member local[32];
};

/* string bytes: 0 plain ASCII, 1 '"', 2 '\\', 3 control, 4 non-ASCII */
static const unsigned char str_class[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

static int fail(struct parser *ps, const unsigned char *at, int code)
{
    if (ps->err == 0) {
        ps->err = code;
        ps->err_at = at;
    }
    return -1;
}

static inline void skip_ws(struct parser *ps)
{
    const unsigned char *p = ps->p, *end = ps->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    ps->p = p;
}

static int hexval(unsigned c)
{
    if (c - '0' < 10)
        return (int)(c - '0');
    c |= 0x20;
    return c - 'a' < 6 ? (int)(c - 'a' + 10) : -1;
}

/* four hex digits at p (caller checked 4 bytes remain), or -1 */
static int hex4(const unsigned char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Length of the well-formed UTF-8 sequence at p (lead byte >= 0x80), or 0
 * (RFC 3629 table: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t avail = (size_t)(end - p);
    if (c >= 0xC2 && c <= 0xDF)
        return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3 || (p[2] & 0xC0) != 0x80)
            return 0;
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return p[1] >= lo && p[1] <= hi ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return p[1] >= lo && p[1] <= hi ? 4 : 0;
    }
    return 0;
}

/* 1 when one of the 8 bytes of w may be special: '"', '\\', a control or
 * (with ascii_only) a non-ASCII byte. Borrows make false positives only
 * above a true one, so a flagged word always holds a special byte. */
static inline int special8(uint64_t w, int ascii_only)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    uint64_t hit = ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b);
    return ((hit | (ascii_only ? w : 0)) & highs) != 0;
}

/* scan_plain: the number of leading bytes of s that are neither '"', '\\'
 * nor a control byte, nor (with ascii_only) non-ASCII. One scanner for the
 * parser (ascii_only: UTF-8 must be checked) and for JSON escaping. */
static inline size_t scan_plain(const char *s, size_t n, int ascii_only)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
#if defined(__SSE2__)
    /* 16 bytes at a time; the signed compare with 0x20 flags controls and
     * non-ASCII bytes at once, the unsigned one (min) controls only */
    const __m128i sp = _mm_set1_epi8(0x20), ctl = _mm_set1_epi8(0x1F);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i low = ascii_only ? _mm_cmplt_epi8(x, sp) : _mm_cmpeq_epi8(_mm_min_epu8(x, ctl), x);
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                              _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
                                 low);
        int bits = _mm_movemask_epi8(m);
        if (bits)
            return (size_t)(p - (const unsigned char *)s) + (size_t)__builtin_ctz((unsigned)bits);
        p += 16;
    }
#endif
    while (end - p >= 8) {                      /* 8 bytes at a time */
        uint64_t w;
        memcpy(&w, p, 8);
        if (special8(w, ascii_only))
            break;
        p += 8;
    }
    while (p < end && (str_class[*p] == 0 || (!ascii_only && str_class[*p] == 4)))
        p++;
    return (size_t)(p - (const unsigned char *)s);
}

size_t kt_json_plain_len(const char *s, size_t n)
{
    return scan_plain(s, n, 1);
}

size_t kt_json_escape_free_len(const char *s, size_t n)
{
    return scan_plain(s, n, 0);
}

size_t kt_json_utf8_len(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    return n && p[0] >= 0x80 ? utf8_len(p, p + n) : 0;
}

/* Scan a string body from ps->p (just past the opening quote) to its
 * closing quote, validating escapes and UTF-8. Returns the closing quote,
 * or NULL. *esc is set when the string holds a backslash. */
static const unsigned char *scan_string(struct parser *ps, int *esc)
{
    const unsigned char *p = ps->p, *end = ps->end;
    *esc = 0;
    for (;;) {
        p += kt_json_plain_len((const char *)p, (size_t)(end - p));
        if (p >= end) {
            fail(ps, p, KT_EINVAL);
            return NULL;
        }
        switch (str_class[*p]) {
        case 1:
            return p;
        case 2:
            *esc = 1;
            if (end - p < 2)
                goto bad;
            switch (p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                break;
            case 'u':
                if (end - p < 6 || hex4(p + 2) < 0)
                    goto bad;
                p += 6;
                break;
            default:
                goto bad;
            }
            break;
        case 3:
            goto bad;                       /* raw control character */
        default: {
            size_t n = utf8_len(p, end);
            if (n == 0)
                goto bad;
            p += n;
            break;
        }
        }
    }
bad:
    fail(ps, p, KT_EINVAL);
    return NULL;
}

static size_t put_utf8(unsigned char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
        o[2] = (unsigned char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 63));
    o[3] = (unsigned char)(0x80 | (cp & 63));
    return 4;
}

/* Unescape a scanned (valid) string body into o; returns the length. The
 * output is never longer than the input: every escape shrinks or keeps
 * its size (\uXXXX is 6 bytes for at most 3, a pair 12 for 4). */
static size_t unescape(unsigned char *o, const unsigned char *p, const unsigned char *end)
{
    unsigned char *o0 = o;
    while (p < end) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        unsigned char e = p[1];
        p += 2;
        switch (e) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp = (unsigned)hex4(p);
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo = (unsigned)hex4(p + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            if (cp >= 0xD800 && cp <= 0xDFFF)
                cp = 0xFFFD;                /* a lone surrogate, as json-c does */
            o += put_utf8(o, cp);
            break;
        }
        default: *o++ = e; break;           /* " \ / */
        }
    }
    return (size_t)(o - o0);
}

/* A string from ps->p (at the opening quote). */
static int parse_string(struct parser *ps, const char **s, uint32_t *n)
{
    ps->p++;
    int esc;
    const unsigned char *q = scan_string(ps, &esc);
    if (q == NULL)
        return -1;
    const unsigned char *b = ps->p;
    ps->p = q + 1;
    if ((size_t)(q - b) > UINT32_MAX)
        return fail(ps, b, KT_EINVAL);
    if (!esc || ps->a == NULL) {
        *s = (const char *)b;
        *n = (uint32_t)(q - b);
        return 0;
    }
    unsigned char *o = kt_arena_alloc(ps->a, (size_t)(q - b) + 1);
    if (o == NULL)
        return fail(ps, b, KT_ENOMEM);
    *s = (const char *)o;
    *n = (uint32_t)unescape(o, b, q);
    return 0;
}

static int is_digit(const unsigned char *p, const unsigned char *end)
{
    return p < end && (unsigned)(*p - '0') < 10u;
}

static int parse_number(struct parser *ps, struct kt_json *v)
{
    const unsigned char *p = ps->p, *end = ps->end, *s = p;
    int neg = 0, integral = 1;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    const unsigned char *digits = p;
    if (!is_digit(p, end))
        return fail(ps, p, KT_EINVAL);
    if (*p == '0')
        p++;
    else
        while (is_digit(p, end))
            p++;
    const unsigned char *digits_end = p;
    if (p < end && *p == '.') {
        p++;
        if (!is_digit(p, end))
            return fail(ps, p, KT_EINVAL);
        while (is_digit(p, end))
            p++;
        integral = 0;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return fail(ps, p, KT_EINVAL);
        while (is_digit(p, end))
            p++;
        integral = 0;
    }
    ps->p = p;
    if (integral) {
        /* json-c clamps integers out of int64 range */
        uint64_t m = 0;
        int over = 0;
        for (const unsigned char *d = digits; d < digits_end; d++) {
            unsigned dv = *d - '0';
            if (m > (UINT64_MAX - dv) / 10)
                over = 1;
            else
                m = m * 10 + dv;
        }
        v->type = KT_JSON_INT;
        if (neg)
            v->u.i = over || m > (uint64_t)INT64_MAX + 1 ? INT64_MIN
                     : m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
        else
            v->u.i = over || m > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)m;
        return 0;
    }
    v->type = KT_JSON_DOUBLE;
    if (ps->a == NULL)
        return 0;
    /* strtod needs a terminated copy: the source is not NUL-terminated */
    char buf[64], *t = buf;
    size_t n = (size_t)(p - s);
    if (n >= sizeof buf && (t = kt_arena_alloc(ps->a, n + 1)) == NULL)
        return fail(ps, s, KT_ENOMEM);
    memcpy(t, s, n);
    t[n] = '\0';
    v->u.d = strtod(t, NULL);
    return 0;
}

static int literal(struct parser *ps, const char *word, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, ps->p, KT_EINVAL);
    ps->p += n;
    return 0;
}

/* Stage one child; returns its slot, or NULL (out of memory). */
static struct kt_json_member *push(struct parser *ps)
{
    if (ps->nstk == ps->cap) {
        size_t cap = ps->cap * 2;
        struct kt_json_member *s;
        if (ps->stk == ps->local) {
            s = malloc(cap * sizeof *s);
            if (s)
                memcpy(s, ps->local, ps->nstk * sizeof *s);
        } else {
            s = realloc(ps->stk, cap * sizeof *s);
        }
        if (s == NULL) {
            fail(ps, ps->p, KT_ENOMEM);
            return NULL;
        }
        ps->stk = s;
        ps->cap = cap;
    }
    return &ps->stk[ps->nstk++];
}

static int parse_value(struct parser *ps, struct kt_json *v);

/* open_container: past the '[' or '{' at ps->p: 1 when items follow, 0
 * when `close` comes at once (consumed), -1 when nested too deep. */
static inline int open_container(struct parser *ps, unsigned char close)
{
    if (++ps->depth > KT_JSON_MAX_DEPTH)
        return fail(ps, ps->p, KT_EINVAL);
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    return 1;
}

/* close_container: the container of n items is complete; type it. */
static inline int close_container(struct parser *ps, struct kt_json *v, enum kt_json_type type, size_t n)
{
    ps->depth--;
    if (n > UINT32_MAX)
        return fail(ps, ps->p, KT_EINVAL);
    v->type = type;
    v->n = (uint32_t)n;
    return 0;
}

/* next_item: after an array item or an object member: 1 when a ',' says
 * another follows, 0 when `close` ends the container, -1 on anything else. */
static inline int next_item(struct parser *ps, unsigned char close)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, ps->p, KT_EINVAL);
    if (*ps->p == ',') {
        ps->p++;
        skip_ws(ps);
        return 1;
    }
    if (*ps->p != close)
        return fail(ps, ps->p, KT_EINVAL);
    ps->p++;
    return 0;
}

static int parse_array(struct parser *ps, struct kt_json *v)
{
    size_t base = ps->nstk, n = 0;
    int some = open_container(ps, ']');
    if (some < 0)
        return -1;
    if (some) {
        for (;;) {
            struct kt_json item;
            if (parse_value(ps, &item))
                return -1;
            if (ps->a) {
                struct kt_json_member *m = push(ps);
                if (m == NULL)
                    return -1;
                m->val = item;
            }
            n++;
            int more = next_item(ps, ']');
            if (more < 0)
                return -1;
            if (!more)
                break;
        }
    }
    if (close_container(ps, v, KT_JSON_ARRAY, n))
        return -1;
    v->u.items = NULL;
    if (ps->a && n) {
        struct kt_json *items = kt_arena_alloc(ps->a, n * sizeof *items);
        if (items == NULL)
            return fail(ps, ps->p, KT_ENOMEM);
        for (size_t i = 0; i < n; i++)
            items[i] = ps->stk[base + i].val;
        v->u.items = items;
        ps->nstk = base;
    }
    return 0;
}

static int parse_object(struct parser *ps, struct kt_json *v)
{
    size_t base = ps->nstk, n = 0;
    int some = open_container(ps, '}');
    if (some < 0)
        return -1;
    if (some) {
        for (;;) {
            struct kt_json_member m;
            if (ps->p >= ps->end || *ps->p != '"')
                return fail(ps, ps->p, KT_EINVAL);
            if (parse_string(ps, &m.key, &m.klen))
                return -1;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':')
                return fail(ps, ps->p, KT_EINVAL);
            ps->p++;
            if (parse_value(ps, &m.val))
                return -1;
            if (ps->a) {
                struct kt_json_member *slot = push(ps);
                if (slot == NULL)
                    return -1;
                *slot = m;
            }
            n++;
            int more = next_item(ps, '}');
            if (more < 0)
                return -1;
            if (!more)
                break;
        }
    }
    if (close_container(ps, v, KT_JSON_OBJECT, n))
        return -1;
    v->u.members = NULL;
    if (ps->a && n) {
        struct kt_json_member *ms = kt_arena_alloc(ps->a, n * sizeof *ms);
        if (ms == NULL)
            return fail(ps, ps->p, KT_ENOMEM);
        memcpy(ms, ps->stk + base, n * sizeof *ms);
        v->u.members = ms;
        ps->nstk = base;
    }
    return 0;
}

/* One value at ps->p, leading whitespace allowed. */
static int parse_value(struct parser *ps, struct kt_json *v)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, ps->p, KT_EINVAL);
    const unsigned char *start = ps->p;
    int rc;
    v->n = 0;
    switch (*ps->p) {
    case '{':
        rc = parse_object(ps, v);
        break;
    case '[':
        rc = parse_array(ps, v);
        break;
    case '"':
        v->type = KT_JSON_STRING;
        rc = parse_string(ps, &v->u.s, &v->n);
        break;
    case 't':
        v->type = KT_JSON_BOOL;
        v->u.i = 1;
        rc = literal(ps, "true", 4);
        break;
    case 'f':
        v->type = KT_JSON_BOOL;
        v->u.i = 0;
        rc = literal(ps, "false", 5);
        break;
    case 'n':
        v->type = KT_JSON_NULL;
        v->u.i = 0;
        rc = literal(ps, "null", 4);
        break;
    default:
        rc = parse_number(ps, v);
        break;
    }
    v->raw = (const char *)start;
    v->raw_len = (size_t)(ps->p - start);
    return rc;
}

static int run(struct parser *ps, const char *text, size_t len, struct kt_json *v)
{
    ps->p = (const unsigned char *)text;
    ps->end = ps->p + len;
    ps->stk = ps->local;
    ps->cap = sizeof ps->local / sizeof *ps->local;
    int rc = text ? parse_value(ps, v) : fail(ps, ps->p, KT_EINVAL);
    if (rc == 0) {
        skip_ws(ps);
        if (ps->p != ps->end)
            rc = fail(ps, ps->p, KT_EINVAL);        /* trailing garbage */
    }
    if (ps->stk != ps->local)
        free(ps->stk);
    return rc;
}

int kt_json_parse(struct kt_arena *a, const char *text, size_t len, const struct kt_json **out,
                  size_t *err_off)
{
    struct parser ps = { .a = a };
    struct kt_json v;
    *out = NULL;
    if (a == NULL)
        return KT_EINVAL;
    if (run(&ps, text, len, &v)) {
        if (err_off)
            *err_off = ps.err_at && text ? (size_t)(ps.err_at - (const unsigned char *)text) : 0;
        return ps.err;
    }
    struct kt_json *root = kt_arena_alloc(a, sizeof *root);
    if (root == NULL)
        return KT_ENOMEM;
    *root = v;
    *out = root;
    return 0;
}

int kt_json_valid(const char *text, size_t len, int want)
{
    struct parser ps = { .a = NULL };
    struct kt_json v;
    if (run(&ps, text, len, &v))
        return 0;
    return want < 0 || (int)v.type == want;
}

const struct kt_json *kt_json_getn(const struct kt_json *o, const char *key, size_t kl)
{
    if (o == NULL || o->type != KT_JSON_OBJECT)
        return NULL;
    for (size_t i = o->n; i-- > 0;) {           /* last one wins, as in json-c */
        const struct kt_json_member *m = &o->u.members[i];
        if (m->klen == kl && (kl == 0 || m->key[0] == key[0]) && memcmp(m->key, key, kl) == 0)
            return &m->val;
    }
    return NULL;
}

int64_t kt_json_int(const struct kt_json *v)
{
    if (v == NULL)
        return 0;
    switch (v->type) {
    case KT_JSON_INT:
    case KT_JSON_BOOL:
        return v->u.i;
    case KT_JSON_DOUBLE:
        if (v->u.d >= 9223372036854775807.0)
            return INT64_MAX;
        if (v->u.d <= -9223372036854775808.0)
            return INT64_MIN;
        return v->u.d == v->u.d ? (int64_t)v->u.d : 0;
    default:
        return 0;
    }
}

double kt_json_double(const struct kt_json *v)
{
    if (v == NULL)
        return 0;
    return v->type == KT_JSON_INT ? (double)v->u.i : v->type == KT_JSON_DOUBLE ? v->u.d : 0;
}

char *kt_json_strdup(struct kt_arena *a, const struct kt_json *v, size_t *len)
{
    if (v == NULL || v->type != KT_JSON_STRING)
        return NULL;
    if (len)
        *len = v->n;
    return kt_arena_strndup(a, v->u.s, v->n);
}

char *kt_json_text(struct kt_arena *a, const struct kt_json *v, size_t *len)
{
    if (v == NULL)
        return NULL;
    char *o = kt_arena_alloc(a, v->raw_len + 1), *q = o;
    if (o == NULL)
        return NULL;
    const char *p = v->raw, *end = v->raw + v->raw_len;
    while (p < end) {
        char c = *p++;
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        *q++ = c;
        if (c != '"')
            continue;
        /* copy the string verbatim: the span is valid, so it is closed */
        while (p < end) {
            c = *p++;
            *q++ = c;
            if (c == '\\')
                *q++ = *p++;
            else if (c == '"')
                break;
        }
    }
    *q = '\0';
    if (len)
        *len = (size_t)(q - o);
    return o;
}

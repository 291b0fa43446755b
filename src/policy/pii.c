/* pii.c: the PII scanner, redaction and streaming redaction (see pii.h).
 * Owns the entity rules and validators (Luhn, mod-97, SSN ranges, IIN and
 * IBAN tables, strict IPv4/IPv6 parsing). Does not own policy actions
 * (redact/block/flag): the policy chain decides what to do with matches.
 *
 * How one pass works: a 256-entry class table gives each byte its classes
 * (digit, hex, email-local, key char, ...). The scanner walks the text once;
 * at each position it runs only the matchers whose trigger class contains
 * the byte and whose left boundary holds (a matcher starts a value only
 * where a token can start: "4111" inside "abc4111" is never tried). Each
 * matcher reads a bounded stretch ahead (at most KT_PII_MAX_VALUE bytes),
 * and after a match the scan resumes at its end, so no entity rescans the
 * text: the work is linear in the text times a small constant.
 *
 * Most text holds no value, so the scanner first asks cheap gates (see
 * gates below) which matchers could possibly match, or look past the end,
 * at a word start: the alnum run is measured once, a word ended by a space
 * needs no email, secret or IPv6 check, an email needs '@' right after its
 * local part, a number needs 4 digits in a stretch of digits and
 * separators. Words away from any backslash are skipped whole. The gates
 * only ever skip a matcher that would have returned 0 without reading past
 * the end, so matches and stream hold-back are exactly those of running
 * every matcher.
 *
 * Streaming: every read goes through at(), which notes when a matcher
 * looked past the end of the available text. If that happens while more
 * input may come, the decision at that position is not final yet: the
 * scanner stops there and the stream holds back the bytes from that
 * position on. Since matchers are bounded, so is the carry. Because the
 * scan resumes at a position the one-shot scan also visits, with the same
 * left context (KT_PII_HIST bytes kept), chunked output equals one-shot. */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "kt/pii.h"

/* ---- names ---------------------------------------------------------- */

static const char *const kt_pii_names[KT_PII_NENTITIES] = {
    [KT_PII_EMAIL] = "EMAIL",
    [KT_PII_PHONE] = "PHONE",
    [KT_PII_CREDIT_CARD] = "CREDIT_CARD",
    [KT_PII_US_SSN] = "US_SSN",
    [KT_PII_IBAN] = "IBAN",
    [KT_PII_IP_ADDRESS] = "IP_ADDRESS",
    [KT_PII_API_KEY] = "API_KEY",
};

const char *kt_pii_entity_name(enum kt_pii_entity e)
{
    if ((unsigned)e >= KT_PII_NENTITIES)
        return NULL;
    return kt_pii_names[e];
}

int kt_pii_entity_parse(const char *name, enum kt_pii_entity *out)
{
    for (unsigned i = 0; i < KT_PII_NENTITIES; i++) {
        if (strcasecmp(name, kt_pii_names[i]) == 0) {
            *out = (enum kt_pii_entity)i;
            return 0;
        }
    }
    return KT_EINVAL;
}

/* ---- byte classes ----------------------------------------------------- */

enum {
    C_DIGIT = 1u << 0,
    C_UPPER = 1u << 1,
    C_LOWER = 1u << 2,
    C_HEX = 1u << 3,     /* 0-9 a-f A-F */
    C_LOCAL = 1u << 4,   /* email local part: alnum . _ % + - */
    C_KEY = 1u << 5,     /* token chars: alnum _ - */
    C_B64 = 1u << 6,     /* alnum / + */
    C_PLUS = 1u << 7,
    C_LPAREN = 1u << 8,
    C_COLON = 1u << 9,
    C_IP6 = 1u << 10,    /* 0-9 a-f A-F : . (what an IPv6 run may hold) */
    C_NUM = 1u << 11,    /* digits and what number matchers step over */
    C_AT = 1u << 12,
    C_LEAD = 1u << 13,   /* leads a key prefix, an IBAN or a number (lead_gates) */
};
#define C_ALPHA (C_UPPER | C_LOWER)
#define C_ALNUM (C_DIGIT | C_ALPHA)

static const unsigned short kt_cls[256] = {
    ['0' ... '9'] = C_DIGIT | C_HEX | C_LOCAL | C_KEY | C_B64 | C_IP6 | C_NUM | C_LEAD,
    ['A' ... 'F'] = C_UPPER | C_HEX | C_LOCAL | C_KEY | C_B64 | C_IP6 | C_LEAD,
    ['G' ... 'Z'] = C_UPPER | C_LOCAL | C_KEY | C_B64 | C_LEAD,
    ['a' ... 'f'] = C_LOWER | C_HEX | C_LOCAL | C_KEY | C_B64 | C_IP6,
    /* g, s, x start key prefixes (kt_key_next) */
    ['g'] = C_LOWER | C_LOCAL | C_KEY | C_B64 | C_LEAD,
    ['h' ... 'r'] = C_LOWER | C_LOCAL | C_KEY | C_B64,
    ['s'] = C_LOWER | C_LOCAL | C_KEY | C_B64 | C_LEAD,
    ['t' ... 'w'] = C_LOWER | C_LOCAL | C_KEY | C_B64,
    ['x'] = C_LOWER | C_LOCAL | C_KEY | C_B64 | C_LEAD,
    ['y' ... 'z'] = C_LOWER | C_LOCAL | C_KEY | C_B64,
    ['.'] = C_LOCAL | C_IP6 | C_NUM, ['%'] = C_LOCAL,
    ['_'] = C_LOCAL | C_KEY,
    ['-'] = C_LOCAL | C_KEY | C_NUM,
    ['+'] = C_LOCAL | C_B64 | C_PLUS | C_NUM | C_LEAD,
    ['/'] = C_B64 | C_NUM,
    ['('] = C_LPAREN | C_NUM | C_LEAD,
    [':'] = C_COLON | C_IP6,
    /* separators and look-ahead of the number matchers; read_groups'
     * strchr() takes a NUL for a separator */
    [' '] = C_NUM, [','] = C_NUM, [')'] = C_NUM, ['\0'] = C_NUM,
    ['@'] = C_AT,
};

/* ---- the scan context ------------------------------------------------- */

struct scan {
    const unsigned char *t;
    size_t len;
    int final;       /* no more input will follow t[len-1] */
    int hit_end;     /* a matcher looked at t[len] or beyond */
    unsigned trig;   /* triggers(mask): bytes that can start a value */
};

/* at: the byte at i, or -1 past the end (and note that we looked). */
static int at(struct scan *s, size_t i)
{
    if (i >= s->len) {
        s->hit_end = 1;
        return -1;
    }
    return s->t[i];
}

static unsigned cls_at(struct scan *s, size_t i)
{
    int c = at(s, i);
    return c < 0 ? 0 : kt_cls[c];
}

static int is_digit_at(struct scan *s, size_t i)
{
    return (cls_at(s, i) & C_DIGIT) != 0;
}

/* ctx_word: does one of words occur as a whole word within the win bytes
 * before i? Case-insensitive. Only looks left of i, so it never depends on
 * input still to come. */
static int ctx_word(const struct scan *s, size_t i, size_t win, const char *const *words)
{
    size_t from = i > win ? i - win : 0;
    for (const char *const *w = words; *w; w++) {
        size_t wl = strlen(*w);
        for (size_t p = from; p + wl <= i; p++) {
            if (p > 0 && (kt_cls[s->t[p - 1]] & C_ALPHA))
                continue;
            if (strncasecmp((const char *)s->t + p, *w, wl) != 0)
                continue;
            if (p + wl < i && (kt_cls[(unsigned char)(*w)[wl - 1]] & C_ALPHA) &&
                (kt_cls[s->t[p + wl]] & C_ALPHA))
                continue;               /* "ref" is not "preferred" */
            return 1;
        }
    }
    return 0;
}

/* ---- left boundaries -------------------------------------------------- */

/* Numbers: not inside a word or continuing a number ("v1.2", "12,345",
 * "abc-123", "10:30", UUID segments). */
/* JSON/C escapes: in "\nalice@example.com" the 'n' belongs to "\n", so a
 * value may start right after it (tool arguments often arrive still
 * JSON-encoded). "\\n" is an escaped backslash and a plain 'n'. */
static int escaped(const struct scan *s, size_t i)
{
    size_t n = 0;       /* odd run of backslashes before i: t[i] is escaped */
    while (n < i && n < 16 && s->t[i - 1 - n] == '\\')
        n++;
    return n & 1;
}

static int after_escape(const struct scan *s, size_t i)
{
    /* Called for nearly every byte: test the backslash before anything else. */
    if (i >= 2 && s->t[i - 2] == '\\' && memchr("nrtbf", s->t[i - 1], 5) &&
        escaped(s, i - 1))
        return 1;
    if (i < 6 || s->t[i - 6] != '\\' || s->t[i - 5] != 'u' || !escaped(s, i - 5))
        return 0;       /* "\u00e9" */
    for (size_t k = i - 4; k < i; k++)
        if (!(kt_cls[s->t[k]] & C_HEX))
            return 0;
    return 1;
}

static int left_num_ok(const struct scan *s, size_t i)
{
    if (i == 0 || after_escape(s, i))
        return 1;
    unsigned char p = s->t[i - 1];
    if (kt_cls[p] & C_ALNUM || p == '_' || p == '+')
        return 0;
    if (i < 2)
        return 1;
    unsigned pp = kt_cls[s->t[i - 2]];
    switch (p) {
    case '.': case '-': case '/': return !(pp & C_ALNUM);
    case ',': case ':': return !(pp & C_DIGIT);
    default: return 1;
    }
}

/* Anything else: the previous byte is not one of the given classes. */
static int left_cls_ok(const struct scan *s, size_t i, unsigned blockers)
{
    return i == 0 || !(kt_cls[s->t[i - 1]] & blockers) || after_escape(s, i);
}

/* ---- validators ------------------------------------------------------- */

static int luhn_ok(const char *d, size_t n)
{
    unsigned sum = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned v = (unsigned)(d[n - 1 - k] - '0');
        if (k & 1) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    return sum % 10 == 0;
}

/* Known issuer prefixes (IIN ranges) and the lengths each issues. */
static const struct iin {
    unsigned lo, hi, plen;   /* prefix range of plen digits */
    unsigned minlen, maxlen;
} kt_iin[] = {
    { 4, 4, 1, 13, 19 },            /* Visa */
    { 51, 55, 2, 16, 16 },          /* Mastercard */
    { 2221, 2720, 4, 16, 16 },      /* Mastercard 2-series */
    { 34, 34, 2, 15, 15 },          /* American Express */
    { 37, 37, 2, 15, 15 },
    { 6011, 6011, 4, 16, 19 },      /* Discover */
    { 644, 649, 3, 16, 19 },
    { 65, 65, 2, 16, 19 },
    { 300, 305, 3, 14, 19 },        /* Diners Club */
    { 36, 36, 2, 14, 19 },
    { 38, 39, 2, 14, 19 },
    { 3528, 3589, 4, 16, 19 },      /* JCB */
    { 62, 62, 2, 16, 19 },          /* UnionPay */
    { 50, 50, 2, 12, 19 },          /* Maestro */
    { 56, 58, 2, 12, 19 },
    { 63, 63, 2, 12, 19 },
    { 67, 67, 2, 12, 19 },
};

static int iin_ok(const char *d, size_t n)
{
    for (size_t k = 0; k < sizeof kt_iin / sizeof kt_iin[0]; k++) {
        const struct iin *r = &kt_iin[k];
        unsigned p = 0;
        for (unsigned j = 0; j < r->plen; j++)
            p = p * 10 + (unsigned)(d[j] - '0');
        if (p >= r->lo && p <= r->hi && n >= r->minlen && n <= r->maxlen)
            return 1;
    }
    return 0;
}

/* IBAN lengths by country (SWIFT IBAN registry). */
static const struct { char cc[3]; unsigned char len; } kt_iban_len[] = {
    {"AD",24},{"AE",23},{"AL",28},{"AT",20},{"AZ",28},{"BA",20},{"BE",16},{"BG",22},
    {"BH",22},{"BR",29},{"BY",28},{"CH",21},{"CR",22},{"CY",28},{"CZ",24},{"DE",22},
    {"DK",18},{"DO",28},{"EE",20},{"EG",29},{"ES",24},{"FI",18},{"FO",18},{"FR",27},
    {"GB",22},{"GE",22},{"GI",23},{"GL",18},{"GR",27},{"GT",28},{"HR",21},{"HU",28},
    {"IE",22},{"IL",23},{"IQ",23},{"IS",26},{"IT",27},{"JO",30},{"KW",30},{"KZ",20},
    {"LB",28},{"LC",32},{"LI",21},{"LT",20},{"LU",20},{"LV",21},{"MC",27},{"MD",24},
    {"ME",22},{"MK",19},{"MR",27},{"MT",31},{"MU",30},{"NL",18},{"NO",15},{"PK",24},
    {"PL",28},{"PS",29},{"PT",25},{"QA",29},{"RO",24},{"RS",22},{"SA",24},{"SC",31},
    {"SE",24},{"SI",19},{"SK",24},{"SM",27},{"ST",25},{"SV",28},{"TL",23},{"TN",24},
    {"TR",26},{"UA",29},{"VA",22},{"VG",24},{"XK",20},
};

static unsigned iban_len(int c0, int c1)
{
    for (size_t k = 0; k < sizeof kt_iban_len / sizeof kt_iban_len[0]; k++)
        if (kt_iban_len[k].cc[0] == c0 && kt_iban_len[k].cc[1] == c1)
            return kt_iban_len[k].len;
    return 0;
}

static int upc(int c)
{
    return (c >= 'a' && c <= 'z') ? c - 32 : c;
}

/* mod-97 over the rearranged IBAN (first four chars moved to the end). */
static int iban_mod97_ok(const char *v, size_t n)
{
    unsigned rem = 0;
    for (size_t k = 0; k < n; k++) {
        int c = upc(v[(k + 4) % n]);
        if (c >= '0' && c <= '9')
            rem = (rem * 10 + (unsigned)(c - '0')) % 97;
        else
            rem = (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
    }
    return rem == 1;
}

/* ---- matchers ----------------------------------------------------------
 * Each returns 1 with *m filled, or 0. They read only through at() (or
 * bytes before i), and never more than KT_PII_MAX_VALUE ahead. */

typedef int (*matcher_fn)(struct scan *, size_t, struct kt_pii_match *);

static int found(struct kt_pii_match *m, size_t a, size_t b, enum kt_pii_entity e)
{
    m->start = a;
    m->end = b;
    m->entity = e;
    return 1;
}

/* API keys with a known prefix. */
enum { KS_KEY, KS_ALNUM, KS_UPNUM, KS_WORD };
static const struct keyshape {
    const char *prefix;
    unsigned char charset;     /* KS_* */
    unsigned char need_mix;    /* must hold a digit and a letter */
    unsigned short minb, maxb; /* body length after the prefix */
} kt_keys[] = {                 /* a new prefix goes in kt_key_next too */
    { "sk-ant-", KS_KEY, 1, 20, 200 },      /* Anthropic */
    { "sk-", KS_KEY, 1, 20, 200 },          /* OpenAI, incl. sk-proj-, sk-svcacct- */
    { "AKIA", KS_UPNUM, 0, 16, 16 },        /* AWS access key id */
    { "ASIA", KS_UPNUM, 0, 16, 16 },        /* AWS temporary key id */
    { "ghp_", KS_ALNUM, 0, 30, 200 },       /* GitHub tokens */
    { "gho_", KS_ALNUM, 0, 30, 200 },
    { "ghu_", KS_ALNUM, 0, 30, 200 },
    { "ghs_", KS_ALNUM, 0, 30, 200 },
    { "ghr_", KS_ALNUM, 0, 30, 200 },
    { "github_pat_", KS_WORD, 0, 22, 200 },
    { "xoxa-", KS_KEY, 1, 10, 200 },        /* Slack */
    { "xoxb-", KS_KEY, 1, 10, 200 },
    { "xoxp-", KS_KEY, 1, 10, 200 },
    { "xoxr-", KS_KEY, 1, 10, 200 },
    { "xoxs-", KS_KEY, 1, 10, 200 },
    { "AIza", KS_KEY, 0, 35, 35 },          /* Google API key */
};

/* The first three bytes of the prefixes above, as the pairs of bytes that
 * may follow each first byte: most words start with none of them. */
static const char *const kt_key_next[256] = {
    ['s'] = "k-", ['A'] = "KISIIz", ['g'] = "hphohuhshrit", ['x'] = "ox",
};

/* key_gate: could a prefix above start at i (or, when more input may
 * come, does the text end too soon to tell)? m_key compares prefixes only
 * while they agree with the text. */
static int key_gate(const unsigned char *t, size_t i, size_t len, int more)
{
    const char *nx = kt_key_next[t[i]];
    if (nx == NULL)
        return 0;
    if (i + 1 >= len)
        return more;
    for (; *nx; nx += 2) {
        if (t[i + 1] != (unsigned char)nx[0])
            continue;
        if (i + 2 >= len || t[i + 2] == (unsigned char)nx[1])
            return i + 2 < len || more;
    }
    return 0;
}

static int key_char(int c, unsigned charset)
{
    if (c < 0)
        return 0;
    unsigned k = kt_cls[c];
    switch (charset) {
    case KS_KEY: return (k & C_KEY) != 0;
    case KS_ALNUM: return (k & C_ALNUM) != 0;
    case KS_UPNUM: return (k & (C_UPPER | C_DIGIT)) != 0;
    default: return (k & C_ALNUM) || c == '_';
    }
}

static int m_key(struct scan *s, size_t i, struct kt_pii_match *m)
{
    if (!kt_key_next[s->t[i]])
        return 0;
    for (size_t k = 0; k < sizeof kt_keys / sizeof kt_keys[0]; k++) {
        const struct keyshape *ks = &kt_keys[k];
        if (s->t[i] != (unsigned char)ks->prefix[0])
            continue;           /* most words start with no key prefix */
        if (i + 1 < s->len && s->t[i + 1] != (unsigned char)ks->prefix[1])
            continue;           /* as the loop below would, without a call */
        size_t j = 0;
        while (ks->prefix[j] && at(s, i + j) == ks->prefix[j])
            j++;
        if (ks->prefix[j])
            continue;
        size_t p = i + j, nb = 0;
        int dig = 0, alpha = 0;
        for (int c; nb <= ks->maxb && key_char(c = at(s, p), ks->charset); p++, nb++) {
            dig |= (kt_cls[c] & C_DIGIT) != 0;
            alpha |= (kt_cls[c] & C_ALPHA) != 0;
        }
        if (nb < ks->minb || nb > ks->maxb || (ks->need_mix && !(dig && alpha)))
            continue;
        if (cls_at(s, p) & C_ALNUM)    /* longer run of another charset */
            continue;
        return found(m, i, p, KT_PII_API_KEY);
    }
    return 0;
}

/* AWS secret access keys: 40 base64 chars, only with context before. */
static const char *const kt_aws_ctx[] = {
    "aws_secret", "aws secret", "secret_access_key", "secretaccesskey",
    "secret access key", "aws-secret", NULL
};

static int m_aws_secret(struct scan *s, size_t i, struct kt_pii_match *m)
{
    size_t p = i;
    int up = 0, lo = 0, nonhex = 0;
    while (p - i <= 40 && (cls_at(s, p) & C_B64)) {
        int c = s->t[p];
        up |= (kt_cls[c] & C_UPPER) != 0;
        lo |= (kt_cls[c] & C_LOWER) != 0;
        nonhex |= !(kt_cls[c] & C_HEX);
        p++;
    }
    if (p - i != 40)
        return 0;
    int c = at(s, p);
    if (c == '_' || c == '-' || c == '=')
        return 0;
    /* hex digests are not secrets; real keys mix cases */
    if (!nonhex || !(up && lo))
        return 0;
    if (!ctx_word(s, i, 64, kt_aws_ctx))
        return 0;
    return found(m, i, p, KT_PII_API_KEY);
}

/* Top-level domains that are really file extensions ("icon@2x.png"). */
static const char *const kt_file_ext[] = {
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "pdf", "js", "ts",
    "css", "json", "yaml", "yml", "txt", "md", "html", "xml", "py", "rb", "go",
    "java", "class", "jar", "zip", "gz", "tar", "lock", "log", "mp3", "mp4", NULL
};

static int m_email(struct scan *s, size_t i, struct kt_pii_match *m)
{
    size_t p = i;
    while (p - i <= 64 && (cls_at(s, p) & C_LOCAL))
        p++;
    if (p - i > 64 || at(s, p) != '@')
        return 0;
    size_t a = i;
    while (a < p && !(kt_cls[s->t[a]] & C_ALNUM))
        a++;                            /* "--john@" → "john@" */
    if (a == p || s->t[p - 1] == '.')
        return 0;
    size_t d = p + 1, labels = 0, lab = d, last = d;
    for (;;) {
        lab = d;
        while (d - lab < 64 && d - p <= 254 && (cls_at(s, d) & C_ALNUM || at(s, d) == '-'))
            d++;
        if (d == lab || d - lab >= 64 || d - p > 254 || s->t[lab] == '-' || s->t[d - 1] == '-')
            return 0;                   /* labels ≤ 63, domain ≤ 253 */
        labels++;
        last = lab;
        if (at(s, d) == '.' && (cls_at(s, d + 1) & C_ALNUM)) {
            d++;
            continue;
        }
        break;
    }
    int c = at(s, d);
    if (labels < 2 || c == '@' || c == '_')
        return 0;
    for (size_t k = last; k < d; k++)
        if (!(kt_cls[s->t[k]] & C_ALPHA))
            return 0;
    if (d - last < 2)
        return 0;
    for (const char *const *x = kt_file_ext; *x; x++)
        if (strlen(*x) == d - last && strncasecmp((const char *)s->t + last, *x, d - last) == 0)
            return 0;
    return found(m, a, d, KT_PII_EMAIL);
}

static int m_iban(struct scan *s, size_t i, struct kt_pii_match *m)
{
    int c0 = at(s, i), c1 = at(s, i + 1);
    if (c1 < 0 || !(kt_cls[c1] & C_UPPER) || !(kt_cls[c0] & C_UPPER))
        return 0;
    unsigned n = iban_len(c0, c1);
    if (n == 0 || !is_digit_at(s, i + 2) || !is_digit_at(s, i + 3))
        return 0;
    char v[40];
    size_t p = i, k = 0;
    while (k < n) {
        int c = at(s, p);
        if (c == ' ' && k % 4 == 0 && k > 0 && (cls_at(s, p + 1) & C_ALNUM)) {
            p++;
            continue;
        }
        if (c < 0 || !(kt_cls[c] & C_ALNUM))
            return 0;
        v[k++] = (char)c;
        p++;
    }
    if (cls_at(s, p) & C_ALNUM)
        return 0;
    if (!iban_mod97_ok(v, n))
        return 0;
    return found(m, i, p, KT_PII_IBAN);
}

/* digit groups with single separators from seps; returns groups found.
 * p ends after the last digit. Stops at maxd digits. */
struct groups {
    size_t n, nd, end;
    unsigned char len[8];
    char sep[8];        /* sep[k] is between group k and k+1 */
    char d[24];         /* the digits */
};

static void read_groups(struct scan *s, size_t i, const char *seps, size_t maxd,
                        struct groups *g)
{
    size_t p = i;
    memset(g, 0, sizeof *g);
    for (;;) {
        size_t st = p;
        while (g->nd < maxd && is_digit_at(s, p))
            g->d[g->nd++] = (char)s->t[p++];
        g->len[g->n++] = (unsigned char)(p - st);
        g->end = p;
        int c = at(s, p);
        if (g->n == 8 || g->nd >= maxd || c < 0 || !strchr(seps, c) || !is_digit_at(s, p + 1))
            return;
        g->sep[g->n - 1] = (char)c;
        p++;
    }
}

static int seps_same(const struct groups *g)
{
    for (size_t k = 1; k + 1 < g->n; k++)
        if (g->sep[k] != g->sep[0])
            return 0;
    return 1;
}

/* The value ends cleanly: no letter, digit, or separator+digit follows. */
static int right_num_ok(struct scan *s, size_t p)
{
    int c = at(s, p);
    if (c < 0)
        return 1;
    if (kt_cls[c] & C_ALNUM || c == '_')
        return 0;
    if ((c == '.' || c == '-' || c == '/' || c == ',' || c == '+') && is_digit_at(s, p + 1))
        return 0;
    return 1;
}

static int m_card(struct scan *s, size_t i, struct kt_pii_match *m)
{
    struct groups g;
    read_groups(s, i, " -", 20, &g);
    if (!seps_same(&g))
        return 0;
    /* try the longest group boundary first: "4111 1111 1111 1111 2024" */
    size_t nd = g.nd, p = g.end;
    for (size_t k = g.n; k > 0; k--) {
        int grouped_ok = 1;
        if (k > 1)
            for (size_t j = 0; j < k; j++)
                if (g.len[j] > 6 || (g.len[j] < 3 && j + 1 < k))
                    grouped_ok = 0;     /* the last group may be short */
        if (grouped_ok && nd >= 12 && nd <= 19 && luhn_ok(g.d, nd) && iin_ok(g.d, nd)) {
            if (k == g.n ? right_num_ok(s, p) : g.sep[k - 1] == ' ')
                return found(m, i, p, KT_PII_CREDIT_CARD);
        }
        if (k == 1)
            break;
        nd -= g.len[k - 1];
        p -= g.len[k - 1] + 1;
    }
    return 0;
}

static const char *const kt_ssn_ctx[] = {
    "ssn", "social security", "social sec", "ss#", "ss #", "sozialversicherung", NULL
};

static int ssn_valid(const char *d)
{
    int area = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
    int grp = (d[3] - '0') * 10 + (d[4] - '0');
    int ser = (d[5] - '0') * 1000 + (d[6] - '0') * 100 + (d[7] - '0') * 10 + (d[8] - '0');
    return area != 0 && area != 666 && area < 900 && grp != 0 && ser != 0;
}

static int m_ssn(struct scan *s, size_t i, struct kt_pii_match *m)
{
    struct groups g;
    read_groups(s, i, " -", 10, &g);
    if (g.nd != 9 || !right_num_ok(s, g.end))
        return 0;
    int shaped = g.n == 3 && g.len[0] == 3 && g.len[1] == 2 && g.len[2] == 4 && seps_same(&g);
    if (!(g.n == 1 || shaped))
        return 0;
    /* dashed AAA-GG-SSSS stands on its own; bare or spaced needs context */
    if (!(shaped && g.sep[0] == '-') && !ctx_word(s, i, 48, kt_ssn_ctx))
        return 0;
    if (!ssn_valid(g.d))
        return 0;
    return found(m, i, g.end, KT_PII_US_SSN);
}

static const char *const kt_version_ctx[] = {
    "version", "release", "section", "sec", "v", "ver", "rev", "revision", "build",
    "clause", "chapter", "\xc2\xa7", NULL
};

/* IPv4: strict dotted quad, as inet_pton(AF_INET): 0-255, no leading 0. */
static int m_ipv4(struct scan *s, size_t i, struct kt_pii_match *m)
{
    size_t p = i;
    for (int oct = 0; oct < 4; oct++) {
        if (oct > 0) {
            if (at(s, p) != '.')
                return 0;
            p++;
        }
        size_t st = p;
        unsigned v = 0;
        while (p - st < 4 && is_digit_at(s, p))
            v = v * 10 + (unsigned)(s->t[p++] - '0');
        if (p == st || p - st > 3 || v > 255 || (p - st > 1 && s->t[st] == '0'))
            return 0;
    }
    /* "/24" (CIDR) and ",192.0.2.2" may follow; a fifth part may not */
    int c = at(s, p);
    if (c >= 0 && (kt_cls[c] & C_ALNUM || c == '_' || (c == '.' && is_digit_at(s, p + 1))))
        return 0;
    /* "2.10.0.27-1": a Debian-style revision, not "10.0.0.1-10.0.0.9" */
    if (c == '-' && is_digit_at(s, p + 1)) {
        size_t q = p + 1, dots = 0;
        for (int c2; q - p <= 16 && ((c2 = at(s, q)) == '.' || is_digit_at(s, q)); q++)
            dots += c2 == '.';
        if (dots != 3)
            return 0;
    }
    /* a dotted quad is an IP unless the words before call it a version */
    if (ctx_word(s, i, 16, kt_version_ctx))
        return 0;
    return found(m, i, p, KT_PII_IP_ADDRESS);
}

/* IPv6: a run of hex, ':' and '.', validated by inet_pton(AF_INET6). */
static int m_ipv6(struct scan *s, size_t i, struct kt_pii_match *m)
{
    size_t p = i;
    while (p - i <= 45 && (cls_at(s, p) & (C_HEX | C_COLON) || at(s, p) == '.'))
        p++;
    if (p - i > 45 || cls_at(s, p) & C_ALNUM || at(s, p) == '_')
        return 0;
    size_t e = p;
    while (e > i && s->t[e - 1] == '.')
        e--;                            /* sentence end */
    if (e - i >= 2 && s->t[e - 1] == ':' && s->t[e - 2] != ':')
        e--;                            /* "fe80::1: next" */
    char v[48];
    size_t colons = 0, digits = 0;
    for (size_t k = i; k < e; k++) {
        colons += s->t[k] == ':';
        digits += (kt_cls[s->t[k]] & C_DIGIT) != 0;
        v[k - i] = (char)s->t[k];
    }
    v[e - i] = '\0';
    unsigned char addr[16];
    if (colons < 2 || digits == 0 || inet_pton(AF_INET6, v, addr) != 1)
        return 0;
    return found(m, i, e, KT_PII_IP_ADDRESS);
}

/* Phone numbers. With '+': E.164, 8-15 digits, any grouping. Without:
 * the national shapes in kt_phone_shapes; bare digit strings never match
 * (order numbers, timestamps). */
static const struct phone_shape {
    const char *name;
    unsigned char ng, len[5];
    const char *seps;         /* allowed separators, all the same */
    char first;               /* required first digit, 0: any; 'N': 2-9 */
} kt_phone_shapes[] = {
    { "US", 3, {3, 3, 4}, "-. ", 'N' },
    { "US+1", 4, {1, 3, 3, 4}, "-. ", '1' },
    { "UK", 3, {3, 4, 4}, " ", '0' },      /* 020 7946 0958 */
    { "UK", 3, {4, 3, 4}, " ", '0' },      /* 0161 496 0000 */
    { "UK", 2, {5, 6}, " ", '0' },         /* 07700 900123 */
    { "FR", 5, {2, 2, 2, 2, 2}, " .-", '0' },
    { "DE", 2, {3, 8}, " /-", '0' },       /* 030 12345678 */
    { "DE", 2, {4, 7}, " /-", '0' },
    { "DE", 2, {4, 8}, " /-", '0' },       /* 0151 23456789 */
    { "DE", 2, {5, 6}, " /-", '0' },
    { "DE", 2, {3, 7}, " /-", '0' },       /* 089 1234567 */
};

/* Words that, as one of the two words right before a number, name it as
 * something else: "Order #415-555-0123", "serial no. 020 7946 0018". */
static const char *const kt_phone_neg_ctx[] = {
    "order", "orders", "invoice", "serial", "sku", "tracking", "ticket", "ref",
    "isbn", "part", "po", "build", "version", "id", "sn", "account", "acct", NULL
};

/* near_word: is one of the last nwords words before i (within win bytes)
 * in words? Case-insensitive whole words. */
static int near_word(const struct scan *s, size_t i, int nwords, size_t win,
                     const char *const *words)
{
    size_t from = i > win ? i - win : 0, p = i;
    for (int k = 0; k < nwords; k++) {
        while (p > from && !(kt_cls[s->t[p - 1]] & C_ALPHA))
            p--;
        size_t e = p;
        while (p > from && (kt_cls[s->t[p - 1]] & C_ALPHA))
            p--;
        if (p == e || (p == from && from > 0))
            return 0;                   /* no word, or one cut by the window */
        for (const char *const *w = words; *w; w++)
            if (strlen(*w) == e - p && strncasecmp((const char *)s->t + p, *w, e - p) == 0)
                return 1;
    }
    return 0;
}

static const char *const kt_phone_ctx[] = {
    "phone", "call", "tel", "telephone", "mobile", "cell", "fax", "contact", "reach",
    "number", "sms", "text", "whatsapp", "dial", "ph", NULL
};

/* A phone-shaped value, unless the words before name it as something else. */
static int phone_found(const struct scan *s, struct kt_pii_match *m, size_t i, size_t p)
{
    if (near_word(s, i, 2, 32, kt_phone_neg_ctx))
        return 0;
    return found(m, i, p, KT_PII_PHONE);
}

static int m_phone(struct scan *s, size_t i, struct kt_pii_match *m)
{
    size_t p = i;
    int plus = at(s, p) == '+';
    if (plus)
        p++;
    /* optional "(415) " or "(0)" area group */
    size_t paren_digits = 0, nd = 0;
    char d[20];
    int paren_first = 0, trunk0 = 0;
    struct groups g = {0};
    for (;;) {
        int c = at(s, p);
        if (c == '(') {
            size_t st = ++p;
            while (p - st < 5 && is_digit_at(s, p))
                p++;
            if (p == st || at(s, p) != ')')
                return 0;
            paren_digits = p - st;
            if (paren_digits == 1 && s->t[st] == '0' && g.n > 0)
                trunk0 = 1;             /* "+44 (0)20 ..." */
            else if (g.n == 0)
                paren_first = 1;
            else if (!(plus && g.n == 1))   /* "+1 (415) ..." */
                return 0;
            for (size_t k = st; k < p && !trunk0; k++)
                if (nd < 20)
                    d[nd++] = (char)s->t[k];
            if (!trunk0 && g.n < 8)
                g.len[g.n++] = (unsigned char)paren_digits;
            p++;
            c = at(s, p);
            if (c == ' ' || c == '-')
                if (is_digit_at(s, p + 1))
                    p++;
            if (!is_digit_at(s, p))
                return 0;
            continue;
        }
        if (!is_digit_at(s, p))
            return 0;
        size_t st = p;
        while (p - st < 16 && is_digit_at(s, p)) {
            if (nd < 20)
                d[nd++] = (char)s->t[p];
            p++;
        }
        if (g.n == 8 || nd > 15)
            return 0;
        g.len[g.n++] = (unsigned char)(p - st);
        c = at(s, p);
        if ((c == ' ' || c == '-' || c == '.' || c == '/') && (is_digit_at(s, p + 1) || at(s, p + 1) == '(')) {
            if (c != ' ' && at(s, p + 1) == '(')
                break;
            g.sep[g.n - 1] = (char)c;
            p++;
            continue;
        }
        break;
    }
    if (!right_num_ok(s, p))
        return 0;
    if (i > 0 && (s->t[i - 1] == '#' || (i > 1 && s->t[i - 1] == ' ' && s->t[i - 2] == '#')))
        return 0;
    /* near_word reads only bytes before i, so it can come last: it is
     * the costly test, and most digit runs fail the shapes first */
    if (plus) {
        if (nd < 8 || nd > 15 || d[0] == '0' || g.n > 6)
            return 0;
        if (g.n > 1 && (g.len[0] > 3 || g.len[g.n - 1] < 2))
            return 0;                   /* country code is 1-3 digits */
        return phone_found(s, m, i, p);
    }
    if (trunk0)
        return 0;
    for (size_t k = 0; k < sizeof kt_phone_shapes / sizeof kt_phone_shapes[0]; k++) {
        const struct phone_shape *ps = &kt_phone_shapes[k];
        if (ps->ng != g.n)
            continue;
        int ok = 1;
        for (size_t j = 0; j < g.n && ok; j++)
            ok = g.len[j] == ps->len[j];
        if (!ok)
            continue;
        if (paren_first) {
            /* "(415) 555-2671": only the US shape, area in parens */
            if (strcmp(ps->name, "US") != 0)
                continue;
        } else {
            for (size_t j = 0; j + 1 < g.n && ok; j++)
                ok = g.sep[0] && g.sep[j] == g.sep[0] && strchr(ps->seps, g.sep[0]);
            if (!ok)
                continue;
        }
        if (ps->first == 'N') {
            if (d[0] < '2' || d[3] < '2')
                continue;
        } else if (ps->first && d[0] != ps->first) {
            continue;
        }
        if (ps->first == '0' && d[1] == '0')
            continue;                   /* "00..." is an international prefix */
        if (ps->first == '1' && (d[1] < '2' || d[4] < '2'))
            continue;
        /* "415 555 0123" is as often a list of numbers: want a phone word */
        if (ps->name[0] == 'U' && ps->name[1] == 'S' && !paren_first && g.sep[0] == ' ' &&
            !ctx_word(s, i, 32, kt_phone_ctx))
            continue;
        return phone_found(s, m, i, p);
    }
    return 0;
}

/* ---- dispatch table -----------------------------------------------------
 * In priority order: the first matcher that matches at a position wins. */
enum { LB_NUM = 0x10000 };       /* use left_num_ok instead of a class mask */

static const struct matcher {
    unsigned trigger;     /* classes the first byte must have */
    unsigned left;        /* classes the previous byte must not have, or LB_NUM */
    enum kt_pii_entity entity;
    matcher_fn fn;
} kt_matchers[] = {
    { C_ALPHA, C_KEY, KT_PII_API_KEY, m_key },
    { C_B64, C_B64 | C_KEY, KT_PII_API_KEY, m_aws_secret },
    { C_LOCAL, C_LOCAL, KT_PII_EMAIL, m_email },
    { C_UPPER, C_ALNUM, KT_PII_IBAN, m_iban },
    { C_DIGIT, LB_NUM, KT_PII_US_SSN, m_ssn },
    { C_DIGIT, LB_NUM, KT_PII_CREDIT_CARD, m_card },
    { C_DIGIT, LB_NUM, KT_PII_IP_ADDRESS, m_ipv4 },
    { C_HEX | C_COLON, C_ALNUM | C_COLON | C_KEY, KT_PII_IP_ADDRESS, m_ipv6 },
    { C_DIGIT | C_PLUS | C_LPAREN, LB_NUM, KT_PII_PHONE, m_phone },
};
#define KT_NMATCHERS (sizeof kt_matchers / sizeof kt_matchers[0])
/* bits of kt_matchers[] entries, in its order, for the gates below */
enum { M_KEY = 1u << 0, M_AWS = 1u << 1, M_EMAIL = 1u << 2, M_IBAN = 1u << 3,
       M_DIGITS = (1u << 4) | (1u << 5) | (1u << 6), M_IPV6 = 1u << 7, M_PHONE = 1u << 8 };

enum { SCAN_MATCH, SCAN_DONE, SCAN_MORE };

/* in_word: t[i] continues a word (and not an escape). after_escape needs a
 * backslash 2 or 6 bytes back, so test for one first: this runs per byte. */
static int in_word(const struct scan *s, size_t i)
{
    if (i == 0 || !(kt_cls[s->t[i - 1]] & C_ALNUM))
        return 0;
    if ((i >= 2 && s->t[i - 2] == '\\') || (i >= 6 && s->t[i - 6] == '\\'))
        return !after_escape(s, i);
    return 1;
}

/* run_end: the end of the run of class c from i, reading no further than
 * lim; [i, from) is known to be in c already. */
static inline size_t run_end(const unsigned char *t, size_t from, size_t lim, unsigned c)
{
    while (from < lim && (kt_cls[t[from]] & c))
        from++;
    return from;
}

/* word_end: the end of the alnum run from i (t[i] is alnum). Most bytes of
 * prose go through here, so four at a time, one bound check each. */
static inline size_t word_end(const unsigned char *t, size_t i, size_t len)
{
    size_t p = i + 1;
    for (; p + 4 <= len; p += 4) {
        if (!(kt_cls[t[p]] & C_ALNUM))
            return p;
        if (!(kt_cls[t[p + 1]] & C_ALNUM))
            return p + 1;
        if (!(kt_cls[t[p + 2]] & C_ALNUM))
            return p + 2;
        if (!(kt_cls[t[p + 3]] & C_ALNUM))
            return p + 3;
    }
    return run_end(t, p, len, C_ALNUM);
}

#define KT_PII_NUMBERS (KT_PII_BIT(KT_PII_US_SSN) | KT_PII_BIT(KT_PII_CREDIT_CARD) | \
                        KT_PII_BIT(KT_PII_IP_ADDRESS) | KT_PII_BIT(KT_PII_PHONE))

/* num_gate: could a number matcher (SSN, card, IPv4, phone) match at i
 * or read past the end? They step only over C_NUM bytes and look at most
 * one byte past them, and every value they match holds at least 4 digits.
 * So: a C_NUM stretch with 4 digits, or one that reaches the end while
 * more input may come. */
static int num_gate(const unsigned char *t, size_t i, size_t len, int more)
{
    unsigned nd = 0;
    for (size_t p = i; p < len; p++) {
        unsigned c = kt_cls[t[p]];
        if (!(c & C_NUM))
            return 0;
        if ((c & C_DIGIT) && ++nd == 4)
            return 1;
    }
    return more;
}

/* bytes that extend a word into an email, a secret or an IPv6 address */
#define C_EXTEND (C_LOCAL | C_B64 | C_IP6 | C_AT)

/* plain_end: the alnum run ending at a cannot grow into an AWS secret, an
 * email or an IPv6 address: it is followed by a byte that cannot extend it
 * (a space or the like), or by a '.' and then such a byte (a sentence end:
 * neither a base64 byte, nor a colon, nor a local part reaching '@'), or
 * it ends the text for good. */
static inline int plain_end(const unsigned char *t, size_t a, size_t len, int more)
{
    if (a >= len)
        return !more;
    if (!(kt_cls[t[a]] & C_EXTEND))
        return 1;
    return t[a] == '.' && a + 1 < len && !(kt_cls[t[a + 1]] & C_EXTEND);
}

static size_t next_backslash(const unsigned char *t, size_t from, size_t len)
{
    const unsigned char *p = memchr(t + from, '\\', len - from);
    return p ? (size_t)(p - t) : len;
}

/* Gates: which matchers of mask (as M_* bits) could match at i, or would
 * read past the end of the text there while more input may come (more:
 * not the final scan). Each gate is a cheap necessary condition read off
 * its matcher: where it fails, the matcher returns 0 without looking past
 * the end, so skipping it changes nothing, streaming included. Most words
 * of prose pass none. a is the end of the alnum run from i. */

/* lead_gates: the values the first bytes decide (C_LEAD): key prefixes,
 * IBAN country codes, numbers. */
static unsigned lead_gates(const unsigned char *t, size_t i, size_t len, unsigned cls,
                           unsigned mask, int more)
{
    unsigned want = 0;
    if ((mask & KT_PII_BIT(KT_PII_API_KEY)) && (cls & C_ALPHA) && key_gate(t, i, len, more))
        want |= M_KEY;
    if ((mask & KT_PII_BIT(KT_PII_IBAN)) && (cls & C_UPPER) &&
        (i + 1 >= len ? more : (kt_cls[t[i + 1]] & C_UPPER) &&
                               (i + 2 >= len ? more : (kt_cls[t[i + 2]] & C_DIGIT) != 0)))
        want |= M_IBAN;             /* m_iban: two letters, then two digits */
    if ((mask & KT_PII_NUMBERS) && (cls & (C_DIGIT | C_PLUS | C_LPAREN)) &&
        num_gate(t, i, len, more))
        want |= cls & C_DIGIT ? M_DIGITS | M_PHONE : M_PHONE;
    return want;
}

/* ext_gates: the values a word grows into past its alnum run: AWS
 * secrets, emails, IPv6 addresses. Not needed after a plain_end(), where
 * only a run of exactly 40 bytes can be a secret: see scan_next. */
static unsigned ext_gates(const unsigned char *t, size_t i, size_t a, size_t len, unsigned cls,
                          unsigned mask, int more)
{
    unsigned want = 0;
    unsigned ca = a < len ? kt_cls[t[a]] : 0;     /* the byte after the alnum run */
    if ((mask & KT_PII_BIT(KT_PII_API_KEY)) && (cls & C_B64)) {
        /* m_aws_secret reads at most 41 run bytes and wants exactly 40 */
        size_t lim = len - i > 41 ? i + 41 : len;
        size_t b = a < lim ? a : lim;
        if (ca & C_B64)
            b = run_end(t, b, lim, C_B64);
        if (b - i == 40 || (more && b == len && b - i <= 40))
            want |= M_AWS;
    }
    if ((mask & KT_PII_BIT(KT_PII_EMAIL)) && (cls & C_LOCAL)) {
        /* m_email: a local part of at most 64 bytes, then '@' */
        size_t lim = len - i > 65 ? i + 65 : len;
        size_t l = a < lim ? a : lim;
        if (ca & C_LOCAL)
            l = run_end(t, l, lim, C_LOCAL);
        if (l - i <= 64 && (l == len ? more : t[l] == '@'))
            want |= M_EMAIL;
    }
    if ((mask & KT_PII_BIT(KT_PII_IP_ADDRESS)) && (cls & (C_HEX | C_COLON))) {
        /* m_ipv6: a run of at most 45 bytes, not followed by a word byte,
         * with at least two colons */
        size_t lim = len - i > 46 ? i + 46 : len, p = i, colons = 0;
        while (p < lim && (kt_cls[t[p]] & C_IP6))
            colons += t[p++] == ':';
        if (p - i <= 45 && (p == len ? more || colons >= 2
                                     : !(kt_cls[t[p]] & C_ALNUM) && t[p] != '_' && colons >= 2))
            want |= M_IPV6;
    }
    return want;
}

/* trigger classes of the matchers in mask: no other byte starts a value */
static unsigned triggers(unsigned mask)
{
    unsigned trig = 0;
    for (size_t k = 0; k < KT_NMATCHERS; k++)
        if (mask & KT_PII_BIT(kt_matchers[k].entity))
            trig |= kt_matchers[k].trigger;
    return trig;
}

/* scan_next: from pos, find the next match. SCAN_DONE: none up to len.
 * SCAN_MORE: the decision at *stop needs input not yet seen. */
static int scan_next(struct scan *s, size_t pos, unsigned mask,
                     struct kt_pii_match *m, size_t *stop)
{
    const unsigned char *t = s->t;
    size_t len = s->len;
    unsigned trig = s->trig;
    int more = !s->final;
    /* No backslash lies in [lo, bs) for some lo <= i - 5 (at first the empty
     * [0, 0)): a word starting at i < bs is skipped whole, since no escape
     * can end inside it. */
    size_t bs = 0;
    for (size_t i = pos; i < len; i++) {
        unsigned cls = kt_cls[t[i]];
        if (!(cls & trig))
            continue;           /* spaces, punctuation, UTF-8: nothing starts here */
        if (i > 0) {
            unsigned char p = t[i - 1];
            if (kt_cls[p] & C_ALNUM) {
                if (in_word(s, i))
                    continue;   /* every matcher's left boundary fails there */
            } else if (p == '\\' && escaped(s, i)) {
                continue;       /* "\n", "\u": a redaction must not split an escape */
            }
        }
        size_t a = i;
        unsigned want = 0;
        if (cls & C_ALNUM) {
            a = word_end(t, i, len);
            if (plain_end(t, a, len, more) && !(cls & C_LEAD) && a - i != 40) {
                /* the common case: a word that cannot grow into a value
                 * and whose first bytes lead none (see gates); t[a] is
                 * in_word or no trigger, so the scan goes on after it */
                if (bs + 5 < i)
                    bs = next_backslash(t, i - 5, len);
                if (bs < i)
                    continue;
                /* and so are the plain lowercase words right after it: t[a]
                 * is neither alnum nor a backslash, so each starts a token */
                while (a + 1 < len && t[a] != '\\' &&
                       (kt_cls[t[a + 1]] & (C_LOWER | C_LEAD)) == C_LOWER) {
                    size_t e = word_end(t, a + 1, len);
                    if (!plain_end(t, e, len, more) || e - (a + 1) == 40)
                        break;
                    a = e;
                }
                i = a;
                continue;
            }
            if (a == len && more && a - i <= 40 && (mask & KT_PII_BIT(KT_PII_API_KEY)) &&
                left_cls_ok(s, i, C_B64 | C_KEY)) {
                /* a word running to the end of a stream chunk (the common
                 * case there): m_aws_secret (whose trigger and left
                 * boundary hold) reads to the end and asks for more, and
                 * m_key before it cannot match (a match needs a non-alnum
                 * byte after the key): hold the word back */
                *stop = i;
                return SCAN_MORE;
            }
            if (plain_end(t, a, len, more)) {
                if (a - i == 40 && (mask & KT_PII_BIT(KT_PII_API_KEY)))
                    want = M_AWS;
            } else {
                want = ext_gates(t, i, a, len, cls, mask, more);
            }
        } else {
            want = ext_gates(t, i, a, len, cls, mask, more);
        }
        if (cls & C_LEAD)
            want |= lead_gates(t, i, len, cls, mask, more);
        for (size_t k = 0; want; k++, want >>= 1) {
            const struct matcher *mt = &kt_matchers[k];
            if (!(want & 1) || !(cls & mt->trigger) || !(mask & KT_PII_BIT(mt->entity)))
                continue;
            if (mt->left == LB_NUM ? !left_num_ok(s, i) : !left_cls_ok(s, i, mt->left))
                continue;
            s->hit_end = 0;
            int r = mt->fn(s, i, m);
            if (s->hit_end && !s->final) {
                *stop = i;
                return SCAN_MORE;
            }
            if (r)
                return SCAN_MATCH;
        }
        if (a > i + 1) {
            /* inside the alnum run every byte is in_word unless an escape
             * ends within it, which needs a backslash in t[i-5, i) */
            if (bs + 5 < i)
                bs = next_backslash(t, i - 5, len);
            if (bs >= i)
                i = a - 1;
        }
    }
    *stop = s->len;
    return SCAN_DONE;
}

/* ---- public API ------------------------------------------------------- */

int kt_pii_scan(const char *text, size_t len, unsigned entity_mask,
                struct kt_pii_match *out, size_t max, size_t *n)
{
    struct scan s = { (const unsigned char *)text, len, 1, 0, triggers(entity_mask) };
    struct kt_pii_match m;
    size_t pos = 0, cnt = 0, stop;
    while (scan_next(&s, pos, entity_mask, &m, &stop) == SCAN_MATCH) {
        if (cnt < max)
            out[cnt] = m;
        cnt++;
        pos = m.end;
    }
    *n = cnt;
    return 0;
}

/* Copy n bytes from offset off of out (or of ext) to the end of out. The
 * source may live in out itself, so reserve first: the pointer is taken
 * after any realloc. */
static int put(struct kt_buf *out, const char *ext, size_t off, size_t n)
{
    if (n == 0)
        return 0;
    if (ext)
        return kt_buf_append(out, ext + off, n);
    if (kt_buf_reserve(out, n))
        return KT_ENOMEM;
    return kt_buf_append(out, out->data + off, n);
}

static int put_tag(struct kt_buf *out, enum kt_pii_entity e)
{
    if (kt_buf_puts(out, "[REDACTED:") || kt_buf_puts(out, kt_pii_names[e]) ||
        kt_buf_putc(out, ']'))
        return KT_ENOMEM;
    return 0;
}

/* redact_span: scan text[start, len) (text[0, start) is left context) and
 * append the redacted result to out. text is ext, or out->data + off when
 * ext is NULL (the stream stages its window inside out). *stop: where
 * held-back input begins (len when final). */
static int redact_span(struct kt_buf *out, const char *ext, size_t off, size_t len,
                       size_t start, int final, unsigned mask, unsigned trig, size_t *stop,
                       size_t *count)
{
    size_t pos = start, cnt = 0;
    for (;;) {
        const char *t = ext ? ext : out->data + off;
        struct scan s = { (const unsigned char *)t, len, final, 0, trig };
        struct kt_pii_match m;
        size_t st;
        int r = scan_next(&s, pos, mask, &m, &st);
        if (r != SCAN_MATCH) {
            if (put(out, ext, off + pos, st - pos))
                return KT_ENOMEM;
            *stop = st;
            break;
        }
        if (put(out, ext, off + pos, m.start - pos) || put_tag(out, m.entity))
            return KT_ENOMEM;
        cnt++;
        pos = m.end;
    }
    if (count)
        *count = cnt;
    return 0;
}

int kt_pii_redact(const char *text, size_t len, unsigned mask,
                  struct kt_buf *out, size_t *count)
{
    size_t stop;
    if (kt_buf_reserve(out, len))
        return KT_ENOMEM;
    return redact_span(out, text, 0, len, 0, 1, mask, triggers(mask), &stop, count);
}

void kt_pii_stream_init(struct kt_pii_stream *s, unsigned mask)
{
    s->mask = mask;
    s->trig = triggers(mask);
    s->hist_len = 0;
    s->pend_len = 0;
}

size_t kt_pii_stream_pending(const struct kt_pii_stream *s)
{
    return s->pend_len;
}

/* stream_keep: after a scan of t[0, raw) that stopped at stop, keep the
 * raw bytes from stop on, and up to KT_PII_HIST before them as left
 * context. t may be s->buf itself. */
static void stream_keep(struct kt_pii_stream *s, const char *t, size_t raw, size_t stop)
{
    size_t hl = stop < KT_PII_HIST ? stop : KT_PII_HIST;
    memmove(s->buf, t + stop - hl, raw - stop + hl);
    s->hist_len = hl;
    s->pend_len = raw - stop;
}

/* Scan hist + pend + chunk, from pend on: in s->buf when the chunk fits
 * there (the common case: stream events are small), else staged at the end
 * of emit, with the output then moved down over the staged bytes. */
static int stream_run(struct kt_pii_stream *s, const char *chunk, size_t len,
                      int final, struct kt_buf *emit, size_t *count)
{
    size_t base = emit->len, cnt = 0, stop;
    size_t held = s->hist_len + s->pend_len, raw = held + len;
    int inplace = raw <= sizeof s->buf, rc;
    const char *ext;
    size_t off;
    if (count)
        *count = 0;
    if (inplace) {
        /* emit only grows by what is emitted, but must hold a string
         * afterwards, as when everything is held back */
        if (emit->data == NULL && kt_buf_reserve(emit, 64))
            return KT_ENOMEM;
        if (len)
            memcpy(s->buf + held, chunk, len);
        ext = s->buf;
        off = 0;
        /* the usual feed holds no value: one scan, one copy */
        struct scan sc = { (const unsigned char *)s->buf, raw, final, 0, s->trig };
        struct kt_pii_match m;
        if (scan_next(&sc, s->hist_len, s->mask, &m, &stop) != SCAN_MATCH)
            rc = put(emit, s->buf, s->hist_len, stop - s->hist_len);
        else
            rc = redact_span(emit, ext, off, raw, s->hist_len, final, s->mask, s->trig,
                             &stop, &cnt);
    } else {
        if (kt_buf_reserve(emit, raw + s->pend_len + len + 64))
            return KT_ENOMEM;
        char *w = emit->data + base;      /* reserved: plain copies */
        memcpy(w, s->buf, held);
        memcpy(w + held, chunk, len);
        emit->len = base + raw;
        ext = NULL;
        off = base;
        rc = redact_span(emit, ext, off, raw, s->hist_len, final, s->mask, s->trig, &stop, &cnt);
    }
    if (rc) {
        emit->len = base;
        emit->data[base] = '\0';
        return rc;
    }
    if (raw - stop > KT_PII_CARRY) {
        /* cannot happen while every matcher is bounded; stay bounded anyway */
        size_t st2, c2 = 0;
        rc = redact_span(emit, ext, off, raw, stop, 1, s->mask, s->trig, &st2, &c2);
        if (rc)
            return rc;
        cnt += c2;
        stop = raw;
    }
    if (inplace) {
        stream_keep(s, s->buf, raw, stop);
    } else {
        size_t outlen = emit->len - base - raw;
        stream_keep(s, emit->data + base, raw, stop);
        memmove(emit->data + base, emit->data + base + raw, outlen);
        emit->len = base + outlen;
    }
    emit->data[emit->len] = '\0';
    if (count)
        *count = cnt;
    return 0;
}

int kt_pii_stream_feed(struct kt_pii_stream *s, const char *chunk, size_t len,
                       struct kt_buf *emit, size_t *count)
{
    return stream_run(s, chunk, len, 0, emit, count);
}

int kt_pii_stream_flush(struct kt_pii_stream *s, struct kt_buf *emit, size_t *count)
{
    int rc = stream_run(s, NULL, 0, 1, emit, count);
    s->hist_len = 0;
    s->pend_len = 0;
    return rc;
}

/* config.c: the config loader (see config.h). Owns YAML → node tree (every
 * node keeps its file:line:col), layering of several files on that tree,
 * typing through the schema tables below, defaults, validation and the
 * effective-config dump. Does not own what the values do at run time.
 *
 * Pipeline: read → parse each file into a node tree (tree arena) → merge
 * the trees (maps merge, everything else replaces) → decode the merged tree
 * into struct kt_config (config arena) through the tables → post-checks.
 * Errors never stop the walk, so one run reports every problem. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "kt/arena.h"
#include "kt/buf.h"
#include "kt/config.h"

#define MAX_DEPTH 64
#define MAX_NODES 200000      /* bounds alias expansion ("billion laughs") */
#define MAX_FILE_BYTES (16u << 20)

struct kt_cfg_priv {
    struct kt_arena mem;
};

/* ---- node tree -------------------------------------------------------- */

enum ntype { N_SCALAR, N_MAP, N_SEQ };

struct node {
    enum ntype t;
    int plain;                /* unquoted, untagged scalar: may be null/bool/number */
    int line, col;
    const char *file;
    char *s;                  /* scalar text */
    struct node *key;         /* in a mapping: the key scalar of this value */
    struct node *head, *tail, *next;
    size_t n;
};

struct ctx {
    struct kt_cfg_errors *errs;
    size_t nerr;
    int oom, io;
    size_t nnodes;
    struct kt_arena tree;     /* nodes; freed once typing is done */
    struct kt_arena *mem;     /* the config's memory */
};

static const char *const kind_names[] = { "a scalar", "a mapping", "a list" };

static void add_err(struct ctx *c, const char *file, int line, int col,
                    const char *fmt, va_list ap)
{
    c->nerr++;
    struct kt_cfg_errors *e = c->errs;
    if (e == NULL)
        return;
    if (e->n >= KT_CFG_MAX_ERRORS) {
        e->dropped++;
        return;
    }
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 16;
        struct kt_err *v = realloc(e->v, cap * sizeof *v);
        if (v == NULL) {
            e->dropped++;
            return;
        }
        e->v = v;
        e->cap = cap;
    }
    struct kt_err *x = &e->v[e->n++];
    memset(x, 0, sizeof *x);
    x->code = KT_EINVAL;
    snprintf(x->file, sizeof x->file, "%s", file ? file : "");
    x->line = line;
    x->col = col;
    vsnprintf(x->msg, sizeof x->msg, fmt, ap);
}

__attribute__((format(printf, 5, 6)))
static void errf_at(struct ctx *c, const char *file, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_err(c, file, line, col, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4)))
static void errf(struct ctx *c, const struct node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_err(c, n->file, n->line, n->col, fmt, ap);
    va_end(ap);
}

static void *cal(struct ctx *c, size_t n)
{
    void *p = kt_arena_alloc(c->mem, n ? n : 1);
    if (p == NULL)
        c->oom = 1;
    return p;
}

/* cs: a config-owned copy. On OOM returns "" and marks the load failed. */
static char *cs(struct ctx *c, const char *s)
{
    if (s == NULL)
        return NULL;
    char *p = kt_arena_strdup(c->mem, s);
    if (p == NULL) {
        c->oom = 1;
        return (char *)"";
    }
    return p;
}

static int is_null(const struct node *n)
{
    if (n == NULL)
        return 1;
    if (n->t != N_SCALAR || !n->plain)
        return 0;
    return n->s[0] == '\0' || !strcmp(n->s, "~") || !strcmp(n->s, "null") ||
           !strcmp(n->s, "Null") || !strcmp(n->s, "NULL");
}

static struct node *map_get(const struct node *m, const char *k)
{
    if (m == NULL || m->t != N_MAP)
        return NULL;
    for (struct node *v = m->head; v; v = v->next)
        if (!strcmp(v->key->s, k))
            return v;
    return NULL;
}

static void append(struct node *p, struct node *ch)
{
    ch->next = NULL;
    if (p->tail)
        p->tail->next = ch;
    else
        p->head = ch;
    p->tail = ch;
    p->n++;
}

/* ---- YAML → nodes ----------------------------------------------------- */

struct anchor {
    char *name;
    struct node *n;
    struct anchor *next;
};

struct yp {
    struct ctx *c;
    yaml_parser_t p;
    const char *file;
    const char *buf;
    size_t len;
    struct anchor *anchors;
    int failed;
};

static int too_many_nodes(struct yp *y)
{
    if (++y->c->nnodes <= MAX_NODES)
        return 0;
    if (!y->failed)
        errf_at(y->c, "", 0, 0, "%s: more than %d YAML nodes (runaway aliases?)", y->file, MAX_NODES);
    y->failed = 1;
    return 1;
}

static struct node *new_node(struct yp *y, enum ntype t, yaml_mark_t m)
{
    if (too_many_nodes(y))
        return NULL;
    struct node *n = kt_arena_alloc(&y->c->tree, sizeof *n);
    if (n == NULL) {
        y->c->oom = 1;
        y->failed = 1;
        return NULL;
    }
    n->t = t;
    n->file = y->file;
    n->line = (int)m.line + 1;
    n->col = (int)m.column + 1;
    return n;
}

static struct node *copy_node(struct yp *y, const struct node *s)
{
    if (too_many_nodes(y))
        return NULL;
    struct node *n = kt_arena_alloc(&y->c->tree, sizeof *n);
    if (n == NULL) {
        y->c->oom = y->failed = 1;
        return NULL;
    }
    *n = *s;
    n->head = n->tail = n->next = NULL;
    n->n = 0;
    for (const struct node *ch = s->head; ch; ch = ch->next) {
        struct node *cc = copy_node(y, ch);
        if (cc == NULL)
            return NULL;
        append(n, cc);
    }
    return n;
}

static void yaml_problem(struct yp *y)
{
    const yaml_parser_t *p = &y->p;
    const char *what = p->problem ? p->problem : "unknown error";
    y->failed = 1;
    if (p->error == YAML_MEMORY_ERROR) {
        y->c->oom = 1;
        errf_at(y->c, "", 0, 0, "%s: out of memory while parsing", y->file);
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors only give a byte offset: turn it into line:col. */
        int line = 1, col = 1;
        for (size_t i = 0; i < p->problem_offset && i < y->len; i++) {
            if (y->buf[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        errf_at(y->c, y->file, line, col, "invalid YAML: %s", what);
        return;
    }
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
    if (p->context)
        errf_at(y->c, y->file, line, col, "invalid YAML: %s %s (line %d, column %d)",
                what, p->context, (int)p->context_mark.line + 1,
                (int)p->context_mark.column + 1);
    else
        errf_at(y->c, y->file, line, col, "invalid YAML: %s", what);
}

static int yp_next(struct yp *y, yaml_event_t *ev)
{
    if (yaml_parser_parse(&y->p, ev))
        return 0;
    yaml_problem(y);
    return -1;
}

static void add_anchor(struct yp *y, const yaml_char_t *name, struct node *n)
{
    if (name == NULL || n == NULL)
        return;
    struct anchor *a = kt_arena_alloc(&y->c->tree, sizeof *a);
    char *nm = kt_arena_strdup(&y->c->tree, (const char *)name);
    if (a == NULL || nm == NULL) {
        y->c->oom = y->failed = 1;
        return;
    }
    a->name = nm;
    a->n = n;
    a->next = y->anchors;     /* newest first: a redefined anchor wins */
    y->anchors = a;
}

/* parse_node: build the node that starts with *ev (consumed here). Returns
 * NULL on a fatal parse error (y->failed) or for a skipped bad alias. */
static struct node *parse_node(struct yp *y, yaml_event_t *ev, int depth)
{
    struct ctx *c = y->c;
    struct node *n = NULL;
    char *anchor = NULL;

    if (depth > MAX_DEPTH) {
        errf_at(c, y->file, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                "nesting deeper than %d levels", MAX_DEPTH);
        yaml_event_delete(ev);
        y->failed = 1;
        return NULL;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        struct anchor *a = y->anchors;
        while (a && strcmp(a->name, name))
            a = a->next;
        if (a == NULL)
            errf_at(c, y->file, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                    "unknown alias '*%s'", name);
        else
            n = copy_node(y, a->n);   /* a copy: layering may change one use, not all */
        yaml_event_delete(ev);
        return n;
    }
    case YAML_SCALAR_EVENT:
        n = new_node(y, N_SCALAR, ev->start_mark);
        if (n) {
            n->s = kt_arena_strndup(&c->tree, (const char *)ev->data.scalar.value,
                                    ev->data.scalar.length);
            if (n->s == NULL) {
                c->oom = y->failed = 1;
                n = NULL;
            } else {
                n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                           ev->data.scalar.plain_implicit;
                add_anchor(y, ev->data.scalar.anchor, n);
            }
        }
        yaml_event_delete(ev);
        return n;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        yaml_event_type_t end = is_map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
        const yaml_char_t *an = is_map ? ev->data.mapping_start.anchor
                                       : ev->data.sequence_start.anchor;
        if (an)
            anchor = kt_arena_strdup(&c->tree, (const char *)an);
        n = new_node(y, is_map ? N_MAP : N_SEQ, ev->start_mark);
        yaml_event_delete(ev);
        if (n == NULL)
            return NULL;
        for (;;) {
            yaml_event_t e;
            if (yp_next(y, &e))
                return NULL;
            if (e.type == end) {
                yaml_event_delete(&e);
                break;
            }
            struct node *k = parse_node(y, &e, depth + 1);
            if (y->failed)
                return NULL;
            if (!is_map) {
                if (k)
                    append(n, k);
                continue;
            }
            yaml_event_t ve;
            if (yp_next(y, &ve))
                return NULL;
            struct node *v = parse_node(y, &ve, depth + 1);
            if (y->failed)
                return NULL;
            if (k == NULL || v == NULL)
                continue;
            if (k->t != N_SCALAR) {
                errf(c, k, "mapping keys must be plain strings, not %s", kind_names[k->t]);
                continue;
            }
            struct node *prev = map_get(n, k->s);
            if (prev) {
                errf(c, k, "duplicate key '%s' (first at line %d)", k->s, prev->key->line);
                continue;
            }
            v->key = k;
            append(n, v);
        }
        add_anchor(y, (const yaml_char_t *)anchor, n);
        return n;
    }
    default:
        errf_at(c, y->file, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                "unexpected YAML event");
        yaml_event_delete(ev);
        y->failed = 1;
        return NULL;
    }
}

/* parse_doc: one file's text → its root mapping (an empty one for an empty
 * file), or NULL after reporting a syntax error. */
static struct node *parse_doc(struct ctx *c, const char *file, const char *buf, size_t len)
{
    struct yp y = { .c = c, .file = file, .buf = buf, .len = len };
    struct node *root = NULL;
    yaml_event_t ev;
    yaml_mark_t top = { 0, 0, 0 };

    if (!yaml_parser_initialize(&y.p)) {
        c->oom = 1;
        errf_at(c, "", 0, 0, "%s: out of memory", file);
        return NULL;
    }
    yaml_parser_set_input_string(&y.p, (const unsigned char *)buf, len);
    int docs = 0;
    for (;;) {
        if (yp_next(&y, &ev))
            break;
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (t == YAML_DOCUMENT_START_EVENT) {
            if (++docs > 1) {
                errf_at(c, file, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                        "only one YAML document per file");
                yaml_event_delete(&ev);
                y.failed = 1;
                break;
            }
            yaml_event_delete(&ev);
            continue;
        }
        if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_END_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        root = parse_node(&y, &ev, 0);
        if (y.failed)
            break;
    }
    yaml_parser_delete(&y.p);
    if (y.failed)
        return NULL;
    if (root == NULL || is_null(root)) {
        struct node *e = new_node(&y, N_MAP, top);
        return e;
    }
    if (root->t != N_MAP) {
        errf(c, root, "the top level must be a mapping (pack:, server:, policies:, policy:, providers:), not %s",
             kind_names[root->t]);
        return NULL;
    }
    return root;
}

/* merge: layer `over` onto `base`, both mappings. Mappings merge key by
 * key; scalars and lists replace (a null replaces too: it resets a key to
 * its default). */
static void merge(struct node *base, struct node *over)
{
    struct node *v = over->head;
    while (v) {
        struct node *next = v->next;
        struct node **pp = &base->head;
        while (*pp && strcmp((*pp)->key->s, v->key->s))
            pp = &(*pp)->next;
        struct node *e = *pp;
        if (e == NULL) {
            append(base, v);
        } else if (e->t == N_MAP && v->t == N_MAP) {
            merge(e, v);
        } else {
            v->next = e->next;
            *pp = v;
            if (base->tail == e)
                base->tail = v;
        }
        v = next;
    }
}

/* ---- schema tables ---------------------------------------------------- */

enum ftype { F_STR, F_INT, F_SIZE, F_U64, F_DOUBLE, F_BOOL, F_ENUM, F_STRLIST, F_OBJ, F_CUSTOM };

enum {
    F_REQ = 1,                /* must be present */
    F_NONEMPTY = 2,           /* string must not be "" */
    F_GT = 4,                 /* number must be > min (not >=) */
    F_HAS = 8,                /* F_OBJ: set the int at has_off to 1 when present */
};

struct enumval {
    const char *name;
    int v;
};

struct field;
typedef void (*custom_fn)(struct ctx *c, const struct node *v, void *base, const char *path);

struct field {
    const char *name;
    enum ftype type;
    size_t off;
    unsigned flags;
    double min, max;
    const struct enumval *ev;
    const struct field *sub;
    custom_fn fn;
    size_t has_off;           /* F_HAS: offset inside the sub-object */
};

#define FSTR(n, T, m, fl)        { .name = n, .type = F_STR, .off = offsetof(T, m), .flags = fl }
#define FINT(n, T, m, lo, hi)    { .name = n, .type = F_INT, .off = offsetof(T, m), .min = lo, .max = hi }
#define FSIZE(n, T, m, lo, hi)   { .name = n, .type = F_SIZE, .off = offsetof(T, m), .min = lo, .max = hi }
#define FU64(n, T, m, lo, hi)    { .name = n, .type = F_U64, .off = offsetof(T, m), .min = lo, .max = hi }
#define FDBL(n, T, m, lo, hi, fl) { .name = n, .type = F_DOUBLE, .off = offsetof(T, m), .min = lo, .max = hi, .flags = fl }
#define FBOOL(n, T, m)           { .name = n, .type = F_BOOL, .off = offsetof(T, m) }
#define FENUM(n, T, m, tbl)      { .name = n, .type = F_ENUM, .off = offsetof(T, m), .ev = tbl }
#define FLIST(n, T, m)           { .name = n, .type = F_STRLIST, .off = offsetof(T, m) }
#define FOBJ(n, T, m, tbl)       { .name = n, .type = F_OBJ, .off = offsetof(T, m), .sub = tbl }
#define FOBJH(n, T, m, tbl, ST, hm) { .name = n, .type = F_OBJ, .off = offsetof(T, m), .sub = tbl, \
                                      .flags = F_HAS, .has_off = offsetof(ST, hm) }
#define FSAME(n, tbl)            { .name = n, .type = F_OBJ, .off = 0, .sub = tbl }
#define FCUST(n, f, fl)          { .name = n, .type = F_CUSTOM, .fn = f, .flags = fl }
#define FEND                     { .name = NULL }

static const struct enumval format_ev[] = {
    { "openai", KT_FMT_OPENAI }, { "anthropic", KT_FMT_ANTHROPIC }, { NULL, 0 } };
static const struct enumval strategy_ev[] = {
    { "single", KT_STRAT_SINGLE }, { "fallback", KT_STRAT_FALLBACK },
    { "weighted_round_robin", KT_STRAT_WRR }, { "least_latency", KT_STRAT_LEAST_LATENCY },
    { NULL, 0 } };
static const struct enumval fail_ev[] = {
    { "block", KT_FAIL_BLOCK }, { "allow", KT_FAIL_ALLOW }, { NULL, 0 } };
static const struct enumval pi_action_ev[] = {
    { "block", KT_PI_BLOCK }, { "flag", KT_PI_FLAG }, { NULL, 0 } };
static const struct enumval pii_action_ev[] = {
    { "redact", KT_PII_REDACT }, { "block", KT_PII_BLOCK }, { "flag", KT_PII_FLAG }, { NULL, 0 } };
static const struct enumval log_level_ev[] = {
    { "debug", KT_LOG_DEBUG }, { "info", KT_LOG_INFO }, { "warn", KT_LOG_WARN },
    { "error", KT_LOG_ERROR }, { NULL, 0 } };
static const struct enumval log_format_ev[] = {
    { "text", 0 }, { "json", 1 }, { NULL, 0 } };
static const struct enumval pii_entity_ev[] = {
    { "EMAIL", KT_PII_BIT(KT_PII_EMAIL) }, { "PHONE", KT_PII_BIT(KT_PII_PHONE) }, { "CREDIT_CARD", KT_PII_BIT(KT_PII_CREDIT_CARD) },
    { "US_SSN", KT_PII_BIT(KT_PII_US_SSN) }, { "IBAN", KT_PII_BIT(KT_PII_IBAN) }, { "IP_ADDRESS", KT_PII_BIT(KT_PII_IP_ADDRESS) },
    { "API_KEY", KT_PII_BIT(KT_PII_API_KEY) }, { NULL, 0 } };
static const struct enumval scan_ev[] = {
    { "request", 1 }, { "response", 2 }, { NULL, 0 } };
static const struct enumval retry_word_ev[] = {
    { "timeout", 1 }, { "connect", 2 }, { NULL, 0 } };
/* Policies with an implementation; policies.chain may name only these. */
static const struct enumval policy_ev[] = {
    { "prompt-injection", 0 }, { "pii-detector", 1 }, { "audit-logger", 2 }, { NULL, 0 } };
static const struct enumval permission_ev[] = {
    { "default", 0 }, { "acceptEdits", 1 }, { "plan", 2 }, { "bypassPermissions", 3 }, { NULL, 0 } };

/* Providers and their defaults (SPEC §2). key_env: auto-detected secret. */
struct provider_def {
    const char *name;
    enum kt_provider_kind kind;
    const char *base_url, *key_env, *header, *prefix, *ptype;
    enum kt_format format;
    int needs_base_url;
};

static const struct provider_def provider_defs[] = {
    { "anthropic", KT_PROV_ANTHROPIC, "https://api.anthropic.com", "ANTHROPIC_API_KEY",
      "x-api-key", "", "anthropic", KT_FMT_ANTHROPIC, 0 },
    { "openai", KT_PROV_OPENAI, "https://api.openai.com", "OPENAI_API_KEY",
      "Authorization", "Bearer ", "openai", KT_FMT_OPENAI, 0 },
    { "mock", KT_PROV_MOCK, NULL, NULL, "Authorization", "Bearer ", "mock", KT_FMT_OPENAI, 0 },
    { "claude-agent-sdk", KT_PROV_CLAUDE_AGENT_SDK, NULL, "ANTHROPIC_API_KEY",
      "x-api-key", "", "claude-agent-sdk", KT_FMT_ANTHROPIC, 0 },
    { "openai-compatible", KT_PROV_OTHER, NULL, NULL, "Authorization", "Bearer ",
      "openai-compatible", KT_FMT_OPENAI, 1 },
    { "vllm", KT_PROV_OTHER, NULL, NULL, "Authorization", "Bearer ", "vllm", KT_FMT_OPENAI, 1 },
    { "ollama", KT_PROV_OTHER, NULL, NULL, "Authorization", "Bearer ", "ollama", KT_FMT_OPENAI, 1 },
    { "llamacpp", KT_PROV_OTHER, NULL, NULL, "Authorization", "Bearer ", "llamacpp", KT_FMT_OPENAI, 1 },
    { "custom", KT_PROV_OTHER, NULL, NULL, "Authorization", "Bearer ", "custom", KT_FMT_OPENAI, 1 },
    { NULL, 0, NULL, NULL, NULL, NULL, NULL, 0, 0 },
};

/* "PREFIX:MODEL" shorthands → the provider_defs entry they mean. */
static const struct { const char *prefix, *provider; } provider_shorthands[] = {
    { "anthropic:messages:", "anthropic" },
    { "anthropic:claude-agent-sdk:", "claude-agent-sdk" },
    { "openai:chat:", "openai" },
    { NULL, NULL },
};

static void c_listen(struct ctx *, const struct node *, void *, const char *);
static void c_workers(struct ctx *, const struct node *, void *, const char *);
static void c_auth(struct ctx *, const struct node *, void *, const char *);
static void c_keys(struct ctx *, const struct node *, void *, const char *);
static void c_chain(struct ctx *, const struct node *, void *, const char *);
static void c_entities(struct ctx *, const struct node *, void *, const char *);
static void c_scan(struct ctx *, const struct node *, void *, const char *);
static void c_retry(struct ctx *, const struct node *, void *, const char *);
static void c_retry_on(struct ctx *, const struct node *, void *, const char *);
static void c_targets(struct ctx *, const struct node *, void *, const char *);
static void c_secret(struct ctx *, const struct node *, void *, const char *);
static void c_headers(struct ctx *, const struct node *, void *, const char *);
static void c_cli_env(struct ctx *, const struct node *, void *, const char *);

static const struct field pack_fields[] = {
    FSTR("name", struct kt_pack, name, F_NONEMPTY),
    FSTR("version", struct kt_pack, version, F_NONEMPTY),
    FBOOL("enabled", struct kt_pack, enabled),
    FEND,
};

static const struct field tls_fields[] = {
    FSTR("cert", struct kt_server, tls_cert, F_REQ | F_NONEMPTY),
    FSTR("key", struct kt_server, tls_key, F_REQ | F_NONEMPTY),
    FEND,
};

static const struct field log_fields[] = {
    FENUM("level", struct kt_server, log_level, log_level_ev),
    FENUM("format", struct kt_server, log_json, log_format_ev),
    FSTR("file", struct kt_server, log_file, F_NONEMPTY),
    FEND,
};

static const struct field rate_fields[] = {
    FINT("requests_per_minute", struct kt_rate_limit, requests_per_minute, 0, 1e9),
    FINT("tokens_per_minute", struct kt_rate_limit, tokens_per_minute, 0, 2e9),
    FEND,
};

static const struct field key_fields[] = {
    FSTR("id", struct kt_client_key, id, F_REQ | F_NONEMPTY),
    FSTR("sha256", struct kt_client_key, sha256, F_REQ | F_NONEMPTY),
    FLIST("models", struct kt_client_key, models),
    FOBJ("rate_limit", struct kt_client_key, rate_limit, rate_fields),
    FEND,
};

static const struct field auth_fields[] = {
    FCUST("keys", c_keys, 0),
    FEND,
};

static const struct field server_fields[] = {
    FCUST("listen", c_listen, 0),
    FCUST("workers", c_workers, 0),
    FSAME("tls", tls_fields),
    FCUST("auth", c_auth, 0),
    FSIZE("max_body_bytes", struct kt_server, max_body_bytes, 1, 1024.0 * 1024 * 1024),
    FSIZE("max_header_bytes", struct kt_server, max_header_bytes, 1024, 16.0 * 1024 * 1024),
    FSTR("state_dir", struct kt_server, state_dir, F_NONEMPTY),
    FSAME("log", log_fields),
    FINT("shutdown_timeout_seconds", struct kt_server, shutdown_timeout_seconds, 0, 86400),
    FINT("read_timeout_seconds", struct kt_server, read_timeout_seconds, 1, 86400),
    FINT("keepalive_timeout_seconds", struct kt_server, keepalive_timeout_seconds, 0, 86400),
    FINT("max_connections", struct kt_server, max_connections, 1, 1000000),
    FSTR("user", struct kt_server, user, F_NONEMPTY),
    FEND,
};

static const struct field policies_fields[] = {
    FCUST("chain", c_chain, 0),
    FENUM("fail_mode", struct kt_policies, fail_mode, fail_ev),
    FEND,
};

static const struct field injection_fields[] = {
    FENUM("action", struct kt_cfg_injection, action, pi_action_ev),
    FDBL("threshold", struct kt_cfg_injection, threshold, 0, 1, 0),
    FEND,
};

static const struct field pii_fields[] = {
    FENUM("action", struct kt_cfg_pii, action, pii_action_ev),
    FCUST("entities", c_entities, 0),
    FCUST("scan", c_scan, 0),
    FEND,
};

static const struct field audit_fields[] = {
    FBOOL("immutable", struct kt_cfg_audit, immutable),
    FINT("retention_days", struct kt_cfg_audit, retention_days, 0, 36500),
    FBOOL("log_all_access", struct kt_cfg_audit, log_all_access),
    FSTR("path", struct kt_cfg_audit, path, F_NONEMPTY),
    FINT("fsync_batch", struct kt_cfg_audit, fsync_batch, 1, 100000),
    FU64("max_file_bytes", struct kt_cfg_audit, max_file_bytes, 0, 1e15),
    FEND,
};

static const struct field policy_fields[] = {
    FOBJ("prompt-injection", struct kt_policies, injection, injection_fields),
    FOBJ("pii-detector", struct kt_policies, pii, pii_fields),
    FOBJ("audit-logger", struct kt_policies, audit, audit_fields),
    FEND,
};

static const struct field retry_fields[] = {
    FINT("max_attempts", struct kt_retry, max_attempts, 1, 10),
    FINT("backoff_ms", struct kt_retry, backoff_ms, 0, 600000),
    FINT("max_backoff_ms", struct kt_retry, max_backoff_ms, 0, 3600000),
    FCUST("retry_on", c_retry_on, 0),
    FEND,
};

static const struct field breaker_fields[] = {
    FBOOL("enabled", struct kt_breaker, enabled),
    FINT("failure_threshold", struct kt_breaker, failure_threshold, 1, 100000),
    FINT("window_seconds", struct kt_breaker, window_seconds, 1, 86400),
    FINT("cooldown_seconds", struct kt_breaker, cooldown_seconds, 1, 86400),
    FINT("half_open_requests", struct kt_breaker, half_open_requests, 1, 1000),
    FEND,
};

static const struct field providers_fields[] = {
    FENUM("strategy", struct kt_providers, strategy, strategy_ev),
    FCUST("retry", c_retry, 0),
    FOBJH("circuit_breaker", struct kt_providers, breaker, breaker_fields, struct kt_breaker, enabled),
    FCUST("targets", c_targets, 0),
    FEND,
};

static const struct field data_policy_fields[] = {
    FBOOL("zero_data_retention", struct kt_data_policy, zero_data_retention),
    FBOOL("zdr", struct kt_data_policy, zero_data_retention),
    FBOOL("training_opt_out", struct kt_data_policy, training_opt_out),
    FINT("retention_days", struct kt_data_policy, retention_days, 0, 36500),
    FEND,
};

static const struct field pricing_fields[] = {
    FDBL("prompt", struct kt_pricing, prompt, 0, 1e6, 0),
    FDBL("completion", struct kt_pricing, completion, 0, 1e6, 0),
    FEND,
};

static const struct field probe_fields[] = {
    FBOOL("enabled", struct kt_health_probe, enabled),
    FINT("interval_seconds", struct kt_health_probe, interval_seconds, 1, 86400),
    FINT("timeout_seconds", struct kt_health_probe, timeout_seconds, 1, 3600),
    FSTR("path", struct kt_health_probe, path, F_NONEMPTY),
    FINT("healthy_threshold", struct kt_health_probe, healthy_threshold, 1, 100),
    FINT("unhealthy_threshold", struct kt_health_probe, unhealthy_threshold, 1, 100),
    FEND,
};

/* Order matters only for messages; the index of the first agent field marks
 * where the Claude Agent SDK fields start (AGENT_FIRST). */
static const struct field target_fields[] = {
    FSTR("id", struct kt_target, id, F_REQ | F_NONEMPTY),
    FSTR("provider", struct kt_target, provider, F_REQ | F_NONEMPTY),
    FSTR("model", struct kt_target, model, F_NONEMPTY),
    FSTR("base_url", struct kt_target, base_url, F_NONEMPTY),
    FCUST("secret_key_ref", c_secret, 0),
    FSTR("api_key_header", struct kt_target, api_key_header, F_NONEMPTY),
    FSTR("api_key_prefix", struct kt_target, api_key_prefix, 0),
    FSTR("anthropic_version", struct kt_target, anthropic_version, F_NONEMPTY),
    FINT("timeout_seconds", struct kt_target, timeout_seconds, 1, 86400),
    FINT("stream_timeout_seconds", struct kt_target, stream_timeout_seconds, 1, 86400),
    FINT("max_context_tokens", struct kt_target, max_context_tokens, 0, 100000000),
    FINT("max_messages", struct kt_target, max_messages, 0, 1000000),
    FCUST("headers", c_headers, 0),
    FENUM("format", struct kt_target, format, format_ev),
    FSTR("provider_type", struct kt_target, provider_type, F_NONEMPTY),
    FSTR("description", struct kt_target, description, 0),
    FDBL("weight", struct kt_target, weight, 0, 1e6, F_GT),
    FOBJH("data_policy", struct kt_target, data_policy, data_policy_fields, struct kt_data_policy, has),
    FOBJH("pricing", struct kt_target, pricing, pricing_fields, struct kt_pricing, has),
    FOBJH("health_probe", struct kt_target, health_probe, probe_fields, struct kt_health_probe, enabled),
    FOBJ("rate_limit", struct kt_target, rate_limit, rate_fields),
    FSTR("path_to_claude_code_executable", struct kt_target, agent.path_to_claude_code_executable, F_NONEMPTY),
    FSTR("working_dir", struct kt_target, agent.working_dir, F_NONEMPTY),
    FSTR("permission_mode", struct kt_target, agent.permission_mode, F_NONEMPTY),
    FINT("max_turns", struct kt_target, agent.max_turns, 1, 100000),
    FBOOL("allow_all_tools", struct kt_target, agent.allow_all_tools),
    FLIST("append_allowed_tools", struct kt_target, agent.append_allowed_tools),
    FLIST("disallowed_tools", struct kt_target, agent.disallowed_tools),
    FSTR("fallback_model", struct kt_target, agent.fallback_model, F_NONEMPTY),
    FLIST("additional_directories", struct kt_target, agent.additional_directories),
    FCUST("cli_env", c_cli_env, 0),
    FEND,
};
#define AGENT_FIRST 21   /* index of path_to_claude_code_executable */

struct secret_ref {
    char *env;
};

static const struct field secret_fields[] = {
    FSTR("env", struct secret_ref, env, F_REQ | F_NONEMPTY),
    FEND,
};

static const struct field top_fields[] = {
    FOBJ("pack", struct kt_config, pack, pack_fields),
    FOBJ("server", struct kt_config, server, server_fields),
    FOBJ("policies", struct kt_config, policies, policies_fields),
    FOBJ("policy", struct kt_config, policies, policy_fields),
    FOBJ("providers", struct kt_config, providers, providers_fields),
    FEND,
};

/* ---- typing ----------------------------------------------------------- */

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int m = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < m)
                m = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < m)
                m = d[i - 1][j - 1] + cost;
            d[i][j] = m;
        }
    return d[la][lb];
}

/* suggest: "did you mean 'x'?" or the list of allowed names. */
static void suggest(char *out, size_t outlen, const char *got, const char *const *names, size_t n)
{
    const char *best = NULL;
    int bestd = 99;
    for (size_t i = 0; i < n; i++) {
        int dd = edit_distance(got, names[i]);
        if (dd < bestd) {
            bestd = dd;
            best = names[i];
        }
    }
    size_t glen = strlen(got);
    if (best && (bestd <= 2 || (size_t)bestd * 3 <= glen) && bestd < (int)glen) {
        snprintf(out, outlen, "did you mean '%s'?", best);
        return;
    }
    size_t o = (size_t)snprintf(out, outlen, "expected one of: ");
    for (size_t i = 0; i < n && o < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%s%s", i ? ", " : "", names[i]);
}

static void suggest_enum(char *out, size_t outlen, const char *got, const struct enumval *ev)
{
    const char *names[32];
    size_t n = 0;
    for (; ev[n].name && n < 32; n++)
        names[n] = ev[n].name;
    suggest(out, outlen, got, names, n);
}

static void join(char *out, size_t outlen, const char *path, const char *k)
{
    /* By hand: a truncated path only shortens a message. */
    size_t o = 0;
    for (const char *p = path; *p && o + 1 < outlen; p++)
        out[o++] = *p;
    if (path[0] && o + 1 < outlen)
        out[o++] = '.';
    for (const char *p = k; *p && o + 1 < outlen; p++)
        out[o++] = *p;
    out[o] = '\0';
}

static int want_scalar(struct ctx *c, const struct node *v, const char *path, const char *what)
{
    if (v->t == N_SCALAR)
        return 0;
    errf(c, v, "%s: expected %s, got %s", path, what, kind_names[v->t]);
    return -1;
}

static int get_int(struct ctx *c, const struct node *v, const char *path, int bytes, long long *out)
{
    if (want_scalar(c, v, path, "an integer"))
        return -1;
    const char *s = v->s;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (end == s || errno || !isdigit((unsigned char)end[-1]))
        goto bad;
    if (bytes && *end) {
        /* Byte sizes may say 10m / 64k / 1g (binary multiples). */
        static const struct { char c; int shift; } units[] = {
            { 'k', 10 }, { 'K', 10 }, { 'm', 20 }, { 'M', 20 }, { 'g', 30 }, { 'G', 30 } };
        size_t i;
        for (i = 0; i < sizeof units / sizeof units[0]; i++)
            if (*end == units[i].c)
                break;
        if (i == sizeof units / sizeof units[0])
            goto bad;
        end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (x > (1LL << 40) || x < 0)
            goto bad;
        x <<= units[i].shift;
    }
    if (*end)
        goto bad;
    *out = x;
    return 0;
bad:
    errf(c, v, "%s: expected an integer%s, got '%s'", path,
         bytes ? " (optionally with k/m/g)" : "", s);
    return -1;
}

static int check_range(struct ctx *c, const struct node *v, const char *path,
                       const struct field *f, double x)
{
    if (f->flags & F_GT ? x <= f->min : x < f->min) {
        errf(c, v, "%s must be %s %g (got %s)", path, f->flags & F_GT ? ">" : ">=", f->min, v->s);
        return -1;
    }
    if (x > f->max) {
        errf(c, v, "%s must be <= %g (got %s)", path, f->max, v->s);
        return -1;
    }
    return 0;
}

static int get_bool(struct ctx *c, const struct node *v, const char *path, int *out)
{
    static const struct enumval bools[] = {
        { "true", 1 }, { "false", 0 }, { "yes", 1 }, { "no", 0 }, { "on", 1 }, { "off", 0 },
        { NULL, 0 } };
    if (want_scalar(c, v, path, "true or false"))
        return -1;
    for (const struct enumval *b = bools; b->name; b++)
        if (!strcasecmp(v->s, b->name)) {
            *out = b->v;
            return 0;
        }
    errf(c, v, "%s: expected true or false, got '%s'", path, v->s);
    return -1;
}

static int get_enum(struct ctx *c, const struct node *v, const char *path,
                    const struct enumval *ev, int *out)
{
    if (want_scalar(c, v, path, "a string"))
        return -1;
    for (const struct enumval *e = ev; e->name; e++)
        if (!strcmp(v->s, e->name)) {
            *out = e->v;
            return 0;
        }
    char hint[400];
    suggest_enum(hint, sizeof hint, v->s, ev);
    errf(c, v, "%s: invalid value '%s'; %s", path, v->s, hint);
    return -1;
}

static int get_list(struct ctx *c, const struct node *v, const char *path)
{
    if (v->t == N_SEQ)
        return 0;
    errf(c, v, "%s: expected a list, got %s", path, kind_names[v->t]);
    return -1;
}

static void decode_field(struct ctx *c, const struct node *v, const struct field *f,
                         void *base, const char *path);

/* decode_obj: a mapping through a field table. seen (may be NULL) gets a
 * bit per table index that was present and not null. */
static void decode_obj(struct ctx *c, const struct node *m, const struct field *tbl,
                       void *base, const char *path, uint64_t *seen)
{
    uint64_t s = 0;
    if (m->t != N_MAP) {
        errf(c, m, "%s: expected a mapping, got %s", path[0] ? path : "top level",
             kind_names[m->t]);
        if (seen)
            *seen = ~(uint64_t)0;   /* don't pile "missing" errors on top */
        return;
    }
    for (const struct node *v = m->head; v; v = v->next) {
        const struct field *f = tbl;
        while (f->name && strcmp(f->name, v->key->s))
            f++;
        if (f->name == NULL) {
            const char *names[64];
            size_t n = 0;
            for (const struct field *g = tbl; g->name && n < 64; g++)
                names[n++] = g->name;
            char hint[480];
            suggest(hint, sizeof hint, v->key->s, names, n);
            errf(c, v->key, "unknown key '%s' in %s; %s", v->key->s,
                 path[0] ? path : "the top level", hint);
            continue;
        }
        if (is_null(v))
            continue;
        s |= (uint64_t)1 << (f - tbl);
        char sub[256];
        join(sub, sizeof sub, path, f->name);
        decode_field(c, v, f, base, sub);
    }
    for (const struct field *f = tbl; f->name; f++)
        if ((f->flags & F_REQ) && !(s & ((uint64_t)1 << (f - tbl))))
            errf(c, m, "%s: missing required field '%s'", path[0] ? path : "top level", f->name);
    if (seen)
        *seen = s;
}

static void decode_field(struct ctx *c, const struct node *v, const struct field *f,
                         void *base, const char *path)
{
    void *p = (char *)base + f->off;
    long long i;
    int b;

    switch (f->type) {
    case F_STR:
        if (want_scalar(c, v, path, "a string"))
            return;
        if ((f->flags & F_NONEMPTY) && v->s[0] == '\0') {
            errf(c, v, "%s must not be empty", path);
            return;
        }
        *(char **)p = cs(c, v->s);
        return;
    case F_INT:
    case F_SIZE:
    case F_U64:
        if (get_int(c, v, path, f->type != F_INT, &i) || check_range(c, v, path, f, (double)i))
            return;
        if (f->type == F_INT)
            *(int *)p = (int)i;
        else if (f->type == F_SIZE)
            *(size_t *)p = (size_t)i;
        else
            *(uint64_t *)p = (uint64_t)i;
        return;
    case F_DOUBLE: {
        if (want_scalar(c, v, path, "a number"))
            return;
        char *end;
        errno = 0;
        double d = strtod(v->s, &end);
        if (end == v->s || *end || errno || !isfinite(d)) {
            errf(c, v, "%s: expected a number, got '%s'", path, v->s);
            return;
        }
        if (check_range(c, v, path, f, d))
            return;
        *(double *)p = d;
        return;
    }
    case F_BOOL:
        if (get_bool(c, v, path, &b) == 0)
            *(int *)p = b;
        return;
    case F_ENUM:
        if (get_enum(c, v, path, f->ev, &b) == 0)
            *(int *)p = b;   /* our enums are int-sized and non-negative */
        return;
    case F_STRLIST: {
        if (get_list(c, v, path))
            return;
        struct kt_strlist *l = p;
        l->v = cal(c, (v->n + 1) * sizeof *l->v);
        l->n = 0;
        if (l->v == NULL)
            return;
        for (const struct node *it = v->head; it; it = it->next) {
            if (want_scalar(c, it, path, "a string"))
                continue;
            l->v[l->n++] = cs(c, it->s);
        }
        return;
    }
    case F_OBJ:
        if (f->flags & F_HAS)
            *(int *)((char *)p + f->has_off) = 1;
        decode_obj(c, v, f->sub, p, path, NULL);
        return;
    case F_CUSTOM:
        f->fn(c, v, base, path);
        return;
    }
}

/* ---- custom fields ---------------------------------------------------- */

static void c_listen(struct ctx *c, const struct node *v, void *base, const char *path)
{
    struct kt_server *s = base;
    size_t n = 1;
    if (v->t == N_MAP) {
        errf(c, v, "%s: expected an address or a list of addresses, got a mapping", path);
        return;
    }
    if (v->t == N_SEQ)
        n = v->n;
    s->listen = cal(c, (n ? n : 1) * sizeof *s->listen);
    s->nlisten = 0;
    if (s->listen == NULL)
        return;
    const struct node *it = v->t == N_SEQ ? v->head : v;
    for (; it; it = v->t == N_SEQ ? it->next : NULL) {
        if (want_scalar(c, it, path, "an address such as 127.0.0.1:8080"))
            continue;
        struct kt_err e;
        if (kt_cfg_parse_listen(it->s, &s->listen[s->nlisten], &e) < 0) {
            errf(c, it, "%s: %s", path, e.msg);
            continue;
        }
        s->nlisten++;
    }
    if (v->t == N_SEQ && v->n == 0)
        errf(c, v, "%s: at least one address is required", path);
}

static void c_workers(struct ctx *c, const struct node *v, void *base, const char *path)
{
    struct kt_server *s = base;
    long long n;
    if (v->t == N_SCALAR && !strcmp(v->s, "auto")) {
        s->workers = 0;
        return;
    }
    if (v->t == N_SCALAR && !isdigit((unsigned char)v->s[0]) && v->s[0] != '-') {
        errf(c, v, "%s: expected 'auto' or a number of workers, got '%s'", path, v->s);
        return;
    }
    if (get_int(c, v, path, 0, &n))
        return;
    if (n < 0 || n > 1024) {
        errf(c, v, "%s must be between 0 (auto) and 1024 (got %s)", path, v->s);
        return;
    }
    s->workers = (int)n;
}

static void c_auth(struct ctx *c, const struct node *v, void *base, const char *path)
{
    struct kt_server *s = base;
    s->auth_enabled = 1;
    uint64_t seen = 0;
    decode_obj(c, v, auth_fields, base, path, &seen);
    if (seen == 0)
        errf(c, v, "%s: auth needs keys: [{id, sha256}] (remove auth: to disable client auth)", path);
}

static void c_keys(struct ctx *c, const struct node *v, void *base, const char *path)
{
    struct kt_server *s = base;
    if (get_list(c, v, path))
        return;
    s->keys = cal(c, (v->n + 1) * sizeof *s->keys);
    if (s->keys == NULL)
        return;
    size_t i = 0;
    for (const struct node *it = v->head; it; it = it->next, i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        struct kt_client_key *k = &s->keys[s->nkeys];
        uint64_t seen = 0;
        decode_obj(c, it, key_fields, k, sub, &seen);
        if (it->t != N_MAP || !k->id || !k->sha256)
            continue;
        const struct node *hn = map_get(it, "sha256");
        size_t hl = strlen(k->sha256), j;
        for (j = 0; j < hl && isxdigit((unsigned char)k->sha256[j]); j++)
            k->sha256[j] = (char)tolower((unsigned char)k->sha256[j]);
        if (hl != 64 || j != hl) {
            errf(c, hn, "%s.sha256: expected 64 hex characters (sha256 of the client key), got %zu characters",
                 sub, hl);
            continue;
        }
        for (size_t o = 0; o < s->nkeys; o++)
            if (!strcmp(s->keys[o].id, k->id)) {
                errf(c, map_get(it, "id"), "%s.id: duplicate client key id '%s'", sub, k->id);
                goto next;
            }
        s->nkeys++;
    next:;
    }
}

static void c_chain(struct ctx *c, const struct node *v, void *base, const char *path)
{
    struct kt_policies *p = base;
    if (get_list(c, v, path))
        return;
    p->chain.v = cal(c, (v->n + 1) * sizeof *p->chain.v);
    p->chain.n = 0;
    if (p->chain.v == NULL)
        return;
    for (const struct node *it = v->head; it; it = it->next) {
        int which;
        if (want_scalar(c, it, path, "a policy name"))
            continue;
        if (get_enum(c, it, path, policy_ev, &which))
            continue;
        size_t j;
        for (j = 0; j < p->chain.n && strcmp(p->chain.v[j], it->s); j++)
            ;
        if (j < p->chain.n) {
            errf(c, it, "%s: policy '%s' is listed twice", path, it->s);
            continue;
        }
        p->chain.v[p->chain.n++] = cs(c, it->s);
    }
}

/* set_bits: a list of enum words → a bit mask (entities, scan). */
static int set_bits(struct ctx *c, const struct node *v, const char *path,
                    const struct enumval *ev, unsigned *out)
{
    if (get_list(c, v, path))
        return -1;
    unsigned m = 0;
    int bad = 0;
    for (const struct node *it = v->head; it; it = it->next) {
        int b;
        if (get_enum(c, it, path, ev, &b)) {
            bad = 1;
            continue;
        }
        m |= (unsigned)b;
    }
    if (bad)
        return -1;
    *out = m;
    return 0;
}

static void c_entities(struct ctx *c, const struct node *v, void *base, const char *path)
{
    struct kt_cfg_pii *p = base;
    unsigned m;
    if (set_bits(c, v, path, pii_entity_ev, &m))
        return;
    if (m == 0) {
        errf(c, v, "%s: list at least one entity (or leave entities out for all)", path);
        return;
    }
    p->entities = m;
}

static void c_scan(struct ctx *c, const struct node *v, void *base, const char *path)
{
    struct kt_cfg_pii *p = base;
    unsigned m;
    if (set_bits(c, v, path, scan_ev, &m))
        return;
    p->scan_request = (m & 1) != 0;
    p->scan_response = (m & 2) != 0;
}

static void c_retry(struct ctx *c, const struct node *v, void *base, const char *path)
{
    struct kt_providers *p = base;
    struct kt_retry *r = &p->retry;
    r->max_attempts = 3;      /* a retry: section means "do retry" */
    decode_obj(c, v, retry_fields, r, path, NULL);
    if (r->max_backoff_ms < r->backoff_ms) {
        const struct node *at = map_get(v, "max_backoff_ms");
        errf(c, at ? at : v, "%s.max_backoff_ms (%d) must be >= backoff_ms (%d)", path,
             r->max_backoff_ms, r->backoff_ms);
    }
}

static void c_retry_on(struct ctx *c, const struct node *v, void *base, const char *path)
{
    struct kt_retry *r = base;
    if (get_list(c, v, path))
        return;
    r->nstatuses = 0;
    r->on_timeout = r->on_connect = 0;
    for (const struct node *it = v->head; it; it = it->next) {
        if (want_scalar(c, it, path, "an HTTP status or timeout/connect"))
            continue;
        if (isdigit((unsigned char)it->s[0])) {
            long long st;
            if (get_int(c, it, path, 0, &st))
                continue;
            if (st < 400 || st > 599) {
                errf(c, it, "%s: status %lld is not an HTTP error status (400-599)", path, st);
                continue;
            }
            if (r->nstatuses == KT_CFG_MAX_RETRY_STATUS) {
                errf(c, it, "%s: at most %d statuses", path, KT_CFG_MAX_RETRY_STATUS);
                continue;
            }
            r->statuses[r->nstatuses++] = (int)st;
            continue;
        }
        int w;
        if (get_enum(c, it, path, retry_word_ev, &w))
            continue;
        if (w == 1)
            r->on_timeout = 1;
        else
            r->on_connect = 1;
    }
}

static void c_secret(struct ctx *c, const struct node *v, void *base, const char *path)
{
    struct kt_target *t = base;
    struct secret_ref ref = { NULL };
    uint64_t seen = 0;
    decode_obj(c, v, secret_fields, &ref, path, &seen);
    if (ref.env == NULL)
        return;
    t->secret_env = ref.env;
    const char *val = getenv(ref.env);
    if (val == NULL || val[0] == '\0') {
        errf(c, map_get(v, "env"), "%s.env: environment variable %s is not set (it should hold the API key)",
             path, ref.env);
        return;
    }
    t->api_key = cs(c, val);
}

static int header_name_ok(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return 0;
    return 1;
}

/* kv_map: a mapping of scalars → (name, value) pairs. */
static int kv_map(struct ctx *c, const struct node *v, const char *path, int http,
                  struct kt_header_kv **out, size_t *nout)
{
    if (v->t != N_MAP) {
        errf(c, v, "%s: expected a mapping of names to values, got %s", path, kind_names[v->t]);
        return -1;
    }
    struct kt_header_kv *kv = cal(c, (v->n + 1) * sizeof *kv);
    size_t n = 0;
    if (kv == NULL)
        return -1;
    for (const struct node *it = v->head; it; it = it->next) {
        char sub[256];
        join(sub, sizeof sub, path, it->key->s);
        if (want_scalar(c, it, sub, "a string"))
            continue;
        if (http && !header_name_ok(it->key->s)) {
            errf(c, it->key, "%s: '%s' is not a valid HTTP header name", path, it->key->s);
            continue;
        }
        if (http && strpbrk(it->s, "\r\n")) {
            errf(c, it, "%s: header values must not contain line breaks", sub);
            continue;
        }
        kv[n].name = cs(c, it->key->s);
        kv[n].value = cs(c, it->s);
        n++;
    }
    *out = kv;
    *nout = n;
    return 0;
}

static void c_headers(struct ctx *c, const struct node *v, void *base, const char *path)
{
    struct kt_target *t = base;
    kv_map(c, v, path, 1, &t->headers, &t->nheaders);
}

static void c_cli_env(struct ctx *c, const struct node *v, void *base, const char *path)
{
    struct kt_target *t = base;
    kv_map(c, v, path, 0, &t->agent.cli_env, &t->agent.ncli_env);
}

static const struct provider_def *find_provider(const char *name)
{
    for (const struct provider_def *d = provider_defs; d->name; d++)
        if (!strcmp(d->name, name))
            return d;
    return NULL;
}

static int seen_bit(uint64_t seen, const char *name)
{
    for (const struct field *f = target_fields; f->name; f++)
        if (!strcmp(f->name, name))
            return (seen >> (f - target_fields)) & 1;
    return 0;
}

static void target_defaults(struct kt_target *t)
{
    memset(t, 0, sizeof *t);
    t->timeout_seconds = 60;
    t->weight = 1.0;
    t->anthropic_version = (char *)"2023-06-01";
    t->health_probe.interval_seconds = 30;
    t->health_probe.timeout_seconds = 5;
    t->health_probe.path = (char *)"/v1/models";
    t->health_probe.healthy_threshold = 2;
    t->health_probe.unhealthy_threshold = 3;
}

/* finish_target: provider resolution and defaults that depend on it.
 *
 * Secrets: an explicit secret_key_ref.env must name a set variable (else a
 * config error). Without secret_key_ref, anthropic, openai and the agent
 * SDK auto-detect their default variable (ANTHROPIC_API_KEY /
 * OPENAI_API_KEY) when it is set, as the product page promises; when it is
 * not set the target sends no auth header (api_key NULL) rather than fail,
 * so a keyless local setup still loads. mock and OpenAI-compatible servers
 * never auto-detect. */
static void finish_target(struct ctx *c, const struct node *m, struct kt_target *t,
                          uint64_t seen, const char *path)
{
    const struct node *pn = map_get(m, "provider");
    const struct provider_def *d = find_provider(t->provider);
    const char *short_model = NULL;

    for (size_t i = 0; !d && provider_shorthands[i].prefix; i++) {
        size_t pl = strlen(provider_shorthands[i].prefix);
        if (!strncmp(t->provider, provider_shorthands[i].prefix, pl)) {
            d = find_provider(provider_shorthands[i].provider);
            short_model = t->provider + pl;
            if (*short_model == '\0') {
                errf(c, pn, "%s.provider: '%s' needs a model after the last ':'", path, t->provider);
                return;
            }
        }
    }
    if (d == NULL) {
        const char *names[32];
        size_t n = 0;
        for (const struct provider_def *q = provider_defs; q->name; q++)
            names[n++] = q->name;
        for (size_t i = 0; provider_shorthands[i].prefix; i++)
            names[n++] = provider_shorthands[i].prefix;
        char hint[400];
        suggest(hint, sizeof hint, t->provider, names, n);
        errf(c, pn, "%s.provider: unknown provider '%s'; %s", path, t->provider, hint);
        return;
    }
    t->provider_kind = d->kind;
    if (t->model == NULL) {
        if (short_model)
            t->model = cs(c, short_model);
        else
            errf(c, m, "%s: missing required field 'model'", path);
    }

    if (!seen_bit(seen, "base_url")) {
        t->base_url = d->base_url ? (char *)d->base_url : NULL;
        if (d->needs_base_url)
            errf(c, m, "%s: provider '%s' needs base_url (e.g. http://127.0.0.1:8000)", path, d->name);
    } else if (strncmp(t->base_url, "http://", 7) && strncmp(t->base_url, "https://", 8)) {
        errf(c, map_get(m, "base_url"), "%s.base_url: must start with http:// or https:// (got '%s')",
             path, t->base_url);
    } else {
        size_t l = strlen(t->base_url);   /* "…/" + "/v1/…" would double the slash */
        while (l > 8 && t->base_url[l - 1] == '/')
            t->base_url[--l] = '\0';
    }
    if (!seen_bit(seen, "api_key_header"))
        t->api_key_header = (char *)d->header;
    if (!seen_bit(seen, "api_key_prefix"))
        t->api_key_prefix = (char *)d->prefix;
    if (!seen_bit(seen, "format")) {
        t->format = d->format;
        if (t->provider_type && !strcmp(t->provider_type, "anthropic"))
            t->format = KT_FMT_ANTHROPIC;
        else if (t->provider_type && !strcmp(t->provider_type, "openai"))
            t->format = KT_FMT_OPENAI;
    }
    if (!t->provider_type)
        t->provider_type = (char *)d->ptype;
    if (!seen_bit(seen, "stream_timeout_seconds"))
        t->stream_timeout_seconds = t->timeout_seconds;
    if (!t->secret_env && !seen_bit(seen, "secret_key_ref") && d->key_env) {
        const char *val = getenv(d->key_env);
        if (val && val[0]) {
            t->secret_env = (char *)d->key_env;
            t->api_key = cs(c, val);
        }
    }

    if (d->kind != KT_PROV_CLAUDE_AGENT_SDK) {
        for (const struct field *f = target_fields + AGENT_FIRST; f->name; f++)
            if ((seen >> (f - target_fields)) & 1)
                errf(c, map_get(m, f->name)->key,
                     "%s.%s applies only to anthropic:claude-agent-sdk:MODEL targets", path, f->name);
    } else if (t->agent.permission_mode) {
        int pm;
        char sub[256];
        join(sub, sizeof sub, path, "permission_mode");
        get_enum(c, map_get(m, "permission_mode"), sub, permission_ev, &pm);
    }
    if (t->health_probe.enabled &&
        t->health_probe.timeout_seconds > t->health_probe.interval_seconds) {
        const struct node *hp = map_get(m, "health_probe");
        const struct node *at = map_get(hp, "timeout_seconds");
        errf(c, at ? at : hp, "%s.health_probe.timeout_seconds (%d) must not exceed interval_seconds (%d)",
             path, t->health_probe.timeout_seconds, t->health_probe.interval_seconds);
    }
    t->src_file = m->file;
    t->src_line = m->line;
    t->src_col = m->col;
}

static void c_targets(struct ctx *c, const struct node *v, void *base, const char *path)
{
    struct kt_providers *p = base;
    if (get_list(c, v, path))
        return;
    p->targets = cal(c, (v->n + 1) * sizeof *p->targets);
    p->ntargets = 0;
    if (p->targets == NULL)
        return;
    size_t i = 0;
    for (const struct node *it = v->head; it; it = it->next, i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        struct kt_target *t = &p->targets[p->ntargets];
        target_defaults(t);
        uint64_t seen = 0;
        size_t before = c->nerr;
        decode_obj(c, it, target_fields, t, sub, &seen);
        if (it->t != N_MAP || !t->id || !t->provider)
            continue;
        finish_target(c, it, t, seen, sub);
        int dup = 0;
        for (size_t o = 0; o < p->ntargets; o++)
            if (!strcmp(p->targets[o].id, t->id)) {
                errf(c, map_get(it, "id"), "%s.id: duplicate target id '%s' (first at %s:%d:%d)",
                     sub, t->id, p->targets[o].src_file, p->targets[o].src_line,
                     p->targets[o].src_col);
                dup = 1;
                break;
            }
        if (!dup && c->nerr == before)
            p->ntargets++;
    }
}

/* ---- defaults, load, free --------------------------------------------- */

static const int default_retry_status[] = { 429, 500, 502, 503, 504 };

static void cfg_defaults(struct kt_config *cfg)
{
    cfg->pack.name = (char *)"default";
    cfg->pack.version = (char *)"0.0.0";
    cfg->pack.enabled = 1;

    struct kt_server *s = &cfg->server;
    s->workers = 0;
    s->max_body_bytes = 10485760;
    s->max_header_bytes = 65536;
    s->state_dir = (char *)"/var/lib/keeptrusts";
    s->log_level = KT_LOG_INFO;
    s->log_json = 0;
    s->log_file = (char *)"stderr";
    s->shutdown_timeout_seconds = 30;
    s->read_timeout_seconds = 60;
    s->keepalive_timeout_seconds = 75;
    s->max_connections = 4096;

    struct kt_policies *p = &cfg->policies;
    p->fail_mode = KT_FAIL_BLOCK;
    p->injection.action = KT_PI_BLOCK;
    p->injection.threshold = 0.7;
    p->pii.action = KT_PII_REDACT;
    p->pii.entities = KT_PII_ALL;
    p->pii.scan_request = p->pii.scan_response = 1;
    p->audit.path = (char *)"/var/log/keeptrusts/audit.log";
    p->audit.fsync_batch = 64;
    p->audit.max_file_bytes = 100u << 20;

    struct kt_providers *r = &cfg->providers;
    r->strategy = KT_STRAT_SINGLE;
    r->retry.max_attempts = 1;   /* no retry: section = no retries */
    r->retry.backoff_ms = 200;
    r->retry.max_backoff_ms = 5000;
    for (size_t i = 0; i < sizeof default_retry_status / sizeof *default_retry_status; i++)
        r->retry.statuses[r->retry.nstatuses++] = default_retry_status[i];
    r->retry.on_timeout = r->retry.on_connect = 1;
    r->breaker.failure_threshold = 5;
    r->breaker.window_seconds = 30;
    r->breaker.cooldown_seconds = 30;
    r->breaker.half_open_requests = 1;
}

static const struct kt_listen default_listen = { "127.0.0.1", 8080 };

static void cfg_finish(struct ctx *c, struct kt_config *cfg, const struct node *root)
{
    struct kt_server *s = &cfg->server;
    if (s->nlisten == 0 && is_null(map_get(map_get(root, "server"), "listen"))) {
        s->listen = cal(c, sizeof *s->listen);
        if (s->listen) {
            s->listen[0] = default_listen;
            s->nlisten = 1;
        }
    }
    if (cfg->providers.ntargets == 0) {
        const struct node *t = map_get(map_get(root, "providers"), "targets");
        /* Only complain when nothing was said, or an empty list was: broken
         * targets already have their own errors. */
        if (t == NULL || is_null(t))
            errf(c, root, "providers.targets: at least one target is required");
        else if (t->t == N_SEQ && t->n == 0)
            errf(c, t, "providers.targets: at least one target is required");
    }
    /* policy: settings for a policy that is not in the chain are allowed:
     * they wait there, ready to be switched on. */
}

static int err_file_index(const struct kt_err *e, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(e->file, names[i]))
            return (int)i;
    return -1;                /* no position (I/O): first */
}

/* sort_errors: this load's errors in reading order (file, line, column);
 * checks that run after a mapping is read otherwise come out late.
 * Insertion sort: stable, and there are at most KT_CFG_MAX_ERRORS. */
static void sort_errors(struct kt_cfg_errors *errs, size_t start, const char *const *names, size_t n)
{
    if (errs == NULL)
        return;
    for (size_t i = start + 1; i < errs->n; i++) {
        struct kt_err x = errs->v[i];
        int xf = err_file_index(&x, names, n);
        size_t j = i;
        while (j > start) {
            const struct kt_err *y = &errs->v[j - 1];
            int yf = err_file_index(y, names, n);
            if (yf < xf || (yf == xf && (y->line < x.line || (y->line == x.line && y->col <= x.col))))
                break;
            errs->v[j] = errs->v[j - 1];
            j--;
        }
        errs->v[j] = x;
    }
}

static int build(const char *const *names, const char *const *bufs, const size_t *lens,
                 const int *ok, size_t n, struct kt_config **out, struct kt_cfg_errors *errs,
                 size_t err_start)
{
    struct kt_cfg_priv *priv = calloc(1, sizeof *priv);
    *out = NULL;
    if (priv == NULL)
        return KT_ENOMEM;
    kt_arena_init(&priv->mem, 16384);
    struct ctx c = { .errs = errs, .mem = &priv->mem };
    kt_arena_init(&c.tree, 65536);
    struct kt_config *cfg = cal(&c, sizeof *cfg);
    char **files = cal(&c, (n + 1) * sizeof *files);
    if (cfg == NULL || files == NULL) {
        kt_arena_free(&priv->mem);
        free(priv);
        return KT_ENOMEM;
    }
    cfg->priv = priv;
    cfg->files.v = files;
    cfg->files.n = n;
    for (size_t i = 0; i < n; i++)
        files[i] = cs(&c, names[i]);

    struct node *root = NULL;
    int parse_failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ok[i]) {
            parse_failed = 1;
            continue;
        }
        struct node *r = parse_doc(&c, files[i], bufs[i], lens[i]);
        if (r == NULL)
            parse_failed = 1;
        else if (root == NULL)
            root = r;
        else
            merge(root, r);
    }
    if (!parse_failed && root) {
        cfg_defaults(cfg);
        decode_obj(&c, root, top_fields, cfg, "", NULL);
        cfg_finish(&c, cfg, root);
    }
    kt_arena_free(&c.tree);
    sort_errors(errs, err_start, (const char *const *)files, n);
    if (c.nerr || c.oom || parse_failed) {
        int rc = c.oom ? KT_ENOMEM : KT_EINVAL;
        kt_cfg_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

static int read_file(const char *path, char **buf, size_t *len, struct ctx *c)
{
    FILE *f = fopen(path, "rb");
    *buf = NULL;
    *len = 0;
    if (f == NULL) {
        errf_at(c, "", 0, 0, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct kt_buf b = { 0 };
    char tmp[8192];
    size_t r;
    while ((r = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (b.len + r > MAX_FILE_BYTES) {
            errf_at(c, "", 0, 0, "%s: larger than %u bytes", path, MAX_FILE_BYTES);
            goto fail;
        }
        if (kt_buf_append(&b, tmp, r) < 0) {
            errf_at(c, "", 0, 0, "%s: out of memory", path);
            goto fail;
        }
    }
    if (ferror(f)) {
        errf_at(c, "", 0, 0, "%s: read error: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    *len = b.len;
    *buf = b.data ? b.data : strdup("");
    return *buf ? 0 : -1;
fail:
    fclose(f);
    kt_buf_free(&b);
    return -1;
}

int kt_cfg_load(const char *const *paths, size_t npaths, struct kt_config **out,
                struct kt_cfg_errors *errs)
{
    struct ctx io = { .errs = errs };
    size_t err_start = errs ? errs->n : 0;
    char **bufs = calloc(npaths + 1, sizeof *bufs);
    size_t *lens = calloc(npaths + 1, sizeof *lens);
    int *ok = calloc(npaths + 1, sizeof *ok);
    int rc = KT_ENOMEM;
    *out = NULL;
    if (bufs == NULL || lens == NULL || ok == NULL)
        goto done;
    if (npaths == 0) {
        errf_at(&io, "", 0, 0, "no configuration file given");
        rc = KT_EINVAL;
        goto done;
    }
    int io_failed = 0;
    for (size_t i = 0; i < npaths; i++) {
        ok[i] = read_file(paths[i], &bufs[i], &lens[i], &io) == 0;
        io_failed |= !ok[i];
    }
    rc = build(paths, (const char *const *)bufs, lens, ok, npaths, out, errs, err_start);
    if (io_failed && rc != KT_ENOMEM)
        rc = KT_EIO;
done:
    for (size_t i = 0; bufs && i < npaths; i++)
        free(bufs[i]);
    free(bufs);
    free(lens);
    free(ok);
    return rc;
}

int kt_cfg_load_string(const char *name, const char *yaml, size_t len,
                       struct kt_config **out, struct kt_cfg_errors *errs)
{
    int ok = 1;
    return build(&name, &yaml, &len, &ok, 1, out, errs, errs ? errs->n : 0);
}

int kt_cfg_load_quickstart(struct kt_config **out, struct kt_cfg_errors *errs)
{
    return kt_cfg_load_string("<quickstart>", kt_cfg_quickstart_yaml,
                              kt_cfg_quickstart_yaml_len, out, errs);
}

void kt_cfg_free(struct kt_config *cfg)
{
    if (cfg == NULL)
        return;
    /* Scrub secrets before the memory goes back to malloc. */
    for (size_t i = 0; i < cfg->providers.ntargets; i++) {
        char *k = cfg->providers.targets[i].api_key;
        if (k)
            explicit_bzero(k, strlen(k));
    }
    struct kt_cfg_priv *priv = cfg->priv;
    kt_arena_free(&priv->mem);
    free(priv);
}

void kt_cfg_errors_free(struct kt_cfg_errors *errs)
{
    if (errs == NULL)
        return;
    free(errs->v);
    memset(errs, 0, sizeof *errs);
}

void kt_cfg_errors_print(const struct kt_cfg_errors *errs, FILE *out)
{
    char line[1024];
    for (size_t i = 0; i < errs->n; i++)
        fprintf(out, "%s\n", kt_err_format(&errs->v[i], line, sizeof line));
    if (errs->dropped)
        fprintf(out, "(%zu more errors not shown)\n", errs->dropped);
}

/* ---- lookups ---------------------------------------------------------- */

const struct kt_target *kt_cfg_find_target(const struct kt_config *cfg, const char *id_or_model)
{
    if (cfg == NULL || id_or_model == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->providers.ntargets; i++)
        if (!strcmp(cfg->providers.targets[i].id, id_or_model))
            return &cfg->providers.targets[i];
    for (size_t i = 0; i < cfg->providers.ntargets; i++)
        if (!strcmp(cfg->providers.targets[i].model, id_or_model))
            return &cfg->providers.targets[i];
    return NULL;
}

int kt_cfg_has_policy(const struct kt_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->policies.chain.n; i++)
        if (!strcmp(cfg->policies.chain.v[i], name))
            return 1;
    return 0;
}

int kt_cfg_retry_status(const struct kt_retry *r, int status)
{
    for (size_t i = 0; i < r->nstatuses; i++)
        if (r->statuses[i] == status)
            return 1;
    return 0;
}

static const char *ev_name(const struct enumval *ev, int v)
{
    for (; ev->name; ev++)
        if (ev->v == v)
            return ev->name;
    return "?";
}

const char *kt_cfg_format_name(enum kt_format f) { return ev_name(format_ev, (int)f); }
const char *kt_cfg_strategy_name(enum kt_strategy s) { return ev_name(strategy_ev, (int)s); }
const char *kt_cfg_pii_entity_name(unsigned bit) { return ev_name(pii_entity_ev, (int)bit); }

const char *kt_cfg_provider_kind_name(enum kt_provider_kind k)
{
    static const char *const names[] = {
        [KT_PROV_ANTHROPIC] = "anthropic", [KT_PROV_OPENAI] = "openai", [KT_PROV_MOCK] = "mock",
        [KT_PROV_CLAUDE_AGENT_SDK] = "claude_agent_sdk", [KT_PROV_OTHER] = "other" };
    return (unsigned)k < sizeof names / sizeof *names ? names[k] : "?";
}

/* ---- listen addresses ------------------------------------------------- */

int kt_cfg_parse_listen(const char *s, struct kt_listen *out, struct kt_err *err)
{
    const char *colon, *host = s;
    size_t hlen;
    memset(out, 0, sizeof *out);
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (rb == NULL)
            return kt_err_set(err, KT_EINVAL, "invalid listen address '%s': missing ']'", s);
        host = s + 1;
        hlen = (size_t)(rb - host);
        if (rb[1] != ':')
            return kt_err_set(err, KT_EINVAL, "invalid listen address '%s': expected [IPV6]:PORT", s);
        colon = rb + 1;
        char tmp[64];
        struct in6_addr a6;
        if (hlen == 0 || hlen >= sizeof tmp)
            return kt_err_set(err, KT_EINVAL, "invalid listen address '%s': bad IPv6 address", s);
        memcpy(tmp, host, hlen);
        tmp[hlen] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return kt_err_set(err, KT_EINVAL, "invalid listen address '%s': bad IPv6 address", s);
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return kt_err_set(err, KT_EINVAL, "invalid listen address '%s': expected HOST:PORT (e.g. 127.0.0.1:8080)", s);
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen))
            return kt_err_set(err, KT_EINVAL, "invalid listen address '%s': put IPv6 addresses in brackets, e.g. [::1]:8080", s);
        int dotted = hlen > 0;
        for (size_t i = 0; i < hlen; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (!isalnum(ch) && ch != '.' && ch != '-' && !(ch == '*' && hlen == 1))
                return kt_err_set(err, KT_EINVAL, "invalid listen address '%s': bad host name", s);
            if (!isdigit(ch) && ch != '.')
                dotted = 0;
        }
        if (dotted) {
            char tmp[64];
            struct in_addr a4;
            if (hlen >= sizeof tmp)
                return kt_err_set(err, KT_EINVAL, "invalid listen address '%s': bad IPv4 address", s);
            memcpy(tmp, s, hlen);
            tmp[hlen] = '\0';
            if (inet_pton(AF_INET, tmp, &a4) != 1)
                return kt_err_set(err, KT_EINVAL, "invalid listen address '%s': bad IPv4 address", s);
        }
        if (hlen == 1 && s[0] == '*')
            hlen = 0;   /* "*:8080" = all addresses */
    }
    if (hlen >= sizeof out->host)
        return kt_err_set(err, KT_EINVAL, "invalid listen address: host name too long");
    const char *p = colon + 1;
    if (*p == '\0')
        return kt_err_set(err, KT_EINVAL, "invalid listen address '%s': missing port", s);
    long port = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p) || port > 65535)
            return kt_err_set(err, KT_EINVAL, "invalid listen address '%s': bad port", s);
        port = port * 10 + (*p - '0');
    }
    if (port > 65535)
        return kt_err_set(err, KT_EINVAL, "invalid listen address '%s': port must be 0-65535", s);
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = (int)port;
    return 0;
}

const char *kt_cfg_format_listen(const struct kt_listen *l, char *out, size_t outlen)
{
    if (strchr(l->host, ':'))
        snprintf(out, outlen, "[%s]:%d", l->host, l->port);
    else
        snprintf(out, outlen, "%s:%d", l->host, l->port);
    return out;
}

/* ---- dump ------------------------------------------------------------- */

/* Header and env names that carry credentials: their values print as ****. */
static int secret_name(const char *name)
{
    static const char *const words[] = { "authorization", "key", "token", "secret", "password",
                                         "cookie", NULL };
    char low[128];
    size_t i;
    for (i = 0; name[i] && i < sizeof low - 1; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    low[i] = '\0';
    for (const char *const *w = words; *w; w++)
        if (strstr(low, *w))
            return 1;
    return 0;
}

static void q(struct kt_buf *b, const char *s)
{
    if (s == NULL)
        kt_buf_puts(b, "null");
    else
        kt_buf_json_str(b, s, strlen(s));
}

static void qlist(struct kt_buf *b, const struct kt_strlist *l)
{
    kt_buf_putc(b, '[');
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            kt_buf_puts(b, ", ");
        q(b, l->v[i]);
    }
    kt_buf_putc(b, ']');
}

static void kv_dump(struct kt_buf *b, const char *indent, const char *name,
                    const struct kt_header_kv *kv, size_t n)
{
    kt_buf_printf(b, "%s%s:%s\n", indent, name, n ? "" : " {}");
    for (size_t i = 0; i < n; i++) {
        kt_buf_printf(b, "%s  ", indent);
        q(b, kv[i].name);
        kt_buf_puts(b, ": ");
        q(b, secret_name(kv[i].name) ? "****" : kv[i].value);
        kt_buf_putc(b, '\n');
    }
}

static const char *tf(int v)
{
    return v ? "true" : "false";
}

static void dump_target(struct kt_buf *b, const struct kt_target *t)
{
    const char *in = "      ";
    kt_buf_puts(b, "    - id: ");
    q(b, t->id);
    kt_buf_printf(b, "\n%sprovider: ", in);
    q(b, t->provider);
    kt_buf_printf(b, "\n%smodel: ", in);
    q(b, t->model);
    kt_buf_putc(b, '\n');
    if (t->base_url) {
        kt_buf_printf(b, "%sbase_url: ", in);
        q(b, t->base_url);
        kt_buf_putc(b, '\n');
    }
    if (t->secret_env) {
        kt_buf_printf(b, "%ssecret_key_ref: {env: ", in);
        q(b, t->secret_env);
        kt_buf_printf(b, "}   # api key: %s\n", t->api_key ? "****" : "(unset)");
    } else {
        kt_buf_printf(b, "%s# no api key: no auth header is sent\n", in);
    }
    kt_buf_printf(b, "%sapi_key_header: ", in);
    q(b, t->api_key_header);
    kt_buf_printf(b, "\n%sapi_key_prefix: ", in);
    q(b, t->api_key_prefix);
    kt_buf_printf(b, "\n%santhropic_version: ", in);
    q(b, t->anthropic_version);
    kt_buf_printf(b, "\n%stimeout_seconds: %d\n", in, t->timeout_seconds);
    kt_buf_printf(b, "%sstream_timeout_seconds: %d\n", in, t->stream_timeout_seconds);
    kt_buf_printf(b, "%smax_context_tokens: %d\n", in, t->max_context_tokens);
    kt_buf_printf(b, "%smax_messages: %d\n", in, t->max_messages);
    kv_dump(b, in, "headers", t->headers, t->nheaders);
    kt_buf_printf(b, "%sformat: %s\n", in, kt_cfg_format_name(t->format));
    kt_buf_printf(b, "%sprovider_type: ", in);
    q(b, t->provider_type);
    kt_buf_putc(b, '\n');
    if (t->description) {
        kt_buf_printf(b, "%sdescription: ", in);
        q(b, t->description);
        kt_buf_putc(b, '\n');
    }
    kt_buf_printf(b, "%sweight: %g\n", in, t->weight);
    if (t->data_policy.has)
        kt_buf_printf(b, "%sdata_policy: {zero_data_retention: %s, training_opt_out: %s, retention_days: %d}\n",
                      in, tf(t->data_policy.zero_data_retention), tf(t->data_policy.training_opt_out),
                      t->data_policy.retention_days);
    if (t->pricing.has)
        kt_buf_printf(b, "%spricing: {prompt: %g, completion: %g}\n", in, t->pricing.prompt,
                      t->pricing.completion);
    const struct kt_health_probe *h = &t->health_probe;
    kt_buf_printf(b, "%shealth_probe: {enabled: %s, interval_seconds: %d, timeout_seconds: %d, path: ",
                  in, tf(h->enabled), h->interval_seconds, h->timeout_seconds);
    q(b, h->path);
    kt_buf_printf(b, ", healthy_threshold: %d, unhealthy_threshold: %d}\n", h->healthy_threshold,
                  h->unhealthy_threshold);
    kt_buf_printf(b, "%srate_limit: {requests_per_minute: %d, tokens_per_minute: %d}\n", in,
                  t->rate_limit.requests_per_minute, t->rate_limit.tokens_per_minute);
    if (t->provider_kind != KT_PROV_CLAUDE_AGENT_SDK)
        return;
    const struct kt_agent_sdk *a = &t->agent;
    static const struct { const char *name; size_t off; } strs[] = {
        { "path_to_claude_code_executable", offsetof(struct kt_agent_sdk, path_to_claude_code_executable) },
        { "working_dir", offsetof(struct kt_agent_sdk, working_dir) },
        { "permission_mode", offsetof(struct kt_agent_sdk, permission_mode) },
        { "fallback_model", offsetof(struct kt_agent_sdk, fallback_model) },
    };
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) {
        const char *v = *(char *const *)((const char *)a + strs[i].off);
        if (v) {
            kt_buf_printf(b, "%s%s: ", in, strs[i].name);
            q(b, v);
            kt_buf_putc(b, '\n');
        }
    }
    if (a->max_turns)
        kt_buf_printf(b, "%smax_turns: %d\n", in, a->max_turns);
    kt_buf_printf(b, "%sallow_all_tools: %s\n%sappend_allowed_tools: ", in, tf(a->allow_all_tools), in);
    qlist(b, &a->append_allowed_tools);
    kt_buf_printf(b, "\n%sdisallowed_tools: ", in);
    qlist(b, &a->disallowed_tools);
    kt_buf_printf(b, "\n%sadditional_directories: ", in);
    qlist(b, &a->additional_directories);
    kt_buf_putc(b, '\n');
    kv_dump(b, in, "cli_env", a->cli_env, a->ncli_env);
}

int kt_cfg_dump(const struct kt_config *cfg, FILE *out)
{
    struct kt_buf b = { 0 };
    char tmp[300];

    kt_buf_puts(&b, "# effective configuration: defaults filled in, secrets masked\n# sources:");
    for (size_t i = 0; i < cfg->files.n; i++)
        kt_buf_printf(&b, " %s", cfg->files.v[i]);
    kt_buf_puts(&b, "\npack:\n  name: ");
    q(&b, cfg->pack.name);
    kt_buf_puts(&b, "\n  version: ");
    q(&b, cfg->pack.version);
    kt_buf_printf(&b, "\n  enabled: %s\n", tf(cfg->pack.enabled));

    const struct kt_server *s = &cfg->server;
    kt_buf_puts(&b, "server:\n  listen: [");
    for (size_t i = 0; i < s->nlisten; i++) {
        if (i)
            kt_buf_puts(&b, ", ");
        q(&b, kt_cfg_format_listen(&s->listen[i], tmp, sizeof tmp));
    }
    kt_buf_puts(&b, "]\n");
    if (s->workers)
        kt_buf_printf(&b, "  workers: %d\n", s->workers);
    else
        kt_buf_puts(&b, "  workers: auto\n");
    if (s->tls_cert) {
        kt_buf_puts(&b, "  tls: {cert: ");
        q(&b, s->tls_cert);
        kt_buf_puts(&b, ", key: ");
        q(&b, s->tls_key);
        kt_buf_puts(&b, "}\n");
    }
    if (s->auth_enabled) {
        kt_buf_puts(&b, "  auth:\n    keys:\n");
        for (size_t i = 0; i < s->nkeys; i++) {
            const struct kt_client_key *k = &s->keys[i];
            kt_buf_puts(&b, "      - id: ");
            q(&b, k->id);
            kt_buf_puts(&b, "\n        sha256: ");
            q(&b, k->sha256);
            kt_buf_puts(&b, "\n        models: ");
            qlist(&b, &k->models);
            kt_buf_printf(&b, "\n        rate_limit: {requests_per_minute: %d, tokens_per_minute: %d}\n",
                          k->rate_limit.requests_per_minute, k->rate_limit.tokens_per_minute);
        }
    }
    kt_buf_printf(&b, "  max_body_bytes: %zu\n  max_header_bytes: %zu\n  state_dir: ",
                  s->max_body_bytes, s->max_header_bytes);
    q(&b, s->state_dir);
    kt_buf_printf(&b, "\n  log: {level: %s, format: %s, file: ", ev_name(log_level_ev, (int)s->log_level),
                  s->log_json ? "json" : "text");
    q(&b, s->log_file);
    kt_buf_printf(&b, "}\n  shutdown_timeout_seconds: %d\n  read_timeout_seconds: %d\n"
                  "  keepalive_timeout_seconds: %d\n  max_connections: %d\n",
                  s->shutdown_timeout_seconds, s->read_timeout_seconds,
                  s->keepalive_timeout_seconds, s->max_connections);
    if (s->user) {
        kt_buf_puts(&b, "  user: ");
        q(&b, s->user);
        kt_buf_putc(&b, '\n');
    }

    const struct kt_policies *p = &cfg->policies;
    kt_buf_puts(&b, "policies:\n  chain: ");
    qlist(&b, &p->chain);
    kt_buf_printf(&b, "\n  fail_mode: %s\npolicy:\n", ev_name(fail_ev, (int)p->fail_mode));
    kt_buf_printf(&b, "  prompt-injection: {action: %s, threshold: %g}\n",
                  ev_name(pi_action_ev, (int)p->injection.action), p->injection.threshold);
    kt_buf_printf(&b, "  pii-detector:\n    action: %s\n    entities: [",
                  ev_name(pii_action_ev, (int)p->pii.action));
    int first = 1;
    for (const struct enumval *e = pii_entity_ev; e->name; e++)
        if (p->pii.entities & (unsigned)e->v) {
            kt_buf_printf(&b, "%s%s", first ? "" : ", ", e->name);
            first = 0;
        }
    kt_buf_printf(&b, "]\n    scan: [%s%s%s]\n", p->pii.scan_request ? "request" : "",
                  p->pii.scan_request && p->pii.scan_response ? ", " : "",
                  p->pii.scan_response ? "response" : "");
    kt_buf_printf(&b, "  audit-logger:\n    immutable: %s\n    retention_days: %d\n"
                  "    log_all_access: %s\n    path: ",
                  tf(p->audit.immutable), p->audit.retention_days, tf(p->audit.log_all_access));
    q(&b, p->audit.path);
    kt_buf_printf(&b, "\n    fsync_batch: %d\n    max_file_bytes: %llu\n", p->audit.fsync_batch,
                  (unsigned long long)p->audit.max_file_bytes);

    const struct kt_providers *r = &cfg->providers;
    kt_buf_printf(&b, "providers:\n  strategy: %s\n  retry:\n    max_attempts: %d\n"
                  "    backoff_ms: %d\n    max_backoff_ms: %d\n    retry_on: [",
                  kt_cfg_strategy_name(r->strategy), r->retry.max_attempts, r->retry.backoff_ms,
                  r->retry.max_backoff_ms);
    for (size_t i = 0; i < r->retry.nstatuses; i++)
        kt_buf_printf(&b, "%s%d", i ? ", " : "", r->retry.statuses[i]);
    if (r->retry.on_timeout)
        kt_buf_printf(&b, "%stimeout", r->retry.nstatuses ? ", " : "");
    if (r->retry.on_connect)
        kt_buf_printf(&b, "%sconnect", r->retry.nstatuses || r->retry.on_timeout ? ", " : "");
    kt_buf_printf(&b, "]\n  circuit_breaker:\n    enabled: %s\n    failure_threshold: %d\n"
                  "    window_seconds: %d\n    cooldown_seconds: %d\n    half_open_requests: %d\n",
                  tf(r->breaker.enabled), r->breaker.failure_threshold, r->breaker.window_seconds,
                  r->breaker.cooldown_seconds, r->breaker.half_open_requests);
    kt_buf_puts(&b, "  targets:\n");
    for (size_t i = 0; i < r->ntargets; i++)
        dump_target(&b, &r->targets[i]);

    if (b.data == NULL)
        return KT_ENOMEM;
    size_t w = fwrite(b.data, 1, b.len, out);
    int rc = w == b.len && fflush(out) == 0 ? 0 : KT_EIO;
    kt_buf_free(&b);
    return rc;
}

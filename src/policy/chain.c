/* chain.c: the policy chain runner (see policy.h). Owns the per-worker
 * policy options and scratch space, the order of policies and how their
 * actions combine. The detectors themselves live in pii.c and
 * injection.c; the audit record is written by the flow. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/injection.h"
#include "kt/log.h"
#include "kt/pii.h"
#include "kt/policy.h"

enum step { STEP_INJECTION, STEP_PII };

struct kt_policy_chain {
    const struct kt_config *cfg;
    enum step steps[8];
    size_t nsteps;
    int pii_on, pii_response;
    struct kt_injection_scratch inj;
    struct kt_buf tmp;
    /* Redacted stream text of the event being handled: reset per event and
     * copied into the request arena before the event returns, so one
     * buffer per worker serves every stream (no per-stream heap memory). */
    struct kt_buf emit;
};

#define MAX_STREAM_BLOCKS 16

struct kt_policy_stream {
    struct kt_policy_chain *c;
    struct kt_arena *a;
    struct kt_pii_stream *blocks[MAX_STREAM_BLOCKS];
    size_t redactions;
    int recorded;
};

struct kt_policy_chain *kt_policy_chain_new(const struct kt_config *cfg)
{
    struct kt_policy_chain *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->cfg = cfg;
    for (size_t i = 0; i < cfg->policies.chain.n && c->nsteps < 8; i++) {
        const char *name = cfg->policies.chain.v[i];
        if (strcmp(name, "prompt-injection") == 0)
            c->steps[c->nsteps++] = STEP_INJECTION;
        else if (strcmp(name, "pii-detector") == 0) {
            c->steps[c->nsteps++] = STEP_PII;
            c->pii_on = 1;
            c->pii_response = cfg->policies.pii.scan_response;
        }
    }
    if (kt_injection_scratch_init(&c->inj) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

void kt_policy_chain_free(struct kt_policy_chain *c)
{
    if (c == NULL)
        return;
    kt_injection_scratch_free(&c->inj);
    kt_buf_free(&c->tmp);
    kt_buf_free(&c->emit);
    free(c);
}

int kt_policy_chain_has_response_phase(const struct kt_policy_chain *c)
{
    return c && c->pii_response;
}

static struct kt_policy_decision *decide(struct kt_policy_result *res, const char *policy,
                                         const char *action, double score)
{
    if (res->nd >= KT_POLICY_MAX_DECISIONS)
        return &res->d[KT_POLICY_MAX_DECISIONS - 1];
    struct kt_policy_decision *d = &res->d[res->nd++];
    d->policy = policy;
    d->action = action;
    d->detail[0] = '\0';
    d->score = score;
    return d;
}

/* block: "<what> blocked by policy <policy> (<why>)". */
static void block(struct kt_policy_result *res, const char *policy, const char *what, const char *why)
{
    res->blocked = 1;
    res->http_status = 400;
    res->policy = policy;
    snprintf(res->message, sizeof res->message, "%s blocked by policy %s (%s)", what, policy, why);
}

/* ---- prompt-injection ---------------------------------------------------- */

struct inj_walk {
    struct kt_policy_chain *c;
    struct kt_injection_result best;
    int failed;
};

static int inj_text(void *ud, enum kt_text_place place, enum kt_role role, const char *text,
                    size_t len, const char **repl, size_t *repl_len)
{
    struct inj_walk *w = ud;
    /* What the user and tools say, not the operator's own system prompt. */
    if (place == KT_TEXT_SYSTEM || place == KT_TEXT_THINKING || role == KT_ROLE_ASSISTANT)
        return 0;
    struct kt_injection_result r;
    if (kt_injection_score(text, len, &w->c->inj, &r) != 0) {
        w->failed = 1;
        return 0;
    }
    if (r.score > w->best.score)
        w->best = r;
    return 0;
}

static int run_injection(struct kt_policy_chain *c, struct kt_request *req, struct kt_arena *a,
                         struct kt_policy_result *res)
{
    const struct kt_cfg_injection *o = &c->cfg->policies.injection;
    struct inj_walk w = { .c = c, .best = { .score = 0, .top_signal = "none" } };
    kt_ir_request_texts(req, a, inj_text, &w);
    if (w.failed)
        return -1;
    if (w.best.score < o->threshold)
        return 0;
    int is_block = o->action == KT_PI_BLOCK;
    struct kt_policy_decision *d = decide(res, "prompt-injection", is_block ? "block" : "flag", w.best.score);
    snprintf(d->detail, sizeof d->detail, "%s", w.best.top_signal);
    if (is_block)
        block(res, "prompt-injection", "request", w.best.top_signal);
    return 0;
}

/* ---- pii-detector -------------------------------------------------------- */

struct pii_walk {
    struct kt_policy_chain *c;
    unsigned mask;
    int redact;
    size_t found;
    unsigned entities;        /* KT_PII_BIT of each entity seen */
};

static void count_entities(struct pii_walk *w, const char *text, size_t len)
{
    struct kt_pii_match m[32];
    size_t n = 0;
    kt_pii_scan(text, len, w->mask, m, 32, &n);
    for (size_t i = 0; i < n && i < 32; i++)
        w->entities |= KT_PII_BIT(m[i].entity);
    w->found += n;
}

static int pii_text(void *ud, enum kt_text_place place, enum kt_role role, const char *text,
                    size_t len, const char **repl, size_t *repl_len)
{
    struct pii_walk *w = ud;
    if (!w->redact) {
        count_entities(w, text, len);
        return 0;
    }
    struct kt_buf *out = &w->c->tmp;
    kt_buf_reset(out);
    size_t count = 0;
    if (kt_pii_redact(text, len, w->mask, out, &count) != 0)
        return -1;
    if (count) {
        count_entities(w, text, len);
        *repl = out->data;
        *repl_len = out->len;
    }
    return 0;
}

static void pii_detail(struct kt_policy_decision *d, const struct pii_walk *w)
{
    size_t n = 0;
    n += (size_t)snprintf(d->detail + n, sizeof d->detail - n, "%zu:", w->found);
    for (int e = 0; e < KT_PII_NENTITIES && n < sizeof d->detail; e++)
        if (w->entities & KT_PII_BIT(e))
            n += (size_t)snprintf(d->detail + n, sizeof d->detail - n, "%s%s",
                                  d->detail[n - 1] == ':' ? "" : ",", kt_pii_entity_name((enum kt_pii_entity)e));
}

/* pii_decide: record what the detector found and block when asked to. */
static void pii_decide(struct kt_policy_result *res, enum kt_pii_action action,
                       const struct pii_walk *w, const char *what)
{
    if (w->found == 0)
        return;
    static const char *const names[] = { [KT_PII_REDACT] = "redact", [KT_PII_BLOCK] = "block",
                                          [KT_PII_FLAG] = "flag" };
    struct kt_policy_decision *d = decide(res, "pii-detector", names[action], -1);
    pii_detail(d, w);
    if (action == KT_PII_BLOCK)
        block(res, "pii-detector", what, d->detail);
}

/* Tool-call arguments are JSON text; redaction markers contain no quote or
 * backslash, so replacing a value inside a JSON string keeps it valid. */
static int pii_tool_inputs(struct pii_walk *w, struct kt_request *req, struct kt_arena *a)
{
    for (size_t i = 0; i < req->nmsgs; i++)
        for (size_t k = 0; k < req->msgs[i].nparts; k++) {
            struct kt_part *p = &req->msgs[i].parts[k];
            if (p->type != KT_PART_TOOL_USE || p->input_json == NULL)
                continue;
            size_t before = w->found;
            const char *r = NULL;
            size_t rl = 0;
            if (pii_text(w, KT_TEXT_MESSAGE, req->msgs[i].role, p->input_json, strlen(p->input_json), &r, &rl) != 0)
                return -1;
            if (r && w->found > before) {
                p->input_json = kt_arena_strndup(a, r, rl);
                req->modified = 1;
            }
        }
    return 0;
}

static int run_pii_request(struct kt_policy_chain *c, struct kt_request *req, struct kt_arena *a,
                           struct kt_policy_result *res)
{
    const struct kt_cfg_pii *o = &c->cfg->policies.pii;
    if (!o->scan_request)
        return 0;
    struct pii_walk w = { .c = c, .mask = o->entities, .redact = o->action == KT_PII_REDACT };
    if (kt_ir_request_texts(req, a, pii_text, &w) < 0 || pii_tool_inputs(&w, req, a) != 0)
        return -1;
    pii_decide(res, o->action, &w, "request");
    return 0;
}

int kt_policy_request(struct kt_policy_chain *c, struct kt_request *req, struct kt_arena *a,
                      struct kt_policy_result *res)
{
    memset(res, 0, sizeof *res);
    for (size_t i = 0; i < c->nsteps && !res->blocked; i++) {
        int rc = c->steps[i] == STEP_INJECTION ? run_injection(c, req, a, res)
                                               : run_pii_request(c, req, a, res);
        if (rc != 0) {
            const char *name = c->steps[i] == STEP_INJECTION ? "prompt-injection" : "pii-detector";
            decide(res, name, "error", -1);
            kt_warn("policy %s failed on a request", name);
            if (c->cfg->policies.fail_mode == KT_FAIL_BLOCK) {
                block(res, name, "request", "the policy could not evaluate it");
                res->http_status = 500;
            }
        }
    }
    return 0;
}

int kt_policy_response(struct kt_policy_chain *c, struct kt_response *resp, struct kt_arena *a,
                       struct kt_policy_result *res)
{
    if (!c->pii_response)
        return 0;
    const struct kt_cfg_pii *o = &c->cfg->policies.pii;
    struct pii_walk w = { .c = c, .mask = o->entities, .redact = o->action == KT_PII_REDACT };
    if (kt_ir_response_texts(resp, a, pii_text, &w) < 0) {
        decide(res, "pii-detector", "error", -1);
        if (c->cfg->policies.fail_mode == KT_FAIL_BLOCK) {
            block(res, "pii-detector", "response", "the policy could not evaluate it");
            res->http_status = 500;
        }
        return 0;
    }
    pii_decide(res, o->action, &w, "response");
    return 0;
}

/* ---- streaming ----------------------------------------------------------- */

struct kt_policy_stream *kt_policy_stream_new(struct kt_policy_chain *c, struct kt_arena *a)
{
    struct kt_policy_stream *ps = kt_arena_alloc(a, sizeof *ps);
    if (ps) {
        ps->c = c;
        ps->a = a;
    }
    return ps;
}

int kt_policy_stream_event(struct kt_policy_stream *ps, struct kt_stream_ev *ev,
                           struct kt_policy_result *res)
{
    if (!ps->c->pii_response || ev->type != KT_EV_TEXT_DELTA)
        return 0;
    const struct kt_cfg_pii *o = &ps->c->cfg->policies.pii;
    int idx = ev->index >= 0 && ev->index < MAX_STREAM_BLOCKS ? ev->index : MAX_STREAM_BLOCKS - 1;
    if (ps->blocks[idx] == NULL) {
        ps->blocks[idx] = kt_arena_alloc(ps->a, sizeof *ps->blocks[idx]);
        if (ps->blocks[idx] == NULL)
            return -1;
        kt_pii_stream_init(ps->blocks[idx], o->entities);
    }
    struct kt_buf *emit = &ps->c->emit;
    kt_buf_reset(emit);
    size_t count = 0;
    if (kt_pii_stream_feed(ps->blocks[idx], ev->text, ev->len, emit, &count) != 0)
        return -1;
    ps->redactions += count;
    if (count && o->action != KT_PII_REDACT) {
        /* flag/block on a stream: the carry-over still found it; report. */
        if (!ps->recorded) {
            ps->recorded = 1;
            struct kt_policy_decision *d = decide(res, "pii-detector", o->action == KT_PII_BLOCK ? "block" : "flag", -1);
            snprintf(d->detail, sizeof d->detail, "stream");
            if (o->action == KT_PII_BLOCK)
                block(res, "pii-detector", "response", "stream");
        }
        return 0;
    }
    if (count && !ps->recorded) {
        ps->recorded = 1;
        struct kt_policy_decision *d = decide(res, "pii-detector", "redact", -1);
        snprintf(d->detail, sizeof d->detail, "stream");
    }
    /* Point the event at the redacted, possibly shorter, text. */
    char *t = kt_arena_strndup(ps->a, emit->data ? emit->data : "", emit->len);
    ev->text = t;
    ev->len = emit->len;
    return 0;
}

int kt_policy_stream_flush(struct kt_policy_stream *ps, int index, struct kt_buf *out)
{
    for (int i = 0; i < MAX_STREAM_BLOCKS; i++) {
        if ((index >= 0 && i != index) || ps->blocks[i] == NULL)
            continue;
        if (kt_pii_stream_pending(ps->blocks[i]) == 0)
            continue;
        size_t count = 0;
        kt_buf_reset(out);
        kt_pii_stream_flush(ps->blocks[i], out, &count);
        ps->redactions += count;
        if (out->len)
            return i;
    }
    return -1;
}

void kt_policy_header(const struct kt_policy_result *res, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < res->nd && n < outlen; i++)
        n += (size_t)snprintf(out + n, outlen - n, "%s%s=%s", i ? ";" : "", res->d[i].policy, res->d[i].action);
}

void kt_policy_result_merge(struct kt_policy_result *into, const struct kt_policy_result *from)
{
    for (size_t i = 0; i < from->nd && into->nd < KT_POLICY_MAX_DECISIONS; i++)
        into->d[into->nd++] = from->d[i];
    if (from->blocked && !into->blocked) {
        into->blocked = 1;
        into->http_status = from->http_status;
        into->policy = from->policy;
        memcpy(into->message, from->message, sizeof into->message);
    }
}

/* policy.h: the policy chain (SPEC §4). Runs policies.chain in order on
 * the canonical IR only, so both wire formats are treated alike:
 *   request phase:  prompt-injection (score, block|flag), pii-detector
 *                   (redact|block|flag on messages, tool arguments and
 *                   tool results);
 *   response phase: pii-detector on the response text, and on streams
 *                   through a bounded carry-over window per content block.
 * audit-logger is not run here: the flow writes one record per request
 * with the decisions collected here. */
#ifndef KT_POLICY_H
#define KT_POLICY_H

#include <stddef.h>

#include "kt/arena.h"
#include "kt/buf.h"
#include "kt/config.h"
#include "kt/ir.h"

#define KT_POLICY_MAX_DECISIONS 8

struct kt_policy_decision {
    const char *policy;       /* "prompt-injection" */
    const char *action;       /* "block", "flag", "redact", "error" */
    char detail[96];          /* "EMAIL x2", "override" */
    double score;             /* < 0 when not scored */
};

struct kt_policy_result {
    int blocked;              /* the request or response must not go on */
    int http_status;          /* 400 for a block, 500 for an error under fail-mode block */
    const char *policy;       /* the policy that blocked */
    char message[256];        /* for the client's error body */
    struct kt_policy_decision d[KT_POLICY_MAX_DECISIONS];
    size_t nd;
};

struct kt_policy_chain;

/* kt_policy_chain_new: per worker, from the immutable config. */
struct kt_policy_chain *kt_policy_chain_new(const struct kt_config *cfg);
void kt_policy_chain_free(struct kt_policy_chain *c);
int kt_policy_chain_has_response_phase(const struct kt_policy_chain *c);

/* Request phase; may rewrite req (sets req->modified). */
int kt_policy_request(struct kt_policy_chain *c, struct kt_request *req, struct kt_arena *a,
                      struct kt_policy_result *res);
/* Response phase for a whole (non-streamed) response. */
int kt_policy_response(struct kt_policy_chain *c, struct kt_response *resp, struct kt_arena *a,
                       struct kt_policy_result *res);

/* Streaming response phase: one per stream. kt_policy_stream_event may
 * change ev->text/len (held-back text comes out later); before a
 * BLOCK_STOP, FINISH or DONE event call kt_policy_stream_flush for the
 * held text of every open block and emit it as text deltas first. */
struct kt_policy_stream;
struct kt_policy_stream *kt_policy_stream_new(struct kt_policy_chain *c, struct kt_arena *a);
int kt_policy_stream_event(struct kt_policy_stream *ps, struct kt_stream_ev *ev,
                           struct kt_policy_result *res);
/* kt_policy_stream_flush: held text of block `index` (or every block when
 * index < 0) into out; returns the block index flushed or -1 when none. */
int kt_policy_stream_flush(struct kt_policy_stream *ps, int index, struct kt_buf *out);

/* kt_policy_header: "prompt-injection=flag;pii-detector=redact" for x-kt-policy. */
void kt_policy_header(const struct kt_policy_result *res, char *out, size_t outlen);
void kt_policy_result_merge(struct kt_policy_result *into, const struct kt_policy_result *from);

#endif

/* audit.h: the audit pipeline. A record is encoded by a worker into one JSON
 * line (kt_audit_record_encode), handed to the worker's non-blocking writer
 * (kt_audit_writer_*), which sends it down the worker slot's socketpair to
 * the audit process (kt_audit_proc_run). The audit process appends complete
 * lines to the log exactly once (a busy socket is read every few ms, so one
 * write carries many records), chains them by SHA-256 when immutable,
 * fsyncs in small batches, rotates and expires files. kt_audit_verify and
 * kt_audit_tail read the result (`kt audit verify|tail`).
 *
 * Not here: config parsing (the caller fills struct kt_audit_opts), spawning
 * and restarting the audit process (the master), deciding whether prompt
 * and completion text may be logged (the caller sets them or leaves NULL). */
#ifndef KT_AUDIT_H
#define KT_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kt/buf.h"

struct event_base;
struct event;

struct kt_audit_opts {
    const char *path;              /* current log file; rotated files sit beside it */
    int immutable;                 /* hash-chain every line */
    int retention_days;            /* <= 0: keep rotated files forever */
    size_t max_file_bytes;         /* 0: no size rotation */
    int fsync_every_ms;            /* <= 0: 1000 */
    size_t fsync_every_records;    /* 0: 100 */
    size_t worker_queue_max_bytes; /* per worker; used by the caller for kt_audit_writer_init */
};

/* ---- records ---------------------------------------------------------- */

struct kt_audit_decision {
    const char *policy;    /* "prompt-injection" */
    const char *action;    /* "block", "flag", "redact", "allow" */
    const char *detail;    /* NULL or e.g. "EMAIL x2" */
    double score;          /* < 0: omitted */
};

struct kt_audit_attempt {
    const char *target;
    int status;            /* HTTP status, 0 when no response */
    uint64_t latency_ms;
    const char *error;     /* NULL or "timeout", "connect", ... */
};

struct kt_audit_usage {
    int64_t input, output, cache_read, cache_creation;
};

/* Every string may be NULL: the field is then omitted. */
struct kt_audit_record {
    uint64_t ts_ms;                /* wall clock, ms since the epoch; 0: now */
    const char *rid;               /* unique record id (kt_audit_writer_rid) */
    const char *request_id;
    const char *client_key_id;
    const char *pack_name, *pack_version;
    const char *endpoint;          /* "/v1/messages" */
    const char *client_format;     /* "anthropic" | "openai" */
    int stream;
    const char *target, *model;
    int status;                    /* HTTP status returned to the client */
    const char *error;
    const struct kt_audit_decision *decisions;
    size_t n_decisions;
    struct kt_audit_usage usage;
    int has_cost;                  /* 0: "cost_usd" omitted (no pricing) */
    double cost_usd;
    uint64_t latency_ms;
    const struct kt_audit_attempt *attempts;
    size_t n_attempts;
    const char *prompt;            /* only when log_all_access and no zero_data_retention */
    const char *completion;
};

/* Prompt and completion are cut so each escaped value fits this many bytes
 * (at a UTF-8 boundary), with "prompt_truncated": true and "prompt_bytes",
 * so a record stays well below the socket buffer and reaches the audit
 * process crash-safely. */
#define KT_AUDIT_TEXT_MAX 16384
/* A safe has_room() estimate for one record (both texts at their cap, a
 * handful of decisions and attempts). */
#define KT_AUDIT_RECORD_ESTIMATE (2 * KT_AUDIT_TEXT_MAX + 8192)

/* kt_audit_record_encode: append one JSON object + "\n" to out. The line
 * starts with {"rid": so the audit process can splice its chain prefix. */
int kt_audit_record_encode(const struct kt_audit_record *rec, struct kt_buf *out);

/* kt_audit_u64_str: v in decimal into out (>= 20 bytes, no NUL); the
 * number of digits. */
size_t kt_audit_u64_str(uint64_t v, char *out);

/* kt_audit_cost_usd: prices are USD per million tokens. */
double kt_audit_cost_usd(double prompt_per_mtok, double completion_per_mtok,
                         int64_t input_tokens, int64_t output_tokens);

/* ---- worker side ------------------------------------------------------ */

struct kt_audit_writer {
    int fd;                        /* worker's end of the slot socketpair (not owned) */
    struct event_base *base;
    struct event *ev;              /* EV_WRITE while the queue is non-empty */
    struct kt_buf q;               /* bytes not yet accepted by the socket */
    size_t qoff;                   /* sent prefix of q */
    size_t queue_max;
    char rid_prefix[17];           /* random per writer: rids stay unique across restarts */
    uint64_t rid_next;
    struct kt_buf scratch;         /* for kt_audit_writer_log */
    uint64_t submitted, refused;   /* counters for /metrics */
};

/* kt_audit_writer_init: fd is made non-blocking. Queues a "\n" first so a
 * line half-written by a previous worker in this slot is terminated (the
 * audit process records it as a fragment, never merges it into ours). */
int kt_audit_writer_init(struct kt_audit_writer *w, int fd, struct event_base *base,
                         size_t queue_max);
/* kt_audit_writer_rid: next record id, "<16 hex>-<n>" (out >= 40 bytes). */
const char *kt_audit_writer_rid(struct kt_audit_writer *w, char *out, size_t outlen);
/* kt_audit_writer_has_room: would a line of `estimate` bytes be accepted?
 * With immutable audit, answer 503 before serving when it would not. */
int kt_audit_writer_has_room(const struct kt_audit_writer *w, size_t estimate);
/* kt_audit_writer_submit: one complete line ending in "\n". Never blocks:
 * sends what the socket takes, queues the rest. KT_EAGAIN (nothing queued)
 * when the queue would exceed queue_max; KT_EINVAL for a line without "\n". */
int kt_audit_writer_submit(struct kt_audit_writer *w, const char *line, size_t len);
/* kt_audit_writer_log: encode rec (a rid is generated when rec->rid is NULL)
 * and submit it. */
int kt_audit_writer_log(struct kt_audit_writer *w, const struct kt_audit_record *rec);
size_t kt_audit_writer_queued(const struct kt_audit_writer *w);
/* kt_audit_writer_flush_blocking: graceful shutdown: wait (poll) until the
 * queue is in the socket or timeout_ms passed. 0, or KT_EAGAIN on timeout. */
int kt_audit_writer_flush_blocking(struct kt_audit_writer *w, int timeout_ms);
void kt_audit_writer_free(struct kt_audit_writer *w);

/* ---- audit process ---------------------------------------------------- */

/* kt_audit_proc_run: the audit process body (call after fork, as that
 * process's main loop). fds: the audit ends of every worker slot's
 * socketpair. Runs until SIGTERM/SIGINT (drains, writes, fsyncs: returns 0)
 * or a fatal error (negative KT_E*). SIGUSR1 reopens the log file. Installs
 * its own signal handlers on its own event base. */
int kt_audit_proc_run(const struct kt_audit_opts *o, const int *fds, size_t nfds);

/* kt_audit_files: the rotated files of `path` (oldest first) then path
 * itself if it exists: the order kt_audit_verify wants. Free with
 * kt_audit_files_free. */
int kt_audit_files(const char *path, char ***out, size_t *n);
void kt_audit_files_free(char **files, size_t n);

/* ---- verify and tail --------------------------------------------------- */

/* kt_audit_verify: check the hash chain across files given oldest first (a
 * path that other paths extend with ".SUFFIX", i.e. the current file, is
 * moved last, so `kt audit verify audit.log*` works). Returns 0 when intact
 * (prints a summary with the last hash, to anchor elsewhere), 1 when broken
 * (prints file:line, seq and what is wrong: changed, removed, inserted,
 * duplicate, reordered, truncated), negative KT_E* when a file can't be read. */
int kt_audit_verify(const char *const *paths, size_t n, FILE *out);

/* kt_audit_tail: print the last n records (n <= 0: all) one per line, then
 * with follow, keep printing appends, across rotation, until a write to out
 * fails or the process is signalled. */
int kt_audit_tail(const char *path, int follow, int n, FILE *out);
/* kt_audit_format_line: one record (a log line) as a readable line, no "\n". */
int kt_audit_format_line(const char *line, size_t len, struct kt_buf *out);

#endif

/* pii.h: the PII detector used by the pii-detector policy. Finds EMAIL,
 * PHONE, CREDIT_CARD, US_SSN, IBAN, IP_ADDRESS and API_KEY values in text,
 * redacts them as "[REDACTED:<ENTITY>]", and does so on streams chunk by
 * chunk with a small fixed carry-over window. Pure functions on bytes: no
 * I/O, no global state. */
#ifndef KT_PII_H
#define KT_PII_H

#include <stddef.h>

struct kt_buf;

enum kt_pii_entity {
    KT_PII_EMAIL,
    KT_PII_PHONE,
    KT_PII_CREDIT_CARD,
    KT_PII_US_SSN,
    KT_PII_IBAN,
    KT_PII_IP_ADDRESS,
    KT_PII_API_KEY,
    KT_PII_NENTITIES
};

#define KT_PII_BIT(e) (1u << (e))
#define KT_PII_ALL ((1u << KT_PII_NENTITIES) - 1u)

/* Longest value any rule can match, and therefore the most a stream ever
 * holds back (plus one byte of right context). */
#define KT_PII_MAX_VALUE 330
#define KT_PII_CARRY 512      /* held-back bytes, ≥ KT_PII_MAX_VALUE + 1 */
#define KT_PII_HIST 80        /* already-emitted bytes kept as left context */
#define KT_PII_CHUNK 512      /* stream buffer room for a chunk scanned in place */

struct kt_pii_match {
    size_t start, end;        /* byte offsets into the scanned text, [start, end) */
    enum kt_pii_entity entity;
};

/* "EMAIL", "PHONE", ...; NULL for an out-of-range value. */
const char *kt_pii_entity_name(enum kt_pii_entity e);
/* kt_pii_entity_parse: a config name (case-insensitive) → entity.
 * Returns 0 or KT_EINVAL for an unknown name. */
int kt_pii_entity_parse(const char *name, enum kt_pii_entity *out);

/* kt_pii_scan: find values of the entities in entity_mask (KT_PII_BIT()s),
 * left to right, non-overlapping. Stores at most max matches in out (NULL
 * when max is 0: just count, e.g. for action: block/flag); *n receives the
 * total number found (may exceed max). Returns 0. */
int kt_pii_scan(const char *text, size_t len, unsigned entity_mask,
                struct kt_pii_match *out, size_t max, size_t *n);

/* kt_pii_redact: append text to out with every value replaced by
 * "[REDACTED:<ENTITY>]". *count (may be NULL) receives how many values were
 * replaced. Returns 0 or KT_ENOMEM. */
int kt_pii_redact(const char *text, size_t len, unsigned mask,
                  struct kt_buf *out, size_t *count);

/* Streaming redaction. Fixed size, no heap: hold back only a trailing run
 * that could still become (part of) a value; everything before it is
 * emitted at once. Feeding a text in any chunks and then flushing emits
 * exactly what kt_pii_redact emits for the whole text. Use one stream per
 * independent text (a content block, one tool call's arguments): a feed
 * may emit nothing (all held), and flush belongs before the block ends. */
struct kt_pii_stream {
    unsigned mask;
    unsigned trig;            /* internal: byte classes that can start a value */
    size_t hist_len, pend_len;
    /* hist_len raw bytes of left context (already emitted), then pend_len
     * raw bytes held back; a small chunk is appended here and scanned in
     * place, so the common feed copies little */
    char buf[KT_PII_HIST + KT_PII_CARRY + KT_PII_CHUNK];
};

void kt_pii_stream_init(struct kt_pii_stream *s, unsigned mask);
/* kt_pii_stream_feed: append to emit the redacted text that is safe to send
 * now. *count (may be NULL) receives the values redacted by this call.
 * A chunk too big for the stream's buffer is staged in emit's spare
 * capacity; only emit ever grows.
 * Returns 0 or KT_ENOMEM. */
int kt_pii_stream_feed(struct kt_pii_stream *s, const char *chunk, size_t len,
                       struct kt_buf *emit, size_t *count);
/* kt_pii_stream_flush: end of stream; emits what was held back. The stream
 * is then empty and can be reused. */
int kt_pii_stream_flush(struct kt_pii_stream *s, struct kt_buf *emit, size_t *count);
/* bytes currently held back (for tests and metrics). */
size_t kt_pii_stream_pending(const struct kt_pii_stream *s);

#endif

/* injection.h: the prompt-injection detector. A pure, rule-based scorer
 * (no sockets, no global state) the policy chain calls on each request's
 * user and tool text. The text is normalised (case, whitespace, accents,
 * homoglyphs, fullwidth forms, leetspeak, zero-width characters), matched
 * against weighted signals, and encoded payloads (base64, hex, \u / \x / %
 * escapes, rot13) are decoded and rescanned. The weights of the rules that
 * fired combine by noisy-OR into a score in [0,1]: one strong signal
 * crosses the default threshold, weak ones need corroboration. */
#ifndef KT_INJECTION_H
#define KT_INJECTION_H

#include <stddef.h>
#include <stdint.h>

#define KT_INJECTION_DEFAULT_THRESHOLD 0.7
/* Texts longer than this are scored on their first and last halves of it,
 * so a huge body costs bounded time and scratch memory. */
#define KT_INJECTION_DEFAULT_MAX_SCAN (512u * 1024u)

/* Signal families (bits of kt_injection_result.signals). */
enum kt_injection_signal {
    KT_INJ_OVERRIDE    = 1u << 0,  /* "ignore previous instructions" and kin */
    KT_INJ_JAILBREAK   = 1u << 1,  /* DAN, developer mode, "no restrictions" */
    KT_INJ_EXTRACTION  = 1u << 2,  /* "repeat your system prompt" */
    KT_INJ_DELIMITER   = 1u << 3,  /* </system>, <|im_start|>, [INST], ### Instruction: */
    KT_INJ_ROLE_TOKEN  = 1u << 4,  /* "System:" / "Assistant:" at line start */
    KT_INJ_ENCODED     = 1u << 5,  /* base64/hex/escapes decoding to instructions */
    KT_INJ_OBFUSCATION = 1u << 6,  /* zero-width in words, mixed scripts, leetspeak */
    KT_INJ_INDIRECT    = 1u << 7,  /* text addressing "the AI reading this", authority claims */
};
#define KT_INJECTION_NSIGNALS 8

struct kt_injection_result {
    double score;            /* [0,1]; compare with the configured threshold */
    unsigned signals;        /* bitmask of enum kt_injection_signal */
    const char *top_signal;  /* name of the strongest signal, "none" if none */
    size_t scanned;          /* bytes actually examined (< len when truncated) */
};

struct kt_inj_tok;
struct kt_inj_index;

/* Reusable working memory: init once per worker (or thread), pass to every
 * call; buffers grow to the largest text seen (bounded by max_scan) and are
 * kept. Not shared between threads. */
struct kt_injection_scratch {
    size_t max_scan;         /* bytes scored per text; 0 = default */
    uint32_t *cps;  size_t cps_cap;     /* code points of a non-ASCII token */
    uint8_t *alt;   size_t alt_cap;     /* their homoglyph latin letters, 0 = none */
    char *fold;     size_t fold_cap;    /* folded text, punctuation kept */
    char *words;    size_t words_cap;   /* " tok tok " view, leetspeak mapped */
    char *squash;   size_t squash_cap;  /* spaced-out letters joined */
    char *dec;      size_t dec_cap;     /* decoded payload being rescanned */
    struct kt_inj_tok *toks; size_t toks_cap;
    uint32_t *keytoks; size_t keytoks_cap;  /* tokens with concept bits or phrases */
    struct kt_inj_index *index;         /* word dictionary, built at init */
};

int kt_injection_scratch_init(struct kt_injection_scratch *s);
void kt_injection_scratch_free(struct kt_injection_scratch *s);

/* kt_injection_score: score text (len bytes, UTF-8; invalid bytes are
 * tolerated). Returns 0, or KT_EINVAL for a NULL argument, KT_ENOMEM when
 * the scratch cannot grow. */
int kt_injection_score(const char *text, size_t len,
                       struct kt_injection_scratch *scratch,
                       struct kt_injection_result *out);

/* kt_injection_flagged: 1 when the result reaches the threshold. */
int kt_injection_flagged(const struct kt_injection_result *r, double threshold);

/* kt_injection_signal_name: stable name of one signal bit, for audit
 * ("instruction_override", ...); "unknown" for anything else. */
const char *kt_injection_signal_name(unsigned bit);

/* kt_injection_signals_format: "a,b,c" names of a bitmask into out. */
const char *kt_injection_signals_format(unsigned signals, char *out, size_t outlen);

#endif

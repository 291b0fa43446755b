/* config.h: the typed, immutable configuration built from one or more YAML
 * files (SPEC §2). kt_cfg_load parses, layers, fills defaults and validates;
 * every problem found is reported as FILE:LINE:COL. The result is plain
 * structs, built once in the master and inherited by children through fork;
 * nothing here is modified after load and nothing here re-reads YAML.
 * All strings and arrays belong to the config and die with kt_cfg_free. */
#ifndef KT_CONFIG_H
#define KT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kt/err.h"
#include "kt/log.h"

/* ---- small value types ------------------------------------------------ */

#include "kt/format.h"   /* enum kt_format, shared with the wire codecs */

enum kt_strategy {
    KT_STRAT_SINGLE,          /* "single" */
    KT_STRAT_FALLBACK,        /* "fallback" */
    KT_STRAT_WRR,             /* "weighted_round_robin" */
    KT_STRAT_LEAST_LATENCY,   /* "least_latency" */
};

enum kt_provider_kind {
    KT_PROV_ANTHROPIC,        /* "anthropic", "anthropic:messages:MODEL" */
    KT_PROV_OPENAI,           /* "openai", "openai:chat:MODEL" */
    KT_PROV_MOCK,             /* "mock": built-in mock, no network, no key */
    KT_PROV_CLAUDE_AGENT_SDK, /* "anthropic:claude-agent-sdk:MODEL" */
    KT_PROV_OTHER,            /* "openai-compatible", "vllm", "ollama", "llamacpp",
                                 "custom": needs base_url, no default key */
};

struct kt_strlist {
    char **v;
    size_t n;
};

struct kt_header_kv {
    char *name, *value;
};

struct kt_listen {
    char host[256];           /* "" = all addresses (":8080"); IPv6 without brackets */
    int port;
};

struct kt_rate_limit {        /* 0 = unlimited */
    int requests_per_minute;
    int tokens_per_minute;
};

/* ---- targets (providers.targets[]) ------------------------------------ */

struct kt_data_policy {
    int has;                  /* data_policy: present */
    int zero_data_retention;  /* also accepted as `zdr` */
    int training_opt_out;
    int retention_days;       /* 0 = not stated */
};

struct kt_pricing {
    int has;
    double prompt, completion;   /* USD per 1M tokens */
};

struct kt_health_probe {
    int enabled;              /* health_probe: present and enabled != false */
    int interval_seconds;     /* 30 */
    int timeout_seconds;      /* 5 */
    char *path;               /* "/v1/models" */
    int healthy_threshold;    /* 2 */
    int unhealthy_threshold;  /* 3 */
};

/* Claude Agent SDK runner fields (only meaningful for KT_PROV_CLAUDE_AGENT_SDK). */
struct kt_agent_sdk {
    char *path_to_claude_code_executable;  /* NULL = "claude" in PATH */
    char *working_dir;
    char *permission_mode;    /* default | acceptEdits | plan | bypassPermissions; NULL = unset */
    int max_turns;            /* 0 = unset */
    int allow_all_tools;
    struct kt_strlist append_allowed_tools;
    struct kt_strlist disallowed_tools;
    char *fallback_model;
    struct kt_strlist additional_directories;
    struct kt_header_kv *cli_env;
    size_t ncli_env;
};

struct kt_target {
    char *id;
    char *provider;           /* as written, e.g. "anthropic:messages:claude-..." */
    enum kt_provider_kind provider_kind;
    char *model;
    char *base_url;           /* provider default filled in; NULL for mock/agent sdk */
    /* api_key: the resolved secret; NULL = send no auth header. NEVER log it.
     * secret_key_ref.env given: that variable must be set (else a config
     * error). No secret_key_ref: anthropic, openai and the agent SDK pick
     * up ANTHROPIC_API_KEY / OPENAI_API_KEY when set (secret_env says so),
     * otherwise no key; mock and OpenAI-compatible targets never guess. */
    char *api_key;
    char *secret_env;         /* env var the key came from; NULL if none */
    char *api_key_header;     /* "x-api-key" / "Authorization" */
    char *api_key_prefix;     /* "" / "Bearer " */
    char *anthropic_version;  /* "2023-06-01" */
    int timeout_seconds;      /* 60 */
    int stream_timeout_seconds;  /* falls back to timeout_seconds */
    int max_context_tokens;   /* 0 = unset */
    int max_messages;         /* 0 = unset */
    struct kt_header_kv *headers;
    size_t nheaders;
    enum kt_format format;
    char *provider_type;      /* as written or derived from the provider */
    char *description;        /* NULL = none */
    double weight;            /* 1.0, > 0 */
    struct kt_data_policy data_policy;
    struct kt_pricing pricing;
    struct kt_health_probe health_probe;
    struct kt_rate_limit rate_limit;
    struct kt_agent_sdk agent;
    /* where the target's mapping starts, for messages from later stages */
    const char *src_file;
    int src_line, src_col;
};

/* ---- server ----------------------------------------------------------- */

struct kt_client_key {
    char *id;
    char *sha256;             /* 64 lowercase hex chars of SHA-256(key) */
    struct kt_strlist models; /* empty = any model */
    struct kt_rate_limit rate_limit;
};

struct kt_server {
    struct kt_listen *listen; /* default one: 127.0.0.1:8080 */
    size_t nlisten;
    int workers;              /* 0 = auto (number of CPUs) */
    char *tls_cert, *tls_key; /* both NULL = no TLS */
    int auth_enabled;         /* server.auth present: clients must present a key */
    struct kt_client_key *keys;
    size_t nkeys;
    size_t max_body_bytes;    /* 10485760 */
    size_t max_header_bytes;  /* 65536 */
    char *state_dir;          /* /var/lib/keeptrusts */
    enum kt_log_level log_level;  /* info */
    int log_json;             /* format: json (1) | text (0, default) */
    char *log_file;           /* "stderr" default */
    int shutdown_timeout_seconds;   /* 30 */
    int read_timeout_seconds;       /* 60 */
    int keepalive_timeout_seconds;  /* 75 */
    int max_connections;            /* 4096 */
    char *user;               /* NULL = don't drop privileges */
};

/* ---- policies --------------------------------------------------------- */

enum kt_fail_mode { KT_FAIL_BLOCK, KT_FAIL_ALLOW };
enum kt_pi_action { KT_PI_BLOCK, KT_PI_FLAG };
enum kt_pii_action { KT_PII_REDACT, KT_PII_BLOCK, KT_PII_FLAG };

/* PII entities and KT_PII_BIT() come from the detector itself. */
#include "kt/pii.h"

struct kt_cfg_injection {     /* policy.prompt-injection */
    enum kt_pi_action action; /* block */
    double threshold;         /* 0.7, in [0,1] */
};

struct kt_cfg_pii {           /* policy.pii-detector */
    enum kt_pii_action action;    /* redact */
    unsigned entities;        /* KT_PII_BIT(entity) bits, default KT_PII_ALL */
    int scan_request, scan_response;  /* both 1 by default */
};

struct kt_cfg_audit {         /* policy.audit-logger */
    int immutable;            /* false */
    int retention_days;       /* 0 = keep forever */
    int log_all_access;       /* false */
    char *path;               /* /var/log/keeptrusts/audit.log */
    int fsync_batch;          /* records per fsync, 64 */
    uint64_t max_file_bytes;  /* rotate past this; 104857600 (100 MiB), 0 = never */
};

struct kt_policies {
    struct kt_strlist chain;  /* policy names in order; each is a known one */
    enum kt_fail_mode fail_mode;  /* policies.fail_mode, block */
    struct kt_cfg_injection injection;
    struct kt_cfg_pii pii;
    struct kt_cfg_audit audit;
};

/* ---- providers (routing) ---------------------------------------------- */

#define KT_CFG_MAX_RETRY_STATUS 32

struct kt_retry {
    int max_attempts;         /* total attempts; 1 (no retry) when `retry:` absent, 3 when present */
    int backoff_ms;           /* 200 */
    int max_backoff_ms;       /* 5000 */
    int statuses[KT_CFG_MAX_RETRY_STATUS];   /* default 429 500 502 503 504 */
    size_t nstatuses;
    int on_timeout, on_connect;   /* default both 1 */
};

struct kt_breaker {
    int enabled;              /* only when circuit_breaker: is present */
    int failure_threshold;    /* 5 */
    int window_seconds;       /* 30 */
    int cooldown_seconds;     /* 30 */
    int half_open_requests;   /* 1 */
};

struct kt_providers {
    enum kt_strategy strategy;    /* single */
    struct kt_retry retry;
    struct kt_breaker breaker;
    struct kt_target *targets;    /* at least one */
    size_t ntargets;
};

struct kt_pack {
    char *name;               /* "default" when absent */
    char *version;            /* "0.0.0" when absent */
    int enabled;              /* true */
};

struct kt_cfg_priv;

struct kt_config {
    struct kt_strlist files;  /* the source files, in layering order */
    struct kt_pack pack;
    struct kt_server server;
    struct kt_policies policies;
    struct kt_providers providers;
    struct kt_cfg_priv *priv; /* owns the memory */
};

/* ---- errors ----------------------------------------------------------- */

#define KT_CFG_MAX_ERRORS 100

/* Every error found, in file order; capped at KT_CFG_MAX_ERRORS (dropped
 * counts the rest). Zero-initialise before use. */
struct kt_cfg_errors {
    struct kt_err *v;
    size_t n, cap;
    size_t dropped;
};

void kt_cfg_errors_free(struct kt_cfg_errors *errs);
/* kt_cfg_errors_print: one "FILE:LINE:COL: message" line per error. */
void kt_cfg_errors_print(const struct kt_cfg_errors *errs, FILE *out);

/* ---- loading ---------------------------------------------------------- */

/* kt_cfg_load: read paths[0..npaths) in order; later files layer over
 * earlier ones (mappings merge key by key, lists and scalars replace).
 * Returns 0 and sets *out, or KT_EINVAL (config errors) / KT_EIO (file
 * unreadable) / KT_ENOMEM with every problem in errs and *out NULL.
 * errs may be NULL. */
int kt_cfg_load(const char *const *paths, size_t npaths, struct kt_config **out,
                struct kt_cfg_errors *errs);
/* kt_cfg_load_string: the same for one in-memory document named name. */
int kt_cfg_load_string(const char *name, const char *yaml, size_t len,
                       struct kt_config **out, struct kt_cfg_errors *errs);
void kt_cfg_free(struct kt_config *cfg);

/* The embedded conf/quickstart.yaml (two mock targets on 127.0.0.1:8080),
 * for `kt gateway run` without --policy-config. */
extern const char kt_cfg_quickstart_yaml[];
extern const size_t kt_cfg_quickstart_yaml_len;
int kt_cfg_load_quickstart(struct kt_config **out, struct kt_cfg_errors *errs);

/* kt_cfg_dump: the effective config as YAML, defaults filled in, api keys
 * printed as "****" (client key sha256 hashes are kept). */
int kt_cfg_dump(const struct kt_config *cfg, FILE *out);

/* ---- lookups and helpers ---------------------------------------------- */

/* kt_cfg_find_target: by id first, then the first target whose model matches. */
const struct kt_target *kt_cfg_find_target(const struct kt_config *cfg, const char *id_or_model);
/* kt_cfg_has_policy: 1 if name is in policies.chain. */
int kt_cfg_has_policy(const struct kt_config *cfg, const char *name);
/* kt_cfg_retry_status: 1 if an upstream HTTP status should be retried. */
int kt_cfg_retry_status(const struct kt_retry *r, int status);

/* kt_cfg_parse_listen: "127.0.0.1:8080", "0.0.0.0:41002", "[::1]:8080",
 * ":8080" (all addresses), "localhost:80". Port 0..65535 is required. */
int kt_cfg_parse_listen(const char *s, struct kt_listen *out, struct kt_err *err);
/* kt_cfg_format_listen: back to text ("[::1]:8080" for IPv6). */
const char *kt_cfg_format_listen(const struct kt_listen *l, char *out, size_t outlen);

const char *kt_cfg_format_name(enum kt_format f);            /* "openai" */
const char *kt_cfg_strategy_name(enum kt_strategy s);        /* "weighted_round_robin" */
const char *kt_cfg_provider_kind_name(enum kt_provider_kind k);  /* "claude_agent_sdk" */
const char *kt_cfg_pii_entity_name(unsigned bit);             /* KT_PII_BIT(..) → "CREDIT_CARD" */

#endif

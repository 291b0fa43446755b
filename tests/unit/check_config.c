/* check_config: the config loader: every shipped config loads, defaults,
 * provider defaults and shorthands, layering, each error kind at its exact
 * line:col, secret masking, dump round trip, listen address parsing. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kt/config.h"

#ifndef KT_TEST_SRCDIR
#define KT_TEST_SRCDIR "."
#endif

#define SECRET_A "sk-ant-test-SECRET-aaaa"
#define SECRET_O "sk-openai-test-SECRET-oooo"

static const char *srcdir(void)
{
    const char *s = getenv("KT_SRCDIR");
    return s && *s ? s : KT_TEST_SRCDIR;
}

static void set_keys(void)
{
    setenv("ANTHROPIC_API_KEY", SECRET_A, 1);
    setenv("OPENAI_API_KEY", SECRET_O, 1);
    unsetenv("KT_TEST_UNSET_VAR");
}

static int load(const char *yaml, struct kt_config **cfg, struct kt_cfg_errors *e)
{
    memset(e, 0, sizeof *e);
    return kt_cfg_load_string("t.yaml", yaml, strlen(yaml), cfg, e);
}

/* find_err: the error at line:col whose message contains want, or NULL. */
static const struct kt_err *find_err(const struct kt_cfg_errors *e, int line, int col, const char *want)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->v[i].line == line && e->v[i].col == col && strstr(e->v[i].msg, want))
            return &e->v[i];
    return NULL;
}

static void dump_errs(const struct kt_cfg_errors *e)
{
    kt_cfg_errors_print(e, stderr);
}

/* expect_error: yaml fails to load with an error at line:col containing want. */
static void expect_error(const char *yaml, int line, int col, const char *want)
{
    struct kt_config *cfg = (struct kt_config *)1;
    struct kt_cfg_errors e;
    int rc = load(yaml, &cfg, &e);
    ck_assert_int_eq(rc, KT_EINVAL);
    ck_assert_ptr_null(cfg);
    if (!find_err(&e, line, col, want)) {
        fprintf(stderr, "wanted %d:%d '%s', got:\n", line, col, want);
        dump_errs(&e);
    }
    ck_assert_ptr_nonnull(find_err(&e, line, col, want));
    ck_assert_str_eq(e.v[0].file, "t.yaml");
    kt_cfg_errors_free(&e);
}

static char *dump_str(const struct kt_config *cfg)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(kt_cfg_dump(cfg, f), 0);
    fclose(f);
    return s;
}

static const char *MIN_TARGET =
    "providers:\n"
    "  targets:\n"
    "    - id: a\n"
    "      provider: anthropic\n"
    "      model: claude-sonnet-4-20250514\n";

/* ---- shipped configs ---------------------------------------------------- */

static void load_file_ok(const char *path)
{
    struct kt_config *cfg = NULL;
    struct kt_cfg_errors e = { 0 };
    const char *paths[] = { path };
    int rc = kt_cfg_load(paths, 1, &cfg, &e);
    if (rc != 0) {
        fprintf(stderr, "%s failed:\n", path);
        dump_errs(&e);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(e.n, 0);
    ck_assert_uint_ge(cfg->providers.ntargets, 1);
    /* The dump is valid config that loads back to the same dump. */
    char *d1 = dump_str(cfg);
    struct kt_config *cfg2 = NULL;
    rc = kt_cfg_load_string("dump.yaml", d1, strlen(d1), &cfg2, &e);
    if (rc != 0) {
        fprintf(stderr, "dump of %s does not reload:\n%s\n", path, d1);
        dump_errs(&e);
    }
    ck_assert_int_eq(rc, 0);
    char *d2 = dump_str(cfg2);
    /* Only the "# sources:" line differs. */
    ck_assert_str_eq(strchr(strstr(d1, "# sources:"), '\n'), strchr(strstr(d2, "# sources:"), '\n'));
    ck_assert_ptr_null(strstr(d1, SECRET_A));
    ck_assert_ptr_null(strstr(d1, SECRET_O));
    free(d1);
    free(d2);
    kt_cfg_free(cfg2);
    kt_cfg_free(cfg);
    kt_cfg_errors_free(&e);
}

/* load_dir: every *.yaml in dir loads; returns how many there were. */
static int load_dir(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".yaml"))
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        load_file_ok(path);
        n++;
    }
    closedir(d);
    return n;
}

START_TEST(test_every_example_loads)
{
    set_keys();
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/conf/examples", srcdir());
    ck_assert_int_ge(load_dir(dir), 13);
    snprintf(dir, sizeof dir, "%s/conf", srcdir());
    ck_assert_int_ge(load_dir(dir), 2);   /* quickstart.yaml, policy.yaml */
}
END_TEST

START_TEST(test_seed_examples_typed)
{
    set_keys();
    char path[4096];
    struct kt_config *cfg;
    struct kt_cfg_errors e = { 0 };
    const char *p[] = { path };

    snprintf(path, sizeof path, "%s/conf/examples/anthropic-gateway.yaml", srcdir());
    ck_assert_int_eq(kt_cfg_load(p, 1, &cfg, &e), 0);
    ck_assert_str_eq(cfg->pack.name, "anthropic-gateway");
    ck_assert_uint_eq(cfg->policies.chain.n, 3);
    ck_assert_str_eq(cfg->policies.chain.v[1], "pii-detector");
    ck_assert_int_eq(kt_cfg_has_policy(cfg, "audit-logger"), 1);
    const struct kt_target *t = kt_cfg_find_target(cfg, "anthropic-sonnet");
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t->api_key, SECRET_A);
    ck_assert_str_eq(t->secret_env, "ANTHROPIC_API_KEY");
    ck_assert_int_eq(t->format, KT_FMT_ANTHROPIC);
    ck_assert_ptr_eq(kt_cfg_find_target(cfg, "claude-sonnet-4-20250514"), t);
    ck_assert_ptr_null(kt_cfg_find_target(cfg, "nope"));
    kt_cfg_free(cfg);

    snprintf(path, sizeof path, "%s/conf/examples/anthropic-providers-6.yaml", srcdir());
    ck_assert_int_eq(kt_cfg_load(p, 1, &cfg, &e), 0);
    t = &cfg->providers.targets[0];
    ck_assert_int_eq(t->provider_kind, KT_PROV_CLAUDE_AGENT_SDK);
    ck_assert_ptr_null(t->base_url);
    ck_assert_str_eq(t->agent.permission_mode, "default");
    ck_assert_int_eq(t->agent.max_turns, 20);
    ck_assert_uint_eq(t->agent.disallowed_tools.n, 2);
    ck_assert_str_eq(t->agent.disallowed_tools.v[0], "Bash");
    ck_assert_uint_eq(t->agent.ncli_env, 1);
    ck_assert_str_eq(t->agent.cli_env[0].value, "1");
    kt_cfg_free(cfg);

    snprintf(path, sizeof path, "%s/conf/examples/anthropic-providers-10.yaml", srcdir());
    ck_assert_int_eq(kt_cfg_load(p, 1, &cfg, &e), 0);
    ck_assert_int_eq(cfg->providers.strategy, KT_STRAT_FALLBACK);
    ck_assert_int_eq(cfg->providers.targets[1].format, KT_FMT_OPENAI);
    ck_assert_str_eq(cfg->providers.targets[1].api_key, SECRET_O);
    ck_assert_str_eq(cfg->providers.targets[1].api_key_prefix, "Bearer ");
    kt_cfg_free(cfg);

    snprintf(path, sizeof path, "%s/conf/examples/client-auth.yaml", srcdir());
    ck_assert_int_eq(kt_cfg_load(p, 1, &cfg, &e), 0);
    ck_assert_int_eq(cfg->server.auth_enabled, 1);
    ck_assert_uint_eq(cfg->server.nkeys, 2);
    ck_assert_str_eq(cfg->server.keys[1].sha256,
                     "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752");
    ck_assert_uint_eq(cfg->server.max_body_bytes, 4u << 20);
    ck_assert_uint_eq(cfg->server.nlisten, 2);
    ck_assert_str_eq(cfg->server.listen[1].host, "::1");
    ck_assert_int_eq(cfg->server.log_json, 1);
    ck_assert_int_eq(cfg->server.log_level, KT_LOG_WARN);
    kt_cfg_free(cfg);
    kt_cfg_errors_free(&e);
}
END_TEST

START_TEST(test_quickstart_embedded)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/conf/quickstart.yaml", srcdir());
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char file[65536];
    size_t n = fread(file, 1, sizeof file, f);
    fclose(f);
    ck_assert_uint_eq(n, kt_cfg_quickstart_yaml_len);
    ck_assert_int_eq(memcmp(file, kt_cfg_quickstart_yaml, n), 0);

    unsetenv("ANTHROPIC_API_KEY");
    unsetenv("OPENAI_API_KEY");
    struct kt_config *cfg;
    struct kt_cfg_errors e = { 0 };
    ck_assert_int_eq(kt_cfg_load_quickstart(&cfg, &e), 0);
    ck_assert_uint_eq(cfg->server.nlisten, 1);
    ck_assert_str_eq(cfg->server.listen[0].host, "127.0.0.1");
    ck_assert_int_eq(cfg->server.listen[0].port, 8080);
    ck_assert_uint_eq(cfg->providers.ntargets, 2);
    const struct kt_target *a = kt_cfg_find_target(cfg, "mock-gpt");
    const struct kt_target *b = kt_cfg_find_target(cfg, "mock-claude");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(a->provider_kind, KT_PROV_MOCK);
    ck_assert_int_eq(a->format, KT_FMT_OPENAI);
    ck_assert_int_eq(b->format, KT_FMT_ANTHROPIC);
    ck_assert_ptr_null(a->api_key);
    ck_assert_ptr_null(a->base_url);
    ck_assert_uint_eq(cfg->policies.chain.n, 3);
    ck_assert_int_eq(strncmp(cfg->policies.audit.path, "/tmp/", 5), 0);
    ck_assert_int_eq(strncmp(cfg->server.state_dir, "/tmp/", 5), 0);
    kt_cfg_free(cfg);
}
END_TEST

/* The installed /etc/keeptrusts/policy.yaml must pass `ktd -t` on a fresh
 * install, before any API key is configured. */
START_TEST(test_policy_yaml_loads_without_keys)
{
    unsetenv("ANTHROPIC_API_KEY");
    unsetenv("OPENAI_API_KEY");
    char path[4096];
    snprintf(path, sizeof path, "%s/conf/policy.yaml", srcdir());
    const char *p[] = { path };
    struct kt_config *cfg;
    struct kt_cfg_errors e = { 0 };
    int rc = kt_cfg_load(p, 1, &cfg, &e);
    if (rc)
        dump_errs(&e);
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_null(cfg->providers.targets[0].api_key);
    ck_assert_int_eq(cfg->providers.breaker.enabled, 1);
    ck_assert_int_eq(cfg->providers.retry.max_attempts, 3);
    ck_assert_str_eq(cfg->server.user, "keeptrusts");
    kt_cfg_free(cfg);
}
END_TEST

/* ---- defaults ----------------------------------------------------------- */

START_TEST(test_defaults)
{
    set_keys();
    struct kt_config *cfg;
    struct kt_cfg_errors e;
    ck_assert_int_eq(load(MIN_TARGET, &cfg, &e), 0);
    ck_assert_str_eq(cfg->pack.name, "default");
    ck_assert_int_eq(cfg->pack.enabled, 1);
    const struct kt_server *s = &cfg->server;
    ck_assert_uint_eq(s->nlisten, 1);
    ck_assert_str_eq(s->listen[0].host, "127.0.0.1");
    ck_assert_int_eq(s->listen[0].port, 8080);
    ck_assert_int_eq(s->workers, 0);
    ck_assert_int_eq(s->auth_enabled, 0);
    ck_assert_ptr_null(s->tls_cert);
    ck_assert_uint_eq(s->max_body_bytes, 10485760);
    ck_assert_uint_eq(s->max_header_bytes, 65536);
    ck_assert_str_eq(s->state_dir, "/var/lib/keeptrusts");
    ck_assert_int_eq(s->log_level, KT_LOG_INFO);
    ck_assert_int_eq(s->log_json, 0);
    ck_assert_str_eq(s->log_file, "stderr");
    ck_assert_int_eq(s->shutdown_timeout_seconds, 30);
    ck_assert_int_eq(s->read_timeout_seconds, 60);
    ck_assert_int_eq(s->keepalive_timeout_seconds, 75);
    ck_assert_int_eq(s->max_connections, 4096);

    const struct kt_policies *p = &cfg->policies;
    ck_assert_uint_eq(p->chain.n, 0);
    ck_assert_int_eq(p->fail_mode, KT_FAIL_BLOCK);
    ck_assert_int_eq(p->injection.action, KT_PI_BLOCK);
    ck_assert(p->injection.threshold == 0.7);
    ck_assert_int_eq(p->pii.action, KT_PII_REDACT);
    ck_assert_uint_eq(p->pii.entities, KT_PII_ALL);
    ck_assert_int_eq(p->pii.scan_request, 1);
    ck_assert_int_eq(p->pii.scan_response, 1);
    ck_assert_int_eq(p->audit.immutable, 0);
    ck_assert_str_eq(p->audit.path, "/var/log/keeptrusts/audit.log");

    const struct kt_providers *r = &cfg->providers;
    ck_assert_int_eq(r->strategy, KT_STRAT_SINGLE);
    ck_assert_int_eq(r->retry.max_attempts, 1);
    ck_assert_int_eq(kt_cfg_retry_status(&r->retry, 503), 1);
    ck_assert_int_eq(kt_cfg_retry_status(&r->retry, 400), 0);
    ck_assert_int_eq(r->breaker.enabled, 0);

    const struct kt_target *t = &r->targets[0];
    ck_assert_int_eq(t->provider_kind, KT_PROV_ANTHROPIC);
    ck_assert_str_eq(t->base_url, "https://api.anthropic.com");
    ck_assert_str_eq(t->api_key_header, "x-api-key");
    ck_assert_str_eq(t->api_key_prefix, "");
    ck_assert_str_eq(t->anthropic_version, "2023-06-01");
    ck_assert_int_eq(t->timeout_seconds, 60);
    ck_assert_int_eq(t->stream_timeout_seconds, 60);
    ck_assert_int_eq(t->max_context_tokens, 0);
    ck_assert_int_eq(t->format, KT_FMT_ANTHROPIC);
    ck_assert_str_eq(t->provider_type, "anthropic");
    ck_assert(t->weight == 1.0);
    ck_assert_int_eq(t->health_probe.enabled, 0);
    ck_assert_int_eq(t->data_policy.has, 0);
    ck_assert_int_eq(t->pricing.has, 0);
    /* No secret_key_ref: the default env var is auto-detected. */
    ck_assert_str_eq(t->api_key, SECRET_A);
    ck_assert_str_eq(t->secret_env, "ANTHROPIC_API_KEY");
    ck_assert_str_eq(t->src_file, "t.yaml");
    ck_assert_int_eq(t->src_line, 3);
    ck_assert_int_eq(t->src_col, 7);
    kt_cfg_free(cfg);
}
END_TEST

START_TEST(test_section_defaults_when_present)
{
    set_keys();
    struct kt_config *cfg;
    struct kt_cfg_errors e;
    char y[2048];
    snprintf(y, sizeof y, "%s"
             "  retry: {}\n"
             "  circuit_breaker: {}\n"
             "server:\n"
             "  workers: 3\n"
             "  max_body_bytes: 1m\n"
             "policy:\n"
             "  pii-detector: {entities: [EMAIL, IBAN], scan: [response]}\n",
             MIN_TARGET);
    int rc = load(y, &cfg, &e);
    if (rc)
        dump_errs(&e);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(cfg->providers.retry.max_attempts, 3);
    ck_assert_int_eq(cfg->providers.retry.backoff_ms, 200);
    ck_assert_int_eq(cfg->providers.retry.on_timeout, 1);
    ck_assert_int_eq(cfg->providers.breaker.enabled, 1);
    ck_assert_int_eq(cfg->providers.breaker.failure_threshold, 5);
    ck_assert_int_eq(cfg->server.workers, 3);
    ck_assert_uint_eq(cfg->server.max_body_bytes, 1048576);
    ck_assert_uint_eq(cfg->policies.pii.entities, KT_PII_BIT(KT_PII_EMAIL) | KT_PII_BIT(KT_PII_IBAN));
    ck_assert_int_eq(cfg->policies.pii.scan_request, 0);
    ck_assert_int_eq(cfg->policies.pii.scan_response, 1);
    kt_cfg_free(cfg);

    snprintf(y, sizeof y, "%s"
             "  retry: {max_attempts: 2, retry_on: [429, timeout]}\n"
             "  circuit_breaker: {enabled: false}\n", MIN_TARGET);
    ck_assert_int_eq(load(y, &cfg, &e), 0);
    ck_assert_int_eq(cfg->providers.retry.max_attempts, 2);
    ck_assert_uint_eq(cfg->providers.retry.nstatuses, 1);
    ck_assert_int_eq(kt_cfg_retry_status(&cfg->providers.retry, 500), 0);
    ck_assert_int_eq(cfg->providers.retry.on_timeout, 1);
    ck_assert_int_eq(cfg->providers.retry.on_connect, 0);
    ck_assert_int_eq(cfg->providers.breaker.enabled, 0);
    kt_cfg_free(cfg);
}
END_TEST

/* ---- providers ---------------------------------------------------------- */

START_TEST(test_provider_defaults_and_shorthand)
{
    set_keys();
    struct kt_config *cfg;
    struct kt_cfg_errors e;
    const char *y =
        "providers:\n"
        "  targets:\n"
        "    - id: short\n"
        "      provider: anthropic:messages:claude-opus-4-20250514\n"
        "    - id: agent\n"
        "      provider: anthropic:claude-agent-sdk:claude-sonnet-4-20250514\n"
        "    - id: oai\n"
        "      provider: openai\n"
        "      model: gpt-4o\n"
        "      timeout_seconds: 20\n"
        "    - id: mock-a\n"
        "      provider: mock\n"
        "      model: m1\n"
        "      format: anthropic\n"
        "    - id: local\n"
        "      provider: vllm\n"
        "      model: llama\n"
        "      base_url: http://127.0.0.1:8000/\n"
        "    - id: typed\n"
        "      provider: custom\n"
        "      provider_type: anthropic\n"
        "      model: x\n"
        "      base_url: https://gw.example.com/anthropic\n"
        "      headers: {X-Team: a, Authorization: Bearer hdr-secret}\n";
    int rc = load(y, &cfg, &e);
    if (rc)
        dump_errs(&e);
    ck_assert_int_eq(rc, 0);
    const struct kt_target *t = kt_cfg_find_target(cfg, "short");
    ck_assert_int_eq(t->provider_kind, KT_PROV_ANTHROPIC);
    ck_assert_str_eq(t->model, "claude-opus-4-20250514");
    ck_assert_str_eq(t->provider, "anthropic:messages:claude-opus-4-20250514");
    ck_assert_int_eq(t->format, KT_FMT_ANTHROPIC);

    t = kt_cfg_find_target(cfg, "agent");
    ck_assert_int_eq(t->provider_kind, KT_PROV_CLAUDE_AGENT_SDK);
    ck_assert_str_eq(t->model, "claude-sonnet-4-20250514");

    t = kt_cfg_find_target(cfg, "oai");
    ck_assert_str_eq(t->base_url, "https://api.openai.com");
    ck_assert_str_eq(t->api_key_header, "Authorization");
    ck_assert_str_eq(t->api_key_prefix, "Bearer ");
    ck_assert_str_eq(t->api_key, SECRET_O);
    ck_assert_int_eq(t->format, KT_FMT_OPENAI);
    ck_assert_int_eq(t->stream_timeout_seconds, 20);

    t = kt_cfg_find_target(cfg, "mock-a");
    ck_assert_int_eq(t->provider_kind, KT_PROV_MOCK);
    ck_assert_int_eq(t->format, KT_FMT_ANTHROPIC);
    ck_assert_ptr_null(t->api_key);
    ck_assert_ptr_null(t->base_url);

    t = kt_cfg_find_target(cfg, "local");
    ck_assert_int_eq(t->provider_kind, KT_PROV_OTHER);
    ck_assert_str_eq(t->base_url, "http://127.0.0.1:8000");   /* trailing slash gone */
    ck_assert_ptr_null(t->api_key);
    ck_assert_int_eq(t->format, KT_FMT_OPENAI);

    t = kt_cfg_find_target(cfg, "typed");
    ck_assert_int_eq(t->format, KT_FMT_ANTHROPIC);
    ck_assert_uint_eq(t->nheaders, 2);
    ck_assert_str_eq(t->headers[0].name, "X-Team");

    /* The dump masks keys and secret-looking headers. */
    char *d = dump_str(cfg);
    ck_assert_ptr_null(strstr(d, SECRET_A));
    ck_assert_ptr_null(strstr(d, SECRET_O));
    ck_assert_ptr_null(strstr(d, "hdr-secret"));
    ck_assert_ptr_nonnull(strstr(d, "****"));
    ck_assert_ptr_nonnull(strstr(d, "\"X-Team\": \"a\""));
    ck_assert_ptr_nonnull(strstr(d, "secret_key_ref: {env: \"OPENAI_API_KEY\"}"));
    free(d);
    kt_cfg_free(cfg);

    /* Without the env var, no key and no error (keyless local setups). */
    unsetenv("ANTHROPIC_API_KEY");
    ck_assert_int_eq(load(MIN_TARGET, &cfg, &e), 0);
    ck_assert_ptr_null(cfg->providers.targets[0].api_key);
    ck_assert_ptr_null(cfg->providers.targets[0].secret_env);
    kt_cfg_free(cfg);
    set_keys();
}
END_TEST

/* ---- layering ----------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_layering)
{
    set_keys();
    char dir[] = "/tmp/kt-cfg-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char a[256], b[256], c[256];
    snprintf(a, sizeof a, "%s/base.yaml", dir);
    snprintf(b, sizeof b, "%s/over.yaml", dir);
    snprintf(c, sizeof c, "%s/bad.yaml", dir);
    write_file(a,
               "pack: {name: base, version: 1.0.0}\n"
               "server:\n"
               "  listen: [127.0.0.1:8080, 127.0.0.1:8081]\n"
               "  log: {level: debug, format: json}\n"
               "policies:\n"
               "  chain: [prompt-injection, pii-detector, audit-logger]\n"
               "policy:\n"
               "  prompt-injection: {action: flag, threshold: 0.5}\n"
               "providers:\n"
               "  strategy: fallback\n"
               "  targets:\n"
               "    - id: a\n"
               "      provider: anthropic\n"
               "      model: claude-a\n"
               "    - id: b\n"
               "      provider: openai\n"
               "      model: gpt-b\n");
    write_file(b,
               "pack: {name: over}\n"
               "server:\n"
               "  listen: [0.0.0.0:9000]\n"
               "  log: {level: warn}\n"
               "policies:\n"
               "  chain: [audit-logger]\n"
               "policy:\n"
               "  prompt-injection: {threshold: 0.9}\n"
               "providers:\n"
               "  strategy: ~\n");
    const char *paths[] = { a, b };
    struct kt_config *cfg;
    struct kt_cfg_errors e = { 0 };
    int rc = kt_cfg_load(paths, 2, &cfg, &e);
    if (rc)
        dump_errs(&e);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(cfg->pack.name, "over");          /* scalar replaced */
    ck_assert_str_eq(cfg->pack.version, "1.0.0");      /* sibling kept: maps merge */
    ck_assert_uint_eq(cfg->server.nlisten, 1);         /* list replaced */
    ck_assert_str_eq(cfg->server.listen[0].host, "0.0.0.0");
    ck_assert_int_eq(cfg->server.listen[0].port, 9000);
    ck_assert_int_eq(cfg->server.log_level, KT_LOG_WARN);
    ck_assert_int_eq(cfg->server.log_json, 1);         /* nested map merged */
    ck_assert_uint_eq(cfg->policies.chain.n, 1);
    ck_assert_str_eq(cfg->policies.chain.v[0], "audit-logger");
    ck_assert_int_eq(cfg->policies.injection.action, KT_PI_FLAG);
    ck_assert(cfg->policies.injection.threshold == 0.9);
    ck_assert_int_eq(cfg->providers.strategy, KT_STRAT_SINGLE);   /* null resets to default */
    ck_assert_uint_eq(cfg->providers.ntargets, 2);     /* untouched list kept */
    ck_assert_uint_eq(cfg->files.n, 2);
    ck_assert_str_eq(cfg->files.v[1], b);
    kt_cfg_free(cfg);

    /* An error in the overlay points into the overlay file. */
    write_file(c, "server:\n  workers: many\n");
    const char *paths2[] = { a, c };
    rc = kt_cfg_load(paths2, 2, &cfg, &e);
    ck_assert_int_eq(rc, KT_EINVAL);
    ck_assert_uint_eq(e.n, 1);
    ck_assert_str_eq(e.v[0].file, c);
    ck_assert_int_eq(e.v[0].line, 2);
    ck_assert_int_eq(e.v[0].col, 12);
    kt_cfg_errors_free(&e);

    /* A missing file: KT_EIO, named in the message. */
    const char *paths3[] = { a, "/nonexistent/kt.yaml" };
    rc = kt_cfg_load(paths3, 2, &cfg, &e);
    ck_assert_int_eq(rc, KT_EIO);
    ck_assert_ptr_null(cfg);
    ck_assert_uint_eq(e.n, 1);
    ck_assert_ptr_nonnull(strstr(e.v[0].msg, "/nonexistent/kt.yaml"));
    kt_cfg_errors_free(&e);

    unlink(a);
    unlink(b);
    unlink(c);
    rmdir(dir);
}
END_TEST

/* ---- errors, each at its exact position --------------------------------- */

START_TEST(test_err_unknown_key)
{
    set_keys();
    expect_error("providers:\n"
                 "  targets:\n"
                 "    - id: a\n"
                 "      provider: anthropic\n"
                 "      modle: x\n",
                 5, 7, "unknown key 'modle' in providers.targets[0]; did you mean 'model'?");
    expect_error("pack: {name: x}\nfrobnicate: 1\n", 2, 1,
                 "unknown key 'frobnicate' in the top level; expected one of: pack, server");
}
END_TEST

START_TEST(test_err_wrong_type)
{
    set_keys();
    char y[1024];
    snprintf(y, sizeof y, "%s      timeout_seconds: soon\n", MIN_TARGET);
    expect_error(y, 6, 24, "providers.targets[0].timeout_seconds: expected an integer, got 'soon'");
    snprintf(y, sizeof y, "%s      description: {a: 1}\n", MIN_TARGET);
    expect_error(y, 6, 20, "expected a string, got a mapping");
    expect_error("policies:\n  chain: audit-logger\n", 2, 10, "policies.chain: expected a list, got a scalar");
    snprintf(y, sizeof y, "pack:\n  enabled: maybe\n%s", MIN_TARGET);
    expect_error(y, 2, 12, "expected true or false, got 'maybe'");
}
END_TEST

START_TEST(test_err_missing_required)
{
    set_keys();
    expect_error("providers:\n"
                 "  targets:\n"
                 "    - provider: anthropic\n"
                 "      model: m\n",
                 3, 7, "providers.targets[0]: missing required field 'id'");
    expect_error("providers:\n"
                 "  targets:\n"
                 "    - id: x\n"
                 "      provider: openai\n",
                 3, 7, "providers.targets[0]: missing required field 'model'");
    expect_error("pack: {name: x}\n", 1, 1, "providers.targets: at least one target is required");
}
END_TEST

START_TEST(test_err_duplicate_id)
{
    set_keys();
    char y[1024];
    snprintf(y, sizeof y, "%s"
             "    - id: a\n"
             "      provider: openai\n"
             "      model: gpt-4o\n", MIN_TARGET);
    expect_error(y, 6, 11, "duplicate target id 'a' (first at t.yaml:3:7)");
    expect_error("pack:\n  name: a\n  name: b\n", 3, 3, "duplicate key 'name' (first at line 2)");
}
END_TEST

START_TEST(test_err_unset_env_and_secrets_never_printed)
{
    set_keys();
    expect_error("providers:\n"
                 "  targets:\n"
                 "    - id: a\n"
                 "      provider: anthropic\n"
                 "      model: m\n"
                 "      secret_key_ref: {env: KT_TEST_UNSET_VAR}\n",
                 6, 29, "environment variable KT_TEST_UNSET_VAR is not set");
    /* A config full of mistakes on a keyed target never echoes the key. */
    struct kt_config *cfg;
    struct kt_cfg_errors e;
    int rc = load("providers:\n"
                  "  targets:\n"
                  "    - id: a\n"
                  "      provider: anthropic\n"
                  "      model: m\n"
                  "      secret_key_ref: {env: ANTHROPIC_API_KEY, extra: 1}\n"
                  "      weight: -1\n"
                  "      timeout_seconds: x\n", &cfg, &e);
    ck_assert_int_eq(rc, KT_EINVAL);
    ck_assert_uint_ge(e.n, 3);
    for (size_t i = 0; i < e.n; i++)
        ck_assert_ptr_null(strstr(e.v[i].msg, SECRET_A));
    kt_cfg_errors_free(&e);
}
END_TEST

START_TEST(test_err_unknown_provider_policy_strategy_enum)
{
    set_keys();
    expect_error("providers:\n"
                 "  targets:\n"
                 "    - id: a\n"
                 "      provider: antropic\n"
                 "      model: m\n",
                 4, 17, "unknown provider 'antropic'; did you mean 'anthropic'?");
    char y[1024];
    snprintf(y, sizeof y, "policies:\n  chain: [prompt-injection, pii-detectr]\n%s", MIN_TARGET);
    expect_error(y, 2, 29, "invalid value 'pii-detectr'; did you mean 'pii-detector'?");
    snprintf(y, sizeof y, "policies:\n  chain: [toxicity]\n%s", MIN_TARGET);
    expect_error(y, 2, 11, "expected one of: prompt-injection, pii-detector, audit-logger");
    snprintf(y, sizeof y, "%s  strategy: round_robin\n", MIN_TARGET);
    expect_error(y, 6, 13, "providers.strategy: invalid value 'round_robin'");
    snprintf(y, sizeof y, "%s      format: xml\n", MIN_TARGET);
    expect_error(y, 6, 15, "providers.targets[0].format: invalid value 'xml'; expected one of: openai, anthropic");
    snprintf(y, sizeof y, "policy:\n  pii-detector: {action: mask}\n%s", MIN_TARGET);
    expect_error(y, 2, 26, "policy.pii-detector.action: invalid value 'mask'");
    snprintf(y, sizeof y, "%s      working_dir: /tmp\n", MIN_TARGET);
    expect_error(y, 6, 7, "working_dir applies only to anthropic:claude-agent-sdk:MODEL targets");
    expect_error("providers:\n"
                 "  targets:\n"
                 "    - id: a\n"
                 "      provider: vllm\n"
                 "      model: m\n",
                 3, 7, "provider 'vllm' needs base_url");
}
END_TEST

START_TEST(test_err_out_of_range)
{
    set_keys();
    char y[1024];
    snprintf(y, sizeof y, "%s      timeout_seconds: -5\n", MIN_TARGET);
    expect_error(y, 6, 24, "timeout_seconds must be >= 1 (got -5)");
    snprintf(y, sizeof y, "%s      weight: 0\n", MIN_TARGET);
    expect_error(y, 6, 15, "weight must be > 0 (got 0)");
    snprintf(y, sizeof y, "policy:\n  prompt-injection:\n    threshold: 1.5\n%s", MIN_TARGET);
    expect_error(y, 3, 16, "policy.prompt-injection.threshold must be <= 1 (got 1.5)");
    snprintf(y, sizeof y, "%s  retry: {backoff_ms: 500, max_backoff_ms: 100}\n", MIN_TARGET);
    expect_error(y, 6, 44, "max_backoff_ms (100) must be >= backoff_ms (500)");
    snprintf(y, sizeof y, "%s      base_url: ftp://x\n", MIN_TARGET);
    expect_error(y, 6, 17, "must start with http:// or https://");
}
END_TEST

START_TEST(test_err_listen_and_yaml_syntax)
{
    set_keys();
    char y[1024];
    snprintf(y, sizeof y, "server:\n  listen: [127.0.0.1:8080, 300.1.1.1:80]\n%s", MIN_TARGET);
    expect_error(y, 2, 28, "invalid listen address '300.1.1.1:80': bad IPv4 address");
    snprintf(y, sizeof y, "server:\n  listen: \"::1:8080\"\n%s", MIN_TARGET);
    expect_error(y, 2, 11, "brackets");
    snprintf(y, sizeof y, "server:\n  listen: localhost:99999\n%s", MIN_TARGET);
    expect_error(y, 2, 11, "port");
    /* libyaml's problem mark: the tab that cannot start a token. */
    expect_error("pack:\n  name: x\n\tversion: 1\n", 3, 1, "invalid YAML");
    expect_error("pack: {name: x\n", 2, 1, "invalid YAML");
    expect_error("- a\n- b\n", 1, 1, "the top level must be a mapping");
}
END_TEST

START_TEST(test_all_errors_collected)
{
    set_keys();
    struct kt_config *cfg;
    struct kt_cfg_errors e;
    int rc = load("server:\n"
                  "  workers: -2\n"
                  "  listn: x\n"
                  "policies:\n"
                  "  chain: [nope]\n"
                  "providers:\n"
                  "  strategy: random\n"
                  "  targets:\n"
                  "    - id: a\n"
                  "      provider: anthropic\n"
                  "      model: m\n"
                  "      weight: zero\n", &cfg, &e);
    ck_assert_int_eq(rc, KT_EINVAL);
    ck_assert_uint_eq(e.n, 5);
    ck_assert_ptr_nonnull(find_err(&e, 2, 12, "workers"));
    ck_assert_ptr_nonnull(find_err(&e, 3, 3, "did you mean 'listen'?"));
    ck_assert_ptr_nonnull(find_err(&e, 5, 11, "nope"));
    ck_assert_ptr_nonnull(find_err(&e, 7, 13, "random"));
    ck_assert_ptr_nonnull(find_err(&e, 12, 15, "expected a number"));
    char line[1024];
    ck_assert_str_eq(kt_err_format(&e.v[0], line, sizeof line),
                     "t.yaml:2:12: server.workers must be between 0 (auto) and 1024 (got -2)");
    kt_cfg_errors_free(&e);
}
END_TEST

START_TEST(test_errors_in_reading_order)
{
    set_keys();
    struct kt_config *cfg;
    struct kt_cfg_errors e;
    /* The missing id is found after the mapping is read, but is reported
     * before the unknown key below it. */
    int rc = load("providers:\n"
                  "  targets:\n"
                  "    - provider: anthropic\n"
                  "      model: m\n"
                  "      colour: blue\n", &cfg, &e);
    ck_assert_int_eq(rc, KT_EINVAL);
    ck_assert_uint_eq(e.n, 2);
    ck_assert_int_eq(e.v[0].line, 3);
    ck_assert_ptr_nonnull(strstr(e.v[0].msg, "missing required field 'id'"));
    ck_assert_int_eq(e.v[1].line, 5);
    kt_cfg_errors_free(&e);
}
END_TEST

START_TEST(test_yaml_features)
{
    set_keys();
    struct kt_config *cfg;
    struct kt_cfg_errors e;
    /* Anchors and aliases, flow style, quoted numbers, zdr alias, nulls. */
    int rc = load("pack: {name: \"x\", version: \"2\"}\n"
                  "server: ~\n"
                  "providers:\n"
                  "  targets:\n"
                  "    - &base\n"
                  "      id: a\n"
                  "      provider: anthropic\n"
                  "      model: m\n"
                  "      timeout_seconds: \"30\"\n"
                  "      data_policy: {zdr: true}\n"
                  "    - id: b\n"
                  "      provider: openai\n"
                  "      model: *x\n", &cfg, &e);
    ck_assert_int_eq(rc, KT_EINVAL);
    ck_assert_ptr_nonnull(find_err(&e, 13, 14, "unknown alias '*x'"));
    kt_cfg_errors_free(&e);

    rc = load("x-common: &common {provider: anthropic, model: m}\n", &cfg, &e);
    ck_assert_int_eq(rc, KT_EINVAL);   /* unknown top-level key, even for anchors */
    kt_cfg_errors_free(&e);

    rc = load("policy:\n"
              "  audit-logger: &al {immutable: true, retention_days: 30}\n"
              "providers:\n"
              "  targets:\n"
              "    - id: a\n"
              "      provider: anthropic\n"
              "      model: m\n"
              "      timeout_seconds: \"30\"\n"
              "      data_policy: {zdr: true}\n"
              "      headers: &h {X-A: \"1\"}\n"
              "    - id: b\n"
              "      provider: anthropic\n"
              "      model: n\n"
              "      headers: *h\n", &cfg, &e);
    if (rc)
        dump_errs(&e);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(cfg->providers.targets[0].timeout_seconds, 30);
    ck_assert_int_eq(cfg->providers.targets[0].data_policy.zero_data_retention, 1);
    ck_assert_str_eq(cfg->providers.targets[1].headers[0].value, "1");
    ck_assert_int_eq(cfg->policies.audit.retention_days, 30);
    kt_cfg_free(cfg);

    expect_error("pack: {name: a}\n---\npack: {name: b}\n", 2, 1, "only one YAML document per file");
    /* Exponential alias expansion is cut off, not followed into OOM. */
    rc = load("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
              "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
              "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
              "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
              "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
              "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
              "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n", &cfg, &e);
    ck_assert_int_eq(rc, KT_EINVAL);
    ck_assert_uint_eq(e.n, 1);
    ck_assert_ptr_nonnull(strstr(e.v[0].msg, "runaway aliases"));
    kt_cfg_errors_free(&e);
    /* An empty document is an empty mapping: only the missing targets. */
    expect_error("# nothing here\n", 1, 1, "at least one target is required");
}
END_TEST

/* ---- listen addresses --------------------------------------------------- */

START_TEST(test_parse_listen)
{
    struct kt_listen l;
    struct kt_err e;
    char out[300];
    static const struct { const char *in, *host; int port; } ok[] = {
        { "127.0.0.1:8080", "127.0.0.1", 8080 }, { "0.0.0.0:41002", "0.0.0.0", 41002 },
        { "[::1]:8080", "::1", 8080 }, { ":8080", "", 8080 }, { "*:80", "", 80 },
        { "localhost:0", "localhost", 0 }, { "[::]:443", "::", 443 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        ck_assert_int_eq(kt_cfg_parse_listen(ok[i].in, &l, &e), 0);
        ck_assert_str_eq(l.host, ok[i].host);
        ck_assert_int_eq(l.port, ok[i].port);
    }
    ck_assert_int_eq(kt_cfg_parse_listen("[::1]:8080", &l, &e), 0);
    ck_assert_str_eq(kt_cfg_format_listen(&l, out, sizeof out), "[::1]:8080");
    static const char *const bad[] = {
        "8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "1.2.3.4:8x", "::1:80", "[::1]8080",
        "[zz]:80", "host name:80", "256.0.0.1:80", "[::1:80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_int_eq(kt_cfg_parse_listen(bad[i], &l, &e), KT_EINVAL);
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(kt_cfg_format_name(KT_FMT_ANTHROPIC), "anthropic");
    ck_assert_str_eq(kt_cfg_strategy_name(KT_STRAT_WRR), "weighted_round_robin");
    ck_assert_str_eq(kt_cfg_provider_kind_name(KT_PROV_CLAUDE_AGENT_SDK), "claude_agent_sdk");
    ck_assert_str_eq(kt_cfg_pii_entity_name(KT_PII_BIT(KT_PII_CREDIT_CARD)), "CREDIT_CARD");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_every_example_loads);
    tcase_add_test(tc, test_seed_examples_typed);
    tcase_add_test(tc, test_quickstart_embedded);
    tcase_add_test(tc, test_policy_yaml_loads_without_keys);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_section_defaults_when_present);
    tcase_add_test(tc, test_provider_defaults_and_shorthand);
    tcase_add_test(tc, test_layering);
    tcase_add_test(tc, test_err_unknown_key);
    tcase_add_test(tc, test_err_wrong_type);
    tcase_add_test(tc, test_err_missing_required);
    tcase_add_test(tc, test_err_duplicate_id);
    tcase_add_test(tc, test_err_unset_env_and_secrets_never_printed);
    tcase_add_test(tc, test_err_unknown_provider_policy_strategy_enum);
    tcase_add_test(tc, test_err_out_of_range);
    tcase_add_test(tc, test_err_listen_and_yaml_syntax);
    tcase_add_test(tc, test_all_errors_collected);
    tcase_add_test(tc, test_errors_in_reading_order);
    tcase_add_test(tc, test_yaml_features);
    tcase_add_test(tc, test_parse_listen);
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

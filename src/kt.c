/* kt.c: the command-line tool: `kt gateway run`, `kt policy lint`,
 * `kt audit verify|tail`, `kt version`. The gateway runs the same engine
 * as ktd, in the foreground. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <json-c/json_c_version.h>
#include <lmdb.h>
#include <openssl/opensslv.h>
#include <yaml.h>

#include "kt/audit.h"
#include "kt/config.h"
#include "kt/log.h"
#include "kt/master.h"

#define MAX_CONFIGS 32

static void usage(FILE *out)
{
    fprintf(out,
            "usage:\n"
            "  kt gateway run [--listen HOST:PORT]... [--policy-config FILE]... [--workers N]\n"
            "                 [--fail-mode block|allow]\n"
            "  kt policy lint --file FILE [--file FILE]...\n"
            "  kt audit verify FILE...\n"
            "  kt audit tail [-f] [-n N] FILE\n"
            "  kt version\n");
}

static int cmd_gateway_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "policy-config", required_argument, NULL, 'c' },
        { "workers", required_argument, NULL, 'w' },
        { "fail-mode", required_argument, NULL, 'm' },
        { "pid-file", required_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *configs[MAX_CONFIGS];
    struct kt_listen listens[MAX_CONFIGS];
    struct kt_master_opts o = { .foreground = 1, .fail_mode = -1 };
    size_t nconf = 0, nlisten = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "l:c:w:m:p:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'l': {
            struct kt_err err;
            if (nlisten == MAX_CONFIGS || kt_cfg_parse_listen(optarg, &listens[nlisten], &err) != 0) {
                fprintf(stderr, "kt: --listen %s: %s\n", optarg, nlisten == MAX_CONFIGS ? "too many" : err.msg);
                return 2;
            }
            nlisten++;
            break;
        }
        case 'c':
            if (nconf == MAX_CONFIGS) {
                fprintf(stderr, "kt: too many --policy-config files\n");
                return 2;
            }
            configs[nconf++] = optarg;
            break;
        case 'w': o.workers = atoi(optarg); break;
        case 'm':
            if (strcmp(optarg, "block") == 0)
                o.fail_mode = KT_FAIL_BLOCK;
            else if (strcmp(optarg, "allow") == 0)
                o.fail_mode = KT_FAIL_ALLOW;
            else {
                fprintf(stderr, "kt: --fail-mode is block or allow\n");
                return 2;
            }
            break;
        case 'p': o.pidfile = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    o.config_paths = configs;
    o.nconfig = nconf;
    o.listen = listens;
    o.nlisten = nlisten;
    if (nconf == 0)
        fprintf(stderr, "kt: no --policy-config given: using the built-in quickstart config (mock targets)\n");
    return kt_master_run(&o);
}

static int cmd_policy_lint(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "file", required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 },
    };
    const char *files[MAX_CONFIGS];
    size_t n = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:", longopts, NULL)) != -1) {
        if (c != 'f' || n == MAX_CONFIGS) {
            usage(stderr);
            return 2;
        }
        files[n++] = optarg;
    }
    for (; optind < argc && n < MAX_CONFIGS; optind++)
        files[n++] = argv[optind];
    if (n == 0) {
        fprintf(stderr, "kt policy lint: --file FILE is required\n");
        return 2;
    }
    struct kt_config *cfg = NULL;
    struct kt_cfg_errors errs = {0};
    if (kt_cfg_load(files, n, &cfg, &errs) != 0) {
        kt_cfg_errors_print(&errs, stdout);
        printf("%zu error(s)\n", errs.n + errs.dropped);
        kt_cfg_errors_free(&errs);
        return 1;
    }
    kt_cfg_errors_free(&errs);
    printf("ok: pack %s %s, %zu target(s), chain:", cfg->pack.name, cfg->pack.version,
           cfg->providers.ntargets);
    for (size_t i = 0; i < cfg->policies.chain.n; i++)
        printf(" %s", cfg->policies.chain.v[i]);
    printf("\n");
    kt_cfg_free(cfg);
    return 0;
}

static int cmd_audit(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "verify") == 0) {
        if (argc < 3) {
            fprintf(stderr, "kt audit verify: FILE... is required\n");
            return 2;
        }
        if (argc == 3) {
            /* One path: the current log; check its rotated files too, in order. */
            char **files = NULL;
            size_t n = 0;
            if (kt_audit_files(argv[2], &files, &n) == 0 && n > 0) {
                int rc = kt_audit_verify((const char *const *)files, n, stdout);
                kt_audit_files_free(files, n);
                return rc == 0 ? 0 : 1;
            }
        }
        return kt_audit_verify((const char *const *)argv + 2, (size_t)argc - 2, stdout) == 0 ? 0 : 1;
    }
    if (strcmp(argv[1], "tail") == 0) {
        int follow = 0, n = 10, c;
        optind = 1;
        while ((c = getopt(argc - 1, argv + 1, "fn:")) != -1) {
            if (c == 'f')
                follow = 1;
            else if (c == 'n')
                n = atoi(optarg);
            else
                return 2;
        }
        if (optind >= argc - 1) {
            fprintf(stderr, "kt audit tail: FILE is required\n");
            return 2;
        }
        return kt_audit_tail(argv[1 + optind], follow, n, stdout) == 0 ? 0 : 1;
    }
    usage(stderr);
    return 2;
}

static int cmd_version(void)
{
    curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    printf("kt %s\nktd %s\n", PACKAGE_VERSION, PACKAGE_VERSION);
    printf("libevent %s\nlibcurl %s\njson-c %s\nlibyaml %s\nlmdb %s\n%s\n", event_get_version(),
           cv->version, json_c_version(), yaml_get_version_string(), MDB_VERSION_STRING,
           OPENSSL_VERSION_TEXT);
    return 0;
}

int main(int argc, char **argv)
{
    kt_log_setup(KT_LOG_INFO, 0, NULL, "kt");
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0)
        return cmd_version();
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "gateway") == 0 && argc >= 3 && strcmp(argv[2], "run") == 0)
        return cmd_gateway_run(argc - 2, argv + 2);
    if (strcmp(cmd, "policy") == 0 && argc >= 3 && strcmp(argv[2], "lint") == 0)
        return cmd_policy_lint(argc - 2, argv + 2);
    if (strcmp(cmd, "audit") == 0)
        return cmd_audit(argc - 1, argv + 1);
    usage(stderr);
    return 2;
}

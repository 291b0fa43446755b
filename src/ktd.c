/* ktd.c: the daemon's main(): options (SPEC §1), then the master. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/config.h"
#include "kt/log.h"
#include "kt/master.h"

#define DEFAULT_CONFIG KT_SYSCONFDIR "/keeptrusts/policy.yaml"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ktd [-c FILE] [-t] [-T] [-f] [-p PIDFILE] [-w N]\n"
            "  -c FILE     config file (default " DEFAULT_CONFIG ")\n"
            "  -t          test the config and exit (0 ok, 1 errors)\n"
            "  -T          test, then print the effective config (secrets masked)\n"
            "  -f          stay in the foreground\n"
            "  -p PIDFILE  write the master's pid here\n"
            "  -w N        number of worker processes (default: number of CPUs)\n"
            "  -v          print the version\n"
            "signals: HUP reload, TERM/INT graceful stop, QUIT fast stop, USR1 reopen logs\n");
}

int main(int argc, char **argv)
{
    const char *config = DEFAULT_CONFIG;
    int test = 0, dump = 0;
    struct kt_master_opts o = { .fail_mode = -1 };
    int c;
    while ((c = getopt(argc, argv, "c:tTfp:w:vh")) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 't': test = 1; break;
        case 'T': test = dump = 1; break;
        case 'f': o.foreground = 1; break;
        case 'p': o.pidfile = optarg; break;
        case 'w':
            o.workers = atoi(optarg);
            if (o.workers <= 0 || o.workers > 256) {
                fprintf(stderr, "ktd: -w wants a number from 1 to 256\n");
                return 2;
            }
            break;
        case 'v': printf("ktd %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    const char *paths[1] = { config };
    o.config_paths = paths;
    o.nconfig = 1;
    kt_log_setup(KT_LOG_INFO, 0, NULL, "ktd");
    if (test) {
        struct kt_config *cfg = NULL;
        if (kt_master_load(&o, &cfg) != 0) {
            fprintf(stderr, "ktd: configuration file %s test failed\n", config);
            return 1;
        }
        if (dump)
            kt_cfg_dump(cfg, stdout);
        fprintf(stderr, "ktd: configuration file %s test is successful\n", config);
        kt_cfg_free(cfg);
        return 0;
    }
    return kt_master_run(&o);
}

/* master.h: the supervising master process (SPEC §1, DESIGN.md
 * "Processes"). It parses the config, binds listeners, forks and restarts
 * workers, the audit process and the prober, and owns the signals. */
#ifndef KT_MASTER_H
#define KT_MASTER_H

#include <stddef.h>

#include "kt/config.h"

struct kt_master_opts {
    const char *const *config_paths;  /* layered in order; none = quickstart */
    size_t nconfig;
    const struct kt_listen *listen;   /* overrides server.listen when nlisten > 0 */
    size_t nlisten;
    int workers;              /* > 0 overrides server.workers */
    int foreground;
    const char *pidfile;      /* NULL = none */
    int fail_mode;            /* -1 = from config, else enum kt_fail_mode */
};

/* kt_master_load: load and validate the config the way the master does,
 * applying the option overrides; errors are printed to stderr. */
int kt_master_load(const struct kt_master_opts *o, struct kt_config **out);
/* kt_master_run: run until stopped; returns the process exit status. */
int kt_master_run(const struct kt_master_opts *o);

#endif

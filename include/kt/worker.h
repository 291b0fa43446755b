/* worker.h: a worker process: one libevent loop serving HTTP on the
 * inherited listeners, calling upstreams through libcurl on the same loop. */
#ifndef KT_WORKER_H
#define KT_WORKER_H

#include <stddef.h>

#include "kt/config.h"

struct kt_worker_ctx {
    const struct kt_config *cfg;
    const int *listen_fds;
    size_t nlisten;
    int audit_fd;             /* this worker's audit socket, -1 = no audit */
    int generation;           /* config generation, for logs */
    int slot;
};

/* kt_worker_run: serve until SIGTERM (graceful) or SIGQUIT (fast);
 * returns the exit status. */
int kt_worker_run(const struct kt_worker_ctx *w);

#endif

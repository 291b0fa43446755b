/* route_fixture.h: a fresh LMDB state dir per test for the route tests,
 * and a helper to run a function in N forked processes at once. */
#ifndef KT_TEST_ROUTE_FIXTURE_H
#define KT_TEST_ROUTE_FIXTURE_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kt/state.h"

static char fx_dir[64];
static struct kt_state *fx_st;

static void fx_setup(void)
{
    snprintf(fx_dir, sizeof fx_dir, "/tmp/kt-route-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(fx_dir));
    struct kt_err err;
    ck_assert_int_eq(kt_state_create(fx_dir, &err), 0);
    ck_assert_int_eq(kt_state_open(fx_dir, &fx_st, &err), 0);
}

static void fx_teardown(void)
{
    kt_state_close(fx_st);
    fx_st = NULL;
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", fx_dir);
}

/* fx_fork_all: run fn(i, st, ud) in n children, each with its own env
 * opened after fork, all released at once through a pipe; the child's
 * exit status is fn's return value. Results in status[] (exit codes). */
typedef int (*fx_child_fn)(int i, struct kt_state *st, void *ud);

__attribute__((unused)) static void fx_fork_all(int n, fx_child_fn fn, void *ud, int *status)
{
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t pids[64];
    ck_assert_int_le(n, 64);
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(go[1]);
            struct kt_state *st;
            if (kt_state_open(fx_dir, &st, NULL) != 0)
                _exit(250);
            char c;
            if (read(go[0], &c, 1) != 0)     /* EOF when the parent closes */
                _exit(251);
            int rc = fn(i, st, ud);
            kt_state_close(st);
            _exit(rc);
        }
    }
    close(go[0]);
    close(go[1]);   /* go */
    for (int i = 0; i < n; i++) {
        int ws;
        ck_assert_int_eq(waitpid(pids[i], &ws, 0), pids[i]);
        ck_assert(WIFEXITED(ws));
        status[i] = WEXITSTATUS(ws);
    }
}

#endif

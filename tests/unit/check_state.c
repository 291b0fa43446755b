/* check_state: the LMDB state layer: create/open, get/put/update, errors
 * for bad dirs and a corrupt data.mdb, atomic updates across processes,
 * and recovery after a process is SIGKILLed in the middle of writes. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kt/err.h"
#include "kt/state.h"

static char tmpdir[64];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kt-state-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", tmpdir);
}

static void path_in(char *out, size_t n, const char *leaf)
{
    snprintf(out, n, "%s/%s", tmpdir, leaf);
}

struct pair { uint64_t a, b; };

/* Increment both halves; the test checks they never diverge. */
static int incr_cb(void *ud, const void *cur, size_t cur_len, void *out, size_t cap, size_t *out_len)
{
    struct pair p = {0, 0};
    if (cur != NULL && cur_len == sizeof p)
        memcpy(&p, cur, sizeof p);
    p.a++;
    unsigned spin = ud ? *(unsigned *)ud : 0;
    for (volatile unsigned i = 0; i < spin; i++)
        ;
    p.b++;
    memcpy(out, &p, sizeof p);
    *out_len = sizeof p;
    return KT_STATE_WRITE;
}

static struct pair read_pair(struct kt_state *st, const char *key)
{
    struct pair p = {0, 0};
    size_t len = 0;
    struct kt_err err;
    int rc = kt_state_get(st, KT_STATE_RATELIMIT, key, &p, sizeof p, &len, &err);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(len, sizeof p);
    return p;
}

START_TEST(test_create_open_get_put_update)
{
    char dir[PATH_MAX];
    path_in(dir, sizeof dir, "a/b/c");        /* mkdir -p */
    struct kt_err err = {0};
    ck_assert_int_eq(kt_state_create(dir, &err), 0);
    struct stat sb;
    ck_assert_int_eq(stat(dir, &sb), 0);
    ck_assert(S_ISDIR(sb.st_mode));
    ck_assert_int_eq(kt_state_create(dir, &err), 0);   /* idempotent */

    struct kt_state *st = NULL;
    ck_assert_int_eq(kt_state_open(dir, &st, &err), 0);
    char buf[64];
    size_t len = 0;
    ck_assert_int_eq(kt_state_get(st, KT_STATE_HEALTH, "nope", buf, sizeof buf, &len, &err), KT_ENOENT);
    ck_assert_int_eq(kt_state_put(st, KT_STATE_HEALTH, "t1", "hello", 5, &err), 0);
    ck_assert_int_eq(kt_state_get(st, KT_STATE_HEALTH, "t1", buf, sizeof buf, &len, &err), 0);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
    /* Same key in another db is a different record. */
    ck_assert_int_eq(kt_state_get(st, KT_STATE_BREAKER, "t1", buf, sizeof buf, &len, &err), KT_ENOENT);
    /* Too small a buffer is reported, not overrun. */
    ck_assert_int_eq(kt_state_get(st, KT_STATE_HEALTH, "t1", buf, 2, &len, &err), KT_ELIMIT);
    ck_assert_uint_eq(len, 5);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(kt_state_update(st, KT_STATE_RATELIMIT, "ctr", incr_cb, NULL, &err), 0);
    struct pair p = read_pair(st, "ctr");
    ck_assert_uint_eq(p.a, 10);
    ck_assert_uint_eq(p.b, 10);
    ck_assert_int_eq(kt_state_get(st, KT_STATE_HEALTH, "", buf, sizeof buf, &len, &err), KT_EINVAL);
    kt_state_close(st);

    /* Values persist across close and reopen. */
    ck_assert_int_eq(kt_state_open(dir, &st, &err), 0);
    p = read_pair(st, "ctr");
    ck_assert_uint_eq(p.a, 10);
    int dead = -1;
    ck_assert_int_eq(st->ops->reader_check(st, &dead, &err), 0);
    /* chown to ourselves always works; the files exist. */
    ck_assert_int_eq(kt_state_chown(dir, (unsigned)geteuid(), (unsigned)getegid(), &err), 0);
    char missing[PATH_MAX];
    path_in(missing, sizeof missing, "none");
    ck_assert_int_eq(kt_state_chown(missing, 0, 0, &err), KT_ESTATE);
    ck_assert_int_eq(dead, 0);
    kt_state_close(st);
}
END_TEST

START_TEST(test_bad_dirs_give_clear_errors)
{
    char file[PATH_MAX], dir[PATH_MAX + 8];
    struct kt_err err = {0};
    path_in(file, sizeof file, "plainfile");
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    /* A path that is a file. */
    ck_assert_int_eq(kt_state_create(file, &err), KT_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.msg, "not a directory"));
    /* A parent that is a file: mkdir -p fails. */
    snprintf(dir, sizeof dir, "%s/sub", file);
    ck_assert_int_eq(kt_state_create(dir, &err), KT_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.msg, "cannot create"));
    /* A place nobody may write (proc is never writable, even by root). */
    ck_assert_int_eq(kt_state_create("/proc/kt-state-test", &err), KT_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.msg, "/proc/kt-state-test"));
    if (geteuid() != 0) {
        char ro[PATH_MAX];
        path_in(ro, sizeof ro, "ro");
        ck_assert_int_eq(mkdir(ro, 0500), 0);
        ck_assert_int_eq(kt_state_create(ro, &err), KT_ESTATE);
        ck_assert_ptr_nonnull(strstr(err.msg, "not writable"));
        chmod(ro, 0700);
    }
    struct kt_state *st = NULL;
    ck_assert_int_lt(kt_state_open(file, &st, &err), 0);
    ck_assert_ptr_null(st);
    ck_assert_int_eq(kt_state_create(NULL, &err), KT_EINVAL);
}
END_TEST

static void write_file(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, n), (ssize_t)n);
    close(fd);
}

START_TEST(test_corrupt_data_file_is_an_error_not_a_crash)
{
    char dir[PATH_MAX], data[PATH_MAX + 16];
    struct kt_err err = {0};
    path_in(dir, sizeof dir, "garbage");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    char junk[16384];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 131 + 7);
    write_file(data, junk, sizeof junk);
    ck_assert_int_eq(kt_state_create(dir, &err), KT_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.msg, "data.mdb"));
    struct kt_state *st = NULL;
    ck_assert_int_eq(kt_state_open(dir, &st, &err), KT_ESTATE);

    /* A real env whose meta pages are then overwritten. */
    path_in(dir, sizeof dir, "smashed");
    ck_assert_int_eq(kt_state_create(dir, &err), 0);
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    int fd = open(data, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, junk, 8192, 0), 8192);
    close(fd);
    ck_assert_int_eq(kt_state_create(dir, &err), KT_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.msg, "remove"));

    /* A populated env whose tree pages (all but the two meta pages) are
     * garbage: LMDB may fault walking it; create must still just fail. */
    path_in(dir, sizeof dir, "tree");
    ck_assert_int_eq(kt_state_create(dir, &err), 0);
    struct kt_state *pst;
    ck_assert_int_eq(kt_state_open(dir, &pst, &err), 0);
    for (int i = 0; i < 500; i++) {
        char k[32];
        snprintf(k, sizeof k, "key-%d", i);
        ck_assert_int_eq(kt_state_put(pst, KT_STATE_RATELIMIT, k, junk, 100, &err), 0);
    }
    kt_state_close(pst);
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    fd = open(data, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    off_t size = lseek(fd, 0, SEEK_END);
    for (off_t off = 8192; off + 4096 <= size; off += 4096)
        ck_assert_int_eq(pwrite(fd, junk + (off / 4096) % 8, 4096, off), 4096);
    close(fd);
    ck_assert_int_eq(kt_state_create(dir, &err), KT_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.msg, "remove"));

    /* Truncated to a few bytes. */
    write_file(data, "LMDB", 4);
    ck_assert_int_eq(kt_state_create(dir, &err), KT_ESTATE);
}
END_TEST

START_TEST(test_updates_are_atomic_across_processes)
{
    char dir[PATH_MAX];
    struct kt_err err = {0};
    path_in(dir, sizeof dir, "multi");
    ck_assert_int_eq(kt_state_create(dir, &err), 0);
    enum { NPROC = 4, NITER = 500 };
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            struct kt_state *st;
            if (kt_state_open(dir, &st, NULL) != 0)
                _exit(2);
            for (int j = 0; j < NITER; j++)
                if (kt_state_update(st, KT_STATE_RATELIMIT, "ctr", incr_cb, NULL, NULL) != 0)
                    _exit(3);
            kt_state_close(st);
            _exit(0);
        }
    }
    for (int i = 0; i < NPROC; i++) {
        int status;
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    struct kt_state *st;
    ck_assert_int_eq(kt_state_open(dir, &st, &err), 0);
    struct pair p = read_pair(st, "ctr");
    ck_assert_uint_eq(p.a, NPROC * NITER);
    ck_assert_uint_eq(p.b, NPROC * NITER);
    kt_state_close(st);
}
END_TEST

/* A child hammers a key (spinning inside the write txn so the kill
 * usually lands while it holds the writer lock, or a reader slot), is
 * SIGKILLed; the master clears its slot; a reopened env still reads a
 * consistent value and takes writes; no one hangs on the dead writer. */
START_TEST(test_sigkill_mid_write_leaves_state_usable)
{
    char dir[PATH_MAX];
    struct kt_err err = {0};
    path_in(dir, sizeof dir, "killed");
    ck_assert_int_eq(kt_state_create(dir, &err), 0);
    /* A bystander keeps the env open, as live workers do; otherwise the
     * next opener is alone and LMDB simply resets the reader table. */
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t bystander = fork();
    ck_assert_int_ge(bystander, 0);
    if (bystander == 0) {
        struct kt_state *st;
        if (kt_state_open(dir, &st, NULL) != 0)
            _exit(2);
        if (write(ready[1], "r", 1) != 1)
            _exit(3);
        pause();
        _exit(0);
    }
    char c;
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    int total_dead = 0;
    for (int round = 0; round < 5; round++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            struct kt_state *st;
            if (kt_state_open(dir, &st, NULL) != 0)
                _exit(2);
            unsigned spin = 20000;
            struct pair p;
            size_t len;
            for (;;) {
                kt_state_update(st, KT_STATE_RATELIMIT, "ctr", incr_cb, &spin, NULL);
                kt_state_get(st, KT_STATE_RATELIMIT, "ctr", &p, sizeof p, &len, NULL);
            }
        }
        struct timespec ts = { 0, (40 + round * 13) * 1000000L };
        nanosleep(&ts, NULL);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status));
        int dead = 0;
        ck_assert_int_eq(kt_state_reader_check(dir, &dead, &err), 0);
        total_dead += dead;

        struct kt_state *st;
        ck_assert_int_eq(kt_state_open(dir, &st, &err), 0);
        struct pair before = read_pair(st, "ctr");
        ck_assert_uint_eq(before.a, before.b);
        ck_assert_uint_gt(before.a, 0);
        ck_assert_int_eq(kt_state_update(st, KT_STATE_RATELIMIT, "ctr", incr_cb, NULL, &err), 0);
        struct pair after = read_pair(st, "ctr");
        ck_assert_uint_eq(after.a, before.a + 1);
        ck_assert_uint_eq(after.b, before.b + 1);
        kt_state_close(st);
    }
    /* The child held its reader slot (reset read txn) when killed. */
    ck_assert_int_ge(total_dead, 1);
    kill(bystander, SIGKILL);
    waitpid(bystander, NULL, 0);
    close(ready[0]);
    close(ready[1]);
    ck_assert_int_eq(kt_state_create(dir, &err), 0);    /* still validates */
}
END_TEST

/* Tells the parent it holds the write txn, then waits to be killed. */
static int hold_cb(void *ud, const void *cur, size_t cur_len, void *out, size_t cap, size_t *out_len)
{
    int fd = *(int *)ud;
    if (write(fd, "w", 1) != 1)
        _exit(4);
    for (;;)
        pause();
    return KT_STATE_KEEP;
}

/* Deterministic: the child is killed while it holds LMDB's writer lock.
 * Writers elsewhere must recover the lock (robust mutex), not hang, and
 * the half-done txn must leave no trace. */
START_TEST(test_sigkill_holding_the_write_lock)
{
    char dir[PATH_MAX];
    struct kt_err err = {0};
    path_in(dir, sizeof dir, "lockholder");
    ck_assert_int_eq(kt_state_create(dir, &err), 0);
    struct kt_state *st;
    ck_assert_int_eq(kt_state_open(dir, &st, &err), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(kt_state_update(st, KT_STATE_RATELIMIT, "ctr", incr_cb, NULL, &err), 0);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct kt_state *cst;
        if (kt_state_open(dir, &cst, NULL) != 0)
            _exit(2);
        kt_state_update(cst, KT_STATE_RATELIMIT, "ctr", hold_cb, &fds[1], NULL);
        _exit(3);
    }
    char c;
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
    ck_assert_int_eq(kt_state_update(st, KT_STATE_RATELIMIT, "ctr", incr_cb, NULL, &err), 0);
    struct pair p = read_pair(st, "ctr");
    ck_assert_uint_eq(p.a, 4);
    ck_assert_uint_eq(p.b, 4);
    kt_state_close(st);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("state");
    TCase *tc = tcase_create("state");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_create_open_get_put_update);
    tcase_add_test(tc, test_bad_dirs_give_clear_errors);
    tcase_add_test(tc, test_corrupt_data_file_is_an_error_not_a_crash);
    tcase_add_test(tc, test_updates_are_atomic_across_processes);
    tcase_add_test(tc, test_sigkill_mid_write_leaves_state_usable);
    tcase_add_test(tc, test_sigkill_holding_the_write_lock);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

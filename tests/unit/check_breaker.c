/* check_breaker: the circuit breaker state machine over real LMDB, and
 * that it is one breaker for every process. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "kt/breaker.h"
#include "kt/state.h"
#include "route_fixture.h"

#define T0 1700000000000ull   /* a wall-clock ms */

static const struct kt_breaker_params P = {
    .failure_threshold = 3, .window_seconds = 10, .cooldown_seconds = 5, .half_open_requests = 1,
};

static void fail_n(const char *id, const struct kt_breaker_params *p, int n, uint64_t now)
{
    struct kt_err err;
    struct kt_breaker_ticket none = {0, 0};
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(kt_breaker_report(fx_st, id, p, &none, 0, now, &err), 0);
}

static struct kt_breaker_info peek(const char *id, const struct kt_breaker_params *p, uint64_t now)
{
    struct kt_breaker_info bi;
    struct kt_err err;
    ck_assert_int_eq(kt_breaker_peek(fx_st, id, p, now, &bi, &err), 0);
    return bi;
}

static int acquire(const char *id, const struct kt_breaker_params *p, uint64_t now,
                   struct kt_breaker_ticket *t)
{
    int allowed = -1;
    struct kt_err err;
    ck_assert_int_eq(kt_breaker_acquire(fx_st, id, p, now, &allowed, t, &err), 0);
    return allowed;
}

START_TEST(test_closed_open_half_open_closed)
{
    struct kt_breaker_ticket t;
    struct kt_err err;
    struct kt_breaker_info bi = peek("a", &P, T0);
    ck_assert_str_eq(bi.state_name, "closed");
    ck_assert_int_eq(bi.available, 1);
    ck_assert_int_eq(acquire("a", &P, T0, &t), 1);
    ck_assert_int_eq(t.trial, 0);
    /* Successes while closed write nothing and change nothing. */
    ck_assert_int_eq(kt_breaker_report(fx_st, "a", &P, &t, 1, T0, &err), 0);

    fail_n("a", &P, 2, T0);
    bi = peek("a", &P, T0 + 1);
    ck_assert_int_eq(bi.state, KT_BREAKER_CLOSED);
    ck_assert_uint_eq(bi.failures, 2);
    /* Failures older than the window no longer count. */
    bi = peek("a", &P, T0 + 10001);
    ck_assert_uint_eq(bi.failures, 0);
    fail_n("a", &P, 2, T0 + 10001);
    ck_assert_str_eq(peek("a", &P, T0 + 10002).state_name, "closed");
    fail_n("a", &P, 1, T0 + 10002);           /* third within 10 s: open */
    uint64_t opened = T0 + 10002;
    bi = peek("a", &P, opened);
    ck_assert_str_eq(bi.state_name, "open");
    ck_assert_uint_eq(bi.opened_at_ms, opened);
    ck_assert_uint_eq(bi.retry_at_ms, opened + 5000);
    ck_assert_int_eq(bi.available, 0);
    ck_assert_int_eq(acquire("a", &P, opened + 4999, &t), 0);
    /* Late failures from requests admitted before it opened are ignored. */
    fail_n("a", &P, 3, opened + 100);
    ck_assert_uint_eq(peek("a", &P, opened + 200).opened_at_ms, opened);

    /* Cooldown over: reads half-open, one trial goes through. */
    bi = peek("a", &P, opened + 5000);
    ck_assert_str_eq(bi.state_name, "half_open");
    ck_assert_int_eq(bi.available, 1);
    struct kt_breaker_ticket trial;
    ck_assert_int_eq(acquire("a", &P, opened + 5000, &trial), 1);
    ck_assert_int_eq(trial.trial, 1);
    ck_assert_int_eq(acquire("a", &P, opened + 5001, &t), 0);   /* only one trial */
    bi = peek("a", &P, opened + 5001);
    ck_assert_str_eq(bi.state_name, "half_open");
    ck_assert_uint_eq(bi.trials_in_flight, 1);
    ck_assert_int_eq(bi.available, 0);

    /* The trial fails: open again, for a new cooldown. */
    ck_assert_int_eq(kt_breaker_report(fx_st, "a", &P, &trial, 0, opened + 6000, &err), 0);
    bi = peek("a", &P, opened + 6000);
    ck_assert_str_eq(bi.state_name, "open");
    ck_assert_uint_eq(bi.opened_at_ms, opened + 6000);
    ck_assert_int_eq(acquire("a", &P, opened + 10999, &t), 0);
    /* A stale trial ticket from the earlier episode decides nothing. */
    ck_assert_int_eq(kt_breaker_report(fx_st, "a", &P, &trial, 1, opened + 7000, &err), 0);
    ck_assert_str_eq(peek("a", &P, opened + 7000).state_name, "open");

    /* Next trial succeeds: closed, failures cleared. */
    ck_assert_int_eq(acquire("a", &P, opened + 11000, &trial), 1);
    ck_assert_int_eq(trial.trial, 1);
    ck_assert_int_eq(kt_breaker_report(fx_st, "a", &P, &trial, 1, opened + 11100, &err), 0);
    bi = peek("a", &P, opened + 11100);
    ck_assert_str_eq(bi.state_name, "closed");
    ck_assert_uint_eq(bi.failures, 0);
    ck_assert_int_eq(acquire("a", &P, opened + 11101, &t), 1);
    ck_assert_int_eq(t.trial, 0);
    /* Other targets were never involved. */
    ck_assert_str_eq(peek("b", &P, opened).state_name, "closed");
}
END_TEST

START_TEST(test_half_open_slots_and_reclaim)
{
    struct kt_breaker_params p = P;
    p.half_open_requests = 2;
    struct kt_breaker_ticket t1, t2, t3;
    fail_n("x", &p, 3, T0);
    uint64_t ho = T0 + 5000;
    ck_assert_int_eq(acquire("x", &p, ho, &t1), 1);
    ck_assert_int_eq(acquire("x", &p, ho, &t2), 1);
    ck_assert_int_eq(acquire("x", &p, ho, &t3), 0);
    ck_assert(t1.trial && t2.trial);
    /* An abandoned trial gives its slot back. */
    struct kt_err err;
    ck_assert_int_eq(kt_breaker_release(fx_st, "x", &t2, &err), 0);
    ck_assert_uint_eq(peek("x", &p, ho).trials_in_flight, 1);
    ck_assert_int_eq(acquire("x", &p, ho, &t2), 1);
    ck_assert_int_eq(acquire("x", &p, ho, &t3), 0);
    /* Holders that never report (their worker died) free the slots later. */
    ck_assert_int_eq(acquire("x", &p, ho + 120001, &t3), 1);
    ck_assert_int_eq(t3.trial, 1);
    /* Disabled breaker: always admits, report is a no-op. */
    struct kt_breaker_params off = P;
    off.failure_threshold = 0;
    fail_n("y", &off, 10, T0);
    ck_assert_int_eq(acquire("y", &off, T0, &t1), 1);
    ck_assert_int_eq(peek("y", &off, T0).available, 1);
    /* Reset forces closed. */
    ck_assert_int_eq(kt_breaker_reset(fx_st, "x", &err), 0);
    ck_assert_str_eq(peek("x", &p, ho).state_name, "closed");
}
END_TEST

START_TEST(test_large_threshold_uses_fixed_window)
{
    struct kt_breaker_params p = P;
    p.failure_threshold = 50;
    fail_n("big", &p, 49, T0);
    ck_assert_str_eq(peek("big", &p, T0).state_name, "closed");
    ck_assert_uint_eq(peek("big", &p, T0).failures, 49);
    fail_n("big", &p, 1, T0 + 1000);
    ck_assert_str_eq(peek("big", &p, T0 + 1000).state_name, "open");
    /* A new window starts when the old one expired. */
    fail_n("big2", &p, 49, T0);
    fail_n("big2", &p, 1, T0 + 10001);
    ck_assert_str_eq(peek("big2", &p, T0 + 10001).state_name, "closed");
    ck_assert_uint_eq(peek("big2", &p, T0 + 10001).failures, 1);
}
END_TEST

START_TEST(test_clock_going_back_does_not_stick_open)
{
    fail_n("c", &P, 3, T0 + 3600000);        /* opened "in the future" */
    struct kt_breaker_ticket t;
    ck_assert_int_eq(acquire("c", &P, T0, &t), 0);
    ck_assert_int_eq(acquire("c", &P, T0 + 5000, &t), 1);   /* at most one cooldown */
}
END_TEST

/* ---- across processes ---- */

struct mp { const struct kt_breaker_params *p; uint64_t now; };

static int child_fail_twice(int i, struct kt_state *st, void *ud)
{
    struct mp *m = ud;
    struct kt_breaker_ticket none = {0, 0};
    for (int k = 0; k < 2; k++)
        if (kt_breaker_report(st, "shared", m->p, &none, 0, m->now, NULL) != 0)
            return 10;
    return 0;
}

/* Exit 0 when this process sees the breaker open and is refused. */
static int child_sees_open(int i, struct kt_state *st, void *ud)
{
    struct mp *m = ud;
    struct kt_breaker_info bi;
    if (kt_breaker_peek(st, "shared", m->p, m->now, &bi, NULL) != 0)
        return 10;
    if (bi.state != KT_BREAKER_OPEN || bi.available)
        return 11;
    int allowed = -1;
    struct kt_breaker_ticket t;
    if (kt_breaker_acquire(st, "shared", m->p, m->now, &allowed, &t, NULL) != 0)
        return 12;
    return allowed ? 13 : 0;
}

/* Exit 1 when this process got the trial slot, 0 when refused. */
static int child_try_trial(int i, struct kt_state *st, void *ud)
{
    struct mp *m = ud;
    int allowed = -1;
    struct kt_breaker_ticket t;
    if (kt_breaker_acquire(st, "shared", m->p, m->now, &allowed, &t, NULL) != 0)
        return 10;
    return allowed == 1 && t.trial == 1 ? 1 : (allowed == 0 ? 0 : 11);
}

START_TEST(test_breaker_opens_for_all_processes)
{
    struct kt_breaker_params p = { 5, 30, 30, 1 };
    int status[4];
    /* 4 processes report 2 failures each at once: 8 >= 5, so it opens. */
    struct mp m = { &p, T0 };
    fx_fork_all(4, child_fail_twice, &m, status);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(status[i], 0);
    /* One process opening it is enough for every other to skip it. */
    struct mp m2 = { &p, T0 + 1000 };
    fx_fork_all(4, child_sees_open, &m2, status);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(status[i], 0);
    /* After cooldown, 4 processes race for the single trial slot. */
    struct mp m3 = { &p, T0 + 30000 };
    fx_fork_all(4, child_try_trial, &m3, status);
    int got = 0;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_le(status[i], 1);
        got += status[i];
    }
    ck_assert_int_eq(got, 1);
    ck_assert_str_eq(peek("shared", &p, T0 + 30001).state_name, "half_open");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("breaker");
    TCase *tc = tcase_create("breaker");
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_closed_open_half_open_closed);
    tcase_add_test(tc, test_half_open_slots_and_reclaim);
    tcase_add_test(tc, test_large_threshold_uses_fixed_window);
    tcase_add_test(tc, test_clock_going_back_does_not_stick_open);
    tcase_add_test(tc, test_breaker_opens_for_all_processes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

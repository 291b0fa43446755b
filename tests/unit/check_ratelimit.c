/* check_ratelimit: GCRA limits over real LMDB: burst, refill, retry-after,
 * token charging, and one limit held by 4 processes hammering it. */
#include <check.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "kt/err.h"
#include "kt/ratelimit.h"
#include "kt/state.h"
#include "kt/util.h"
#include "route_fixture.h"

#define T0 1700000000000ull

static int take(const char *key, const struct kt_ratelimit *l, uint64_t cost, uint64_t now,
                uint64_t *ra)
{
    struct kt_err err;
    return kt_ratelimit_take(fx_st, key, l, cost, now, ra, &err);
}

START_TEST(test_key_format)
{
    char k[64];
    ck_assert_int_eq(kt_ratelimit_key(k, sizeof k, 't', "anthropic-sonnet", "rpm"), 0);
    ck_assert_str_eq(k, "t:anthropic-sonnet:rpm");
    ck_assert_int_eq(kt_ratelimit_key(k, sizeof k, 'k', "team-a", "tpm"), 0);
    ck_assert_str_eq(k, "k:team-a:tpm");
    ck_assert_int_eq(kt_ratelimit_key(k, 8, 't', "too-long-for-it", "rpm"), KT_EINVAL);
}
END_TEST

START_TEST(test_burst_then_refill)
{
    struct kt_ratelimit l = { 60, 60000 };    /* 60 per minute: one per second */
    uint64_t ra = 0;
    for (int i = 0; i < 60; i++)
        ck_assert_int_eq(take("t:a:rpm", &l, 1, T0, &ra), 0);
    ck_assert_int_eq(take("t:a:rpm", &l, 1, T0, &ra), KT_ELIMIT);
    ck_assert_uint_eq(ra, 1000);
    ck_assert_int_eq(take("t:a:rpm", &l, 1, T0 + 999, &ra), KT_ELIMIT);
    ck_assert_uint_eq(ra, 1);
    ck_assert_int_eq(take("t:a:rpm", &l, 1, T0 + 1000, &ra), 0);
    ck_assert_int_eq(take("t:a:rpm", &l, 1, T0 + 1000, &ra), KT_ELIMIT);
    /* After 10 s idle, 10 more fit. */
    uint64_t rem = 0;
    struct kt_err err;
    ck_assert_int_eq(kt_ratelimit_remaining(fx_st, "t:a:rpm", &l, T0 + 11000, &rem, &err), 0);
    ck_assert_uint_eq(rem, 10);
    int n = 0;
    while (take("t:a:rpm", &l, 1, T0 + 11000, &ra) == 0)
        n++;
    ck_assert_int_eq(n, 10);
    /* A full period idle restores the whole burst, no more. */
    ck_assert_int_eq(kt_ratelimit_remaining(fx_st, "t:a:rpm", &l, T0 + 500000, &rem, &err), 0);
    ck_assert_uint_eq(rem, 60);
    /* Other keys are independent; unlimited admits everything. */
    ck_assert_int_eq(take("t:b:rpm", &l, 1, T0, &ra), 0);
    struct kt_ratelimit none = { 0, 60000 };
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(take("t:c:rpm", &none, 1, T0, &ra), 0);
    /* A cost above the limit can never fit. */
    ck_assert_int_eq(take("t:d:rpm", &l, 61, T0, &ra), KT_ELIMIT);
    ck_assert_uint_eq(ra, UINT64_MAX);
}
END_TEST

START_TEST(test_tokens_charged_after_response)
{
    struct kt_ratelimit tpm = { 1000, 60000 };    /* 1000 tokens a minute */
    uint64_t ra = 0;
    struct kt_err err;
    ck_assert_int_eq(kt_ratelimit_check(fx_st, "t:a:tpm", &tpm, T0, &ra, &err), 0);
    /* A response used 1500 tokens: more than the burst; charged anyway. */
    ck_assert_int_eq(kt_ratelimit_charge(fx_st, "t:a:tpm", &tpm, 1500, T0, &err), 0);
    ck_assert_int_eq(kt_ratelimit_check(fx_st, "t:a:tpm", &tpm, T0, &ra, &err), KT_ELIMIT);
    /* TAT is now T0 + 90 s; one token fits when TAT + 60 ms - now <= 60 s. */
    ck_assert_uint_eq(ra, 30060);
    ck_assert_int_eq(kt_ratelimit_check(fx_st, "t:a:tpm", &tpm, T0 + 30059, &ra, &err), KT_ELIMIT);
    ck_assert_int_eq(kt_ratelimit_check(fx_st, "t:a:tpm", &tpm, T0 + 30060, &ra, &err), 0);
    uint64_t rem;
    ck_assert_int_eq(kt_ratelimit_remaining(fx_st, "t:a:tpm", &tpm, T0 + 90000, &rem, &err), 0);
    ck_assert_uint_eq(rem, 1000);
    ck_assert_int_eq(kt_ratelimit_remaining(fx_st, "t:a:tpm", &tpm, T0 + 60000, &rem, &err), 0);
    ck_assert_uint_eq(rem, 500);   /* TAT 30 s ahead: 30 s of room, 60 ms a token */
}
END_TEST

/* ---- 4 processes, one limit ---- */

struct hammer { struct kt_ratelimit lim; uint64_t now; int use_clock; };

/* Returns how many it got admitted (fits in an exit status: <= 60). */
static int child_hammer(int i, struct kt_state *st, void *ud)
{
    const struct hammer *h = ud;
    int got = 0;
    for (int k = 0; k < 200; k++) {
        uint64_t ra;
        uint64_t now = h->use_clock ? kt_wall_ms() : h->now;
        int rc = kt_ratelimit_take(st, "t:shared:rpm", &h->lim, 1, now, &ra, NULL);
        if (rc == 0)
            got++;
        else if (rc != KT_ELIMIT)
            return 200;
    }
    return got;
}

START_TEST(test_limit_holds_across_four_processes)
{
    /* Same instant everywhere: exactly the burst is admitted. */
    struct hammer h = { { 60, 2000 }, T0, 0 };
    int status[4];
    fx_fork_all(4, child_hammer, &h, status);
    int total = 0;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_le(status[i], 60);
        total += status[i];
    }
    ck_assert_int_eq(total, 60);
}
END_TEST

START_TEST(test_limit_holds_across_four_processes_real_clock)
{
    /* Real clock, 2 s period: the burst of 60 plus at most what refilled
     * (one per 33.3 ms) while the processes ran. */
    struct hammer h = { { 60, 2000 }, 0, 1 };
    int status[4];
    uint64_t t0 = kt_wall_ms();
    fx_fork_all(4, child_hammer, &h, status);
    uint64_t elapsed = kt_wall_ms() - t0;
    int total = 0;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_le(status[i], 120);
        total += status[i];
    }
    ck_assert_int_ge(total, 60);
    ck_assert_int_le(total, 60 + (int)(elapsed * 60 / 2000) + 1);
    /* After the window passes the full burst is back. */
    struct timespec ts = { 2, 100000000 };
    nanosleep(&ts, NULL);
    uint64_t rem;
    struct kt_err err;
    ck_assert_int_eq(kt_ratelimit_remaining(fx_st, "t:shared:rpm", &h.lim, kt_wall_ms(), &rem, &err), 0);
    ck_assert_uint_eq(rem, 60);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("ratelimit");
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_key_format);
    tcase_add_test(tc, test_burst_then_refill);
    tcase_add_test(tc, test_tokens_charged_after_response);
    tcase_add_test(tc, test_limit_holds_across_four_processes);
    tcase_add_test(tc, test_limit_holds_across_four_processes_real_clock);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

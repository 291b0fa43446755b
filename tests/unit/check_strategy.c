/* check_strategy: the four strategies and their skips over real LMDB:
 * nginx's smooth WRR sequence, least_latency order, why everything was
 * skipped (429 vs 503), and admission right before an attempt. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kt/breaker.h"
#include "kt/err.h"
#include "kt/health.h"
#include "kt/ratelimit.h"
#include "kt/state.h"
#include "kt/strategy.h"
#include "route_fixture.h"

#define T0 1700000000000ull

static const struct kt_breaker_params BP = { 3, 30, 30, 1 };

static void target(struct kt_strategy_target *t, const char *id, double w, size_t idx)
{
    memset(t, 0, sizeof *t);
    t->id = id;
    t->weight = w;
    t->index = idx;
}

static void open_circuit(const char *id, uint64_t now)
{
    struct kt_breaker_ticket none = {0, 0};
    struct kt_err err;
    for (unsigned i = 0; i < BP.failure_threshold; i++)
        ck_assert_int_eq(kt_breaker_report(fx_st, id, &BP, &none, 0, now, &err), 0);
}

static size_t plan(enum kt_route_strategy s, struct kt_wrr *w, const struct kt_strategy_target *c,
                   size_t n, uint64_t now, size_t *order, enum kt_strategy_skip *skips,
                   struct kt_strategy_result *res)
{
    struct kt_err err;
    ck_assert_int_eq(kt_strategy_plan(fx_st, s, w, &BP, c, n, now, order, skips, res, &err), 0);
    return res->n;
}

START_TEST(test_parse_names)
{
    enum kt_route_strategy s;
    ck_assert_int_eq(kt_strategy_parse("weighted_round_robin", &s), 0);
    ck_assert_int_eq(s, KT_STRATEGY_WRR);
    ck_assert_int_eq(kt_strategy_parse("least_latency", &s), 0);
    ck_assert_int_eq(s, KT_STRATEGY_LEAST_LATENCY);
    ck_assert_str_eq(kt_strategy_name(KT_STRATEGY_FALLBACK), "fallback");
    ck_assert_int_eq(kt_strategy_parse("round_robin", &s), KT_EINVAL);
    ck_assert_str_eq(kt_strategy_skip_name(KT_SKIP_RATE_LIMITED), "rate_limited");
}
END_TEST

START_TEST(test_smooth_wrr_matches_nginx)
{
    struct kt_strategy_target c[3];
    target(&c[0], "a", 5, 0);
    target(&c[1], "b", 1, 1);
    target(&c[2], "c", 1, 2);
    struct kt_wrr w;
    ck_assert_int_eq(kt_wrr_init(&w, 3), 0);
    /* nginx, weights 5:1:1: a a b a c a a, and again. */
    static const char expect[] = "aabacaaaabacaa";
    size_t order[3];
    struct kt_strategy_result res;
    for (size_t i = 0; i < sizeof expect - 1; i++) {
        ck_assert_uint_eq(plan(KT_STRATEGY_WRR, &w, c, 3, T0, order, NULL, &res), 3);
        ck_assert_int_eq(c[order[0]].id[0], expect[i]);
        /* The rest follow in config order, as fallbacks. */
        size_t prev = SIZE_MAX;
        for (size_t k = 1; k < 3; k++) {
            ck_assert(prev == SIZE_MAX || order[k] > prev);
            prev = order[k];
        }
    }
    /* An open circuit drops out of the rotation; the others share it. */
    open_circuit("a", T0);
    int seen_b = 0, seen_c = 0;
    for (int i = 0; i < 4; i++) {
        enum kt_strategy_skip skips[3];
        ck_assert_uint_eq(plan(KT_STRATEGY_WRR, &w, c, 3, T0 + 1, order, skips, &res), 2);
        ck_assert_int_eq(skips[0], KT_SKIP_CIRCUIT_OPEN);
        ck_assert_int_ne(order[0], 0);
        seen_b += order[0] == 1;
        seen_c += order[0] == 2;
    }
    ck_assert_int_eq(seen_b, 2);
    ck_assert_int_eq(seen_c, 2);
    kt_wrr_free(&w);
}
END_TEST

START_TEST(test_fractional_weights)
{
    struct kt_strategy_target c[2];
    target(&c[0], "x", 0.75, 0);
    target(&c[1], "y", 0.25, 1);
    struct kt_wrr w;
    ck_assert_int_eq(kt_wrr_init(&w, 2), 0);
    size_t order[2];
    struct kt_strategy_result res;
    int x = 0;
    for (int i = 0; i < 400; i++) {
        plan(KT_STRATEGY_WRR, &w, c, 2, T0, order, NULL, &res);
        x += order[0] == 0;
    }
    ck_assert_int_eq(x, 300);
    kt_wrr_free(&w);
}
END_TEST

START_TEST(test_least_latency_order)
{
    struct kt_err err;
    struct kt_strategy_target c[4];
    target(&c[0], "slow", 1, 0);
    target(&c[1], "fast", 1, 1);
    target(&c[2], "new", 1, 2);
    target(&c[3], "mid", 1, 3);
    ck_assert_int_eq(kt_latency_observe(fx_st, "slow", 300, &err), 0);
    ck_assert_int_eq(kt_latency_observe(fx_st, "fast", 100, &err), 0);
    ck_assert_int_eq(kt_latency_observe(fx_st, "mid", 200, &err), 0);
    size_t order[4];
    struct kt_strategy_result res;
    ck_assert_uint_eq(plan(KT_STRATEGY_LEAST_LATENCY, NULL, c, 4, T0, order, NULL, &res), 4);
    ck_assert_uint_eq(order[0], 2);    /* unmeasured first, to get measured */
    ck_assert_uint_eq(order[1], 1);
    ck_assert_uint_eq(order[2], 3);
    ck_assert_uint_eq(order[3], 0);
    /* The EWMA moves: fast turns slow (0.3 weight per sample). */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(kt_health_passive(fx_st, "fast", 1, 1000, T0, &err), 0);
    ck_assert_int_eq(kt_latency_observe(fx_st, "new", 150, &err), 0);
    double ewma;
    uint64_t samples;
    ck_assert_int_eq(kt_latency_get(fx_st, "fast", &ewma, &samples, &err), 0);
    ck_assert_uint_eq(samples, 6);
    ck_assert(ewma > 800 && ewma < 900);    /* 1000 - 900 * 0.7^5 = 848.7 */
    plan(KT_STRATEGY_LEAST_LATENCY, NULL, c, 4, T0, order, NULL, &res);
    ck_assert_uint_eq(order[0], 2);    /* new: 150 */
    ck_assert_uint_eq(order[1], 3);    /* mid: 200 */
    ck_assert_uint_eq(order[2], 0);    /* slow: 300 */
    ck_assert_uint_eq(order[3], 1);    /* fast: 849 */
}
END_TEST

START_TEST(test_single_and_fallback_skip)
{
    struct kt_err err;
    struct kt_strategy_target c[3];
    target(&c[0], "p", 1, 0);
    target(&c[1], "q", 1, 1);
    target(&c[2], "r", 1, 2);
    c[0].health_max_age_ms = 10000;     /* p's probe runs every ~3 s */
    size_t order[3];
    enum kt_strategy_skip skips[3];
    struct kt_strategy_result res;
    ck_assert_uint_eq(plan(KT_STRATEGY_SINGLE, NULL, c, 3, T0, order, skips, &res), 1);
    ck_assert_uint_eq(order[0], 0);
    ck_assert_int_eq(kt_health_put(fx_st, "p", KT_HEALTH_UNHEALTHY, 0, 5, T0, &err), 0);
    ck_assert_uint_eq(plan(KT_STRATEGY_SINGLE, NULL, c, 3, T0, order, skips, &res), 1);
    ck_assert_uint_eq(order[0], 1);
    ck_assert_int_eq(skips[0], KT_SKIP_UNHEALTHY);
    /* A verdict older than its max age (nobody probes any more) no longer counts. */
    ck_assert_uint_eq(plan(KT_STRATEGY_SINGLE, NULL, c, 3, T0 + 10001, order, skips, &res), 1);
    ck_assert_uint_eq(order[0], 0);
    /* Without a max age it counts however old. */
    ck_assert_int_eq(kt_health_put(fx_st, "r", KT_HEALTH_UNHEALTHY, 0, 5, T0, &err), 0);
    ck_assert_uint_eq(plan(KT_STRATEGY_FALLBACK, NULL, c, 3, T0 + 9999999, order, skips, &res), 2);
    ck_assert_int_eq(skips[2], KT_SKIP_UNHEALTHY);
    ck_assert_int_eq(kt_health_put(fx_st, "r", KT_HEALTH_HEALTHY, 1, 5, T0, &err), 0);
    open_circuit("q", T0);
    ck_assert_uint_eq(plan(KT_STRATEGY_FALLBACK, NULL, c, 3, T0, order, skips, &res), 1);
    ck_assert_uint_eq(order[0], 2);
    ck_assert_int_eq(skips[1], KT_SKIP_CIRCUIT_OPEN);
    ck_assert_int_eq(skips[2], KT_SKIP_NONE);
    /* Healthy again and circuit half-open (cooldown over): back in, in order;
     * planning claims no trial slot. */
    ck_assert_int_eq(kt_health_put(fx_st, "p", KT_HEALTH_HEALTHY, 1, 5, T0, &err), 0);
    ck_assert_uint_eq(plan(KT_STRATEGY_FALLBACK, NULL, c, 3, T0 + 30000, order, skips, &res), 3);
    ck_assert_uint_eq(order[0], 0);
    ck_assert_uint_eq(order[1], 1);
    ck_assert_uint_eq(order[2], 2);
    struct kt_breaker_info bi;
    ck_assert_int_eq(kt_breaker_peek(fx_st, "q", &BP, T0 + 30000, &bi, &err), 0);
    ck_assert_uint_eq(bi.trials_in_flight, 0);
}
END_TEST

START_TEST(test_all_skipped_says_why)
{
    struct kt_strategy_target c[2];
    target(&c[0], "u", 1, 0);
    target(&c[1], "v", 1, 1);
    c[0].rpm = (struct kt_ratelimit){ 2, 60000 };
    c[1].tpm = (struct kt_ratelimit){ 100, 60000 };
    size_t order[2];
    enum kt_strategy_skip skips[2];
    struct kt_strategy_result res;
    struct kt_err err;
    struct kt_breaker_ticket t;
    uint64_t ra;
    /* Use up u's requests through admission, v's tokens by charging. */
    ck_assert_int_eq(kt_strategy_admit(fx_st, &c[0], &BP, T0, &t, &ra, &err), 0);
    ck_assert_int_eq(kt_strategy_admit(fx_st, &c[0], &BP, T0, &t, &ra, &err), 0);
    ck_assert_int_eq(kt_strategy_admit(fx_st, &c[0], &BP, T0, &t, &ra, &err), KT_ELIMIT);
    ck_assert_uint_eq(ra, 30000);
    ck_assert_int_eq(kt_ratelimit_charge(fx_st, "t:v:tpm", &c[1].tpm, 150, T0, &err), 0);
    ck_assert_uint_eq(plan(KT_STRATEGY_FALLBACK, NULL, c, 2, T0, order, skips, &res), 0);
    ck_assert_int_eq(res.http_status, 429);
    ck_assert_int_eq(skips[0], KT_SKIP_RATE_LIMITED);
    ck_assert_int_eq(skips[1], KT_SKIP_RATE_LIMITED);
    ck_assert_uint_eq(res.retry_after_ms, 30000);    /* the soonest: u; v waits 30.6 s */
    /* One skipped for an open circuit: that is an outage, 503. */
    open_circuit("v", T0);
    ck_assert_uint_eq(plan(KT_STRATEGY_FALLBACK, NULL, c, 2, T0, order, skips, &res), 0);
    ck_assert_int_eq(res.http_status, 503);
    ck_assert_int_eq(skips[1], KT_SKIP_CIRCUIT_OPEN);
    /* No candidates at all: 503 too. */
    ck_assert_uint_eq(plan(KT_STRATEGY_SINGLE, NULL, c, 0, T0, order, skips, &res), 0);
    ck_assert_int_eq(res.http_status, 503);
}
END_TEST

START_TEST(test_admit_claims_breaker_trial)
{
    struct kt_strategy_target c;
    target(&c, "w", 1, 0);
    struct kt_err err;
    struct kt_breaker_ticket t;
    uint64_t ra;
    open_circuit("w", T0);
    ck_assert_int_eq(kt_strategy_admit(fx_st, &c, &BP, T0 + 1, &t, &ra, &err), KT_EAGAIN);
    ck_assert_int_eq(kt_strategy_admit(fx_st, &c, &BP, T0 + 30000, &t, &ra, &err), 0);
    ck_assert_int_eq(t.trial, 1);
    ck_assert_int_eq(kt_strategy_admit(fx_st, &c, &BP, T0 + 30001, &t, &ra, &err), KT_EAGAIN);
}
END_TEST

START_TEST(test_many_targets)
{
    enum { N = 40 };
    struct kt_strategy_target c[N];
    char ids[N][8];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "m%d", i);
        target(&c[i], ids[i], 1, (size_t)i);
    }
    struct kt_err err;
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(kt_latency_observe(fx_st, ids[i], (uint32_t)(1000 - i), &err), 0);
    size_t order[N];
    struct kt_strategy_result res;
    ck_assert_uint_eq(plan(KT_STRATEGY_LEAST_LATENCY, NULL, c, N, T0, order, NULL, &res), N);
    for (int i = 0; i < N; i++)
        ck_assert_uint_eq(order[i], (size_t)(N - 1 - i));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("strategy");
    TCase *tc = tcase_create("strategy");
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_add_test(tc, test_parse_names);
    tcase_add_test(tc, test_smooth_wrr_matches_nginx);
    tcase_add_test(tc, test_fractional_weights);
    tcase_add_test(tc, test_least_latency_order);
    tcase_add_test(tc, test_single_and_fallback_skip);
    tcase_add_test(tc, test_all_skipped_says_why);
    tcase_add_test(tc, test_admit_claims_breaker_trial);
    tcase_add_test(tc, test_many_targets);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

/* check_injection: placeholder, replaced below. */
#include <check.h>
#include "kt/injection.h"
START_TEST(test_smoke)
{
    struct kt_injection_scratch s;
    struct kt_injection_result r;
    ck_assert_int_eq(kt_injection_scratch_init(&s), 0);
    ck_assert_int_eq(kt_injection_score("hi", 2, &s, &r), 0);
    kt_injection_scratch_free(&s);
}
END_TEST
int main(void)
{
    Suite *su = suite_create("injection");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_smoke);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf != 0;
}

/* check_sse: the incremental SSE parser (splits anywhere, CR/LF/CRLF,
 * comments, multi-line data, limits) and the event writer. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/sse.h"

struct got {
    int n;
    char ev[16][32];
    char data[16][256];
    int abort_at;
};

static int collect(void *ud, const char *event, const char *data, size_t len)
{
    struct got *g = ud;
    if (g->abort_at && g->n + 1 == g->abort_at)
        return -42;
    if (g->n < 16) {
        snprintf(g->ev[g->n], sizeof g->ev[0], "%s", event ? event : "(none)");
        ck_assert_uint_eq(strlen(data), len);
        snprintf(g->data[g->n], sizeof g->data[0], "%.*s", (int)len, data);
    }
    g->n++;
    return 0;
}

static const char stream[] =
    ": comment line\r\n"
    "event: message_start\r\n"
    "data: {\"a\":1}\r\n"
    "\r\n"
    "data: line1\n"
    "data:line2\n"
    "id: 7\n"
    "retry: 100\n"
    "\n"
    "event: x\r"
    "data\r"
    "\r"
    "event: only-name-no-data\n"
    "\n"
    "data: last\n\n";

static void check_stream(const struct got *g)
{
    ck_assert_int_ge(g->n, 3);
    ck_assert_str_eq(g->ev[0], "message_start");
    ck_assert_str_eq(g->data[0], "{\"a\":1}");
    ck_assert_str_eq(g->ev[1], "(none)");
    ck_assert_str_eq(g->data[1], "line1\nline2");
    ck_assert_str_eq(g->ev[2], "x");
    ck_assert_str_eq(g->data[2], "");
}

START_TEST(test_sse_whole)
{
    struct kt_sse_parser p;
    struct got g = {0};
    struct kt_err err = {0};
    kt_sse_parser_init(&p, 0);
    ck_assert_int_eq(kt_sse_parser_feed(&p, stream, sizeof stream - 1, collect, &g, &err), 0);
    ck_assert_int_eq(g.n, 4);
    check_stream(&g);
    ck_assert_str_eq(g.data[3], "last");
    kt_sse_parser_free(&p);
}
END_TEST

/* Every split into two feeds, and byte by byte, gives the same events. */
START_TEST(test_sse_split_everywhere)
{
    size_t n = sizeof stream - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        struct kt_sse_parser p;
        struct got g = {0};
        kt_sse_parser_init(&p, 0);
        ck_assert_int_eq(kt_sse_parser_feed(&p, stream, cut, collect, &g, NULL), 0);
        ck_assert_int_eq(kt_sse_parser_feed(&p, stream + cut, n - cut, collect, &g, NULL), 0);
        ck_assert_int_eq(g.n, 4);
        check_stream(&g);
        kt_sse_parser_free(&p);
    }
    struct kt_sse_parser p;
    struct got g = {0};
    kt_sse_parser_init(&p, 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(kt_sse_parser_feed(&p, stream + i, 1, collect, &g, NULL), 0);
    ck_assert_int_eq(g.n, 4);
    check_stream(&g);
    kt_sse_parser_free(&p);
}
END_TEST

/* "\r" at the end of one feed and "\n" at the start of the next are one
 * line terminator, not two (which would dispatch an event early). */
START_TEST(test_sse_crlf_split)
{
    struct kt_sse_parser p;
    struct got g = {0};
    kt_sse_parser_init(&p, 0);
    ck_assert_int_eq(kt_sse_parser_feed(&p, "data: a\r", 8, collect, &g, NULL), 0);
    ck_assert_int_eq(kt_sse_parser_feed(&p, "\ndata: b\r", 9, collect, &g, NULL), 0);
    ck_assert_int_eq(g.n, 0);
    ck_assert_int_eq(kt_sse_parser_feed(&p, "\n", 1, collect, &g, NULL), 0);
    ck_assert_int_eq(g.n, 0);
    ck_assert_int_eq(kt_sse_parser_feed(&p, "\r\n", 2, collect, &g, NULL), 0);
    ck_assert_int_eq(g.n, 1);
    ck_assert_str_eq(g.data[0], "a\nb");
    kt_sse_parser_free(&p);
}
END_TEST

START_TEST(test_sse_line_limit)
{
    struct kt_sse_parser p;
    struct got g = {0};
    struct kt_err err = {0};
    kt_sse_parser_init(&p, 16);
    ck_assert_int_eq(kt_sse_parser_feed(&p, "data: 0123456789\n\n", 18, collect, &g, &err), 0);
    ck_assert_int_eq(g.n, 1);
    /* too long within one feed */
    ck_assert_int_eq(kt_sse_parser_feed(&p, "data: 0123456789abc\n", 20, collect, &g, &err), KT_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "longer than 16"));
    kt_sse_parser_free(&p);
    /* too long across feeds, with no terminator yet */
    kt_sse_parser_init(&p, 16);
    ck_assert_int_eq(kt_sse_parser_feed(&p, "data: 01234", 11, collect, &g, &err), 0);
    ck_assert_int_eq(kt_sse_parser_feed(&p, "56789abcdef", 11, collect, &g, &err), KT_ELIMIT);
    kt_sse_parser_free(&p);
    /* many short data lines adding up past the limit */
    kt_sse_parser_init(&p, 16);
    ck_assert_int_eq(kt_sse_parser_feed(&p, "data: 0123456\ndata: 0123456\ndata: 0\n", 36,
                                        collect, &g, &err), KT_ELIMIT);
    kt_sse_parser_free(&p);
}
END_TEST

START_TEST(test_sse_abort_and_finish)
{
    struct kt_sse_parser p;
    struct got g = { .abort_at = 2 };
    kt_sse_parser_init(&p, 0);
    ck_assert_int_eq(kt_sse_parser_feed(&p, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27, collect, &g, NULL), -42);
    ck_assert_int_eq(g.n, 1);
    kt_sse_parser_free(&p);

    struct got g2 = {0};
    kt_sse_parser_init(&p, 0);
    ck_assert_int_eq(kt_sse_parser_feed(&p, "event: e\ndata: tail", 19, collect, &g2, NULL), 0);
    ck_assert_int_eq(g2.n, 0);
    ck_assert_int_eq(kt_sse_parser_finish(&p, collect, &g2, NULL), 0);
    ck_assert_int_eq(g2.n, 1);
    ck_assert_str_eq(g2.ev[0], "e");
    ck_assert_str_eq(g2.data[0], "tail");
    kt_sse_parser_free(&p);
}
END_TEST

START_TEST(test_sse_writer_roundtrip)
{
    struct kt_buf b = {0};
    ck_assert_int_eq(kt_sse_write_event(&b, "message_delta", "{\"x\":1}", 7), 0);
    ck_assert_str_eq(b.data, "event: message_delta\ndata: {\"x\":1}\n\n");
    kt_buf_reset(&b);
    const char *multi = "a\nb\n";
    kt_sse_write_event(&b, NULL, multi, strlen(multi));
    ck_assert_str_eq(b.data, "data: a\ndata: b\ndata: \n\n");
    kt_sse_write_event(&b, NULL, "", 0);
    struct kt_sse_parser p;
    struct got g = {0};
    kt_sse_parser_init(&p, 0);
    ck_assert_int_eq(kt_sse_parser_feed(&p, b.data, b.len, collect, &g, NULL), 0);
    ck_assert_int_eq(g.n, 2);
    ck_assert_str_eq(g.data[0], multi);
    ck_assert_str_eq(g.data[1], "");
    kt_sse_parser_free(&p);
    kt_buf_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sse");
    TCase *tc = tcase_create("sse");
    tcase_add_test(tc, test_sse_whole);
    tcase_add_test(tc, test_sse_split_everywhere);
    tcase_add_test(tc, test_sse_crlf_split);
    tcase_add_test(tc, test_sse_line_limit);
    tcase_add_test(tc, test_sse_abort_and_finish);
    tcase_add_test(tc, test_sse_writer_roundtrip);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

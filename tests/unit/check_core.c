/* check_core: arena, buffer, errors and ids. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "kt/arena.h"
#include "kt/buf.h"
#include "kt/err.h"
#include "kt/util.h"

START_TEST(test_arena_alloc_and_reset)
{
    struct kt_arena a;
    kt_arena_init(&a, 64);
    char *s = kt_arena_strdup(&a, "hello");
    ck_assert_str_eq(s, "hello");
    void *big = kt_arena_alloc(&a, 1000);   /* larger than a block */
    ck_assert_ptr_nonnull(big);
    ck_assert_uint_eq(((uintptr_t)big) % 16, 0);
    char *p = kt_arena_printf(&a, "%d-%s", 42, "x");
    ck_assert_str_eq(p, "42-x");
    ck_assert_str_eq(kt_arena_concat(&a, "x-request-id: ", "req_1"), "x-request-id: req_1");
    ck_assert_str_eq(kt_arena_concat(&a, "", ""), "");
    kt_arena_reset(&a);
    ck_assert_uint_eq(a.total, 0);
    ck_assert_ptr_nonnull(kt_arena_alloc(&a, 8));
    kt_arena_free(&a);

    /* an oversized first block is not kept by reset: a reused arena must
     * not pin one big request's memory */
    kt_arena_init(&a, 64);
    ck_assert_ptr_nonnull(kt_arena_alloc(&a, 4096));
    kt_arena_reset(&a);
    ck_assert_ptr_null(a.head);
    ck_assert_ptr_nonnull(kt_arena_alloc(&a, 8));
    kt_arena_reset(&a);
    ck_assert_ptr_nonnull(a.head);          /* a standard block is kept */
    kt_arena_free(&a);
}
END_TEST

START_TEST(test_buf_json_escape)
{
    struct kt_buf b = {0};
    kt_buf_json_str(&b, "a\"b\\c\n\x01", 7);
    ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
    kt_buf_reset(&b);
    kt_buf_printf(&b, "%s=%d", "n", 7);
    ck_assert_str_eq(b.data, "n=7");
    kt_buf_consume(&b, 2);
    ck_assert_str_eq(b.data, "7");
    kt_buf_free(&b);
}
END_TEST

/* The word-at-a-time scan must find every byte that needs escaping at any
 * offset: each byte value at each position of strings around the 8-byte
 * word size, checked against a bytewise reference. */
static void ref_escape(struct kt_buf *b, const unsigned char *s, size_t n)
{
    kt_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            kt_buf_putc(b, '\\');
            kt_buf_putc(b, (char)c);
        } else if (c == '\n') {
            kt_buf_puts(b, "\\n");
        } else if (c == '\r') {
            kt_buf_puts(b, "\\r");
        } else if (c == '\t') {
            kt_buf_puts(b, "\\t");
        } else if (c == '\b') {
            kt_buf_puts(b, "\\b");
        } else if (c == '\f') {
            kt_buf_puts(b, "\\f");
        } else if (c < 0x20) {
            kt_buf_printf(b, "\\u%04x", c);
        } else {
            kt_buf_putc(b, (char)c);
        }
    }
    kt_buf_putc(b, '"');
}

START_TEST(test_buf_json_escape_every_byte_every_offset)
{
    struct kt_buf got = {0}, want = {0};
    unsigned char s[24];
    for (size_t n = 1; n <= sizeof s; n++) {
        for (size_t pos = 0; pos < n; pos++) {
            for (int c = 0; c < 256; c++) {
                for (size_t k = 0; k < n; k++)
                    s[k] = (unsigned char)(0x41 + (k % 26)) | (k % 5 == 4 ? 0x80 : 0);
                s[pos] = (unsigned char)c;
                kt_buf_reset(&got);
                kt_buf_reset(&want);
                kt_buf_json_str(&got, (const char *)s, n);
                ref_escape(&want, s, n);
                ck_assert_uint_eq(got.len, want.len);
                ck_assert_mem_eq(got.data, want.data, want.len);
            }
        }
    }
    kt_buf_free(&got);
    kt_buf_free(&want);
}
END_TEST

START_TEST(test_err_format_with_position)
{
    struct kt_err e;
    char out[700];
    kt_err_set_at(&e, KT_EINVAL, "a.yaml", 3, 5, "unknown key '%s'", "foo");
    ck_assert_str_eq(kt_err_format(&e, out, sizeof out), "a.yaml:3:5: unknown key 'foo'");
    kt_err_set(&e, KT_EIO, "plain");
    ck_assert_str_eq(kt_err_format(&e, out, sizeof out), "plain");
}
END_TEST

START_TEST(test_buf_put_i64)
{
    static const long long v[] = { 0, 7, -7, 10, 4096, -100000, 9223372036854775807LL,
                                   -9223372036854775807LL - 1 };
    struct kt_buf b = {0};
    char want[32];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        kt_buf_reset(&b);
        kt_buf_put_i64(&b, v[i]);
        snprintf(want, sizeof want, "%lld", v[i]);
        ck_assert_str_eq(b.data, want);
    }
    kt_buf_free(&b);
}
END_TEST

START_TEST(test_request_ids_differ)
{
    char a[40], b[40];
    kt_request_id(a, sizeof a);
    kt_request_id(b, sizeof b);
    ck_assert_int_eq(strncmp(a, "req_", 4), 0);
    ck_assert_str_ne(a, b);
    ck_assert_uint_eq(strlen(a), 28);
    ck_assert_uint_eq(strspn(a + 4, "0123456789abcdef"), 24);
    char small[8];
    kt_request_id(small, sizeof small);         /* truncated like snprintf */
    ck_assert_uint_eq(strlen(small), 7);
    ck_assert_int_eq(strncmp(small, "req_", 4), 0);
    char ts[40];
    ck_assert_str_eq(kt_rfc3339(0, ts, sizeof ts), "1970-01-01T00:00:00.000Z");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_arena_alloc_and_reset);
    tcase_add_test(tc, test_buf_json_escape);
    tcase_add_test(tc, test_buf_json_escape_every_byte_every_offset);
    tcase_add_test(tc, test_err_format_with_position);
    tcase_add_test(tc, test_buf_put_i64);
    tcase_add_test(tc, test_request_ids_differ);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

/* check_prober: active probes against a tiny HTTP server forked by the
 * test on 127.0.0.1: 200s turn healthy, 500s, 401s, refused connections
 * and timeouts turn unhealthy, thresholds count consecutive results, and
 * the event loop keeps running while probes hang. */
#define _GNU_SOURCE   /* strcasestr */
#include <check.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "kt/health.h"
#include "kt/prober.h"
#include "kt/state.h"
#include "route_fixture.h"

static pid_t server_pid;
static int server_port;

/* One connection: read the head, answer by path. /flaky answers 500 to
 * its first three requests, /slow never answers, /auth wants a header. */
static void serve_one(int c, int *flaky_count, int *held, int *nheld)
{
    char req[4096];
    size_t len = 0;
    while (len < sizeof req - 1) {
        ssize_t r = read(c, req + len, sizeof req - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[len] = '\0';
    int status = 404;
    if (strncmp(req, "GET /ok ", 8) == 0)
        status = 200;
    else if (strncmp(req, "GET /bad ", 9) == 0)
        status = 500;
    else if (strncmp(req, "GET /auth ", 10) == 0)
        status = strcasestr(req, "\r\nx-probe-key: s3cret\r\n") ? 200 : 401;
    else if (strncmp(req, "GET /flaky ", 11) == 0)
        status = (*flaky_count)++ < 3 ? 500 : 200;
    else if (strncmp(req, "GET /slow ", 10) == 0) {
        if (*nheld < 64)
            held[(*nheld)++] = c;   /* never answered, never closed */
        return;
    }
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", status);
    if (write(c, resp, (size_t)n) != n)
        perror("write");
    close(c);
}

static void server_start(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(s, 64), 0);
    socklen_t al = sizeof a;
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &al), 0);
    server_port = ntohs(a.sin_port);
    server_pid = fork();
    ck_assert_int_ge(server_pid, 0);
    if (server_pid == 0) {
        int flaky = 0, held[64], nheld = 0;
        for (;;) {
            int c = accept(s, NULL, NULL);
            if (c >= 0)
                serve_one(c, &flaky, held, &nheld);
        }
    }
    close(s);
}

static void server_stop(void)
{
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
}

/* A port with nothing listening. */
static int closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &al);
    close(s);
    return ntohs(a.sin_port);
}

static void tick(evutil_socket_t fd, short ev, void *arg)
{
    (*(int *)arg)++;
}

static struct kt_health_info health(const char *id)
{
    struct kt_health_info h;
    struct kt_err err;
    ck_assert_int_eq(kt_health_get(fx_st, id, &h, &err), 0);
    return h;
}

START_TEST(test_probes_decide_health)
{
    server_start();
    char u_ok[64], u_bad[64], u_auth[64], u_flaky[64], u_slow[64], u_closed[64];
    snprintf(u_ok, sizeof u_ok, "http://127.0.0.1:%d/ok", server_port);
    snprintf(u_bad, sizeof u_bad, "http://127.0.0.1:%d/bad", server_port);
    snprintf(u_auth, sizeof u_auth, "http://127.0.0.1:%d/auth", server_port);
    snprintf(u_flaky, sizeof u_flaky, "http://127.0.0.1:%d/flaky", server_port);
    snprintf(u_slow, sizeof u_slow, "http://127.0.0.1:%d/slow", server_port);
    snprintf(u_closed, sizeof u_closed, "http://127.0.0.1:%d/ok", closed_port());
    static const char *const auth_hdrs[] = { "x-probe-key: s3cret", NULL };
    const struct kt_probe_spec specs[] = {
        { "ok", u_ok, NULL, 0.1, 1, 2, 2, 0 },
        { "bad", u_bad, NULL, 0.1, 1, 2, 2, 0 },
        { "auth", u_auth, auth_hdrs, 0.1, 1, 2, 2, 0 },
        { "noauth", u_auth, NULL, 0.1, 1, 2, 2, 0 },
        { "noauth-up", u_auth, NULL, 0.1, 1, 2, 2, 499 },   /* a 401 still means "up" */
        { "flaky", u_flaky, NULL, 0.1, 1, 2, 2, 0 },
        { "slow", u_slow, NULL, 0.1, 0.2, 1, 1, 0 },
        { "closed", u_closed, NULL, 0.1, 1, 1, 1, 0 },
    };
    size_t n = sizeof specs / sizeof specs[0];
    struct event_base *base = event_base_new();
    ck_assert_ptr_nonnull(base);
    struct kt_prober *p;
    struct kt_err err;
    ck_assert_int_eq(kt_prober_new(base, specs, n, fx_st, &p, &err), 0);
    /* A 20 ms ticker on the same loop: it must keep ticking while the
     * slow probes hang, since nothing may block the loop. */
    int ticks = 0;
    struct event *ticker = event_new(base, -1, EV_PERSIST, tick, &ticks);
    struct timeval t20 = { 0, 20000 }, stop = { 1, 500000 };
    event_add(ticker, &t20);
    event_base_loopexit(base, &stop);
    event_base_dispatch(base);
    unsigned long rounds = kt_prober_rounds(p);
    event_free(ticker);
    kt_prober_free(p);
    event_base_free(base);
    server_stop();

    /* ~75 expected in 1.5 s; a loop blocked by the 0.2 s timeouts would get ~15. */
    ck_assert_int_ge(ticks, 40);
    ck_assert_uint_ge(rounds, 8 * 5);
    struct kt_health_info h = health("ok");
    ck_assert_str_eq(kt_health_status_name(h.status), "healthy");
    ck_assert_uint_ge(h.consecutive_ok, 5);
    ck_assert_uint_gt(h.last_check_ms, 0);
    ck_assert_int_eq(health("bad").status, KT_HEALTH_UNHEALTHY);
    ck_assert_uint_ge(health("bad").consecutive_fail, 5);
    ck_assert_int_eq(health("auth").status, KT_HEALTH_HEALTHY);
    ck_assert_int_eq(health("noauth").status, KT_HEALTH_UNHEALTHY);
    ck_assert_int_eq(health("noauth-up").status, KT_HEALTH_HEALTHY);
    h = health("flaky");
    ck_assert_int_eq(h.status, KT_HEALTH_HEALTHY);     /* 500 x3, then 200s */
    ck_assert_uint_ge(h.consecutive_ok, 2);
    h = health("slow");
    ck_assert_int_eq(h.status, KT_HEALTH_UNHEALTHY);
    ck_assert_uint_ge(h.consecutive_fail, 2);           /* 0.2 s timeouts */
    ck_assert_int_eq(health("closed").status, KT_HEALTH_UNHEALTHY);
    ck_assert_int_eq(health("never-probed").status, KT_HEALTH_UNKNOWN);
}
END_TEST

START_TEST(test_threshold_keeps_previous_verdict)
{
    /* A restarted prober keeps "unhealthy" until healthy_threshold passes. */
    struct kt_err err;
    ck_assert_int_eq(kt_health_put(fx_st, "t", KT_HEALTH_UNHEALTHY, 0, 0, 1, &err), 0);
    server_start();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", server_port);
    const struct kt_probe_spec spec = { "t", url, NULL, 0.3, 1, 3, 1, 0 };
    struct event_base *base = event_base_new();
    struct kt_prober *p;
    ck_assert_int_eq(kt_prober_new(base, &spec, 1, fx_st, &p, &err), 0);
    struct timeval stop = { 0, 450000 };      /* rounds at 0 and 0.3 s: 2 < 3 */
    event_base_loopexit(base, &stop);
    event_base_dispatch(base);
    kt_prober_free(p);
    event_base_free(base);
    server_stop();
    struct kt_health_info h = health("t");
    ck_assert_uint_eq(h.consecutive_ok, 2);
    ck_assert_int_eq(h.status, KT_HEALTH_UNHEALTHY);
    /* Bad specs are refused up front. */
    const struct kt_probe_spec bad = { "x", NULL, NULL, 1, 1, 1, 1, 0 };
    base = event_base_new();
    ck_assert_int_eq(kt_prober_new(base, &bad, 1, fx_st, &p, &err), KT_EINVAL);
    event_base_free(base);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("prober");
    TCase *tc = tcase_create("prober");
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_probes_decide_health);
    tcase_add_test(tc, test_threshold_keeps_previous_verdict);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

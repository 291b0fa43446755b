/* log.c: the process-wide logger (owned by each process after fork).
 * Lines are written with one write(2) so lines from several processes
 * sharing a file never interleave mid-line. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#include "kt/log.h"

static struct {
    enum kt_log_level level;
    int json;
    int fd;
    char path[512];
    char role[32];
} g_log = { KT_LOG_INFO, 0, 2, "", "ktd" };

static const char *const level_names[] = { "debug", "info", "warn", "error" };

int kt_log_level_parse(const char *s, enum kt_log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum kt_log_level)i;
            return 0;
        }
    if (strcmp(s, "warning") == 0) {
        *out = KT_LOG_WARN;
        return 0;
    }
    return -1;
}

int kt_log_setup(enum kt_log_level level, int json, const char *path, const char *role)
{
    g_log.level = level;
    g_log.json = json;
    if (role)
        kt_log_set_role(role);
    if (path == NULL || path[0] == '\0' || strcmp(path, "stderr") == 0) {
        g_log.path[0] = '\0';
        if (g_log.fd > 2)
            close(g_log.fd);
        g_log.fd = 2;
        return 0;
    }
    snprintf(g_log.path, sizeof g_log.path, "%s", path);
    return kt_log_reopen();
}

void kt_log_set_role(const char *role)
{
    snprintf(g_log.role, sizeof g_log.role, "%s", role);
}

int kt_log_reopen(void)
{
    if (g_log.path[0] == '\0')
        return 0;
    int fd = open(g_log.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (g_log.fd > 2)
        close(g_log.fd);
    g_log.fd = fd;
    return 0;
}

int kt_log_enabled(enum kt_log_level level)
{
    return level >= g_log.level;
}

/* json_escape: escape msg into out for a JSON string value. */
static size_t json_escape(char *out, size_t cap, const char *msg)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && n + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[n++] = '\\';
            out[n++] = (char)*p;
        } else if (*p < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", *p);
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n] = '\0';
    return n;
}

void kt_log(enum kt_log_level level, const char *fmt, ...)
{
    if (level < g_log.level)
        return;
    char msg[2048], line[4608], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof ts - tl, ".%03ldZ", (long)(tv.tv_usec / 1000));

    int len;
    if (g_log.json) {
        char esc[4200];
        json_escape(esc, sizeof esc, msg);
        len = snprintf(line, sizeof line,
                       "{\"time\":\"%s\",\"level\":\"%s\",\"process\":\"%s\",\"pid\":%d,\"msg\":\"%s\"}\n",
                       ts, level_names[level], g_log.role, (int)getpid(), esc);
    } else {
        len = snprintf(line, sizeof line, "%s [%s] %s[%d]: %s\n", ts, level_names[level],
                       g_log.role, (int)getpid(), msg);
    }
    if (len < 0)
        return;
    if ((size_t)len >= sizeof line) {
        len = sizeof line - 1;
        line[len - 1] = '\n';
    }
    ssize_t w;
    do {
        w = write(g_log.fd, line, (size_t)len);
    } while (w < 0 && errno == EINTR);
}

/* err.c: filling and printing struct kt_err. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kt/err.h"

int kt_err_set(struct kt_err *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    err->file[0] = '\0';
    err->line = err->col = 0;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

int kt_err_set_at(struct kt_err *err, int code, const char *file, int line,
                  int col, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    err->line = line;
    err->col = col;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

const char *kt_err_format(const struct kt_err *err, char *out, size_t outlen)
{
    if (err->file[0])
        snprintf(out, outlen, "%s:%d:%d: %s", err->file, err->line, err->col, err->msg);
    else
        snprintf(out, outlen, "%s", err->msg);
    return out;
}

/* err.h: error codes and the error record every fallible function fills.
 * A function returns 0 or a negative KT_E* code; the message says what a
 * user can do about it. Config errors also carry file, line and column. */
#ifndef KT_ERR_H
#define KT_ERR_H

#include <stddef.h>

enum {
    KT_OK = 0,
    KT_EINVAL = -1,   /* bad input: config, request, argument */
    KT_ENOMEM = -2,
    KT_EIO = -3,      /* file or socket error; errno-based message */
    KT_ENOENT = -4,
    KT_ELIMIT = -5,   /* a configured limit was exceeded */
    KT_EAGAIN = -6,   /* try again later (full queue, busy state) */
    KT_ESTATE = -7,   /* shared state unusable */
};

struct kt_err {
    int code;
    char file[256];   /* empty when the error has no source position */
    int line, col;    /* 1-based; 0 when unknown */
    char msg[512];
};

/* kt_err_set: fill err (may be NULL) and return code, so callers can
 * `return kt_err_set(err, KT_EINVAL, "...")`. */
int kt_err_set(struct kt_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* kt_err_set_at: same, with a source position (config errors). */
int kt_err_set_at(struct kt_err *err, int code, const char *file, int line,
                  int col, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* kt_err_format: "FILE:LINE:COL: message" or just the message. */
const char *kt_err_format(const struct kt_err *err, char *out, size_t outlen);

#endif

/* util.h: clocks, ids and small string helpers shared by every module. */
#ifndef KT_UTIL_H
#define KT_UTIL_H

#include <stddef.h>
#include <stdint.h>

uint64_t kt_now_ms(void);          /* CLOCK_MONOTONIC, milliseconds */
uint64_t kt_now_us(void);          /* CLOCK_MONOTONIC, microseconds */
uint64_t kt_wall_ms(void);         /* CLOCK_REALTIME, ms since the epoch */
/* kt_rfc3339: wall-clock ms as 2026-11-25T16:37:47.123Z into out (≥ 32 bytes). */
const char *kt_rfc3339(uint64_t wall_ms, char *out, size_t outlen);
/* kt_random_hex: n random bytes from the OS as 2n hex chars + NUL. */
int kt_random_hex(char *out, size_t nbytes);
/* kt_request_id: a fresh id such as "req_3f9a..." (out ≥ 40 bytes). */
void kt_request_id(char *out, size_t outlen);
uint64_t kt_random_u64(void);      /* fast PRNG seeded per process, for jitter and ids */
void kt_random_reseed(void);        /* call in a child right after fork */
int kt_streq_ci(const char *a, const char *b);
/* kt_hex_encode: binary → lowercase hex (out holds 2n+1). */
void kt_hex_encode(const unsigned char *in, size_t n, char *out);

#endif

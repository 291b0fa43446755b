/* util.c: clocks, ids and small helpers (see util.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

#include "kt/util.h"

uint64_t kt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t kt_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t kt_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *kt_rfc3339(uint64_t wall_ms, char *out, size_t outlen)
{
    time_t sec = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, outlen - n, ".%03uZ", (unsigned)(wall_ms % 1000));
    return out;
}

void kt_hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int kt_random_hex(char *out, size_t nbytes)
{
    unsigned char raw[64];
    if (nbytes > sizeof raw)
        nbytes = sizeof raw;
    size_t got = 0;
    while (got < nbytes) {
        ssize_t r = getrandom(raw + got, nbytes - got, 0);
        if (r <= 0) {
            /* getrandom never fails after boot; fall back to the PRNG anyway. */
            for (; got < nbytes; got++)
                raw[got] = (unsigned char)kt_random_u64();
            break;
        }
        got += (size_t)r;
    }
    kt_hex_encode(raw, nbytes, out);
    return 0;
}

void kt_request_id(char *out, size_t outlen)
{
    /* Cheap and unique enough: PRNG output, not the OS pool, on the hot path. */
    static const char hex[] = "0123456789abcdef";
    uint64_t a = kt_random_u64(), b = kt_random_u64();
    char id[4 + 16 + 8 + 1] = "req_";
    for (int i = 0; i < 16; i++)
        id[4 + i] = hex[(a >> (60 - 4 * i)) & 15];
    for (int i = 0; i < 8; i++)
        id[20 + i] = hex[(b >> (28 - 4 * i)) & 15];
    id[28] = '\0';
    /* same as snprintf("req_%016llx%08llx"), truncation included */
    if (outlen == 0)
        return;
    size_t n = outlen - 1 < 28 ? outlen - 1 : 28;
    memcpy(out, id, n);
    out[n] = '\0';
}

/* xorshift64* state, per process: seeded lazily, and again after fork by
 * kt_random_reseed() (children must not share their parent's sequence). */
static uint64_t rng_state;

void kt_random_reseed(void)
{
    if (getrandom(&rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state || rng_state == 0)
        rng_state = (uint64_t)kt_now_us() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
}

uint64_t kt_random_u64(void)
{
    if (rng_state == 0)
        kt_random_reseed();
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

int kt_streq_ci(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

/* arena.h: a per-request bump allocator. Everything a request allocates
 * that lives as long as the request comes from its arena, which is freed
 * once at request end: one free path, no leaks on error paths. */
#ifndef KT_ARENA_H
#define KT_ARENA_H

#include <stddef.h>

struct kt_arena_block;

struct kt_arena {
    struct kt_arena_block *head;
    size_t block_size;
    size_t total;             /* bytes handed out, for metrics and limits */
};

void kt_arena_init(struct kt_arena *a, size_t block_size);
void *kt_arena_alloc(struct kt_arena *a, size_t n);        /* 16-byte aligned, zeroed */
char *kt_arena_strndup(struct kt_arena *a, const char *s, size_t n);
char *kt_arena_strdup(struct kt_arena *a, const char *s);
/* kt_arena_concat: x then y, e.g. a header line from its name and value. */
char *kt_arena_concat(struct kt_arena *a, const char *x, const char *y);
char *kt_arena_printf(struct kt_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* kt_arena_reset: free all but the first block (kept when it is of the
 * standard block_size), for reuse by the next request. */
void kt_arena_reset(struct kt_arena *a);
void kt_arena_free(struct kt_arena *a);

#endif

/* arena.c: per-request bump allocator (see arena.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/arena.h"

struct kt_arena_block {
    struct kt_arena_block *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
};

void kt_arena_init(struct kt_arena *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : 8192;
    a->total = 0;
}

void *kt_arena_alloc(struct kt_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct kt_arena_block *b = a->head;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > a->block_size ? n : a->block_size;
        b = malloc(sizeof *b + cap);
        if (b == NULL)
            return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

char *kt_arena_strndup(struct kt_arena *a, const char *s, size_t n)
{
    char *p = kt_arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *kt_arena_strdup(struct kt_arena *a, const char *s)
{
    return kt_arena_strndup(a, s, strlen(s));
}

char *kt_arena_concat(struct kt_arena *a, const char *x, const char *y)
{
    size_t nx = strlen(x), ny = strlen(y);
    char *p = kt_arena_alloc(a, nx + ny + 1);
    if (p) {
        memcpy(p, x, nx);
        memcpy(p + nx, y, ny + 1);
    }
    return p;
}

char *kt_arena_printf(struct kt_arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = n >= 0 ? kt_arena_alloc(a, (size_t)n + 1) : NULL;
    if (p)
        vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

void kt_arena_reset(struct kt_arena *a)
{
    struct kt_arena_block *b = a->head;
    if (b == NULL)
        return;
    /* Keep the oldest block (the tail) for the next user when it is a
     * standard one; an oversized first block goes, so a reused arena never
     * pins one huge request's memory. */
    while (b->next) {
        struct kt_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->total = 0;
    if (b->cap != a->block_size) {
        free(b);
        a->head = NULL;
        return;
    }
    b->used = 0;
    a->head = b;
}

void kt_arena_free(struct kt_arena *a)
{
    struct kt_arena_block *b = a->head;
    while (b) {
        struct kt_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}

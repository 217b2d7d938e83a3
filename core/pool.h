#ifndef POSTERN_POOL_H
#define POSTERN_POOL_H

/* An arena: many small allocations, freed together by pool_clear() or
 * pool_free(). One per connection and one per command (STYLE.md).
 * Allocation failure is fatal. */

#include <stddef.h>

struct pool;

struct pool *pool_new(size_t block_size);
void pool_free(struct pool **pool);
void pool_clear(struct pool *pool);
void *pool_alloc(struct pool *pool, size_t size);   /* zeroed */
char *pool_strdup(struct pool *pool, const char *s);
char *pool_strndup(struct pool *pool, const char *s, size_t n);
char *pool_printf(struct pool *pool, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif

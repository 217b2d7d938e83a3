#include "core/pool.h"
#include "core/buf.h"
#include "core/log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pool_block {
	struct pool_block *next;
	size_t size;
	size_t used;
	max_align_t data[];
};

struct pool {
	struct pool_block *blocks;
	size_t block_size;
};

static struct pool_block *pool_block_new(size_t size)
{
	struct pool_block *blk = xmalloc(sizeof(*blk) + size);
	blk->next = NULL;
	blk->size = size;
	blk->used = 0;
	return blk;
}

struct pool *pool_new(size_t block_size)
{
	struct pool *pool = xmalloc(sizeof(*pool));
	pool->block_size = block_size < 256 ? 256 : block_size;
	pool->blocks = NULL;
	return pool;
}

static void pool_free_blocks(struct pool_block *blk)
{
	while (blk != NULL) {
		struct pool_block *next = blk->next;
		free(blk);
		blk = next;
	}
}

void pool_free(struct pool **poolp)
{
	struct pool *pool = *poolp;
	if (pool == NULL)
		return;
	pool_free_blocks(pool->blocks);
	free(pool);
	*poolp = NULL;
}

void pool_clear(struct pool *pool)
{
	if (pool->blocks == NULL)
		return;
	/* keep the first (most recent) block of the normal size for reuse */
	struct pool_block *keep = pool->blocks;
	pool_free_blocks(keep->next);
	keep->next = NULL;
	keep->used = 0;
}

void *pool_alloc(struct pool *pool, size_t size)
{
	const size_t align = sizeof(max_align_t);
	if (size > SIZE_MAX / 2)
		fatal("event=oom reason=pool-size size=%zu", size);
	size = (size + align - 1) & ~(align - 1);
	if (size == 0)
		size = align;
	struct pool_block *blk = pool->blocks;
	if (blk == NULL || blk->size - blk->used < size) {
		if (size > pool->block_size / 2) {
			/* large allocation: its own block, behind the current one */
			struct pool_block *big = pool_block_new(size);
			big->used = size;
			if (blk == NULL) {
				pool->blocks = big;
			} else {
				big->next = blk->next;
				blk->next = big;
			}
			memset(big->data, 0, size);
			return big->data;
		}
		blk = pool_block_new(pool->block_size);
		blk->next = pool->blocks;
		pool->blocks = blk;
	}
	void *p = (char *)blk->data + blk->used;
	blk->used += size;
	memset(p, 0, size);
	return p;
}

char *pool_strndup(struct pool *pool, const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = pool_alloc(pool, len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *pool_strdup(struct pool *pool, const char *s)
{
	return pool_strndup(pool, s, strlen(s));
}

char *pool_printf(struct pool *pool, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return pool_strdup(pool, "");
	char *p = pool_alloc(pool, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

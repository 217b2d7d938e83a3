#include "core/linereader.h"
#include "core/buf.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

void linereader_init(struct linereader *lr, size_t max)
{
	memset(lr, 0, sizeof(*lr));
	linereader_set_max(lr, max);
}

void linereader_set_max(struct linereader *lr, size_t max)
{
	if (max < 3)
		max = 3;
	lr->line = xrealloc(lr->line, max + 1);
	lr->max = max;
	lr->line[0] = '\0';
	lr->line_len = 0;
}

void linereader_free(struct linereader *lr)
{
	free(lr->line);
	lr->line = NULL;
}

void linereader_reset(struct linereader *lr)
{
	lr->discarding = false;
	lr->line_len = 0;
	lr->line[0] = '\0';
	lr->flags = 0;
}

/* Fills line/len/flags from the raw bytes of one line (ending with LF). */
static void linereader_take(struct linereader *lr, const char *raw, size_t raw_len)
{
	size_t len = raw_len - 1;   /* drop LF */
	unsigned int flags = 0;
	if (len > 0 && raw[len - 1] == '\r')
		len--;
	else
		flags |= LR_FLAG_BARE_LF;
	memcpy(lr->line, raw, len);
	lr->line[len] = '\0';
	if (memchr(raw, '\0', len) != NULL)
		flags |= LR_FLAG_NUL;
	if (memchr(raw, '\r', len) != NULL)
		flags |= LR_FLAG_BARE_CR;
	lr->line_len = len;
	lr->flags = flags;
}

/* The core of both entry points. peek(ctx, max, &avail) returns a pointer
 * to up to max contiguous bytes at the front; drain(ctx, n) drops n. */
struct lr_source {
	const char *(*peek)(void *ctx, size_t want, size_t *avail_r);
	void (*drain)(void *ctx, size_t n);
	void *ctx;
};

static enum lr_status linereader_run(struct linereader *lr, const struct lr_source *src)
{
	for (;;) {
		size_t avail;
		const char *data = src->peek(src->ctx, lr->max, &avail);
		if (avail == 0)
			return LR_NEED_MORE;
		const char *lf = memchr(data, '\n', avail);
		if (lr->discarding) {
			if (lf == NULL) {
				src->drain(src->ctx, avail);
				continue;
			}
			src->drain(src->ctx, (size_t)(lf - data) + 1);
			lr->discarding = false;
			continue;
		}
		if (lf != NULL) {
			size_t n = (size_t)(lf - data) + 1;
			linereader_take(lr, data, n);
			src->drain(src->ctx, n);
			return LR_LINE;
		}
		if (avail >= lr->max) {
			/* no LF within the cap: too long */
			src->drain(src->ctx, avail);
			lr->discarding = true;
			return LR_TOO_LONG;
		}
		return LR_NEED_MORE;
	}
}

static const char *evbuffer_source_peek(void *ctx, size_t want, size_t *avail_r)
{
	struct evbuffer *in = ctx;
	size_t len = evbuffer_get_length(in);
	if (want > len)
		want = len;
	*avail_r = want;
	if (want == 0)
		return NULL;
	/* pullup of at most the cap: bounded work per call */
	return (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
}

static void evbuffer_source_drain(void *ctx, size_t n)
{
	evbuffer_drain(ctx, n);
}

enum lr_status linereader_next(struct linereader *lr, struct evbuffer *in)
{
	const struct lr_source src = { evbuffer_source_peek, evbuffer_source_drain, in };
	return linereader_run(lr, &src);
}

struct bytes_ctx {
	const char **data;
	size_t *len;
};

static const char *bytes_source_peek(void *ctx, size_t want, size_t *avail_r)
{
	struct bytes_ctx *b = ctx;
	*avail_r = want < *b->len ? want : *b->len;
	return *b->data;
}

static void bytes_source_drain(void *ctx, size_t n)
{
	struct bytes_ctx *b = ctx;
	*b->data += n;
	*b->len -= n;
}

enum lr_status linereader_next_bytes(struct linereader *lr, const char **data,
				     size_t *len)
{
	struct bytes_ctx ctx = { data, len };
	const struct lr_source src = { bytes_source_peek, bytes_source_drain, &ctx };
	return linereader_run(lr, &src);
}

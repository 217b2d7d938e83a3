/* DEFLATE both ways for COMPRESS=DEFLATE (RFC 4978), with zlib. */
#include "core/compress.h"
#include "core/buf.h"
#include "core/log.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define COMPRESS_CHUNK 16384

struct compress {
	z_stream out_z, in_z;
	struct evbuffer *out;      /* compressed, to the peer */
	struct evbuffer *plain;    /* inflated, for the protocol */
	struct event *flush_ev;
	bool pending;              /* written, not flushed yet */
	bool failed;
};

static void compress_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	compress_flush(arg);
}

struct compress *compress_new(struct event_base *base, struct evbuffer *out)
{
	struct compress *z = xcalloc(1, sizeof(*z));
	z->out = out;
	/* RFC 4978 4: raw deflate, no zlib header (negative window bits) */
	if (deflateInit2(&z->out_z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		free(z);
		return NULL;
	}
	if (inflateInit2(&z->in_z, -15) != Z_OK) {
		deflateEnd(&z->out_z);
		free(z);
		return NULL;
	}
	z->plain = evbuffer_new();
	z->flush_ev = event_new(base, -1, 0, compress_flush_cb, z);
	if (z->plain == NULL || z->flush_ev == NULL)
		fatal("event=compress-alloc-failed");
	return z;
}

void compress_free(struct compress **zp)
{
	struct compress *z = *zp;
	if (z == NULL)
		return;
	*zp = NULL;
	deflateEnd(&z->out_z);
	inflateEnd(&z->in_z);
	evbuffer_free(z->plain);
	event_free(z->flush_ev);
	free(z);
}

/* Runs deflate over the given input with flush mode, appending output. */
static int deflate_into(struct compress *z, const void *data, size_t len, int mode)
{
	if (z->failed)
		return -1;
	z->out_z.next_in = (Bytef *)(uintptr_t)data;
	z->out_z.avail_in = (uInt)len;
	for (;;) {
		struct evbuffer_iovec vec;
		if (evbuffer_reserve_space(z->out, COMPRESS_CHUNK, &vec, 1) < 1)
			fatal("event=compress-alloc-failed");
		z->out_z.next_out = vec.iov_base;
		z->out_z.avail_out = (uInt)vec.iov_len;
		int ret = deflate(&z->out_z, mode);
		vec.iov_len -= z->out_z.avail_out;
		evbuffer_commit_space(z->out, &vec, 1);
		if (ret == Z_STREAM_ERROR) {
			z->failed = true;
			log_error("event=compress-failed");
			return -1;
		}
		/* done when deflate had room to spare: all input taken and,
		 * for a flush, all output given */
		if (z->out_z.avail_out != 0 && z->out_z.avail_in == 0)
			return 0;
	}
}

int compress_write(struct compress *z, const void *data, size_t len)
{
	/* zlib counts in uInt: feed huge writes in pieces */
	const char *p = data;
	while (len > 0) {
		size_t n = len > (1u << 30) ? (1u << 30) : len;
		if (deflate_into(z, p, n, Z_NO_FLUSH) < 0)
			return -1;
		p += n;
		len -= n;
	}
	if (!z->pending) {
		z->pending = true;
		event_active(z->flush_ev, EV_TIMEOUT, 0);
	}
	return 0;
}

int compress_flush(struct compress *z)
{
	if (!z->pending)
		return 0;
	z->pending = false;
	return deflate_into(z, "", 0, Z_SYNC_FLUSH);
}

bool compress_pending(const struct compress *z)
{
	return z->pending;
}

int compress_read(struct compress *z, struct evbuffer *in, size_t max)
{
	while (evbuffer_get_length(in) > 0 && evbuffer_get_length(z->plain) < max) {
		struct evbuffer_iovec src;
		if (evbuffer_peek(in, -1, NULL, &src, 1) < 1)
			break;
		struct evbuffer_iovec dst;
		if (evbuffer_reserve_space(z->plain, COMPRESS_CHUNK, &dst, 1) < 1)
			fatal("event=compress-alloc-failed");
		z->in_z.next_in = src.iov_base;
		z->in_z.avail_in = (uInt)src.iov_len;
		z->in_z.next_out = dst.iov_base;
		z->in_z.avail_out = (uInt)dst.iov_len;
		int ret = inflate(&z->in_z, Z_SYNC_FLUSH);
		dst.iov_len -= z->in_z.avail_out;
		evbuffer_commit_space(z->plain, &dst, 1);
		evbuffer_drain(in, src.iov_len - z->in_z.avail_in);
		if (ret == Z_STREAM_END || (ret != Z_OK && ret != Z_BUF_ERROR))
			return -1;   /* corrupt, or the peer ended its stream */
		if (ret == Z_BUF_ERROR && dst.iov_len == 0 && src.iov_len == z->in_z.avail_in)
			break;       /* no progress possible */
	}
	return 0;
}

struct evbuffer *compress_input(struct compress *z)
{
	return z->plain;
}

#ifndef POSTERN_COMPRESS_H
#define POSTERN_COMPRESS_H

/* A raw DEFLATE stream each way (RFC 1951, no zlib header), as IMAP
 * COMPRESS=DEFLATE (RFC 4978) puts between TLS and the protocol. Private
 * to core: conn.c sets it up on a connection (conn_compress_start()).
 *
 * Output is compressed as it is written and flushed (Z_SYNC_FLUSH) once
 * per turn of the event loop, so that many small replies share one flush
 * and the peer can always decode everything it was sent. Input is
 * inflated into a plain buffer, never more than a cap ahead of what the
 * protocol has read: a small compressed input cannot balloon in memory. */

#include <stdbool.h>
#include <stddef.h>

struct compress;
struct event_base;
struct evbuffer;

/* out: where compressed bytes go (the connection's output buffer, which
 * must outlive the stream). NULL when zlib cannot allocate. */
struct compress *compress_new(struct event_base *base, struct evbuffer *out);
void compress_free(struct compress **z);
/* Compresses data (flushed later in this turn of the loop). -1 on error. */
int compress_write(struct compress *z, const void *data, size_t len);
/* Everything written so far, decodable by the peer now. -1 on error. */
int compress_flush(struct compress *z);
/* Whether written bytes wait for a flush. */
bool compress_pending(const struct compress *z);
/* Inflates from in (consuming it) into the plain buffer until in is empty
 * or the plain buffer holds at least max bytes. -1 on a corrupt stream. */
int compress_read(struct compress *z, struct evbuffer *in, size_t max);
/* The inflated bytes, for the protocol to read. */
struct evbuffer *compress_input(struct compress *z);

#endif

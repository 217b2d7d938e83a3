/* libFuzzer target for what the IMAP extensions of issue 17 parse from
 * clients: IMAP URLs (CATENATE), METADATA entry names, object ids
 * (SEARCH EMAILID/THREADID), and COMPRESS's DEFLATE stream: the input
 * inflated as a client's compressed stream (any bytes: an error or some
 * output, never more than the cap), and deflated then inflated again
 * (must give the input back, in input-chosen pieces). */
#include "core/core.h"
#include "core/compress.h"
#include "imap/imap-private.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *base;
static struct pool *pool;

static void strings(const uint8_t *data, size_t size)
{
	char *text = xstrndup((const char *)data, size);
	struct imap_url u;
	if (imap_url_parse(pool, text, "mail.example.org", "a@example.org", size % 2 == 0, &u) == 0) {
		if (u.uid == 0 || u.uid > UINT32_MAX || u.section == NULL ||
		    (u.mailbox != NULL && u.mailbox[0] == '\0'))
			abort();
	}
	if (imap_metadata_entry_valid(text, true) && !imap_metadata_entry_valid(text, false))
		abort();
	uint64_t v;
	if (imap_objectid_parse(text, 'M', &v) && !imap_objectid_valid(text))
		abort();
	free(text);
	pool_clear(pool);
}

static void inflate_any(const uint8_t *data, size_t size)
{
	struct evbuffer *out = evbuffer_new(), *in = evbuffer_new();
	struct compress *z = compress_new(base, out);
	evbuffer_add(in, data, size);
	int ret = 0;
	while (ret == 0 && evbuffer_get_length(in) > 0) {
		size_t before = evbuffer_get_length(in);
		ret = compress_read(z, in, 4096);
		struct evbuffer *plain = compress_input(z);
		if (evbuffer_get_length(plain) > 4096 + 16384)
			abort();   /* the cap plus one chunk at most */
		evbuffer_drain(plain, evbuffer_get_length(plain));
		if (ret == 0 && evbuffer_get_length(in) == before)
			break;
	}
	compress_free(&z);
	evbuffer_free(in);
	evbuffer_free(out);
}

static void round_trip(const uint8_t *data, size_t size)
{
	struct evbuffer *wire = evbuffer_new(), *unused = evbuffer_new();
	struct compress *tx = compress_new(base, wire), *rx = compress_new(base, unused);
	size_t pos = 0, step = size > 0 ? (size_t)data[0] % 97 + 1 : 1;
	while (pos < size) {
		size_t n = size - pos < step ? size - pos : step;
		if (compress_write(tx, data + pos, n) < 0 || compress_flush(tx) < 0)
			abort();
		pos += n;
		if (compress_read(rx, wire, SIZE_MAX) < 0)
			abort();
	}
	struct evbuffer *plain = compress_input(rx);
	if (evbuffer_get_length(plain) != size ||
	    (size > 0 && memcmp(evbuffer_pullup(plain, -1), data, size) != 0))
		abort();
	compress_free(&tx);
	compress_free(&rx);
	evbuffer_free(wire);
	evbuffer_free(unused);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (base == NULL) {
		base = event_base_new();
		pool = pool_new(4096);
	}
	if (size > 65536)
		return 0;
	strings(data, size);
	inflate_any(data, size);
	round_trip(data, size);
	return 0;
}

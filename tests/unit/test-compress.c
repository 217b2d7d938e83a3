/* core/compress.c (COMPRESS=DEFLATE's stream) against zlib as a client
 * would use it, and utf8_is_valid(). */
#include "test.h"
#include "core/core.h"
#include "core/compress.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <zlib.h>

static struct event_base *base;

/* What the peer sees: raw inflate of everything sent so far. */
static size_t peer_inflate(z_stream *zs, struct evbuffer *wire, char *out, size_t size)
{
	size_t len = evbuffer_get_length(wire);
	unsigned char *data = evbuffer_pullup(wire, -1);
	zs->next_in = data;
	zs->avail_in = (uInt)len;
	zs->next_out = (Bytef *)out;
	zs->avail_out = (uInt)size;
	int ret = inflate(zs, Z_SYNC_FLUSH);
	TEST_ASSERT(ret == Z_OK || ret == Z_BUF_ERROR);
	evbuffer_drain(wire, len - zs->avail_in);
	return size - zs->avail_out;
}

static void test_server_to_client(void)
{
	struct evbuffer *wire = evbuffer_new();
	struct compress *z = compress_new(base, wire);
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	TEST_ASSERT_INT(inflateInit2(&zs, -15), Z_OK);
	char out[256];
	TEST_ASSERT_INT(compress_write(z, "* OK one\r\n", 10), 0);
	TEST_ASSERT_INT(compress_write(z, "a OK two\r\n", 10), 0);
	/* nothing decodable before the flush, everything after it */
	TEST_ASSERT(compress_pending(z));
	TEST_ASSERT_INT(compress_flush(z), 0);
	TEST_ASSERT(!compress_pending(z));
	size_t n = peer_inflate(&zs, wire, out, sizeof(out));
	TEST_ASSERT(n == 20 && memcmp(out, "* OK one\r\na OK two\r\n", 20) == 0);
	/* the flush is also scheduled on the loop: one turn sends it */
	TEST_ASSERT_INT(compress_write(z, "b OK\r\n", 6), 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	TEST_ASSERT(!compress_pending(z));
	n = peer_inflate(&zs, wire, out, sizeof(out));
	TEST_ASSERT(n == 6 && memcmp(out, "b OK\r\n", 6) == 0);
	inflateEnd(&zs);
	compress_free(&z);
	TEST_ASSERT(z == NULL);
	evbuffer_free(wire);
}

static void test_client_to_server(void)
{
	struct evbuffer *wire = evbuffer_new(), *unused = evbuffer_new();
	struct compress *z = compress_new(base, unused);
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	TEST_ASSERT_INT(deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	/* 1 MiB of zeroes compress to about 1 KiB: inflated no further than
	 * the cap asked, the rest waits in the input */
	static char zeroes[1 << 20];
	unsigned char packed[8192];
	zs.next_in = (Bytef *)zeroes;
	zs.avail_in = sizeof(zeroes);
	zs.next_out = packed;
	zs.avail_out = sizeof(packed);
	TEST_ASSERT_INT(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
	evbuffer_add(wire, packed, sizeof(packed) - zs.avail_out);
	TEST_ASSERT_INT(compress_read(z, wire, 65536), 0);
	size_t got = evbuffer_get_length(compress_input(z));
	TEST_ASSERT(got >= 65536 && got < 65536 + 32768);
	TEST_ASSERT(evbuffer_get_length(wire) > 0);
	while (evbuffer_get_length(wire) > 0) {
		evbuffer_drain(compress_input(z), evbuffer_get_length(compress_input(z)));
		TEST_ASSERT_INT(compress_read(z, wire, 65536), 0);
		got += evbuffer_get_length(compress_input(z));
	}
	TEST_ASSERT_INT(got, sizeof(zeroes));
	/* not a DEFLATE stream: an error */
	evbuffer_drain(compress_input(z), evbuffer_get_length(compress_input(z)));
	evbuffer_add(wire, "\xff\xff\xff\xff", 4);
	TEST_ASSERT_INT(compress_read(z, wire, 65536), -1);
	deflateEnd(&zs);
	compress_free(&z);
	evbuffer_free(wire);
	evbuffer_free(unused);
}

static void test_utf8(void)
{
	static const struct { const char *s; bool ok; } cases[] = {
		{ "plain", true }, { "Entw\xc3\xbcrfe", true }, { "\xe6\x97\xa5", true },
		{ "\xf0\x9f\x93\xa7", true }, { "\xc3", false }, { "\xc0\xaf", false },
		{ "\xe0\x80\xaf", false }, { "\xed\xa0\x80", false }, { "\xf4\x90\x80\x80", false },
		{ "\xff", false }, { "\xe6\x97", false }, { "a\x80" "b", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		TEST_ASSERT(utf8_is_valid(cases[i].s, strlen(cases[i].s)) == cases[i].ok);
}

int main(void)
{
	log_init("test-compress", LOG_LEVEL_ERROR);
	base = event_base_new();
	test_run("server_to_client", test_server_to_client);
	test_run("client_to_server", test_client_to_server);
	test_run("utf8", test_utf8);
	event_base_free(base);
	return test_end();
}

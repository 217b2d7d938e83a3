/* libFuzzer target for the IMAP command reader and parser: the input is
 * read whole and in input-chosen pieces (the events must agree), and every
 * command read is parsed, its atoms also as sequence sets. The same input
 * also goes through BINARY's decoder whole and in pieces. */
#include "core/core.h"
#include "imap/imap-parser.h"
#include "imap/imap-private.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pool *pool;

static void walk_args(const struct imap_arg *args, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];
		const char *s;
		uint64_t n;
		struct imap_seqset set;
		if (a->type == IMAP_ARG_LIST)
			walk_args(a->items, a->count);
		if (imap_arg_atom(a, &s) && imap_seqset_parse(pool, s, true, &set) == 0) {
			for (size_t j = 0; !set.dollar && j < set.count; j++)
				if (set.ranges[j].lo > set.ranges[j].hi || set.ranges[j].lo == 0)
					abort();
		}
		(void)imap_arg_astring(a, &s);
		(void)imap_arg_number(a, &n);
		if (a->str != NULL && a->str[a->len] != '\0')
			abort();
	}
}

/* Literals of odd size stream (as APPEND's messages do), into out. */
static enum imap_literal_action literal_hook(void *ctx, const char *cmd, size_t len,
					     uint64_t size)
{
	(void)ctx;
	if (len == 0 || cmd[len - 1] != '}')
		abort();
	return size % 2 ? IMAP_LITERAL_STREAM : IMAP_LITERAL_KEEP;
}

static void stream_hook(void *ctx, const void *data, size_t len)
{
	buf_append(ctx, data, len);
}

static void read_all(const uint8_t *data, size_t size, size_t step, bool parse, struct buf *out)
{
	struct imap_reader r;
	struct buf streamed = BUF_INIT;
	imap_reader_init(&r, 200, 300);
	r.literal_fn = literal_hook;
	r.stream_fn = stream_hook;
	r.fn_ctx = &streamed;
	r.stream_max = 1000;
	struct evbuffer *in = evbuffer_new();
	size_t pos = 0;
	for (;;) {
		enum imap_read_status st = imap_reader_next(&r, in);
		if (st == IMAP_READ_NEED_MORE) {
			if (pos == size)
				break;
			size_t n = size - pos < step ? size - pos : step;
			evbuffer_add(in, data + pos, n);
			pos += n;
			continue;
		}
		buf_printf(out, "%d:%zu:", (int)st, r.cmd.len);
		buf_append(out, r.cmd.data, r.cmd.len);
		buf_printf(out, "|%zu:", streamed.len);
		buf_append(out, streamed.data, streamed.len);
		buf_reset(&streamed);
		if (st == IMAP_READ_COMMAND && parse) {
			struct imap_command_line cmd;
			const char *error;
			if (imap_parse(pool, r.cmd.data, r.cmd.len, &cmd, &error) == 0)
				walk_args(cmd.args, cmd.count);
			else if (error == NULL)
				abort();
			pool_clear(pool);
		}
		if (st == IMAP_READ_FATAL)
			break;
	}
	evbuffer_free(in);
	imap_reader_free(&r);
	buf_free(&streamed);
}

static void decode_all(enum imap_cte cte, const uint8_t *data, size_t size, size_t step,
		       struct buf *out)
{
	static char o[IMAP_DECODER_OUT_MAX];
	struct imap_decoder d;
	imap_decoder_init(&d, cte);
	size_t pos = 0;
	do {
		size_t n = size - pos < step ? size - pos : step;
		if (n > IMAP_DECODER_CHUNK)
			n = IMAP_DECODER_CHUNK;
		size_t got = imap_decoder_run(&d, (const char *)data + pos, n, pos + n == size, o);
		if (got > IMAP_DECODER_OUT_MAX)
			abort();
		buf_append(out, o, got);
		pos += n;
	} while (pos < size);
}

static void check_decoder(const uint8_t *data, size_t size, size_t step)
{
	static const enum imap_cte ctes[] = { IMAP_CTE_IDENTITY, IMAP_CTE_BASE64, IMAP_CTE_QP };
	for (size_t i = 0; i < sizeof(ctes) / sizeof(ctes[0]); i++) {
		struct buf whole = BUF_INIT, split = BUF_INIT;
		decode_all(ctes[i], data, size, size, &whole);
		decode_all(ctes[i], data, size, step, &split);
		if (whole.len != split.len ||
		    (whole.len > 0 && memcmp(whole.data, split.data, whole.len) != 0))
			abort();
		buf_free(&whole);
		buf_free(&split);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (data[0] % 16) + 1;
	if (pool == NULL)
		pool = pool_new(4096);
	struct buf whole = BUF_INIT, split = BUF_INIT;
	read_all(data + 1, size - 1, size, true, &whole);
	read_all(data + 1, size - 1, step, false, &split);
	if (whole.len != split.len || (whole.len > 0 && memcmp(whole.data, split.data, whole.len) != 0))
		abort();
	buf_free(&whole);
	buf_free(&split);
	check_decoder(data + 1, size - 1, step);
	return 0;
}

/* libFuzzer target for the bounded line reader: arbitrary bytes, split at
 * points chosen by the input itself, must give the same lines as feeding
 * them whole, never read out of bounds, never return a line over the cap. */
#include "core/buf.h"
#include "core/linereader.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void run(const uint8_t *data, size_t size, size_t max, size_t step, struct buf *out)
{
	struct linereader lr;
	struct evbuffer *in = evbuffer_new();
	linereader_init(&lr, max);
	size_t fed = 0;
	do {
		size_t n = step == 0 || size - fed < step ? size - fed : step;
		evbuffer_add(in, data + fed, n);
		fed += n;
		enum lr_status st;
		while ((st = linereader_next(&lr, in)) != LR_NEED_MORE) {
			if (st == LR_TOO_LONG) {
				buf_append_str(out, "\x01T");
				continue;
			}
			if (lr.line_len + 1 > max)
				abort();
			buf_append(out, lr.line, lr.line_len);
			buf_printf(out, "\x01%u", lr.flags);
		}
	} while (fed < size);
	evbuffer_free(in);
	linereader_free(&lr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t max = 3 + data[0] % 64;
	size_t step = 1 + data[1] % 16;
	data += 2;
	size -= 2;
	struct buf whole = BUF_INIT, pieces = BUF_INIT;
	run(data, size, max, 0, &whole);
	run(data, size, max, step, &pieces);
	if (whole.len != pieces.len || memcmp(buf_str(&whole), buf_str(&pieces), whole.len) != 0)
		abort();
	buf_free(&whole);
	buf_free(&pieces);
	return 0;
}

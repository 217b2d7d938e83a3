#include "test.h"
#include "core/buf.h"
#include "core/linereader.h"

#include <event2/buffer.h>

/* Runs the reader over input fed in chunks of `step` bytes (0 = all at
 * once) and renders what it saw: "L<line>|" per line (flags as suffix
 * letters n=NUL r=bare CR f=bare LF) and "T|" per too-long. */
static void render(const char *input, size_t len, size_t max, size_t step,
		   struct buf *out)
{
	struct linereader lr;
	struct evbuffer *in = evbuffer_new();
	linereader_init(&lr, max);
	size_t fed = 0;
	buf_reset(out);
	do {
		size_t n = step == 0 ? len - fed : (len - fed < step ? len - fed : step);
		evbuffer_add(in, input + fed, n);
		fed += n;
		enum lr_status st;
		while ((st = linereader_next(&lr, in)) != LR_NEED_MORE) {
			if (st == LR_TOO_LONG) {
				buf_append_str(out, "T|");
				continue;
			}
			buf_append_char(out, 'L');
			buf_append_sanitized(out, lr.line, lr.line_len);
			if (lr.flags & LR_FLAG_NUL)
				buf_append_char(out, 'n');
			if (lr.flags & LR_FLAG_BARE_CR)
				buf_append_char(out, 'r');
			if (lr.flags & LR_FLAG_BARE_LF)
				buf_append_char(out, 'f');
			buf_append_char(out, '|');
		}
	} while (fed < len);
	evbuffer_free(in);
	linereader_free(&lr);
}

static void check(const char *input, size_t len, size_t max, const char *want)
{
	struct buf whole = BUF_INIT, piece = BUF_INIT;
	render(input, len, max, 0, &whole);
	TEST_ASSERT_STR(buf_str(&whole), want);
	for (size_t step = 1; step <= 7; step++) {
		render(input, len, max, step, &piece);
		TEST_ASSERT_STR(buf_str(&piece), want);
	}
	buf_free(&whole);
	buf_free(&piece);
}

#define CHECK(lit, max, want) check(lit, sizeof(lit) - 1, max, want)

static void test_lines(void)
{
	CHECK("NOOP\r\nQUIT\r\n", 512, "LNOOP|LQUIT|");
	CHECK("NOOP\nQUIT\r\n", 512, "LNOOPf|LQUIT|");
	CHECK("\r\n\r\n", 512, "L|L|");
	CHECK("partial", 512, "");
	CHECK("a\rb\r\n", 512, "La?br|");
	CHECK("a\0b\r\n", 512, "La?bn|");
	CHECK("x\r\r\n", 512, "Lx?r|");
}

static void test_limits(void)
{
	/* max counts CRLF: 8 allows 6 bytes of text */
	CHECK("123456\r\n", 8, "L123456|");
	CHECK("1234567\r\nok\r\n", 8, "T|Lok|");
	CHECK("12345678901234567890\r\nok\r\n", 8, "T|Lok|");
	CHECK("1234567\nok\n", 8, "L1234567f|Lokf|");
	CHECK("12345678\nok\n", 8, "T|Lokf|");
	/* a long line that never ends is reported once */
	CHECK("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 8, "T|");
	CHECK("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\naaaaaaaaaaaaaaaaaaaaaaaa\r\nx\r\n", 8,
	      "T|T|Lx|");
}

static void test_bytes_api(void)
{
	struct linereader lr;
	const char *data = "one\r\ntwo\r\nthr";
	size_t len = strlen(data);
	linereader_init(&lr, 100);
	TEST_ASSERT_INT(linereader_next_bytes(&lr, &data, &len), LR_LINE);
	TEST_ASSERT_STR(lr.line, "one");
	TEST_ASSERT_INT(linereader_next_bytes(&lr, &data, &len), LR_LINE);
	TEST_ASSERT_STR(lr.line, "two");
	TEST_ASSERT_INT(linereader_next_bytes(&lr, &data, &len), LR_NEED_MORE);
	TEST_ASSERT_INT(len, 3);
	linereader_free(&lr);
}

static void test_reset(void)
{
	struct linereader lr;
	struct evbuffer *in = evbuffer_new();
	linereader_init(&lr, 8);
	evbuffer_add(in, "xxxxxxxxxxxx", 12);
	TEST_ASSERT_INT(linereader_next(&lr, in), LR_TOO_LONG);
	TEST_ASSERT(lr.discarding);
	/* STARTTLS: the connection drops buffered input, the reader its state */
	evbuffer_drain(in, evbuffer_get_length(in));
	linereader_reset(&lr);
	evbuffer_add(in, "ok\r\n", 4);
	TEST_ASSERT_INT(linereader_next(&lr, in), LR_LINE);
	TEST_ASSERT_STR(lr.line, "ok");
	evbuffer_free(in);
	linereader_free(&lr);
}

int main(void)
{
	test_run("linereader lines and flags", test_lines);
	test_run("linereader limits, byte by byte and whole", test_limits);
	test_run("linereader on plain bytes", test_bytes_api);
	test_run("linereader reset", test_reset);
	return test_end();
}

/* POP3 command parser (the real command table) and the RETR/TOP
 * converter: every case fed whole and byte by byte (STYLE.md). */
#include "pop3/pop3-private.h"
#include "test.h"

#include <event2/buffer.h>
#include <stdint.h>

#define PARSE_TOO_LONG ((enum pop3_parse_result)99)

/* Parses text (one command line without its line end) through the line
 * reader, fed whole or one byte at a time. */
static enum pop3_parse_result parse(const char *text, bool bytewise, struct pop3_request *req,
				    char *line_copy, size_t copy_size)
{
	struct linereader lr;
	struct evbuffer *in = evbuffer_new();
	struct buf all = BUF_INIT;
	buf_append_str(&all, text);
	buf_append_str(&all, "\r\n");
	linereader_init(&lr, POP3_MAX_COMMAND_LINE);
	enum lr_status st = LR_NEED_MORE;
	size_t step = bytewise ? 1 : all.len;
	for (size_t fed = 0; fed < all.len && st == LR_NEED_MORE; fed += step) {
		evbuffer_add(in, all.data + fed, step);
		st = linereader_next(&lr, in);
	}
	enum pop3_parse_result r = POP3_PARSE_ARGS;
	if (st == LR_TOO_LONG) {
		r = PARSE_TOO_LONG;
	} else if (st == LR_LINE && lr.line_len < copy_size) {
		/* the request points into the line: keep it in line_copy */
		memcpy(line_copy, lr.line, lr.line_len + 1);
		r = pop3_parse(line_copy, lr.line_len, lr.flags, req);
	}
	linereader_free(&lr);
	evbuffer_free(in);
	buf_free(&all);
	return r;
}

struct parse_case {
	const char *line;
	enum pop3_parse_result result;
	const char *cmd;
	unsigned argc;
	const char *arg0, *arg1;
	uint32_t num0, num1;
};

static const struct parse_case parse_cases[] = {
	{ "STAT", POP3_PARSE_OK, "STAT", 0, NULL, NULL, 0, 0 },
	{ "stat", POP3_PARSE_OK, "STAT", 0, NULL, NULL, 0, 0 },
	{ "LIST", POP3_PARSE_OK, "LIST", 0, NULL, NULL, 0, 0 },
	{ "LIST 3", POP3_PARSE_OK, "LIST", 1, "3", NULL, 3, 0 },
	{ "LIST 3 ", POP3_PARSE_OK, "LIST", 1, "3", NULL, 3, 0 },
	{ "LIST 3 4", POP3_PARSE_ARGS, "LIST", 0, NULL, NULL, 0, 0 },
	{ "LIST x", POP3_PARSE_NUMBER, "LIST", 0, NULL, NULL, 0, 0 },
	{ "LIST -1", POP3_PARSE_NUMBER, "LIST", 0, NULL, NULL, 0, 0 },
	{ "LIST +1", POP3_PARSE_NUMBER, "LIST", 0, NULL, NULL, 0, 0 },
	{ "LIST 0", POP3_PARSE_OK, "LIST", 1, "0", NULL, 0, 0 },
	{ "LIST 99999999999999999999", POP3_PARSE_OK, "LIST", 1, NULL, NULL, UINT32_MAX, 0 },
	{ "RETR", POP3_PARSE_ARGS, "RETR", 0, NULL, NULL, 0, 0 },
	{ "RETR 1", POP3_PARSE_OK, "RETR", 1, "1", NULL, 1, 0 },
	{ "TOP 1", POP3_PARSE_ARGS, "TOP", 0, NULL, NULL, 0, 0 },
	{ "TOP 1 0", POP3_PARSE_OK, "TOP", 2, "1", "0", 1, 0 },
	{ "TOP 2 4294967295", POP3_PARSE_OK, "TOP", 2, NULL, NULL, 2, UINT32_MAX },
	{ "TOP 1 x", POP3_PARSE_NUMBER, "TOP", 0, NULL, NULL, 0, 0 },
	{ "TOP 1 2 3", POP3_PARSE_ARGS, "TOP", 0, NULL, NULL, 0, 0 },
	{ "DELE", POP3_PARSE_ARGS, "DELE", 0, NULL, NULL, 0, 0 },
	{ "NOOP x", POP3_PARSE_ARGS, "NOOP", 0, NULL, NULL, 0, 0 },
	{ "USER bob@example.org", POP3_PARSE_OK, "USER", 1, "bob@example.org", NULL, 0, 0 },
	{ "USER", POP3_PARSE_ARGS, "USER", 0, NULL, NULL, 0, 0 },
	{ "PASS  two  spaces ", POP3_PARSE_OK, "PASS", 1, " two  spaces ", NULL, 0, 0 },
	{ "PASS", POP3_PARSE_ARGS, "PASS", 0, NULL, NULL, 0, 0 },
	{ "AUTH", POP3_PARSE_OK, "AUTH", 0, NULL, NULL, 0, 0 },
	{ "AUTH PLAIN", POP3_PARSE_OK, "AUTH", 1, "PLAIN", NULL, 0, 0 },
	{ "AUTH PLAIN AGJvYgBzZWNyZXQ=", POP3_PARSE_OK, "AUTH", 2, "PLAIN", "AGJvYgBzZWNyZXQ=",
	  0, 0 },
	{ "AUTH PLAIN a b", POP3_PARSE_ARGS, "AUTH", 0, NULL, NULL, 0, 0 },
	{ "XYZZY", POP3_PARSE_UNKNOWN, NULL, 0, NULL, NULL, 0, 0 },
	{ "", POP3_PARSE_UNKNOWN, NULL, 0, NULL, NULL, 0, 0 },
	{ " STAT", POP3_PARSE_UNKNOWN, NULL, 0, NULL, NULL, 0, 0 },
	{ "STAT\t", POP3_PARSE_BAD_CHARS, NULL, 0, NULL, NULL, 0, 0 },
	{ "USER a\001b", POP3_PARSE_BAD_CHARS, NULL, 0, NULL, NULL, 0, 0 },
	{ "RETR\r1", POP3_PARSE_BAD_CHARS, NULL, 0, NULL, NULL, 0, 0 },
	{ "QUIT", POP3_PARSE_OK, "QUIT", 0, NULL, NULL, 0, 0 },
	{ "capa", POP3_PARSE_OK, "CAPA", 0, NULL, NULL, 0, 0 },
	{ "STLS now", POP3_PARSE_ARGS, "STLS", 0, NULL, NULL, 0, 0 },
	{ "UIDL 7", POP3_PARSE_OK, "UIDL", 1, "7", NULL, 7, 0 },
	{ "RSET", POP3_PARSE_OK, "RSET", 0, NULL, NULL, 0, 0 },
	{ "APOP bob 0123456789abcdef", POP3_PARSE_OK, "APOP", 2, "bob", NULL, 0, 0 },
};

static void test_parse_table(void)
{
	char line[POP3_MAX_COMMAND_LINE];
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		for (int bytewise = 0; bytewise < 2; bytewise++) {
			struct pop3_request req;
			enum pop3_parse_result r = parse(c->line, bytewise, &req, line, sizeof(line));
			if (r != c->result)
				fprintf(stderr, "case \"%s\" bytewise=%d\n", c->line, bytewise);
			TEST_ASSERT_INT(r, c->result);
			if (c->cmd != NULL && req.cmd != NULL)
				TEST_ASSERT_STR(req.cmd->name, c->cmd);
			else
				TEST_ASSERT(c->cmd == NULL || req.cmd != NULL);
			if (r != POP3_PARSE_OK)
				continue;
			TEST_ASSERT_INT(req.argc, c->argc);
			if (c->arg0 != NULL)
				TEST_ASSERT_STR(req.argv[0], c->arg0);
			if (c->arg1 != NULL)
				TEST_ASSERT_STR(req.argv[1], c->arg1);
			if (c->argc > 0 && req.cmd->args[0] != POP3_ARG_WORD)
				TEST_ASSERT_INT(req.num[0], c->num0);
			if (c->argc > 1 && req.cmd->args[1] != POP3_ARG_WORD)
				TEST_ASSERT_INT(req.num[1], c->num1);
		}
	}
}

static void test_parse_too_long(void)
{
	char line[POP3_MAX_COMMAND_LINE];
	struct buf b = BUF_INIT;
	buf_append_str(&b, "USER ");
	for (int i = 0; i < 600; i++)
		buf_append_char(&b, 'x');
	struct pop3_request req;
	TEST_ASSERT_INT(parse(buf_str(&b), false, &req, line, sizeof(line)), PARSE_TOO_LONG);
	TEST_ASSERT_INT(parse(buf_str(&b), true, &req, line, sizeof(line)), PARSE_TOO_LONG);
	buf_free(&b);
}

static void test_parse_number(void)
{
	uint32_t v = 7;
	TEST_ASSERT(pop3_parse_number("0", &v) && v == 0);
	TEST_ASSERT(pop3_parse_number("4294967295", &v) && v == UINT32_MAX);
	TEST_ASSERT(pop3_parse_number("4294967296", &v) && v == UINT32_MAX);
	TEST_ASSERT(pop3_parse_number("000012", &v) && v == 12);
	TEST_ASSERT(!pop3_parse_number("", &v));
	TEST_ASSERT(!pop3_parse_number("1a", &v));
	TEST_ASSERT(!pop3_parse_number(" 1", &v));
}

/* Converts whole and in every piece size 1..7; all must agree. */
static void check_convert(const char *in, size_t len, bool top, uint32_t lines,
			  const char *want, uint64_t want_octets)
{
	for (size_t step = 0; step <= 7; step++) {
		struct pop3_convert cv;
		struct buf out = BUF_INIT;
		pop3_convert_init(&cv, top, lines);
		size_t piece = step == 0 ? (len > 0 ? len : 1) : step;
		for (size_t off = 0; off < len; off += piece)
			pop3_convert(&cv, in + off, len - off < piece ? len - off : piece, &out);
		pop3_convert_finish(&cv, &out);
		TEST_ASSERT_STR(buf_str(&out), want);
		TEST_ASSERT_INT(cv.octets, want_octets);
		buf_free(&out);
	}
}

#define CONVERT(in, top, lines, want, octets) \
	check_convert(in, sizeof(in) - 1, top, lines, want, octets)

static void test_convert_retr(void)
{
	CONVERT("", false, 0, ".\r\n", 0);
	CONVERT("A: b\r\n\r\nbody\r\n", false, 0, "A: b\r\n\r\nbody\r\n.\r\n", 14);
	/* bare LF becomes CRLF, and is counted as two octets */
	CONVERT("A: b\n\nbody\n", false, 0, "A: b\r\n\r\nbody\r\n.\r\n", 14);
	/* dot-stuffing is not counted */
	CONVERT("A: b\n\n.\n..x\n.y\r\n", false, 0,
		"A: b\r\n\r\n..\r\n...x\r\n..y\r\n.\r\n", 20);
	/* no line end at the end: the terminator brings its own CRLF */
	CONVERT("A: b\n\nlast", false, 0, "A: b\r\n\r\nlast\r\n.\r\n", 12);
	CONVERT(".", false, 0, "..\r\n.\r\n", 1);
	/* a bare CR stays a byte of its line */
	CONVERT("A: b\r\n\r\nx\ry\r\n", false, 0, "A: b\r\n\r\nx\ry\r\n.\r\n", 13);
	/* a NUL passes through */
	CONVERT("A\0B\n", false, 0, "A", 5);
}

static void test_convert_top(void)
{
	const char msg[] = "A: b\nC: d\n\n.one\ntwo\r\nthree\n";
	CONVERT(msg, true, 0, "A: b\r\nC: d\r\n\r\n.\r\n", 14);
	CONVERT(msg, true, 1, "A: b\r\nC: d\r\n\r\n..one\r\n.\r\n", 20);
	CONVERT(msg, true, 2, "A: b\r\nC: d\r\n\r\n..one\r\ntwo\r\n.\r\n", 25);
	CONVERT(msg, true, 99, "A: b\r\nC: d\r\n\r\n..one\r\ntwo\r\nthree\r\n.\r\n", 32);
	/* no body at all: the whole header */
	CONVERT("A: b\nC: d", true, 0, "A: b\r\nC: d\r\n.\r\n", 10);
	/* a CRLF blank line ends the header as a bare LF one does */
	CONVERT("A: b\r\n\r\nx\r\n", true, 0, "A: b\r\n\r\n.\r\n", 8);
}

int main(void)
{
	test_run("parse_table", test_parse_table);
	test_run("parse_too_long", test_parse_too_long);
	test_run("parse_number", test_parse_number);
	test_run("convert_retr", test_convert_retr);
	test_run("convert_top", test_convert_top);
	return test_end();
}

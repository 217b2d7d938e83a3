/* The IMAP command reader and argument parser: every input read whole and
 * byte by byte (and in other piece sizes) must give the same events. */
#include "core/core.h"
#include "imap/imap-parser.h"
#include "imap/imap-private.h"
#include "store/store.h"
#include "test.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* APPEND-style streaming: literals of odd size go to a sink, the command
 * gets "{0}" in their place; split input gives the same result. */
static enum imap_literal_action odd_streams(void *ctx, const char *cmd, size_t len,
					    uint64_t size)
{
	(void)ctx;
	TEST_ASSERT(len > 0 && cmd[len - 1] == '}');
	return size % 2 ? IMAP_LITERAL_STREAM : IMAP_LITERAL_KEEP;
}

static void sink(void *ctx, const void *data, size_t len)
{
	buf_append(ctx, data, len);
}

/* Feeds input in pieces of step bytes; records every event as
 * "STATUS:command|" (the command text for COMMAND, the tag otherwise).
 * With streamed, odd-sized literals stream there and commands show
 * "=streamed bytes". */
static void reader_run_sink(const char *input, size_t len, size_t step, size_t text_max,
			    size_t literal_max, struct buf *streamed, struct buf *out)
{
	static const char *names[] = { "MORE", "CMD", "CONT", "LONG", "BIG", "FATAL" };
	struct imap_reader r;
	imap_reader_init(&r, text_max, literal_max);
	if (streamed != NULL) {
		r.literal_fn = odd_streams;
		r.stream_fn = sink;
		r.fn_ctx = streamed;
		r.stream_max = 1000;
	}
	struct evbuffer *in = evbuffer_new();
	size_t pos = 0;
	for (;;) {
		enum imap_read_status st = imap_reader_next(&r, in);
		if (st == IMAP_READ_NEED_MORE) {
			if (pos == len)
				break;
			size_t n = len - pos < step ? len - pos : step;
			evbuffer_add(in, input + pos, n);
			pos += n;
			continue;
		}
		char tag[IMAP_MAX_TAG + 1];
		buf_printf(out, "%s:", names[st]);
		if (st == IMAP_READ_COMMAND)
			buf_append(out, r.cmd.data, r.cmd.len);
		else
			buf_append_str(out, imap_reader_tag(&r, tag, sizeof(tag)));
		if (st == IMAP_READ_COMMAND && r.bad_chars)
			buf_append_str(out, "!");
		if (st == IMAP_READ_COMMAND && streamed != NULL) {
			buf_printf(out, "=%s", buf_str(streamed));
			buf_reset(streamed);
		}
		buf_append_str(out, "|");
		if (st == IMAP_READ_FATAL)
			break;
	}
	evbuffer_free(in);
	imap_reader_free(&r);
}

static void reader_run(const char *input, size_t len, size_t step, size_t text_max,
		       size_t literal_max, struct buf *out)
{
	reader_run_sink(input, len, step, text_max, literal_max, NULL, out);
}

static void check_reader(const char *input, size_t len, size_t text_max, size_t literal_max,
			 const char *want)
{
	struct buf whole = BUF_INIT;
	reader_run(input, len, len ? len : 1, text_max, literal_max, &whole);
	TEST_ASSERT_STR(buf_str(&whole), want);
	for (size_t step = 1; step <= 7; step++) {
		struct buf split = BUF_INIT;
		reader_run(input, len, step, text_max, literal_max, &split);
		TEST_ASSERT_STR(buf_str(&split), buf_str(&whole));
		buf_free(&split);
	}
	buf_free(&whole);
}

#define CHECK_READER(in, tmax, lmax, want) check_reader(in, sizeof(in) - 1, tmax, lmax, want)

static void test_reader_lines(void)
{
	CHECK_READER("a NOOP\r\nb CAPABILITY\r\n", 100, 100, "CMD:a NOOP|CMD:b CAPABILITY|");
	CHECK_READER("a NOOP\nb X\r\n", 100, 100, "CMD:a NOOP|CMD:b X|");
	CHECK_READER("a NOOP", 100, 100, "");
	CHECK_READER("a X\ry\r\n", 100, 100, "CMD:a X\ry!|");  /* bare CR: flagged */
}

static void test_reader_literals(void)
{
	CHECK_READER("a LOGIN {3}\r\nbob {4}\r\npass\r\n", 100, 100,
		     "CONT:a|CONT:a|CMD:a LOGIN {3}\r\nbob {4}\r\npass|");
	/* non-synchronising: no continuation */
	CHECK_READER("a LOGIN {3+}\r\nbob {4+}\r\npa\r\n\r\n", 100, 100,
		     "CMD:a LOGIN {3+}\r\nbob {4+}\r\npa\r\n|");
	/* literal bytes are not lines: CRLF, quotes and braces inside */
	CHECK_READER("a X {6}\r\n\"{1}\r\n y\r\n", 100, 100, "CONT:a|CMD:a X {6}\r\n\"{1}\r\n y|");
	/* a brace inside a quoted string is no literal */
	CHECK_READER("a X \"b {3}\"\r\n", 100, 100, "CMD:a X \"b {3}\"|");
	CHECK_READER("a X \"b \\\" {3}\r\n", 100, 100, "CMD:a X \"b \\\" {3}|");
	CHECK_READER("a X {0}\r\n\r\n", 100, 100, "CONT:a|CMD:a X {0}\r\n|");
	CHECK_READER("a APPEND x ~{2}\r\nab\r\n", 100, 100, "CONT:a|CMD:a APPEND x ~{2}\r\nab|");
}

static void test_reader_limits(void)
{
	/* over-long line: refused once, the session goes on */
	char big[300];
	memset(big, 'x', sizeof(big));
	memcpy(big, "a X ", 4);
	memcpy(big + 250, "\r\nb NOOP\r\n", 10);
	check_reader(big, 260, 100, 100, "LONG:*|CMD:b NOOP|");
	/* text over the cap across literals */
	CHECK_READER("a X {2}\r\nab 0123456789\r\nb NOOP\r\n", 20, 100,
		     "CONT:a|LONG:a|CMD:b NOOP|");
	/* huge synchronising literal: refused before reading, no continuation */
	CHECK_READER("a LOGIN {99999999999}\r\nb NOOP\r\n", 100, 100,
		     "BIG:a|CMD:b NOOP|");
	CHECK_READER("a LOGIN {999999999999999999999999999}\r\nb NOOP\r\n", 100, 100,
		     "BIG:a|CMD:b NOOP|");
	/* literal total over the cap */
	CHECK_READER("a X {60}\r\n", 100, 50, "BIG:a|");
	CHECK_READER("a X {30}\r\n012345678901234567890123456789 {30}\r\nb NOOP\r\n", 200, 50,
		     "CONT:a|BIG:a|CMD:b NOOP|");
	/* huge non-synchronising literal: cannot be skipped safely */
	CHECK_READER("a X {100+}\r\nxxxx\r\n", 100, 50, "FATAL:a|");
}

static void test_reader_streaming(void)
{
	static const char in[] = "a APPEND x {5}\r\nhello {2+}\r\nab {3+}\r\nxyz\r\n"
				 "b APPEND x {2000}\r\nc NOOP\r\n";
	const char *want = "CONT:a|CMD:a APPEND x {0}\r\n {2+}\r\nab {0}\r\n=helloxyz|"
			   "BIG:b|CMD:c NOOP=|";
	for (size_t step = 1; step <= sizeof(in); step++) {
		struct buf out = BUF_INIT, streamed = BUF_INIT;
		reader_run_sink(in, sizeof(in) - 1, step, 100, 10, &streamed, &out);
		TEST_ASSERT_STR(buf_str(&out), want);
		buf_free(&out);
		buf_free(&streamed);
	}
}

static struct pool *pool;

static const char *dump_args(const struct imap_arg *args, size_t count, struct buf *b)
{
	for (size_t i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];
		if (i > 0)
			buf_append_char(b, ' ');
		switch (a->type) {
		case IMAP_ARG_ATOM:
			buf_printf(b, "A:%s", a->str);
			break;
		case IMAP_ARG_QUOTED:
			buf_printf(b, "Q:%s", a->str);
			break;
		case IMAP_ARG_LITERAL:
			buf_printf(b, "L%s:", a->literal8 ? "8" : "");
			buf_append(b, a->str, a->len);
			break;
		case IMAP_ARG_LIST:
			buf_append_char(b, '(');
			dump_args(a->items, a->count, b);
			buf_append_char(b, ')');
			break;
		}
	}
	return buf_str(b);
}

static void check_parse(const char *input, size_t len, const char *want)
{
	struct imap_command_line cmd;
	const char *error = NULL;
	struct buf b = BUF_INIT;
	if (imap_parse(pool, input, len, &cmd, &error) < 0)
		buf_printf(&b, "ERR %s: %s", cmd.tag ? cmd.tag : "-", error);
	else {
		buf_printf(&b, "%s %s [", cmd.tag, cmd.name);
		dump_args(cmd.args, cmd.count, &b);
		buf_append_char(&b, ']');
	}
	TEST_ASSERT_STR(buf_str(&b), want);
	buf_free(&b);
	pool_clear(pool);
}

#define CHECK_PARSE(in, want) check_parse(in, sizeof(in) - 1, want)

static void test_parse(void)
{
	CHECK_PARSE("a NOOP", "a NOOP []");
	CHECK_PARSE("a LOGIN bob \"p a\\\"s\\\\s\"", "a LOGIN [A:bob Q:p a\"s\\s]");
	CHECK_PARSE("a LOGIN {3}\r\nbob {4+}\r\np\r\ns", "a LOGIN [L:bob L:p\r\ns]");
	CHECK_PARSE("a1 FETCH 1:*,3 (FLAGS BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.100>)",
		    "a1 FETCH [A:1:*,3 (A:FLAGS A:BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.100>)]");
	CHECK_PARSE("a STORE 1 +FLAGS (\\Seen \\Flagged)", "a STORE [A:1 A:+FLAGS (A:\\Seen A:\\Flagged)]");
	CHECK_PARSE("a LIST \"\" %", "a LIST [Q: A:%]");
	CHECK_PARSE("a SEARCH OR (FROM x) (TO y) NOT DELETED",
		    "a SEARCH [A:OR (A:FROM A:x) (A:TO A:y) A:NOT A:DELETED]");
	CHECK_PARSE("a X ()", "a X [()]");
	CHECK_PARSE("a X ((a) (b c))", "a X [((A:a) (A:b A:c))]");
	CHECK_PARSE("a APPEND x ~{2}\r\nab", "a APPEND [A:x L8:ab]");
	CHECK_PARSE("a X {3}\r\na\"b", "a X [L:a\"b]");
	/* errors */
	CHECK_PARSE("", "ERR -: Invalid tag");
	CHECK_PARSE("a", "ERR a: Missing command");
	CHECK_PARSE("+a NOOP", "ERR -: Invalid tag");
	CHECK_PARSE("a* NOOP", "ERR -: Invalid tag");
	CHECK_PARSE("a NO-OP", "ERR a: Invalid command name");
	CHECK_PARSE("a NOOP ", "ERR a: Trailing space");
	CHECK_PARSE("a X (a b", "ERR a: Missing ')'");
	CHECK_PARSE("a X a)", "ERR a: Unexpected ')'");
	CHECK_PARSE("a X a  b", "ERR a: Unexpected space");
	CHECK_PARSE("a X (a b) ", "ERR a: Missing argument");
	CHECK_PARSE("a X \"abc", "ERR a: Unterminated quoted string");
	CHECK_PARSE("a X \"a\\bc\"", "ERR a: Invalid escape in quoted string");
	CHECK_PARSE("a X {3}\r\nab", "ERR a: Literal shorter than announced");
	CHECK_PARSE("a X {3} x", "ERR a: Literal must end the line");
	CHECK_PARSE("a X {}\r\n", "ERR a: Invalid literal size");
	CHECK_PARSE("a X BODY[HEADER", "ERR a: Missing ']'");
	CHECK_PARSE("a X a\"b", "ERR a: Expected a space between arguments");
	char deep[200] = "a X ";
	for (int i = 0; i < 40; i++)
		strcat(deep, "(");
	check_parse(deep, strlen(deep), "ERR a: Lists nested too deep");
}

static void test_args(void)
{
	struct imap_command_line cmd;
	const char *error, *s = NULL;
	static const char in[] = "a X atom \"q\" {2}\r\nl\0 NIL 42 %x 007";
	TEST_ASSERT(imap_parse(pool, in, sizeof(in) - 1, &cmd, &error) == 0);
	TEST_ASSERT_INT(cmd.count, 7);
	TEST_ASSERT(imap_arg_astring(&cmd.args[0], &s) && strcmp(s, "atom") == 0);
	TEST_ASSERT(imap_arg_astring(&cmd.args[1], &s) && strcmp(s, "q") == 0);
	TEST_ASSERT(!imap_arg_string(&cmd.args[0], &s));
	TEST_ASSERT(!imap_arg_astring(&cmd.args[2], &s));   /* holds NUL */
	TEST_ASSERT(imap_arg_is_nil(&cmd.args[3]));
	uint64_t n = 0;
	TEST_ASSERT(imap_arg_number(&cmd.args[4], &n) && n == 42);
	TEST_ASSERT(!imap_arg_astring(&cmd.args[5], &s));   /* wildcard */
	TEST_ASSERT(!imap_arg_number(&cmd.args[0], &n));
	pool_clear(pool);
	/* a literal keeps every byte, NULs included */
	static const char nul[] = "a X {5}\r\na\0b\0c";
	TEST_ASSERT(imap_parse(pool, nul, sizeof(nul) - 1, &cmd, &error) == 0);
	TEST_ASSERT_INT(cmd.args[0].len, 5);
	TEST_ASSERT(memcmp(cmd.args[0].str, "a\0b\0c", 6) == 0);
	TEST_ASSERT(!imap_arg_string(&cmd.args[0], &s));
	pool_clear(pool);
}

static void check_seqset(const char *in, bool dollar, const char *want)
{
	struct imap_seqset set;
	struct buf b = BUF_INIT;
	int ret = imap_seqset_parse(pool, in, dollar, &set);
	if (ret < 0)
		buf_append_str(&b, "ERR");
	else if (set.dollar)
		buf_append_str(&b, "$");
	for (size_t i = 0; ret == 0 && !set.dollar && i < set.count; i++)
		buf_printf(&b, "%s%u-%d", i ? "," : "", set.ranges[i].lo,
			   set.ranges[i].hi == IMAP_SEQ_STAR ? -1 : (int)set.ranges[i].hi);
	TEST_ASSERT_STR(buf_str(&b), want);
	buf_free(&b);
	pool_clear(pool);
}

static void test_seqset(void)
{
	check_seqset("1", false, "1-1");
	check_seqset("1:3,7,9:*", false, "1-3,7-7,9--1");
	check_seqset("5:2", false, "2-5");
	check_seqset("*:4", false, "4--1");
	check_seqset("*", false, "4294967295--1");
	check_seqset("4294967295", false, "4294967295--1");
	check_seqset("$", true, "$");
	check_seqset("$", false, "ERR");
	check_seqset("4294967296", false, "ERR");
	check_seqset("0", false, "ERR");
	check_seqset("01", false, "ERR");
	check_seqset("1,", false, "ERR");
	check_seqset("1:", false, "ERR");
	check_seqset("", false, "ERR");
	check_seqset("1::2", false, "ERR");
	check_seqset("a", false, "ERR");
}

/* BINARY's decoder: fed in pieces of every size from 1 to 7 it gives what
 * it gives fed whole, and that is what the store's whole-part decoder
 * gives (for input whose line ends are already CRLF). */
static void decode_pieces(enum imap_cte cte, const char *in, size_t len, size_t piece,
			  struct buf *out)
{
	struct imap_decoder d;
	char o[IMAP_DECODER_OUT_MAX];
	imap_decoder_init(&d, cte);
	buf_reset(out);
	size_t pos = 0;
	do {
		size_t n = len - pos < piece ? len - pos : piece;
		size_t got = imap_decoder_run(&d, in + pos, n, pos + n == len, o);
		buf_append(out, o, got);
		pos += n;
	} while (pos < len);
	buf_append(out, "", 0);
}

static void test_binary_decoder(void)
{
	static const struct { enum imap_cte cte; const char *name, *in, *want; } cases[] = {
		{ IMAP_CTE_QP, "quoted-printable",
		  "caf=C3=A9 =\r\nsoft=20\r\nend=3D=\r\n", "caf\xc3\xa9 soft \r\nend=" },
		{ IMAP_CTE_QP, "quoted-printable", "a= \t\r\nb=4", "ab=4" },
		{ IMAP_CTE_QP, "quoted-printable", "x=\r", "x=\r" },
		{ IMAP_CTE_QP, "quoted-printable", "==41=zz=\n", "=A=zz" },
		{ IMAP_CTE_BASE64, "base64", "aGVs\r\nbG8g d29y bGQ=", "hello world" },
		{ IMAP_CTE_BASE64, "base64", "aGk=aGk=", "hihi" },
		{ IMAP_CTE_IDENTITY, "7bit", "a\r\nb\r\n", "a\r\nb\r\n" },
	};
	struct buf whole = BUF_INIT, split = BUF_INIT, header = BUF_INIT;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in), dlen;
		decode_pieces(cases[i].cte, cases[i].in, len, len > 0 ? len : 1, &whole);
		TEST_ASSERT_STR(buf_str(&whole), cases[i].want);
		for (size_t piece = 1; piece <= 7; piece++) {
			decode_pieces(cases[i].cte, cases[i].in, len, piece, &split);
			TEST_ASSERT_STR(buf_str(&split), buf_str(&whole));
		}
		buf_reset(&header);
		buf_printf(&header, "Content-Transfer-Encoding: %s\r\n\r\n", cases[i].name);
		TEST_ASSERT(imap_binary_cte(header.data, header.len) == cases[i].cte);
		char *store = store_decode_body(header.data, header.len, cases[i].in, len, false, &dlen);
		TEST_ASSERT_STR(store, buf_str(&whole));
		free(store);
	}
	/* bare LF in text becomes CRLF; "binary" is left alone */
	decode_pieces(IMAP_CTE_IDENTITY, "a\nb\r\nc\n", 7, 2, &whole);
	TEST_ASSERT_STR(buf_str(&whole), "a\r\nb\r\nc\r\n");
	decode_pieces(IMAP_CTE_BINARY, "a\nb", 3, 1, &whole);
	TEST_ASSERT_STR(buf_str(&whole), "a\nb");
	static const struct { const char *header; enum imap_cte cte; } ctes[] = {
		{ "Subject: x\r\n\r\n", IMAP_CTE_IDENTITY },
		{ "Content-Transfer-Encoding: 8BIT\r\n\r\n", IMAP_CTE_IDENTITY },
		{ "Content-Transfer-Encoding:\r\n Base64 (folded)\r\n\r\n", IMAP_CTE_BASE64 },
		{ "Content-Transfer-Encoding: binary\r\n\r\n", IMAP_CTE_BINARY },
		{ "Content-Transfer-Encoding: x-uuencode\r\n\r\n", IMAP_CTE_UNKNOWN },
	};
	for (size_t i = 0; i < sizeof(ctes) / sizeof(ctes[0]); i++)
		TEST_ASSERT(imap_binary_cte(ctes[i].header, strlen(ctes[i].header)) == ctes[i].cte);
	buf_free(&whole);
	buf_free(&split);
	buf_free(&header);
}

int main(void)
{
	pool = pool_new(4096);
	test_run("reader_lines", test_reader_lines);
	test_run("reader_literals", test_reader_literals);
	test_run("reader_limits", test_reader_limits);
	test_run("reader_streaming", test_reader_streaming);
	test_run("parse", test_parse);
	test_run("args", test_args);
	test_run("seqset", test_seqset);
	test_run("binary_decoder", test_binary_decoder);
	pool_free(&pool);
	return test_end();
}

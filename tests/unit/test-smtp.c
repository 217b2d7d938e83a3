#include "test.h"
#include "core/core.h"
#include "submission/smtp-data.h"
#include "submission/smtp-message.h"
#include "submission/smtp-parse.h"

static void collect(void *ctx, const char *data, size_t len)
{
	buf_append(ctx, data, len);
}

struct decoded {
	struct buf out;
	unsigned int errors;
	size_t consumed;
	bool done;
};

static void decode(const char *in, size_t len, size_t step, bool normalize, uint64_t max,
		   struct decoded *r)
{
	struct smtp_data_decoder d;
	buf_init(&r->out);
	smtp_data_init(&d, max, normalize, collect, &r->out);
	r->consumed = 0;
	r->done = false;
	while (r->consumed < len && !r->done) {
		size_t n = step == 0 ? len - r->consumed :
			   (len - r->consumed < step ? len - r->consumed : step);
		r->consumed += smtp_data_feed(&d, in + r->consumed, n, &r->done);
	}
	r->errors = d.errors;
}

/* decodes whole and in every piece size 1..9: all must agree */
static void check_data(const char *in, size_t len, bool normalize, const char *want_out,
		       unsigned int want_errors, bool want_done, size_t want_consumed)
{
	for (size_t step = 0; step <= 9; step++) {
		struct decoded r;
		decode(in, len, step, normalize, 1000000, &r);
		if (want_out != NULL)
			TEST_ASSERT_STR(buf_str(&r.out), want_out);
		TEST_ASSERT_INT(r.errors, want_errors);
		TEST_ASSERT_INT(r.done, want_done);
		TEST_ASSERT_INT(r.consumed, want_consumed);
		buf_free(&r.out);
	}
}

#define DATA(lit, norm, out, err, done, consumed) \
	check_data(lit, sizeof(lit) - 1, norm, out, err, done, consumed)

static void test_data_basic(void)
{
	DATA("Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n", false,
	     "Subject: x\r\n\r\nbody\r\n", 0, true, 23);
	DATA(".\r\n", false, "", 0, true, 3);
	DATA("..leading dot\r\n.\r\n", false, ".leading dot\r\n", 0, true, 18);
	DATA(".x\r\n.\r\n", false, "x\r\n", 0, true, 7);
	DATA("a\r\n..\r\n.\r\n", false, "a\r\n.\r\n", 0, true, 10);
	DATA("no end yet\r\n", false, "no end yet\r\n", 0, false, 12);
	DATA("a\r\n.", false, "a\r\n", 0, false, 4);
}

static void test_data_smuggling(void)
{
	/* none of these ends the message */
	DATA("a\n.\nMAIL FROM:<x>\r\n.\r\n", false, NULL, SMTP_DATA_BARE_LF, true, 22);
	DATA("a\n.\r\nRCPT\r\n.\r\n", false, NULL, SMTP_DATA_BARE_LF, true, 14);
	DATA("a\r.\rX\r\n.\r\n", false, NULL, SMTP_DATA_BARE_CR, true, 10);
	DATA("a\r\n.\nb\r\n.\r\n", false, NULL, SMTP_DATA_BARE_LF, true, 11);
	DATA("a\r\n.\rb\r\n.\r\n", false, NULL, SMTP_DATA_BARE_CR, true, 11);
	/* normalized: bare newlines become CRLF, the dot after them stays */
	DATA("a\n.\nb\r\n.\r\n", true, "a\r\n.\r\nb\r\n", 0, true, 10);
	DATA("a\rb\r\r\n.\r\n", true, "a\r\nb\r\n\r\n", 0, true, 9);
}

static void test_data_limits(void)
{
	struct buf in = BUF_INIT;
	for (int i = 0; i < SMTP_DATA_MAX_LINE; i++)
		buf_append_char(&in, 'x');
	buf_append_str(&in, "\r\n.\r\n");
	check_data(in.data, in.len, false, NULL, 0, true, in.len);
	buf_reset(&in);
	for (int i = 0; i < SMTP_DATA_MAX_LINE + 1; i++)
		buf_append_char(&in, 'x');
	buf_append_str(&in, "\r\n.\r\n");
	check_data(in.data, in.len, false, NULL, SMTP_DATA_LINE_TOO_LONG, true, in.len);
	buf_free(&in);

	struct decoded r;
	const char *msg = "0123456789\r\n0123456789\r\n.\r\n";
	decode(msg, strlen(msg), 3, false, 20, &r);
	TEST_ASSERT_INT(r.errors, SMTP_DATA_TOO_BIG);
	TEST_ASSERT(r.done);
	TEST_ASSERT(r.out.len <= 20);
	buf_free(&r.out);
	decode(msg, strlen(msg), 0, false, 24, &r);
	TEST_ASSERT_INT(r.errors, 0);
	buf_free(&r.out);
	DATA("a\0b\r\n.\r\n", false, NULL, SMTP_DATA_NUL, true, 8);
}

static void test_parse_mail(void)
{
	struct pool *pool = pool_new(1024);
	struct smtp_path path;
	struct smtp_mail_params mp;
	const char *reply = NULL;

	TEST_ASSERT_INT(smtp_parse_mail("FROM:<a@example.org>", pool, &path, &mp, &reply), 0);
	TEST_ASSERT_STR(path.address, "a@example.org");
	TEST_ASSERT_INT(smtp_parse_mail("from: <a@example.org> SIZE=1000 BODY=8BITMIME", pool,
					&path, &mp, &reply), 0);
	TEST_ASSERT(mp.has_size && mp.size == 1000 && mp.body == SMTP_BODY_8BITMIME);
	TEST_ASSERT_INT(smtp_parse_mail("FROM:<>", pool, &path, &mp, &reply), 0);
	TEST_ASSERT_STR(path.address, "");
	TEST_ASSERT_INT(smtp_parse_mail("FROM:<@relay.example:a@example.org>", pool, &path, &mp,
					&reply), 0);
	TEST_ASSERT_STR(path.address, "a@example.org");
	TEST_ASSERT_INT(smtp_parse_mail("FROM:<\"odd user\"@example.org>", pool, &path, &mp,
					&reply), 0);
	TEST_ASSERT_STR(path.address, "\"odd user\"@example.org");
	TEST_ASSERT_INT(smtp_parse_mail("FROM:<a@b> RET=HDRS ENVID=QQ+2B1 AUTH=<>", pool, &path,
					&mp, &reply), 0);
	TEST_ASSERT_INT(mp.ret, SMTP_RET_HDRS);
	TEST_ASSERT_STR(mp.envid, "QQ+1");
	TEST_ASSERT_INT(smtp_parse_mail("FROM:<j\xc3\xb6rg@example.org> SMTPUTF8", pool, &path,
					&mp, &reply), 0);
	TEST_ASSERT(path.utf8 && mp.smtputf8);

	struct { const char *args; const char *code; } bad[] = {
		{ "FROM:<j\xc3\xb6rg@example.org>", "553 5.6.7" },
		{ "FROM:a@example.org", "501 5.1.7" },
		{ "FROM:<a@example.org", "501 5.1.7" },
		{ "FROM:<a@@example.org>", "501 5.1.7" },
		{ "FROM:<a..b@example.org>", "501 5.1.7" },
		{ "FROM:<a@-example.org>", "501 5.1.7" },
		{ "FROM:<a@example.org>x", "501 5.1.7" },
		{ "FROM:<a@b> FOO=1", "555 5.5.4" },
		{ "FROM:<a@b> SIZE=abc", "501 5.5.4" },
		{ "FROM:<a@b> SIZE=1 SIZE=2", "501 5.5.4" },
		{ "FROM:<a@b> BODY=9BIT", "501 5.5.4" },
		{ "FROM:<a@b> RET=ALL", "501 5.5.4" },
		{ "FROM:<a@b> ENVID=a+zz", "501 5.5.4" },
		{ "FROM:<a@b> SMTPUTF8=yes", "501 5.5.4" },
		{ "FROM:<a@b> =x", "501 5.5.4" },
		{ "TO:<a@b>", "501 5.5.4" },
		{ "FROM:<\xff@b>", "501 5.1.7" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		reply = "";
		TEST_ASSERT_INT(smtp_parse_mail(bad[i].args, pool, &path, &mp, &reply), -1);
		if (strncmp(reply, bad[i].code, 9) != 0)
			fprintf(stderr, "  case %zu: reply %s, want %s\n", i, reply, bad[i].code);
		TEST_ASSERT(strncmp(reply, bad[i].code, 9) == 0);
	}
	struct buf longaddr = BUF_INIT;
	buf_append_str(&longaddr, "FROM:<");
	for (int i = 0; i < 300; i++)
		buf_append_char(&longaddr, 'a');
	buf_append_str(&longaddr, "@example.org>");
	TEST_ASSERT_INT(smtp_parse_mail(buf_str(&longaddr), pool, &path, &mp, &reply), -1);
	buf_free(&longaddr);
	pool_free(&pool);
}

static void test_parse_rcpt(void)
{
	struct pool *pool = pool_new(1024);
	struct smtp_path path;
	struct smtp_rcpt_params rp;
	const char *reply = NULL;
	TEST_ASSERT_INT(smtp_parse_rcpt("TO:<b@example.org> NOTIFY=SUCCESS,FAILURE "
					"ORCPT=rfc822;b+40example.org", pool, &path, &rp, &reply), 0);
	TEST_ASSERT_INT(rp.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE);
	TEST_ASSERT_STR(rp.orcpt, "rfc822;b@example.org");
	TEST_ASSERT_INT(smtp_parse_rcpt("TO:<Postmaster>", pool, &path, &rp, &reply), 0);
	TEST_ASSERT(path.postmaster);
	TEST_ASSERT_INT(smtp_parse_rcpt("TO:<b@example.org> NOTIFY=NEVER", pool, &path, &rp,
					&reply), 0);
	const char *bad[] = {
		"TO:<>", "TO:<b@example.org> NOTIFY=NEVER,DELAY", "TO:<b@example.org> NOTIFY=",
		"TO:<b@example.org> NOTIFY=SUCCESS,", "TO:<b@example.org> ORCPT=rfc822",
		"TO:<b@example.org> XFOO", "FROM:<b@example.org>", "TO:<nodomain>",
		"TO:<b@example.org> NOTIFY=DELAY,DELAY",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = smtp_parse_rcpt(bad[i], pool, &path, &rp, &reply);
		if (ret != -1)
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		TEST_ASSERT_INT(ret, -1);
	}
	pool_free(&pool);
}

static void test_xtext(void)
{
	struct pool *pool = pool_new(256);
	TEST_ASSERT_STR(smtp_xtext_decode("a+2Bb+3Dc+20d", pool), "a+b=c d");
	TEST_ASSERT(smtp_xtext_decode("a+2", pool) == NULL);
	TEST_ASSERT(smtp_xtext_decode("a+00", pool) == NULL);
	pool_free(&pool);
}


static void run_message(const char *in, bool add, size_t step, struct buf *out,
			struct smtp_message *m)
{
	smtp_message_init(m, "Received: by test\r\n", add, "mx.example", collect, out);
	size_t len = strlen(in);
	for (size_t i = 0; i < len;) {
		size_t n = step == 0 || len - i < step ? len - i : step;
		smtp_message_feed(m, in + i, n);
		i += n;
	}
	smtp_message_finish(m);
}

static void test_message_headers(void)
{
	for (size_t step = 0; step <= 5; step++) {
		struct buf out = BUF_INIT;
		struct smtp_message m;
		run_message("From: A <a@Example.ORG>\r\nReceived: x\r\nReceived: y\r\n"
			    "Subject: hi\r\n\r\nbody\r\nFrom: not a header\r\n", true, step,
			    &out, &m);
		const char *o = buf_str(&out);
		TEST_ASSERT(strncmp(o, "Received: by test\r\nFrom: A <a@Example.ORG>\r\n", 44) == 0);
		TEST_ASSERT(strstr(o, "\r\nDate: ") != NULL);
		TEST_ASSERT(strstr(o, "\r\nMessage-ID: <") != NULL && strstr(o, "@mx.example>\r\n"));
		TEST_ASSERT(strstr(o, "\r\n\r\nbody\r\nFrom: not a header\r\n") != NULL);
		TEST_ASSERT_INT(m.received_count, 2);
		TEST_ASSERT_INT(m.from_count, 1);
		TEST_ASSERT_STR(m.from[0], "a@example.org");
		TEST_ASSERT(!m.from_unparsable);
		smtp_message_free(&m);
		buf_free(&out);
	}
	/* inbound (no fixes): the message passes unchanged after the trace */
	struct buf out = BUF_INIT;
	struct smtp_message m;
	run_message("Subject: x\r\n\r\nb\r\n", false, 0, &out, &m);
	TEST_ASSERT_STR(buf_str(&out), "Received: by test\r\nSubject: x\r\n\r\nb\r\n");
	TEST_ASSERT(!m.has_from);
	smtp_message_free(&m);
	buf_free(&out);
	/* no blank line before a non-header line */
	buf_init(&out);
	run_message("Subject: x\r\nthis is body\r\n", false, 0, &out, &m);
	TEST_ASSERT_STR(buf_str(&out), "Received: by test\r\nSubject: x\r\n\r\nthis is body\r\n");
	smtp_message_free(&m);
	buf_free(&out);
	/* folded From with two addresses; a second From field is suspicious */
	buf_init(&out);
	run_message("From: \"Doe, J\" <j@x.org>,\r\n (c) k@Y.org\r\nFrom: z@z.org\r\n\r\n",
		    true, 1, &out, &m);
	TEST_ASSERT_INT(m.from_count, 2);
	TEST_ASSERT_STR(m.from[1], "k@y.org");
	TEST_ASSERT(m.from_unparsable);
	smtp_message_free(&m);
	buf_free(&out);
	/* headers only, no body at all */
	buf_init(&out);
	run_message("Date: x\r\nMessage-ID: <a@b>\r\n", true, 0, &out, &m);
	TEST_ASSERT_STR(buf_str(&out), "Received: by test\r\nDate: x\r\nMessage-ID: <a@b>\r\n");
	smtp_message_free(&m);
	buf_free(&out);
}

static void test_address_list(void)
{
	char *out[8];
	const char *v = " \"Smith, J\" <J.Smith@Example.COM>, plain@b.org (comment),"
			" grp: m1@c.org, <m2@c.org>;, Name <@route:r@d.org>";
	int n = smtp_address_list(v, strlen(v), out, 8);
	TEST_ASSERT_INT(n, 5);
	if (n == 5) {
		TEST_ASSERT_STR(out[0], "J.Smith@example.com");
		TEST_ASSERT_STR(out[1], "plain@b.org");
		TEST_ASSERT_STR(out[2], "m1@c.org");
		TEST_ASSERT_STR(out[3], "m2@c.org");
		TEST_ASSERT_STR(out[4], "r@d.org");
	}
	for (int i = 0; i < n; i++)
		free(out[i]);
	const char *bad[] = { "<unclosed@x.org", "no at sign", "a@b c@d", "\"open@x.org" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TEST_ASSERT_INT(smtp_address_list(bad[i], strlen(bad[i]), out, 8), -1);
	TEST_ASSERT_INT(smtp_address_list("", 0, out, 8), 0);
}

int main(void)
{
	test_run("smtp data: dot-stuffing and end", test_data_basic);
	test_run("smtp data: bare LF/CR never end the data", test_data_smuggling);
	test_run("smtp data: line and size limits", test_data_limits);
	test_run("smtp MAIL parameters", test_parse_mail);
	test_run("smtp RCPT parameters", test_parse_rcpt);
	test_run("smtp xtext", test_xtext);
	test_run("smtp message header handling", test_message_headers);
	test_run("smtp From: address lists", test_address_list);
	return test_end();
}

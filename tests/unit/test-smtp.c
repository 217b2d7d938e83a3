#include "test.h"
#include "core/core.h"
#include "submission/smtp-data.h"
#include "submission/smtp-parse.h"

static void collect(void *ctx, const char *data, size_t len)
{
	buf_append(ctx, data, len);
}

struct decoded {
	struct buf out;
	size_t consumed;
	bool done;
};

static void decode(const char *in, size_t len, size_t step, struct decoded *r)
{
	struct smtp_data_decoder d;
	buf_init(&r->out);
	smtp_data_init(&d, collect, &r->out);
	r->consumed = 0;
	r->done = false;
	while (r->consumed < len && !r->done) {
		size_t n = step == 0 ? len - r->consumed :
			   (len - r->consumed < step ? len - r->consumed : step);
		r->consumed += smtp_data_feed(&d, in + r->consumed, n, &r->done);
	}
}

/* decodes whole and in every piece size 1..9: all must agree */
static void check_data(const char *in, size_t len, const char *want_out, size_t want_out_len,
		       bool want_done, size_t want_consumed)
{
	for (size_t step = 0; step <= 9; step++) {
		struct decoded r;
		decode(in, len, step, &r);
		TEST_ASSERT_INT(r.out.len, want_out_len);
		TEST_ASSERT(r.out.len == want_out_len && memcmp(buf_str(&r.out), want_out,
								   want_out_len) == 0);
		TEST_ASSERT_INT(r.done, want_done);
		TEST_ASSERT_INT(r.consumed, want_consumed);
		buf_free(&r.out);
	}
}

#define DATA(lit, out, done, consumed) \
	check_data(lit, sizeof(lit) - 1, out, sizeof(out) - 1, done, consumed)

static void test_data_basic(void)
{
	DATA("Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n", "Subject: x\r\n\r\nbody\r\n", true, 23);
	DATA(".\r\n", "", true, 3);
	DATA("..leading dot\r\n.\r\n", ".leading dot\r\n", true, 18);
	DATA(".x\r\n.\r\n", "x\r\n", true, 7);
	DATA("a\r\n..\r\n.\r\n", "a\r\n.\r\n", true, 10);
	DATA("no end yet\r\n", "no end yet\r\n", false, 12);
	DATA("a\r\n.", "a\r\n", false, 4);
	DATA("a\0b\r\n.\r\n", "a\0b\r\n", true, 8);
}

static void test_data_smuggling(void)
{
	/* none of these ends the message; bare line ends pass through for
	 * intake's line rule, and a dot after them is never stuffing */
	DATA("a\n.\nMAIL FROM:<x>\r\n.\r\n", "a\n.\nMAIL FROM:<x>\r\n", true, 22);
	DATA("a\n.\r\nRCPT\r\n.\r\n", "a\n.\r\nRCPT\r\n", true, 14);
	DATA("a\r.\rX\r\n.\r\n", "a\r.\rX\r\n", true, 10);
	DATA("a\r\n.\nb\r\n.\r\n", "a\r\n\nb\r\n", true, 11);
	DATA("a\r\n.\rb\r\n.\r\n", "a\r\n\rb\r\n", true, 11);
	DATA("a\rb\r\r\n.\r\n", "a\rb\r\r\n", true, 9);
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

int main(void)
{
	test_run("smtp data: dot-stuffing and end", test_data_basic);
	test_run("smtp data: bare LF/CR never end the data", test_data_smuggling);
	test_run("smtp MAIL parameters", test_parse_mail);
	test_run("smtp RCPT parameters", test_parse_rcpt);
	test_run("smtp xtext", test_xtext);
	return test_end();
}

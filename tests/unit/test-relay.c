/* relay/: the SMTP reply parser, the MX rdata parser, DSN composition. */
#include "test.h"
#include "core/core.h"
#include "relay/relay-private.h"

#include <fcntl.h>
#include <unistd.h>

static void test_reply_lines(void)
{
	int code;
	bool more;
	const char *text;
	TEST_ASSERT_INT(smtp_reply_parse_line("250-SIZE 100", 12, &code, &more, &text), 0);
	TEST_ASSERT_INT(code, 250);
	TEST_ASSERT(more);
	TEST_ASSERT_STR(text, "SIZE 100");
	TEST_ASSERT_INT(smtp_reply_parse_line("550 5.1.1 no", 12, &code, &more, &text), 0);
	TEST_ASSERT_INT(code, 550);
	TEST_ASSERT(!more);
	TEST_ASSERT_STR(text, "5.1.1 no");
	TEST_ASSERT_INT(smtp_reply_parse_line("354", 3, &code, &more, &text), 0);
	TEST_ASSERT_INT(code, 354);
	TEST_ASSERT_STR(text, "");
	const char *bad[] = { "", "25", "abc", "600 x", "199 x", "250x", "2a0 x", "250_x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TEST_ASSERT_INT(smtp_reply_parse_line(bad[i], strlen(bad[i]), &code, &more, &text),
				-1);
}

static void test_mx_rdata(void)
{
	char name[256];
	int pref;
	static const unsigned char mx[] = { 0, 10, 3, 'm', 'x', '1', 7, 'e', 'x', 'a', 'm',
					    'p', 'l', 'e', 0 };
	TEST_ASSERT_INT(relay_dns_parse_mx(mx, sizeof(mx), &pref, name, sizeof(name)), 0);
	TEST_ASSERT_INT(pref, 10);
	TEST_ASSERT_STR(name, "mx1.example");
	static const unsigned char null_mx[] = { 0, 0, 0 };
	TEST_ASSERT_INT(relay_dns_parse_mx(null_mx, sizeof(null_mx), &pref, name, sizeof(name)),
			0);
	TEST_ASSERT_INT(pref, 0);
	TEST_ASSERT_STR(name, "");
	/* cut short, trailing bytes, a compression pointer, a bad byte, too long */
	TEST_ASSERT_INT(relay_dns_parse_mx(mx, sizeof(mx) - 1, &pref, name, sizeof(name)), -1);
	static const unsigned char trailing[] = { 0, 1, 1, 'a', 0, 0 };
	TEST_ASSERT_INT(relay_dns_parse_mx(trailing, sizeof(trailing), &pref, name, sizeof(name)),
			-1);
	static const unsigned char pointer[] = { 0, 1, 0xc0, 12 };
	TEST_ASSERT_INT(relay_dns_parse_mx(pointer, sizeof(pointer), &pref, name, sizeof(name)),
			-1);
	static const unsigned char space[] = { 0, 1, 3, 'a', ' ', 'b', 0 };
	TEST_ASSERT_INT(relay_dns_parse_mx(space, sizeof(space), &pref, name, sizeof(name)), -1);
	TEST_ASSERT_INT(relay_dns_parse_mx(mx, sizeof(mx), &pref, name, 5), -1);
	TEST_ASSERT_INT(relay_dns_parse_mx(mx, 2, &pref, name, sizeof(name)), -1);
}

static int collect(void *ctx, const void *data, size_t len, const char **error_r)
{
	buf_append(ctx, data, len);
	return 0;
}

static char *compose(struct queue_entry *e, enum dsn_action action, const char *spool)
{
	struct buf out = BUF_INIT;
	bool which[2] = { true, false };
	const char *error;
	TEST_ASSERT_INT(dsn_compose("mx.here.example", e, which, action, 1700086400, spool,
				    collect, &out, &error), 0);
	buf_append(&out, "", 0);
	return out.data;
}

static void test_dsn(void)
{
	char *spool = xasprintf("%s/spool", test_tmpdir());
	int fd = open(spool, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	const char msg[] = "Subject: hello\r\nX-Test: 1\r\n\r\nthe body line\r\n";
	TEST_ASSERT_INT(write(fd, msg, sizeof(msg) - 1), (long long)(sizeof(msg) - 1));
	close(fd);

	struct queue_entry e;
	memset(&e, 0, sizeof(e));
	memcpy(e.id, "0123456789ABCDEF", QUEUE_ID_LEN + 1);
	e.sender = (char *)"alice@here.example";
	e.envid = (char *)"ENV-9";
	e.arrival = 1700000000;
	e.ret = QUEUE_RET_HDRS;
	struct queue_rcpt rcpts[2];
	memset(rcpts, 0, sizeof(rcpts));
	rcpts[0].address = (char *)"bad@there.example";
	rcpts[0].orcpt = (char *)"rfc822;Bad@there.example";
	rcpts[0].last_error = (char *)"550 5.1.1 no such user";
	rcpts[0].last_host = (char *)"mx.there.example";
	rcpts[1].address = (char *)"good@there.example";
	e.rcpts = rcpts;
	e.rcpt_count = 2;

	char *hdrs = compose(&e, DSN_FAILED, spool);
	TEST_ASSERT(strstr(hdrs, "To: <alice@here.example>\r\n") != NULL);
	TEST_ASSERT(strstr(hdrs, "multipart/report; report-type=delivery-status") != NULL);
	TEST_ASSERT(strstr(hdrs, "Reporting-MTA: dns; mx.here.example\r\n") != NULL);
	TEST_ASSERT(strstr(hdrs, "Original-Envelope-Id: ENV-9\r\n") != NULL);
	TEST_ASSERT(strstr(hdrs, "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n") != NULL);
	TEST_ASSERT(strstr(hdrs, "Original-Recipient: rfc822;Bad@there.example\r\n"
				 "Final-Recipient: rfc822; bad@there.example\r\n"
				 "Action: failed\r\nStatus: 5.1.1\r\n"
				 "Remote-MTA: dns; mx.there.example\r\n"
				 "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n") != NULL);
	TEST_ASSERT(strstr(hdrs, "good@there.example") == NULL);
	TEST_ASSERT(strstr(hdrs, "Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\n"
				 "X-Test: 1\r\n\r\n") != NULL);
	TEST_ASSERT(strstr(hdrs, "the body line") == NULL);
	free(hdrs);

	e.ret = QUEUE_RET_FULL;
	char *full = compose(&e, DSN_DELAYED, spool);
	TEST_ASSERT(strstr(full, "Content-Type: message/rfc822\r\n\r\nSubject: hello") != NULL);
	TEST_ASSERT(strstr(full, "the body line\r\n") != NULL);
	TEST_ASSERT(strstr(full, "Action: delayed\r\n") != NULL);
	TEST_ASSERT(strstr(full, "Will-Retry-Until: Wed, 15 Nov 2023 22:13:20 +0000\r\n") != NULL);
	/* the closing boundary ends it */
	const char *close = strstr(full, "\r\n--=_postern-dsn-0123456789ABCDEF-");
	TEST_ASSERT(close != NULL && strcmp(full + strlen(full) - 4, "--\r\n") == 0);
	free(full);
	free(spool);
}

static void test_dsn_wanted(void)
{
	struct queue_rcpt r;
	memset(&r, 0, sizeof(r));
	TEST_ASSERT(dsn_wanted(&r, DSN_FAILED) && dsn_wanted(&r, DSN_DELAYED));
	r.notify = QUEUE_NOTIFY_NEVER;
	TEST_ASSERT(!dsn_wanted(&r, DSN_FAILED) && !dsn_wanted(&r, DSN_DELAYED));
	r.notify = QUEUE_NOTIFY_FAILURE;
	TEST_ASSERT(dsn_wanted(&r, DSN_FAILED) && !dsn_wanted(&r, DSN_DELAYED));
	r.notify = QUEUE_NOTIFY_DELAY | QUEUE_NOTIFY_SUCCESS;
	TEST_ASSERT(!dsn_wanted(&r, DSN_FAILED) && dsn_wanted(&r, DSN_DELAYED));
}

static void put(struct queue *q, char id_r[QUEUE_ID_LEN + 1])
{
	struct queue_writer *w;
	const char *error;
	struct queue_entry e;
	struct queue_rcpt r;
	memset(&e, 0, sizeof(e));
	memset(&r, 0, sizeof(r));
	e.sender = (char *)"a@b.example";
	r.address = (char *)"c@d.example";
	e.rcpts = &r;
	e.rcpt_count = 1;
	TEST_ASSERT_INT(queue_writer_begin(q, &w, &error), 0);
	TEST_ASSERT_INT(queue_writer_write(w, "x\r\n", 3, &error), 0);
	TEST_ASSERT_INT(queue_writer_commit(w, &e, &error), 0);
	queue_writer_free(&w);
	memcpy(id_r, e.id, QUEUE_ID_LEN + 1);
}

/* queue_entry_replace never resurrects a deleted record;
 * queue_entries_remove takes records and spool files together. */
static void test_queue_replace_and_batch_remove(void)
{
	struct queue *q;
	const char *error;
	TEST_ASSERT_INT(queue_open(test_tmpdir(), NULL, &q, &error), 0);
	char a[QUEUE_ID_LEN + 1], b[QUEUE_ID_LEN + 1], c[QUEUE_ID_LEN + 1];
	put(q, a);
	put(q, b);
	put(q, c);
	struct queue_entry e;
	TEST_ASSERT_INT(queue_entry_get(q, a, &e, &error), 1);
	e.attempts = 7;
	TEST_ASSERT_INT(queue_entry_replace(q, &e, &error), 1);
	TEST_ASSERT_INT(queue_entry_remove(q, a, &error), 0);
	TEST_ASSERT_INT(queue_entry_replace(q, &e, &error), 0);
	queue_entry_free(&e);
	TEST_ASSERT_INT(queue_entry_get(q, a, &e, &error), 0);

	const char *ids[] = { b, c, a };
	TEST_ASSERT_INT(queue_entries_remove(q, ids, 3, &error), 0);
	TEST_ASSERT_INT(queue_entry_get(q, b, &e, &error), 0);
	TEST_ASSERT_INT(queue_entry_get(q, c, &e, &error), 0);
	char *path = queue_spool_path(q, c);
	TEST_ASSERT(access(path, F_OK) != 0);
	free(path);
	queue_close(&q);
}


static void test_mtasts_policy(void)
{
	struct relay_mtasts_policy p;
	const char *error;
	const char *text = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
			   "mx: *.Example.NET\r\nmax_age: 86400\r\nextension: ignored\r\n";
	/* whole, and cut anywhere: only the whole text is a valid policy */
	TEST_ASSERT_INT(relay_mtasts_parse(text, strlen(text), &p, &error), 0);
	TEST_ASSERT_INT(p.mode, RELAY_MTASTS_MODE_ENFORCE);
	TEST_ASSERT_INT(p.max_age, 86400);
	TEST_ASSERT_INT(p.mx_count, 2);
	TEST_ASSERT(relay_mtasts_match(&p, "mail.example.com"));
	TEST_ASSERT(relay_mtasts_match(&p, "MAIL.example.com."));
	TEST_ASSERT(relay_mtasts_match(&p, "mx1.example.net"));
	TEST_ASSERT(!relay_mtasts_match(&p, "a.mx1.example.net"));   /* one label only */
	TEST_ASSERT(!relay_mtasts_match(&p, "example.net"));
	TEST_ASSERT(!relay_mtasts_match(&p, "mail.example.com.evil"));
	TEST_ASSERT(!relay_mtasts_match(&p, "xmail.example.com"));
	relay_mtasts_clear(&p);
	/* LF only, testing, a year at most */
	const char *lf = "version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 99999999999\n";
	TEST_ASSERT_INT(relay_mtasts_parse(lf, strlen(lf), &p, &error), -1);   /* over 10 digits */
	lf = "version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 9999999999\n";
	TEST_ASSERT_INT(relay_mtasts_parse(lf, strlen(lf), &p, &error), 0);
	TEST_ASSERT_INT(p.mode, RELAY_MTASTS_MODE_TESTING);
	TEST_ASSERT_INT(p.max_age, 31557600);
	relay_mtasts_clear(&p);
	/* none needs no mx */
	lf = "version: STSv1\nmode: none\nmax_age: 1\n";
	TEST_ASSERT_INT(relay_mtasts_parse(lf, strlen(lf), &p, &error), 0);
	relay_mtasts_clear(&p);
	static const char *const bad[] = {
		"version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n",
		"version: STSv1\nmode: enforcing\nmx: a.b\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a.b\n",
		"version: STSv1\nmode: enforce\nmx: a b\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: *.\nmax_age: 1\n",
		"version: STSv1\nmode enforce\nmx: a.b\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		TEST_ASSERT_INT(relay_mtasts_parse(bad[i], strlen(bad[i]), &p, &error), -1);
		TEST_ASSERT(p.mx == NULL);
	}
	char id[40];
	TEST_ASSERT_INT(relay_mtasts_txt_id("v=STSv1; id=20160831085700Z;", id, sizeof(id)), 0);
	TEST_ASSERT_STR(id, "20160831085700Z");
	TEST_ASSERT_INT(relay_mtasts_txt_id("v=STSv1;id=abc", id, sizeof(id)), 0);
	TEST_ASSERT_STR(id, "abc");
	TEST_ASSERT_INT(relay_mtasts_txt_id("v=STSv1; id=a-b", id, sizeof(id)), -1);
	TEST_ASSERT_INT(relay_mtasts_txt_id("v=STSv10; id=a", id, sizeof(id)), -1);
	TEST_ASSERT_INT(relay_mtasts_txt_id("v=STSv1;", id, sizeof(id)), -1);
	TEST_ASSERT_INT(relay_mtasts_txt_id("v=STSv1; id=012345678901234567890123456789012", id,
					    sizeof(id)), -1);   /* 33 characters */
}

static void test_tlsa_and_txt_rdata(void)
{
	struct relay_tlsa t;
	unsigned char rec[3 + 64];
	memset(rec, 0xab, sizeof(rec));
	rec[0] = 3; rec[1] = 1; rec[2] = 1;
	TEST_ASSERT_INT(relay_dns_parse_tlsa(rec, 3 + 32, &t), 1);
	TEST_ASSERT(t.usage == 3 && t.selector == 1 && t.mtype == 1 && t.len == 32);
	rec[0] = 2; rec[2] = 2;
	TEST_ASSERT_INT(relay_dns_parse_tlsa(rec, 3 + 64, &t), 1);
	TEST_ASSERT_INT(relay_dns_parse_tlsa(rec, 3 + 32, &t), -1);   /* SHA-512 of 32 bytes */
	rec[0] = 1;                                                     /* PKIX-EE: not for SMTP */
	TEST_ASSERT_INT(relay_dns_parse_tlsa(rec, 3 + 64, &t), 0);
	rec[0] = 3; rec[2] = 0;                                         /* a whole certificate */
	TEST_ASSERT_INT(relay_dns_parse_tlsa(rec, 3 + 40, &t), 0);
	TEST_ASSERT_INT(relay_dns_parse_tlsa(rec, 3, &t), -1);
	struct buf b = BUF_INIT;
	const unsigned char txt[] = "\x07v=STSv1\x05; id=\x01x";
	TEST_ASSERT_INT(relay_dns_txt_join(txt, sizeof(txt) - 1, &b), 0);
	TEST_ASSERT_STR(buf_str(&b), "v=STSv1; id=x");
	TEST_ASSERT_INT(relay_dns_txt_join(txt, 5, &b), -1);
	buf_free(&b);
}

static void test_queue_tls_facts(void)
{
	struct queue_entry e, back;
	struct queue_rcpt r[2];
	memset(&e, 0, sizeof(e));
	memset(r, 0, sizeof(r));
	memcpy(e.id, "0123456789abcdef", QUEUE_ID_LEN + 1);
	e.sender = "a@example.org";
	r[0].address = "b@example.net";
	r[0].last_tls = "TLSv1.3 TLS_AES_256_GCM_SHA384 verified=yes auth=dane";
	r[1].address = "c@example.net";
	e.rcpts = r;
	e.rcpt_count = 2;
	size_t len;
	char *text = queue_entry_serialize(&e, &len);
	TEST_ASSERT_INT(queue_entry_parse(text, len, &back), 0);
	TEST_ASSERT_STR(back.rcpts[0].last_tls, r[0].last_tls);
	TEST_ASSERT(back.rcpts[1].last_tls == NULL);
	queue_entry_free(&back);
	free(text);
	/* a facts line before any recipient, or twice, is no record */
	const char *odd = "v 1\nid 0123456789abcdef\nsender =a\nrtls =x\nend .\n";
	TEST_ASSERT_INT(queue_entry_parse(odd, strlen(odd), &back), -1);
}

int main(void)
{
	test_run("reply_lines", test_reply_lines);
	test_run("mx_rdata", test_mx_rdata);
	test_run("dsn", test_dsn);
	test_run("dsn_wanted", test_dsn_wanted);
	test_run("queue_replace_and_batch_remove", test_queue_replace_and_batch_remove);
	test_run("mtasts_policy", test_mtasts_policy);
	test_run("tlsa_and_txt_rdata", test_tlsa_and_txt_rdata);
	test_run("queue_tls_facts", test_queue_tls_facts);
	return test_end();
}

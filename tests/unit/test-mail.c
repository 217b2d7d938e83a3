/* mail/: header fields, dates, addresses, xtext, IMAP strings. */
#include "mail/mail.h"
#include "test.h"

#include <locale.h>
#include <stdlib.h>
#include <string.h>

static void test_xtext(void)
{
	struct buf b = BUF_INIT;
	mail_xtext_encode(&b, "a+b=c d\x01");
	TEST_ASSERT_STR(buf_str(&b), "a+2Bb+3Dc+20d+01");
	buf_reset(&b);
	TEST_ASSERT_INT(mail_xtext_decode("a+2Bb+3dc+20d", &b), 0);
	TEST_ASSERT_STR(buf_str(&b), "a+b=c d");
	const char *bad[] = { "a+2", "a+", "a+00", "a+G1", "a=b", "a b" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&b);
		TEST_ASSERT_INT(mail_xtext_decode(bad[i], &b), -1);
	}
	buf_free(&b);
}

/* The addr-specs of a list, comma-separated, and whether it was clean. */
static char *specs(const char *value, bool *clean_r)
{
	struct mail_addrs list;
	struct buf out = BUF_INIT;
	mail_address_parse(value, &list);
	for (size_t i = 0; i < list.count; i++) {
		if (list.items[i].kind != MAIL_ADDR_MAILBOX)
			continue;
		if (out.len > 0)
			buf_append_char(&out, ',');
		mail_addr_spec(&list.items[i], &out);
	}
	*clean_r = list.clean;
	mail_addrs_free(&list);
	char *s = xstrdup(buf_str(&out));
	buf_free(&out);
	return s;
}

static void test_addresses(void)
{
	bool clean;
	char *s = specs(" \"Smith, J\" <J.Smith@Example.COM>, plain@b.org (comment),"
			" grp: m1@c.org, <m2@c.org>;, Name <@route:r@d.org>", &clean);
	TEST_ASSERT_STR(s, "J.Smith@Example.COM,plain@b.org,m1@c.org,m2@c.org,r@d.org");
	TEST_ASSERT(clean);
	free(s);
	s = specs("\"a b\"@x.org, \"q\\\"x\"@y.org", &clean);
	TEST_ASSERT_STR(s, "\"a b\"@x.org,\"q\\\"x\"@y.org");
	TEST_ASSERT(clean);
	free(s);
	/* what the strict reading refuses: each is unclean */
	const char *bad[] = { "<unclosed@x.org", "no at sign", "a@b c@d", "\"open@x.org",
			      "alice@x.org <bob@y.org>", "a@", "@b", "<a@b> junk", "grp: a@b",
			      "x@y.org;", "(open comment a@b", "<a@[1.2.3.4>" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = specs(bad[i], &clean);
		if (clean)
			fprintf(stderr, "  clean: %s\n", bad[i]);
		TEST_ASSERT(!clean);
		free(s);
	}
	/* the tolerant reading still finds the real address */
	s = specs("alice@x.org <bob@y.org>", &clean);
	TEST_ASSERT_STR(s, "bob@y.org");
	free(s);
	s = specs("", &clean);
	TEST_ASSERT_STR(s, "");
	TEST_ASSERT(clean);
	free(s);
	/* groups and display names */
	struct mail_addrs list;
	mail_address_parse("Team: \"Doe, J\" <j@x.org>, k@y.org (Kay);", &list);
	TEST_ASSERT_INT(list.count, 4);
	if (list.count == 4) {
		TEST_ASSERT_INT(list.items[0].kind, MAIL_ADDR_GROUP_START);
		TEST_ASSERT_STR(buf_str(&list.items[0].name), "Team");
		TEST_ASSERT_STR(buf_str(&list.items[1].name), "Doe, J");
		TEST_ASSERT_STR(buf_str(&list.items[2].name), "Kay");
		TEST_ASSERT_INT(list.items[3].kind, MAIL_ADDR_GROUP_END);
	}
	TEST_ASSERT(list.clean);
	mail_addrs_free(&list);
}

static void test_dates(void)
{
	char out[MAIL_DATE_MAX];
	/* English names whatever the locale */
	setlocale(LC_ALL, "");
	mail_date_format(1796395541, out, sizeof(out));
	TEST_ASSERT_STR(out, "Fri, 4 Dec 2026 14:45:41 +0000");
	time_t t;
	int tz;
	TEST_ASSERT_INT(mail_date_parse(out, &t, &tz), 0);
	TEST_ASSERT_INT(t, 1796395541);
	TEST_ASSERT_INT(mail_date_parse("4 dec 2026 15:45:41 +0100 (CET)", &t, &tz), 0);
	TEST_ASSERT_INT(t, 1796395541);
	TEST_ASSERT_INT(tz, 60);
	TEST_ASSERT_INT(mail_date_parse("not a date", &t, &tz), -1);
}

static void test_fields(void)
{
	const char *h = "Subject: a\r\n b\r\nFrom : x@y\r\n\tz\r\nbroken line\r\n";
	struct mail_field f;
	size_t pos = 0;
	TEST_ASSERT(mail_header_next(h, strlen(h), &pos, &f));
	TEST_ASSERT_INT(f.len, 16);
	TEST_ASSERT(mail_field_is(f.start, f.len, "subject"));
	char *v = mail_unfold(f.value, (size_t)(f.start + f.len - f.value));
	TEST_ASSERT_STR(v, "a b");
	free(v);
	TEST_ASSERT(mail_header_next(h, strlen(h), &pos, &f));
	TEST_ASSERT(mail_field_is(f.start, f.len, "From"));
	TEST_ASSERT(!mail_field_is(f.start, f.len, "Fro"));
	TEST_ASSERT(mail_header_next(h, strlen(h), &pos, &f));
	TEST_ASSERT_INT(f.name_len, 0);
	TEST_ASSERT(!mail_header_next(h, strlen(h), &pos, &f));

	struct buf b = BUF_INIT;
	mail_field_append(&b, "Received", "from a.example.org ([192.0.2.1]) by mx.example.net "
			  "(Postern) with ESMTPS id 0123456789AB for <someone@example.net>; "
			  "Fri, 4 Dec 2026 14:45:41 +0000");
	const char *p = buf_str(&b);
	size_t lines = 0;
	for (const char *line = p; *line != '\0'; lines++) {
		const char *end = strstr(line, "\r\n");
		TEST_ASSERT(end != NULL && end - line <= 78);
		TEST_ASSERT(lines == 0 || *line == ' ');
		line = end + 2;
	}
	TEST_ASSERT(lines >= 2);
	char *unfolded = mail_unfold(p + 9, b.len - 9);
	TEST_ASSERT(strstr(unfolded, "for <someone@example.net>; Fri, 4 Dec") != NULL);
	free(unfolded);
	buf_reset(&b);
	mail_field_append(&b, "X", "short");
	TEST_ASSERT_STR(buf_str(&b), "X: short\r\n");
	buf_free(&b);
}

static void test_imap_strings(void)
{
	struct buf b = BUF_INIT;
	mail_imap_string(&b, "a\"b\\c", 5);
	TEST_ASSERT_STR(buf_str(&b), "\"a\\\"b\\\\c\"");
	buf_reset(&b);
	mail_imap_string(&b, "caf\xc3\xa9", 5);
	TEST_ASSERT_STR(buf_str(&b), "{5}\r\ncaf\xc3\xa9");
	buf_reset(&b);
	mail_imap_nstring(&b, NULL);
	TEST_ASSERT_STR(buf_str(&b), "NIL");
	buf_free(&b);
}

/* Encodes in pieces of step bytes (0 = whole), then the end. */
static void data_encode(const char *in, size_t len, size_t step, struct buf *out)
{
	struct mail_data_encoder e = MAIL_DATA_ENCODER_INIT;
	char tmp[64];
	for (size_t i = 0; i < len;) {
		size_t n = step == 0 || len - i < step ? len - i : step;
		if (n > 16)
			n = 16;
		buf_append(out, tmp, mail_data_encode(&e, in + i, n, tmp));
		i += n;
	}
	buf_append(out, tmp, mail_data_encode_end(&e, tmp));
}

static void test_data_encoder(void)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "a\r\nb\r\n", "a\r\nb\r\n.\r\n" },
		{ "", ".\r\n" },
		{ ".\r\n..\r\n", "..\r\n...\r\n.\r\n" },
		{ "no end", "no end\r\n.\r\n" },
		{ "lf\nonly\n.dot\n", "lf\r\nonly\r\n..dot\r\n.\r\n" },
		/* the smuggling attempt: every bare CR is a line end, every dot
		 * at a line start doubled, so no "\r\n.\r\n" but the last */
		{ "x\r.\rMAIL FROM:<a@b>\rDATA\r", "x\r\n..\r\nMAIL FROM:<a@b>\r\nDATA\r\n.\r\n" },
		{ "a\r\r\nb", "a\r\n\r\nb\r\n.\r\n" },
		{ "ends in cr\r", "ends in cr\r\n.\r\n" },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (size_t step = 0; step <= 5; step++) {
			struct buf out = BUF_INIT;
			data_encode(cases[c].in, strlen(cases[c].in), step, &out);
			TEST_ASSERT_STR(buf_str(&out), cases[c].out);
			/* no bare CR or LF anywhere */
			for (size_t i = 0; i < out.len; i++) {
				if (out.data[i] == '\r')
					TEST_ASSERT(i + 1 < out.len && out.data[i + 1] == '\n');
				if (out.data[i] == '\n')
					TEST_ASSERT(i > 0 && out.data[i - 1] == '\r');
			}
			buf_free(&out);
		}
	}
}

int main(void)
{
	test_run("mail xtext", test_xtext);
	test_run("mail address lists", test_addresses);
	test_run("mail dates", test_dates);
	test_run("mail header fields", test_fields);
	test_run("mail IMAP strings", test_imap_strings);
	test_run("mail SMTP DATA encoder", test_data_encoder);
	return test_end();
}

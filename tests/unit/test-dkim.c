/* dkim/: keys on disk and the signing filter driven as intake drives it
 * (each header field, the header's end, the body in pieces, the end with
 * a verdict). The signatures themselves are checked by two independent
 * verifiers in tests/integration/test_dkim.py. */
#include "test.h"
#include "dkim/dkim-private.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

static struct config cfg;
static const char *data_dir;
static char user[64];

static const char message[] =
	"From: Alice <alice@example.org>\r\n"
	"To: bob@example.net\r\n"
	"Subject: a test\r\n"
	"  folded\r\n"
	"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
	"Message-ID: <1@example.org>\r\n"
	"\r\n"
	"Hello\r\n"
	"\r\n"
	"..a dot line\r\n"
	"last line\r\n";

/* Runs msg through the filter; returns what it put in prepend_remote
 * (malloc'ed, "" when nothing) or NULL when it stayed out (begin). */
static char *sign_with(enum intake_origin origin, bool remote, const char *msg, size_t piece,
		       const char *from_domain, const char *results)
{
	struct intake_envelope env = { .origin = origin, .sender = "alice@example.org" };
	struct intake_info info = { .env = &env, .cfg = &cfg, .has_remote = remote,
				    .has_local = !remote };
	const struct intake_filter *f = &dkim_sign_filter;
	void *state = f->begin(&info);
	if (state == NULL)
		return NULL;
	size_t len = strlen(msg), pos = 0, start = 0;
	while (pos < len) {
		const char *lf = memchr(msg + pos, '\n', len - pos);
		size_t next = (size_t)(lf - msg) + 1;
		if (pos == start && msg[pos] == '\r') {
			pos = next;
			break;
		}
		if (msg[next] == ' ' || msg[next] == '\t') {
			pos = next;
			continue;
		}
		TEST_ASSERT(f->header(state, msg + start, next - start));
		start = pos = next;
	}
	f->header_end(state);
	for (size_t i = pos; i < len; i += piece)
		f->body(state, msg + i, len - i < piece ? len - i : piece);
	info.from_domain = from_domain;
	struct intake_verdict v;
	memset(&v, 0, sizeof(v));
	if (results != NULL)
		buf_append_str(&v.prepend, results);
	f->end(state, &info, &v);
	f->free(state);
	char *out = xstrdup(buf_str(&v.prepend_remote));
	buf_free(&v.prepend_remote);
	buf_free(&v.prepend);
	return out;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* The value of tag (e.g. "bh=") in the first signature, up to ';'. */
static char *tag(const char *sig, const char *name)
{
	/* a tag starts a line or follows "; " (h= is inside bh= too) */
	const char *p = sig;
	size_t n = strlen(name);
	while ((p = strstr(p, name)) != NULL && p != sig && p[-1] != ' ' && p[-1] != '\t')
		p += n;
	if (p == NULL)
		return xstrdup("");
	p += n;
	/* without the folding */
	size_t len = strcspn(p, ";");
	char *v = xmalloc(len + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			v[o++] = p[i];
	}
	v[o] = '\0';
	return v;
}

/* RFC 6376 3.4.5's example, and the body fed byte by byte and whole */
static void test_canon(void)
{
	struct buf out = BUF_INIT;
	dkim_canon_header("A: X\r\n", 6, &out);
	const char *b = "B : Y\t\r\n\tZ  \r\n";
	dkim_canon_header(b, strlen(b), &out);
	TEST_ASSERT_STR(buf_str(&out), "a:X\r\nb:Y Z\r\n");
	buf_free(&out);

	static const struct {
		const char *in, *canon;
	} bodies[] = {
		{ " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n" },
		{ "", "" },
		{ "\r\n\r\n", "" },
		{ "no end", "no end\r\n" },
		{ "a\r\n \t \r\n\r\nb \r\n  \r\n", "a\r\n\r\n\r\nb\r\n" },
		{ "x\ry\r\n", "x\ry\r\n" },
		{ "lf\nonly\n", "lf\r\nonly\r\n" },
		{ "cr at end\r", "cr at end\r\r\n" },
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		unsigned char want[32], whole[32], bytes[32];
		unsigned int wlen;
		EVP_Digest(bodies[i].canon, strlen(bodies[i].canon), want, &wlen, EVP_sha256(), NULL);
		struct dkim_body_canon c;
		TEST_ASSERT_INT(dkim_body_canon_init(&c), 0);
		dkim_body_canon_update(&c, bodies[i].in, strlen(bodies[i].in));
		TEST_ASSERT_INT(dkim_body_canon_final(&c, whole, sizeof(whole)), 0);
		dkim_body_canon_free(&c);
		TEST_ASSERT_INT(dkim_body_canon_init(&c), 0);
		for (size_t k = 0; bodies[i].in[k] != '\0'; k++)
			dkim_body_canon_update(&c, bodies[i].in + k, 1);
		TEST_ASSERT_INT(dkim_body_canon_final(&c, bytes, sizeof(bytes)), 0);
		dkim_body_canon_free(&c);
		if (memcmp(whole, want, 32) != 0 || memcmp(bytes, want, 32) != 0)
			fprintf(stderr, "body %zu\n", i);
		TEST_ASSERT(memcmp(whole, want, 32) == 0);
		TEST_ASSERT(memcmp(bytes, want, 32) == 0);
	}
}

static void test_keys(void)
{
	const char *error;
	char sel[64];
	TEST_ASSERT_INT(dkim_default_selector(data_dir, "example.org", 1796396695, sel,
					      sizeof(sel), &error), 0);
	TEST_ASSERT_STR(sel, "p202612");
	TEST_ASSERT_INT(dkim_key_generate(data_dir, user, "example.org", sel, DKIM_ALG_RSA,
					  &error), 0);
	TEST_ASSERT_INT(dkim_default_selector(data_dir, "example.org", 1796396695, sel,
					      sizeof(sel), &error), 0);
	TEST_ASSERT_STR(sel, "p202612b");
	TEST_ASSERT_INT(dkim_key_generate(data_dir, user, "example.org", sel, DKIM_ALG_ED25519,
					  &error), 0);
	/* the same selector twice, bad selectors and domains */
	TEST_ASSERT_INT(dkim_key_generate(data_dir, user, "example.org", "p202612",
					  DKIM_ALG_RSA, &error), -1);
	TEST_ASSERT(strstr(error, "already") != NULL);
	TEST_ASSERT_INT(dkim_key_generate(data_dir, user, "example.org", "Bad_Sel",
					  DKIM_ALG_RSA, &error), -1);
	TEST_ASSERT_INT(dkim_key_generate(data_dir, user, "../etc", "x", DKIM_ALG_RSA, &error),
			-1);
	TEST_ASSERT(!dkim_domain_safe("a..b"));
	TEST_ASSERT(!dkim_domain_safe(".a"));
	TEST_ASSERT(!dkim_domain_safe("a/b"));
	TEST_ASSERT(dkim_domain_safe("mail.example.org"));
	TEST_ASSERT(!dkim_selector_valid(""));
	TEST_ASSERT(!dkim_selector_valid("a.b"));
	TEST_ASSERT(dkim_selector_valid("p202612-x"));

	struct dkim_key *keys;
	size_t n;
	TEST_ASSERT_INT(dkim_keys_list(data_dir, "example.org", &keys, &n, &error), 0);
	TEST_ASSERT_INT(n, 2);
	if (n == 2) {
		TEST_ASSERT_STR(keys[0].selector, "p202612");
		TEST_ASSERT_INT(keys[0].alg, DKIM_ALG_RSA);
		TEST_ASSERT_INT(keys[0].bits, 2048);
		TEST_ASSERT_STR(keys[1].selector, "p202612b");
		TEST_ASSERT_INT(keys[1].alg, DKIM_ALG_ED25519);
	}
	free(keys);
	/* secrets: 0600 in 0700 directories */
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/dkim/example.org/p202612.pem", data_dir);
	TEST_ASSERT(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	snprintf(path, sizeof(path), "%s/dkim/example.org", data_dir);
	TEST_ASSERT(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700);

	struct buf rec = BUF_INIT;
	TEST_ASSERT_INT(dkim_key_record(data_dir, "example.org", "p202612", &rec, &error), 0);
	TEST_ASSERT(strncmp(buf_str(&rec), "v=DKIM1; k=rsa; p=MIIB", 22) == 0);
	buf_reset(&rec);
	TEST_ASSERT_INT(dkim_key_record(data_dir, "example.org", "p202612b", &rec, &error), 0);
	TEST_ASSERT(strncmp(buf_str(&rec), "v=DKIM1; k=ed25519; p=", 22) == 0);
	TEST_ASSERT_INT(rec.len, 22 + 44);   /* 32 bytes in base64 */
	buf_free(&rec);

	char **domains;
	TEST_ASSERT_INT(dkim_domains_list(data_dir, &domains, &n, &error), 0);
	TEST_ASSERT_INT(n, 1);
	if (n == 1)
		TEST_ASSERT_STR(domains[0], "example.org");
	dkim_domains_free(domains, n);
}

static void test_txt_quote(void)
{
	char long_text[600];
	memset(long_text, 'a', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	struct buf out = BUF_INIT;
	dkim_txt_quote(long_text, &out);
	/* 255 + 255 + 89, each quoted, separated by spaces */
	TEST_ASSERT_INT(out.len, 599 + 6 + 2);
	TEST_ASSERT(out.data[0] == '"' && out.data[256] == '"' && out.data[257] == ' ');
	buf_reset(&out);
	dkim_txt_quote("say \"hi\"", &out);
	TEST_ASSERT_STR(buf_str(&out), "\"say \\\"hi\\\"\"");
	buf_free(&out);
}

static void test_sign_submission(void)
{
	char *sigs = sign_with(INTAKE_SUBMISSION, true, message, 65536, "example.org", NULL);
	TEST_ASSERT(sigs != NULL);
	if (sigs == NULL)
		return;
	TEST_ASSERT_INT(count(sigs, "DKIM-Signature: "), 2);
	TEST_ASSERT_INT(count(sigs, "a=rsa-sha256"), 1);
	TEST_ASSERT_INT(count(sigs, "a=ed25519-sha256"), 1);
	TEST_ASSERT_INT(count(sigs, "c=relaxed/relaxed"), 2);
	TEST_ASSERT_INT(count(sigs, "d=example.org"), 2);
	TEST_ASSERT_INT(count(sigs, "s=p202612;"), 1);
	TEST_ASSERT_INT(count(sigs, "s=p202612b;"), 1);
	TEST_ASSERT_INT(count(sigs, " l="), 0);
	/* the signed fields bottom-up, From signed and oversigned */
	char *h = tag(sigs, "h=");
	TEST_ASSERT_STR(h, "Message-ID:Date:Subject:To:From:From");
	free(h);
	/* every line ends in CRLF, the last one too; none is long */
	size_t line = 0;
	for (size_t i = 0; sigs[i] != '\0'; i++) {
		line = sigs[i] == '\n' ? 0 : line + 1;
		TEST_ASSERT(line <= 80);
	}
	for (size_t i = 0; sigs[i] != '\0'; i++) {
		if (sigs[i] == '\n')
			TEST_ASSERT(i > 0 && sigs[i - 1] == '\r');
	}
	TEST_ASSERT(strlen(sigs) > 2 && strcmp(sigs + strlen(sigs) - 2, "\r\n") == 0);

	/* the body hash does not depend on how the body came in */
	char *one = sign_with(INTAKE_SUBMISSION, true, message, 1, "example.org", NULL);
	char *bh_whole = tag(sigs, "bh="), *bh_one = tag(one, "bh=");
	TEST_ASSERT(bh_whole[0] != '\0');
	TEST_ASSERT_STR(bh_one, bh_whole);
	free(bh_whole);
	free(bh_one);
	free(one);
	free(sigs);
}

static void test_sign_no_final_crlf(void)
{
	/* the relay ends the data with a line end: the hash covers one */
	char *a = sign_with(INTAKE_SUBMISSION, true, message, 7, "example.org", NULL);
	char *cut = xstrndup(message, strlen(message) - 2);
	char *b = sign_with(INTAKE_SUBMISSION, true, cut, 7, "example.org", NULL);
	char *bh_a = tag(a, "bh="), *bh_b = tag(b, "bh=");
	TEST_ASSERT_INT(count(b, "DKIM-Signature: "), 2);
	TEST_ASSERT_STR(bh_b, bh_a);
	free(bh_a);
	free(bh_b);
	free(a);
	free(b);
	free(cut);
}

static void test_not_signed(void)
{
	/* only mail that leaves, from the right origins */
	TEST_ASSERT(sign_with(INTAKE_SUBMISSION, false, message, 100, "example.org", NULL) == NULL);
	TEST_ASSERT(sign_with(INTAKE_LOCAL, true, message, 100, "example.org", NULL) == NULL);
	TEST_ASSERT(sign_with(INTAKE_RETRY, true, message, 100, "example.org", NULL) == NULL);
	/* a From: domain without keys */
	char *other = xstrdup(message);
	memcpy(strstr(other, "example.org>"), "example.com", 11);
	char *s = sign_with(INTAKE_SUBMISSION, true, other, 100, "example.com", NULL);
	TEST_ASSERT_STR(s, "");
	free(s);
	free(other);
	/* intake's From: domain disagrees (several addresses: NULL) */
	s = sign_with(INTAKE_SUBMISSION, true, message, 100, NULL, NULL);
	TEST_ASSERT_STR(s, "");
	free(s);
	s = sign_with(INTAKE_SUBMISSION, true, message, 100, "example.net", NULL);
	TEST_ASSERT_STR(s, "");
	free(s);
	/* two From: fields */
	struct buf two = BUF_INIT;
	buf_append_str(&two, "From: x@example.org\r\n");
	buf_append_str(&two, message);
	s = sign_with(INTAKE_SUBMISSION, true, buf_str(&two), 100, "example.org", NULL);
	TEST_ASSERT_STR(s, "");
	free(s);
	buf_free(&two);
}

static void test_inbound(void)
{
	/* from the MX port: only with a proof from an earlier filter */
	char *s = sign_with(INTAKE_INBOUND, true, message, 100, "example.org", NULL);
	TEST_ASSERT_STR(s, "");
	free(s);
	s = sign_with(INTAKE_INBOUND, true, message, 100, "example.org",
		      "Authentication-Results: mail.example.org;\r\n"
		      "\tspf=pass smtp.mailfrom=example.org;\r\n"
		      "\tdkim=pass (2048-bit key) header.d=example.org header.s=p1\r\n");
	TEST_ASSERT_INT(count(s, "DKIM-Signature: "), 2);
	free(s);
	/* someone else's Authentication-Results proves nothing */
	s = sign_with(INTAKE_INBOUND, true, message, 100, "example.org",
		      "Authentication-Results: evil.example; dkim=pass header.d=example.org\r\n");
	TEST_ASSERT_STR(s, "");
	free(s);
}

static void test_report(void)
{
	/* hostname mail.example.org has no keys; its parent example.org does */
	const char *dsn = "From: Mail Delivery System <MAILER-DAEMON@mail.example.org>\r\n"
			  "To: bob@example.net\r\nSubject: failure\r\n\r\nbody\r\n";
	char *s = sign_with(INTAKE_REPORT, true, dsn, 100, "mail.example.org", NULL);
	TEST_ASSERT_INT(count(s, "DKIM-Signature: "), 2);
	TEST_ASSERT_INT(count(s, "d=example.org;"), 2);
	free(s);
}

static void test_results_parser(void)
{
	const char *h = "mail.example.org";
	const char *f = "Authentication-Results: mail.example.org; "
			"dmarc=pass (p=reject) header.from=example.org\r\n";
	TEST_ASSERT(dkim_results_prove(f, strlen(f), h, "example.org"));
	f = "Authentication-Results: mail.example.org 1; dkim=pass "
			"header.i=@Example.ORG\r\n";
	TEST_ASSERT(dkim_results_prove(f, strlen(f), h, "example.org"));
	f = "Authentication-Results: mail.example.org; dkim=fail header.d=example.org\r\n";
	TEST_ASSERT(!dkim_results_prove(f, strlen(f), h, "example.org"));
	f = "Authentication-Results: mail.example.org; dkim=pass header.d=sub.example.org\r\n";
	TEST_ASSERT(!dkim_results_prove(f, strlen(f), h, "example.org"));
	f = "Authentication-Results: mail.example.org; dkim=pass (header.d=example.org) "
	    "header.d=x.example\r\n";
	TEST_ASSERT(!dkim_results_prove(f, strlen(f), h, "example.org"));
	f = "X-Other: mail.example.org; dkim=pass header.d=example.org\r\n";
	TEST_ASSERT(!dkim_results_prove(f, strlen(f), h, "example.org"));
	TEST_ASSERT(!dkim_results_prove("", 0, h, "example.org"));
}

static void test_from_domain(void)
{
	char d[256];
	const char *v = " \"Alice, A.\" <alice@Example.ORG>\r\n";
	TEST_ASSERT_INT(dkim_from_domain(v, strlen(v), d, sizeof(d)), 0);
	TEST_ASSERT_STR(d, "example.org");
	v = " alice@example.org (Alice)\r\n";
	TEST_ASSERT_INT(dkim_from_domain(v, strlen(v), d, sizeof(d)), 0);
	TEST_ASSERT_STR(d, "example.org");
	v = " Alice\r\n <alice@example.org>\r\n";
	TEST_ASSERT_INT(dkim_from_domain(v, strlen(v), d, sizeof(d)), 0);
	TEST_ASSERT_STR(d, "example.org");
	v = " no address\r\n";
	TEST_ASSERT_INT(dkim_from_domain(v, strlen(v), d, sizeof(d)), -1);
}

int main(void)
{
	log_init("test-dkim", LOG_LEVEL_ERROR);
	config_init_defaults(&cfg);
	data_dir = test_tmpdir();
	free(cfg.data_dir);
	cfg.data_dir = xstrdup(data_dir);
	free(cfg.hostname);
	cfg.hostname = xstrdup("mail.example.org");
	struct passwd *pw = getpwuid(geteuid());
	snprintf(user, sizeof(user), "%s", pw != NULL ? pw->pw_name : "root");
	test_run("canon", test_canon);
	test_run("keys", test_keys);
	test_run("txt_quote", test_txt_quote);
	test_run("sign_submission", test_sign_submission);
	test_run("sign_no_final_crlf", test_sign_no_final_crlf);
	test_run("not_signed", test_not_signed);
	test_run("inbound", test_inbound);
	test_run("report", test_report);
	test_run("results_parser", test_results_parser);
	test_run("from_domain", test_from_domain);
	config_free(&cfg);
	return test_end();
}

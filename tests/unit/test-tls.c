/* tls_cert_check: what `postern check` and the master say about the
 * certificate (issue 18): expired, expiring within the warning window,
 * not yet valid, or not covering hostname. The certificates are made here
 * with the validity and names each case needs. */
#include "test.h"
#include "core/tls.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

/* A self-signed EC certificate valid from now+from_days to now+to_days,
 * with subjectAltName san (NULL: none, only CN=cn). */
static const char *make_cert(const char *name, long from_days, long to_days, const char *cn,
			     const char *san)
{
	static char path[600];
	snprintf(path, sizeof(path), "%s/%s.pem", test_tmpdir(), name);
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	TEST_ASSERT(key != NULL && cert != NULL);
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), from_days * 86400);
	X509_gmtime_adj(X509_getm_notAfter(cert), to_days * 86400);
	X509_set_pubkey(cert, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(cert, X509_get_subject_name(cert));
	if (san != NULL) {
		X509V3_CTX v3;
		X509V3_set_ctx_nodb(&v3);
		X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
		TEST_ASSERT(ext != NULL && X509_add_ext(cert, ext, -1) == 1);
		X509_EXTENSION_free(ext);
	}
	TEST_ASSERT(X509_sign(cert, key, EVP_sha256()) > 0);
	FILE *f = fopen(path, "w");
	TEST_ASSERT(f != NULL && PEM_write_X509(f, cert) == 1);
	fclose(f);
	X509_free(cert);
	EVP_PKEY_free(key);
	return path;
}

struct findings {
	int count;
	char all[2048];
};

static void collect(void *context, const char *text)
{
	struct findings *f = context;
	size_t len = strlen(f->all);
	snprintf(f->all + len, sizeof(f->all) - len, "%s\n", text);
	f->count++;
}

static struct findings check(const char *path, const char *hostname)
{
	struct findings f = { 0, "" };
	const char *error = NULL;
	int ret = tls_cert_check(path, hostname, 14, collect, &f, &error);
	TEST_ASSERT_INT(ret, f.count);
	return f;
}

static void test_fine(void)
{
	const char *path = make_cert("fine", -1, 90, "mail.example.org",
				     "DNS:mail.example.org,DNS:example.org");
	TEST_ASSERT_INT(check(path, "mail.example.org").count, 0);
	TEST_ASSERT_INT(check(path, "MAIL.Example.ORG").count, 0);
	/* a wildcard covers one label */
	path = make_cert("wild", -1, 90, "x", "DNS:*.example.org");
	TEST_ASSERT_INT(check(path, "mail.example.org").count, 0);
	TEST_ASSERT_INT(check(path, "a.mail.example.org").count, 1);
}

static void test_expiring(void)
{
	const char *path = make_cert("soon", -80, 3, "mail.example.org", "DNS:mail.example.org");
	struct findings f = check(path, "mail.example.org");
	TEST_ASSERT_INT(f.count, 1);
	TEST_ASSERT(strstr(f.all, "certificate expires in 2 days, on ") != NULL ||
		    strstr(f.all, "certificate expires in 3 days, on ") != NULL);
	TEST_ASSERT(strstr(f.all, path) == f.all);
	/* 15 days is outside the window, 13 inside */
	TEST_ASSERT_INT(check(make_cert("d15", -1, 15, "m", "DNS:m.example"), "m.example").count, 0);
	TEST_ASSERT_INT(check(make_cert("d13", -1, 13, "m", "DNS:m.example"), "m.example").count, 1);
}

static void test_expired_and_not_yet_valid(void)
{
	struct findings f = check(make_cert("old", -100, -10, "m", "DNS:m.example"), "m.example");
	TEST_ASSERT_INT(f.count, 1);
	TEST_ASSERT(strstr(f.all, "certificate expired on ") != NULL);
	f = check(make_cert("future", 5, 90, "m", "DNS:m.example"), "m.example");
	TEST_ASSERT_INT(f.count, 1);
	TEST_ASSERT(strstr(f.all, "certificate is not valid before ") != NULL);
}

static void test_wrong_name(void)
{
	const char *path = make_cert("other", -1, 90, "other.example",
				     "DNS:other.example,DNS:www.other.example");
	struct findings f = check(path, "mail.example.org");
	TEST_ASSERT_INT(f.count, 1);
	TEST_ASSERT(strstr(f.all, "certificate does not cover hostname mail.example.org "
				  "(it names other.example, www.other.example)") != NULL);
	/* without subjectAltName the CN is what it names */
	f = check(make_cert("cn", -1, 90, "cn.example", NULL), "mail.example.org");
	TEST_ASSERT(strstr(f.all, "(it names cn.example)") != NULL);
	/* expiring and the wrong name: both said */
	TEST_ASSERT_INT(check(make_cert("both", -1, 2, "x", "DNS:x.example"), "y.example").count, 2);
}

static void test_unreadable(void)
{
	struct findings f = { 0, "" };
	const char *error = NULL;
	char path[600];
	snprintf(path, sizeof(path), "%s/missing.pem", test_tmpdir());
	TEST_ASSERT_INT(tls_cert_check(path, "a.example", 14, collect, &f, &error), -1);
	TEST_ASSERT(error != NULL && strstr(error, "missing.pem") != NULL);
}

int main(void)
{
	test_run("certificate fine", test_fine);
	test_run("certificate expiring", test_expiring);
	test_run("certificate expired or not yet valid", test_expired_and_not_yet_valid);
	test_run("certificate names another host", test_wrong_name);
	test_run("certificate unreadable", test_unreadable);
	return test_end();
}

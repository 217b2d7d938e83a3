#include "core/tls.h"
#include "core/buf.h"
#include "core/log.h"

#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/ocsp.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Mozilla server-side TLS, intermediate configuration (version 5.7) */
#define TLS_CIPHERS_TLS12 \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define TLS_CIPHERS_TLS13 "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS "X25519:P-256:P-384:ffdhe2048:ffdhe3072"

static char tls_error[512];

static const char *tls_fail(const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char reason[256] = "";
	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	snprintf(tls_error, sizeof(tls_error), "%s%s%s: %s", what,
		 file ? " " : "", file ? file : "", reason[0] ? reason : "failed");
	return tls_error;
}

SSL_CTX *tls_ctx_new(const char *cert_file, const char *key_file, const char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		*error_r = tls_fail("creating TLS context", NULL);
		return NULL;
	}
	/* Mozilla's "intermediate" profile (docs/security.md): TLS 1.2 and
	 * 1.3, forward-secret AEAD suites only, X25519/P-256/P-384, DHE with
	 * the RFC 7919 groups; in the server's order of preference; no
	 * compression, no renegotiation, no TLS 1.2 session tickets (their
	 * key would outlive forward secrecy) */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
				 SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
	if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_TLS12) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERS_TLS13) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1 ||
	    SSL_CTX_set_dh_auto(ctx, 1) != 1) {
		*error_r = tls_fail("setting the TLS profile", NULL);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		*error_r = tls_fail("loading certificate", cert_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		*error_r = tls_fail("loading key", key_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*error_r = tls_fail("key does not match certificate", key_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ext == NULL)
		return -1;
	int ret = X509_add_ext(cert, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return ret;
}

static int write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return -1;
	}
	int ok = key != NULL ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
			     : PEM_write_X509(f, cert);
	if (fclose(f) != 0)
		ok = 0;
	return ok == 1 ? 0 : -1;
}

int tls_make_self_signed(const char *cert_file, const char *key_file,
			 const char *hostname, const char **error_r)
{
	int ret = -1;
	X509 *cert = NULL;
	EVP_PKEY *key = EVP_RSA_gen(2048);
	if (key == NULL) {
		*error_r = tls_fail("generating key", NULL);
		return -1;
	}
	cert = X509_new();
	if (cert == NULL)
		goto out;
	X509_set_version(cert, 2);
	unsigned char serial[16];
	FILE *ur = fopen("/dev/urandom", "r");
	if (ur == NULL || fread(serial, 1, sizeof(serial), ur) != sizeof(serial)) {
		if (ur != NULL)
			fclose(ur);
		goto out;
	}
	fclose(ur);
	serial[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
	BN_free(bn);
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), 10L * 365 * 86400);
	X509_set_pubkey(cert, key);
	X509_NAME *name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
				   (const unsigned char *)"Postern demo", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)hostname, -1, -1, 0);
	X509_set_issuer_name(cert, name);
	char san[600];
	snprintf(san, sizeof(san), "DNS:%s,DNS:localhost,IP:127.0.0.1,IP:::1", hostname);
	if (add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(cert, NID_key_usage, "critical,digitalSignature,keyEncipherment") < 0 ||
	    add_ext(cert, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(cert, NID_subject_alt_name, san) < 0)
		goto out;
	if (X509_sign(cert, key, EVP_sha256()) == 0)
		goto out;
	if (write_pem(key_file, 0600, key, NULL) < 0 || write_pem(cert_file, 0644, NULL, cert) < 0) {
		snprintf(tls_error, sizeof(tls_error), "writing %s or %s failed", cert_file,
			 key_file);
		*error_r = tls_error;
		X509_free(cert);
		EVP_PKEY_free(key);
		return -1;
	}
	ret = 0;
out:
	if (ret < 0)
		*error_r = tls_fail("making self-signed certificate", NULL);
	X509_free(cert);
	EVP_PKEY_free(key);
	return ret;
}

/* "DNS:a.example, DNS:b.example" of the certificate, for a message */
static void cert_names(X509 *cert, char *out, size_t out_size)
{
	size_t len = 0;
	out[0] = '\0';
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names) && len < out_size; i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		if (gn->type != GEN_DNS)
			continue;
		const ASN1_IA5STRING *dns = gn->d.dNSName;
		len += (size_t)snprintf(out + len, out_size - len, "%s%.*s", len ? ", " : "",
					ASN1_STRING_length(dns),
					(const char *)ASN1_STRING_get0_data(dns));
	}
	GENERAL_NAMES_free(names);
	if (out[0] == '\0') {
		X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out,
					  (int)out_size);
		if (out[0] == '\0')
			snprintf(out, out_size, "no names");
	}
}

static void cert_time_text(const ASN1_TIME *t, char *out, size_t out_size)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(t, &tm) == 1)
		strftime(out, out_size, "%Y-%m-%d %H:%M UTC", &tm);
	else
		snprintf(out, out_size, "(unreadable date)");
}

int tls_cert_check(const char *cert_file, const char *hostname, int warn_days,
		   void (*warn)(void *context, const char *text), void *context,
		   const char **error_r)
{
	FILE *f = fopen(cert_file, "r");
	X509 *cert = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f != NULL)
		fclose(f);
	if (cert == NULL) {
		*error_r = tls_fail("reading certificate", cert_file);
		return -1;
	}
	int findings = 0, days = 0, secs = 0;
	char text[900], when[64];
	const ASN1_TIME *not_after = X509_get0_notAfter(cert);
	const ASN1_TIME *not_before = X509_get0_notBefore(cert);
	cert_time_text(not_after, when, sizeof(when));
	/* days and secs from now to notAfter, both of the same sign */
	if (ASN1_TIME_diff(&days, &secs, NULL, not_after) == 1) {
		if (days < 0 || secs < 0) {
			snprintf(text, sizeof(text), "%s: certificate expired on %s", cert_file, when);
			warn(context, text);
			findings++;
		} else if (days < warn_days) {
			char in[32] = "less than a day";
			if (days > 0)
				snprintf(in, sizeof(in), "%d day%s", days, days == 1 ? "" : "s");
			snprintf(text, sizeof(text), "%s: certificate expires in %s, on %s", cert_file,
				 in, when);
			warn(context, text);
			findings++;
		}
	}
	if (X509_cmp_current_time(not_before) > 0) {
		cert_time_text(not_before, when, sizeof(when));
		snprintf(text, sizeof(text), "%s: certificate is not valid before %s", cert_file,
			 when);
		warn(context, text);
		findings++;
	}
	if (hostname != NULL && X509_check_host(cert, hostname, 0, 0, NULL) != 1) {
		char names[600];
		cert_names(cert, names, sizeof(names));
		snprintf(text, sizeof(text), "%s: certificate does not cover hostname %s (it names %s)",
			 cert_file, hostname, names);
		warn(context, text);
		findings++;
	}
	X509_free(cert);
	return findings;
}

void tls_describe(SSL *ssl, char *out, size_t out_size)
{
	snprintf(out, out_size, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}

static time_t asn1_time_unix(const ASN1_TIME *t)
{
	struct tm tm;
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

time_t tls_ctx_not_after(SSL_CTX *ctx)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	return cert != NULL ? asn1_time_unix(X509_get0_notAfter(cert)) : 0;
}

int tls_cert_not_after(const char *cert_file, time_t *not_after_r, const char **error_r)
{
	FILE *f = fopen(cert_file, "r");
	if (f == NULL) {
		snprintf(tls_error, sizeof(tls_error), "%s: %s", cert_file, strerror(errno));
		*error_r = tls_error;
		return -1;
	}
	X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	*not_after_r = cert != NULL ? asn1_time_unix(X509_get0_notAfter(cert)) : 0;
	X509_free(cert);
	if (*not_after_r == 0) {
		*error_r = tls_fail("reading certificate", cert_file);
		return -1;
	}
	return 0;
}

/* ---- OCSP stapling ----------------------------------------------------- */

#define OCSP_RESPONSE_MAX 16384
#define OCSP_RETRY_SECS 300
#define OCSP_TIMEOUT_SECS 5

/* A mapping shared by the master (the only writer) and its children:
 * seq is odd while the master writes (a seqlock). */
struct tls_ocsp {
	uint32_t seq;
	uint32_t len;
	unsigned char der[OCSP_RESPONSE_MAX];
};

struct tls_ocsp *tls_ocsp_new(void)
{
	void *p = mmap(NULL, sizeof(struct tls_ocsp), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void ocsp_store(struct tls_ocsp *o, const unsigned char *der, size_t len)
{
	__atomic_add_fetch(&o->seq, 1, __ATOMIC_SEQ_CST);
	if (len > 0)
		memcpy(o->der, der, len);
	__atomic_store_n(&o->len, (uint32_t)len, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&o->seq, 1, __ATOMIC_SEQ_CST);
}

/* In a child's handshake: a copy of the response, taken whole. */
static int ocsp_status_cb(SSL *ssl, void *arg)
{
	struct tls_ocsp *o = arg;
	for (int tries = 0; tries < 100; tries++) {
		uint32_t seq = __atomic_load_n(&o->seq, __ATOMIC_SEQ_CST);
		if (seq & 1)
			continue;
		uint32_t len = __atomic_load_n(&o->len, __ATOMIC_SEQ_CST);
		if (len == 0 || len > OCSP_RESPONSE_MAX)
			return SSL_TLSEXT_ERR_NOACK;
		unsigned char *copy = OPENSSL_malloc(len);
		if (copy == NULL)
			return SSL_TLSEXT_ERR_NOACK;
		memcpy(copy, o->der, len);
		if (__atomic_load_n(&o->seq, __ATOMIC_SEQ_CST) != seq) {
			OPENSSL_free(copy);
			continue;
		}
		SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)len);
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

void tls_ocsp_use(SSL_CTX *ctx, struct tls_ocsp *o)
{
	if (o == NULL)
		return;
	SSL_CTX_set_tlsext_status_cb(ctx, ocsp_status_cb);
	SSL_CTX_set_tlsext_status_arg(ctx, o);
}

/* The certificate that issued cert, from the chain the context holds. */
static X509 *ocsp_issuer(SSL_CTX *ctx, X509 *cert, STACK_OF(X509) **chain_r)
{
	STACK_OF(X509) *chain = NULL;
	SSL_CTX_get0_chain_certs(ctx, &chain);
	if (chain == NULL)
		SSL_CTX_get_extra_chain_certs(ctx, &chain);
	*chain_r = chain;
	for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
		X509 *c = sk_X509_value(chain, i);
		if (X509_check_issued(c, cert) == X509_V_OK)
			return c;
	}
	return NULL;
}

/* One request to url; the response when it is good and verified. */
static OCSP_RESPONSE *ocsp_fetch(const char *url, OCSP_CERTID *id, X509 *issuer,
				 STACK_OF(X509) *chain, const char **why_r)
{
	char *host = NULL, *port = NULL, *path = NULL;
	int use_ssl = 0;
	OCSP_RESPONSE *resp = NULL;
	OCSP_REQUEST *req = OCSP_REQUEST_new();
	BIO *req_bio = NULL, *resp_bio = NULL;
	*why_r = "request failed";
	if (req == NULL || OCSP_request_add0_id(req, OCSP_CERTID_dup(id)) == NULL)
		goto out;
	if (!OSSL_HTTP_parse_url(url, &use_ssl, NULL, &host, &port, NULL, &path, NULL, NULL) ||
	    use_ssl) {
		*why_r = "responder URL not plain http";
		goto out;
	}
	req_bio = ASN1_item_i2d_mem_bio(ASN1_ITEM_rptr(OCSP_REQUEST), (ASN1_VALUE *)req);
	if (req_bio == NULL)
		goto out;
	resp_bio = OSSL_HTTP_transfer(NULL, host, port, path, 0, NULL, NULL, NULL, NULL, NULL,
				      NULL, 0, NULL, "application/ocsp-request", req_bio,
				      "application/ocsp-response", 1, OCSP_RESPONSE_MAX,
				      OCSP_TIMEOUT_SECS, 0);
	if (resp_bio == NULL || (resp = d2i_OCSP_RESPONSE_bio(resp_bio, NULL)) == NULL) {
		*why_r = "no answer from the responder";
		goto out;
	}
	OCSP_BASICRESP *basic = NULL;
	X509_STORE *store = X509_STORE_new();
	int status = -1, reason;
	ASN1_GENERALIZEDTIME *rev, *this_update, *next_update;
	bool good = OCSP_response_status(resp) == OCSP_RESPONSE_STATUS_SUCCESSFUL &&
		    (basic = OCSP_response_get1_basic(resp)) != NULL && store != NULL &&
		    X509_STORE_add_cert(store, issuer) == 1 &&
		    OCSP_basic_verify(basic, chain, store, 0) > 0 &&
		    OCSP_resp_find_status(basic, id, &status, &reason, &rev, &this_update,
					  &next_update) == 1 &&
		    status == V_OCSP_CERTSTATUS_GOOD &&
		    OCSP_check_validity(this_update, next_update, 300, -1) == 1;
	OCSP_BASICRESP_free(basic);
	X509_STORE_free(store);
	if (!good) {
		*why_r = status == V_OCSP_CERTSTATUS_REVOKED ? "certificate revoked" :
			"response not good or not verified";
		OCSP_RESPONSE_free(resp);
		resp = NULL;
	}
out:
	ERR_clear_error();
	BIO_free(req_bio);
	BIO_free(resp_bio);
	OCSP_REQUEST_free(req);
	OPENSSL_free(host);
	OPENSSL_free(port);
	OPENSSL_free(path);
	return resp;
}

/* Half the time left until nextUpdate, within [5 min, 12 h]. */
static int ocsp_next_refresh(OCSP_RESPONSE *resp, OCSP_CERTID *id)
{
	int secs = 3600;
	OCSP_BASICRESP *basic = OCSP_response_get1_basic(resp);
	int status, reason, day, sec;
	ASN1_GENERALIZEDTIME *rev, *this_update, *next_update = NULL;
	if (basic != NULL &&
	    OCSP_resp_find_status(basic, id, &status, &reason, &rev, &this_update,
				  &next_update) == 1 &&
	    next_update != NULL && ASN1_TIME_diff(&day, &sec, NULL, next_update) == 1) {
		long left = (long)day * 86400 + sec;
		secs = (int)(left / 2 < 12 * 3600 ? left / 2 : 12 * 3600);
	}
	OCSP_BASICRESP_free(basic);
	return secs < OCSP_RETRY_SECS ? OCSP_RETRY_SECS : secs;
}

int tls_ocsp_refresh(struct tls_ocsp *o, SSL_CTX *ctx)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	STACK_OF(OPENSSL_STRING) *urls = cert != NULL ? X509_get1_ocsp(cert) : NULL;
	STACK_OF(X509) *chain = NULL;
	int next = 0;
	if (o == NULL || urls == NULL || sk_OPENSSL_STRING_num(urls) == 0) {
		if (o != NULL)
			ocsp_store(o, NULL, 0);
		X509_email_free(urls);
		return 0;
	}
	const char *url = sk_OPENSSL_STRING_value(urls, 0);
	X509 *issuer = ocsp_issuer(ctx, cert, &chain);
	if (issuer == NULL) {
		log_warn("event=ocsp-failed url=%s error=\"the issuer is not in the certificate chain\"",
			 url);
		X509_email_free(urls);
		return 12 * 3600;
	}
	const char *why = "cannot build the request";
	OCSP_CERTID *id = OCSP_cert_to_id(NULL, cert, issuer);
	OCSP_RESPONSE *resp = id != NULL ? ocsp_fetch(url, id, issuer, chain, &why) : NULL;
	unsigned char *der = NULL;
	int len = resp != NULL ? i2d_OCSP_RESPONSE(resp, &der) : -1;
	if (len > 0 && len <= OCSP_RESPONSE_MAX) {
		ocsp_store(o, der, (size_t)len);
		next = ocsp_next_refresh(resp, id);
		log_info("event=ocsp-stapled url=%s bytes=%d next=%ds", url, len, next);
	} else {
		log_warn("event=ocsp-failed url=%s error=\"%s\"", url,
			 resp != NULL ? "response too large" : why);
		next = OCSP_RETRY_SECS;
	}
	OPENSSL_free(der);
	OCSP_RESPONSE_free(resp);
	OCSP_CERTID_free(id);
	X509_email_free(urls);
	return next;
}

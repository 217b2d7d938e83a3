#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

/* TLS server contexts (OpenSSL): TLS 1.2 and newer only, the certificate
 * chain and key from the config. The master loads them (it may be the
 * only one able to read the key) before forking workers; a reload builds
 * a new context and a new generation of workers inherits it. */

#include <openssl/ssl.h>
#include <time.h>

/* Returns a new context or NULL with a one-line reason. */
SSL_CTX *tls_ctx_new(const char *cert_file, const char *key_file, const char **error_r);
/* Writes a fresh self-signed certificate and key (mode 0600) for hostname
 * (plus localhost and 127.0.0.1/::1 as alternative names). */
int tls_make_self_signed(const char *cert_file, const char *key_file,
			 const char *hostname, const char **error_r);
/* how many days before expiry `postern check` and the master warn */
#define CERT_WARN_DAYS 14

/* What an admin should hear about the certificate in cert_file (its
 * first, leaf certificate): that it expired, expires within warn_days, is
 * not valid yet, or does not cover hostname. Calls warn once per finding
 * with a one-line text; returns the number of findings, or -1 with a
 * reason when the file holds no certificate. */
int tls_cert_check(const char *cert_file, const char *hostname, int warn_days,
		   void (*warn)(void *context, const char *text), void *context,
		   const char **error_r);

/* When the leaf certificate expires (Unix time), 0 when unknown: of a
 * loaded context, or of the first certificate in a PEM file (-1 with a
 * reason when the file cannot be read). */
time_t tls_ctx_not_after(SSL_CTX *ctx);
int tls_cert_not_after(const char *cert_file, time_t *not_after_r, const char **error_r);

/* OCSP stapling (RFC 6066 status_request): when the certificate names
 * an OCSP responder, the master fetches a response for it, checks it
 * against the issuer in the chain, and keeps it in memory shared with
 * the children, whose handshakes staple it. */
struct tls_ocsp;
/* In the master, before any fork. NULL when the mapping fails. */
struct tls_ocsp *tls_ocsp_new(void);
/* ctx's handshakes staple what o holds (nothing while it holds none). */
void tls_ocsp_use(SSL_CTX *ctx, struct tls_ocsp *o);
/* Fetches a fresh response for ctx's certificate (blocking, 5 s at most)
 * when it names a responder; keeps the last good one on failure. Returns
 * the seconds until the next refresh is due (0: never, no responder). */
int tls_ocsp_refresh(struct tls_ocsp *o, SSL_CTX *ctx);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" of a live connection. */
void tls_describe(SSL *ssl, char *out, size_t out_size);

#endif

#ifndef POSTERN_DKIM_PRIVATE_H
#define POSTERN_DKIM_PRIVATE_H

/* Internals of dkim/: keys.c (files, OpenSSL) and sign.c (the filter). */

#include <openssl/evp.h>
#include <stdint.h>

#include "core/core.h"
#include "dkim/dkim.h"

/* A lowercase LDH domain safe to use as a directory name. */
bool dkim_domain_safe(const char *domain);
/* DATA/dkim/DOMAIN (malloc'ed). */
char *dkim_domain_dir(const char *data_dir, const char *domain);
/* Reads a private key file (at most 16 KiB): its PEM text (malloc'ed,
 * NUL-terminated; wipe before freeing) and/or the parsed key. */
int dkim_key_read(const char *path, char **pem_r, EVP_PKEY **pkey_r, const char **error_r);
/* Appends data in base64 (no line breaks). */
void dkim_base64_append(struct buf *out, const unsigned char *data, size_t len);
/* "v=DKIM1; k=...; p=..." of a key. */
int dkim_public_record(EVP_PKEY *pkey, struct buf *out);

/* ---- canon.c: relaxed canonicalisation (RFC 6376 3.4.2, 3.4.4) ---- */

/* Appends the relaxed form of one complete header field ("Name : value",
 * folded, with or without its line end): "name:value\r\n". */
void dkim_canon_header(const char *field, size_t len, struct buf *out);

/* The body, canonicalised as it streams into a SHA-256. */
struct dkim_body_canon {
	EVP_MD_CTX *md;
	size_t empty_lines;          /* empty lines held back (dropped at the end) */
	bool line_started, pending_wsp, cr, failed;
	uint64_t total;              /* canonical bytes hashed */
	size_t out_len;
	unsigned char out[8192];
};
int dkim_body_canon_init(struct dkim_body_canon *c);
void dkim_body_canon_update(struct dkim_body_canon *c, const char *data, size_t len);
/* The SHA-256 of the canonical body (32 bytes into digest). 0 or -1. */
int dkim_body_canon_final(struct dkim_body_canon *c, unsigned char *digest, size_t size);
void dkim_body_canon_free(struct dkim_body_canon *c);

/* ---- sign.c ---- */

/* The DKIM-Signature field ("DKIM-Signature: ...\r\n", folded) of one
 * key over header (complete fields, in order, ends[i] where field i ends)
 * with the body hash bh (32 bytes); t the signing time. 0 or -1. */
int dkim_signature(EVP_PKEY *key, const char *domain, const char *selector, time_t t,
		   const char *header, const size_t *ends, size_t count,
		   const unsigned char *bh, struct buf *out, const char **error_r);

/* Does one of the Authentication-Results fields in fields (complete
 * fields, CRLF-terminated, as in a verdict's prepend) whose authserv-id is
 * hostname say dkim=pass with header.d (or header.i) in domain, or
 * dmarc=pass with header.from = domain? Exposed for tests and fuzzing. */
bool dkim_results_prove(const char *fields, size_t len, const char *hostname,
			const char *domain);
/* The domain of the one address of a From: field's value (after the
 * colon; folded or not), lowercased into out; -1 when there is not
 * exactly one address. Exposed for tests and fuzzing. */
int dkim_from_domain(const char *value, size_t len, char *out, size_t size);

#endif

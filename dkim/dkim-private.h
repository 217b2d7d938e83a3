#ifndef POSTERN_DKIM_PRIVATE_H
#define POSTERN_DKIM_PRIVATE_H

/* Internals of dkim/: keys.c (files, OpenSSL) and sign.c (the filter). */

#include <openssl/evp.h>

#include "core/core.h"
#include "dkim/dkim.h"

/* A lowercase LDH domain safe to use as a directory name. */
bool dkim_domain_safe(const char *domain);
/* DATA/dkim/DOMAIN (malloc'ed). */
char *dkim_domain_dir(const char *data_dir, const char *domain);
/* Reads a private key file (at most 16 KiB): its PEM text (malloc'ed,
 * NUL-terminated; wipe before freeing) and/or the parsed key. */
int dkim_key_read(const char *path, char **pem_r, EVP_PKEY **pkey_r, const char **error_r);
/* "v=DKIM1; k=...; p=..." of a key. */
int dkim_public_record(EVP_PKEY *pkey, struct buf *out);

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

#ifndef POSTERN_DKIM_H
#define POSTERN_DKIM_H

/* dkim/: DKIM signing (RFC 6376; RFC 8463 for Ed25519) of the mail that
 * leaves, and the signing keys.
 *
 * Keys live in DATA/dkim/DOMAIN/SELECTOR.pem (PKCS#8 PEM, RSA-2048 or
 * Ed25519, mode 0600, owned by run_as). Every key of a domain is active:
 * each one signs. Rotation is adding a key under a new selector and
 * deleting the old one later. The signer reads the directory for every
 * message it signs, so a key added or deleted by `postern dkim` counts
 * from the next message on, without a restart.
 *
 * Signing is an intake filter (canon.c canonicalises, OpenSSL hashes and
 * signs): relaxed/relaxed, no l=, the fields of dkim_signed_fields with
 * From oversigned, one DKIM-Signature per key, put in
 * verdict->prepend_remote (only the copies that leave carry them). Which
 * messages (docs/deliverability.md):
 *   - submitted mail (origin SUBMISSION) with remote recipients, signed
 *     by the keys of its From: domain (intake made sure the user owns
 *     it), and what the administrator queues with `postern queue
 *     inject` (INJECT) likewise;
 *   - Postern's own reports (origin REPORT, From: MAILER-DAEMON@hostname)
 *     by the keys of the hostname, else of its closest parent domain that
 *     has keys (mail.example.org, then example.org; never a single label);
 *   - mail from the MX port (INBOUND, e.g. forwarded through an alias to
 *     a remote address) only when an earlier filter's
 *     Authentication-Results (authserv-id = hostname) says dkim=pass for
 *     the From: domain or dmarc=pass with header.from = it: Postern never
 *     puts its signature on a From: it did not see proven.
 *   Nothing else (local deliveries, retries into hosted mailboxes). */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/buf.h"
#include "intake/intake.h"

#define DKIM_SELECTOR_MAX 63
#define DKIM_MAX_KEYS 8        /* keys per domain that sign */
#define DKIM_RSA_BITS 2048

enum dkim_algorithm { DKIM_ALG_RSA, DKIM_ALG_ED25519 };

struct dkim_key {
	char selector[DKIM_SELECTOR_MAX + 1];
	enum dkim_algorithm alg;
	int bits;                    /* 2048 for RSA, 256 for Ed25519 */
	time_t created;              /* the file's mtime */
};

/* The intake filter. Register it once per process
 * (intake_filter_register(&dkim_sign_filter)). */
extern const struct intake_filter dkim_sign_filter;

/* The header fields each signature covers (From is also oversigned),
 * NULL-terminated. */
extern const char *const dkim_signed_fields[];

/* "rsa" / "ed25519", and back (-1 when unknown). */
const char *dkim_algorithm_name(enum dkim_algorithm alg);
int dkim_algorithm_parse(const char *name, enum dkim_algorithm *alg_r);

/* A selector is 1-63 of [a-z0-9-] (lowercase; RFC 6376 3.1 allows dotted
 * sub-selectors, which we do not make). */
bool dkim_selector_valid(const char *selector);
/* The default selector for a new key: "pYYYYMM" (UTC) of now, or, when a
 * key has that one already, "pYYYYMMb", "pYYYYMMc", ... */
int dkim_default_selector(const char *data_dir, const char *domain, time_t now,
			  char *out, size_t size, const char **error_r);

/* Makes a key (the directories made and given to run_as when root). -1
 * with a message when the selector exists or on failure. domain must be
 * normalised (lowercase A-label). */
int dkim_key_generate(const char *data_dir, const char *run_as, const char *domain,
		      const char *selector, enum dkim_algorithm alg, const char **error_r);
/* 0 deleted, -1 with a message (no such key, ...). */
int dkim_key_delete(const char *data_dir, const char *domain, const char *selector,
		    const char **error_r);
/* The keys of domain, sorted by selector (*keys_r malloc'ed, NULL and 0
 * when none). 0, or -1 with a message. */
int dkim_keys_list(const char *data_dir, const char *domain, struct dkim_key **keys_r,
		   size_t *count_r, const char **error_r);
/* Domains that have a key directory, sorted (*domains_r and each string
 * malloc'ed; dkim_domains_free). */
int dkim_domains_list(const char *data_dir, char ***domains_r, size_t *count_r,
		      const char **error_r);
void dkim_domains_free(char **domains, size_t count);
/* The public key record for SELECTOR._domainkey.DOMAIN:
 * "v=DKIM1; k=rsa; p=BASE64" (or k=ed25519, RFC 8463). */
int dkim_key_record(const char *data_dir, const char *domain, const char *selector,
		    struct buf *out, const char **error_r);
/* A TXT value as zone-file text: quoted strings of at most 255 bytes
 * ("a" "b"), since one DNS character-string holds no more. */
void dkim_txt_quote(const char *text, struct buf *out);

#endif

/* The DKIM signer, an intake filter (dkim.h says which messages). The
 * header fields are held until the header ends (the From: domain picks
 * the keys, and intake caps the header block); the body is canonicalised
 * and hashed as it streams (canon.c), once for every key, and never held.
 * The signatures are made at end (in intake's offload thread on workers)
 * with OpenSSL and go into verdict->prepend_remote.
 *
 * Why not libopendkim: Debian 12's libopendkim 2.11.0~beta2 signs
 * Ed25519 but leaks the key (an EVP_PKEY and its output buffer, about
 * 600 bytes) at every Ed25519 signature it makes, which a long-running
 * worker cannot afford; canonicalisation is short, and the tests prove
 * it against dkimpy and OpenDKIM's own verifier. */
#include "dkim/dkim-private.h"
#include "auth/auth.h"
#include "mail/mail.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIG_NAME "DKIM-Signature"
#define SIG_LINE 76              /* fold the field's lines near this */

const char *const dkim_signed_fields[] = {
	"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "Content-ID", "Content-Description",
	"Content-Disposition", NULL,
};

struct signing_key {
	char selector[DKIM_SELECTOR_MAX + 1];
	EVP_PKEY *key;
};

struct signer {
	const struct config *cfg;
	enum intake_origin origin;
	struct buf header;           /* the fields, held until end */
	size_t *ends;                /* where each field ends in header */
	size_t field_count;
	int from_fields;
	size_t from_field;           /* index of the From: field */
	char from_domain[AUTH_DOMAIN_MAX + 1];   /* of the From: field, A-label */
	char domain[AUTH_DOMAIN_MAX + 1];        /* d= */
	struct signing_key keys[DKIM_MAX_KEYS];
	size_t key_count;
	struct dkim_body_canon body;
	bool body_ready;
	bool failed;
	bool ended;
	struct buf note;             /* what end() did, logged by free() (on the loop) */
};

static void *signer_begin(const struct intake_info *info)
{
	const struct intake_envelope *env = info->env;
	if (!info->has_remote)
		return NULL;
	if (env->origin != INTAKE_SUBMISSION && env->origin != INTAKE_REPORT &&
	    env->origin != INTAKE_INBOUND && env->origin != INTAKE_INJECT)
		return NULL;
	struct signer *s = xcalloc(1, sizeof(*s));
	s->cfg = info->cfg;
	s->origin = env->origin;
	return s;
}

static bool signer_header(void *state, const char *field, size_t len)
{
	struct signer *s = state;
	if (mail_field_is(field, len, "From")) {
		s->from_fields++;
		s->from_field = s->field_count;
	}
	buf_append(&s->header, field, len);
	s->ends = xrealloc(s->ends, (s->field_count + 1) * sizeof(*s->ends));
	s->ends[s->field_count++] = s->header.len;
	return true;
}

/* ---- From: ---- */

int dkim_from_domain(const char *value, size_t len, char *out, size_t size)
{
	/* the one mailbox of the field, read as intake reads it (mail/) */
	char *text = mail_unfold(value, len);
	int ret = mail_single_domain(text, out, size);
	free(text);
	return ret;
}

/* ---- keys ---- */

static void signer_note(struct signer *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void signer_note(struct signer *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_reset(&s->note);
	buf_vprintf(&s->note, fmt, ap);
	va_end(ap);
}

/* The keys of domain; false when it has none. */
static bool signer_load_keys(struct signer *s, const char *domain)
{
	struct dkim_key *keys;
	size_t count;
	const char *error;
	if (!dkim_domain_safe(domain))
		return false;
	if (dkim_keys_list(s->cfg->data_dir, domain, &keys, &count, &error) < 0) {
		log_error("event=dkim-keys-unreadable domain=%s error=\"%s\"", domain, error);
		return false;
	}
	snprintf(s->domain, sizeof(s->domain), "%s", domain);
	char *dir = dkim_domain_dir(s->cfg->data_dir, domain);
	for (size_t i = 0; i < count && s->key_count < DKIM_MAX_KEYS; i++) {
		struct signing_key *k = &s->keys[s->key_count];
		char *path = xasprintf("%s/%s.pem", dir, keys[i].selector);
		if (dkim_key_read(path, NULL, &k->key, &error) < 0) {
			log_error("event=dkim-key-unreadable domain=%s selector=%s error=\"%s\"",
				  domain, keys[i].selector, error);
		} else {
			memcpy(k->selector, keys[i].selector, sizeof(k->selector));
			s->key_count++;
		}
		free(path);
	}
	free(dir);
	free(keys);
	return s->key_count > 0;
}

/* Reports are signed by the hostname's keys, else by its closest parent
 * domain's (at least two labels) that has some. */
static void signer_load_report_keys(struct signer *s)
{
	char host[AUTH_DOMAIN_MAX + 1];
	const char *error;
	if (auth_domain_normalise(s->cfg->hostname, host, &error) < 0)
		return;
	for (const char *d = host; d != NULL && strchr(d, '.') != NULL;) {
		if (signer_load_keys(s, d))
			return;
		d = strchr(d, '.');
		d = d != NULL ? d + 1 : NULL;
	}
}

static void signer_header_end(void *state)
{
	struct signer *s = state;
	if (s->from_fields == 1) {
		size_t start = s->from_field == 0 ? 0 : s->ends[s->from_field - 1];
		const char *field = s->header.data + start;
		const char *colon = memchr(field, ':', s->ends[s->from_field] - start);
		char domain[AUTH_DOMAIN_MAX * 4 + 1];
		const char *error;
		if (colon != NULL &&
		    dkim_from_domain(colon + 1, (size_t)(s->header.data + s->ends[s->from_field] -
							   colon - 1), domain, sizeof(domain)) == 0 &&
		    auth_domain_normalise(domain, s->from_domain, &error) == 0) {
			if (s->origin == INTAKE_REPORT)
				signer_load_report_keys(s);
			else
				signer_load_keys(s, s->from_domain);
		}
	}
	if (s->key_count == 0) {
		/* nothing to sign with: stop holding the header */
		buf_free(&s->header);
		free(s->ends);
		s->ends = NULL;
		s->field_count = 0;
		return;
	}
	s->body_ready = dkim_body_canon_init(&s->body) == 0;
	s->failed = !s->body_ready;
}

static void signer_body(void *state, const char *data, size_t len)
{
	struct signer *s = state;
	if (s->body_ready)
		dkim_body_canon_update(&s->body, data, len);
}

/* ---- Authentication-Results (RFC 8601) of earlier filters ---- */

/* value with comments removed and folding turned into spaces */
static char *results_clean(const char *v, size_t len)
{
	char *out = xmalloc(len + 1);
	size_t o = 0;
	int depth = 0;
	bool quoted = false;
	for (size_t i = 0; i < len; i++) {
		char c = v[i];
		if (c == '\r' || c == '\n' || c == '\t')
			c = ' ';
		if (quoted) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '"')
				quoted = false;
			if (depth == 0)
				out[o++] = c;
			continue;
		}
		if (c == '(') {
			depth++;
			continue;
		}
		if (c == ')' && depth > 0) {
			depth--;
			continue;
		}
		if (depth > 0)
			continue;
		if (c == '"')
			quoted = true;
		out[o++] = c;
	}
	out[o] = '\0';
	return out;
}

/* "header.d=example.org" in resinfo, for any of the names. */
static bool property_is(const char *resinfo, const char *name, const char *domain)
{
	size_t nlen = strlen(name);
	for (const char *p = resinfo; (p = strstr(p, name)) != NULL; p += nlen) {
		if (p != resinfo && p[-1] != ' ')
			continue;
		const char *v = p + nlen;
		while (*v == ' ')
			v++;
		if (*v != '=')
			continue;
		v++;
		while (*v == ' ')
			v++;
		size_t vlen = strcspn(v, " ;");
		const char *at = memchr(v, '@', vlen);
		if (at != NULL) {        /* header.i=user@domain */
			vlen -= (size_t)(at + 1 - v);
			v = at + 1;
		}
		if (vlen == strlen(domain) && ascii_strncasecmp(v, domain, vlen) == 0)
			return true;
	}
	return false;
}

static bool resinfo_proves(const char *r, const char *domain)
{
	while (*r == ' ')
		r++;
	if (ascii_has_prefix_ci(r, "dkim") || ascii_has_prefix_ci(r, "dmarc")) {
		bool dkim = ascii_has_prefix_ci(r, "dkim");
		const char *p = r + (dkim ? 4 : 5);
		while (*p == ' ')
			p++;
		if (*p != '=')
			return false;
		p++;
		while (*p == ' ')
			p++;
		if (!ascii_has_prefix_ci(p, "pass") || (p[4] != ' ' && p[4] != '\0'))
			return false;
		return dkim ? property_is(p, "header.d", domain) || property_is(p, "header.i", domain) :
			      property_is(p, "header.from", domain);
	}
	return false;
}

static bool field_proves(const char *v, size_t len, const char *hostname, const char *domain)
{
	char *clean = results_clean(v, len);
	bool ok = false;
	char *save = NULL;
	char *part = strtok_r(clean, ";", &save);
	/* authserv-id [version] */
	if (part != NULL) {
		while (*part == ' ')
			part++;
		size_t idlen = strcspn(part, " ");
		ok = idlen == strlen(hostname) && ascii_strncasecmp(part, hostname, idlen) == 0;
	}
	bool proven = false;
	while (ok && !proven && (part = strtok_r(NULL, ";", &save)) != NULL)
		proven = resinfo_proves(part, domain);
	free(clean);
	return proven;
}

bool dkim_results_prove(const char *fields, size_t len, const char *hostname,
			const char *domain)
{
	size_t pos = 0;
	struct mail_field f;
	while (mail_header_next(fields, len, &pos, &f)) {
		if (f.name_len == 0 || !mail_field_is(f.start, f.len, "Authentication-Results"))
			continue;
		size_t vlen = f.len - (size_t)(f.value - f.start);
		if (field_proves(f.value, vlen, hostname, domain))
			return true;
	}
	return false;
}

/* ---- the signature ---- */

/* Appends text to the field being built, folding ("\r\n\t") before it
 * when the line would grow past SIG_LINE. */
static void fold_append(struct buf *f, size_t *line_start, const char *text)
{
	size_t len = strlen(text);
	if (f->len - *line_start + len > SIG_LINE && f->len > *line_start + 1) {
		buf_append_str(f, "\r\n\t");
		*line_start = f->len - 1;
	}
	buf_append_str(f, text);
}

static bool signed_name(const char *field, size_t len)
{
	for (size_t i = 0; dkim_signed_fields[i] != NULL; i++) {
		if (mail_field_is(field, len, dkim_signed_fields[i]))
			return true;
	}
	return false;
}

int dkim_signature(EVP_PKEY *key, const char *domain, const char *selector, time_t t,
		   const char *header, const size_t *ends, size_t count,
		   const unsigned char *bh, struct buf *out, const char **error_r)
{
	bool ed25519 = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519;
	struct buf field = BUF_INIT, data = BUF_INIT;
	size_t line = 0;
	char tmp[300];
	int ret = -1;
	unsigned char *sig = NULL;
	EVP_MD_CTX *ctx = NULL;

	buf_printf(&field, SIG_NAME ": v=1; a=%s; c=relaxed/relaxed;",
		   ed25519 ? "ed25519-sha256" : "rsa-sha256");
	snprintf(tmp, sizeof(tmp), " d=%s;", domain);
	fold_append(&field, &line, tmp);
	snprintf(tmp, sizeof(tmp), " s=%s;", selector);
	fold_append(&field, &line, tmp);
	snprintf(tmp, sizeof(tmp), " t=%lld;", (long long)t);
	fold_append(&field, &line, tmp);
	/* h=: the signed fields bottom-up, as a verifier takes repeated ones
	 * (RFC 6376 5.4.2), then From once more: oversigned, so that no
	 * From: can be added */
	const char *sep = " h=";
	for (size_t i = count; i-- > 0;) {
		size_t start = i == 0 ? 0 : ends[i - 1];
		const char *f = header + start;
		size_t flen = ends[i] - start;
		if (!signed_name(f, flen))
			continue;
		size_t nlen = strcspn(f, ": \t");
		snprintf(tmp, sizeof(tmp), "%s%.*s", sep, (int)(nlen < 100 ? nlen : 100), f);
		fold_append(&field, &line, tmp);
		dkim_canon_header(f, flen, &data);
		sep = ":";
	}
	snprintf(tmp, sizeof(tmp), "%sFrom;", sep);
	fold_append(&field, &line, tmp);
	struct buf bh64 = BUF_INIT;
	buf_append_str(&bh64, " bh=");
	dkim_base64_append(&bh64, bh, 32);
	buf_append_char(&bh64, ';');
	fold_append(&field, &line, buf_str(&bh64));
	buf_free(&bh64);
	fold_append(&field, &line, " b=");
	/* the field itself, b= empty and without its line end, ends the data */
	dkim_canon_header(field.data, field.len, &data);
	data.len -= 2;

	size_t sig_len = 0;
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		goto out;
	if (ed25519) {
		/* RFC 8463 3: Ed25519 over the SHA-256 of the data */
		if (EVP_Digest(data.data, data.len, digest, &digest_len, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1 ||
		    EVP_DigestSign(ctx, NULL, &sig_len, digest, digest_len) != 1)
			goto out;
		sig = xmalloc(sig_len);
		if (EVP_DigestSign(ctx, sig, &sig_len, digest, digest_len) != 1)
			goto out;
	} else {
		/* RSASSA-PKCS1-v1_5 with SHA-256 */
		if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
		    EVP_DigestSign(ctx, NULL, &sig_len, (const unsigned char *)data.data,
				   data.len) != 1)
			goto out;
		sig = xmalloc(sig_len);
		if (EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)data.data,
				   data.len) != 1)
			goto out;
	}
	/* b= folded at SIG_LINE (whitespace in b= is ignored, 3.5) */
	struct buf b64 = BUF_INIT;
	dkim_base64_append(&b64, sig, sig_len);
	for (size_t pos = 0; pos < b64.len;) {
		size_t room = field.len - line >= SIG_LINE ? 0 : SIG_LINE - (field.len - line);
		if (room == 0) {
			buf_append_str(&field, "\r\n\t");
			line = field.len - 1;
			continue;
		}
		size_t n = b64.len - pos < room ? b64.len - pos : room;
		buf_append(&field, b64.data + pos, n);
		pos += n;
	}
	buf_free(&b64);
	buf_append_str(&field, "\r\n");
	buf_append(out, field.data, field.len);
	ret = 0;
out:
	if (ret < 0)
		*error_r = "OpenSSL could not sign";
	EVP_MD_CTX_free(ctx);
	free(sig);
	buf_free(&field);
	buf_free(&data);
	return ret;
}

/* Whether this message may carry our signature after all, at the end. */
static bool signer_allowed(struct signer *s, const struct intake_info *info,
			   const struct intake_verdict *v)
{
	char from[AUTH_DOMAIN_MAX + 1];
	const char *error;
	if (info->from_domain == NULL ||
	    auth_domain_normalise(info->from_domain, from, &error) < 0 ||
	    strcmp(from, s->from_domain) != 0) {
		signer_note(s, "event=dkim-not-signed domain=%s reason=\"From: is not one address "
			    "of that domain\"", s->domain);
		return false;
	}
	if (s->origin == INTAKE_INBOUND &&
	    !dkim_results_prove(v->prepend.data != NULL ? v->prepend.data : "", v->prepend.len,
				s->cfg->hostname, s->from_domain)) {
		signer_note(s, "event=dkim-not-signed domain=%s reason=\"arrived on the MX port "
			    "without a DKIM or DMARC pass for its From: domain\"", s->domain);
		return false;
	}
	return true;
}

static void signer_end(void *state, const struct intake_info *info, struct intake_verdict *v)
{
	struct signer *s = state;
	s->ended = true;
	if (s->key_count == 0 || v->action != INTAKE_ACCEPT || !signer_allowed(s, info, v))
		return;
	unsigned char bh[32];
	if (s->failed || dkim_body_canon_final(&s->body, bh, sizeof(bh)) < 0) {
		s->failed = true;
		signer_note(s, "event=dkim-sign-failed domain=%s error=\"hashing the body failed\"",
			    s->domain);
		return;
	}
	struct buf fields = BUF_INIT;
	struct buf selectors = BUF_INIT;
	time_t now = time(NULL);
	for (size_t k = 0; k < s->key_count; k++) {
		const char *error;
		if (dkim_signature(s->keys[k].key, s->domain, s->keys[k].selector, now,
				   s->header.data != NULL ? s->header.data : "", s->ends,
				   s->field_count, bh, &fields, &error) < 0) {
			s->failed = true;
			signer_note(s, "event=dkim-sign-failed domain=%s selector=%s error=\"%s\"",
				    s->domain, s->keys[k].selector, error);
			break;
		}
		buf_printf(&selectors, "%s%s", k > 0 ? "," : "", s->keys[k].selector);
	}
	if (!s->failed) {
		buf_append(&v->prepend_remote, fields.data, fields.len);
		signer_note(s, "event=dkim-signed domain=%s selectors=%s", s->domain,
			    buf_str(&selectors));
	}
	buf_free(&fields);
	buf_free(&selectors);
}

static void signer_free(void *state)
{
	struct signer *s = state;
	if (s->ended && s->note.len > 0) {
		if (s->failed)
			log_error("%s", buf_str(&s->note));
		else
			log_info("%s", buf_str(&s->note));
	}
	for (size_t k = 0; k < s->key_count; k++)
		EVP_PKEY_free(s->keys[k].key);
	if (s->body_ready)
		dkim_body_canon_free(&s->body);
	buf_free(&s->header);
	buf_free(&s->note);
	free(s->ends);
	free(s);
}

const struct intake_filter dkim_sign_filter = {
	.name = "dkim-sign",
	.begin = signer_begin,
	.header = signer_header,
	.header_end = signer_header_end,
	.body = signer_body,
	.end = signer_end,
	.free = signer_free,
	/* it only ever adds DKIM-Signature fields to the copies that leave */
	.remote_only = true,
};

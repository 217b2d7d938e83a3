/* The DKIM signer, an intake filter (dkim.h says which messages). The
 * header fields are held until the header ends (the From: domain picks
 * the keys, and intake caps the header block); from then on every field
 * and every body piece goes straight into one libopendkim signing handle
 * per key, so the body is hashed as it streams and never held. The
 * signatures are made at end (in intake's offload thread on workers) and
 * go into verdict->prepend_remote. */
#include "dkim/dkim-private.h"
#include "auth/auth.h"

#include <opendkim/dkim.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define SIG_PREFIX "DKIM-Signature: "

const char *const dkim_signed_fields[] = {
	"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "Content-ID", "Content-Description",
	"Content-Disposition", NULL,
};

/* libopendkim's library handle: one per process, made at first use; its
 * options never change after, and its signing handles may be used from
 * any thread (one thread at a time each). */
static DKIM_LIB *dkim_lib;
static pthread_once_t dkim_lib_once = PTHREAD_ONCE_INIT;

static void dkim_lib_init(void)
{
	static const char *signed_lower[32];
	static const char *oversigned[] = { "from", NULL };
	size_t n = 0;
	for (; dkim_signed_fields[n] != NULL; n++)
		signed_lower[n] = dkim_signed_fields[n];
	signed_lower[n] = NULL;
	dkim_lib = dkim_init(NULL, NULL);
	if (dkim_lib == NULL)
		fatal("event=dkim-init-failed");
	const char **signed_list = signed_lower;
	const char **over_list = oversigned;
	if (dkim_options(dkim_lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, signed_list,
			 sizeof(signed_list)) != DKIM_STAT_OK ||
	    dkim_options(dkim_lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, over_list,
			 sizeof(over_list)) != DKIM_STAT_OK)
		fatal("event=dkim-init-failed reason=\"options\"");
}

struct signature {
	char selector[DKIM_SELECTOR_MAX + 1];
	char *pem;
	DKIM *dkim;
};

struct signer {
	const struct config *cfg;
	enum intake_origin origin;
	struct buf header;           /* the fields, held until header_end */
	size_t *ends;                /* where each field ends in header */
	size_t field_count;
	int from_fields;
	size_t from_field;           /* index of the From: field */
	char from_domain[AUTH_DOMAIN_MAX + 1];   /* of the From: field, A-label */
	char domain[AUTH_DOMAIN_MAX + 1];        /* d= */
	struct signature sigs[DKIM_MAX_KEYS];
	size_t sig_count;
	bool failed;                 /* a libopendkim call failed: no signature */
	uint64_t body_len;
	char body_tail[2];           /* the body's last two bytes */
	bool ended;
	struct buf note;             /* what end() did, logged by free() (on the loop) */
};

static void *signer_begin(const struct intake_info *info)
{
	const struct intake_envelope *env = info->env;
	if (!info->has_remote)
		return NULL;
	if (env->origin != INTAKE_SUBMISSION && env->origin != INTAKE_REPORT &&
	    env->origin != INTAKE_INBOUND)
		return NULL;
	struct signer *s = xcalloc(1, sizeof(*s));
	s->cfg = info->cfg;
	s->origin = env->origin;
	return s;
}

static bool is_field(const char *field, size_t len, const char *name)
{
	size_t n = strlen(name);
	if (len <= n || ascii_strncasecmp(field, name, n) != 0)
		return false;
	while (n < len && (field[n] == ' ' || field[n] == '\t'))
		n++;
	return n < len && field[n] == ':';
}

static bool signer_header(void *state, const char *field, size_t len)
{
	struct signer *s = state;
	if (is_field(field, len, "From")) {
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
	/* unfolded, and at most what an address can be with a long name */
	if (len > 4096 || size == 0)
		return -1;
	unsigned char *copy = xmalloc(len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (value[i] != '\r' && value[i] != '\n' && value[i] != '\0')
			copy[n++] = (unsigned char)value[i];
	}
	copy[n] = '\0';
	unsigned char *user = NULL, *domain = NULL;
	int ret = -1;
	if (dkim_mail_parse(copy, &user, &domain) == 0 && domain != NULL && domain[0] != '\0' &&
	    strlen((char *)domain) < size) {
		size_t i = 0;
		for (; domain[i] != '\0'; i++)
			out[i] = (char)(domain[i] >= 'A' && domain[i] <= 'Z' ? domain[i] + 32 :
					domain[i]);
		out[i] = '\0';
		ret = 0;
	}
	free(copy);
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

/* One signing handle per key of domain; false when it has none. */
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
	for (size_t i = 0; i < count && s->sig_count < DKIM_MAX_KEYS; i++) {
		struct signature *sig = &s->sigs[s->sig_count];
		char *path = xasprintf("%s/%s.pem", dir, keys[i].selector);
		DKIM_STAT st = DKIM_STAT_OK;
		if (dkim_key_read(path, &sig->pem, NULL, &error) < 0) {
			log_error("event=dkim-key-unreadable domain=%s selector=%s error=\"%s\"",
				  domain, keys[i].selector, error);
			free(path);
			continue;
		}
		free(path);
		sig->dkim = dkim_sign(dkim_lib, (const u_char *)"postern", NULL,
				      (dkim_sigkey_t)sig->pem, (const u_char *)keys[i].selector,
				      (const u_char *)domain, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED,
				      keys[i].alg == DKIM_ALG_ED25519 ? DKIM_SIGN_ED25519SHA256 :
				      DKIM_SIGN_RSASHA256, -1, &st);
		if (sig->dkim == NULL) {
			log_error("event=dkim-sign-failed domain=%s selector=%s error=\"%s\"", domain,
				  keys[i].selector, dkim_getresultstr(st));
			explicit_bzero(sig->pem, strlen(sig->pem));
			free(sig->pem);
			sig->pem = NULL;
			continue;
		}
		snprintf(sig->selector, sizeof(sig->selector), "%s", keys[i].selector);
		s->sig_count++;
	}
	free(dir);
	free(keys);
	return s->sig_count > 0;
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
	pthread_once(&dkim_lib_once, dkim_lib_init);
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
	/* the held fields go to every handle, without their last line end */
	for (size_t k = 0; k < s->sig_count && !s->failed; k++) {
		size_t start = 0;
		for (size_t i = 0; i < s->field_count && !s->failed; i++) {
			size_t len = s->ends[i] - start;
			const char *f = s->header.data + start;
			if (len >= 2 && f[len - 2] == '\r' && f[len - 1] == '\n')
				len -= 2;
			else if (len >= 1 && f[len - 1] == '\n')
				len -= 1;
			s->failed = dkim_header(s->sigs[k].dkim, (u_char *)f, len) != DKIM_STAT_OK;
			start = s->ends[i];
		}
		if (!s->failed)
			s->failed = dkim_eoh(s->sigs[k].dkim) != DKIM_STAT_OK;
	}
	buf_free(&s->header);
	free(s->ends);
	s->ends = NULL;
}

static void signer_body(void *state, const char *data, size_t len)
{
	struct signer *s = state;
	for (size_t k = 0; k < s->sig_count && !s->failed; k++)
		s->failed = dkim_body(s->sigs[k].dkim, (u_char *)data, len) != DKIM_STAT_OK;
	if (len >= 2) {
		memcpy(s->body_tail, data + len - 2, 2);
	} else if (len == 1) {
		s->body_tail[0] = s->body_tail[1];
		s->body_tail[1] = data[0];
	}
	s->body_len += len;
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
	size_t start = 0;
	for (size_t i = 0; i < len;) {
		const char *lf = memchr(fields + i, '\n', len - i);
		size_t next = lf != NULL ? (size_t)(lf - fields) + 1 : len;
		if (next < len && (fields[next] == ' ' || fields[next] == '\t')) {
			i = next;
			continue;
		}
		const char *f = fields + start;
		size_t flen = next - start;
		if (is_field(f, flen, "Authentication-Results")) {
			const char *colon = memchr(f, ':', flen);
			if (field_proves(colon + 1, flen - (size_t)(colon + 1 - f), hostname, domain))
				return true;
		}
		start = i = next;
	}
	return false;
}

/* ---- the end ---- */

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
	if (s->sig_count == 0 || v->action != INTAKE_ACCEPT || !signer_allowed(s, info, v))
		return;
	if (s->failed) {
		signer_note(s, "event=dkim-sign-failed domain=%s error=\"hashing the message failed\"",
			    s->domain);
		return;
	}
	/* a body without its last line end leaves with one (SMTP ends DATA
	 * with CRLF "." CRLF); libopendkim wants it */
	if (s->body_len > 0 && memcmp(s->body_tail, "\r\n", 2) != 0)
		signer_body(s, "\r\n", 2);
	struct buf fields = BUF_INIT;
	struct buf selectors = BUF_INIT;
	for (size_t k = 0; k < s->sig_count && !s->failed; k++) {
		struct signature *sig = &s->sigs[k];
		_Bool testkey = 0;
		u_char *hdr = NULL;
		size_t len = 0;
		DKIM_STAT st = dkim_eom(sig->dkim, &testkey);
		if (st == DKIM_STAT_OK)
			st = dkim_getsighdr_d(sig->dkim, strlen(SIG_PREFIX), &hdr, &len);
		if (st != DKIM_STAT_OK) {
			const char *why = dkim_geterror(sig->dkim);
			signer_note(s, "event=dkim-sign-failed domain=%s selector=%s error=\"%s\"",
				    s->domain, sig->selector, why != NULL ? why : dkim_getresultstr(st));
			s->failed = true;
			break;
		}
		/* libopendkim folds with bare LF: the message is CRLF */
		buf_append_str(&fields, SIG_PREFIX);
		for (size_t i = 0; i < len; i++) {
			if (hdr[i] == '\n' && (i == 0 || hdr[i - 1] != '\r'))
				buf_append_char(&fields, '\r');
			buf_append_char(&fields, (char)hdr[i]);
		}
		buf_append_str(&fields, "\r\n");
		buf_printf(&selectors, "%s%s", k > 0 ? "," : "", sig->selector);
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
	for (size_t k = 0; k < s->sig_count; k++) {
		dkim_free(s->sigs[k].dkim);
		explicit_bzero(s->sigs[k].pem, strlen(s->sigs[k].pem));
		free(s->sigs[k].pem);
	}
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
};

/* DKIM's "relaxed" canonicalisation (RFC 6376 3.4.2 and 3.4.4), written
 * once here and checked against two independent verifiers (dkimpy and
 * OpenDKIM, tests/integration/test_dkim.py). The body is canonicalised as
 * it streams, byte by byte, into a SHA-256: no line is held, so a piece
 * may end anywhere. */
#include "dkim/dkim-private.h"

#include <string.h>

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

void dkim_canon_header(const char *field, size_t len, struct buf *out)
{
	const char *colon = memchr(field, ':', len);
	if (colon == NULL)
		return;
	/* the name lowercased, without the blanks before the colon */
	size_t nlen = (size_t)(colon - field);
	while (nlen > 0 && is_wsp(field[nlen - 1]))
		nlen--;
	for (size_t i = 0; i < nlen; i++) {
		char c = field[i];
		buf_append_char(out, c >= 'A' && c <= 'Z' ? (char)(c + 32) : c);
	}
	buf_append_char(out, ':');
	/* the value unfolded, blank runs as one space, none at either end */
	bool started = false, wsp = false;
	for (const char *p = colon + 1; p < field + len; p++) {
		char c = *p;
		if (c == '\r' || c == '\n' || is_wsp(c)) {
			wsp = started;
			continue;
		}
		if (wsp)
			buf_append_char(out, ' ');
		wsp = false;
		started = true;
		buf_append_char(out, c);
	}
	buf_append_str(out, "\r\n");
}

/* ---- the body ---- */

static void out_flush(struct dkim_body_canon *c)
{
	if (c->out_len > 0 && EVP_DigestUpdate(c->md, c->out, c->out_len) != 1)
		c->failed = true;
	c->total += c->out_len;
	c->out_len = 0;
}

static void out_byte(struct dkim_body_canon *c, char b)
{
	if (c->out_len == sizeof(c->out))
		out_flush(c);
	c->out[c->out_len++] = (unsigned char)b;
}

static void line_end(struct dkim_body_canon *c)
{
	if (c->line_started) {
		out_byte(c, '\r');
		out_byte(c, '\n');
	} else {
		c->empty_lines++;   /* empty (or blanks only): held until text follows */
	}
	c->line_started = false;
	c->pending_wsp = false;
}

static void content_byte(struct dkim_body_canon *c, char b)
{
	if (!c->line_started) {
		for (; c->empty_lines > 0; c->empty_lines--) {
			out_byte(c, '\r');
			out_byte(c, '\n');
		}
		c->line_started = true;
	}
	if (c->pending_wsp)
		out_byte(c, ' ');
	c->pending_wsp = false;
	out_byte(c, b);
}

static void body_byte(struct dkim_body_canon *c, char b)
{
	if (b == '\n') {
		/* CRLF ends a line; so does a bare LF (the relay sends it as
		 * CRLF) */
		c->cr = false;
		line_end(c);
		return;
	}
	if (c->cr) {
		c->cr = false;
		content_byte(c, '\r');   /* a CR not before LF is text */
	}
	if (b == '\r')
		c->cr = true;
	else if (is_wsp(b))
		c->pending_wsp = true;
	else
		content_byte(c, b);
}

int dkim_body_canon_init(struct dkim_body_canon *c)
{
	memset(c, 0, sizeof(*c));
	c->md = EVP_MD_CTX_new();
	if (c->md == NULL || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c->md);
		c->md = NULL;
		return -1;
	}
	return 0;
}

void dkim_body_canon_update(struct dkim_body_canon *c, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		body_byte(c, data[i]);
}

int dkim_body_canon_final(struct dkim_body_canon *c, unsigned char *digest, size_t size)
{
	unsigned int len = 0;
	if (c->cr) {
		c->cr = false;
		content_byte(c, '\r');
	}
	/* a last line without its line end gets one; the empty lines at the
	 * end are dropped (an empty body hashes as nothing at all) */
	if (c->line_started)
		line_end(c);
	out_flush(c);
	if (c->failed || size < 32 || EVP_DigestFinal_ex(c->md, digest, &len) != 1 || len != 32)
		return -1;
	return 0;
}

void dkim_body_canon_free(struct dkim_body_canon *c)
{
	EVP_MD_CTX_free(c->md);
	c->md = NULL;
}

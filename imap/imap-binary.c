/* BINARY (RFC 3516): a part's Content-Transfer-Encoding and a decoder fed
 * a chunk at a time, so that FETCH BINARY[n] and BINARY.SIZE[n] stream a
 * part of any size through a fixed buffer (once to measure, once to send).
 * It decodes as the store's whole-part decoder does (lenient base64,
 * quoted-printable with soft breaks), and turns the line ends of unencoded
 * and quoted-printable text into CRLF as BODY[n] does. */
#include "imap/imap-private.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

enum imap_cte imap_binary_cte(const char *header, size_t len)
{
	static const char *const names[] = { "Content-Transfer-Encoding" };
	struct buf field = BUF_INIT;
	store_header_filter(header, len, names, 1, false, &field);
	/* "Content-Transfer-Encoding: value\r\n\r\n", maybe folded */
	const char *p = memchr(field.data != NULL ? field.data : "", ':', field.len);
	enum imap_cte cte = IMAP_CTE_IDENTITY;
	if (p != NULL) {
		const char *end = field.data + field.len;
		p++;
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
			p++;
		const char *v = p;
		while (p < end && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n' &&
		       *p != ';' && *p != '(')
			p++;
		size_t n = (size_t)(p - v);
		char *value = xstrndup(v, n);
		if (n == 0 || ascii_strcasecmp(value, "7bit") == 0 ||
		    ascii_strcasecmp(value, "8bit") == 0)
			cte = IMAP_CTE_IDENTITY;
		else if (ascii_strcasecmp(value, "binary") == 0)
			cte = IMAP_CTE_BINARY;
		else if (ascii_strcasecmp(value, "base64") == 0)
			cte = IMAP_CTE_BASE64;
		else if (ascii_strcasecmp(value, "quoted-printable") == 0)
			cte = IMAP_CTE_QP;
		else
			cte = IMAP_CTE_UNKNOWN;
		free(value);
	}
	buf_free(&field);
	return cte;
}

void imap_decoder_init(struct imap_decoder *d, enum imap_cte cte)
{
	d->cte = cte;
	d->acc = 0;
	d->bits = 0;
	d->prev_cr = false;
	d->carry_len = 0;
}

/* Text bytes: a bare LF becomes CRLF. */
static size_t put_text(struct imap_decoder *d, char c, char *out)
{
	size_t o = 0;
	if (c == '\n' && !d->prev_cr)
		out[o++] = '\r';
	out[o++] = c;
	d->prev_cr = c == '\r';
	return o;
}

static size_t decode_base64(struct imap_decoder *d, const char *in, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '=') {   /* padding ends a group */
			d->acc = 0;
			d->bits = 0;
			continue;
		}
		int v = store_base64_value(in[i]);
		if (v < 0)
			continue;
		d->acc = (d->acc << 6) | (unsigned int)v;
		d->bits += 6;
		if (d->bits >= 8) {
			d->bits -= 8;
			out[o++] = (char)((d->acc >> d->bits) & 0xff);
		}
	}
	return o;
}

/* Quoted-printable over w[0..n): an "=" whose meaning depends on bytes
 * not read yet is kept in the carry for the next call (unless last). */
static size_t decode_qp(struct imap_decoder *d, const char *w, size_t n, bool last, char *out)
{
	size_t o = 0, i = 0;
	while (i < n) {
		if (w[i] != '=') {
			o += put_text(d, w[i++], out + o);
			continue;
		}
		size_t j = i + 1;
		while (j < n && (w[j] == ' ' || w[j] == '\t'))
			j++;
		bool incomplete = j == n || (j + 1 == n && w[j] == '\r') || i + 2 >= n;
		if (incomplete && !last && n - i <= IMAP_DECODER_CARRY) {
			memcpy(d->carry, w + i, n - i);
			d->carry_len = n - i;
			return o;
		}
		if (j < n && w[j] == '\n') {          /* soft line break */
			i = j + 1;
			continue;
		}
		if (j + 1 < n && w[j] == '\r' && w[j + 1] == '\n') {
			i = j + 2;
			continue;
		}
		int high = i + 2 < n ? store_hex_value(w[i + 1]) : -1;
		int low = i + 2 < n ? store_hex_value(w[i + 2]) : -1;
		if (high >= 0 && low >= 0) {
			out[o++] = (char)(high * 16 + low);
			d->prev_cr = false;
			i += 3;
		} else {
			o += put_text(d, '=', out + o);
			i++;
		}
	}
	return o;
}

size_t imap_decoder_run(struct imap_decoder *d, const char *in, size_t len, bool last,
			char *out)
{
	size_t o = 0;
	switch (d->cte) {
	case IMAP_CTE_BASE64:
		return decode_base64(d, in, len, out);
	case IMAP_CTE_QP: {
		char work[IMAP_DECODER_CARRY + IMAP_DECODER_CHUNK];
		size_t n = d->carry_len;
		memcpy(work, d->carry, n);
		memcpy(work + n, in, len);
		d->carry_len = 0;
		return decode_qp(d, work, n + len, last, out);
	}
	case IMAP_CTE_IDENTITY:
		for (size_t i = 0; i < len; i++)
			o += put_text(d, in[i], out + o);
		return o;
	case IMAP_CTE_BINARY:
	case IMAP_CTE_UNKNOWN:
		break;
	}
	memcpy(out, in, len);
	return len;
}

/* Part bodies and header subsets for IMAP: transfer decoding (SEARCH
 * BODY/TEXT, FETCH BINARY) and HEADER.FIELDS filtering. */

#include "store/mime-private.h"
#include "store/store.h"

/* Quoted-printable (RFC 2045 6.7), leniently: a '=' that starts no valid
 * escape is kept; soft line breaks ("=" at a line end) are removed. */
static void qp_decode(const char *s, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '=') {
			buf_append_char(out, s[i]);
			continue;
		}
		size_t j = i + 1;
		while (j < len && (s[j] == ' ' || s[j] == '\t'))
			j++;
		if (j < len && s[j] == '\n') {
			i = j;
			continue;
		}
		if (j + 1 < len && s[j] == '\r' && s[j + 1] == '\n') {
			i = j + 1;
			continue;
		}
		int high = i + 2 < len ? store_hex_value(s[i + 1]) : -1;
		int low = i + 2 < len ? store_hex_value(s[i + 2]) : -1;
		if (high >= 0 && low >= 0) {
			buf_append_char(out, (char)(high * 16 + low));
			i += 2;
			continue;
		}
		buf_append_char(out, '=');
	}
}

char *mime_decode_body(const void *header, size_t header_len, const void *body,
		       size_t body_len, bool to_utf8, size_t *len_r)
{
	struct mime_headers h;
	struct buf raw = BUF_INIT, out = BUF_INIT;
	mime_headers_parse(header, header_len, &h);

	const char *cte = h.value[MIME_F_CONTENT_TRANSFER_ENCODING];
	if (cte != NULL && ascii_has_prefix_ci(cte, "base64"))
		mime_base64_decode(body, body_len, &raw);
	else if (cte != NULL && ascii_has_prefix_ci(cte, "quoted-printable"))
		qp_decode(body, body_len, &raw);
	else
		buf_append(&raw, body, body_len);

	char *type, *charset;
	mime_content_type_get(h.value[MIME_F_CONTENT_TYPE], &type, &charset);
	if (to_utf8 && ascii_strcasecmp(type, "text") == 0 &&
	    ascii_strcasecmp(charset, "us-ascii") != 0) {
		mime_charset_to_utf8(&out, charset, buf_str(&raw), raw.len);
		buf_free(&raw);
	} else {
		out = raw;
	}
	free(type);
	free(charset);
	mime_headers_free(&h);
	buf_append(&out, "", 0);
	*len_r = out.len;
	return out.data;
}

static bool name_listed(const char *name, size_t len, const char *const *names,
			size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (strlen(names[i]) == len && ascii_strncasecmp(names[i], name, len) == 0)
			return true;
	}
	return false;
}

/* Appends s with every line end as CRLF. */
static void append_crlf(struct buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			buf_append_char(out, '\r');
		buf_append_char(out, s[i]);
	}
}

void mime_header_filter(const void *header, size_t len, const char *const *names,
			size_t name_count, bool exclude, struct buf *out)
{
	const char *data = header;
	struct mail_field field;
	size_t pos = 0;
	while (mail_header_next(data, len, &pos, &field)) {
		/* the blank line that ends the header is not a field */
		if (field.start[0] == '\n' ||
		    (field.start[0] == '\r' && field.len > 1 && field.start[1] == '\n'))
			break;
		if (field.name_len == 0 ||
		    name_listed(field.start, field.name_len, names, name_count) == exclude)
			continue;
		append_crlf(out, field.start, field.len);
		if (field.start[field.len - 1] != '\n')
			buf_append_str(out, "\r\n");
	}
	buf_append_str(out, "\r\n");
}

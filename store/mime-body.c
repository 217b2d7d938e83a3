/* Part bodies and header subsets for IMAP: transfer decoding (SEARCH
 * BODY/TEXT, FETCH BINARY) and HEADER.FIELDS filtering. */

#include "store/mime-private.h"

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

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
		if (i + 2 < len && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
			buf_append_char(out, (char)(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2])));
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
	size_t i = 0;
	while (i < len) {
		size_t start = i;
		const char *nl;
		do {
			nl = memchr(data + i, '\n', len - i);
			i = nl == NULL ? len : (size_t)(nl - data) + 1;
		} while (i < len && (data[i] == ' ' || data[i] == '\t'));
		/* the blank line that ends the header is not a field */
		if (data[start] == '\n' || (data[start] == '\r' && start + 1 < len &&
					    data[start + 1] == '\n'))
			break;
		const char *colon = memchr(data + start, ':', i - start);
		if (colon == NULL)
			continue;
		size_t name_len = (size_t)(colon - (data + start));
		while (name_len > 0 && (data[start + name_len - 1] == ' ' ||
					data[start + name_len - 1] == '\t'))
			name_len--;
		if (name_listed(data + start, name_len, names, name_count) == exclude)
			continue;
		append_crlf(out, data + start, i - start);
		if (nl == NULL && i == len)
			buf_append_str(out, "\r\n");
	}
	buf_append_str(out, "\r\n");
}

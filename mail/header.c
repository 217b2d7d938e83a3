/* Header fields (RFC 5322 2.2): walking a header block field by field,
 * matching names, unfolding values, and writing folded fields. */

#include "mail/mail.h"

#include <string.h>

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

bool mail_header_next(const char *data, size_t len, size_t *pos, struct mail_field *field)
{
	size_t i = *pos, start = i;
	if (i >= len)
		return false;
	do {
		const char *nl = memchr(data + i, '\n', len - i);
		i = nl == NULL ? len : (size_t)(nl - data) + 1;
	} while (i < len && is_wsp(data[i]));
	*pos = i;

	field->start = data + start;
	field->len = i - start;
	field->name_len = 0;
	field->value = NULL;
	const char *colon = memchr(data + start, ':', i - start);
	if (colon == NULL || is_wsp(data[start]))
		return true;
	size_t name_len = (size_t)(colon - (data + start));
	while (name_len > 0 && is_wsp(data[start + name_len - 1]))
		name_len--;
	field->name_len = name_len;
	field->value = colon + 1;
	return true;
}

bool mail_field_is(const char *field, size_t len, const char *name)
{
	size_t n = strlen(name);
	if (len <= n || ascii_strncasecmp(field, name, n) != 0)
		return false;
	size_t i = n;
	while (i < len && is_wsp(field[i]))
		i++;
	return i < len && field[i] == ':';
}

char *mail_unfold(const char *value, size_t len)
{
	struct buf out = BUF_INIT;
	for (size_t i = 0; i < len; i++) {
		if (value[i] == '\r' || value[i] == '\n')
			continue;
		if (value[i] == '\0')   /* as Dovecot: U+FFFD, not the end of the value */
			buf_append_str(&out, "\xef\xbf\xbd");
		else
			buf_append_char(&out, value[i]);
	}
	size_t start = 0, end = out.len;
	while (start < end && is_wsp(out.data[start]))
		start++;
	char *unfolded = xstrndup(out.len == 0 ? "" : out.data + start, end - start);
	buf_free(&out);
	return unfolded;
}

#define FOLD_WIDTH 78

void mail_field_append(struct buf *out, const char *name, const char *value)
{
	size_t col = strlen(name) + 2;
	buf_append_str(out, name);
	buf_append_str(out, ": ");
	const char *p = value;
	while (*p != '\0') {
		/* the next word with the white space in front of it */
		const char *w = p;
		while (is_wsp(*w))
			w++;
		const char *end = w;
		while (*end != '\0' && !is_wsp(*end))
			end++;
		size_t space = (size_t)(w - p), word = (size_t)(end - w);
		if (space > 0 && col + space + word > FOLD_WIDTH && col > 1) {
			buf_append_str(out, "\r\n");   /* the white space starts the next line */
			col = 0;
		}
		buf_append(out, p, (size_t)(end - p));
		col += (size_t)(end - p);
		p = end;
	}
	buf_append_str(out, "\r\n");
}

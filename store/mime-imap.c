/* IMAP string output for ENVELOPE and BODYSTRUCTURE. */

#include "store/mime-private.h"

static bool needs_literal(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n' || c == '\0' || c >= 0x80)
			return true;
	}
	return false;
}

void mime_imap_append_string(struct buf *out, const char *s, size_t len)
{
	if (needs_literal(s, len)) {
		buf_printf(out, "{%zu}\r\n", len);
		buf_append(out, s, len);
		return;
	}
	buf_append_char(out, '"');
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_append_char(out, '\\');
		buf_append_char(out, s[i]);
	}
	buf_append_char(out, '"');
}

void mime_imap_append_nstring(struct buf *out, const char *s)
{
	if (s == NULL)
		buf_append_str(out, "NIL");
	else
		mime_imap_append_string(out, s, strlen(s));
}

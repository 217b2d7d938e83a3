/* IMAP strings on the wire (RFC 3501 4.3, RFC 9051 4.3): a quoted string
 * with \ and " escaped, or a literal when the text holds CR, LF, NUL or
 * 8-bit bytes, or is longer than quoting is worth (Dovecot's rules). */

#include "mail/mail.h"

#include <string.h>

#define MAIL_IMAP_MAX_QUOTED 1024

void mail_imap_string(struct buf *out, const char *s, size_t len)
{
	bool quoted = len <= MAIL_IMAP_MAX_QUOTED;
	for (size_t i = 0; quoted && i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\0' || c == '\r' || c == '\n' || c >= 0x80)
			quoted = false;
	}
	if (!quoted) {
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

void mail_imap_nstring(struct buf *out, const char *s)
{
	if (s == NULL)
		buf_append_str(out, "NIL");
	else
		mail_imap_string(out, s, strlen(s));
}

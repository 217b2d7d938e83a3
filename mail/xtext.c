/* xtext (RFC 3461 4): the encoding of ENVID and ORCPT values. */

#include "mail/mail.h"

int mail_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

void mail_xtext_encode(struct buf *out, const char *text)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=') {
			buf_append_char(out, '+');
			buf_append_char(out, hex[*p >> 4]);
			buf_append_char(out, hex[*p & 15]);
		} else {
			buf_append_char(out, (char)*p);
		}
	}
}

int mail_xtext_decode(const char *text, struct buf *out)
{
	for (const char *p = text; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '+') {
			int hi = mail_hex_value(p[1]), lo = hi < 0 ? -1 : mail_hex_value(p[2]);
			if (lo < 0 || (hi == 0 && lo == 0))
				return -1;
			buf_append_char(out, (char)(hi * 16 + lo));
			p += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return -1;
		} else {
			buf_append_char(out, (char)c);
		}
	}
	return 0;
}

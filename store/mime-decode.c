/* RFC 2047 encoded words into UTF-8, for SEARCH and SORT. */

#include "store/mime-private.h"
#include "store/store.h"

#include <errno.h>
#include <iconv.h>
#include <string.h>

int store_hex_value(char c)
{
	return mail_hex_value(c);
}

int store_base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static void decode_q(const char *s, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '_') {
			buf_append_char(out, ' ');
		} else if (s[i] == '=' && i + 2 < len &&
			   store_hex_value(s[i + 1]) >= 0 && store_hex_value(s[i + 2]) >= 0) {
			buf_append_char(out, (char)(store_hex_value(s[i + 1]) * 16 +
						    store_hex_value(s[i + 2])));
			i += 2;
		} else {
			buf_append_char(out, s[i]);
		}
	}
}

/* Lenient base64: bytes outside the alphabet are skipped, and padding
 * ends a group (so concatenated encodings decode too). */
void mime_base64_decode(const char *s, size_t len, struct buf *out)
{
	unsigned int acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '=') {
			acc = 0;
			bits = 0;
			continue;
		}
		int v = store_base64_value(s[i]);
		if (v < 0)
			continue;
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf_append_char(out, (char)((acc >> bits) & 0xff));
		}
	}
}

/* Charset names mail uses that iconv does not know, or knows as a
 * smaller set than what senders actually put in them. */
static const char *charset_alias(const char *charset)
{
	static const struct { const char *name, *iconv_name; } aliases[] = {
		{ "ks_c_5601-1987", "CP949" },
		{ "gb2312", "GB18030" },
		{ "gbk", "GB18030" },
		{ "iso-8859-8-i", "ISO-8859-8" },
		{ "unicode-1-1-utf-7", "UTF-7" },
		{ "x-sjis", "SHIFT_JIS" },
	};
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
		if (ascii_strcasecmp(charset, aliases[i].name) == 0)
			return aliases[i].iconv_name;
	}
	return charset;
}

/* Appends bytes in charset to out as UTF-8; unknown charsets are copied
 * as they are, bytes that do not convert become U+FFFD. */
void mime_charset_to_utf8(struct buf *out, const char *charset,
			  const char *data, size_t len)
{
	if (len == 0)
		return;
	/* UTF-8 goes through iconv too: that validates it */
	iconv_t cd = iconv_open("UTF-8", charset_alias(charset));
	if (cd == (iconv_t)-1) {
		buf_append(out, data, len);
		return;
	}
	char *in = (char *)data;
	size_t in_left = len;
	while (in_left > 0) {
		char block[256];
		char *o = block;
		size_t o_left = sizeof(block);
		size_t r = iconv(cd, &in, &in_left, &o, &o_left);
		buf_append(out, block, sizeof(block) - o_left);
		if (r == (size_t)-1 && errno != E2BIG) {
			/* an invalid or truncated sequence: skip one byte */
			buf_append_str(out, "\xef\xbf\xbd");
			in++;
			in_left--;
			iconv(cd, NULL, NULL, NULL, NULL);
		}
	}
	char block[64];
	char *o = block;
	size_t o_left = sizeof(block);
	iconv(cd, NULL, NULL, &o, &o_left);
	buf_append(out, block, sizeof(block) - o_left);
	iconv_close(cd);
}

/* RFC 2047 allows 75 characters; longer ones are accepted up to this,
 * which also bounds the work spent on a "=?" that never ends. */
#define ENCODED_WORD_MAX 512

struct encoded_word {
	char charset[64];
	char encoding;
	const char *text;
	size_t text_len;
	size_t total_len;   /* from "=?" to "?=" inclusive */
};

/* Parses "=?charset?E?text?=" at s; false when it is not one. */
static bool encoded_word_parse(const char *s, size_t len, struct encoded_word *w)
{
	if (len < 8 || s[0] != '=' || s[1] != '?')
		return false;
	size_t i = 2;
	while (i < len && i < 2 + sizeof(w->charset) && s[i] != '?' &&
	       s[i] != ' ' && s[i] != '\t')
		i++;
	size_t cs_len = i - 2;
	if (i + 2 >= len || s[i] != '?' || cs_len == 0 || cs_len >= sizeof(w->charset))
		return false;
	memcpy(w->charset, s + 2, cs_len);
	w->charset[cs_len] = '\0';
	char *lang = strchr(w->charset, '*');  /* RFC 2231 language suffix */
	if (lang != NULL)
		*lang = '\0';
	char enc = s[i + 1];
	if ((enc != 'B' && enc != 'b' && enc != 'Q' && enc != 'q') || s[i + 2] != '?')
		return false;
	w->encoding = enc == 'b' ? 'B' : enc == 'q' ? 'Q' : enc;
	size_t start = i + 3;
	if (len > ENCODED_WORD_MAX)
		len = ENCODED_WORD_MAX;
	for (size_t j = start; j + 1 < len; j++) {
		if (s[j] == ' ' || s[j] == '\t')
			return false;
		if (s[j] == '?' && s[j + 1] == '=') {
			w->text = s + start;
			w->text_len = j - start;
			w->total_len = j + 2;
			return true;
		}
	}
	return false;
}

char *mime_decode_header(const char *value, size_t len)
{
	struct buf out = BUF_INIT;
	struct buf pending = BUF_INIT;   /* decoded bytes of adjacent words */
	char pending_charset[64] = "";
	size_t i = 0;
	buf_append(&out, "", 0);
	while (i < len) {
		struct encoded_word w;
		if (encoded_word_parse(value + i, len - i, &w)) {
			if (pending.len > 0 &&
			    ascii_strcasecmp(pending_charset, w.charset) != 0) {
				mime_charset_to_utf8(&out, pending_charset, pending.data, pending.len);
				buf_reset(&pending);
			}
			memcpy(pending_charset, w.charset, sizeof(pending_charset));
			if (w.encoding == 'B')
				mime_base64_decode(w.text, w.text_len, &pending);
			else
				decode_q(w.text, w.text_len, &pending);
			i += w.total_len;
			/* white space between two encoded words is dropped */
			size_t j = i;
			while (j < len && (value[j] == ' ' || value[j] == '\t' ||
					   value[j] == '\r' || value[j] == '\n'))
				j++;
			if (j > i && encoded_word_parse(value + j, len - j, &w))
				i = j;
			continue;
		}
		if (pending.len > 0) {
			mime_charset_to_utf8(&out, pending_charset, pending.data, pending.len);
			buf_reset(&pending);
		}
		if (value[i] != '\r' && value[i] != '\n')
			buf_append_char(&out, value[i]);
		i++;
	}
	if (pending.len > 0)
		mime_charset_to_utf8(&out, pending_charset, pending.data, pending.len);
	buf_free(&pending);
	return out.data;
}

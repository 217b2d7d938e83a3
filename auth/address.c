/* RFC 5321 Mailbox syntax and the normal form used as database keys. */
#include "auth/auth.h"
#include "core/buf.h"

#include <idn2.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static bool is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	/* RFC 6531 (SMTPUTF8) adds UTF8-non-ascii to atext */
	if (c >= 0x80)
		return true;
	return strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL && c != '\0';
}

static bool dot_string_valid(const char *s, size_t len)
{
	bool atom_start = true;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (atom_start)
				return false;
			atom_start = true;
		} else if (is_atext((unsigned char)s[i])) {
			atom_start = false;
		} else {
			return false;
		}
	}
	return len > 0 && !atom_start;
}

/* Quoted-string: DQUOTE *(qtextSMTP / "\" %d32-126) DQUOTE. */
static bool quoted_string_valid(const char *s, size_t len)
{
	if (len < 2 || s[0] != '"' || s[len - 1] != '"')
		return false;
	for (size_t i = 1; i < len - 1; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\') {
			if (i + 1 >= len - 1)
				return false;
			c = (unsigned char)s[++i];
			if (c < 32 || c > 126)
				return false;
		} else if (c < 32 || c == '"' || c == 127) {
			return false;
		}
	}
	return true;
}

/* RFC 6531 allows UTF-8 in local parts: it must be well-formed (no
 * overlong forms, surrogates or code points past U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + n >= len)
			return false;   /* truncated sequence */
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += n + 1;
	}
	return true;
}

/* The local part ends at the last '@' outside a quoted string. */
static const char *find_at(const char *text)
{
	if (text[0] != '"')
		return strrchr(text, '@');
	for (size_t i = 1; text[i] != '\0'; i++) {
		if (text[i] == '\\' && text[i + 1] != '\0')
			i++;
		else if (text[i] == '"')
			return text[i + 1] == '@' ? text + i + 1 : NULL;
	}
	return NULL;
}

static bool ldh_label_valid(const char *label, size_t len)
{
	if (len == 0 || len > 63 || label[0] == '-' || label[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = label[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

static bool has_non_ascii(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s >= 0x80)
			return true;
	}
	return false;
}

int auth_domain_normalise(const char *text, char *dst, const char **error_r)
{
	char lower[AUTH_DOMAIN_MAX * 4 + 1];
	size_t len = strlen(text);

	if (len == 0) {
		*error_r = "empty domain";
		return -1;
	}
	if (text[0] == '[') {
		*error_r = "address literals are not supported";
		return -1;
	}
	if (len >= sizeof(lower)) {
		*error_r = "domain too long";
		return -1;
	}
	for (size_t i = 0; i <= len; i++) {
		char c = text[i];
		lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	if (has_non_ascii(lower)) {
		char *ascii = NULL;
		int rc = idn2_to_ascii_8z(lower, &ascii,
					  IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
		if (rc != IDN2_OK) {
			*error_r = "invalid internationalised domain name";
			return -1;
		}
		len = strlen(ascii);
		if (len > AUTH_DOMAIN_MAX) {
			idn2_free(ascii);
			*error_r = "domain too long";
			return -1;
		}
		memcpy(lower, ascii, len + 1);
		idn2_free(ascii);
	}
	if (len > AUTH_DOMAIN_MAX) {
		*error_r = "domain too long";
		return -1;
	}
	for (const char *label = lower;;) {
		const char *dot = strchr(label, '.');
		size_t label_len = dot != NULL ? (size_t)(dot - label) : strlen(label);
		if (!ldh_label_valid(label, label_len)) {
			*error_r = "invalid domain name";
			return -1;
		}
		if (dot == NULL)
			break;
		label = dot + 1;
	}
	memcpy(dst, lower, len + 1);
	return 0;
}

int auth_address_parse(const char *text, struct auth_address *addr_r,
		       const char **error_r)
{
	const char *at = find_at(text);
	if (at == NULL) {
		*error_r = "not an address (local@domain expected)";
		return -1;
	}
	size_t local_len = (size_t)(at - text);
	if (local_len == 0) {
		*error_r = "empty local part";
		return -1;
	}
	if (local_len > AUTH_LOCAL_MAX) {
		*error_r = "local part longer than 64 octets";
		return -1;
	}
	if ((!dot_string_valid(text, local_len) && !quoted_string_valid(text, local_len)) ||
	    !utf8_valid((const unsigned char *)text, local_len)) {
		*error_r = "invalid local part";
		return -1;
	}
	memset(addr_r, 0, sizeof(*addr_r));
	if (auth_domain_normalise(at + 1, addr_r->domain, error_r) < 0)
		return -1;
	if (local_len + 1 + strlen(addr_r->domain) > AUTH_ADDRESS_MAX) {
		*error_r = "address longer than 254 octets";
		return -1;
	}
	memcpy(addr_r->local, text, local_len);
	snprintf(addr_r->address, sizeof(addr_r->address), "%s@%s",
		 addr_r->local, addr_r->domain);
	for (size_t i = 0; addr_r->address[i] != '\0'; i++) {
		char c = addr_r->address[i];
		addr_r->key[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	return 0;
}

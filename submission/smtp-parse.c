#include "submission/smtp-parse.h"
#include "core/core.h"
#include "mail/mail.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool is_atext(unsigned char c)
{
	return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
		} else {
			return false;
		}
		for (size_t k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return false;
		}
		i += n + 1;
	}
	return true;
}

static bool local_part_valid(const char *s, size_t len, bool utf8_ok)
{
	if (len == 0)
		return false;
	if (s[0] == '"') {
		/* Quoted-string: qtextSMTP or quoted-pairSMTP */
		if (len < 2 || s[len - 1] != '"')
			return false;
		for (size_t i = 1; i < len - 1; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == '\\') {
				if (++i >= len - 1)
					return false;
				c = (unsigned char)s[i];
				if (c < 32 || c > 126)
					return false;
			} else if (c == '"' || c < 32 || c == 127 || (c >= 0x80 && !utf8_ok)) {
				return false;
			}
		}
		return true;
	}
	/* Dot-string: atoms separated by single dots */
	bool prev_dot = true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (prev_dot)
				return false;
			prev_dot = true;
			continue;
		}
		if (!is_atext(c) && !(c >= 0x80 && utf8_ok))
			return false;
		prev_dot = false;
	}
	return !prev_dot;
}

static bool domain_valid(const char *s, size_t len, bool utf8_ok)
{
	if (len == 0 || len > SMTP_MAX_DOMAIN)
		return false;
	if (s[0] == '[') {
		/* address literal: checked loosely, the content is for the log */
		if (s[len - 1] != ']' || len < 3)
			return false;
		for (size_t i = 1; i < len - 1; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c <= 32 || c >= 127 || c == '[' || c == ']' || c == '\\')
				return false;
		}
		return true;
	}
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (isalnum(c) || (c >= 0x80 && utf8_ok) || (c == '-' && label > 0)) {
			if (++label > 63)
				return false;
			continue;
		}
		return false;
	}
	return label > 0 && s[len - 1] != '-';
}

bool smtp_mailbox_valid(const char *mailbox, bool utf8_ok, bool *utf8_r)
{
	size_t len = strlen(mailbox);
	const char *at = NULL;
	/* the last @ outside a quoted local part */
	if (mailbox[0] == '"') {
		const char *q = mailbox + 1;
		while (*q != '\0' && *q != '"') {
			if (*q == '\\' && q[1] != '\0')
				q++;
			q++;
		}
		if (*q == '"')
			at = q[1] == '@' ? q + 1 : NULL;
	} else {
		at = strrchr(mailbox, '@');
	}
	if (at == NULL)
		return false;
	size_t local_len = (size_t)(at - mailbox);
	bool utf8 = false;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)mailbox[i] >= 0x80)
			utf8 = true;
	}
	if (utf8 && (!utf8_ok || !utf8_valid((const unsigned char *)mailbox, len)))
		return false;
	if (local_len > SMTP_MAX_LOCALPART || !local_part_valid(mailbox, local_len, utf8_ok) ||
	    !domain_valid(at + 1, len - local_len - 1, utf8_ok))
		return false;
	if (utf8_r != NULL)
		*utf8_r = utf8;
	return true;
}

char *smtp_xtext_decode(const char *text, struct pool *pool)
{
	struct buf out = BUF_INIT;
	char *decoded = NULL;
	if (mail_xtext_decode(text, &out) == 0)
		decoded = pool_strdup(pool, buf_str(&out));
	buf_free(&out);
	return decoded;
}

/* Parses "<...>" at *p; leaves *p after '>'. */
static int parse_path(const char **pp, bool is_mail, bool utf8_ok, struct pool *pool,
		      struct smtp_path *path, const char **reply_r)
{
	const char *bad = is_mail ? "501 5.1.7 Bad sender address syntax" :
				    "501 5.1.3 Bad recipient address syntax";
	const char *p = *pp;
	if (*p == ' ')  /* "MAIL FROM: <a@b>" is common enough to accept */
		p++;
	if (*p != '<') {
		*reply_r = bad;
		return -1;
	}
	const char *start = p + 1;
	const char *end = start;
	bool in_quote = false;
	while (*end != '\0' && (in_quote || *end != '>')) {
		if (*end == '\\' && in_quote && end[1] != '\0')
			end++;
		else if (*end == '"')
			in_quote = !in_quote;
		end++;
	}
	if (*end != '>') {
		*reply_r = bad;
		return -1;
	}
	size_t len = (size_t)(end - start);
	if (end[1] != '\0' && end[1] != ' ') {   /* parameters follow a space */
		*reply_r = bad;
		return -1;
	}
	if (len > SMTP_MAX_PATH) {
		*reply_r = is_mail ? "501 5.1.7 Sender address too long" :
				     "501 5.1.3 Recipient address too long";
		return -1;
	}
	*pp = end + 1;
	memset(path, 0, sizeof(*path));
	if (len == 0) {
		if (!is_mail) {
			*reply_r = bad;
			return -1;
		}
		path->address = pool_strdup(pool, "");
		return 0;
	}
	/* A-d-l (source route): obsolete, ignored (RFC 5321 4.1.2, C.) */
	if (start[0] == '@') {
		const char *colon = memchr(start, ':', len);
		if (colon == NULL) {
			*reply_r = bad;
			return -1;
		}
		len -= (size_t)(colon + 1 - start);
		start = colon + 1;
	}
	char *mailbox = pool_strndup(pool, start, len);
	if (!is_mail && ascii_strcasecmp(mailbox, "postmaster") == 0) {
		path->address = mailbox;
		path->postmaster = true;
		return 0;
	}
	bool utf8 = false;
	if (!smtp_mailbox_valid(mailbox, true, &utf8)) {
		*reply_r = bad;
		return -1;
	}
	if (utf8 && !utf8_ok) {
		*reply_r = "553 5.6.7 Non-ASCII address needs SMTPUTF8";
		return -1;
	}
	path->address = mailbox;
	path->utf8 = utf8;
	return 0;
}

/* Splits the next "KEYWORD[=VALUE]"; returns false at the end. */
static bool next_param(const char **pp, struct pool *pool, char **key_r, char **value_r,
		       const char **reply_r)
{
	const char *p = *pp;
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return false;
	const char *start = p;
	while (*p != '\0' && *p != ' ')
		p++;
	*pp = p;
	const char *eq = memchr(start, '=', (size_t)(p - start));
	size_t klen = eq != NULL ? (size_t)(eq - start) : (size_t)(p - start);
	*key_r = pool_strndup(pool, start, klen);
	*value_r = eq != NULL ? pool_strndup(pool, eq + 1, (size_t)(p - eq - 1)) : NULL;
	bool ok = klen > 0 && isalnum((unsigned char)start[0]);
	for (size_t i = 0; ok && i < klen; i++)
		ok = isalnum((unsigned char)start[i]) || start[i] == '-';
	for (const char *v = *value_r; ok && v != NULL && *v != '\0'; v++)
		ok = (unsigned char)*v >= 33 && (unsigned char)*v <= 126 && *v != '=';
	if (!ok) {
		*reply_r = "501 5.5.4 Syntax error in parameters";
		*key_r = NULL;
	}
	return true;
}

int smtp_parse_mail(const char *args, struct pool *pool, struct smtp_path *path_r,
		    struct smtp_mail_params *params_r, const char **reply_r)
{
	memset(params_r, 0, sizeof(*params_r));
	if (args == NULL || !ascii_has_prefix_ci(args, "FROM:")) {
		*reply_r = "501 5.5.4 Syntax: MAIL FROM:<address>";
		return -1;
	}
	const char *p = args + 5;
	/* the path may hold UTF-8 only with SMTPUTF8, which comes after it:
	 * accept it here and check once the parameters are known */
	if (parse_path(&p, true, true, pool, path_r, reply_r) < 0)
		return -1;
	char *key, *value;
	while (next_param(&p, pool, &key, &value, reply_r)) {
		if (key == NULL)
			return -1;
		if (ascii_strcasecmp(key, "SIZE") == 0) {
			char *end;
			errno = 0;
			if (params_r->has_size || value == NULL || !isdigit((unsigned char)value[0])) {
				*reply_r = "501 5.5.4 Bad SIZE parameter";
				return -1;
			}
			unsigned long long v = strtoull(value, &end, 10);
			if (*end != '\0' || errno != 0 || strlen(value) > 20) {
				*reply_r = "501 5.5.4 Bad SIZE parameter";
				return -1;
			}
			params_r->has_size = true;
			params_r->size = v;
		} else if (ascii_strcasecmp(key, "BODY") == 0) {
			if (params_r->body != SMTP_BODY_UNSET || value == NULL) {
				*reply_r = "501 5.5.4 Bad BODY parameter";
				return -1;
			}
			if (ascii_strcasecmp(value, "7BIT") == 0)
				params_r->body = SMTP_BODY_7BIT;
			else if (ascii_strcasecmp(value, "8BITMIME") == 0)
				params_r->body = SMTP_BODY_8BITMIME;
			else if (ascii_strcasecmp(value, "BINARYMIME") == 0)
				params_r->body = SMTP_BODY_BINARYMIME;
			else {
				*reply_r = "501 5.5.4 Unsupported BODY type";
				return -1;
			}
		} else if (ascii_strcasecmp(key, "SMTPUTF8") == 0) {
			if (value != NULL || params_r->smtputf8) {
				*reply_r = "501 5.5.4 SMTPUTF8 takes no value";
				return -1;
			}
			params_r->smtputf8 = true;
		} else if (ascii_strcasecmp(key, "RET") == 0) {
			if (params_r->ret != SMTP_RET_UNSET || value == NULL) {
				*reply_r = "501 5.5.4 Bad RET parameter";
				return -1;
			}
			if (ascii_strcasecmp(value, "FULL") == 0)
				params_r->ret = SMTP_RET_FULL;
			else if (ascii_strcasecmp(value, "HDRS") == 0)
				params_r->ret = SMTP_RET_HDRS;
			else {
				*reply_r = "501 5.5.4 Bad RET parameter";
				return -1;
			}
		} else if (ascii_strcasecmp(key, "ENVID") == 0) {
			if (params_r->envid != NULL || value == NULL || strlen(value) > 100 ||
			    (params_r->envid = smtp_xtext_decode(value, pool)) == NULL) {
				*reply_r = "501 5.5.4 Bad ENVID parameter";
				return -1;
			}
		} else if (ascii_strcasecmp(key, "AUTH") == 0) {
			/* RFC 4954 5: accepted, never trusted */
			if (params_r->auth != NULL || value == NULL) {
				*reply_r = "501 5.5.4 Bad AUTH parameter";
				return -1;
			}
			params_r->auth = value;
		} else {
			*reply_r = "555 5.5.4 Unsupported MAIL parameter";
			return -1;
		}
	}
	if (path_r->utf8 && !params_r->smtputf8) {
		*reply_r = "553 5.6.7 Non-ASCII sender address needs SMTPUTF8";
		return -1;
	}
	return 0;
}

static int parse_notify(const char *value, unsigned int *notify_r)
{
	unsigned int bits = 0;
	const char *p = value;
	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		unsigned int bit;
		if (len == 5 && ascii_strncasecmp(p, "NEVER", 5) == 0)
			bit = SMTP_NOTIFY_NEVER;
		else if (len == 7 && ascii_strncasecmp(p, "SUCCESS", 7) == 0)
			bit = SMTP_NOTIFY_SUCCESS;
		else if (len == 7 && ascii_strncasecmp(p, "FAILURE", 7) == 0)
			bit = SMTP_NOTIFY_FAILURE;
		else if (len == 5 && ascii_strncasecmp(p, "DELAY", 5) == 0)
			bit = SMTP_NOTIFY_DELAY;
		else
			return -1;
		if (bits & bit)
			return -1;
		bits |= bit;
		if (comma == NULL)
			break;
		p = comma + 1;
		if (*p == '\0')
			return -1;
	}
	/* NEVER stands alone */
	if (bits == 0 || ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER))
		return -1;
	*notify_r = bits;
	return 0;
}

int smtp_parse_rcpt(const char *args, struct pool *pool, struct smtp_path *path_r,
		    struct smtp_rcpt_params *params_r, const char **reply_r)
{
	memset(params_r, 0, sizeof(*params_r));
	if (args == NULL || !ascii_has_prefix_ci(args, "TO:")) {
		*reply_r = "501 5.5.4 Syntax: RCPT TO:<address>";
		return -1;
	}
	const char *p = args + 3;
	if (parse_path(&p, false, true, pool, path_r, reply_r) < 0)
		return -1;
	char *key, *value;
	while (next_param(&p, pool, &key, &value, reply_r)) {
		if (key == NULL)
			return -1;
		if (ascii_strcasecmp(key, "NOTIFY") == 0) {
			if (params_r->notify != 0 || value == NULL ||
			    parse_notify(value, &params_r->notify) < 0) {
				*reply_r = "501 5.5.4 Bad NOTIFY parameter";
				return -1;
			}
		} else if (ascii_strcasecmp(key, "ORCPT") == 0) {
			const char *semi = value != NULL ? strchr(value, ';') : NULL;
			char *decoded;
			if (params_r->orcpt != NULL || semi == NULL || semi == value ||
			    strlen(value) > 500 ||
			    (decoded = smtp_xtext_decode(semi + 1, pool)) == NULL || decoded[0] == '\0') {
				*reply_r = "501 5.5.4 Bad ORCPT parameter";
				return -1;
			}
			params_r->orcpt = pool_printf(pool, "%.*s;%s", (int)(semi - value), value,
						      decoded);
		} else {
			*reply_r = "555 5.5.4 Unsupported RCPT parameter";
			return -1;
		}
	}
	return 0;
}

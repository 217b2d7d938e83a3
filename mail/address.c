/* RFC 5322 address lists, read tolerantly: obsolete routes, groups,
 * comments, quoted strings, missing parts. A comment stands in for a
 * missing display name; strings keep their raw (undecoded) form. Whatever
 * had to be skipped or guessed clears `clean`, so that a caller that must
 * not guess (the sender check of submission) can refuse. */

#include "mail/mail.h"

#include <stdlib.h>
#include <string.h>

/* The value may hold several headers' values with '\n' between them:
 * nothing (quoted string, comment, angle address) runs across one. */
struct addr_lexer {
	const char *p;
	struct buf comment;   /* the last comment skipped */
	bool clean;
};

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool is_special(char c)
{
	return strchr("()<>[]:;@\\,.\"\n", c) != NULL;
}

static void skip_cfws(struct addr_lexer *lx)
{
	for (;;) {
		while (is_wsp(*lx->p))
			lx->p++;
		if (*lx->p != '(')
			return;
		int depth = 0;
		buf_reset(&lx->comment);
		while (*lx->p != '\0' && *lx->p != '\n') {
			char c = *lx->p++;
			if (c == '\\' && *lx->p != '\0' && *lx->p != '\n') {
				buf_append_char(&lx->comment, *lx->p++);
				continue;
			}
			if (c == '(' && depth++ == 0)
				continue;
			if (c == ')' && --depth == 0)
				break;
			buf_append_char(&lx->comment, c);
		}
		if (depth != 0)
			lx->clean = false;   /* unterminated comment */
	}
}

/* An atom or quoted string, appended to out (quotes removed); false when
 * the next thing is neither. */
static bool read_word(struct addr_lexer *lx, struct buf *out)
{
	const char *p = lx->p;
	if (*p == '"') {
		p++;
		while (*p != '\0' && *p != '"' && *p != '\n') {
			if (*p == '\\' && p[1] != '\0' && p[1] != '\n')
				p++;
			buf_append_char(out, *p++);
		}
		if (*p == '"')
			p++;
		else
			lx->clean = false;   /* unterminated quoted string */
		lx->p = p;
		return true;
	}
	const char *start = p;
	while (*p != '\0' && !is_wsp(*p) && !is_special(*p))
		p++;
	if (p == start)
		return false;
	buf_append(out, start, (size_t)(p - start));
	lx->p = p;
	return true;
}

/* A phrase (display name) or a local part: words and dots. As a name,
 * words are joined by one space; as a local part, run together. */
static void read_phrase(struct addr_lexer *lx, struct buf *name, struct buf *local)
{
	for (;;) {
		const char *before = lx->p;
		skip_cfws(lx);
		bool spaced = lx->p != before;
		if (*lx->p == '.') {
			buf_append_char(name, '.');
			buf_append_char(local, '.');
			lx->p++;
			continue;
		}
		struct buf word = BUF_INIT;
		if (!read_word(lx, &word)) {
			buf_free(&word);
			return;
		}
		if (name->len > 0 && (spaced || name->data[name->len - 1] != '.'))
			buf_append_char(name, ' ');
		buf_append(name, buf_str(&word), word.len);
		buf_append(local, buf_str(&word), word.len);
		buf_free(&word);
	}
}

/* A domain: atoms and [literals] joined by dots; white space and
 * comments around the dots are dropped. Two words without a dot between
 * them end the domain. */
static void read_domain(struct addr_lexer *lx, struct buf *out)
{
	bool want_word = true;
	for (;;) {
		skip_cfws(lx);
		char c = *lx->p;
		if (c == '.') {
			buf_append_char(out, '.');
			lx->p++;
			want_word = true;
			continue;
		}
		if (!want_word)
			return;
		if (c == '[') {
			const char *end = strpbrk(lx->p, "]\n");
			size_t len;
			if (end == NULL || *end != ']') {
				lx->clean = false;
				len = end == NULL ? strlen(lx->p) : (size_t)(end - lx->p);
			} else {
				len = (size_t)(end - lx->p) + 1;
			}
			buf_append(out, lx->p, len);
			lx->p += len;
		} else if (!read_word(lx, out)) {
			return;
		}
		want_word = false;
	}
}

/* Obsolete route "@a,@b:" inside an angle address. */
static void read_route(struct addr_lexer *lx, struct buf *route)
{
	for (;;) {
		skip_cfws(lx);
		if (*lx->p == ',') {
			lx->p++;
			continue;
		}
		if (*lx->p != '@')
			break;
		lx->p++;
		if (route->len > 0)
			buf_append_char(route, ',');
		buf_append_char(route, '@');
		read_domain(lx, route);
	}
	skip_cfws(lx);
	if (*lx->p == ':')
		lx->p++;
	else
		lx->clean = false;
}

static void read_angle_addr(struct addr_lexer *lx, struct mail_addr *a)
{
	struct buf ignored = BUF_INIT;
	lx->p++;   /* '<' */
	skip_cfws(lx);
	if (*lx->p == '@')
		read_route(lx, &a->route);
	read_phrase(lx, &ignored, &a->mailbox);
	a->has_mailbox = a->mailbox.len > 0;
	skip_cfws(lx);
	if (*lx->p == '@') {
		lx->p++;
		read_domain(lx, &a->host);
		a->has_host = a->host.len > 0;
	}
	skip_cfws(lx);
	/* anything else up to the '>' is junk */
	if (*lx->p != '>')
		lx->clean = false;
	while (*lx->p != '\0' && *lx->p != '>' && *lx->p != '\n')
		lx->p++;
	if (*lx->p == '>')
		lx->p++;
	buf_free(&ignored);
}

/* Skips junk up to the next separator. */
static void skip_junk(struct addr_lexer *lx)
{
	skip_cfws(lx);
	while (*lx->p != '\0' && *lx->p != ',' && *lx->p != ';' && *lx->p != '<' &&
	       *lx->p != '\n') {
		lx->clean = false;
		if (*lx->p == '"') {
			struct buf junk = BUF_INIT;
			read_word(lx, &junk);
			buf_free(&junk);
		} else if (*lx->p == '(') {
			skip_cfws(lx);
		} else {
			lx->p++;
		}
	}
}

/* A bare addr-spec (the local part already read), or a phrase with no
 * address at all. An addr-spec followed by an angle address was really
 * an unquoted display name ("a@b <c@d>"), as mail clients read it. */
static void read_addr_spec(struct addr_lexer *lx, struct mail_addr *a,
			   const struct buf *local, const char *start)
{
	bool phrase_only = *lx->p != '@' && memchr(buf_str(&a->name), ' ', a->name.len) != NULL;
	if (phrase_only) {
		/* "Mary Smith" alone: a name without an address */
		return;
	}
	buf_reset(&a->name);
	buf_append(&a->mailbox, buf_str(local), local->len);
	a->has_mailbox = local->len > 0;
	if (*lx->p == '@') {
		lx->p++;
		read_domain(lx, &a->host);
		a->has_host = a->host.len > 0;
	}
	skip_cfws(lx);
	if (*lx->p == '<') {
		const char *end = lx->p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		lx->clean = false;   /* a display name that is not a phrase */
		buf_reset(&a->name);
		buf_append(&a->name, start, (size_t)(end - start));
		buf_reset(&a->mailbox);
		buf_reset(&a->host);
		a->has_mailbox = a->has_host = false;
		read_angle_addr(lx, a);
		return;
	}
	if (lx->comment.len > 0)
		buf_append(&a->name, buf_str(&lx->comment), lx->comment.len);
}

static struct mail_addr *push(struct mail_addrs *out, enum mail_addr_kind kind)
{
	out->items = xrealloc(out->items, (out->count + 1) * sizeof(*out->items));
	struct mail_addr *a = &out->items[out->count++];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	return a;
}

static void addr_free(struct mail_addr *a)
{
	buf_free(&a->name);
	buf_free(&a->route);
	buf_free(&a->mailbox);
	buf_free(&a->host);
}

/* One element of the list: a mailbox, a group start, or nothing. */
static void read_element(struct addr_lexer *lx, struct mail_addrs *out, bool *in_group)
{
	struct mail_addr a;
	struct buf local = BUF_INIT;
	const char *start = lx->p;
	memset(&a, 0, sizeof(a));
	a.kind = MAIL_ADDR_MAILBOX;
	buf_reset(&lx->comment);
	read_phrase(lx, &a.name, &local);
	skip_cfws(lx);
	char c = *lx->p;
	if (c == ':' && !*in_group) {
		lx->p++;
		struct mail_addr *g = push(out, MAIL_ADDR_GROUP_START);
		g->name = a.name;
		buf_init(&a.name);
		*in_group = true;
	} else {
		if (c == '<')
			read_angle_addr(lx, &a);
		else if (c == '@' || local.len > 0)
			read_addr_spec(lx, &a, &local, start);
		if (c == '<' || c == '@' || local.len > 0) {
			if (!a.has_mailbox || !a.has_host)
				lx->clean = false;
			*push(out, MAIL_ADDR_MAILBOX) = a;
			memset(&a, 0, sizeof(a));
		} else if (a.name.len > 0) {
			lx->clean = false;   /* a phrase and no address */
		}
		skip_junk(lx);
	}
	buf_free(&local);
	addr_free(&a);
}

void mail_address_parse(const char *value, struct mail_addrs *out)
{
	struct addr_lexer lx = { value, BUF_INIT, true };
	bool in_group = false;
	memset(out, 0, sizeof(*out));
	for (;;) {
		skip_cfws(&lx);
		char c = *lx.p;
		if (c == '\0')
			break;
		if (c == ',') {
			lx.p++;
			continue;
		}
		/* ';' ends a group; so does the end of one of several headers */
		if (c == ';' || c == '\n') {
			if (c == ';' && !in_group)
				lx.clean = false;
			lx.p++;
			if (in_group) {
				push(out, MAIL_ADDR_GROUP_END);
				in_group = false;
			}
			continue;
		}
		const char *before = lx.p;
		read_element(&lx, out, &in_group);
		if (lx.p == before) {
			lx.p++;   /* never loop on a byte nobody wants */
			lx.clean = false;
		}
	}
	if (in_group) {
		push(out, MAIL_ADDR_GROUP_END);
		lx.clean = false;
	}
	buf_free(&lx.comment);
	out->clean = lx.clean;
}

void mail_addrs_free(struct mail_addrs *addrs)
{
	for (size_t i = 0; i < addrs->count; i++)
		addr_free(&addrs->items[i]);
	free(addrs->items);
	addrs->items = NULL;
	addrs->count = 0;
}

/* RFC 5322 3.2.3 atext, and 8-bit (RFC 6532) */
static bool is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c >= 0x80 || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool is_dot_atom(const char *s, size_t len)
{
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.' ? s[i + 1] == '.' : !is_atext((unsigned char)s[i]))
			return false;
	}
	return true;
}

void mail_addr_spec(const struct mail_addr *a, struct buf *out)
{
	const char *local = buf_str(&a->mailbox);
	if (is_dot_atom(local, a->mailbox.len)) {
		buf_append(out, local, a->mailbox.len);
	} else {
		buf_append_char(out, '"');
		for (size_t i = 0; i < a->mailbox.len; i++) {
			if (local[i] == '"' || local[i] == '\\')
				buf_append_char(out, '\\');
			buf_append_char(out, local[i]);
		}
		buf_append_char(out, '"');
	}
	buf_append_char(out, '@');
	buf_append(out, buf_str(&a->host), a->host.len);
}

int mail_single_domain(const char *value, char *out, size_t size)
{
	struct mail_addrs list;
	mail_address_parse(value, &list);
	const struct mail_addr *only = NULL;
	size_t mailboxes = 0;
	for (size_t i = 0; i < list.count; i++) {
		if (list.items[i].kind == MAIL_ADDR_MAILBOX) {
			only = &list.items[i];
			mailboxes++;
		}
	}
	int ret = -1;
	if (mailboxes == 1 && only->has_host && only->host.len > 0 && only->host.len < size) {
		ret = 0;
		for (size_t i = 0; i < only->host.len; i++) {
			char c = only->host.data[i];
			if ((unsigned char)c <= ' ' || c == 0x7f)
				ret = -1;   /* controls, NUL: not a domain */
			out[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
		}
		out[only->host.len] = '\0';
	}
	if (ret < 0 && size > 0)
		out[0] = '\0';
	mail_addrs_free(&list);
	return ret;
}

/* RFC 5322 address lists as IMAP ENVELOPE address structures
 * ((name adl mailbox host) ...). Tolerant: obsolete routes, groups,
 * comments, quoted strings, missing parts. Like Dovecot, a missing local
 * part or domain is written as "MISSING_MAILBOX" / "MISSING_DOMAIN", a
 * comment stands in for a missing display name, and the strings keep
 * their raw (undecoded) form. */

#include "store/mime-private.h"

#include <string.h>

/* The value may hold several headers' values with '\n' between them:
 * nothing (quoted string, comment, angle address) runs across one. */
struct addr_lexer {
	const char *p;
	struct buf comment;   /* the last comment skipped */
};

struct addr {
	struct buf name;
	struct buf route;
	struct buf mailbox;
	struct buf host;
	bool has_mailbox;
	bool has_host;
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
			const char *end = strchr(lx->p, ']');
			size_t len = end == NULL ? strlen(lx->p) : (size_t)(end - lx->p) + 1;
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
}

static void read_angle_addr(struct addr_lexer *lx, struct addr *a)
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
	/* anything else up to the '>' is junk */
	while (*lx->p != '\0' && *lx->p != '>' && *lx->p != '\n')
		lx->p++;
	if (*lx->p == '>')
		lx->p++;
	buf_free(&ignored);
}

static void append_nbuf(struct buf *out, const struct buf *b, bool present)
{
	if (present)
		mime_imap_append_string(out, buf_str(b), b->len);
	else
		buf_append_str(out, "NIL");
}

static void addr_append(struct buf *out, const struct addr *a)
{
	buf_append_char(out, '(');
	append_nbuf(out, &a->name, a->name.len > 0);
	buf_append_char(out, ' ');
	append_nbuf(out, &a->route, a->route.len > 0);
	buf_append_char(out, ' ');
	if (a->has_mailbox)
		append_nbuf(out, &a->mailbox, true);
	else
		buf_append_str(out, "\"MISSING_MAILBOX\"");
	buf_append_char(out, ' ');
	if (a->has_host)
		append_nbuf(out, &a->host, true);
	else
		buf_append_str(out, "\"MISSING_DOMAIN\"");
	buf_append_char(out, ')');
}

static void addr_free(struct addr *a)
{
	buf_free(&a->name);
	buf_free(&a->route);
	buf_free(&a->mailbox);
	buf_free(&a->host);
}

/* Skips junk up to the next separator. */
static void skip_junk(struct addr_lexer *lx)
{
	skip_cfws(lx);
	while (*lx->p != '\0' && *lx->p != ',' && *lx->p != ';' && *lx->p != '<' &&
	       *lx->p != '\n') {
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
static void read_addr_spec(struct addr_lexer *lx, struct addr *a, const struct buf *local,
			   const char *start)
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

/* One element of the list: a mailbox, a group start, or nothing. */
static void read_element(struct addr_lexer *lx, struct buf *out, bool *in_group,
			 size_t *count)
{
	struct addr a;
	struct buf local = BUF_INIT;
	const char *start = lx->p;
	memset(&a, 0, sizeof(a));
	buf_reset(&lx->comment);
	read_phrase(lx, &a.name, &local);
	skip_cfws(lx);
	char c = *lx->p;
	if (c == ':' && !*in_group) {
		lx->p++;
		buf_append_str(out, "(NIL NIL ");
		mime_imap_append_string(out, buf_str(&a.name), a.name.len);
		buf_append_str(out, " NIL)");
		*in_group = true;
		(*count)++;
	} else {
		if (c == '<') {
			read_angle_addr(lx, &a);
		} else if (c == '@' || local.len > 0) {
			read_addr_spec(lx, &a, &local, start);
		}
		if (c == '<' || c == '@' || local.len > 0) {
			addr_append(out, &a);
			(*count)++;
		}
		skip_junk(lx);
	}
	buf_free(&local);
	addr_free(&a);
}

void mime_address_list_append(struct buf *out, const char *value)
{
	struct addr_lexer lx = { value, BUF_INIT };
	struct buf list = BUF_INIT;
	bool in_group = false;
	size_t count = 0;
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
			lx.p++;
			if (in_group) {
				buf_append_str(&list, "(NIL NIL NIL NIL)");
				in_group = false;
			}
			continue;
		}
		const char *before = lx.p;
		read_element(&lx, &list, &in_group, &count);
		if (lx.p == before)
			lx.p++;   /* never loop on a byte nobody wants */
	}
	if (in_group)
		buf_append_str(&list, "(NIL NIL NIL NIL)");
	if (count == 0)
		buf_append_str(out, "NIL");
	else
		buf_printf(out, "(%s)", buf_str(&list));
	buf_free(&list);
	buf_free(&lx.comment);
}

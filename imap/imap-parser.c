/* The IMAP command reader (lines + literals, bounded) and the argument
 * parser (RFC 3501 / RFC 9051 grammar, RFC 7888 literals). */
#include "imap/imap-parser.h"
#include "core/core.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

/* ---- the reader --------------------------------------------------------- */

void imap_reader_init(struct imap_reader *r, size_t text_max, size_t literal_max)
{
	memset(r, 0, sizeof(*r));
	linereader_init(&r->lr, text_max + 2);
	buf_init(&r->cmd);
	r->text_max = text_max;
	r->literal_max = literal_max;
}

void imap_reader_free(struct imap_reader *r)
{
	linereader_free(&r->lr);
	buf_free(&r->cmd);
}

void imap_reader_set_limits(struct imap_reader *r, size_t text_max, size_t literal_max)
{
	if (text_max != r->text_max)
		linereader_set_max(&r->lr, text_max + 2);
	r->text_max = text_max;
	r->literal_max = literal_max;
}

static void reader_clear_command(struct imap_reader *r)
{
	buf_reset(&r->cmd);
	r->text_len = 0;
	r->literal_len = 0;
	r->literal_left = 0;
	r->streaming = false;
	r->bad_chars = false;
	r->complete = false;
}

void imap_reader_reset(struct imap_reader *r)
{
	reader_clear_command(r);
	linereader_reset(&r->lr);
}

/* Does this line (one segment of a command, between literals) end with a
 * literal announcement outside a quoted string? Sets size (UINT64_MAX when
 * it does not fit) and whether it is synchronising. */
static bool line_literal(const char *line, size_t len, uint64_t *size_r, bool *sync_r)
{
	bool in_quote = false;
	for (size_t i = 0; i < len; i++) {
		if (in_quote && line[i] == '\\' && i + 1 < len)
			i++;
		else if (line[i] == '"')
			in_quote = !in_quote;
	}
	if (in_quote || len < 3 || line[len - 1] != '}')
		return false;
	size_t end = len - 1;
	bool sync = true;
	if (line[end - 1] == '+') {
		sync = false;
		end--;
	}
	size_t start = end;
	while (start > 0 && line[start - 1] >= '0' && line[start - 1] <= '9')
		start--;
	if (start == end || start == 0 || line[start - 1] != '{')
		return false;
	uint64_t n = 0;
	for (size_t i = start; i < end; i++) {
		if (n > (UINT64_MAX - 9) / 10) {
			n = UINT64_MAX;
			break;
		}
		n = n * 10 + (uint64_t)(line[i] - '0');
	}
	*size_r = n;
	*sync_r = sync;
	return true;
}

static enum imap_read_status reader_stream_literal(struct imap_reader *r, struct evbuffer *in)
{
	struct evbuffer_iovec vec;
	if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1 || vec.iov_len == 0)
		return IMAP_READ_NEED_MORE;
	size_t n = vec.iov_len < r->literal_left ? vec.iov_len : (size_t)r->literal_left;
	r->stream_fn(r->fn_ctx, vec.iov_base, n);
	evbuffer_drain(in, n);
	r->literal_left -= n;
	if (r->literal_left > 0)
		return IMAP_READ_NEED_MORE;
	r->streaming = false;
	return IMAP_READ_COMMAND;
}

static enum imap_read_status reader_read_literal(struct imap_reader *r, struct evbuffer *in)
{
	if (r->streaming)
		return reader_stream_literal(r, in);
	size_t avail = evbuffer_get_length(in);
	size_t n = avail < r->literal_left ? avail : (size_t)r->literal_left;
	if (n == 0)
		return IMAP_READ_NEED_MORE;
	buf_reserve(&r->cmd, n);
	int got = evbuffer_remove(in, r->cmd.data + r->cmd.len, n);
	if (got <= 0)
		return IMAP_READ_NEED_MORE;
	r->cmd.len += (size_t)got;
	r->cmd.data[r->cmd.len] = '\0';
	r->literal_left -= (size_t)got;
	return r->literal_left > 0 ? IMAP_READ_NEED_MORE : IMAP_READ_COMMAND;
}

/* The command of the previous result stays readable (cmd, the tag) until
 * the next call, which starts a new one. */
static enum imap_read_status reader_end(struct imap_reader *r, enum imap_read_status st)
{
	r->complete = true;
	return st;
}

enum imap_read_status imap_reader_next(struct imap_reader *r, struct evbuffer *in)
{
	if (r->complete)
		reader_clear_command(r);
	for (;;) {
		if (r->literal_left > 0) {
			if (reader_read_literal(r, in) == IMAP_READ_NEED_MORE)
				return IMAP_READ_NEED_MORE;
			continue;
		}
		enum lr_status st = linereader_next(&r->lr, in);
		if (st == LR_NEED_MORE)
			return IMAP_READ_NEED_MORE;
		if (st == LR_TOO_LONG)
			return reader_end(r, IMAP_READ_TOO_LONG);
		const char *line = r->lr.line;
		size_t len = r->lr.line_len;
		uint64_t size = 0;
		bool sync = true;
		bool literal = line_literal(line, len, &size, &sync);
		r->text_len += len + 2;
		if (r->text_len > r->text_max)
			return reader_end(r, literal && !sync ? IMAP_READ_FATAL : IMAP_READ_TOO_LONG);
		if (r->lr.flags & (LR_FLAG_NUL | LR_FLAG_BARE_CR))
			r->bad_chars = true;
		buf_append(&r->cmd, line, len);
		if (!literal)
			return reader_end(r, IMAP_READ_COMMAND);
		if (r->literal_fn != NULL &&
		    r->literal_fn(r->fn_ctx, r->cmd.data, r->cmd.len, size) == IMAP_LITERAL_STREAM) {
			if (size > r->stream_max) {
				r->sync_literal = sync;
				return reader_end(r, sync ? IMAP_READ_LITERAL_TOO_BIG : IMAP_READ_FATAL);
			}
			/* the parsed command sees an empty literal in its place */
			while (r->cmd.len > 0 && r->cmd.data[r->cmd.len - 1] != '{')
				r->cmd.len--;
			buf_append_str(&r->cmd, "0}\r\n");
			r->literal_left = size;
			r->streaming = size > 0;
			r->sync_literal = sync;
			if (sync)
				return IMAP_READ_CONTINUE;
			continue;
		}
		if (size > r->literal_max - r->literal_len) {
			r->sync_literal = sync;
			return reader_end(r, sync ? IMAP_READ_LITERAL_TOO_BIG : IMAP_READ_FATAL);
		}
		buf_append(&r->cmd, "\r\n", 2);
		r->literal_len += (size_t)size;
		r->literal_left = size;
		r->sync_literal = sync;
		if (sync)
			return IMAP_READ_CONTINUE;
	}
}

const char *imap_reader_tag(const struct imap_reader *r, char *dst, size_t size)
{
	const char *data = buf_str(&r->cmd);
	size_t len = strcspn(data, " \r\n");
	if (!imap_tag_valid(data, len) || len + 1 > size)
		return "*";
	memcpy(dst, data, len);
	dst[len] = '\0';
	return dst;
}

/* ---- arguments ---------------------------------------------------------- */

bool imap_tag_valid(const char *tag, size_t len)
{
	if (len == 0 || len > IMAP_MAX_TAG)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)tag[i];
		/* tag = 1*<any ASTRING-CHAR except "+"> */
		if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '{' || c == '%' ||
		    c == '*' || c == '"' || c == '\\' || c == '+')
			return false;
	}
	return true;
}

struct parser {
	struct pool *pool;
	const char *p, *end;
	const char *error;
	int depth;
};

static bool atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '"';
}

static int parse_error(struct parser *ps, const char *msg)
{
	if (ps->error == NULL)
		ps->error = msg;
	return -1;
}

/* Skips a quoted string inside brackets (BODY[HEADER.FIELDS ("X")]). */
static int skip_quoted(struct parser *ps)
{
	ps->p++;
	while (ps->p < ps->end && *ps->p != '"') {
		if (*ps->p == '\\' && ps->p + 1 < ps->end)
			ps->p++;
		if (*ps->p == '\r' || *ps->p == '\n' || *ps->p == '\0')
			return parse_error(ps, "Invalid character in quoted string");
		ps->p++;
	}
	if (ps->p == ps->end)
		return parse_error(ps, "Unterminated quoted string");
	ps->p++;
	return 0;
}

/* An atom, where "[...]" may hold spaces, parentheses and quoted strings
 * (fetch-att "BODY[HEADER.FIELDS (A B)]<0.10>"). */
static int parse_atom(struct parser *ps, struct imap_arg *arg)
{
	const char *start = ps->p;
	int brackets = 0;
	while (ps->p < ps->end) {
		unsigned char c = (unsigned char)*ps->p;
		if (brackets > 0) {
			if (c == '"') {
				if (skip_quoted(ps) < 0)
					return -1;
				continue;
			}
			if (c == ']')
				brackets--;
			else if (c == '[')
				brackets++;
			else if (c != ' ' && c != '(' && c != ')' && !atom_char(c))
				return parse_error(ps, "Invalid character in section");
			ps->p++;
			continue;
		}
		if (!atom_char(c))
			break;
		if (c == '[')
			brackets++;
		ps->p++;
	}
	if (brackets > 0)
		return parse_error(ps, "Missing ']'");
	if (ps->p == start)
		return parse_error(ps, "Unexpected character");
	arg->type = IMAP_ARG_ATOM;
	arg->len = (size_t)(ps->p - start);
	arg->str = pool_strndup(ps->pool, start, arg->len);
	return 0;
}

static int parse_quoted(struct parser *ps, struct imap_arg *arg)
{
	const char *start = ++ps->p;
	size_t escapes = 0;
	while (ps->p < ps->end && *ps->p != '"') {
		unsigned char c = (unsigned char)*ps->p;
		if (c == '\r' || c == '\n' || c == '\0')
			return parse_error(ps, "Invalid character in quoted string");
		if (c == '\\') {
			if (ps->p + 1 >= ps->end || (ps->p[1] != '"' && ps->p[1] != '\\'))
				return parse_error(ps, "Invalid escape in quoted string");
			ps->p++;
			escapes++;
		}
		ps->p++;
	}
	if (ps->p == ps->end)
		return parse_error(ps, "Unterminated quoted string");
	size_t raw = (size_t)(ps->p - start);
	char *s = pool_alloc(ps->pool, raw - escapes + 1);
	size_t n = 0;
	for (const char *q = start; q < ps->p; q++) {
		if (*q == '\\')
			q++;
		s[n++] = *q;
	}
	s[n] = '\0';
	ps->p++;
	arg->type = IMAP_ARG_QUOTED;
	arg->str = s;
	arg->len = n;
	return 0;
}

static int parse_literal(struct parser *ps, struct imap_arg *arg)
{
	if (*ps->p == '~') {
		arg->literal8 = true;
		ps->p++;
	}
	if (ps->p >= ps->end || *ps->p != '{')
		return parse_error(ps, "Invalid literal");
	ps->p++;
	uint64_t n = 0;
	const char *digits = ps->p;
	while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9' && ps->p - digits < 20) {
		n = n * 10 + (uint64_t)(*ps->p - '0');
		ps->p++;
	}
	if (ps->p == digits)
		return parse_error(ps, "Invalid literal size");
	if (ps->p < ps->end && *ps->p == '+')
		ps->p++;
	if (ps->end - ps->p < 3 || memcmp(ps->p, "}\r\n", 3) != 0)
		return parse_error(ps, "Literal must end the line");
	ps->p += 3;
	if (n > (uint64_t)(ps->end - ps->p))
		return parse_error(ps, "Literal shorter than announced");
	arg->type = IMAP_ARG_LITERAL;
	arg->len = (size_t)n;
	/* all n bytes, NULs included (pool_strndup would stop at a NUL) */
	char *copy = pool_alloc(ps->pool, arg->len + 1);
	memcpy(copy, ps->p, arg->len);
	copy[arg->len] = '\0';
	arg->str = copy;
	ps->p += n;
	return 0;
}

static int parse_list(struct parser *ps, bool in_list, struct imap_arg **items_r,
		      size_t *count_r);

static int parse_one(struct parser *ps, struct imap_arg *arg)
{
	memset(arg, 0, sizeof(*arg));
	if (ps->p >= ps->end)
		return parse_error(ps, "Missing argument");
	switch (*ps->p) {
	case '(':
		if (++ps->depth > IMAP_MAX_LIST_DEPTH)
			return parse_error(ps, "Lists nested too deep");
		ps->p++;
		arg->type = IMAP_ARG_LIST;
		if (parse_list(ps, true, &arg->items, &arg->count) < 0)
			return -1;
		ps->depth--;
		return 0;
	case ')':
		return parse_error(ps, "Unexpected ')'");
	case '"':
		return parse_quoted(ps, arg);
	case '{':
	case '~':
		if (*ps->p == '~' && (ps->p + 1 >= ps->end || ps->p[1] != '{'))
			return parse_atom(ps, arg);
		return parse_literal(ps, arg);
	case ' ':
		return parse_error(ps, "Unexpected space");
	default:
		return parse_atom(ps, arg);
	}
}

static int parse_list(struct parser *ps, bool in_list, struct imap_arg **items_r,
		      size_t *count_r)
{
	struct imap_arg *items = NULL;
	size_t count = 0, cap = 0;
	for (;;) {
		if (ps->p >= ps->end) {
			if (in_list) {
				free(items);
				return parse_error(ps, "Missing ')'");
			}
			break;
		}
		if (*ps->p == ')') {
			if (!in_list) {
				free(items);
				return parse_error(ps, "Unexpected ')'");
			}
			ps->p++;
			break;
		}
		if (count > 0) {
			if (*ps->p != ' ') {
				free(items);
				return parse_error(ps, "Expected a space between arguments");
			}
			ps->p++;
		}
		if (count == cap) {
			cap = cap ? cap * 2 : 8;
			items = xrealloc(items, cap * sizeof(*items));
		}
		if (parse_one(ps, &items[count]) < 0) {
			free(items);
			return -1;
		}
		count++;
	}
	*items_r = pool_alloc(ps->pool, (count ? count : 1) * sizeof(*items));
	if (count > 0)
		memcpy(*items_r, items, count * sizeof(*items));
	free(items);
	*count_r = count;
	return 0;
}

int imap_parse(struct pool *pool, const char *data, size_t len,
	       struct imap_command_line *cmd_r, const char **error_r)
{
	memset(cmd_r, 0, sizeof(*cmd_r));
	const char *sp = memchr(data, ' ', len);
	size_t tag_len = sp != NULL ? (size_t)(sp - data) : len;
	if (!imap_tag_valid(data, tag_len)) {
		*error_r = "Invalid tag";
		return -1;
	}
	cmd_r->tag = pool_strndup(pool, data, tag_len);
	if (sp == NULL) {
		*error_r = "Missing command";
		return -1;
	}
	struct parser ps = { pool, sp + 1, data + len, NULL, 0 };
	const char *name = ps.p;
	while (ps.p < ps.end && ((*ps.p >= 'A' && *ps.p <= 'Z') || (*ps.p >= 'a' && *ps.p <= 'z') ||
				 (*ps.p >= '0' && *ps.p <= '9')))
		ps.p++;
	if (ps.p == name || (ps.p < ps.end && *ps.p != ' ')) {
		*error_r = "Invalid command name";
		return -1;
	}
	cmd_r->name = pool_strndup(pool, name, (size_t)(ps.p - name));
	if (ps.p < ps.end) {
		ps.p++;
		if (ps.p == ps.end) {
			*error_r = "Trailing space";
			return -1;
		}
		if (parse_list(&ps, false, &cmd_r->args, &cmd_r->count) < 0) {
			*error_r = ps.error;
			return -1;
		}
	} else {
		cmd_r->args = pool_alloc(pool, sizeof(struct imap_arg));
	}
	return 0;
}

bool imap_arg_atom(const struct imap_arg *a, const char **s_r)
{
	if (a == NULL || a->type != IMAP_ARG_ATOM)
		return false;
	*s_r = a->str;
	return true;
}

bool imap_arg_is_atom(const struct imap_arg *a, const char *word)
{
	return a != NULL && a->type == IMAP_ARG_ATOM && ascii_strcasecmp(a->str, word) == 0;
}

bool imap_arg_is_nil(const struct imap_arg *a)
{
	return imap_arg_is_atom(a, "NIL");
}

bool imap_arg_string(const struct imap_arg *a, const char **s_r)
{
	if (a == NULL || (a->type != IMAP_ARG_QUOTED && a->type != IMAP_ARG_LITERAL))
		return false;
	if (memchr(a->str, '\0', a->len) != NULL)
		return false;
	*s_r = a->str;
	return true;
}

bool imap_arg_astring(const struct imap_arg *a, const char **s_r)
{
	if (a != NULL && a->type == IMAP_ARG_ATOM) {
		/* ASTRING-CHAR: no list wildcards, no section brackets with spaces */
		if (strpbrk(a->str, "%* ()") != NULL)
			return false;
		*s_r = a->str;
		return true;
	}
	return imap_arg_string(a, s_r);
}

bool imap_arg_number(const struct imap_arg *a, uint64_t *n_r)
{
	if (a == NULL || a->type != IMAP_ARG_ATOM || a->len == 0 || a->len > 19)
		return false;
	uint64_t n = 0;
	for (size_t i = 0; i < a->len; i++) {
		if (a->str[i] < '0' || a->str[i] > '9')
			return false;
		n = n * 10 + (uint64_t)(a->str[i] - '0');
	}
	*n_r = n;
	return true;
}

/* ---- sequence sets ------------------------------------------------------ */

static const char *seq_number(const char *p, uint32_t *n_r)
{
	if (*p == '*') {
		*n_r = IMAP_SEQ_STAR;
		return p + 1;
	}
	if (*p < '1' || *p > '9')
		return NULL;
	uint64_t n = 0;
	while (*p >= '0' && *p <= '9') {
		n = n * 10 + (uint64_t)(*p - '0');
		if (n > UINT32_MAX)
			return NULL;
		p++;
	}
	*n_r = (uint32_t)n;
	return p;
}

int imap_seqset_parse(struct pool *pool, const char *s, bool allow_dollar,
		      struct imap_seqset *set_r)
{
	memset(set_r, 0, sizeof(*set_r));
	if (strcmp(s, "$") == 0) {
		if (!allow_dollar)
			return -1;
		set_r->dollar = true;
		return 0;
	}
	size_t items = 1;
	for (const char *q = s; *q != '\0'; q++)
		items += *q == ',';
	set_r->ranges = pool_alloc(pool, items * sizeof(*set_r->ranges));
	const char *p = s;
	for (;;) {
		uint32_t lo, hi;
		p = seq_number(p, &lo);
		if (p == NULL)
			return -1;
		hi = lo;
		if (*p == ':') {
			p = seq_number(p + 1, &hi);
			if (p == NULL)
				return -1;
		}
		struct imap_seq_range *r = &set_r->ranges[set_r->count++];
		r->lo = lo < hi ? lo : hi;
		r->hi = lo < hi ? hi : lo;
		if (*p == '\0')
			return 0;
		if (*p != ',')
			return -1;
		p++;
	}
}

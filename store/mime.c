/* The streaming MIME structure parser: splits the input into lines,
 * tracks the open parts (a stack, one level per multipart or embedded
 * message), records offsets and CRLF-counted sizes, and keeps only the
 * header block of the part being read. The BODYSTRUCTURE strings are
 * put together at the end from what each part's header said. */

#include "store/mime-private.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define NO_PART UINT32_MAX
/* Bytes of a line kept for boundary matching; longer lines are counted
 * but not kept (a boundary is at most 70 characters, RFC 2046). */
#define LINE_KEEP 1024
#define BOUNDARY_MAX (LINE_KEEP - 8)

struct mime_level {
	uint32_t part;
	char *boundary;          /* active boundary of this multipart, or NULL */
	size_t boundary_len;
};

/* A position in the input: raw offset, CRLF-counted offset, LFs before it. */
struct mime_pos {
	uint64_t off;
	uint64_t crlf;
	uint64_t lf;
};

enum mime_state { MIME_STATE_HEADER, MIME_STATE_BODY };

struct mime_parser {
	/* the current line: its first LINE_KEEP bytes, total length, last byte */
	char line[LINE_KEEP];
	size_t line_kept;
	uint64_t line_len;
	bool line_cr;

	struct mime_pos pos;      /* start of the current line */
	struct mime_pos content_end; /* before the line end that may precede a boundary */
	/* CRLF offset and LF count where each part's header/body started */
	struct mime_pos *starts;
	uint32_t *last_child;     /* per part, for appending children */
	size_t info_size;         /* bytes of rendered part info so far */

	enum mime_state state;
	struct buf header;        /* header block of the part being read */
	size_t header_line_start; /* header.len when the current line began */
	bool header_full;

	struct mime_level stack[MIME_MAX_DEPTH];
	unsigned int depth;

	struct mime_part *parts;
	struct mime_part_info *info;
	uint32_t part_count;
	uint32_t part_alloc;
	struct mime_headers root_headers; /* kept for the SEARCH fields */
	bool finished;
};

static uint32_t part_add(struct mime_parser *parser, uint32_t parent,
			 const struct mime_pos *at)
{
	if (parser->part_count == parser->part_alloc) {
		uint32_t n = parser->part_alloc == 0 ? 8 : parser->part_alloc * 2;
		parser->parts = xrealloc(parser->parts, n * sizeof(*parser->parts));
		parser->info = xrealloc(parser->info, n * sizeof(*parser->info));
		parser->starts = xrealloc(parser->starts, n * sizeof(*parser->starts));
		parser->last_child = xrealloc(parser->last_child,
					      n * sizeof(*parser->last_child));
		parser->part_alloc = n;
	}
	uint32_t idx = parser->part_count++;
	struct mime_part *part = &parser->parts[idx];
	memset(part, 0, sizeof(*part));
	memset(&parser->info[idx], 0, sizeof(parser->info[idx]));
	part->parent = parent;
	part->first_child = NO_PART;
	part->next_sibling = NO_PART;
	part->header_offset = at->off;
	parser->starts[idx] = *at;
	parser->last_child[idx] = NO_PART;
	if (parent != NO_PART) {
		if (parser->last_child[parent] == NO_PART)
			parser->parts[parent].first_child = idx;
		else
			parser->parts[parser->last_child[parent]].next_sibling = idx;
		parser->last_child[parent] = idx;
	}
	return idx;
}

static void level_push(struct mime_parser *parser, uint32_t part)
{
	struct mime_level *level = &parser->stack[parser->depth++];
	level->part = part;
	level->boundary = NULL;
	level->boundary_len = 0;
	parser->state = MIME_STATE_HEADER;
	parser->header_full = false;
	buf_reset(&parser->header);
}

struct mime_parser *mime_parser_new(void)
{
	struct mime_parser *parser = xcalloc(1, sizeof(*parser));
	buf_init(&parser->header);
	struct mime_pos start = { 0, 0, 0 };
	level_push(parser, part_add(parser, NO_PART, &start));
	return parser;
}

static bool digest_parent(const struct mime_parser *parser, uint32_t idx)
{
	uint32_t parent = parser->parts[idx].parent;
	if (parent == NO_PART || !parser->info[parent].is_multipart)
		return false;
	const char *basic = parser->info[parent].basic;
	return basic != NULL && ascii_strcasecmp(basic, "\"digest\"") == 0;
}

/* A message that is not MIME (neither MIME-Version nor Content-Type in
 * its header) has no Content-* fields that mean anything (RFC 2045 4;
 * Dovecot's rule too). Body parts of a multipart are always MIME. */
static void drop_content_fields_unless_mime(struct mime_headers *h)
{
	if (h->value[MIME_F_MIME_VERSION] != NULL || h->value[MIME_F_CONTENT_TYPE] != NULL)
		return;
	for (int f = MIME_F_CONTENT_TYPE; f <= MIME_F_CONTENT_MD5; f++) {
		free(h->value[f]);
		h->value[f] = NULL;
	}
}

/* The header of the top part ends at pos (after its blank line, if any). */
static void header_end(struct mime_parser *parser, const struct mime_pos *at)
{
	struct mime_level *level = &parser->stack[parser->depth - 1];
	uint32_t idx = level->part;
	struct mime_part *part = &parser->parts[idx];
	struct mime_part_info *info = &parser->info[idx];
	struct mime_headers h;

	/* past the budget, headers are ignored: the part gets the defaults */
	if (parser->info_size > MIME_MAX_STRUCTURE_SIZE)
		parser->header.len = 0;
	mime_headers_parse(parser->header.data == NULL ? "" : parser->header.data,
			   parser->header.len, &h);
	bool message_root = idx == 0 ||
		parser->parts[part->parent].is_message;
	if (message_root)
		drop_content_fields_unless_mime(&h);
	mime_part_info_fill(info, &h, digest_parent(parser, idx));
	if (message_root)
		info->envelope = mime_envelope_build(&h);
	parser->info_size += strlen(info->basic) + strlen(info->ext) +
		(info->envelope == NULL ? 0 : strlen(info->envelope));
	if (idx == 0)
		parser->root_headers = h;
	else
		mime_headers_free(&h);
	buf_reset(&parser->header);

	part->header_crlf_size = at->crlf - parser->starts[idx].crlf;
	part->body_offset = at->off;
	parser->starts[idx] = *at;
	parser->state = MIME_STATE_BODY;
	parser->content_end = *at;

	bool room = parser->depth < MIME_MAX_DEPTH &&
		parser->part_count < MIME_MAX_PARTS;
	if (info->is_multipart) {
		part->is_multipart = 1;
		if (room && info->boundary != NULL &&
		    strlen(info->boundary) <= BOUNDARY_MAX) {
			level->boundary = xstrdup(info->boundary);
			level->boundary_len = strlen(info->boundary);
		}
	} else if (info->is_message) {
		part->is_message = 1;
		if (room)
			level_push(parser, part_add(parser, idx, at));
	}
}

/* Closes the top level: its part's body ends at "at". */
static void level_pop(struct mime_parser *parser, const struct mime_pos *at)
{
	struct mime_level *level = &parser->stack[parser->depth - 1];
	if (parser->state == MIME_STATE_HEADER)
		header_end(parser, at);
	/* header_end may have pushed an embedded message: close it first */
	while (parser->stack[parser->depth - 1].part != level->part)
		level_pop(parser, at);
	struct mime_part *part = &parser->parts[level->part];
	const struct mime_pos *start = &parser->starts[level->part];
	struct mime_pos end = *at;
	if (end.off < part->body_offset)
		end = *start;
	part->body_end = end.off;
	part->body_crlf_size = end.crlf - start->crlf;
	part->body_lines = end.lf - start->lf;
	free(level->boundary);
	level->boundary = NULL;
	parser->depth--;
	parser->state = MIME_STATE_BODY;
}

/* Which open boundary, if any, the current line is. RFC 2046 5.1.1: a
 * line that begins with "--" and the boundary is a delimiter, whatever
 * follows (normally white space); "--" right after the boundary makes it
 * the close delimiter. When boundaries of several levels match (one is
 * a prefix of another), the longest wins, then the innermost. */
static int boundary_match(const struct mime_parser *parser, uint64_t full_len,
			  bool *close_r)
{
	const char *line = parser->line;
	if (full_len < 2 || full_len > parser->line_kept ||
	    line[0] != '-' || line[1] != '-')
		return -1;
	size_t content_len = (size_t)full_len;
	int best = -1;
	for (int i = (int)parser->depth - 1; i >= 0; i--) {
		const struct mime_level *level = &parser->stack[i];
		size_t blen = level->boundary_len;
		if (level->boundary == NULL || content_len < 2 + blen ||
		    memcmp(line + 2, level->boundary, blen) != 0)
			continue;
		if (best < 0 || blen > parser->stack[best].boundary_len)
			best = i;
	}
	if (best >= 0) {
		size_t rest = 2 + parser->stack[best].boundary_len;
		*close_r = content_len >= rest + 2 && line[rest] == '-' &&
			line[rest + 1] == '-';
	}
	return best;
}

static void boundary_seen(struct mime_parser *parser, int level_idx, bool close,
			  const struct mime_pos *after)
{
	struct mime_pos end = parser->content_end;
	while ((int)parser->depth - 1 > level_idx)
		level_pop(parser, &end);
	struct mime_level *level = &parser->stack[level_idx];
	parser->state = MIME_STATE_BODY;
	parser->content_end = *after;
	if (close || parser->part_count >= MIME_MAX_PARTS ||
	    parser->depth >= MIME_MAX_DEPTH) {
		/* epilogue, or no room for more parts: the rest is opaque */
		free(level->boundary);
		level->boundary = NULL;
		return;
	}
	level_push(parser, part_add(parser, level->part, after));
}

static void line_done(struct mime_parser *parser, bool has_lf)
{
	size_t eol = has_lf ? (parser->line_cr ? 2 : 1) : 0;
	uint64_t content_len = parser->line_len - eol;
	struct mime_pos after = {
		.off = parser->pos.off + parser->line_len,
		.crlf = parser->pos.crlf + content_len + (has_lf ? 2 : 0),
		.lf = parser->pos.lf + (has_lf ? 1 : 0),
	};
	bool close = false;
	int level = boundary_match(parser, content_len, &close);

	if (level >= 0) {
		if (parser->state == MIME_STATE_HEADER)
			parser->header.len = parser->header_line_start;
		boundary_seen(parser, level, close, &after);
	} else if (parser->state == MIME_STATE_HEADER) {
		parser->content_end = after;
		if (content_len == 0) {
			parser->header.len = parser->header_line_start;
			header_end(parser, &after);
		}
	} else {
		parser->content_end.off = parser->pos.off + content_len;
		parser->content_end.crlf = parser->pos.crlf + content_len;
		parser->content_end.lf = parser->pos.lf;
	}
	if (parser->header.data != NULL)
		parser->header.data[parser->header.len] = '\0';
	parser->pos = after;
	parser->line_kept = 0;
	parser->line_len = 0;
	parser->line_cr = false;
	parser->header_line_start = parser->header.len;
}

/* Appends a piece of the current line (no LF inside, except maybe last). */
static void line_add(struct mime_parser *parser, const char *data, size_t len)
{
	if (len == 0)
		return;
	size_t room = LINE_KEEP - parser->line_kept;
	size_t keep = len < room ? len : room;
	memcpy(parser->line + parser->line_kept, data, keep);
	parser->line_kept += keep;
	parser->line_len += len;
	if (parser->state == MIME_STATE_HEADER && !parser->header_full) {
		size_t hroom = MIME_MAX_HEADER_SIZE - parser->header.len;
		if (len > hroom) {
			len = hroom;
			parser->header_full = true;
		}
		buf_append(&parser->header, data, len);
	}
}

void mime_parser_feed(struct mime_parser *parser, const void *data, size_t len)
{
	const char *p = data;
	if (parser->finished)
		return;
	while (len > 0) {
		const char *nl = memchr(p, '\n', len);
		size_t chunk = nl == NULL ? len : (size_t)(nl - p);
		line_add(parser, p, chunk);
		if (chunk > 0)
			parser->line_cr = p[chunk - 1] == '\r';
		if (nl == NULL)
			return;
		line_add(parser, "\n", 1);
		line_done(parser, true);
		p += chunk + 1;
		len -= chunk + 1;
	}
}

/* BODYSTRUCTURE (ext) or BODY (!ext) of part idx. */
static void render_part(const struct mime_parser *parser, uint32_t idx, bool ext,
			struct buf *out);

static void render_empty_text(struct buf *out, bool ext)
{
	buf_append_str(out, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0");
	buf_append_str(out, ext ? " NIL NIL NIL NIL)" : ")");
}

static void render_multipart(const struct mime_parser *parser, uint32_t idx,
			     bool ext, struct buf *out)
{
	const struct mime_part *part = &parser->parts[idx];
	const struct mime_part_info *info = &parser->info[idx];
	buf_append_char(out, '(');
	if (part->first_child == NO_PART)
		render_empty_text(out, ext);
	for (uint32_t c = part->first_child; c != NO_PART;
	     c = parser->parts[c].next_sibling)
		render_part(parser, c, ext, out);
	buf_append_char(out, ' ');
	buf_append_str(out, info->basic);
	if (ext) {
		buf_append_char(out, ' ');
		buf_append_str(out, info->ext);
	}
	buf_append_char(out, ')');
}

static void render_part(const struct mime_parser *parser, uint32_t idx, bool ext,
			struct buf *out)
{
	const struct mime_part *part = &parser->parts[idx];
	const struct mime_part_info *info = &parser->info[idx];
	if (info->is_multipart) {
		render_multipart(parser, idx, ext, out);
		return;
	}
	buf_append_char(out, '(');
	buf_append_str(out, info->basic);
	buf_printf(out, " %llu", (unsigned long long)part->body_crlf_size);
	if (info->is_message) {
		uint32_t child = part->first_child;
		if (child == NO_PART) {
			/* too deep to parse: an empty envelope, the body as text */
			buf_append_str(out, " (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ");
			buf_printf(out, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" %llu %llu%s)",
				   (unsigned long long)part->body_crlf_size,
				   (unsigned long long)part->body_lines,
				   ext ? " NIL NIL NIL NIL" : "");
		} else {
			buf_append_char(out, ' ');
			buf_append_str(out, parser->info[child].envelope);
			buf_append_char(out, ' ');
			render_part(parser, child, ext, out);
		}
		buf_printf(out, " %llu", (unsigned long long)part->body_lines);
	} else if (info->is_text) {
		buf_printf(out, " %llu", (unsigned long long)part->body_lines);
	}
	if (ext) {
		buf_append_char(out, ' ');
		buf_append_str(out, info->ext);
	}
	buf_append_char(out, ')');
}

static char *decoded(const char *value)
{
	return value == NULL ? NULL : mime_decode_header(value, strlen(value));
}

/* Repeated address headers, joined by '\n', as one list. */
static char *decoded_list(const char *value)
{
	if (value == NULL)
		return NULL;
	struct buf list = BUF_INIT;
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\n')
			buf_append_str(&list, ", ");
		else
			buf_append_char(&list, *p);
	}
	char *result = mime_decode_header(buf_str(&list), list.len);
	buf_free(&list);
	return result;
}

/* The root header fields SEARCH and SORT use, decoded. */
static void root_fields(struct mime_message *msg, const struct mime_headers *h)
{
	msg->subject = decoded(h->value[MIME_F_SUBJECT]);
	msg->from = decoded_list(h->value[MIME_F_FROM]);
	msg->to = decoded_list(h->value[MIME_F_TO]);
	msg->cc = decoded_list(h->value[MIME_F_CC]);
	msg->bcc = decoded_list(h->value[MIME_F_BCC]);
	msg->message_id = decoded(h->value[MIME_F_MESSAGE_ID]);
	msg->in_reply_to = decoded(h->value[MIME_F_IN_REPLY_TO]);
	msg->references = decoded(h->value[MIME_F_REFERENCES]);
	if (h->value[MIME_F_DATE] == NULL ||
	    mail_date_parse(h->value[MIME_F_DATE], &msg->date,
			    &msg->date_tz_minutes) < 0) {
		msg->date = 0;
		msg->date_tz_minutes = 0;
	}
}

void mime_parser_finish(struct mime_parser *parser, struct mime_message *msg)
{
	memset(msg, 0, sizeof(*msg));
	if (!parser->finished) {
		if (parser->line_len > 0)
			line_done(parser, false);
		struct mime_pos end = parser->pos;
		while (parser->depth > 0)
			level_pop(parser, &end);
		parser->finished = true;
	}

	struct buf out = BUF_INIT;
	render_part(parser, 0, true, &out);
	msg->bodystructure = xstrdup(buf_str(&out));
	buf_reset(&out);
	render_part(parser, 0, false, &out);
	msg->body = xstrdup(buf_str(&out));
	buf_free(&out);
	msg->envelope = xstrdup(parser->info[0].envelope);
	msg->size = parser->pos.off;
	msg->crlf_size = parser->pos.crlf;
	msg->parts = xmalloc(parser->part_count * sizeof(*msg->parts));
	memcpy(msg->parts, parser->parts, parser->part_count * sizeof(*msg->parts));
	msg->part_count = parser->part_count;

	root_fields(msg, &parser->root_headers);
}

void mime_parser_free(struct mime_parser **parserp)
{
	struct mime_parser *parser = *parserp;
	if (parser == NULL)
		return;
	*parserp = NULL;
	for (unsigned int i = 0; i < parser->depth; i++)
		free(parser->stack[i].boundary);
	for (uint32_t i = 0; i < parser->part_count; i++)
		mime_part_info_free(&parser->info[i]);
	free(parser->parts);
	free(parser->info);
	free(parser->starts);
	free(parser->last_child);
	buf_free(&parser->header);
	mime_headers_free(&parser->root_headers);
	free(parser);
}

void mime_parse_buffer(const void *data, size_t len, struct mime_message *msg)
{
	struct mime_parser *parser = mime_parser_new();
	mime_parser_feed(parser, data, len);
	mime_parser_finish(parser, msg);
	mime_parser_free(&parser);
}

int mime_parse_fd(int fd, struct mime_message *msg)
{
	char block[65536];
	struct mime_parser *parser = mime_parser_new();
	off_t offset = 0;
	for (;;) {
		ssize_t n = pread(fd, block, sizeof(block), offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mime_parser_free(&parser);
			memset(msg, 0, sizeof(*msg));
			return -1;
		}
		if (n == 0)
			break;
		mime_parser_feed(parser, block, (size_t)n);
		offset += n;
	}
	mime_parser_finish(parser, msg);
	mime_parser_free(&parser);
	return 0;
}

void mime_message_free(struct mime_message *msg)
{
	free(msg->envelope);
	free(msg->body);
	free(msg->bodystructure);
	free(msg->subject);
	free(msg->from);
	free(msg->to);
	free(msg->cc);
	free(msg->bcc);
	free(msg->message_id);
	free(msg->in_reply_to);
	free(msg->references);
	free(msg->parts);
	memset(msg, 0, sizeof(*msg));
}

int mime_find_part(const struct mime_message *msg, const char *path)
{
	if (msg->part_count == 0)
		return -1;
	if (path == NULL || *path == '\0')
		return 0;
	uint32_t cur = 0;
	bool at_message = true;
	const char *p = path;
	while (*p != '\0') {
		if (*p < '1' || *p > '9')
			return -1;
		unsigned long n = 0;
		while (*p >= '0' && *p <= '9') {
			n = n * 10 + (unsigned long)(*p - '0');
			if (n > MIME_MAX_PARTS)
				return -1;
			p++;
		}
		if (*p == '.')
			p++;
		else if (*p != '\0')
			return -1;
		const struct mime_part *part = &msg->parts[cur];
		if (!at_message && part->is_message) {
			if (part->first_child == NO_PART)
				return -1;
			cur = part->first_child;
			part = &msg->parts[cur];
		} else if (!at_message && !part->is_multipart) {
			return -1;
		}
		at_message = false;
		if (part->is_multipart) {
			uint32_t c = part->first_child;
			for (unsigned long i = 1; i < n && c != NO_PART; i++)
				c = msg->parts[c].next_sibling;
			if (c == NO_PART)
				return -1;
			cur = c;
		} else if (n != 1) {
			return -1;
		}
	}
	return (int)cur;
}

/* TEMPORARY stand-in for the MIME parser (branch mime), removed at merge:
 * counts sizes and takes the Subject header, nothing more. */
#include "store/mime.h"
#include "core/buf.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mime_parser {
	struct buf head;
	uint64_t size, crlf_size, lines;
	char last;
	bool in_body;
};

struct mime_parser *mime_parser_new(void)
{
	return xcalloc(1, sizeof(struct mime_parser));
}

void mime_parser_feed(struct mime_parser *p, const void *data, size_t len)
{
	const char *s = data;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n' && p->last != '\r')
			p->crlf_size++;
		if (s[i] == '\n')
			p->lines++;
		if (!p->in_body) {
			buf_append_char(&p->head, s[i]);
			size_t n = p->head.len;
			if ((n >= 2 && memcmp(p->head.data + n - 2, "\n\n", 2) == 0) ||
			    (n >= 4 && memcmp(p->head.data + n - 4, "\r\n\r\n", 4) == 0))
				p->in_body = true;
		}
		p->last = s[i];
	}
	p->size += len;
	p->crlf_size += len;
}

void mime_parser_finish(struct mime_parser *p, struct mime_message *msg)
{
	memset(msg, 0, sizeof(*msg));
	msg->size = p->size;
	msg->crlf_size = p->crlf_size;
	msg->envelope = xstrdup("(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	msg->body = xstrdup("(\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)");
	msg->bodystructure = xstrdup(msg->body);
	const char *h = buf_str(&p->head);
	for (const char *line = h; *line != '\0';) {
		const char *eol = strchr(line, '\n');
		size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
		if (len > 9 && strncasecmp(line, "subject: ", 9) == 0) {
			size_t vlen = len - 9;
			if (vlen > 0 && line[9 + vlen - 1] == '\r')
				vlen--;
			msg->subject = xstrndup(line + 9, vlen);
		}
		line += len + (eol != NULL ? 1 : 0);
	}
	msg->parts = xcalloc(1, sizeof(*msg->parts));
	msg->parts[0].parent = msg->parts[0].first_child = UINT32_MAX;
	msg->parts[0].next_sibling = UINT32_MAX;
	msg->parts[0].body_offset = p->head.len;
	msg->parts[0].body_end = p->size;
	msg->part_count = 1;
}

void mime_parser_free(struct mime_parser **p)
{
	if (*p == NULL)
		return;
	buf_free(&(*p)->head);
	free(*p);
	*p = NULL;
}

void mime_parse_buffer(const void *data, size_t len, struct mime_message *msg)
{
	struct mime_parser *p = mime_parser_new();
	mime_parser_feed(p, data, len);
	mime_parser_finish(p, msg);
	mime_parser_free(&p);
}

int mime_parse_fd(int fd, struct mime_message *msg)
{
	struct mime_parser *p = mime_parser_new();
	char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		mime_parser_feed(p, buf, (size_t)n);
	mime_parser_finish(p, msg);
	mime_parser_free(&p);
	return n < 0 ? -1 : 0;
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
	return path == NULL || *path == '\0' ? 0 : -1;
}

char *mime_decode_header(const char *value, size_t len)
{
	return xstrndup(value, len);
}

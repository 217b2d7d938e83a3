/* Self-check of a parse result, for tests and the fuzzer: the IMAP
 * strings must be well-formed and the part tree consistent. */

#include "store/mime-private.h"


struct checker {
	const char *p;
	const char *end;
	const char *error;
};

static bool check_fail(struct checker *c, const char *error)
{
	if (c->error == NULL)
		c->error = error;
	return false;
}

static bool check_item(struct checker *c, int depth);

static bool check_list(struct checker *c, int depth)
{
	if (depth > 4 * MIME_MAX_DEPTH + 8)
		return check_fail(c, "lists nested too deep");
	c->p++;   /* '(' */
	bool first = true;
	while (c->p < c->end && *c->p != ')') {
		if (!first && *c->p == ' ')
			c->p++;
		if (!check_item(c, depth + 1))
			return false;
		first = false;
	}
	if (c->p >= c->end)
		return check_fail(c, "unterminated list");
	c->p++;
	return true;
}

static bool check_item(struct checker *c, int depth)
{
	if (c->p >= c->end)
		return check_fail(c, "item expected");
	char ch = *c->p;
	if (ch == '(')
		return check_list(c, depth);
	if (ch == '"') {
		for (c->p++; c->p < c->end && *c->p != '"'; c->p++) {
			unsigned char b = (unsigned char)*c->p;
			if (b == '\r' || b == '\n' || b == '\0' || b >= 0x80)
				return check_fail(c, "bad byte in quoted string");
			if (b == '\\') {
				c->p++;
				if (c->p >= c->end || (*c->p != '"' && *c->p != '\\'))
					return check_fail(c, "bad escape in quoted string");
			}
		}
		if (c->p >= c->end)
			return check_fail(c, "unterminated quoted string");
		c->p++;
		return true;
	}
	if (ch == '{') {
		unsigned long long n = 0;
		for (c->p++; c->p < c->end && *c->p >= '0' && *c->p <= '9'; c->p++)
			n = n * 10 + (unsigned long long)(*c->p - '0');
		if (c->end - c->p < 3 || c->p[0] != '}' || c->p[1] != '\r' || c->p[2] != '\n')
			return check_fail(c, "bad literal");
		c->p += 3;
		if ((unsigned long long)(c->end - c->p) < n)
			return check_fail(c, "literal too short");
		c->p += n;
		return true;
	}
	if (c->end - c->p >= 3 && memcmp(c->p, "NIL", 3) == 0) {
		c->p += 3;
		return true;
	}
	if (ch >= '0' && ch <= '9') {
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
		return true;
	}
	return check_fail(c, "unexpected byte");
}

static bool check_string(const char *s, const char *what, const char **error_r)
{
	if (s == NULL) {
		*error_r = what;
		return false;
	}
	struct checker c = { s, s + strlen(s), NULL };
	if (*s != '(' || !check_item(&c, 0) || c.p != c.end) {
		*error_r = c.error != NULL ? c.error : "trailing bytes";
		return false;
	}
	return true;
}

static bool check_parts(const struct mime_message *msg, const char **error_r)
{
	if (msg->part_count == 0 || msg->part_count > MIME_MAX_PARTS) {
		*error_r = "part count out of range";
		return false;
	}
	for (uint32_t i = 0; i < msg->part_count; i++) {
		const struct mime_part *part = &msg->parts[i];
		if (part->header_offset > part->body_offset ||
		    part->body_offset > part->body_end || part->body_end > msg->size) {
			*error_r = "part offsets out of order";
			return false;
		}
		if (part->body_crlf_size < part->body_end - part->body_offset ||
		    part->header_crlf_size < part->body_offset - part->header_offset) {
			*error_r = "CRLF size smaller than raw size";
			return false;
		}
		if ((i == 0) != (part->parent == UINT32_MAX)) {
			*error_r = "bad root";
			return false;
		}
		if (i > 0) {
			const struct mime_part *parent = &msg->parts[part->parent];
			if (part->parent >= i || part->header_offset < parent->body_offset ||
			    part->body_end > parent->body_end) {
				*error_r = "part outside its parent";
				return false;
			}
		}
	}
	return true;
}

static bool part_path(const struct mime_message *msg, uint32_t idx, struct buf *out);

/* The path under which a multipart's children are numbered. */
static bool children_prefix(const struct mime_message *msg, uint32_t idx,
			    struct buf *out)
{
	uint32_t parent = msg->parts[idx].parent;
	if (idx == 0)
		return true;
	if (msg->parts[parent].is_message)
		return part_path(msg, parent, out);
	return part_path(msg, idx, out);
}

/* The IMAP section path of part idx (RFC 3501 6.4.5); false for a part
 * that has none (an embedded multipart message: "N.1" is its first part). */
static bool part_path(const struct mime_message *msg, uint32_t idx, struct buf *out)
{
	if (idx == 0) {
		buf_append_str(out, "1");
		return !msg->parts[0].is_multipart;
	}
	uint32_t parent = msg->parts[idx].parent;
	const struct mime_part *q = &msg->parts[parent];
	if (q->is_message) {
		if (msg->parts[idx].is_multipart || !part_path(msg, parent, out))
			return false;
		buf_append_str(out, ".1");
		return true;
	}
	unsigned int n = 1;
	for (uint32_t c = q->first_child; c != idx && c != UINT32_MAX;
	     c = msg->parts[c].next_sibling)
		n++;
	if (!children_prefix(msg, parent, out))
		return false;
	buf_printf(out, out->len > 0 ? ".%u" : "%u", n);
	return true;
}

/* Every part with a section path is found again under it. */
static bool check_paths(const struct mime_message *msg, const char **error_r)
{
	struct buf path = BUF_INIT;
	bool ok = mime_find_part(msg, "") == 0;
	for (uint32_t i = 0; ok && i < msg->part_count; i++) {
		buf_reset(&path);
		if (part_path(msg, i, &path) && mime_find_part(msg, buf_str(&path)) != (int)i)
			ok = false;
	}
	buf_free(&path);
	if (!ok)
		*error_r = "a section path does not lead back to its part";
	return ok;
}

int mime_message_check(const struct mime_message *msg, const char **error_r)
{
	if (!check_string(msg->envelope, "no envelope", error_r) ||
	    !check_string(msg->body, "no body", error_r) ||
	    !check_string(msg->bodystructure, "no bodystructure", error_r) ||
	    !check_parts(msg, error_r) || !check_paths(msg, error_r))
		return -1;
	if (msg->crlf_size < msg->size) {
		*error_r = "message CRLF size smaller than raw size";
		return -1;
	}
	return 0;
}

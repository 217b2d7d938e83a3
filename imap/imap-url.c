/* IMAP URLs (RFC 5092) naming a message or a section of one in this
 * account, for CATENATE (RFC 4469): "/INBOX;UIDVALIDITY=9/;UID=20/;SECTION=1.2"
 * or the same after "imap://[user@]this-host[:port]"; a URL relative to the
 * selected mailbox (";UID=20...") too. The section's bytes are written
 * with line ends made CRLF, as FETCH BODY[section] gives them. */
#include "imap/imap-private.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* %XX decoding into the pool; NULL when malformed. */
static char *url_decode(struct pool *pool, const char *s, size_t len)
{
	char *out = pool_alloc(pool, len + 1), *o = out;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			if (i + 2 >= len)
				return NULL;
			int hi = store_hex_value(s[i + 1]), lo = store_hex_value(s[i + 2]);
			if (hi < 0 || lo < 0)
				return NULL;
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

static bool url_number(const char **p, const char *key, uint64_t *n_r)
{
	size_t klen = strlen(key);
	if (ascii_strncasecmp(*p, key, klen) != 0)
		return false;
	const char *q = *p + klen;
	uint64_t n = 0;
	if (*q < '1' || *q > '9')
		return false;
	while (*q >= '0' && *q <= '9' && n < UINT32_MAX)
		n = n * 10 + (uint64_t)(*q++ - '0');
	if (n > UINT32_MAX)
		return false;
	*n_r = n;
	*p = q;
	return true;
}

int imap_url_parse(struct pool *pool, const char *text, const char *hostname, const char *user,
		   bool have_selected, struct imap_url *u)
{
	memset(u, 0, sizeof(*u));
	const char *p = text;
	if (ascii_strncasecmp(p, "imap://", 7) == 0) {
		/* the authority must name this server (and this user, if any) */
		p += 7;
		const char *slash = strchr(p, '/');
		if (slash == NULL)
			return -1;
		const char *at = memchr(p, '@', (size_t)(slash - p));
		if (at != NULL) {
			const char *semi = memchr(p, ';', (size_t)(at - p));
			char *name = url_decode(pool, p, (size_t)((semi != NULL ? semi : at) - p));
			if (name == NULL || ascii_strcasecmp(name, user) != 0)
				return -1;
			p = at + 1;
		}
		const char *colon = memchr(p, ':', (size_t)(slash - p));
		size_t host_len = (size_t)((colon != NULL ? colon : slash) - p);
		const char *host = hostname;
		if (host == NULL || strlen(host) != host_len || ascii_strncasecmp(p, host, host_len) != 0)
			return -1;
		p = slash;
	}
	if (*p == '/') {
		/* enc-mailbox [";UIDVALIDITY=" n] "/;UID=" n */
		const char *end = p + 1;
		while (*end != '\0' && *end != ';' && !(end[0] == '/' && end[1] == ';'))
			end++;
		u->mailbox = url_decode(pool, p + 1, (size_t)(end - p - 1));
		if (u->mailbox == NULL || u->mailbox[0] == '\0' ||
		    !utf8_is_valid(u->mailbox, strlen(u->mailbox)))
			return -1;
		if (ascii_strcasecmp(u->mailbox, "INBOX") == 0)
			u->mailbox = "INBOX";
		p = end;
		if (*p == ';' && !url_number(&p, ";UIDVALIDITY=", &u->uidvalidity))
			return -1;
		if (*p++ != '/')
			return -1;
	} else if (!have_selected) {
		return -1;   /* relative to the selected mailbox: none */
	}
	if (!url_number(&p, ";UID=", &u->uid))
		return -1;
	u->section = "";
	if (ascii_strncasecmp(p, "/;SECTION=", 10) == 0) {
		const char *start = p + 10;
		p = start;
		while (*p != '\0' && *p != '/')
			p++;
		char *sec = url_decode(pool, start, (size_t)(p - start));
		if (sec == NULL)
			return -1;
		for (char *q = sec; *q != '\0'; q++)
			if (*q >= 'a' && *q <= 'z')
				*q = (char)(*q - 'a' + 'A');
		u->section = sec;
	}
	if (ascii_strncasecmp(p, "/;PARTIAL=", 10) == 0) {
		p += 10;
		u->partial = true;
		u->origin = strtoull(p, (char **)&p, 10);
		if (*p == '.') {
			p++;
			if (!url_number(&p, "", &u->length))
				return -1;
		}
	}
	return *p == '\0' ? 0 : -1;
}

/* The file range [start, end) of a section from the cache; -1 when the
 * section does not exist (or is one we do not take: HEADER.FIELDS). */
static int url_section_range(const struct store_cache *c, const struct store_msg *msg,
			     const char *section, uint64_t *start_r, uint64_t *end_r)
{
	if (section[0] == '\0') {
		*start_r = 0;
		*end_r = msg->size;
		return 0;
	}
	const char *p = section;
	while (*p >= '0' && *p <= '9') {
		while (*p >= '0' && *p <= '9')
			p++;
		if (*p != '.')
			break;
		p++;
	}
	size_t part_len = (size_t)(p - section);
	if (part_len > 0 && section[part_len - 1] == '.')
		part_len--;
	else if (part_len > 0 && *p != '\0')
		return -1;
	char path[256];
	if (part_len >= sizeof(path))
		return -1;
	memcpy(path, section, part_len);
	path[part_len] = '\0';
	int idx = store_cache_find_part(c, path);
	if (idx < 0 || (size_t)idx >= c->part_count)
		return -1;
	const struct store_part *part = &c->parts[idx];
	bool header = strcmp(p, "HEADER") == 0 || strcmp(p, "MIME") == 0;
	if (*p != '\0' && !header && strcmp(p, "TEXT") != 0)
		return -1;
	if (strcmp(p, "MIME") == 0 && part_len == 0)
		return -1;
	if (part_len > 0 && (strcmp(p, "HEADER") == 0 || strcmp(p, "TEXT") == 0)) {
		/* N.HEADER, N.TEXT: of the message inside a message/rfc822 part */
		if (!part->is_message || part->first_child >= c->part_count)
			return -1;
		part = &c->parts[part->first_child];
	}
	*start_r = header ? part->header_offset : part->body_offset;
	*end_r = header ? part->body_offset : part->body_end;
	return 0;
}

/* Streams [start, end) of fd into d with LF made CRLF, keeping the
 * converted bytes [skip, skip + take). */
static int url_copy(int fd, uint64_t start, uint64_t end, uint64_t skip, uint64_t take,
		    struct store_delivery *d, uint64_t *written_r)
{
	char in[16384], out[2 * sizeof(in)];
	bool prev_cr = false;
	uint64_t pos = 0;   /* converted bytes seen */
	const char *error;
	while (start < end && take > 0) {
		size_t want = end - start < sizeof(in) ? (size_t)(end - start) : sizeof(in);
		ssize_t n = pread(fd, in, want, (off_t)start);
		if (n <= 0)
			return -1;
		start += (uint64_t)n;
		size_t o = 0;
		for (ssize_t i = 0; i < n; i++) {
			if (in[i] == '\n' && !prev_cr)
				out[o++] = '\r';
			out[o++] = in[i];
			prev_cr = in[i] == '\r';
		}
		size_t from = skip > pos ? (skip - pos < o ? (size_t)(skip - pos) : o) : 0;
		size_t len = o - from < take ? o - from : (size_t)take;
		if (len > 0 && store_delivery_write(d, out + from, len, &error) < 0)
			return -1;
		pos += o;
		take -= len;
		*written_r += len;
	}
	return 0;
}

int imap_url_append(struct imap_session *s, struct pool *pool, const char *text,
		    struct store_delivery *d, uint64_t *written_r)
{
	struct imap_url u;
	const char *error;
	if (imap_url_parse(pool, text, conn_config(s->conn)->hostname, s->user, s->mbox != NULL,
			   &u) < 0)
		return -1;
	struct store_mailbox *mbox = s->mbox;
	bool own = false;
	if (u.mailbox != NULL && (mbox == NULL || strcmp(store_mailbox_name(mbox), u.mailbox) != 0)) {
		if (store_mailbox_open(s->account, u.mailbox, STORE_OPEN_READ_ONLY |
				       STORE_OPEN_NO_RECENT, &mbox, &error) < 0)
			return -1;
		own = true;
	}
	struct store_status st;
	struct store_msg msg;
	struct store_cache cache;
	uint64_t start, end;
	int fd = -1, ret = -1;
	store_mailbox_get_status(mbox, &st);
	if ((u.uidvalidity == 0 || u.uidvalidity == st.uidvalidity) &&
	    store_msg_get(mbox, (uint32_t)u.uid, &msg, &error) == 0 &&
	    store_msg_cache(mbox, (uint32_t)u.uid, &cache, &error) == 0 &&
	    url_section_range(&cache, &msg, u.section, &start, &end) == 0 &&
	    store_msg_open_fd(mbox, (uint32_t)u.uid, &fd, &error) == 0) {
		uint64_t take = u.partial && u.length > 0 ? u.length : UINT64_MAX;
		ret = url_copy(fd, start, end, u.partial ? u.origin : 0, take, d, written_r);
		close(fd);
	}
	if (own)
		store_mailbox_close(&mbox);
	return ret;
}

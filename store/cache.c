/* The parse cache: ENVELOPE, BODY, BODYSTRUCTURE, decoded header fields
 * and the part table of each message, serialized into one LMDB value so
 * that FETCH and SEARCH never re-parse. */
#include "store/store-private.h"
#include "store/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_VERSION 1u
#define CACHE_FIELDS 11
#define CACHE_PREFETCH_MAX 4096

struct cache_part_rec {
	uint32_t parent, first_child, next_sibling, flags;
	uint64_t header_offset, body_offset, body_end;
	uint64_t header_crlf_size, body_crlf_size, body_lines;
};

static void put_str(struct buf *out, const char *s)
{
	uint32_t len = s != NULL ? (uint32_t)strlen(s) : 0;
	buf_append(out, &len, sizeof(len));
	buf_append(out, s != NULL ? s : "", len);
	buf_append_char(out, '\0');
}

void cache_serialize(struct buf *out, const struct mime_message *msg)
{
	uint32_t version = CACHE_VERSION;
	buf_append(out, &version, sizeof(version));
	const char *fields[CACHE_FIELDS] = {
		msg->envelope, msg->body, msg->bodystructure, msg->subject, msg->from,
		msg->to, msg->cc, msg->bcc, msg->message_id, msg->in_reply_to,
		msg->references,
	};
	for (size_t i = 0; i < CACHE_FIELDS; i++)
		put_str(out, fields[i]);
	int64_t date = msg->date;
	buf_append(out, &date, sizeof(date));
	uint32_t count = msg->part_count;
	buf_append(out, &count, sizeof(count));
	for (uint32_t i = 0; i < count; i++) {
		const struct mime_part *p = &msg->parts[i];
		struct cache_part_rec r = {
			p->parent, p->first_child, p->next_sibling,
			(p->is_multipart ? 1u : 0u) | (p->is_message ? 2u : 0u),
			p->header_offset, p->body_offset, p->body_end,
			p->header_crlf_size, p->body_crlf_size, p->body_lines,
		};
		buf_append(out, &r, sizeof(r));
	}
}

int cache_deserialize(const void *data, size_t len, struct store_cache *cache,
		      struct store_part **parts, size_t *parts_cap)
{
	const char *p = data, *end = p + len;
	uint32_t version;
	/* each field's offset depends on the previous one's length: left to
	 * itself the walk waits for one cache miss after the other (SEARCH
	 * over a whole mailbox). Ask for the record's lines all at once. */
	for (size_t off = 0; off < len && off < CACHE_PREFETCH_MAX; off += 64)
		__builtin_prefetch(p + off);
	memset(cache, 0, sizeof(*cache));
	if (len < sizeof(version))
		return -1;
	memcpy(&version, p, sizeof(version));
	p += sizeof(version);
	if (version != CACHE_VERSION)
		return -1;
	const char **fields[CACHE_FIELDS] = {
		&cache->envelope, &cache->body, &cache->bodystructure, &cache->subject,
		&cache->from, &cache->to, &cache->cc, &cache->bcc, &cache->message_id,
		&cache->in_reply_to, &cache->references,
	};
	for (size_t i = 0; i < CACHE_FIELDS; i++) {
		uint32_t slen;
		if ((size_t)(end - p) < sizeof(slen))
			return -1;
		memcpy(&slen, p, sizeof(slen));
		p += sizeof(slen);
		if ((size_t)(end - p) < (size_t)slen + 1)
			return -1;
		*fields[i] = p;
		p += slen + 1;
	}
	int64_t date;
	uint32_t count;
	if ((size_t)(end - p) < sizeof(date) + sizeof(count))
		return -1;
	memcpy(&date, p, sizeof(date));
	p += sizeof(date);
	memcpy(&count, p, sizeof(count));
	p += sizeof(count);
	if ((size_t)(end - p) / sizeof(struct cache_part_rec) < count)
		return -1;
	cache->date = (time_t)date;
	if (*parts_cap < count) {
		*parts = xrealloc(*parts, count * sizeof(**parts));
		*parts_cap = count;
	}
	for (uint32_t i = 0; i < count; i++) {
		struct cache_part_rec r;
		memcpy(&r, p, sizeof(r));
		p += sizeof(r);
		struct store_part *sp = &(*parts)[i];
		sp->parent = r.parent;
		sp->first_child = r.first_child;
		sp->next_sibling = r.next_sibling;
		sp->is_multipart = (r.flags & 1u) != 0;
		sp->is_message = (r.flags & 2u) != 0;
		sp->header_offset = r.header_offset;
		sp->body_offset = r.body_offset;
		sp->body_end = r.body_end;
		sp->header_crlf_size = r.header_crlf_size;
		sp->body_crlf_size = r.body_crlf_size;
		sp->body_lines = r.body_lines;
	}
	cache->parts = *parts;
	cache->part_count = count;
	return 0;
}

int cache_put(struct store_account *acct, MDB_txn *txn, uint32_t id, uint32_t uid,
	      const struct buf *blob)
{
	uint64_t key = msg_key(id, uid);
	MDB_val k = { sizeof(key), &key }, v = { blob->len, blob->data };
	int ret = index_note(acct, mdb_put(txn, acct->db_cache, &k, &v, 0));
	if (ret != 0)
		return acct_fail(acct, NULL, ret == MDB_MAP_FULL ? STORE_ERR_LIMIT
				 : STORE_ERR_INTERNAL, "index: cache put: %s", mdb_strerror(ret));
	return 0;
}

int cache_index_file(struct store_account *acct, MDB_txn *txn, uint32_t id, uint32_t uid,
		     const char *path, uint64_t *size_r, uint64_t *crlf_size_r,
		     time_t *date_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct mime_message msg;
	memset(&msg, 0, sizeof(msg));
	if (mime_parse_fd(fd, &msg) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	struct buf blob = BUF_INIT;
	cache_serialize(&blob, &msg);
	int ret = cache_put(acct, txn, id, uid, &blob);
	buf_free(&blob);
	*size_r = msg.size;
	*crlf_size_r = msg.crlf_size;
	*date_r = msg.date;
	mime_message_free(&msg);
	return ret;
}

int store_cache_find_part(const struct store_cache *cache, const char *path)
{
	/* the tree is the parser's, flattened: let the parser walk it */
	struct mime_message msg;
	memset(&msg, 0, sizeof(msg));
	msg.part_count = (uint32_t)cache->part_count;
	msg.parts = xcalloc(cache->part_count > 0 ? cache->part_count : 1,
			    sizeof(*msg.parts));
	for (size_t i = 0; i < cache->part_count; i++) {
		const struct store_part *sp = &cache->parts[i];
		msg.parts[i].parent = sp->parent;
		msg.parts[i].first_child = sp->first_child;
		msg.parts[i].next_sibling = sp->next_sibling;
		msg.parts[i].is_multipart = sp->is_multipart;
		msg.parts[i].is_message = sp->is_message;
	}
	int ret = mime_find_part(&msg, path);
	free(msg.parts);
	return ret;
}

void store_header_filter(const void *header, size_t len, const char *const *names,
			 size_t name_count, bool exclude, struct buf *out)
{
	mime_header_filter(header, len, names, name_count, exclude, out);
}

char *store_decode_body(const void *header, size_t header_len, const void *body,
			size_t body_len, bool to_utf8, size_t *len_r)
{
	return mime_decode_body(header, header_len, body, body_len, to_utf8, len_r);
}

char *store_decode_header(const char *value, size_t len)
{
	return mime_decode_header(value, len);
}

/* OBJECTID (RFC 8474) and SAVEDATE (RFC 8514): the identifiers as the
 * client sees them.
 * - MAILBOXID: "F" + the mailbox's UIDVALIDITY in hex. The store never
 *   hands out a UIDVALIDITY twice in an account (max(now, last + 1)),
 *   keeps it across RENAME and across an index rebuild (dovecot-uidlist),
 *   and a deleted and recreated mailbox gets a new one: exactly the life
 *   of a MAILBOXID.
 * - EMAILID: "M" + the store's 64-bit message identity in hex (a hash of
 *   the message's file name; a copy keeps its original's).
 * - THREADID: "T" + a hash of the thread's root Message-ID: the first one
 *   in References:, else In-Reply-To:, else the message's own; a message
 *   with none of them is a thread of its own (its EMAILID). Messages with
 *   the same EMAILID have the same headers, hence the same THREADID. */
#include "imap/imap-private.h"
#include "store/store.h"

#include <string.h>

void imap_append_mailboxid(struct buf *b, uint32_t uidvalidity)
{
	buf_printf(b, "F%08x", uidvalidity);
}

void imap_append_emailid(struct buf *b, uint64_t emailid)
{
	buf_printf(b, "M%016llx", (unsigned long long)emailid);
}

/* The first "<...>" of a header value, without the brackets and with
 * white space dropped; NULL when there is none. */
static const char *first_msgid(const char *value, size_t *len_r)
{
	const char *open = value != NULL ? strchr(value, '<') : NULL;
	const char *close = open != NULL ? strchr(open + 1, '>') : NULL;
	if (close == NULL || close == open + 1)
		return NULL;
	*len_r = (size_t)(close - open - 1);
	return open + 1;
}

uint64_t imap_threadid(const struct store_cache *cache, uint64_t emailid)
{
	const char *fields[3] = { cache->references, cache->in_reply_to, cache->message_id };
	for (size_t i = 0; i < 3; i++) {
		size_t len;
		const char *id = first_msgid(fields[i], &len);
		if (id == NULL)
			continue;
		uint64_t h = UINT64_C(0xcbf29ce484222325);
		for (size_t j = 0; j < len; j++) {
			unsigned char c = (unsigned char)id[j];
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
				continue;
			h ^= c;
			h *= UINT64_C(0x100000001b3);
		}
		return h;
	}
	return emailid;
}

void imap_append_threadid(struct buf *b, uint64_t threadid)
{
	buf_printf(b, "T%016llx", (unsigned long long)threadid);
}

bool imap_objectid_parse(const char *text, char prefix, uint64_t *value_r)
{
	/* ours are prefix + lower-case hex (object ids are case-sensitive);
	 * anything else names nothing we have */
	size_t len = strlen(text);
	if (len < 2 || len > 17 || text[0] != prefix)
		return false;
	uint64_t v = 0;
	for (size_t i = 1; i < len; i++) {
		char c = text[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		v = v << 4 | (uint64_t)store_hex_value(c);
	}
	*value_r = v;
	return true;
}

bool imap_objectid_valid(const char *text)
{
	/* objectid = 1*255(ALPHA / DIGIT / "_" / "-") */
	size_t len = strlen(text);
	if (len == 0 || len > 255)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

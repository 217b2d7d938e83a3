/* Shared helpers of the IMAP commands: strings and mailbox names on the
 * wire, flag lists, store errors as response codes, sequence sets. */
#include "imap/imap-private.h"
#include "store/store.h"
#include "mail/mail.h"

#include <stdlib.h>
#include <string.h>

void imap_append_string(struct buf *b, const char *s, size_t len)
{
	mail_imap_string(b, s, len);
}

void imap_append_nstring(struct buf *b, const char *s)
{
	mail_imap_nstring(b, s);
}

bool imap_is_recent(const struct imap_session *s, uint32_t uid)
{
	return !(s->enabled & IMAP_ENABLED_IMAP4REV2) && store_mailbox_is_recent(s->mbox, uid);
}

const char *imap_mailbox_from_client(const struct imap_session *s, struct pool *pool,
				     const char *name)
{
	if (ascii_strcasecmp(name, "INBOX") == 0)
		return "INBOX";
	/* RFC 9051 5.1: IMAP4rev2 names are UTF-8 */
	char *utf8 = (s->enabled & IMAP_ENABLED_IMAP4REV2) ? xstrdup(name) : store_mutf7_decode(name);
	if (utf8 == NULL)
		return NULL;
	const char *result = pool_strdup(pool, utf8);
	free(utf8);
	/* "inbox/x" names INBOX's child: the store spells INBOX in capitals */
	if (ascii_strncasecmp(result, "INBOX/", 6) == 0)
		result = pool_printf(pool, "INBOX/%s", result + 6);
	return result;
}

void imap_append_mailbox(const struct imap_session *s, struct buf *b, const char *utf8)
{
	if (s->enabled & IMAP_ENABLED_IMAP4REV2) {
		imap_append_string(b, utf8, strlen(utf8));
		return;
	}
	char *enc = store_mutf7_encode(utf8);
	const char *name = enc != NULL ? enc : utf8;
	imap_append_string(b, name, strlen(name));
	free(enc);
}

void imap_store_error(struct imap_session *s, const char *tag, int err, const char *msg)
{
	const char *code;
	switch (err) {
	case STORE_ERR_NOTFOUND:
		code = "NONEXISTENT";
		break;
	case STORE_ERR_EXISTS:
		code = "ALREADYEXISTS";
		break;
	case STORE_ERR_OVERQUOTA:
		code = "OVERQUOTA";
		break;
	case STORE_ERR_INVALID:
	case STORE_ERR_NOTPOSSIBLE:
	case STORE_ERR_READONLY:
		code = "CANNOT";
		break;
	case STORE_ERR_LIMIT:
		code = "LIMIT";
		break;
	case STORE_ERR_INUSE:
		code = "INUSE";
		break;
	default:
		log_error("event=store-error error=\"%s\"", msg != NULL ? msg : "");
		imap_no(s, tag, "[SERVERBUG] Internal error");
		return;
	}
	char text[256];
	log_sanitize(text, sizeof(text), msg != NULL ? msg : "failed",
		     strlen(msg != NULL ? msg : "failed"));
	imap_no(s, tag, "[%s] %s", code, text);
}

void imap_append_flags(struct buf *b, struct store_mailbox *mbox, uint32_t flags,
		       uint64_t keywords, bool recent)
{
	static const struct { uint32_t bit; const char *name; } names[] = {
		{ STORE_FLAG_SEEN, "\\Seen" }, { STORE_FLAG_ANSWERED, "\\Answered" },
		{ STORE_FLAG_FLAGGED, "\\Flagged" }, { STORE_FLAG_DELETED, "\\Deleted" },
		{ STORE_FLAG_DRAFT, "\\Draft" },
	};
	bool first = true;
	buf_append_char(b, '(');
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(flags & names[i].bit))
			continue;
		buf_printf(b, "%s%s", first ? "" : " ", names[i].name);
		first = false;
	}
	for (unsigned int i = 0; i < STORE_MAX_KEYWORDS; i++) {
		if (!(keywords & (UINT64_C(1) << i)))
			continue;
		const char *kw = store_mailbox_keyword(mbox, i);
		if (kw == NULL)
			continue;
		buf_printf(b, "%s%s", first ? "" : " ", kw);
		first = false;
	}
	if (recent)
		buf_printf(b, "%s\\Recent", first ? "" : " ");
	buf_append_char(b, ')');
}

size_t imap_uid_lower_bound(const uint32_t *uids, size_t count, uint32_t uid)
{
	size_t lo = 0, hi = count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int imap_seqset_to_uids(struct imap_session *s, struct imap_cmd *cmd, const struct imap_arg *arg,
			bool uid, struct store_uidset *set_r)
{
	const char *text;
	struct imap_seqset seq;
	if (!imap_arg_atom(arg, &text) || imap_seqset_parse(cmd->pool, text, true, &seq) < 0) {
		imap_bad(s, cmd->tag, "Invalid sequence set");
		return -1;
	}
	if (seq.dollar) {
		/* RFC 5182: the saved result, empty when nothing was saved */
		for (size_t i = 0; s->saved_valid && i < s->saved.count; i++)
			store_uidset_add(set_r, s->saved.ranges[i].lo, s->saved.ranges[i].hi);
		return 0;
	}
	size_t count;
	const uint32_t *uids = store_mailbox_uids(s->mbox, &count);
	for (size_t i = 0; i < seq.count; i++) {
		uint32_t lo = seq.ranges[i].lo, hi = seq.ranges[i].hi;
		if (count == 0)
			continue;
		if (uid) {
			uint32_t max = uids[count - 1];
			if (hi == IMAP_SEQ_STAR)
				hi = max;
			if (lo == IMAP_SEQ_STAR)
				lo = max;
			if (lo > hi) {
				uint32_t t = lo;
				lo = hi;
				hi = t;
			}
			/* only UIDs of the view: the client knows no others */
			size_t first = imap_uid_lower_bound(uids, count, lo);
			size_t end = hi == UINT32_MAX ? count : imap_uid_lower_bound(uids, count, hi + 1);
			if (first < end)
				store_uidset_add(set_r, uids[first], uids[end - 1]);
			continue;
		}
		if (hi == IMAP_SEQ_STAR)
			hi = (uint32_t)count;
		if (lo == IMAP_SEQ_STAR)
			lo = (uint32_t)count;
		if (lo > hi) {
			uint32_t t = lo;
			lo = hi;
			hi = t;
		}
		if (hi > count) {
			store_uidset_clear(set_r);
			imap_bad(s, cmd->tag, "Invalid message sequence number");
			return -1;
		}
		store_uidset_add(set_r, uids[lo - 1], uids[hi - 1]);
	}
	return 0;
}

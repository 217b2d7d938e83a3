/* Mailbox commands: SELECT/EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE,
 * UNSUBSCRIBE, STATUS, NAMESPACE, CLOSE, UNSELECT, CHECK; and the untagged
 * updates of the selected mailbox (RFC 3501 7.4.1). */
#include "imap/imap-private.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#define SYSTEM_FLAGS "\\Answered \\Flagged \\Deleted \\Seen \\Draft"

void imap_mailbox_close(struct imap_session *s)
{
	if (s->mbox != NULL)
		store_mailbox_close(&s->mbox);
	s->exists = 0;
	s->own_count = 0;
	store_uidset_clear(&s->saved);
	s->saved_valid = false;
	if (s->state == IMAP_STATE_SELECTED)
		imap_set_state(s, IMAP_STATE_AUTHENTICATED);
}

/* Sequence number a UID had before an expunge reported in ascending order:
 * later numbers already shifted by the EXPUNGEs sent before. */
static uint32_t expunged_seq(const uint32_t *uids, size_t count, uint32_t uid)
{
	return (uint32_t)imap_uid_lower_bound(uids, count, uid) + 1;
}

void imap_own_flags_remember(struct imap_session *s, const struct store_msg *msg)
{
	if (s->own_count == s->own_cap) {
		s->own_cap = s->own_cap ? s->own_cap * 2 : 16;
		s->own = xrealloc(s->own, s->own_cap * sizeof(*s->own));
	}
	s->own[s->own_count].uid = msg->uid;
	s->own[s->own_count].flags = msg->flags;
	s->own[s->own_count].keywords = msg->keywords;
	s->own_count++;
}

/* Did this session report exactly these flags itself? */
static bool own_flags_known(const struct imap_session *s, const struct store_msg *msg)
{
	for (size_t i = s->own_count; i > 0; i--) {
		const struct imap_own_flags *o = &s->own[i - 1];
		if (o->uid == msg->uid)
			return o->flags == msg->flags && o->keywords == msg->keywords;
	}
	return false;
}

static void append_fetch_flags(struct imap_session *s, struct buf *b, const struct store_msg *msg,
			       uint32_t seq, bool with_uid)
{
	buf_printf(b, "* %u FETCH (", seq);
	if (with_uid)
		buf_printf(b, "UID %u ", msg->uid);
	buf_append_str(b, "FLAGS ");
	imap_append_flags(b, s->mbox, msg->flags, msg->keywords,
			  imap_is_recent(s, msg->uid));
	if (s->enabled & IMAP_ENABLED_CONDSTORE)
		buf_printf(b, " MODSEQ (%llu)", (unsigned long long)msg->modseq);
	buf_append_str(b, ")\r\n");
}

void imap_append_fetch_flags(struct imap_session *s, struct buf *b, uint32_t uid, bool with_uid)
{
	struct store_msg msg;
	const char *error;
	uint32_t seq = store_mailbox_uid_to_seq(s->mbox, uid);
	if (seq == 0 || store_msg_get(s->mbox, uid, &msg, &error) < 0)
		return;
	imap_own_flags_remember(s, &msg);
	if (b != NULL)
		append_fetch_flags(s, b, &msg, seq, with_uid);
}

/* Flags changed since the last sync, except those this session reported. */
static void sync_changed_flags(struct imap_session *s, const struct store_uids *changed,
			       struct buf *b)
{
	for (size_t i = 0; i < changed->count; i++) {
		struct store_msg msg;
		const char *error;
		uint32_t seq = store_mailbox_uid_to_seq(s->mbox, changed->uids[i]);
		if (seq == 0 || store_msg_get(s->mbox, changed->uids[i], &msg, &error) < 0)
			continue;
		if (!own_flags_known(s, &msg))
			append_fetch_flags(s, b, &msg, seq, true);
	}
	s->own_count = 0;
}

void imap_sync(struct imap_session *s, bool allow_expunge)
{
	if (allow_expunge)
		s->updates_pending = false;   /* nothing more is owed */
	if (s->mbox == NULL)
		return;
	struct store_sync sync;
	const char *error;
	int ret = allow_expunge ? store_mailbox_sync(s->mbox, &sync, &error)
				: store_mailbox_sync_keep_expunged(s->mbox, &sync, &error);
	if (ret < 0) {
		log_error("event=mailbox-sync-failed error=\"%s\"", error);
		return;
	}
	if (sync.uidvalidity_changed) {
		store_sync_free(&sync);
		conn_write_str(s->conn, "* BYE [UNAVAILABLE] Mailbox was deleted or recreated\r\n");
		conn_close(s->conn, "mailbox-recreated");
		return;
	}
	struct buf b = BUF_INIT;
	size_t count;
	const uint32_t *uids = store_mailbox_uids(s->mbox, &count);
	if ((s->enabled & IMAP_ENABLED_QRESYNC) && sync.expunged.count > 0) {
		/* RFC 7162 3.2.10 */
		buf_append_str(&b, "* VANISHED ");
		imap_append_uid_list(&b, sync.expunged.uids, sync.expunged.count);
		buf_append_str(&b, "\r\n");
	} else {
		for (size_t i = 0; i < sync.expunged.count; i++)
			buf_printf(&b, "* %u EXPUNGE\r\n",
				   expunged_seq(uids, count, sync.expunged.uids[i]));
	}
	s->exists = s->exists > sync.expunged.count ? s->exists - (uint32_t)sync.expunged.count : 0;
	if (count != s->exists) {
		struct store_status st;
		store_mailbox_get_status(s->mbox, &st);
		buf_printf(&b, "* %zu EXISTS\r\n", count);
		if (!(s->enabled & IMAP_ENABLED_IMAP4REV2))
			buf_printf(&b, "* %u RECENT\r\n", st.recent);
		s->exists = (uint32_t)count;
	}
	sync_changed_flags(s, &sync.changed, &b);
	if (b.len > 0)
		imap_write_buf(s, &b);
	buf_free(&b);
	store_sync_free(&sync);
}

static bool mailbox_arg(struct imap_session *s, struct imap_cmd *cmd, size_t i,
			const char **name_r)
{
	const char *raw;
	if (i >= cmd->count || !imap_arg_astring(&cmd->args[i], &raw)) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return false;
	}
	*name_r = imap_mailbox_from_client(s, cmd->pool, raw);
	if (*name_r == NULL) {
		imap_no(s, cmd->tag, "[CANNOT] Invalid mailbox name");
		return false;
	}
	return true;
}

/* The first unseen message's sequence number, 0 when none. */
static uint32_t first_unseen(struct store_mailbox *mbox)
{
	/* walks until the first one: often the first message, never more
	 * than the mailbox */
	struct store_iter *iter = store_iter_new(mbox, NULL);
	struct store_msg msg;
	uint32_t seq = 0;
	while (seq == 0 && store_iter_next(iter, &msg))
		if ((msg.flags & STORE_FLAG_SEEN) == 0)
			seq = store_mailbox_uid_to_seq(mbox, msg.uid);
	store_iter_free(&iter);
	return seq;
}

/* SELECT parameters: (CONDSTORE) and (QRESYNC (...)) of RFC 7162. */
static int select_params(struct imap_session *s, struct imap_cmd *cmd,
			 const struct imap_arg **qresync_r)
{
	*qresync_r = NULL;
	if (cmd->count == 1)
		return 0;
	const struct imap_arg *p = &cmd->args[1];
	if (cmd->count != 2 || p->type != IMAP_ARG_LIST)
		return -1;
	for (size_t i = 0; i < p->count; i++) {
		if (imap_arg_is_atom(&p->items[i], "CONDSTORE")) {
			s->enabled |= IMAP_ENABLED_CONDSTORE;
		} else if (imap_arg_is_atom(&p->items[i], "QRESYNC") && i + 1 < p->count &&
			   p->items[i + 1].type == IMAP_ARG_LIST &&
			   (s->enabled & IMAP_ENABLED_QRESYNC)) {
			*qresync_r = &p->items[++i];
		} else {
			return -1;
		}
	}
	return 0;
}

static bool seqset_has(const struct imap_seqset *set, uint32_t n)
{
	for (size_t i = 0; i < set->count; i++)
		if (n >= set->ranges[i].lo && n <= set->ranges[i].hi)
			return true;
	return false;
}

/* A QRESYNC set: a sequence-set without "*" (RFC 7162 7); its number of
 * elements in *size_r. */
static int qresync_set(struct pool *pool, const struct imap_arg *arg, struct imap_seqset *set_r,
		       uint64_t *size_r)
{
	const char *text;
	if (!imap_arg_atom(arg, &text) || imap_seqset_parse(pool, text, false, set_r) < 0)
		return -1;
	*size_r = 0;
	for (size_t i = 0; i < set_r->count; i++) {
		if (set_r->ranges[i].hi == IMAP_SEQ_STAR)
			return -1;
		*size_r += (uint64_t)set_r->ranges[i].hi - set_r->ranges[i].lo + 1;
	}
	return 0;
}

/* The elements of a set in the order the client gave them. */
struct set_walk {
	const struct imap_seqset *set;
	size_t range;
	uint64_t next;   /* 0: start of the current range */
};

static bool set_walk_next(struct set_walk *w, uint32_t *value_r)
{
	while (w->range < w->set->count) {
		const struct imap_seq_range *r = &w->set->ranges[w->range];
		if (w->next == 0)
			w->next = r->lo;
		if (w->next <= r->hi) {
			*value_r = (uint32_t)w->next++;
			return true;
		}
		w->range++;
		w->next = 0;
	}
	return false;
}

/* RFC 7162 3.2.5.2, message sequence match data: the pairs (sequence
 * number, UID) are compared in order with the mailbox as it is now; up to
 * the first pair that does not match, the client knows every expunge at
 * or below the UID of the last pair that did. Returns that UID (0: none). */
static uint32_t qresync_known_floor(struct imap_session *s, const struct imap_seqset *seqs,
				    const struct imap_seqset *uids)
{
	size_t count;
	const uint32_t *view = store_mailbox_uids(s->mbox, &count);
	struct set_walk ws = { seqs, 0, 0 }, wu = { uids, 0, 0 };
	uint32_t seq, uid, floor = 0;
	while (set_walk_next(&ws, &seq) && set_walk_next(&wu, &uid)) {
		if (seq == 0 || seq > count || view[seq - 1] != uid)
			break;
		floor = uid;
	}
	return floor;
}

struct qresync_params {
	uint64_t uidvalidity, modseq;
	struct imap_seqset known;        /* known-uids */
	bool have_known, have_match;
	struct imap_seqset match_seqs, match_uids;
};

/* (uidvalidity modseq [known-uids] [(known-sequence-set known-uid-set)]) */
static int qresync_parse(struct imap_cmd *cmd, const struct imap_arg *q,
			 struct qresync_params *p)
{
	memset(p, 0, sizeof(*p));
	uint64_t n1, n2;
	if (q->count < 2 || q->count > 4 || !imap_arg_number(&q->items[0], &p->uidvalidity) ||
	    p->uidvalidity == 0 || !imap_arg_number(&q->items[1], &p->modseq) || p->modseq == 0)
		return -1;
	size_t i = 2;
	if (i < q->count && q->items[i].type != IMAP_ARG_LIST) {
		if (qresync_set(cmd->pool, &q->items[i], &p->known, &n1) < 0)
			return -1;
		p->have_known = true;
		i++;
	}
	if (i < q->count) {
		const struct imap_arg *m = &q->items[i];
		if (m->type != IMAP_ARG_LIST || m->count != 2 ||
		    qresync_set(cmd->pool, &m->items[0], &p->match_seqs, &n1) < 0 ||
		    qresync_set(cmd->pool, &m->items[1], &p->match_uids, &n2) < 0 || n1 != n2)
			return -1;
		p->have_match = true;
		i++;
	}
	return i == q->count ? 0 : -1;
}

/* QRESYNC: what vanished and what changed since the client's modseq, when
 * its UIDVALIDITY is current; VANISHED (EARLIER) and the FETCH of changed
 * flags only name UIDs of known-uids, VANISHED only above what the
 * sequence match data shows the client knows. */
static int select_qresync(struct imap_session *s, struct imap_cmd *cmd,
			  const struct imap_arg *q, uint32_t uidvalidity, struct buf *b)
{
	struct qresync_params p;
	if (qresync_parse(cmd, q, &p) < 0)
		return -1;
	if (p.uidvalidity != uidvalidity)
		return 0;
	struct store_uids changed = STORE_UIDS_INIT, vanished = STORE_UIDS_INIT, shown = STORE_UIDS_INIT;
	const char *error;
	if (store_changes_since(s->mbox, p.modseq, &changed, &vanished, &error) < 0) {
		log_error("event=qresync-failed error=\"%s\"", error);
		return 0;
	}
	uint32_t floor = p.have_match ? qresync_known_floor(s, &p.match_seqs, &p.match_uids) : 0;
	for (size_t i = 0; i < vanished.count; i++)
		if (vanished.uids[i] > floor && (!p.have_known || seqset_has(&p.known, vanished.uids[i])))
			store_uids_push(&shown, vanished.uids[i]);
	if (shown.count > 0) {
		buf_append_str(b, "* VANISHED (EARLIER) ");
		imap_append_uid_list(b, shown.uids, shown.count);
		buf_append_str(b, "\r\n");
	}
	/* flag changes too only for the messages the client says it has */
	for (size_t i = 0; i < changed.count; i++)
		if (!p.have_known || seqset_has(&p.known, changed.uids[i]))
			imap_append_fetch_flags(s, b, changed.uids[i], true);
	store_uids_clear(&changed);
	store_uids_clear(&vanished);
	store_uids_clear(&shown);
	return 0;
}

void imap_cmd_select(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *name, *error;
	const struct imap_arg *qresync;
	bool read_only = strcmp(cmd->name, "EXAMINE") == 0;
	if (!mailbox_arg(s, cmd, 0, &name))
		return;
	if (select_params(s, cmd, &qresync) < 0) {
		imap_bad(s, cmd->tag, "Unsupported SELECT parameters");
		return;
	}
	if (s->mbox != NULL) {
		imap_mailbox_close(s);
		conn_write_str(s->conn, "* OK [CLOSED] Previous mailbox closed\r\n");
	}
	unsigned int flags = (read_only ? STORE_OPEN_READ_ONLY : 0) |
			     ((s->enabled & IMAP_ENABLED_IMAP4REV2) != 0 ? STORE_OPEN_NO_RECENT : 0);
	int ret = store_mailbox_open(s->account, name, flags, &s->mbox, &error);
	if (ret < 0) {
		imap_store_error(s, cmd->tag, ret, error);
		return;
	}
	s->read_only = read_only;
	struct store_status st;
	store_mailbox_get_status(s->mbox, &st);
	size_t count;
	store_mailbox_uids(s->mbox, &count);
	s->exists = (uint32_t)count;

	struct buf b = BUF_INIT, kw = BUF_INIT;
	for (unsigned int i = 0; i < STORE_MAX_KEYWORDS; i++) {
		const char *k = store_mailbox_keyword(s->mbox, i);
		if (k != NULL)
			buf_printf(&kw, " %s", k);
	}
	buf_printf(&b, "* FLAGS (" SYSTEM_FLAGS "%s)\r\n", buf_str(&kw));
	if (read_only)
		buf_append_str(&b, "* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
	else
		buf_printf(&b, "* OK [PERMANENTFLAGS (" SYSTEM_FLAGS "%s \\*)] Flags permitted\r\n",
			   buf_str(&kw));
	buf_printf(&b, "* %zu EXISTS\r\n", count);
	if (s->enabled & IMAP_ENABLED_IMAP4REV2) {
		/* RFC 9051 6.3.2: LIST with the mailbox's name; no RECENT, no UNSEEN */
		buf_append_str(&b, "* LIST () \"/\" ");
		imap_append_mailbox(s, &b, name);
		buf_append_str(&b, "\r\n");
	} else {
		buf_printf(&b, "* %u RECENT\r\n", st.recent);
		uint32_t unseen = st.unseen > 0 ? first_unseen(s->mbox) : 0;
		if (unseen > 0)
			buf_printf(&b, "* OK [UNSEEN %u] First unseen\r\n", unseen);
	}
	buf_printf(&b, "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT %u] Predicted next UID\r\n",
		   st.uidvalidity, st.uidnext);
	buf_printf(&b, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
		   (unsigned long long)st.highestmodseq);
	buf_append_str(&b, "* OK [MAILBOXID (");
	imap_append_mailboxid(&b, st.uidvalidity);
	buf_append_str(&b, ")] Ok\r\n");
	if (qresync != NULL && select_qresync(s, cmd, qresync, st.uidvalidity, &b) < 0) {
		buf_free(&b);
		buf_free(&kw);
		imap_mailbox_close(s);
		imap_bad(s, cmd->tag, "Invalid QRESYNC parameters");
		return;
	}
	buf_printf(&b, "%s OK [%s] %s completed\r\n", cmd->tag,
		   read_only ? "READ-ONLY" : "READ-WRITE", cmd->name);
	imap_write_buf(s, &b);
	buf_free(&b);
	buf_free(&kw);
	imap_set_state(s, IMAP_STATE_SELECTED);
}

static int special_use_parse(const struct imap_arg *list, uint32_t *use_r)
{
	static const struct { const char *name; uint32_t bit; } uses[] = {
		{ "\\Sent", STORE_SPECIAL_SENT }, { "\\Drafts", STORE_SPECIAL_DRAFTS },
		{ "\\Trash", STORE_SPECIAL_TRASH }, { "\\Junk", STORE_SPECIAL_JUNK },
		{ "\\Archive", STORE_SPECIAL_ARCHIVE }, { "\\All", STORE_SPECIAL_ALL },
		{ "\\Flagged", STORE_SPECIAL_FLAGGED },
	};
	*use_r = 0;
	for (size_t i = 0; i < list->count; i++) {
		size_t j = 0;
		while (j < sizeof(uses) / sizeof(uses[0]) && !imap_arg_is_atom(&list->items[i], uses[j].name))
			j++;
		if (j == sizeof(uses) / sizeof(uses[0]))
			return -1;
		*use_r |= uses[j].bit;
	}
	return 0;
}

static void store_reply(struct imap_session *s, struct imap_cmd *cmd, int ret, const char *error)
{
	if (ret < 0)
		imap_store_error(s, cmd->tag, ret, error);
	else
		imap_ok(s, cmd->tag, "%s completed", cmd->name);
}

void imap_cmd_create(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *name, *error;
	uint32_t use = 0;
	if (!mailbox_arg(s, cmd, 0, &name))
		return;
	if (cmd->count == 2) {
		/* RFC 6154: CREATE name (USE (\Sent)) */
		const struct imap_arg *p = &cmd->args[1];
		if (p->type != IMAP_ARG_LIST || p->count != 2 || !imap_arg_is_atom(&p->items[0], "USE") ||
		    p->items[1].type != IMAP_ARG_LIST) {
			imap_bad(s, cmd->tag, "Invalid CREATE parameters");
			return;
		}
		if (special_use_parse(&p->items[1], &use) < 0) {
			imap_no(s, cmd->tag, "[USEATTR] Unsupported special-use attribute");
			return;
		}
	} else if (cmd->count != 1) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	size_t len = strlen(name);
	if (len > 1 && name[len - 1] == '/')
		name = pool_strndup(cmd->pool, name, len - 1);
	if (strcmp(name, "INBOX") == 0) {
		imap_no(s, cmd->tag, "[ALREADYEXISTS] INBOX always exists");
		return;
	}
	int ret = store_mailbox_create(s->account, name, use, &error);
	struct store_status st;
	if (ret < 0 || store_mailbox_status(s->account, name, &st, &error) < 0) {
		store_reply(s, cmd, ret, error);
		return;
	}
	/* RFC 8474 4.1 */
	struct buf b = BUF_INIT;
	imap_append_mailboxid(&b, st.uidvalidity);
	imap_ok(s, cmd->tag, "[MAILBOXID (%s)] CREATE completed", buf_str(&b));
	buf_free(&b);
}

void imap_cmd_delete(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *name, *error;
	if (!mailbox_arg(s, cmd, 0, &name))
		return;
	if (cmd->count != 1) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	if (s->mbox != NULL && strcmp(store_mailbox_name(s->mbox), name) == 0)
		imap_mailbox_close(s);
	int ret = store_mailbox_delete(s->account, name, &error);
	store_reply(s, cmd, ret, error);
}

void imap_cmd_rename(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *from, *to, *error;
	if (!mailbox_arg(s, cmd, 0, &from) || !mailbox_arg(s, cmd, 1, &to))
		return;
	if (cmd->count != 2) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	int ret = store_mailbox_rename(s->account, from, to, &error);
	store_reply(s, cmd, ret, error);
}

static void subscribe(struct imap_session *s, struct imap_cmd *cmd, bool on)
{
	const char *name, *error;
	if (!mailbox_arg(s, cmd, 0, &name))
		return;
	if (cmd->count != 1) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	int ret = store_mailbox_subscribe(s->account, name, on, &error);
	store_reply(s, cmd, ret, error);
}

void imap_cmd_subscribe(struct imap_session *s, struct imap_cmd *cmd)
{
	subscribe(s, cmd, true);
}

void imap_cmd_unsubscribe(struct imap_session *s, struct imap_cmd *cmd)
{
	subscribe(s, cmd, false);
}

/* STATUS items into b as "(MESSAGES 3 ...)"; -1 for an unknown item. */
int imap_status_items(struct imap_session *s, const char *name, const struct imap_arg *items,
		      const struct store_status *st, struct buf *b)
{
	buf_append_char(b, '(');
	for (size_t i = 0; i < items->count; i++) {
		const char *item;
		if (!imap_arg_atom(&items->items[i], &item))
			return -1;
		if (i > 0)
			buf_append_char(b, ' ');
		if (ascii_strcasecmp(item, "MESSAGES") == 0)
			buf_printf(b, "MESSAGES %u", st->messages);
		else if (ascii_strcasecmp(item, "RECENT") == 0)
			buf_printf(b, "RECENT %u", st->recent);
		else if (ascii_strcasecmp(item, "UIDNEXT") == 0)
			buf_printf(b, "UIDNEXT %u", st->uidnext);
		else if (ascii_strcasecmp(item, "UIDVALIDITY") == 0)
			buf_printf(b, "UIDVALIDITY %u", st->uidvalidity);
		else if (ascii_strcasecmp(item, "UNSEEN") == 0)
			buf_printf(b, "UNSEEN %u", st->unseen);
		else if (ascii_strcasecmp(item, "DELETED") == 0)
			buf_printf(b, "DELETED %u", st->deleted);
		else if (ascii_strcasecmp(item, "SIZE") == 0)
			buf_printf(b, "SIZE %llu", (unsigned long long)st->size);
		else if (ascii_strcasecmp(item, "HIGHESTMODSEQ") == 0)
			buf_printf(b, "HIGHESTMODSEQ %llu", (unsigned long long)st->highestmodseq);
		else if (ascii_strcasecmp(item, "DELETED-STORAGE") == 0) {
			/* RFC 9208 4.2.2: in units of 1024 octets, like STORAGE */
			uint64_t bytes = 0;
			const char *error;
			if (store_mailbox_deleted_size(s->account, name, &bytes, &error) < 0)
				log_warn("event=deleted-size-failed error=\"%s\"", error);
			buf_printf(b, "DELETED-STORAGE %llu", (unsigned long long)((bytes + 1023) / 1024));
		} else if (ascii_strcasecmp(item, "MAILBOXID") == 0) {
			buf_append_str(b, "MAILBOXID (");
			imap_append_mailboxid(b, st->uidvalidity);
			buf_append_char(b, ')');
		} else
			return -1;
	}
	buf_append_char(b, ')');
	return 0;
}

void imap_cmd_status(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *name, *error;
	if (!mailbox_arg(s, cmd, 0, &name))
		return;
	if (cmd->count != 2 || cmd->args[1].type != IMAP_ARG_LIST || cmd->args[1].count == 0) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	struct store_status st;
	int ret = store_mailbox_status(s->account, name, &st, &error);
	if (ret < 0) {
		imap_store_error(s, cmd->tag, ret, error);
		return;
	}
	struct buf b = BUF_INIT;
	buf_append_str(&b, "* STATUS ");
	imap_append_mailbox(s, &b, name);
	buf_append_char(&b, ' ');
	if (imap_status_items(s, name, &cmd->args[1], &st, &b) < 0) {
		buf_free(&b);
		imap_bad(s, cmd->tag, "Invalid status item");
		return;
	}
	buf_append_str(&b, "\r\n");
	imap_write_buf(s, &b);
	buf_free(&b);
	imap_ok(s, cmd->tag, "STATUS completed");
}

void imap_cmd_namespace(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd->count != 0) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	conn_write_str(s->conn, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
	imap_ok(s, cmd->tag, "NAMESPACE completed");
}

void imap_cmd_check(struct imap_session *s, struct imap_cmd *cmd)
{
	imap_ok(s, cmd->tag, "CHECK completed");
}

void imap_cmd_close(struct imap_session *s, struct imap_cmd *cmd)
{
	if (!s->read_only) {
		/* RFC 3501 6.4.2: expunge \Deleted messages, silently */
		struct store_uidset all = STORE_UIDSET_INIT;
		const char *error;
		store_uidset_add(&all, 1, UINT32_MAX);
		if (store_msg_expunge(s->mbox, &all, true, NULL, &error) < 0)
			log_error("event=close-expunge-failed error=\"%s\"", error);
		store_uidset_clear(&all);
	}
	imap_mailbox_close(s);
	imap_ok(s, cmd->tag, "CLOSE completed");
}

void imap_cmd_unselect(struct imap_session *s, struct imap_cmd *cmd)
{
	imap_mailbox_close(s);
	imap_ok(s, cmd->tag, "UNSELECT completed");
}

/* Changes to messages: flags and keywords with MODSEQ, copy and move,
 * expunge, the CONDSTORE/QRESYNC change log, and search primitives. */
#include "store/store-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define view_fail(mbox, error_r, code, ...) \
	store_fail((mbox)->error, sizeof((mbox)->error), error_r, code, __VA_ARGS__)

struct found_msg {
	uint32_t uid;
	struct msg_rec rec;
	char *base;
};

/* The index's messages of mailbox id within set (NULL = all). */
static void collect_set(struct store_account *acct, MDB_txn *txn, uint32_t id,
			const struct store_uidset *set, struct found_msg **msgs_r,
			size_t *count_r)
{
	struct found_msg *msgs = NULL;
	size_t count = 0, cap = 0;
	MDB_cursor *cur;
	mdb_cursor_open(txn, acct->db_msg, &cur);
	size_t nranges = set != NULL ? set->count : 1;
	for (size_t r = 0; r < nranges; r++) {
		uint32_t lo = set != NULL ? set->ranges[r].lo : 0;
		uint32_t hi = set != NULL ? set->ranges[r].hi : UINT32_MAX;
		MDB_val v;
		uint32_t uid;
		bool started = false;
		while (index_id_next(cur, id, lo, &started, &uid, &v) && uid <= hi) {
			if (count == cap) {
				cap = cap == 0 ? 64 : cap * 2;
				msgs = xrealloc(msgs, cap * sizeof(*msgs));
			}
			msgs[count].uid = uid;
			memcpy(&msgs[count].rec, v.mv_data, sizeof(msgs[count].rec));
			msgs[count].base = xstrdup((const char *)v.mv_data + sizeof(struct msg_rec));
			count++;
		}
	}
	mdb_cursor_close(cur);
	*msgs_r = msgs;
	*count_r = count;
}

static void free_found(struct found_msg *msgs, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(msgs[i].base);
	free(msgs);
}

/* Begins a write transaction on the view's mailbox record. */
static int begin_write(struct store_mailbox *mbox, MDB_txn **txn_r, struct mbox_rec *rec_r,
		       const char **error_r)
{
	if (mbox->read_only)
		return view_fail(mbox, error_r, STORE_ERR_READONLY, "mailbox is read-only");
	int ret = index_txn_begin(mbox->acct, true, txn_r, error_r);
	if (ret < 0)
		return ret;
	if (index_mbox_get(mbox->acct, *txn_r, mbox->name, rec_r) < 0 || rec_r->id != mbox->id) {
		mdb_txn_abort(*txn_r);
		return view_fail(mbox, error_r, STORE_ERR_NOTFOUND, "mailbox was deleted");
	}
	return 0;
}

static int finish_write(struct store_mailbox *mbox, MDB_txn *txn, struct mbox_rec *rec,
			const char **error_r)
{
	if (index_mbox_put(mbox->acct, txn, mbox->name, rec) < 0) {
		mdb_txn_abort(txn);
		return view_fail(mbox, error_r, STORE_ERR_INTERNAL, "index: put mailbox failed");
	}
	return index_txn_commit(mbox->acct, txn, error_r);
}

int store_msg_set_flags(struct store_mailbox *mbox, const struct store_uidset *set,
			enum store_flag_op op, uint32_t flags,
			const char *const *keywords, size_t keyword_count,
			uint64_t unchangedsince, struct store_uids *failed_r,
			const char **error_r)
{
	MDB_txn *txn;
	struct mbox_rec rec;
	int ret = begin_write(mbox, &txn, &rec, error_r);
	if (ret < 0)
		return ret;
	uint64_t kw_mask = 0;
	for (size_t i = 0; i < keyword_count; i++) {
		int k = index_keyword_lookup(mbox->acct, txn, mbox->name, &rec, keywords[i],
					     op != STORE_FLAGS_REMOVE);
		if (k < 0 && op != STORE_FLAGS_REMOVE) {
			mdb_txn_abort(txn);
			return view_fail(mbox, error_r, STORE_ERR_LIMIT,
					 "too many keywords, or not a keyword");
		}
		if (k >= 0)
			kw_mask |= (uint64_t)1 << k;
		/* a keyword new to the mailbox: the view names it at once, not
		 * only after the next sync (FETCH FLAGS right after STORE) */
		if (k >= 0 && k < STORE_MAX_KEYWORDS && mbox->keywords[k] == NULL)
			mbox->keywords[k] = xstrdup(keywords[i]);
	}
	flags &= STORE_FLAG_ALL;
	struct found_msg *msgs;
	size_t count;
	collect_set(mbox->acct, txn, mbox->id, set, &msgs, &count);
	char *dir = maildir_path(mbox->acct, mbox->name);
	struct own_change oc;
	heal_own_begin(&oc, mbox->acct, txn, dir, mbox->id);
	for (size_t i = 0; i < count && ret == 0; i++) {
		struct found_msg *m = &msgs[i];
		if (unchangedsince != 0 && m->rec.modseq > unchangedsince) {
			if (failed_r != NULL)
				store_uids_push(failed_r, m->uid);
			continue;
		}
		struct msg_rec next = m->rec;
		uint32_t sys = next.flags & STORE_FLAG_ALL;
		switch (op) {
		case STORE_FLAGS_ADD:
			sys |= flags;
			next.keywords |= kw_mask;
			break;
		case STORE_FLAGS_REMOVE:
			sys &= ~flags;
			next.keywords &= ~kw_mask;
			break;
		case STORE_FLAGS_REPLACE:
			sys = flags;
			next.keywords = kw_mask;
			break;
		}
		/* the message now has flags: it belongs in cur/ */
		next.flags = sys;
		if (next.flags == (m->rec.flags & STORE_FLAG_ALL) &&
		    next.keywords == m->rec.keywords)
			continue;
		if (maildir_rename_flags(dir, &m->rec, &next, m->base) < 0) {
			if (errno == ENOENT)
				continue;   /* vanished: the next heal expunges it */
			ret = view_fail(mbox, error_r, STORE_ERR_INTERNAL, "rename: %s",
					strerror(errno));
			break;
		}
		next.modseq = ++rec.highestmodseq;
		msgrec_account(&rec, &m->rec, -1);
		msgrec_account(&rec, &next, 1);
		if (index_msg_put(mbox->acct, txn, mbox->id, m->uid, &next, m->base) < 0)
			ret = view_fail(mbox, error_r, STORE_ERR_INTERNAL, "%s", mbox->acct->error);
	}
	free(dir);
	free_found(msgs, count);
	if (ret < 0) {
		/* files already renamed keep their new names: the next heal
		 * adopts those flags from the names */
		free(oc.dir);
		mdb_txn_abort(txn);
		return ret;
	}
	heal_own_end(&oc, &rec);
	return finish_write(mbox, txn, &rec, error_r);
}

static int copy_one(struct store_mailbox *mbox, MDB_txn *txn, const char *src_dir,
		    const char *dest, const char *dest_dir, struct mbox_rec *drec,
		    const struct found_msg *m, uint32_t *uid_r, const char **error_r)
{
	struct store_account *acct = mbox->acct;
	struct msg_rec next = m->rec;
	next.flags &= STORE_FLAG_ALL;
	next.keywords = 0;
	next.savedate = (uint32_t)time(NULL);
	for (unsigned int i = 0; i < STORE_MAX_KEYWORDS; i++) {
		if ((m->rec.keywords & ((uint64_t)1 << i)) == 0 || mbox->keywords[i] == NULL)
			continue;
		int k = index_keyword_lookup(acct, txn, dest, drec, mbox->keywords[i], true);
		if (k >= 0)
			next.keywords |= (uint64_t)1 << k;
	}
	char *base = maildir_new_base(acct->store, next.size, next.crlf_size);
	struct buf from = BUF_INIT, to = BUF_INIT;
	maildir_msg_path(&from, src_dir, &m->rec, m->base);
	maildir_msg_path(&to, dest_dir, &next, base);
	int ret = 0;
	if (link(from.data, to.data) < 0) {
		ret = view_fail(mbox, error_r, errno == ENOENT ? STORE_ERR_NOTFOUND
				: STORE_ERR_INTERNAL, "link %s: %s", from.data, strerror(errno));
	} else {
		uint32_t uid = drec->uidnext++;
		next.modseq = ++drec->highestmodseq;
		msgrec_account(drec, &next, 1);
		uint64_t key = msg_key(mbox->id, m->uid);
		MDB_val k = { sizeof(key), &key }, v;
		/* the copy keeps the original's EMAILID (RFC 8474 5.1) */
		uint64_t emailid = index_emailid(acct, txn, mbox->id, m->uid, m->base);
		uint64_t dkey = msg_key(drec->id, uid);
		MDB_val ek = { sizeof(dkey), &dkey }, ev = { sizeof(emailid), &emailid };
		if (index_msg_put(acct, txn, drec->id, uid, &next, base) < 0 ||
		    index_note(acct, mdb_put(txn, acct->db_emailid, &ek, &ev, 0)) != 0) {
			ret = view_fail(mbox, error_r, STORE_ERR_INTERNAL, "%s", acct->error);
		} else if (mdb_get(txn, acct->db_cache, &k, &v) == 0) {
			struct buf blob = BUF_INIT;
			buf_append(&blob, v.mv_data, v.mv_size);
			if (cache_put(acct, txn, drec->id, uid, &blob) < 0)
				ret = view_fail(mbox, error_r, STORE_ERR_INTERNAL, "%s", acct->error);
			buf_free(&blob);
		}
		if (ret == 0) {
			maildir_uidlist_append(acct->store, dest_dir, drec->uidvalidity, uid, base);
			*uid_r = uid;
		}
	}
	buf_free(&from);
	buf_free(&to);
	free(base);
	return ret;
}

int store_msg_copy(struct store_mailbox *mbox, const struct store_uidset *set,
		   const char *dest, bool move, uint32_t *uidvalidity_r,
		   struct store_uids *src_r, struct store_uids *dst_r,
		   const char **error_r)
{
	char *dname = maildir_canonical_name(dest);
	if (dname == NULL)
		return view_fail(mbox, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
	MDB_txn *txn;
	struct mbox_rec srec, drec_store, *drec = &drec_store;
	int ret;
	if (move) {
		ret = begin_write(mbox, &txn, &srec, error_r);
	} else {
		ret = index_txn_begin(mbox->acct, true, &txn, error_r);
		if (ret == 0 && index_mbox_get(mbox->acct, txn, mbox->name, &srec) < 0) {
			mdb_txn_abort(txn);
			ret = view_fail(mbox, error_r, STORE_ERR_NOTFOUND, "mailbox was deleted");
		}
	}
	if (ret < 0) {
		free(dname);
		return ret;
	}
	bool same = strcmp(dname, mbox->name) == 0;
	if (same)
		drec = &srec;
	else if (index_mbox_get(mbox->acct, txn, dname, drec) < 0) {
		mdb_txn_abort(txn);
		free(dname);
		return view_fail(mbox, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
	}
	struct found_msg *msgs;
	size_t count;
	collect_set(mbox->acct, txn, mbox->id, set, &msgs, &count);
	uint64_t total = 0;
	for (size_t i = 0; i < count; i++)
		total += msgs[i].rec.size;
	if (!move && !index_quota_allows(mbox->acct, txn, total, count)) {
		mdb_txn_abort(txn);
		free_found(msgs, count);
		free(dname);
		return view_fail(mbox, error_r, STORE_ERR_OVERQUOTA, "quota exceeded");
	}
	char *src_dir = maildir_path(mbox->acct, mbox->name);
	char *dest_dir = maildir_path(mbox->acct, dname);
	struct own_change src_oc, dest_oc;
	heal_own_begin(&src_oc, mbox->acct, txn, src_dir, srec.id);
	heal_own_begin(&dest_oc, mbox->acct, txn, dest_dir, drec->id);
	for (size_t i = 0; i < count && ret == 0; i++) {
		uint32_t uid = 0;
		ret = copy_one(mbox, txn, src_dir, dname, dest_dir, drec, &msgs[i], &uid, error_r);
		if (ret == STORE_ERR_NOTFOUND) {
			ret = 0;   /* vanished meanwhile: not copied */
			continue;
		}
		if (ret < 0)
			break;
		/* a move's expunge below gives the space back */
		index_quota_add(mbox->acct, txn, (int64_t)msgs[i].rec.size);
		if (src_r != NULL)
			store_uids_push(src_r, msgs[i].uid);
		if (dst_r != NULL)
			store_uids_push(dst_r, uid);
		if (move)
			ret = index_msg_expunge(mbox->acct, txn, mbox->name, &srec, msgs[i].uid,
						&msgs[i].rec, msgs[i].base);
	}
	/* the copies are acknowledged (OK, COPYUID): make the names durable */
	char *cur_dir = xasprintf("%s/cur", dest_dir);
	if (ret == 0 && count > 0 && fsync_dir(cur_dir) < 0)
		ret = view_fail(mbox, error_r, STORE_ERR_INTERNAL, "fsync: %s", strerror(errno));
	free(cur_dir);
	if (!same)
		heal_own_end(&dest_oc, drec);
	heal_own_end(&src_oc, &srec);
	free(dest_oc.dir);
	if (ret == 0 && !same && index_mbox_put(mbox->acct, txn, dname, drec) < 0)
		ret = view_fail(mbox, error_r, STORE_ERR_INTERNAL, "index: put mailbox failed");
	*uidvalidity_r = drec->uidvalidity;
	free(src_dir);
	free(dest_dir);
	free(dname);
	free_found(msgs, count);
	if (ret < 0) {
		mdb_txn_abort(txn);
		return ret;
	}
	return finish_write(mbox, txn, &srec, error_r);
}

int store_msg_expunge(struct store_mailbox *mbox, const struct store_uidset *set,
		      bool only_deleted, struct store_uids *expunged_r,
		      const char **error_r)
{
	MDB_txn *txn;
	struct mbox_rec rec;
	int ret = begin_write(mbox, &txn, &rec, error_r);
	if (ret < 0)
		return ret;
	struct found_msg *msgs;
	size_t count;
	char *dir = maildir_path(mbox->acct, mbox->name);
	struct own_change oc;
	heal_own_begin(&oc, mbox->acct, txn, dir, mbox->id);
	free(dir);
	collect_set(mbox->acct, txn, mbox->id, set, &msgs, &count);
	for (size_t i = 0; i < count && ret == 0; i++) {
		if (only_deleted && (msgs[i].rec.flags & STORE_FLAG_DELETED) == 0)
			continue;
		ret = index_msg_expunge(mbox->acct, txn, mbox->name, &rec, msgs[i].uid,
					&msgs[i].rec, msgs[i].base);
		if (ret == 0 && expunged_r != NULL)
			store_uids_push(expunged_r, msgs[i].uid);
	}
	free_found(msgs, count);
	if (ret < 0) {
		free(oc.dir);
		mdb_txn_abort(txn);
		return view_fail(mbox, error_r, ret, "%s", mbox->acct->error);
	}
	heal_own_end(&oc, &rec);
	return finish_write(mbox, txn, &rec, error_r);
}

/* Every UID below UIDNEXT that the index no longer has: what a client
 * whose modseq is older than the expunge log may have seen vanish (RFC
 * 7162 3.2.5.2 lets VANISHED (EARLIER) name UIDs it never saw). */
static void vanished_by_gaps(struct store_account *acct, MDB_txn *txn, uint32_t id,
			     uint32_t uidnext, struct store_uids *vanished_r)
{
	MDB_cursor *cur;
	if (mdb_cursor_open(txn, acct->db_msg, &cur) != 0)
		return;
	MDB_val v;
	uint32_t uid, next = 1;
	bool started = false;
	while (index_id_next(cur, id, 0, &started, &uid, &v)) {
		for (; next < uid; next++)
			store_uids_push(vanished_r, next);
		next = uid + 1;
	}
	for (; next < uidnext; next++)
		store_uids_push(vanished_r, next);
	mdb_cursor_close(cur);
}

int store_changes_since(struct store_mailbox *mbox, uint64_t modseq,
			struct store_uids *changed_r, struct store_uids *vanished_r,
			const char **error_r)
{
	MDB_txn *txn;
	int ret = index_txn_begin(mbox->acct, false, &txn, error_r);
	if (ret < 0)
		return ret;
	/* the expunge log holds every expunge above its floor only */
	struct mbox_rec mrec;
	if (index_mbox_get(mbox->acct, txn, mbox->name, &mrec) < 0 || mrec.id != mbox->id)
		mrec = mbox->rec;
	if (vanished_r != NULL && modseq < mrec.expunge_floor) {
		vanished_by_gaps(mbox->acct, txn, mbox->id, mrec.uidnext, vanished_r);
		vanished_r = NULL;
	}
	MDB_dbi dbis[2] = { mbox->acct->db_msg, mbox->acct->db_expunged };
	struct store_uids *outs[2] = { changed_r, vanished_r };
	for (int d = 0; d < 2; d++) {
		if (outs[d] == NULL)
			continue;
		MDB_cursor *cur;
		mdb_cursor_open(txn, dbis[d], &cur);
		MDB_val v;
		uint32_t uid;
		bool started = false;
		while (index_id_next(cur, mbox->id, 0, &started, &uid, &v)) {
			uint64_t m;
			if (d == 0) {
				struct msg_rec rec;
				memcpy(&rec, v.mv_data, sizeof(rec));
				m = rec.modseq;
			} else {
				memcpy(&m, v.mv_data, sizeof(m));
			}
			if (m > modseq)
				store_uids_push(outs[d], uid);
		}
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	return 0;
}

/* ---- search ---- */

int store_search_index(struct store_mailbox *mbox, const struct store_search *c,
		       struct store_uids *result_r, const char **error_r)
{
	struct store_iter *iter = store_iter_new(mbox, c->uids);
	struct store_msg msg;
	while (store_iter_next(iter, &msg)) {
		if ((msg.flags & c->flags_set) != c->flags_set || (msg.flags & c->flags_unset) != 0 ||
		    (msg.keywords & c->keywords_set) != c->keywords_set ||
		    (msg.keywords & c->keywords_unset) != 0)
			continue;
		if ((c->larger != 0 && msg.crlf_size <= c->larger) ||
		    (c->smaller != 0 && msg.crlf_size >= c->smaller))
			continue;
		if ((c->since != 0 && msg.internaldate < c->since) ||
		    (c->before != 0 && msg.internaldate >= c->before))
			continue;
		if (c->modseq != 0 && msg.modseq < c->modseq)
			continue;
		store_uids_push(result_r, msg.uid);
	}
	store_iter_free(&iter);
	(void)error_r;
	return 0;
}

static unsigned char ascii_fold(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* The first byte is compared inline: SEARCH runs this over every cached
 * field of a mailbox. */
static bool contains_ci(const char *hay, size_t hay_len, const char *needle, size_t nlen)
{
	if (nlen == 0)
		return true;
	unsigned char first = ascii_fold((unsigned char)needle[0]);
	for (size_t i = 0; i + nlen <= hay_len; i++)
		if (ascii_fold((unsigned char)hay[i]) == first &&
		    ascii_strncasecmp(hay + i + 1, needle + 1, nlen - 1) == 0)
			return true;
	return false;
}

bool store_contains_ci(const char *hay, size_t len, const char *needle)
{
	return contains_ci(hay, len, needle, strlen(needle));
}

bool store_cache_field_contains(const struct store_cache *cache,
				enum store_search_field field, const char *needle)
{
	const char *value = NULL;
	switch (field) {
	case STORE_SEARCH_SUBJECT: value = cache->subject; break;
	case STORE_SEARCH_FROM: value = cache->from; break;
	case STORE_SEARCH_TO: value = cache->to; break;
	case STORE_SEARCH_CC: value = cache->cc; break;
	case STORE_SEARCH_BCC: value = cache->bcc; break;
	case STORE_SEARCH_MESSAGE_ID: value = cache->message_id; break;
	}
	if (value == NULL)
		return false;
	return contains_ci(value, strlen(value), needle, strlen(needle));
}

/* Streams [start, end) of fd looking for needle. */
static int stream_contains(int fd, off_t start, off_t end, const char *needle, bool *found_r)
{
	size_t nlen = strlen(needle);
	/* keep nlen-1 bytes of overlap between reads */
	size_t keep = nlen > 0 ? nlen - 1 : 0;
	size_t cap = 65536 + keep, have = 0;
	char *window = xmalloc(cap);
	ssize_t n = 0;
	while (start < end) {
		size_t want = cap - have;
		if ((off_t)want > end - start)
			want = (size_t)(end - start);
		if ((n = pread(fd, window + have, want, start)) <= 0)
			break;
		start += n;
		have += (size_t)n;
		if (contains_ci(window, have, needle, nlen)) {
			*found_r = true;
			break;
		}
		if (have > keep) {
			memmove(window, window + have - keep, keep);
			have = keep;
		}
	}
	free(window);
	return n < 0 ? -1 : 0;
}

/* Reads [start, end) whole; NULL on error. */
static char *read_range(int fd, uint64_t start, uint64_t end)
{
	size_t len = (size_t)(end - start);
	char *data = xmalloc(len + 1);
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, data + done, len - done, (off_t)(start + done));
		if (n <= 0) {
			free(data);
			return NULL;
		}
		done += (size_t)n;
	}
	data[len] = '\0';
	return data;
}

#define TEXT_DECODE_MAX (16u * 1024 * 1024)

static int part_contains(int fd, const struct store_part *part, const char *needle,
			 bool *found_r)
{
	if (part->body_end < part->body_offset || part->body_offset < part->header_offset)
		return 0;
	if (part->body_end - part->header_offset > TEXT_DECODE_MAX)
		return stream_contains(fd, (off_t)part->body_offset, (off_t)part->body_end,
				       needle, found_r);
	char *data = read_range(fd, part->header_offset, part->body_end);
	if (data == NULL)
		return -1;
	size_t hlen = (size_t)(part->body_offset - part->header_offset), dlen;
	char *decoded = store_decode_body(data, hlen, data + hlen,
					  (size_t)(part->body_end - part->body_offset), true, &dlen);
	*found_r = contains_ci(decoded, dlen, needle, strlen(needle));
	free(decoded);
	free(data);
	return 0;
}

int store_msg_text_contains(struct store_mailbox *mbox, uint32_t uid, const char *needle,
			    bool body_only, bool *found_r, const char **error_r)
{
	struct store_cache cache;
	int fd, ret;
	*found_r = false;
	if ((ret = store_msg_cache(mbox, uid, &cache, error_r)) < 0)
		return ret;
	if (!body_only) {
		static const enum store_search_field fields[] = {
			STORE_SEARCH_SUBJECT, STORE_SEARCH_FROM, STORE_SEARCH_TO,
			STORE_SEARCH_CC, STORE_SEARCH_BCC,
		};
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			if (store_cache_field_contains(&cache, fields[i], needle)) {
				*found_r = true;
				return 0;
			}
		}
	}
	if ((ret = store_msg_open_fd(mbox, uid, &fd, error_r)) < 0)
		return ret;
	if (!body_only && cache.part_count > 0)
		ret = stream_contains(fd, (off_t)cache.parts[0].header_offset,
				      (off_t)cache.parts[0].body_offset, needle, found_r);
	for (size_t i = 0; ret == 0 && !*found_r && i < cache.part_count; i++) {
		const struct store_part *p = &cache.parts[i];
		if (i > 0 && p->parent != UINT32_MAX && cache.parts[p->parent].is_message)
			/* an attached message's header is part of the body text */
			ret = stream_contains(fd, (off_t)p->header_offset, (off_t)p->body_offset,
					      needle, found_r);
		if (ret == 0 && !*found_r && !p->is_multipart && !p->is_message)
			ret = part_contains(fd, p, needle, found_r);
	}
	close(fd);
	if (ret < 0)
		return view_fail(mbox, error_r, STORE_ERR_INTERNAL, "read: %s", strerror(errno));
	return 0;
}

/* Mailbox views: the snapshot a session works on, sync with the index,
 * message lookup and iteration, the parse cache and the message file. */
#include "store/store-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define view_fail(mbox, error_r, code, ...) \
	store_fail((mbox)->error, sizeof((mbox)->error), error_r, code, __VA_ARGS__)


static void view_load_keywords(struct store_mailbox *mbox, MDB_txn *txn)
{
	for (unsigned int i = 0; i < STORE_MAX_KEYWORDS; i++) {
		free(mbox->keywords[i]);
		mbox->keywords[i] = NULL;
	}
	for (uint32_t i = 0; i < mbox->rec.keyword_count && i < STORE_MAX_KEYWORDS; i++) {
		uint64_t key = msg_key(mbox->id, i);
		MDB_val k = { sizeof(key), &key }, v;
		if (mdb_get(txn, mbox->acct->db_kw, &k, &v) == 0)
			mbox->keywords[i] = xstrndup(v.mv_data, v.mv_size);
	}
}

/* Walks the index's messages of the view's mailbox in UID order. */
typedef void msg_visit_fn(void *ctx, uint32_t uid, const struct msg_rec *rec,
			  const char *base);
static void view_walk(struct store_mailbox *mbox, MDB_txn *txn, uint32_t from_uid,
		      msg_visit_fn *fn, void *ctx)
{
	MDB_cursor *cur;
	if (mdb_cursor_open(txn, mbox->acct->db_msg, &cur) != 0)
		return;
	MDB_val v;
	uint32_t uid;
	bool started = false;
	while (index_id_next(cur, mbox->id, from_uid, &started, &uid, &v)) {
		struct msg_rec rec;
		memcpy(&rec, v.mv_data, sizeof(rec));
		fn(ctx, uid, &rec, (const char *)v.mv_data + sizeof(rec));
	}
	mdb_cursor_close(cur);
}

static void collect_uid(void *ctx, uint32_t uid, const struct msg_rec *rec, const char *base)
{
	(void)rec; (void)base;
	store_uids_push(ctx, uid);
}

/* Every change to a mailbox's messages takes a MODSEQ, so two views read
 * at the same (id, UIDVALIDITY, HIGHESTMODSEQ) hold the same UIDs: a
 * SELECT of a mailbox another session of this process has open copies its
 * list instead of walking every message of the index. */
static bool view_snapshot_get(struct store_mailbox *mbox)
{
	struct store_account *acct = mbox->acct;
	if (!acct->snapshot.valid || acct->snapshot.id != mbox->id ||
	    acct->snapshot.uidvalidity != mbox->rec.uidvalidity ||
	    acct->snapshot.modseq != mbox->rec.highestmodseq)
		return false;
	size_t n = acct->snapshot.uids.count;
	store_uids_clear(&mbox->view);
	if (n > 0) {
		mbox->view.uids = xmalloc(n * sizeof(*mbox->view.uids));
		memcpy(mbox->view.uids, acct->snapshot.uids.uids, n * sizeof(*mbox->view.uids));
	}
	mbox->view.count = mbox->view.cap = n;
	return true;
}

/* After a walk that left exactly the index's UIDs in the view. */
static void view_snapshot_put(struct store_mailbox *mbox)
{
	struct store_account *acct = mbox->acct;
	size_t n = mbox->view.count;
	acct->snapshot.valid = false;
	if (acct->snapshot.uids.cap < n) {
		store_uids_clear(&acct->snapshot.uids);
		acct->snapshot.uids.uids = xmalloc(n * sizeof(*mbox->view.uids));
		acct->snapshot.uids.cap = n;
	}
	if (n > 0)
		memcpy(acct->snapshot.uids.uids, mbox->view.uids, n * sizeof(*mbox->view.uids));
	acct->snapshot.uids.count = n;
	acct->snapshot.id = mbox->id;
	acct->snapshot.uidvalidity = mbox->rec.uidvalidity;
	acct->snapshot.modseq = mbox->rec.highestmodseq;
	acct->snapshot.valid = true;
}

/* Inside a write transaction, with mbox->rec just read in it: this view
 * takes the messages no read-write view has seen yet as \Recent (RFC 3501
 * 2.3.2: only the first session to learn of a message sees it so). Not
 * committed through index_txn_commit(): nothing another session is shown
 * changes, so the others are not woken. */
static void view_claim_recent(struct store_mailbox *mbox, MDB_txn *txn)
{
	if (mbox->rec.first_recent_uid >= mbox->rec.uidnext)
		return;
	store_uidset_add(&mbox->recent, mbox->rec.first_recent_uid, mbox->rec.uidnext - 1);
	mbox->rec.first_recent_uid = mbox->rec.uidnext;
	index_mbox_put(mbox->acct, txn, mbox->name, &mbox->rec);
}

int store_mailbox_open(struct store_account *acct, const char *name, unsigned int flags,
		       struct store_mailbox **mbox_r, const char **error_r)
{
	bool read_only = (flags & STORE_OPEN_READ_ONLY) != 0;
	char *canon = maildir_canonical_name(name);
	if (canon == NULL)
		return acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
	int ret = heal_mailbox(acct, canon, false, error_r);
	if (ret < 0) {
		free(canon);
		return ret;
	}
	MDB_txn *txn;
	if ((ret = index_txn_begin(acct, !read_only, &txn, error_r)) < 0) {
		free(canon);
		return ret;
	}
	struct store_mailbox *mbox = xcalloc(1, sizeof(*mbox));
	mbox->acct = acct;
	mbox->name = canon;
	mbox->read_only = read_only;
	mbox->no_recent = (flags & STORE_OPEN_NO_RECENT) != 0;
	if (index_mbox_get(acct, txn, canon, &mbox->rec) < 0) {
		mdb_txn_abort(txn);
		store_mailbox_close(&mbox);
		return acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
	}
	mbox->id = mbox->rec.id;
	mbox->view_modseq = mbox->rec.highestmodseq;
	if (!view_snapshot_get(mbox)) {
		view_walk(mbox, txn, 0, collect_uid, &mbox->view);
		view_snapshot_put(mbox);
	}
	view_load_keywords(mbox, txn);
	if (!read_only && !mbox->no_recent) {
		view_claim_recent(mbox, txn);
		if (mdb_txn_commit(txn) != 0) {
			store_mailbox_close(&mbox);
			return acct_fail(acct, error_r, STORE_ERR_INTERNAL, "index: commit failed");
		}
	} else {
		mdb_txn_abort(txn);
	}
	*mbox_r = mbox;
	return 0;
}

void store_mailbox_close(struct store_mailbox **mboxp)
{
	struct store_mailbox *mbox = *mboxp;
	if (mbox == NULL)
		return;
	*mboxp = NULL;
	for (unsigned int i = 0; i < STORE_MAX_KEYWORDS; i++)
		free(mbox->keywords[i]);
	store_mailbox_batch_end(mbox);
	free(mbox->dir);
	store_uids_clear(&mbox->view);
	store_uidset_clear(&mbox->recent);
	buf_free(&mbox->scratch);
	buf_free(&mbox->cache_buf);
	free(mbox->parts);
	free(mbox->name);
	free(mbox);
}

void store_mailbox_get_status(struct store_mailbox *mbox, struct store_status *status_r)
{
	memset(status_r, 0, sizeof(*status_r));
	status_r->messages = (uint32_t)mbox->view.count;
	for (size_t i = 0; i < mbox->view.count; i++)
		if (store_mailbox_is_recent(mbox, mbox->view.uids[i]))
			status_r->recent++;
	status_r->uidnext = mbox->rec.uidnext;
	status_r->uidvalidity = mbox->rec.uidvalidity;
	status_r->unseen = mbox->rec.unseen;
	status_r->deleted = mbox->rec.deleted;
	status_r->size = mbox->rec.size;
	status_r->highestmodseq = mbox->rec.highestmodseq;
	status_r->special_use = mbox->rec.special_use;
}

const char *store_mailbox_name(struct store_mailbox *mbox)
{
	return mbox->name;
}

const uint32_t *store_mailbox_uids(struct store_mailbox *mbox, size_t *count_r)
{
	*count_r = mbox->view.count;
	return mbox->view.uids;
}

uint32_t store_mailbox_uid_to_seq(struct store_mailbox *mbox, uint32_t uid)
{
	size_t lo = 0, hi = mbox->view.count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (mbox->view.uids[mid] < uid)
			lo = mid + 1;
		else if (mbox->view.uids[mid] > uid)
			hi = mid;
		else
			return (uint32_t)mid + 1;
	}
	return 0;
}

bool store_mailbox_is_recent(struct store_mailbox *mbox, uint32_t uid)
{
	return store_uidset_contains(&mbox->recent, uid);
}

/* ---- sync ---- */

struct sync_ctx {
	struct store_mailbox *mbox;
	struct store_sync *sync;
	struct store_uids next_view;
	size_t old_pos;
	bool keep_expunged;
	size_t kept;           /* expunged UIDs left in the snapshot */
};

/* A UID of the old snapshot that is no longer in the index. */
static void sync_gone(struct sync_ctx *ctx, uint32_t uid)
{
	if (ctx->keep_expunged) {
		store_uids_push(&ctx->next_view, uid);
		ctx->kept++;
	} else
		store_uids_push(&ctx->sync->expunged, uid);
}

static void sync_visit(void *ctx_, uint32_t uid, const struct msg_rec *rec, const char *base)
{
	(void)base;
	struct sync_ctx *ctx = ctx_;
	const struct store_uids *old = &ctx->mbox->view;
	while (ctx->old_pos < old->count && old->uids[ctx->old_pos] < uid)
		sync_gone(ctx, old->uids[ctx->old_pos++]);
	bool known = ctx->old_pos < old->count && old->uids[ctx->old_pos] == uid;
	if (known) {
		ctx->old_pos++;
		if (rec->modseq > ctx->mbox->view_modseq)
			store_uids_push(&ctx->sync->changed, uid);
	} else {
		/* new; may lie below the snapshot's highest UID when healing
		 * adopted an older file: still announced as new (EXISTS) */
		store_uids_push(&ctx->sync->added, uid);
	}
	store_uids_push(&ctx->next_view, uid);
}

/* The mailbox's record in a read transaction, or, when this read-write
 * view has \Recent messages to take, in a write transaction. */
static int sync_begin(struct store_mailbox *mbox, MDB_txn **txn_r, bool *write_r,
		      const char **error_r)
{
	*write_r = false;
	for (;;) {
		int ret = index_txn_begin(mbox->acct, *write_r, txn_r, error_r);
		if (ret < 0)
			return ret;
		struct mbox_rec rec;
		if (index_mbox_get(mbox->acct, *txn_r, mbox->name, &rec) < 0 ||
		    rec.uidvalidity != mbox->rec.uidvalidity || rec.id != mbox->id) {
			mdb_txn_abort(*txn_r);
			return 1;
		}
		mbox->rec = rec;
		if (*write_r || mbox->read_only || mbox->no_recent ||
		    rec.first_recent_uid >= rec.uidnext)
			return 0;
		mdb_txn_abort(*txn_r);
		*write_r = true;
	}
}

static int view_sync(struct store_mailbox *mbox, bool keep_expunged,
		     struct store_sync *sync_r, const char **error_r)
{
	memset(sync_r, 0, sizeof(*sync_r));
	int ret = heal_mailbox(mbox->acct, mbox->name, false, error_r);
	if (ret < 0)
		return ret;
	MDB_txn *txn;
	bool write;
	if ((ret = sync_begin(mbox, &txn, &write, error_r)) != 0) {
		if (ret > 0)
			sync_r->uidvalidity_changed = true;
		return ret < 0 ? ret : 0;
	}
	if (!write && !mbox->kept_expunged && mbox->rec.highestmodseq == mbox->view_modseq) {
		/* every change takes a MODSEQ: nothing happened (the common
		 * case after most commands, without a walk of the mailbox) */
		mdb_txn_abort(txn);
		return 0;
	}
	struct sync_ctx ctx = { mbox, sync_r, STORE_UIDS_INIT, 0, keep_expunged, 0 };
	view_walk(mbox, txn, 0, sync_visit, &ctx);
	while (ctx.old_pos < mbox->view.count)
		sync_gone(&ctx, mbox->view.uids[ctx.old_pos++]);
	view_load_keywords(mbox, txn);
	if (write) {
		view_claim_recent(mbox, txn);
		if (mdb_txn_commit(txn) != 0)
			log_warn("event=recent-claim-failed mailbox=\"%s\"", mbox->name);
	} else {
		mdb_txn_abort(txn);
	}
	store_uids_clear(&mbox->view);
	mbox->view = ctx.next_view;
	mbox->view_modseq = mbox->rec.highestmodseq;
	mbox->kept_expunged = ctx.kept > 0;
	if (ctx.kept == 0)
		view_snapshot_put(mbox);
	return 0;
}

int store_mailbox_sync(struct store_mailbox *mbox, struct store_sync *sync_r,
		       const char **error_r)
{
	return view_sync(mbox, false, sync_r, error_r);
}

int store_mailbox_sync_keep_expunged(struct store_mailbox *mbox, struct store_sync *sync_r,
				     const char **error_r)
{
	return view_sync(mbox, true, sync_r, error_r);
}

void store_sync_free(struct store_sync *sync)
{
	store_uids_clear(&sync->expunged);
	store_uids_clear(&sync->added);
	store_uids_clear(&sync->changed);
}

/* ---- messages ---- */

static void fill_msg(struct store_mailbox *mbox, struct buf *path, uint32_t uid,
		     const struct msg_rec *rec, const char *base, struct store_msg *msg)
{
	msg->uid = uid;
	msg->flags = rec->flags & STORE_FLAG_ALL;
	msg->keywords = rec->keywords;
	msg->modseq = rec->modseq;
	msg->size = rec->size;
	msg->crlf_size = rec->crlf_size;
	msg->internaldate = (time_t)rec->internaldate;
	msg->savedate = (time_t)rec->savedate;
	if (mbox->dir == NULL)
		mbox->dir = maildir_path(mbox->acct, mbox->name);
	maildir_msg_path(path, mbox->dir, rec, base);
	msg->path = path->data;
}

void store_mailbox_batch_begin(struct store_mailbox *mbox)
{
	const char *error;
	if (mbox->batch_txn == NULL &&
	    index_txn_begin(mbox->acct, false, &mbox->batch_txn, &error) < 0)
		mbox->batch_txn = NULL;   /* each lookup begins its own */
}

void store_mailbox_batch_end(struct store_mailbox *mbox)
{
	if (mbox->batch_txn != NULL)
		mdb_txn_abort(mbox->batch_txn);
	mbox->batch_txn = NULL;
}

/* Looks up uid in dbi inside the batch's read transaction or a new one,
 * left open on success: the caller copies what it needs, then calls
 * view_lookup_end(). */
static int view_lookup(struct store_mailbox *mbox, MDB_dbi dbi, uint32_t uid,
		       MDB_txn **txn_r, MDB_val *val_r, const char **error_r)
{
	if (mbox->batch_txn != NULL) {
		*txn_r = mbox->batch_txn;
	} else {
		int ret = index_txn_begin(mbox->acct, false, txn_r, error_r);
		if (ret < 0)
			return ret;
	}
	uint64_t key = msg_key(mbox->id, uid);
	MDB_val k = { sizeof(key), &key };
	if (mdb_get(*txn_r, dbi, &k, val_r) != 0) {
		if (*txn_r != mbox->batch_txn)
			mdb_txn_abort(*txn_r);
		return view_fail(mbox, error_r, STORE_ERR_NOTFOUND, "message expunged");
	}
	return 0;
}

static void view_lookup_end(struct store_mailbox *mbox, MDB_txn *txn)
{
	if (txn != mbox->batch_txn)
		mdb_txn_abort(txn);
}

int store_msg_get(struct store_mailbox *mbox, uint32_t uid, struct store_msg *msg_r,
		  const char **error_r)
{
	MDB_txn *txn;
	MDB_val v;
	int ret = view_lookup(mbox, mbox->acct->db_msg, uid, &txn, &v, error_r);
	if (ret < 0)
		return ret;
	struct msg_rec rec;
	memcpy(&rec, v.mv_data, sizeof(rec));
	fill_msg(mbox, &mbox->scratch, uid, &rec, (const char *)v.mv_data + sizeof(rec), msg_r);
	view_lookup_end(mbox, txn);
	return 0;
}

uint64_t store_msg_emailid(struct store_mailbox *mbox, const struct store_msg *msg)
{
	const char *slash = strrchr(msg->path, '/');
	const char *base = slash != NULL ? slash + 1 : msg->path;
	MDB_txn *txn = mbox->batch_txn;
	const char *error;
	if (txn == NULL && index_txn_begin(mbox->acct, false, &txn, &error) < 0)
		return index_emailid_of_base(base);
	uint64_t id = index_emailid(mbox->acct, txn, mbox->id, msg->uid, base);
	if (txn != mbox->batch_txn)
		mdb_txn_abort(txn);
	return id;
}

const char *store_mailbox_keyword(struct store_mailbox *mbox, unsigned int i)
{
	return i < STORE_MAX_KEYWORDS ? mbox->keywords[i] : NULL;
}

int store_mailbox_keyword_index(struct store_mailbox *mbox, const char *keyword)
{
	for (unsigned int i = 0; i < STORE_MAX_KEYWORDS; i++)
		if (mbox->keywords[i] != NULL && ascii_strcasecmp(mbox->keywords[i], keyword) == 0)
			return (int)i;
	return -1;
}

struct store_iter {
	struct store_mailbox *mbox;
	const struct store_uidset *set;
	size_t range;
	MDB_txn *txn;
	MDB_cursor *cursor;
	bool started, done;
	char *dir;
	struct buf path;
	uint32_t uid;              /* the current message */
	struct store_part *parts;
	size_t parts_cap;
};

struct store_iter *store_iter_new(struct store_mailbox *mbox, const struct store_uidset *set)
{
	struct store_iter *iter = xcalloc(1, sizeof(*iter));
	const char *error;
	iter->mbox = mbox;
	iter->set = set;
	iter->dir = maildir_path(mbox->acct, mbox->name);
	if (index_txn_begin(mbox->acct, false, &iter->txn, &error) < 0 ||
	    mdb_cursor_open(iter->txn, mbox->acct->db_msg, &iter->cursor) != 0) {
		log_error("event=store_iter_failed error=\"%s\"", mbox->acct->error);
		iter->done = true;
	}
	if (set != NULL && set->count == 0)
		iter->done = true;
	return iter;
}

bool store_iter_next(struct store_iter *iter, struct store_msg *msg_r)
{
	MDB_val k, v;
	int r;
	while (!iter->done) {
		if (!iter->started) {
			uint32_t from = iter->set != NULL ? iter->set->ranges[iter->range].lo : 0;
			uint64_t key = msg_key(iter->mbox->id, from);
			k.mv_size = sizeof(key);
			k.mv_data = &key;
			r = mdb_cursor_get(iter->cursor, &k, &v, MDB_SET_RANGE);
			iter->started = true;
		} else {
			r = mdb_cursor_get(iter->cursor, &k, &v, MDB_NEXT);
		}
		uint64_t got;
		if (r != 0)
			break;
		memcpy(&got, k.mv_data, sizeof(got));
		if ((got >> 32) != iter->mbox->id)
			break;
		uint32_t uid = (uint32_t)got;
		if (iter->set != NULL) {
			while (iter->range < iter->set->count &&
			       uid > iter->set->ranges[iter->range].hi)
				iter->range++;
			if (iter->range == iter->set->count)
				break;
			if (uid < iter->set->ranges[iter->range].lo) {
				iter->started = false;   /* seek to the next range */
				continue;
			}
		}
		struct msg_rec rec;
		memcpy(&rec, v.mv_data, sizeof(rec));
		iter->uid = uid;
		msg_r->uid = uid;
		msg_r->flags = rec.flags & STORE_FLAG_ALL;
		msg_r->keywords = rec.keywords;
		msg_r->modseq = rec.modseq;
		msg_r->size = rec.size;
		msg_r->crlf_size = rec.crlf_size;
		msg_r->internaldate = (time_t)rec.internaldate;
		msg_r->savedate = (time_t)rec.savedate;
		maildir_msg_path(&iter->path, iter->dir, &rec,
				 (const char *)v.mv_data + sizeof(rec));
		msg_r->path = iter->path.data;
		return true;
	}
	iter->done = true;
	return false;
}

void store_iter_free(struct store_iter **iterp)
{
	struct store_iter *iter = *iterp;
	if (iter == NULL)
		return;
	*iterp = NULL;
	if (iter->cursor != NULL)
		mdb_cursor_close(iter->cursor);
	if (iter->txn != NULL)
		mdb_txn_abort(iter->txn);
	buf_free(&iter->path);
	free(iter->parts);
	free(iter->dir);
	free(iter);
}

int store_iter_cache(struct store_iter *iter, struct store_cache *cache_r,
		     const char **error_r)
{
	struct store_mailbox *mbox = iter->mbox;
	if (iter->txn == NULL || iter->uid == 0)
		return view_fail(mbox, error_r, STORE_ERR_INVALID, "no current message");
	uint64_t key = msg_key(mbox->id, iter->uid);
	MDB_val k = { sizeof(key), &key }, v;
	if (mdb_get(iter->txn, mbox->acct->db_cache, &k, &v) != 0)
		return view_fail(mbox, error_r, STORE_ERR_NOTFOUND, "no cache record");
	/* the strings point into the snapshot's pages: no copy */
	if (cache_deserialize(v.mv_data, v.mv_size, cache_r, &iter->parts,
			      &iter->parts_cap) < 0)
		return view_fail(mbox, error_r, STORE_ERR_INTERNAL, "damaged cache record");
	return 0;
}

int store_msg_cache(struct store_mailbox *mbox, uint32_t uid, struct store_cache *cache_r,
		    const char **error_r)
{
	MDB_txn *txn;
	MDB_val v;
	int ret = view_lookup(mbox, mbox->acct->db_cache, uid, &txn, &v, error_r);
	if (ret < 0)
		return ret;
	buf_reset(&mbox->cache_buf);
	buf_append(&mbox->cache_buf, v.mv_data, v.mv_size);
	view_lookup_end(mbox, txn);
	if (cache_deserialize(mbox->cache_buf.data, mbox->cache_buf.len, cache_r,
			      &mbox->parts, &mbox->parts_cap) < 0)
		return view_fail(mbox, error_r, STORE_ERR_INTERNAL, "damaged cache record");
	return 0;
}

int store_msg_open_fd(struct store_mailbox *mbox, uint32_t uid, int *fd_r,
		      const char **error_r)
{
	struct store_msg msg;
	for (int attempt = 0; attempt < 3; attempt++) {
		int ret = store_msg_get(mbox, uid, &msg, error_r);
		if (ret < 0)
			return ret;
		*fd_r = open(msg.path, O_RDONLY | O_CLOEXEC);
		if (*fd_r >= 0)
			return 0;
		if (errno != ENOENT || attempt == 2)
			break;
		/* first: renamed by another session between the lookup and the
		 * open (or after the batch's snapshot, which ends here); then:
		 * renamed or removed from outside, reconcile */
		store_mailbox_batch_end(mbox);
		if (attempt == 1 && heal_mailbox(mbox->acct, mbox->name, true, error_r) < 0)
			return STORE_ERR_INTERNAL;
	}
	return view_fail(mbox, error_r, errno == ENOENT ? STORE_ERR_NOTFOUND
			 : STORE_ERR_INTERNAL, "open %s: %s", msg.path, strerror(errno));
}

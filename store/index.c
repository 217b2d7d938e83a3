/* The per-account LMDB index: transactions and record helpers. */
#include "store/store-private.h"
#include "core/lmdb-env.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int index_txn_begin(struct store_account *acct, bool write, MDB_txn **txn_r,
		    const char **error_r)
{
	int ret = lmdb_env_txn_begin(acct->env, write ? 0 : MDB_RDONLY, txn_r);
	if (ret != 0)
		return acct_fail(acct, error_r, STORE_ERR_INTERNAL, "index: txn_begin: %s",
				 mdb_strerror(ret));
	if (write) {
		acct->write_serial++;
		if (acct->db_mbox != 0)
			heal_intent_resolve(acct, *txn_r);
	}
	return 0;
}

int index_note(struct store_account *acct, int rc)
{
	if (rc == MDB_MAP_FULL)
		acct->map_full = true;
	return rc;
}

int index_grow(struct store_account *acct)
{
	MDB_envinfo info;
	if (mdb_env_info(acct->env, &info) != 0 || info.me_mapsize >= STORE_MAPSIZE_MAX)
		return -1;
	size_t size = info.me_mapsize * 2 < STORE_MAPSIZE_MAX ? info.me_mapsize * 2
		: STORE_MAPSIZE_MAX;
	int rc = mdb_env_set_mapsize(acct->env, size);
	if (rc != 0) {
		log_warn("event=store_index_grow_failed account=%s error=\"%s\"", acct->address,
			 mdb_strerror(rc));
		return -1;
	}
	log_info("event=store_index_grown account=%s mapsize=%zu", acct->address, size);
	return 0;
}

int index_txn_commit(struct store_account *acct, MDB_txn *txn, const char **error_r)
{
	int ret = index_note(acct, mdb_txn_commit(txn));
	if (ret != 0)
		return acct_fail(acct, error_r, ret == MDB_MAP_FULL ? STORE_ERR_LIMIT
				 : STORE_ERR_INTERNAL, "index: commit: %s", mdb_strerror(ret));
	index_notify(acct);
	return 0;
}

int index_mbox_get(struct store_account *acct, MDB_txn *txn, const char *name,
		   struct mbox_rec *rec_r)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	if (mdb_get(txn, acct->db_mbox, &k, &v) != 0)
		return STORE_ERR_NOTFOUND;
	memset(rec_r, 0, sizeof(*rec_r));
	memcpy(rec_r, v.mv_data, v.mv_size < sizeof(*rec_r) ? v.mv_size : sizeof(*rec_r));
	return 0;
}

int index_mbox_put(struct store_account *acct, MDB_txn *txn, const char *name,
		   const struct mbox_rec *rec)
{
	MDB_val k = { strlen(name), (void *)name }, v = { sizeof(*rec), (void *)rec };
	return index_note(acct, mdb_put(txn, acct->db_mbox, &k, &v, 0)) == 0 ? 0
		: STORE_ERR_INTERNAL;
}

uint64_t index_meta_get(struct store_account *acct, MDB_txn *txn, const char *key)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	uint64_t value = 0;
	if (mdb_get(txn, acct->db_meta, &k, &v) == 0 && v.mv_size == sizeof(value))
		memcpy(&value, v.mv_data, sizeof(value));
	return value;
}

int index_meta_put(struct store_account *acct, MDB_txn *txn, const char *key, uint64_t value)
{
	MDB_val k = { strlen(key), (void *)key }, v = { sizeof(value), &value };
	return index_note(acct, mdb_put(txn, acct->db_meta, &k, &v, 0)) == 0 ? 0
		: STORE_ERR_INTERNAL;
}

void msgrec_account(struct mbox_rec *mrec, const struct msg_rec *msg, int sign)
{
	mrec->messages += (uint32_t)sign;
	mrec->size += (uint64_t)((int64_t)sign * (int64_t)msg->crlf_size);
	if ((msg->flags & STORE_FLAG_SEEN) == 0)
		mrec->unseen += (uint32_t)sign;
	if ((msg->flags & STORE_FLAG_DELETED) != 0)
		mrec->deleted += (uint32_t)sign;
}

int index_msg_put(struct store_account *acct, MDB_txn *txn, uint32_t id, uint32_t uid,
		  const struct msg_rec *rec, const char *base)
{
	size_t blen = strlen(base) + 1;
	uint64_t key = msg_key(id, uid);
	MDB_val k = { sizeof(key), &key }, v = { sizeof(*rec) + blen, NULL };
	int ret = index_note(acct, mdb_put(txn, acct->db_msg, &k, &v, MDB_RESERVE));
	if (ret != 0)
		return acct_fail(acct, NULL, ret == MDB_MAP_FULL ? STORE_ERR_LIMIT
				 : STORE_ERR_INTERNAL, "index: put: %s", mdb_strerror(ret));
	memcpy(v.mv_data, rec, sizeof(*rec));
	memcpy((char *)v.mv_data + sizeof(*rec), base, blen);
	return 0;
}

static int modseq_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Drops the oldest expunge records of the mailbox down to
 * STORE_EXPUNGE_LOG_KEEP; the floor moves to the newest one dropped (every
 * MODSEQ is used once per mailbox, so exactly the surplus goes). */
static void expunge_log_prune(struct store_account *acct, MDB_txn *txn,
			      struct mbox_rec *mrec)
{
	MDB_cursor *cur;
	if (mdb_cursor_open(txn, acct->db_expunged, &cur) != 0)
		return;
	uint64_t *modseqs = NULL;
	size_t count = 0, cap = 0;
	MDB_val v;
	uint32_t uid;
	bool started = false;
	while (index_id_next(cur, mrec->id, 0, &started, &uid, &v)) {
		if (count == cap) {
			cap = cap == 0 ? STORE_EXPUNGE_LOG_MAX + 1 : cap * 2;
			modseqs = xrealloc(modseqs, cap * sizeof(*modseqs));
		}
		memcpy(&modseqs[count++], v.mv_data, sizeof(*modseqs));
	}
	if (count > STORE_EXPUNGE_LOG_KEEP) {
		qsort(modseqs, count, sizeof(*modseqs), modseq_cmp);
		uint64_t floor = modseqs[count - STORE_EXPUNGE_LOG_KEEP - 1];
		started = false;
		while (index_id_next(cur, mrec->id, 0, &started, &uid, &v)) {
			uint64_t m;
			memcpy(&m, v.mv_data, sizeof(m));
			if (m <= floor)
				mdb_cursor_del(cur, 0);
		}
		if (floor > mrec->expunge_floor)
			mrec->expunge_floor = floor;
		count = STORE_EXPUNGE_LOG_KEEP;
	}
	mrec->expunge_log = (uint32_t)count;
	mdb_cursor_close(cur);
	free(modseqs);
}

int index_msg_expunge(struct store_account *acct, MDB_txn *txn, const char *name,
		      struct mbox_rec *mrec, uint32_t uid, const struct msg_rec *rec,
		      const char *base)
{
	uint64_t key = msg_key(mrec->id, uid);
	MDB_val k = { sizeof(key), &key };
	uint64_t modseq = ++mrec->highestmodseq;
	MDB_val v = { sizeof(modseq), &modseq };
	struct msg_rec copy = *rec;
	int ret = mdb_del(txn, acct->db_msg, &k, NULL);
	if (ret == 0) {
		mdb_del(txn, acct->db_cache, &k, NULL);
		mdb_del(txn, acct->db_emailid, &k, NULL);
		ret = mdb_put(txn, acct->db_expunged, &k, &v, 0);
	}
	if (ret != 0)
		return acct_fail(acct, NULL, STORE_ERR_INTERNAL, "index: expunge: %s",
				 mdb_strerror(ret));
	if (++mrec->expunge_log > STORE_EXPUNGE_LOG_MAX)
		expunge_log_prune(acct, txn, mrec);
	msgrec_account(mrec, &copy, -1);
	index_quota_add(acct, txn, -(int64_t)copy.size);
	/* unlink before the commit: a crash in between leaves a vanished
	 * file that the next sync expunges, never a resurrected message */
	if (base != NULL) {
		char *dir = maildir_path(acct, name);
		struct buf path = BUF_INIT;
		maildir_msg_path(&path, dir, &copy, base);
		if (unlink(path.data) < 0 && errno != ENOENT)
			log_warn("event=store_unlink_failed path=%s error=\"%s\"",
				 path.data, strerror(errno));
		buf_free(&path);
		free(dir);
	}
	return 0;
}

bool index_id_next(MDB_cursor *cur, uint32_t id, uint32_t from, bool *started,
		   uint32_t *sub_r, MDB_val *val_r)
{
	uint64_t key = msg_key(id, from), got;
	MDB_val k = { sizeof(key), &key };
	/* after mdb_cursor_del, MDB_NEXT yields the record that followed */
	int ret = mdb_cursor_get(cur, &k, val_r, *started ? MDB_NEXT : MDB_SET_RANGE);
	*started = true;
	if (ret != 0)
		return false;
	memcpy(&got, k.mv_data, sizeof(got));
	if ((got >> 32) != id)
		return false;
	*sub_r = (uint32_t)got;
	return true;
}

uint32_t index_new_uidvalidity(struct store_account *acct, MDB_txn *txn)
{
	uint64_t last = index_meta_get(acct, txn, "last_uidvalidity");
	uint64_t now = (uint64_t)time(NULL);
	uint64_t next = now > last ? now : last + 1;
	if (next > UINT32_MAX)
		next = 1;
	index_meta_put(acct, txn, "last_uidvalidity", next);
	return (uint32_t)next;
}

int index_quota_add(struct store_account *acct, MDB_txn *txn, int64_t delta)
{
	uint64_t used = index_meta_get(acct, txn, "quota_used");
	if (delta < 0 && (uint64_t)-delta > used)
		used = 0;
	else
		used += (uint64_t)delta;
	return index_meta_put(acct, txn, "quota_used", used);
}

int index_keyword_lookup(struct store_account *acct, MDB_txn *txn, const char *name,
			 struct mbox_rec *mrec, const char *keyword, bool create)
{
	for (uint32_t i = 0; i < mrec->keyword_count; i++) {
		uint64_t key = msg_key(mrec->id, i);
		MDB_val k = { sizeof(key), &key }, v;
		if (mdb_get(txn, acct->db_kw, &k, &v) == 0 && v.mv_size == strlen(keyword) &&
		    ascii_strncasecmp(v.mv_data, keyword, v.mv_size) == 0)
			return (int)i;
	}
	if (!create || mrec->keyword_count >= STORE_MAX_KEYWORDS || strlen(keyword) > 128)
		return -1;
	/* an IMAP atom: nothing that could break dovecot-keywords' lines */
	for (const unsigned char *p = (const unsigned char *)keyword; *p != '\0'; p++)
		if (*p <= 0x20 || *p == 0x7f || *p == '\\' || *p == '(' || *p == ')' ||
		    *p == '{' || *p == '"' || *p == '%' || *p == '*' || *p == ']')
			return -1;
	if (keyword[0] == '\0')
		return -1;
	uint32_t i = mrec->keyword_count++;
	uint64_t key = msg_key(mrec->id, i);
	MDB_val k = { sizeof(key), &key }, v = { strlen(keyword), (void *)keyword };
	if (index_note(acct, mdb_put(txn, acct->db_kw, &k, &v, 0)) != 0)
		return -1;
	if (name != NULL) {
		char *dir = maildir_path(acct, name);
		maildir_keywords_write(acct, txn, mrec->id, dir);
		free(dir);
	}
	return (int)i;
}

uint64_t index_emailid_of_base(const char *base)
{
	/* FNV-1a, 64 bits: the base names are unique in the account, and a
	 * clash needs 2^32 of them */
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (const unsigned char *p = (const unsigned char *)base; *p != '\0' && *p != ':'; p++) {
		h ^= *p;
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

uint64_t index_emailid(struct store_account *acct, MDB_txn *txn, uint32_t id, uint32_t uid,
		       const char *base)
{
	uint64_t key = msg_key(id, uid), value;
	MDB_val k = { sizeof(key), &key }, v;
	if (mdb_get(txn, acct->db_emailid, &k, &v) == 0 && v.mv_size == sizeof(value)) {
		memcpy(&value, v.mv_data, sizeof(value));
		return value;
	}
	return index_emailid_of_base(base);
}

uint64_t index_message_count(struct store_account *acct, MDB_txn *txn)
{
	/* one record per mailbox: a short walk */
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t total = 0;
	if (mdb_cursor_open(txn, acct->db_mbox, &cur) != 0)
		return 0;
	for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
		struct mbox_rec rec;
		memset(&rec, 0, sizeof(rec));
		memcpy(&rec, v.mv_data, v.mv_size < sizeof(rec) ? v.mv_size : sizeof(rec));
		total += rec.messages;
	}
	mdb_cursor_close(cur);
	return total;
}

bool index_quota_allows(struct store_account *acct, MDB_txn *txn, uint64_t bytes,
			uint64_t messages)
{
	uint64_t limit = index_meta_get(acct, txn, "quota_limit");
	if (limit != 0 && index_meta_get(acct, txn, "quota_used") + bytes > limit)
		return false;
	uint64_t msg_limit = index_meta_get(acct, txn, "quota_msg_limit");
	return msg_limit == 0 || index_message_count(acct, txn) + messages <= msg_limit;
}

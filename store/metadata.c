/* METADATA (RFC 5464) entries in the account's index: the "metadata"
 * table, keyed by the mailbox id (4 bytes, big-endian; 0 = the server)
 * and the entry name in lower case ("/private/comment"), so that a RENAME
 * keeps them and a DELETE drops them with the mailbox. */
#include "store/store-private.h"

#include <stdlib.h>
#include <string.h>

static void meta_key(struct buf *k, uint32_t id, const char *entry)
{
	unsigned char be[4] = { (unsigned char)(id >> 24), (unsigned char)(id >> 16),
				(unsigned char)(id >> 8), (unsigned char)id };
	buf_reset(k);
	buf_append(k, be, sizeof(be));
	for (const char *p = entry; *p != '\0'; p++)
		buf_append_char(k, (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p));
}

/* The mailbox id of name (NULL = the server: 0). */
static int meta_owner(struct store_account *acct, MDB_txn *txn, const char *name,
		      uint32_t *id_r, const char **error_r)
{
	if (name == NULL) {
		*id_r = 0;
		return 0;
	}
	char *canon = maildir_canonical_name(name);
	struct mbox_rec rec;
	int ret = canon != NULL ? index_mbox_get(acct, txn, canon, &rec) : STORE_ERR_NOTFOUND;
	free(canon);
	if (ret < 0)
		return acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
	*id_r = rec.id;
	return 0;
}

/* A transaction and the owner's id, or an error with nothing open. */
static int meta_begin(struct store_account *acct, bool write, const char *mailbox,
		      MDB_txn **txn_r, uint32_t *id_r, const char **error_r)
{
	int ret = index_txn_begin(acct, write, txn_r, error_r);
	if (ret == 0 && (ret = meta_owner(acct, *txn_r, mailbox, id_r, error_r)) < 0)
		mdb_txn_abort(*txn_r);
	return ret;
}

void store_metadata_free(struct store_metadata *md)
{
	for (size_t i = 0; i < md->count; i++) {
		free(md->entries[i].name);
		free(md->entries[i].value);
	}
	free(md->entries);
	memset(md, 0, sizeof(*md));
}

static void md_push(struct store_metadata *md, const char *name, size_t name_len,
		    const void *value, size_t len)
{
	if (md->count == md->cap) {
		md->cap = md->cap ? md->cap * 2 : 8;
		md->entries = xrealloc(md->entries, md->cap * sizeof(*md->entries));
	}
	struct store_metadata_entry *e = &md->entries[md->count++];
	e->name = xstrndup(name, name_len);
	e->value = xmalloc(len + 1);
	memcpy(e->value, value, len);
	e->value[len] = '\0';
	e->len = len;
}

/* Components of name below prefix (name starts with prefix + "/"). */
static int depth_below(const char *name, size_t name_len, size_t prefix_len)
{
	int depth = 0;
	for (size_t i = prefix_len; i < name_len; i++)
		depth += name[i] == '/';
	return depth;
}

int store_metadata_get(struct store_account *acct, const char *mailbox, const char *entry,
		       int depth, struct store_metadata *md, const char **error_r)
{
	MDB_txn *txn;
	uint32_t id;
	int ret = meta_begin(acct, false, mailbox, &txn, &id, error_r);
	if (ret < 0)
		return ret;
	struct buf key = BUF_INIT;
	meta_key(&key, id, entry);
	size_t prefix_len = key.len;
	MDB_val k = { key.len, key.data }, v;
	if (mdb_get(txn, acct->db_metadata, &k, &v) == 0)
		md_push(md, key.data + 4, key.len - 4, v.mv_data, v.mv_size);
	if (depth != 0) {
		/* the descendants: keys starting with entry + "/" */
		buf_append_char(&key, '/');
		MDB_cursor *cur;
		if (mdb_cursor_open(txn, acct->db_metadata, &cur) == 0) {
			k.mv_size = key.len;
			k.mv_data = key.data;
			int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
			while (rc == 0 && k.mv_size > key.len &&
			       memcmp(k.mv_data, key.data, key.len) == 0) {
				if (depth < 0 || depth_below(k.mv_data, k.mv_size, prefix_len) == 1)
					md_push(md, (const char *)k.mv_data + 4, k.mv_size - 4,
						v.mv_data, v.mv_size);
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			}
			mdb_cursor_close(cur);
		}
	}
	buf_free(&key);
	mdb_txn_abort(txn);
	return 0;
}

/* Entries the owner id has now. */
static size_t meta_count(struct store_account *acct, MDB_txn *txn, uint32_t id)
{
	struct buf key = BUF_INIT;
	meta_key(&key, id, "");
	MDB_cursor *cur;
	size_t n = 0;
	if (mdb_cursor_open(txn, acct->db_metadata, &cur) == 0) {
		MDB_val k = { key.len, key.data }, v;
		int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		while (rc == 0 && k.mv_size >= 4 && memcmp(k.mv_data, key.data, 4) == 0) {
			n++;
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(cur);
	}
	buf_free(&key);
	return n;
}

int store_metadata_set(struct store_account *acct, const char *mailbox,
		       const struct store_metadata_entry *entries, size_t count,
		       size_t max_entries, const char **error_r)
{
	MDB_txn *txn;
	uint32_t id;
	int ret = meta_begin(acct, true, mailbox, &txn, &id, error_r);
	if (ret < 0)
		return ret;
	struct buf key = BUF_INIT;
	for (size_t i = 0; i < count && ret == 0; i++) {
		meta_key(&key, id, entries[i].name);
		MDB_val k = { key.len, key.data };
		int rc;
		if (entries[i].value == NULL) {
			rc = mdb_del(txn, acct->db_metadata, &k, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		} else {
			MDB_val v = { entries[i].len, entries[i].value };
			rc = index_note(acct, mdb_put(txn, acct->db_metadata, &k, &v, 0));
		}
		if (rc != 0)
			ret = acct_fail(acct, error_r, rc == MDB_MAP_FULL ? STORE_ERR_LIMIT
					: STORE_ERR_INTERNAL, "index: metadata: %s", mdb_strerror(rc));
	}
	buf_free(&key);
	/* all or nothing: over the count, none of it is kept */
	if (ret == 0 && max_entries > 0 && meta_count(acct, txn, id) > max_entries)
		ret = acct_fail(acct, error_r, STORE_ERR_LIMIT, "too many metadata entries");
	if (ret < 0) {
		mdb_txn_abort(txn);
		return ret;
	}
	return index_txn_commit(acct, txn, error_r);
}

void metadata_delete_owner(struct store_account *acct, MDB_txn *txn, uint32_t id)
{
	struct buf key = BUF_INIT;
	meta_key(&key, id, "");
	MDB_cursor *cur;
	if (mdb_cursor_open(txn, acct->db_metadata, &cur) == 0) {
		MDB_val k = { key.len, key.data }, v;
		int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		while (rc == 0 && k.mv_size >= 4 && memcmp(k.mv_data, key.data, 4) == 0) {
			mdb_cursor_del(cur, 0);
			/* after a delete, MDB_NEXT yields the record that followed */
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(cur);
	}
	buf_free(&key);
}

/* Mailboxes: create, delete, rename, subscribe, list, status. */
#include "store/store-private.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mailbox_create_in_txn(struct store_account *acct, MDB_txn *txn, const char *name,
			  uint32_t special_use, struct mbox_rec *rec_r, const char **error_r)
{
	if (index_mbox_get(acct, txn, name, rec_r) == 0)
		return acct_fail(acct, error_r, STORE_ERR_EXISTS, "mailbox already exists");
	char *dir = maildir_path(acct, name);
	int ret = maildir_create_dirs(acct, dir, error_r);
	free(dir);
	if (ret < 0)
		return ret;
	memset(rec_r, 0, sizeof(*rec_r));
	uint64_t id = index_meta_get(acct, txn, "next_mbox_id");
	if (id == 0)
		id = 1;
	index_meta_put(acct, txn, "next_mbox_id", id + 1);
	rec_r->id = (uint32_t)id;
	rec_r->uidvalidity = index_new_uidvalidity(acct, txn);
	rec_r->uidnext = 1;
	rec_r->first_recent_uid = 1;
	rec_r->highestmodseq = 1;
	rec_r->special_use = special_use;
	if (index_mbox_put(acct, txn, name, rec_r) < 0)
		return acct_fail(acct, error_r, STORE_ERR_INTERNAL, "index: put mailbox failed");
	return 0;
}

int store_mailbox_create(struct store_account *acct, const char *name,
			 uint32_t special_use, const char **error_r)
{
	char *canon = maildir_canonical_name(name);
	if (canon == NULL)
		return acct_fail(acct, error_r, STORE_ERR_INVALID, "invalid mailbox name");
	MDB_txn *txn;
	struct mbox_rec rec;
	int ret = index_txn_begin(acct, true, &txn, error_r);
	if (ret == 0) {
		ret = mailbox_create_in_txn(acct, txn, canon, special_use, &rec, error_r);
		if (ret == 0)
			ret = index_txn_commit(acct, txn, error_r);
		else
			mdb_txn_abort(txn);
	}
	free(canon);
	return ret;
}

/* Deletes every record with key prefix id in a u64-keyed database. */
static void delete_id_range(MDB_txn *txn, MDB_dbi dbi, uint32_t id,
			    uint64_t *size_sum_r)
{
	MDB_cursor *cur;
	if (mdb_cursor_open(txn, dbi, &cur) != 0)
		return;
	MDB_val v;
	uint32_t uid;
	bool started = false;
	while (index_id_next(cur, id, 0, &started, &uid, &v)) {
		if (size_sum_r != NULL && v.mv_size >= sizeof(struct msg_rec)) {
			struct msg_rec rec;
			memcpy(&rec, v.mv_data, sizeof(rec));
			*size_sum_r += rec.size;
		}
		mdb_cursor_del(cur, 0);
	}
	mdb_cursor_close(cur);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

int store_mailbox_delete(struct store_account *acct, const char *name, const char **error_r)
{
	char *canon = maildir_canonical_name(name);
	if (canon == NULL)
		return acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
	if (strcmp(canon, "INBOX") == 0) {
		free(canon);
		return acct_fail(acct, error_r, STORE_ERR_NOTPOSSIBLE, "INBOX cannot be deleted");
	}
	MDB_txn *txn;
	struct mbox_rec rec;
	int ret = index_txn_begin(acct, true, &txn, error_r);
	if (ret < 0) {
		free(canon);
		return ret;
	}
	if (index_mbox_get(acct, txn, canon, &rec) < 0) {
		mdb_txn_abort(txn);
		free(canon);
		return acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
	}
	uint64_t freed = 0;
	delete_id_range(txn, acct->db_msg, rec.id, &freed);
	delete_id_range(txn, acct->db_cache, rec.id, NULL);
	delete_id_range(txn, acct->db_expunged, rec.id, NULL);
	delete_id_range(txn, acct->db_kw, rec.id, NULL);
	delete_id_range(txn, acct->db_emailid, rec.id, NULL);
	metadata_delete_owner(acct, txn, rec.id);
	index_quota_add(acct, txn, -(int64_t)freed);
	MDB_val k = { strlen(canon), canon };
	mdb_del(txn, acct->db_mbox, &k, NULL);
	/* move the directory out of the way first (atomic), remove it after
	 * the commit; discovery skips ".#deleted" leftovers of a crash */
	char *dir = maildir_path(acct, canon);
	char *trash = xasprintf("%s/.#deleted.%u.%ld", acct->root, rec.id, (long)getpid());
	if (rename(dir, trash) < 0 && errno != ENOENT) {
		ret = acct_fail(acct, error_r, STORE_ERR_INTERNAL, "rename %s: %s", dir,
				strerror(errno));
		mdb_txn_abort(txn);
	} else {
		ret = index_txn_commit(acct, txn, error_r);
		if (ret == 0)
			nftw(trash, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		else
			rename(trash, dir);
	}
	free(trash);
	free(dir);
	free(canon);
	return ret;
}

static bool is_child_of(const char *name, const char *parent)
{
	size_t len = strlen(parent);
	return strncmp(name, parent, len) == 0 && name[len] == '/';
}

/* The keys of a name-keyed database that are name or under it. */
static char **names_under(MDB_txn *txn, MDB_dbi dbi, const char *name, size_t *count_r)
{
	char **names = NULL;
	size_t count = 0;
	MDB_cursor *cur;
	MDB_val k, v;
	if (mdb_cursor_open(txn, dbi, &cur) == 0) {
		for (int r = mdb_cursor_get(cur, &k, &v, MDB_FIRST); r == 0;
		     r = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			char *n = xstrndup(k.mv_data, k.mv_size);
			if (strcmp(n, name) == 0 || is_child_of(n, name)) {
				names = xrealloc(names, (count + 1) * sizeof(*names));
				names[count++] = n;
			} else {
				free(n);
			}
		}
		mdb_cursor_close(cur);
	}
	*count_r = count;
	return names;
}

/* Subscriptions follow a rename (as in Dovecot): "from" and every name
 * under it, subscribed or not existing, now go by the new name. Not used
 * for INBOX, whose rename leaves INBOX in place. */
static int rename_subscriptions(struct store_account *acct, MDB_txn *txn,
				const char *from, const char *to, const char **error_r)
{
	size_t count;
	char **names = names_under(txn, acct->db_subs, from, &count);
	/* all deletes before any put: with "a/b" renamed to "a", the new
	 * name of "a/b/b/c" is the old name of "a/b/c" */
	int ret = 0;
	for (size_t i = 0; i < count && ret == 0; i++) {
		MDB_val ok = { strlen(names[i]), names[i] };
		ret = mdb_del(txn, acct->db_subs, &ok, NULL);
	}
	for (size_t i = 0; i < count && ret == 0; i++) {
		char *target = xasprintf("%s%s", to, names[i] + strlen(from));
		MDB_val nk = { strlen(target), target }, nv = { 0, (void *)"" };
		ret = mdb_put(txn, acct->db_subs, &nk, &nv, 0);
		free(target);
	}
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	if (ret != 0)
		return acct_fail(acct, error_r, ret == MDB_MAP_FULL ? STORE_ERR_LIMIT
				 : STORE_ERR_INTERNAL, "index: subscriptions: %s",
				 mdb_strerror(ret));
	return 0;
}

static int rename_inbox(struct store_account *acct, const char *new_name,
			const char **error_r)
{
	int ret = store_mailbox_create(acct, new_name, 0, error_r);
	if (ret < 0)
		return ret;
	struct store_mailbox *mbox;
	if ((ret = store_mailbox_open(acct, "INBOX", false, &mbox, error_r)) < 0)
		return ret;
	struct store_uidset all = STORE_UIDSET_INIT;
	store_uidset_add(&all, 1, UINT32_MAX);
	uint32_t uidvalidity;
	ret = store_msg_copy(mbox, &all, new_name, true, &uidvalidity, NULL, NULL, error_r);
	if (ret < 0) {
		snprintf(acct->error, sizeof(acct->error), "%s", *error_r);
		*error_r = acct->error;
	}
	store_uidset_clear(&all);
	store_mailbox_close(&mbox);
	return ret;
}

int store_mailbox_rename(struct store_account *acct, const char *old_name,
			 const char *new_name, const char **error_r)
{
	char *from = maildir_canonical_name(old_name);
	char *to = maildir_canonical_name(new_name);
	int ret = 0;
	if (from == NULL)
		ret = acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
	else if (to == NULL)
		ret = acct_fail(acct, error_r, STORE_ERR_INVALID, "invalid mailbox name");
	else if (strcmp(to, "INBOX") == 0 || is_child_of(to, from) || strcmp(from, to) == 0)
		ret = acct_fail(acct, error_r, STORE_ERR_NOTPOSSIBLE,
				"cannot rename to that name");
	else if (strcmp(from, "INBOX") == 0)
		ret = rename_inbox(acct, to, error_r);
	if (ret < 0 || strcmp(from, "INBOX") == 0) {
		free(from);
		free(to);
		return ret;
	}
	MDB_txn *txn;
	if ((ret = index_txn_begin(acct, true, &txn, error_r)) < 0) {
		free(from);
		free(to);
		return ret;
	}
	/* collect the mailbox and its children first, then move them */
	struct mbox_rec rec;
	size_t count;
	char **names = names_under(txn, acct->db_mbox, from, &count);
	if (count == 0)
		ret = acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
	for (size_t i = 0; ret == 0 && i < count; i++) {
		char *target = xasprintf("%s%s", to, names[i] + strlen(from));
		if (index_mbox_get(acct, txn, target, &rec) == 0)
			ret = acct_fail(acct, error_r, STORE_ERR_EXISTS, "mailbox already exists");
		free(target);
	}
	for (size_t i = 0; ret == 0 && i < count; i++) {
		char *target = xasprintf("%s%s", to, names[i] + strlen(from));
		char *src_dir = maildir_path(acct, names[i]);
		char *dst_dir = maildir_path(acct, target);
		index_mbox_get(acct, txn, names[i], &rec);
		MDB_val key = { strlen(names[i]), names[i] };
		mdb_del(txn, acct->db_mbox, &key, NULL);
		index_mbox_put(acct, txn, target, &rec);
		if (rename(src_dir, dst_dir) < 0 && errno != ENOENT)
			ret = acct_fail(acct, error_r, STORE_ERR_INTERNAL, "rename %s: %s",
					src_dir, strerror(errno));
		free(src_dir);
		free(dst_dir);
		free(target);
	}
	if (ret == 0)
		ret = rename_subscriptions(acct, txn, from, to, error_r);
	if (ret == 0)
		ret = index_txn_commit(acct, txn, error_r);
	else
		mdb_txn_abort(txn);
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	free(from);
	free(to);
	return ret;
}

int store_mailbox_subscribe(struct store_account *acct, const char *name, bool subscribe,
			    const char **error_r)
{
	char *canon = maildir_canonical_name(name);
	if (canon == NULL)
		return acct_fail(acct, error_r, STORE_ERR_INVALID, "invalid mailbox name");
	MDB_txn *txn;
	int ret = index_txn_begin(acct, true, &txn, error_r);
	if (ret == 0) {
		MDB_val k = { strlen(canon), canon }, v = { 0, (void *)"" };
		if (subscribe)
			mdb_put(txn, acct->db_subs, &k, &v, 0);
		else
			mdb_del(txn, acct->db_subs, &k, NULL);
		ret = index_txn_commit(acct, txn, error_r);
	}
	free(canon);
	return ret;
}

/* ---- LIST ---- */

/* Dynamic programming over (pattern position, name position): linear in
 * the name for each pattern byte, so hostile patterns ("*a*a*a*...b")
 * cannot make LIST exponential as backtracking would. */
static bool match_from(const char *p, const char *n)
{
	size_t len = strlen(n);
	bool *cur = xcalloc(len + 1, sizeof(bool)), *next = xcalloc(len + 1, sizeof(bool));
	cur[0] = true;
	for (; *p != '\0'; p++) {
		if (*p == '*') {
			next[0] = cur[0];
			for (size_t j = 1; j <= len; j++)
				next[j] = next[j - 1] || cur[j];
		} else if (*p == '%') {
			next[0] = cur[0];
			for (size_t j = 1; j <= len; j++)
				next[j] = cur[j] || (next[j - 1] && n[j - 1] != '/');
		} else {
			next[0] = false;
			for (size_t j = 1; j <= len; j++)
				next[j] = cur[j - 1] && n[j - 1] == *p;
		}
		bool *t = cur;
		cur = next;
		next = t;
	}
	bool ret = cur[len];
	free(cur);
	free(next);
	return ret;
}

bool store_pattern_match(const char *pattern, const char *name)
{
	/* INBOX is case-insensitive, also as the first pattern component */
	if (ascii_strncasecmp(pattern, "INBOX", 5) == 0 &&
	    (pattern[5] == '\0' || pattern[5] == '/' || pattern[5] == '*' ||
	     pattern[5] == '%')) {
		char *copy = xasprintf("INBOX%s", pattern + 5);
		bool ret = match_from(copy, name);
		free(copy);
		return ret;
	}
	return match_from(pattern, name);
}

static int list_entry_cmp(const void *a, const void *b)
{
	const struct store_list_entry *x = a, *y = b;
	bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x->name, y->name);
}

static struct store_list_entry *list_find(struct store_list *list, const char *name)
{
	for (size_t i = 0; i < list->count; i++)
		if (strcmp(list->entries[i].name, name) == 0)
			return &list->entries[i];
	return NULL;
}

static struct store_list_entry *list_add(struct store_list *list, const char *name,
					 size_t name_len, uint32_t attrs)
{
	list->entries = xrealloc(list->entries, (list->count + 1) * sizeof(*list->entries));
	struct store_list_entry *e = &list->entries[list->count++];
	e->name = xstrndup(name, name_len);
	e->attrs = attrs;
	e->special_use = 0;
	return e;
}

int store_mailbox_list(struct store_account *acct, const char *pattern,
		       bool subscribed_only, struct store_list *list_r,
		       const char **error_r)
{
	struct store_list all = { NULL, 0 };
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	memset(list_r, 0, sizeof(*list_r));
	if (index_txn_begin(acct, false, &txn, error_r) < 0)
		return STORE_ERR_INTERNAL;
	mdb_cursor_open(txn, subscribed_only ? acct->db_subs : acct->db_mbox, &cur);
	for (int r = mdb_cursor_get(cur, &k, &v, MDB_FIRST); r == 0;
	     r = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct store_list_entry *e = list_add(&all, k.mv_data, k.mv_size, 0);
		struct mbox_rec rec;
		if (index_mbox_get(acct, txn, e->name, &rec) == 0)
			e->special_use = rec.special_use;
		else
			e->attrs |= STORE_LIST_NOSELECT;
		MDB_val sk = { strlen(e->name), e->name }, sv;
		if (mdb_get(txn, acct->db_subs, &sk, &sv) == 0)
			e->attrs |= STORE_LIST_SUBSCRIBED;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	/* parents that do not exist themselves, and \HasChildren */
	size_t real = all.count;
	for (size_t i = 0; i < real; i++) {
		const char *name = all.entries[i].name;
		for (const char *slash = strchr(name, '/'); slash != NULL;
		     slash = strchr(slash + 1, '/')) {
			size_t plen = (size_t)(slash - name);
			char *parent = xstrndup(name, plen);
			struct store_list_entry *p = list_find(&all, parent);
			if (p == NULL)
				p = list_add(&all, parent, plen, STORE_LIST_NOSELECT);
			p->attrs |= STORE_LIST_HASCHILDREN;
			free(parent);
			name = all.entries[i].name;   /* list_add may have moved it */
		}
	}
	for (size_t i = 0; i < all.count; i++) {
		struct store_list_entry *e = &all.entries[i];
		if (store_pattern_match(pattern, e->name)) {
			list_r->entries = xrealloc(list_r->entries, (list_r->count + 1) *
						   sizeof(*list_r->entries));
			list_r->entries[list_r->count++] = *e;
		} else {
			free(e->name);
		}
	}
	free(all.entries);
	if (list_r->count > 0)
		qsort(list_r->entries, list_r->count, sizeof(*list_r->entries), list_entry_cmp);
	return 0;
}

void store_list_free(struct store_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->entries[i].name);
	free(list->entries);
	list->entries = NULL;
	list->count = 0;
}

/* ---- STATUS ---- */

static uint32_t count_recent(struct store_account *acct, MDB_txn *txn,
			     const struct mbox_rec *rec)
{
	MDB_cursor *cur;
	MDB_val v;
	uint32_t n = 0, uid;
	bool started = false;
	if (mdb_cursor_open(txn, acct->db_msg, &cur) != 0)
		return 0;
	while (index_id_next(cur, rec->id, rec->first_recent_uid, &started, &uid, &v))
		n++;
	mdb_cursor_close(cur);
	return n;
}

void mailbox_fill_status(struct store_account *acct, MDB_txn *txn,
			 const struct mbox_rec *rec, struct store_status *st)
{
	memset(st, 0, sizeof(*st));
	st->messages = rec->messages;
	st->recent = count_recent(acct, txn, rec);
	st->uidnext = rec->uidnext;
	st->uidvalidity = rec->uidvalidity;
	st->unseen = rec->unseen;
	st->deleted = rec->deleted;
	st->size = rec->size;
	st->highestmodseq = rec->highestmodseq;
	st->special_use = rec->special_use;
}

int store_mailbox_status(struct store_account *acct, const char *name,
			 struct store_status *status_r, const char **error_r)
{
	char *canon = maildir_canonical_name(name);
	if (canon == NULL)
		return acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
	int ret = heal_mailbox(acct, canon, false, error_r);
	MDB_txn *txn;
	struct mbox_rec rec;
	if (ret == 0 && (ret = index_txn_begin(acct, false, &txn, error_r)) == 0) {
		if (index_mbox_get(acct, txn, canon, &rec) == 0)
			mailbox_fill_status(acct, txn, &rec, status_r);
		else
			ret = acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
		mdb_txn_abort(txn);
	}
	free(canon);
	return ret;
}

int store_mailbox_deleted_size(struct store_account *acct, const char *name,
			       uint64_t *bytes_r, const char **error_r)
{
	char *canon = maildir_canonical_name(name);
	if (canon == NULL)
		return acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
	MDB_txn *txn;
	struct mbox_rec rec;
	int ret = index_txn_begin(acct, false, &txn, error_r);
	*bytes_r = 0;
	if (ret == 0) {
		MDB_cursor *cur;
		if (index_mbox_get(acct, txn, canon, &rec) < 0) {
			ret = acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
		} else if (rec.deleted > 0 && mdb_cursor_open(txn, acct->db_msg, &cur) == 0) {
			/* only when something is \Deleted: then a walk of the records */
			MDB_val v;
			uint32_t uid;
			bool started = false;
			while (index_id_next(cur, rec.id, 0, &started, &uid, &v)) {
				struct msg_rec m;
				memcpy(&m, v.mv_data, sizeof(m));
				if (m.flags & STORE_FLAG_DELETED)
					*bytes_r += m.size;
			}
			mdb_cursor_close(cur);
		}
		mdb_txn_abort(txn);
	}
	free(canon);
	return ret;
}

/* `postern backup` of one account while the server runs: the index is
 * copied first (one LMDB read snapshot, compacted), then exactly the
 * message files that snapshot names, each under the name the snapshot
 * gives it, so the copy's index and Maildir agree: every message the
 * index held (so every message acknowledged before the backup began) is
 * there with its UID, flags and folder, and the UIDVALIDITY is the same.
 *
 * The Maildir keeps changing while we copy: a file whose flags changed
 * has another name by now (found by its base name in a listing of the
 * mailbox), a message expunged since is simply not there (the restored
 * index heals it away, as the store does with any vanished file), and a
 * file the snapshot does not know (delivered or moved in since) is copied
 * as it is, for the restored store to index like mail dropped in. */
#include "store/store-private.h"
#include "core/fs.h"
#include "core/lmdb-env.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct disk_file {
	char *base;          /* the name without ":2,..." */
	char *path;
	uint64_t ino;        /* COPY and MOVE link: one inode, several names */
	bool in_cur;
	bool used;           /* copied for a record of the snapshot */
};

/* The inodes copied so far in the account, and whether as an extra: a
 * message moved while we copy is copied once, in the folder we met it
 * first (the other copy's record is healed away at restore), never twice. */
struct inode_set {
	struct inode_slot { uint64_t ino; bool used, extra; } *slots;
	size_t count, cap;
};

static struct inode_slot *inode_slot(struct inode_set *set, uint64_t ino)
{
	size_t i = (size_t)(ino * 0x9e3779b97f4a7c15ull) & (set->cap - 1);
	while (set->slots[i].used && set->slots[i].ino != ino)
		i = (i + 1) & (set->cap - 1);
	return &set->slots[i];
}

static const struct inode_slot *inode_find(struct inode_set *set, uint64_t ino)
{
	if (set->cap == 0)
		return NULL;
	struct inode_slot *slot = inode_slot(set, ino);
	return slot->used ? slot : NULL;
}

static void inode_add(struct inode_set *set, uint64_t ino, bool extra)
{
	if ((set->count + 1) * 2 > set->cap) {
		struct inode_set bigger = { NULL, 0, set->cap == 0 ? 1024 : set->cap * 2 };
		bigger.slots = xcalloc(bigger.cap, sizeof(*bigger.slots));
		for (size_t i = 0; i < set->cap; i++) {
			if (set->slots[i].used)
				*inode_slot(&bigger, set->slots[i].ino) = set->slots[i];
		}
		bigger.count = set->count;
		free(set->slots);
		*set = bigger;
	}
	struct inode_slot *slot = inode_slot(set, ino);
	if (!slot->used) {
		slot->used = true;
		slot->ino = ino;
		slot->extra = extra;
		set->count++;
	}
}

struct mbox_copy {
	char *src_dir;
	char *dst_dir;
	struct disk_file *files;
	size_t count;
};

static char backup_error[600];

static int backup_fail(const char **error_r, const char *fmt, const char *path, int err)
{
	snprintf(backup_error, sizeof(backup_error), fmt, path,
		 err > 0 ? strerror(err) : mdb_strerror(err));
	*error_r = backup_error;
	return -1;
}

static int disk_file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct disk_file *)a)->base, ((const struct disk_file *)b)->base);
}

static void files_clear(struct mbox_copy *mc)
{
	for (size_t i = 0; i < mc->count; i++) {
		free(mc->files[i].base);
		free(mc->files[i].path);
	}
	free(mc->files);
	mc->files = NULL;
	mc->count = 0;
}

/* One listing of new/ and cur/, sorted by base name. */
static void files_list(struct mbox_copy *mc)
{
	size_t cap = 0;
	files_clear(mc);
	for (int sub = 0; sub < 2; sub++) {
		char *dir = xasprintf("%s/%s", mc->src_dir, sub == 0 ? "new" : "cur");
		DIR *d = opendir(dir);
		struct dirent *de;
		while (d != NULL && (de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			if (mc->count == cap) {
				cap = cap == 0 ? 64 : cap * 2;
				mc->files = xrealloc(mc->files, cap * sizeof(*mc->files));
			}
			struct disk_file *f = &mc->files[mc->count++];
			const char *info = strstr(de->d_name, ":2,");
			f->base = info != NULL ? xstrndup(de->d_name, (size_t)(info - de->d_name)) :
						 xstrdup(de->d_name);
			f->path = xasprintf("%s/%s", dir, de->d_name);
			f->ino = (uint64_t)de->d_ino;
			f->in_cur = sub == 1;
			f->used = false;
		}
		if (d != NULL)
			closedir(d);
		free(dir);
	}
	if (mc->count > 1)
		qsort(mc->files, mc->count, sizeof(*mc->files), disk_file_cmp);
}

static struct disk_file *files_find(struct mbox_copy *mc, const char *base)
{
	struct disk_file key = { (char *)base, NULL, 0, false, false };
	return mc->count == 0 ? NULL :
		bsearch(&key, mc->files, mc->count, sizeof(*mc->files), disk_file_cmp);
}

/* The mailbox's directories in the copy, and its Dovecot-compatible
 * metadata (the uidlist may name files copied as extras: only an index
 * with no UID handed out adopts it). */
static int mailbox_dirs(struct mbox_copy *mc, bool inbox, const char **error_r)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	if (!inbox && mkdir(mc->dst_dir, 0700) < 0 && errno != EEXIST)
		return backup_fail(error_r, "cannot create %s: %s", mc->dst_dir, errno);
	for (size_t i = 0; i < 3; i++) {
		char *path = xasprintf("%s/%s", mc->dst_dir, subs[i]);
		int ret = mkdir(path, 0700) < 0 && errno != EEXIST ? -1 : 0;
		if (ret < 0)
			backup_fail(error_r, "cannot create %s: %s", path, errno);
		free(path);
		if (ret < 0)
			return -1;
	}
	static const char *const meta[] = { "dovecot-uidlist", "dovecot-keywords", "maildirfolder" };
	for (size_t i = 0; i < 3; i++) {
		char *from = xasprintf("%s/%s", mc->src_dir, meta[i]);
		char *to = xasprintf("%s/%s", mc->dst_dir, meta[i]);
		int ret = fs_copy_file(from, to) < 0 && errno != ENOENT && errno != EEXIST ? -1 : 0;
		if (ret < 0)
			backup_fail(error_r, "cannot copy %s: %s", from, errno);
		free(from);
		free(to);
		if (ret < 0)
			return -1;
	}
	return 0;
}

static int copy_counted(const char *from, const char *to, struct store_backup_count *count)
{
	struct stat st;
	if (fs_copy_file(from, to) < 0)
		return -1;
	if (stat(to, &st) == 0)
		count->bytes += (uint64_t)st.st_size;
	return 0;
}

/* Copies the file of one record of the snapshot to the path the snapshot
 * gives it. 0, 1 when the message is gone (expunged since), -1 error. */
static int message_copy(struct mbox_copy *mc, struct inode_set *inodes,
			const struct msg_rec *rec, const char *base,
			struct store_backup_count *count, const char **error_r)
{
	struct buf to = BUF_INIT;
	maildir_msg_path(&to, mc->dst_dir, rec, base);
	int ret = 1;
	/* a listing may be older than a rename: list again once, then give up */
	for (int round = 0; round < 3 && ret == 1; round++) {
		struct disk_file *f = files_find(mc, base);
		if (f == NULL && round == 0) {
			files_list(mc);
			continue;
		}
		if (f == NULL)
			break;
		const struct inode_slot *seen = inode_find(inodes, f->ino);
		if (seen != NULL && seen->extra) {
			f->used = true;   /* moved here from a folder copied before */
			break;
		}
		if (copy_counted(f->path, buf_str(&to), count) == 0) {
			struct buf was = BUF_INIT;
			maildir_msg_path(&was, mc->src_dir, rec, base);
			if (strcmp(buf_str(&was), f->path) != 0)
				count->renamed++;
			buf_free(&was);
			f->used = true;
			inode_add(inodes, f->ino, false);
			ret = 0;
		} else if (errno == EEXIST) {
			f->used = true;   /* the snapshot names it twice: one copy */
			ret = 0;
		} else if (errno == ENOENT) {
			files_list(mc);
		} else {
			ret = backup_fail(error_r, "cannot copy %s: %s", f->path, errno);
		}
	}
	buf_free(&to);
	return ret;
}

/* Files the snapshot does not know, copied under their own names. */
static int extras_copy(struct mbox_copy *mc, struct inode_set *inodes,
		       struct store_backup_count *count, const char **error_r)
{
	for (size_t i = 0; i < mc->count; i++) {
		struct disk_file *f = &mc->files[i];
		if (f->used || inode_find(inodes, f->ino) != NULL)
			continue;
		inode_add(inodes, f->ino, true);
		const char *name = strrchr(f->path, '/') + 1;
		char *to = xasprintf("%s/%s/%s", mc->dst_dir, f->in_cur ? "cur" : "new", name);
		int ret = copy_counted(f->path, to, count);
		int err = errno;
		free(to);
		if (ret == 0)
			count->extra++;
		else if (err != ENOENT && err != EEXIST)
			return backup_fail(error_r, "cannot copy %s: %s", f->path, err);
	}
	return 0;
}

static int mailbox_copy(MDB_txn *txn, MDB_dbi msg_dbi, const char *root, const char *dest,
			const char *name, const struct mbox_rec *rec, struct inode_set *inodes,
			struct store_backup_count *count, const char **error_r)
{
	struct mbox_copy mc = { maildir_path_in(root, name), maildir_path_in(dest, name), NULL, 0 };
	MDB_cursor *cur = NULL;
	int ret = mailbox_dirs(&mc, strcmp(name, "INBOX") == 0, error_r);
	int rc;
	if (ret == 0 && (rc = mdb_cursor_open(txn, msg_dbi, &cur)) != 0)
		ret = backup_fail(error_r, "reading the index copy %s: %s", dest, rc);
	if (ret == 0)
		files_list(&mc);
	bool started = false;
	uint32_t uid;
	MDB_val val;
	while (ret == 0 && index_id_next(cur, rec->id, 1, &started, &uid, &val)) {
		struct msg_rec msg;
		if (val.mv_size <= sizeof(msg))
			continue;
		memcpy(&msg, val.mv_data, sizeof(msg));
		const char *base = (const char *)val.mv_data + sizeof(msg);
		if (memchr(base, '\0', val.mv_size - sizeof(msg)) == NULL)
			continue;
		int copied = message_copy(&mc, inodes, &msg, base, count, error_r);
		if (copied < 0)
			ret = -1;
		else if (copied == 0)
			count->messages++;
		else
			count->missing++;
	}
	if (ret == 0)
		ret = extras_copy(&mc, inodes, count, error_r);
	if (cur != NULL)
		mdb_cursor_close(cur);
	files_clear(&mc);
	free(mc.src_dir);
	free(mc.dst_dir);
	return ret;
}

/* Leaves out the store's locks and signals, made again at need. */
static bool skip_runtime(const char *name, bool is_dir, void *ctx)
{
	return !is_dir && strncmp(name, "postern-", 8) == 0;
}

int store_backup_account(const char *root, const char *dest, const char *run_as,
			 struct store_backup_count *count, const char **error_r)
{
	char *index = xasprintf("%s/%s", root, STORE_INDEX_NAME);
	char *index_copy = xasprintf("%s/%s", dest, STORE_INDEX_NAME);
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi mbox_dbi, msg_dbi;
	MDB_cursor *cur = NULL;
	struct inode_set inodes = { NULL, 0, 0 };
	int ret = 0, rc;

	if (access(index, F_OK) != 0) {
		/* never opened by Postern (a Maildir copied in): as it is */
		ret = fs_copy_tree(root, dest, skip_runtime, NULL, &count->bytes, error_r);
		goto out;
	}
	if (mkdir(dest, 0700) < 0) {
		ret = backup_fail(error_r, "cannot create %s: %s", dest, errno);
		goto out;
	}
	/* the snapshot: everything committed before this moment */
	if (lmdb_env_copy_compact(index, index_copy, run_as, error_r) < 0) {
		ret = -1;
		goto out;
	}
	if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 16)) != 0 ||
	    (rc = mdb_env_open(env, index_copy, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK |
			       MDB_NOTLS, 0600)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "mbox", 0, &mbox_dbi)) != 0 ||
	    (rc = mdb_dbi_open(txn, "msg", MDB_INTEGERKEY, &msg_dbi)) != 0 ||
	    (rc = mdb_cursor_open(txn, mbox_dbi, &cur)) != 0) {
		ret = backup_fail(error_r, "reading the index copy %s: %s", index_copy, rc);
		goto out;
	}
	MDB_val k, v;
	while (ret == 0 && mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
		struct mbox_rec rec;
		if (v.mv_size < sizeof(rec) || k.mv_size == 0 || k.mv_size > 1024)
			continue;
		memcpy(&rec, v.mv_data, sizeof(rec));
		char *name = xstrndup(k.mv_data, k.mv_size);
		if (maildir_validate_name(name) == 0 || strcmp(name, "INBOX") == 0) {
			count->mailboxes++;
			ret = mailbox_copy(txn, msg_dbi, root, dest, name, &rec, &inodes, count,
					   error_r);
		}
		free(name);
	}
out:
	free(inodes.slots);
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (env != NULL)
		mdb_env_close(env);
	free(index);
	free(index_copy);
	return ret;
}

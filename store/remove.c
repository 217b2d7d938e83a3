/* Removing an account's mail (`postern user del`) and the UIDVALIDITY
 * floor that keeps a later account of the same address from repeating
 * the old one's UIDVALIDITY (RFC 3501 2.3.1.1: a client would take the
 * new mailbox for the old and keep its cached messages). */
#include "store/store-private.h"
#include "core/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_NAME ".uidvalidity-floor"
#define DELETED_DIR ".deleted"

uint64_t store_uidvalidity_floor(struct store *store)
{
	char *path = xasprintf("%s/%s", store->mail_dir, FLOOR_NAME);
	char text[32];
	uint64_t floor = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n > 0) {
		text[n] = '\0';
		floor = strtoull(text, NULL, 10);
	}
	return floor;
}

/* Raises the floor to at least value (under a lock: two deletions at once
 * must not lose the higher one). */
static int floor_raise(struct store *store, uint64_t value, const char **error_r)
{
	char *path = xasprintf("%s/%s", store->mail_dir, FLOOR_NAME);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	int ret = 0;
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		ret = store_fail(store->error, sizeof(store->error), error_r, STORE_ERR_INTERNAL,
				 "%s: %s", path, strerror(errno));
		goto out;
	}
	store_give(store, path);
	char text[32];
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	text[n > 0 ? n : 0] = '\0';
	if (strtoull(text, NULL, 10) >= value)
		goto out;
	int len = snprintf(text, sizeof(text), "%" PRIu64 "\n", value);
	if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)len, 0) != len || fsync(fd) < 0)
		ret = store_fail(store->error, sizeof(store->error), error_r, STORE_ERR_INTERNAL,
				 "%s: %s", path, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return ret;
}

/* The highest UIDVALIDITY an account index ever handed out or adopted
 * (0 when there is no readable index). */
static uint64_t index_max_uidvalidity(const char *index_path)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi mbox, meta;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t max = 0;

	if (access(index_path, F_OK) != 0 || mdb_env_create(&env) != 0)
		return 0;
	mdb_env_set_maxdbs(env, 16);
	mdb_env_set_maxreaders(env, STORE_MAXREADERS);
	if (mdb_env_open(env, index_path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOTLS, 0600) != 0 ||
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
		goto out;
	if (mdb_dbi_open(txn, "meta", 0, &meta) == 0) {
		k.mv_data = (void *)"last_uidvalidity";
		k.mv_size = strlen("last_uidvalidity");
		if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == sizeof(uint64_t))
			memcpy(&max, v.mv_data, sizeof(max));
	}
	if (mdb_dbi_open(txn, "mbox", 0, &mbox) == 0 &&
	    mdb_cursor_open(txn, mbox, &cur) == 0) {
		while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
			struct mbox_rec rec;
			if (v.mv_size < sizeof(rec))
				continue;
			memcpy(&rec, v.mv_data, sizeof(rec));
			if (rec.uidvalidity > max)
				max = rec.uidvalidity;
		}
		mdb_cursor_close(cur);
	}
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	return max;
}

static void fsync_path(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Moves the account's tree aside (only when it holds an index, with
 * require_index) and removes it unless keep. */
static int account_move_aside(struct store *store, const char *address, bool require_index,
			      bool keep, char **kept_r, const char **error_r)
{
	char *local, *domain;
	*kept_r = NULL;
	if (store_address_split(address, &local, &domain) < 0)
		return store_fail(store->error, sizeof(store->error), error_r,
				  STORE_ERR_INVALID, "invalid account address");
	char *root = xasprintf("%s/%s/%s", store->mail_dir, domain, local);
	char *aside_dir = xasprintf("%s/%s/%s", store->mail_dir, DELETED_DIR, domain);
	char *aside = NULL;
	int ret = 0;
	struct stat st;

	if (lstat(root, &st) < 0) {
		if (errno != ENOENT)
			ret = store_fail(store->error, sizeof(store->error), error_r,
					 STORE_ERR_INTERNAL, "%s: %s", root, strerror(errno));
		goto out;
	}
	if (require_index) {
		char *index = xasprintf("%s/%s", root, STORE_INDEX_NAME);
		bool has_index = lstat(index, &st) == 0;
		free(index);
		if (!has_index)
			goto out;
	}
	if (privs_mkdir_p(aside_dir, 0700, store->run_as, error_r) < 0) {
		ret = STORE_ERR_INTERNAL;
		goto out;
	}
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	/* one rename: a writer still holding the old paths finds nothing
	 * there, and never writes into a later account's tree */
	for (int n = 0;; n++) {
		aside = n == 0 ? xasprintf("%s/%s.%s", aside_dir, local, stamp) :
				 xasprintf("%s/%s.%s.%d", aside_dir, local, stamp, n);
		if (lstat(aside, &st) < 0 && errno == ENOENT)
			break;
		free(aside);
		aside = NULL;
		if (n == 1000) {
			ret = store_fail(store->error, sizeof(store->error), error_r,
					 STORE_ERR_INTERNAL, "no free name in %s", aside_dir);
			goto out;
		}
	}
	if (rename(root, aside) < 0) {
		ret = store_fail(store->error, sizeof(store->error), error_r,
				 STORE_ERR_INTERNAL, "cannot move %s aside: %s", root,
				 strerror(errno));
		goto out;
	}
	char *parent = xasprintf("%s/%s", store->mail_dir, domain);
	fsync_path(parent);
	fsync_path(aside_dir);
	free(parent);
	char *index = xasprintf("%s/%s", aside, STORE_INDEX_NAME);
	uint64_t highest = index_max_uidvalidity(index);
	free(index);
	if (highest > 0 && (ret = floor_raise(store, highest, error_r)) < 0)
		goto out;
	log_info("event=store_account_removed account=%s kept=%s uidvalidity_floor=%" PRIu64,
		 address, keep ? aside : "no", highest);
	if (keep) {
		*kept_r = aside;
		aside = NULL;
	} else if (fs_remove_tree(aside) < 0) {
		ret = store_fail(store->error, sizeof(store->error), error_r, STORE_ERR_INTERNAL,
				 "cannot remove %s: %s", aside, strerror(errno));
	}
out:
	free(aside);
	free(aside_dir);
	free(root);
	free(local);
	free(domain);
	return ret;
}

int store_account_remove(struct store *store, const char *address, bool keep,
			 char **kept_r, const char **error_r)
{
	return account_move_aside(store, address, false, keep, kept_r, error_r);
}

int store_set_aside_leftover(const char *data_dir, const char *run_as, const char *address,
			     char **kept_r, const char **error_r)
{
	static char error[512];
	char *local, *domain;
	*kept_r = NULL;
	if (store_address_split(address, &local, &domain) < 0) {
		*error_r = "invalid account address";
		return STORE_ERR_INVALID;
	}
	/* nothing there (the usual case): nothing is opened or created */
	char *index = xasprintf("%s/mail/%s/%s/%s", data_dir, domain, local, STORE_INDEX_NAME);
	struct stat st;
	bool leftover = lstat(index, &st) == 0;
	free(index);
	free(local);
	free(domain);
	if (!leftover)
		return 0;
	struct store *store;
	int ret = store_open(data_dir, run_as, &store, error_r);
	if (ret == 0) {
		ret = account_move_aside(store, address, true, true, kept_r, error_r);
		if (ret < 0) {
			snprintf(error, sizeof(error), "%s", *error_r);
			*error_r = error;
		}
		store_free(&store);
	}
	return ret;
}

/* The store and its accounts: opening, the per-process environment cache,
 * change notification, quota, and small containers. */
#include "store/store-private.h"
#include "core/account-end.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
	const char *name;
	uint32_t special_use;
} default_mailboxes[] = {
	{ "Sent", STORE_SPECIAL_SENT },
	{ "Drafts", STORE_SPECIAL_DRAFTS },
	{ "Trash", STORE_SPECIAL_TRASH },
	{ "Junk", STORE_SPECIAL_JUNK },
	{ "Archive", STORE_SPECIAL_ARCHIVE },
};

int store_fail(char *buf, size_t size, const char **error_r, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (error_r != NULL)
		*error_r = buf;
	return code;
}

void store_give(struct store *store, const char *path)
{
	const char *error;
	if (store->run_as != NULL && privs_is_root() &&
	    privs_give(path, store->run_as, &error) < 0)
		log_warn("event=store_chown_failed path=%s error=\"%s\"", path, error);
}

/* ---- containers ---- */

void store_uidset_add(struct store_uidset *set, uint32_t lo, uint32_t hi)
{
	if (lo > hi) {
		uint32_t t = lo;
		lo = hi;
		hi = t;
	}
	if (set->count == set->cap) {
		set->cap = set->cap == 0 ? 8 : set->cap * 2;
		set->ranges = xrealloc(set->ranges, set->cap * sizeof(*set->ranges));
	}
	/* insert sorted by lo, then merge overlapping/adjacent neighbours */
	size_t i = set->count;
	while (i > 0 && set->ranges[i - 1].lo > lo) {
		set->ranges[i] = set->ranges[i - 1];
		i--;
	}
	set->ranges[i].lo = lo;
	set->ranges[i].hi = hi;
	set->count++;
	size_t out = 0;
	for (size_t j = 1; j < set->count; j++) {
		struct store_uid_range *cur = &set->ranges[out];
		if (set->ranges[j].lo <= cur->hi ||
		    (cur->hi != UINT32_MAX && set->ranges[j].lo == cur->hi + 1)) {
			if (set->ranges[j].hi > cur->hi)
				cur->hi = set->ranges[j].hi;
		} else {
			set->ranges[++out] = set->ranges[j];
		}
	}
	set->count = out + 1;
}

bool store_uidset_contains(const struct store_uidset *set, uint32_t uid)
{
	size_t lo = 0, hi = set->count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (uid < set->ranges[mid].lo)
			hi = mid;
		else if (uid > set->ranges[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

void store_uidset_clear(struct store_uidset *set)
{
	free(set->ranges);
	set->ranges = NULL;
	set->count = set->cap = 0;
}

void store_uids_push(struct store_uids *list, uint32_t uid)
{
	if (list->count == list->cap) {
		list->cap = list->cap == 0 ? 16 : list->cap * 2;
		list->uids = xrealloc(list->uids, list->cap * sizeof(*list->uids));
	}
	list->uids[list->count++] = uid;
}

void store_uids_clear(struct store_uids *list)
{
	free(list->uids);
	list->uids = NULL;
	list->count = list->cap = 0;
}

/* ---- store ---- */

static void account_free(struct store_account *acct);

static int remove_stale_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	time_t limit = time(NULL) - 36 * 3600;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_mtime < limit)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	return 0;
}

void store_set_index_mapsize(struct store *store, size_t bytes)
{
	store->mapsize = bytes;
}

int store_open(const char *data_dir, const char *run_as, struct store **store_r,
	       const char **error_r)
{
	struct store *store = xcalloc(1, sizeof(*store));
	store->data_dir = xstrdup(data_dir);
	store->mail_dir = xasprintf("%s/mail", data_dir);
	store->tmp_dir = xasprintf("%s/tmp", data_dir);
	store->run_as = run_as != NULL ? xstrdup(run_as) : NULL;
	store->mapsize = STORE_MAPSIZE;
	char host[256];
	if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	/* '/' and ':' are not allowed in Maildir names; ',' starts our fields */
	for (char *p = host; *p != '\0'; p++) {
		if (*p == '/')
			*p = '\\';
		else if (*p == ':' || *p == ',')
			*p = '_';
	}
	store->hostname = xstrdup(host);
	store->watch_fd = -1;
	if (privs_mkdir_p(store->mail_dir, 0700, run_as, error_r) < 0 ||
	    privs_mkdir_p(store->tmp_dir, 0700, run_as, error_r) < 0) {
		store_free(&store);
		return STORE_ERR_INTERNAL;
	}
	remove_stale_tmp(store->tmp_dir);
	*store_r = store;
	return 0;
}

void store_free(struct store **storep)
{
	struct store *store = *storep;
	if (store == NULL)
		return;
	*storep = NULL;
	while (store->accounts != NULL) {
		struct store_account *acct = store->accounts;
		if (acct->refcount > 0)
			log_warn("event=store_free_open_account account=%s", acct->address);
		store->accounts = acct->next;
		account_free(acct);
	}
	free(store->data_dir);
	free(store->mail_dir);
	free(store->tmp_dir);
	free(store->run_as);
	free(store->hostname);
	if (store->watch_fd >= 0)
		close(store->watch_fd);
	free(store);
}

/* ---- accounts ---- */

int store_account_address_check(const char *address, const char **error_r)
{
	const char *at = strrchr(address, '@');
	if (at == NULL || at == address || at[1] == '\0') {
		*error_r = "not an address (local@domain expected)";
		return STORE_ERR_INVALID;
	}
	size_t local_len = (size_t)(at - address);
	/* the local part and the domain become directory names under mail/ */
	if ((local_len == 1 && address[0] == '.') ||
	    (local_len == 2 && address[0] == '.' && address[1] == '.')) {
		*error_r = "the store cannot hold a local part of \".\" or \"..\"";
		return STORE_ERR_INVALID;
	}
	if (address[0] == '.' || at[1] == '.') {
		/* names under mail/ that start with '.' are the store's own */
		*error_r = "the store cannot hold a local part or domain starting with '.'";
		return STORE_ERR_INVALID;
	}
	for (const char *p = address; *p != '\0'; p++) {
		if (*p == '/') {
			*error_r = "the store cannot hold an address with '/' (it names a directory)";
			return STORE_ERR_INVALID;
		}
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*error_r = "the store cannot hold an address with control characters";
			return STORE_ERR_INVALID;
		}
	}
	if (local_len > 255 || strlen(at + 1) > 255) {
		*error_r = "the store cannot hold a local part or domain over 255 bytes";
		return STORE_ERR_INVALID;
	}
	return 0;
}

int store_address_split(const char *address, char **local_r, char **domain_r)
{
	const char *why;
	if (store_account_address_check(address, &why) < 0)
		return -1;
	const char *at = strrchr(address, '@');
	char *local = xstrndup(address, (size_t)(at - address));
	char *domain = xstrdup(at + 1);
	for (char *p = domain; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	*local_r = local;
	*domain_r = domain;
	return 0;
}

static int env_open(struct store_account *acct, const char *path, const char **error_r)
{
	int ret;
	if ((ret = mdb_env_create(&acct->env)) != 0)
		return acct_fail(acct, error_r, STORE_ERR_INTERNAL, "mdb_env_create: %s",
				 mdb_strerror(ret));
	mdb_env_set_mapsize(acct->env, acct->store->mapsize);
	mdb_env_set_maxreaders(acct->env, STORE_MAXREADERS);
	mdb_env_set_maxdbs(acct->env, 16);
	ret = mdb_env_open(acct->env, path, MDB_NOSUBDIR | MDB_NOTLS, 0600);
	if (ret != 0) {
		mdb_env_close(acct->env);
		acct->env = NULL;
		return acct_fail(acct, error_r, ret == MDB_INVALID || ret == MDB_CORRUPTED ||
				 ret == MDB_VERSION_MISMATCH ? STORE_ERR_NOTPOSSIBLE
				 : STORE_ERR_INTERNAL, "mdb_env_open %s: %s", path,
				 mdb_strerror(ret));
	}
	int dead = 0;
	mdb_reader_check(acct->env, &dead);
	return 0;
}

static int env_open_dbs(struct store_account *acct, const char **error_r)
{
	MDB_txn *txn;
	if (index_txn_begin(acct, true, &txn, error_r) < 0)
		return STORE_ERR_INTERNAL;
	int ret = 0;
	ret = ret ? ret : mdb_dbi_open(txn, "mbox", MDB_CREATE, &acct->db_mbox);
	ret = ret ? ret : mdb_dbi_open(txn, "msg", MDB_CREATE | MDB_INTEGERKEY, &acct->db_msg);
	ret = ret ? ret : mdb_dbi_open(txn, "cache", MDB_CREATE | MDB_INTEGERKEY, &acct->db_cache);
	ret = ret ? ret : mdb_dbi_open(txn, "expunged", MDB_CREATE | MDB_INTEGERKEY,
				       &acct->db_expunged);
	ret = ret ? ret : mdb_dbi_open(txn, "kw", MDB_CREATE | MDB_INTEGERKEY, &acct->db_kw);
	ret = ret ? ret : mdb_dbi_open(txn, "meta", MDB_CREATE, &acct->db_meta);
	ret = ret ? ret : mdb_dbi_open(txn, "subs", MDB_CREATE, &acct->db_subs);
	ret = ret ? ret : mdb_dbi_open(txn, "emailid", MDB_CREATE | MDB_INTEGERKEY,
				       &acct->db_emailid);
	ret = ret ? ret : mdb_dbi_open(txn, "metadata", MDB_CREATE, &acct->db_metadata);
	if (ret != 0) {
		mdb_txn_abort(txn);
		return acct_fail(acct, error_r, STORE_ERR_NOTPOSSIBLE, "mdb_dbi_open: %s",
				 mdb_strerror(ret));
	}
	return index_txn_commit(acct, txn, error_r);
}

/* Opens the index; a damaged one is moved aside and rebuilt. */
static int account_open_index(struct store_account *acct, const char **error_r)
{
	char *path = xasprintf("%s/%s", acct->root, STORE_INDEX_NAME);
	int ret = env_open(acct, path, error_r);
	if (ret == 0 && (ret = env_open_dbs(acct, error_r)) < 0) {
		mdb_env_close(acct->env);
		acct->env = NULL;
	}
	if (ret == STORE_ERR_NOTPOSSIBLE) {
		char *aside = xasprintf("%s.damaged.%lld", path, (long long)time(NULL));
		log_warn("event=store_index_damaged account=%s error=\"%s\" moved_to=%s",
			 acct->address, *error_r, aside);
		rename(path, aside);
		free(aside);
		char *lock = xasprintf("%s-lock", path);
		unlink(lock);
		free(lock);
		ret = env_open(acct, path, error_r);
		if (ret == 0 && (ret = env_open_dbs(acct, error_r)) < 0) {
			mdb_env_close(acct->env);
			acct->env = NULL;
		}
	}
	if (ret == 0) {
		/* created by a root admin command, the workers must open both */
		store_give(acct->store, path);
		char *lock = xasprintf("%s-lock", path);
		store_give(acct->store, lock);
		free(lock);
	}
	free(path);
	return ret;
}

static int account_init_mailboxes(struct store_account *acct, const char **error_r)
{
	MDB_txn *txn;
	struct mbox_rec rec;
	if (index_txn_begin(acct, true, &txn, error_r) < 0)
		return STORE_ERR_INTERNAL;
	heal_distrust_after_boot(acct, txn);
	if (index_mbox_get(acct, txn, "INBOX", &rec) == 0) {
		/* no notification: nothing a session would care about */
		if (mdb_txn_commit(txn) != 0)
			return acct_fail(acct, error_r, STORE_ERR_INTERNAL, "index: commit failed");
		return 0;
	}
	bool fresh = index_meta_get(acct, txn, "initialized") == 0;
	/* a new account of an address (or any other) that was deleted starts
	 * above every UIDVALIDITY the old one handed out */
	uint64_t floor = fresh ? store_uidvalidity_floor(acct->store) : 0;
	if (floor > index_meta_get(acct, txn, "last_uidvalidity"))
		index_meta_put(acct, txn, "last_uidvalidity", floor);
	int ret = mailbox_create_in_txn(acct, txn, "INBOX", 0, &rec, error_r);
	for (size_t i = 0; fresh && ret == 0 && i < sizeof(default_mailboxes) /
	     sizeof(default_mailboxes[0]); i++) {
		struct mbox_rec r;
		if (index_mbox_get(acct, txn, default_mailboxes[i].name, &r) == 0)
			continue;
		char *dir = maildir_path(acct, default_mailboxes[i].name);
		struct stat st;
		bool on_disk = stat(dir, &st) == 0;
		free(dir);
		/* a copied-in Maildir's folders are discovered, not created */
		if (on_disk)
			continue;
		ret = mailbox_create_in_txn(acct, txn, default_mailboxes[i].name,
					    default_mailboxes[i].special_use, &r, error_r);
		MDB_val k = { strlen(default_mailboxes[i].name),
			      (void *)default_mailboxes[i].name }, v = { 0, (void *)"" };
		if (ret == 0)
			mdb_put(txn, acct->db_subs, &k, &v, 0);
	}
	if (ret == 0) {
		MDB_val k = { 5, (void *)"INBOX" }, v = { 0, (void *)"" };
		mdb_put(txn, acct->db_subs, &k, &v, 0);
		index_meta_put(acct, txn, "initialized", 1);
		return index_txn_commit(acct, txn, error_r);
	}
	mdb_txn_abort(txn);
	return ret;
}

static void account_free(struct store_account *acct)
{
	store_uids_clear(&acct->snapshot.uids);
	if (acct->env != NULL)
		mdb_env_close(acct->env);
	for (int i = 0; i < 3; i++)
		if (acct->watch_wd[i] >= 0)
			inotify_rm_watch(acct->store->watch_fd, acct->watch_wd[i]);
	if (acct->notify_fd >= 0)
		close(acct->notify_fd);
	if (acct->intent_fd >= 0)
		close(acct->intent_fd);
	free(acct->address);
	free(acct->root);
	free(acct->notify_path);
	free(acct);
}

/* Whether a cached account is still the one on disk: `postern user del`
 * moves the tree away and a later account of the same address gets a new
 * one. The notify file stays open in the handle, so its inode cannot be
 * reused: a different inode (or none) at the path means a different tree. */
static bool account_current(const struct store_account *a)
{
	struct stat held, now;
	return a->notify_fd >= 0 && fstat(a->notify_fd, &held) == 0 &&
	       stat(a->notify_path, &now) == 0 && held.st_ino == now.st_ino &&
	       held.st_dev == now.st_dev;
}

static void account_unlink(struct store_account *acct);

/* Lets go of a cached handle whose tree was removed: freed now when idle,
 * else when its last user closes it (store_account_close). */
static void account_forget(struct store_account *a)
{
	account_unlink(a);
	if (a->refcount == 0)
		account_free(a);
	else
		a->detached = true;
}

int store_account_open(struct store *store, const char *address,
		       struct store_account **acct_r, const char **error_r)
{
	char *local, *domain;
	if (store_address_split(address, &local, &domain) < 0)
		return store_fail(store->error, sizeof(store->error), error_r,
				  STORE_ERR_INVALID, "invalid account address");
	char *canon = xasprintf("%s@%s", local, domain);
	if (account_end_marked(store->data_dir, canon)) {
		/* deleted: a delivery that resolved it earlier must not bring
		 * the mailbox back for a later owner of the address */
		free(canon);
		free(local);
		free(domain);
		return store_fail(store->error, sizeof(store->error), error_r,
				  STORE_ERR_NOTFOUND, "account deleted");
	}
	for (struct store_account *a = store->accounts; a != NULL; a = a->next) {
		if (strcmp(a->address, canon) == 0) {
			if (!account_current(a)) {
				account_forget(a);
				break;
			}
			free(canon);
			free(local);
			free(domain);
			/* an idle one being reused: folders may have been copied in */
			if (a->refcount++ == 0 && heal_discover_mailboxes(a, error_r) < 0) {
				a->refcount--;
				return STORE_ERR_INTERNAL;
			}
			*acct_r = a;
			return 0;
		}
	}
	struct store_account *acct = xcalloc(1, sizeof(*acct));
	acct->store = store;
	acct->refcount = 1;
	acct->address = canon;
	acct->watch_wd[0] = acct->watch_wd[1] = acct->watch_wd[2] = -1;
	acct->notify_fd = -1;
	acct->intent_fd = -1;
	acct->root = xasprintf("%s/%s/%s", store->mail_dir, domain, local);
	acct->notify_path = xasprintf("%s/%s", acct->root, STORE_NOTIFY_NAME);
	free(local);
	free(domain);

	int ret = 0;
	if (privs_mkdir_p(acct->root, 0700, store->run_as, error_r) < 0 ||
	    maildir_create_dirs(acct, acct->root, error_r) < 0)
		ret = STORE_ERR_INTERNAL;
	if (ret == 0) {
		acct->notify_fd = open(acct->notify_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		store_give(store, acct->notify_path);
		char *path = xasprintf("%s/%s", acct->root, STORE_INTENT_NAME);
		acct->intent_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (acct->intent_fd >= 0)
			store_give(store, path);
		free(path);
		ret = account_open_index(acct, error_r);
	}
	if (ret == 0)
		ret = account_init_mailboxes(acct, error_r);
	if (ret == 0)
		ret = heal_discover_mailboxes(acct, error_r);
	if (ret < 0) {
		/* copy the message out of the handle before freeing it */
		snprintf(store->error, sizeof(store->error), "%s", *error_r);
		*error_r = store->error;
		account_free(acct);
		return ret;
	}
	acct->next = store->accounts;
	store->accounts = acct;
	*acct_r = acct;
	return 0;
}

static void account_unlink(struct store_account *acct)
{
	for (struct store_account **p = &acct->store->accounts; *p != NULL; p = &(*p)->next) {
		if (*p == acct) {
			*p = acct->next;
			break;
		}
	}
}

void store_account_close(struct store_account **acctp)
{
	struct store_account *acct = *acctp;
	if (acct == NULL)
		return;
	*acctp = NULL;
	if (--acct->refcount > 0)
		return;
	if (acct->detached) {
		account_free(acct);
		return;
	}
	/* stay open while idle (a delivery process reuses it); close the
	 * least recently used idle ones beyond the limit */
	acct->idle_since = ++acct->store->idle_clock;
	size_t idle = 0;
	struct store_account *oldest = NULL;
	for (struct store_account *a = acct->store->accounts; a != NULL; a = a->next) {
		if (a->refcount > 0)
			continue;
		idle++;
		if (oldest == NULL || a->idle_since < oldest->idle_since)
			oldest = a;
	}
	if (idle > STORE_IDLE_ACCOUNTS) {
		account_unlink(oldest);
		account_free(oldest);
	}
}

int store_account_set_quota(struct store_account *acct, uint64_t limit, const char **error_r)
{
	MDB_txn *txn;
	if (index_txn_begin(acct, true, &txn, error_r) < 0)
		return STORE_ERR_INTERNAL;
	index_meta_put(acct, txn, "quota_limit", limit);
	return index_txn_commit(acct, txn, error_r);
}

int store_account_get_quota(struct store_account *acct, uint64_t *used_r, uint64_t *limit_r,
			    const char **error_r)
{
	MDB_txn *txn;
	if (index_txn_begin(acct, false, &txn, error_r) < 0)
		return STORE_ERR_INTERNAL;
	*used_r = index_meta_get(acct, txn, "quota_used");
	*limit_r = index_meta_get(acct, txn, "quota_limit");
	mdb_txn_abort(txn);
	return 0;
}

int store_account_set_message_quota(struct store_account *acct, uint64_t limit,
				    const char **error_r)
{
	/* every login pushes it: take the writer lock only for a change */
	MDB_txn *txn;
	if (index_txn_begin(acct, false, &txn, error_r) < 0)
		return STORE_ERR_INTERNAL;
	uint64_t now = index_meta_get(acct, txn, "quota_msg_limit");
	mdb_txn_abort(txn);
	if (now == limit)
		return 0;
	if (index_txn_begin(acct, true, &txn, error_r) < 0)
		return STORE_ERR_INTERNAL;
	index_meta_put(acct, txn, "quota_msg_limit", limit);
	return index_txn_commit(acct, txn, error_r);
}

int store_account_get_usage(struct store_account *acct, uint64_t *bytes_r,
			    uint64_t *messages_r, const char **error_r)
{
	MDB_txn *txn;
	if (index_txn_begin(acct, false, &txn, error_r) < 0)
		return STORE_ERR_INTERNAL;
	*bytes_r = index_meta_get(acct, txn, "quota_used");
	*messages_r = index_message_count(acct, txn);
	mdb_txn_abort(txn);
	return 0;
}

int store_reader_check(struct store *store)
{
	int total = 0;
	for (struct store_account *a = store->accounts; a != NULL; a = a->next) {
		int dead = 0;
		if (mdb_reader_check(a->env, &dead) == 0)
			total += dead;
	}
	if (total > 0)
		log_info("event=store_stale_readers_cleared count=%d", total);
	return total;
}

/* ---- notification ---- */

void index_notify(struct store_account *acct)
{
	/* a one-byte write raises IN_MODIFY in every watcher */
	if (acct->notify_fd >= 0 && pwrite(acct->notify_fd, "x", 1, 0) < 0)
		log_warn("event=store_notify_failed error=\"%s\"", strerror(errno));
}

int store_watch_fd(struct store *store)
{
	/* created on first use: delivery-only processes never pay for it
	 * (closing an inotify fd is slow) */
	if (store->watch_fd == -1) {
		store->watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (store->watch_fd < 0) {
			log_warn("event=store_inotify_failed error=\"%s\"", strerror(errno));
			store->watch_fd = -2;
		}
	}
	return store->watch_fd >= 0 ? store->watch_fd : -1;
}

int store_account_watch(struct store_account *acct, const char **error_r)
{
	int fd = store_watch_fd(acct->store);
	if (fd < 0)
		return acct_fail(acct, error_r, STORE_ERR_INTERNAL, "inotify unavailable");
	if (acct->watch_wd[0] >= 0)
		return 0;
	/* the commit signal, and mail dropped into INBOX by another MDA */
	char *new_dir = xasprintf("%s/new", acct->root);
	char *cur_dir = xasprintf("%s/cur", acct->root);
	acct->watch_wd[0] = inotify_add_watch(fd, acct->notify_path, IN_MODIFY);
	acct->watch_wd[1] = inotify_add_watch(fd, new_dir, IN_MOVED_TO | IN_CREATE | IN_DELETE);
	acct->watch_wd[2] = inotify_add_watch(fd, cur_dir, IN_MOVED_TO | IN_MOVED_FROM |
					      IN_DELETE);
	free(new_dir);
	free(cur_dir);
	if (acct->watch_wd[0] < 0)
		return acct_fail(acct, error_r, STORE_ERR_INTERNAL, "inotify_add_watch: %s",
				 strerror(errno));
	return 0;
}

static struct store_account *account_by_wd(struct store *store, int wd)
{
	for (struct store_account *a = store->accounts; a != NULL; a = a->next)
		for (int i = 0; i < 3; i++)
			if (a->watch_wd[i] == wd)
				return a;
	return NULL;
}

void store_watch_consume(struct store *store)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	if (store->watch_fd < 0)
		return;
	while ((n = read(store->watch_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			struct store_account *acct = account_by_wd(store, ev->wd);
			if (acct != NULL)
				acct->changes++;
			p += sizeof(*ev) + ev->len;
		}
	}
}

uint64_t store_account_changes(struct store_account *acct)
{
	return acct->changes;
}

int store_account_watch_fd(struct store_account *acct)
{
	const char *error;
	if (store_account_watch(acct, &error) < 0)
		return -1;
	return store_watch_fd(acct->store);
}

bool store_account_watch_consume(struct store_account *acct)
{
	store_watch_consume(acct->store);
	bool changed = acct->changes != acct->changes_consumed;
	acct->changes_consumed = acct->changes;
	return changed;
}

/* ---- locks ---- */

int store_account_lock(struct store_account *acct, const char *name, int *lock_r,
		       const char **error_r)
{
	for (const char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			return acct_fail(acct, error_r, STORE_ERR_INVALID, "bad lock name");
	char *path = xasprintf("%s/postern-%s.lock", acct->root, name);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(path);
	if (fd < 0)
		return acct_fail(acct, error_r, STORE_ERR_INTERNAL, "lock: %s", strerror(errno));
	/* flock belongs to this open file description: a second session of
	 * the same process conflicts as one in another process does */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;
		close(fd);
		return acct_fail(acct, error_r, err == EWOULDBLOCK ? STORE_ERR_INUSE
				 : STORE_ERR_INTERNAL, "lock %s: %s", name, strerror(err));
	}
	*lock_r = fd;
	return 0;
}

void store_lock_release(int *lock)
{
	if (*lock >= 0)
		close(*lock);
	*lock = -1;
}

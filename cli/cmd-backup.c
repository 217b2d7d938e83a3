/* `postern backup DIR` and `postern restore DIR` (CONTRACT.md).
 *
 * A backup is a consistent copy of data_dir made while the server runs
 * and mail arrives. Every message acknowledged before it began is in it:
 * an acknowledged message was committed to an account index or to the
 * queue first, and
 * - every LMDB environment (accounts, queue, ...) is copied from one
 *   read snapshot each, compacted (mdb_env_copy2, MDB_CP_COMPACT);
 * - the queue comes before the mail: a queued message delivered here
 *   meanwhile left the queue only after its delivery was committed, so it
 *   is in the account's snapshot, taken later;
 * - each account's index is copied first, then the files it names
 *   (store_backup_account()), so UID, flags, folder and UIDVALIDITY come
 *   back as they were.
 * The manifest DIR/postern-backup is written last: a backup without it is
 * incomplete, and restore refuses it. */
#include "cli/cli.h"
#include "core/fs.h"
#include "core/lmdb-env.h"
#include "queue/queue.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MANIFEST "postern-backup"
#define MANIFEST_VERSION 1

struct backup {
	const struct config *cfg;
	const char *dir;
	uint64_t databases;
	uint64_t accounts;
	uint64_t queued;
	uint64_t queue_gone;      /* delivered between the queue's copy and its file's */
	uint64_t bytes;
	struct store_backup_count mail;
};

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_file(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_dir(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Lock files are made again by whoever opens a database next. */
static bool skip_runtime(const char *name, bool dir, void *ctx)
{
	return !dir && has_suffix(name, ".lmdb-lock");
}

/* Calls fn(ctx, name, from, to) for every entry of from_dir but "." and
 * "..", with from and to its paths there and under to_dir; stops at the
 * first non-zero result. */
static int each_entry(const char *from_dir, const char *to_dir, const char *what,
		      int (*fn)(void *ctx, const char *name, const char *from, const char *to),
		      void *ctx)
{
	DIR *d = opendir(from_dir);
	if (d == NULL)
		return cli_error("%s: %s: %s", what, from_dir, strerror(errno));
	int ret = 0;
	struct dirent *de;
	while (ret == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *from = xasprintf("%s/%s", from_dir, de->d_name);
		char *to = xasprintf("%s/%s", to_dir, de->d_name);
		ret = fn(ctx, de->d_name, from, to);
		free(from);
		free(to);
	}
	closedir(d);
	return ret;
}

/* A directory as a tree, a file as a file, anything else not at all. */
static int copy_entry(const char *from, const char *to, uint64_t *bytes, const char *what)
{
	const char *error;
	if (is_dir(from)) {
		if (fs_copy_tree(from, to, skip_runtime, NULL, bytes, &error) < 0)
			return cli_error("%s: %s", what, error);
	} else if (is_file(from) && fs_copy_file(from, to) < 0 && errno != ENOENT) {
		return cli_error("%s: cannot copy %s: %s", what, from, strerror(errno));
	}
	return 0;
}

/* Every LMDB environment at the top of data_dir, from a snapshot each. */
static int database_entry(void *ctx, const char *name, const char *from, const char *to)
{
	struct backup *b = ctx;
	const char *error;
	if (!has_suffix(name, ".lmdb") || !is_file(from))
		return 0;
	b->databases++;
	if (lmdb_env_copy_compact(from, to, b->cfg->run_as, &error) < 0)
		return cli_error("backup: %s", error);
	return 0;
}

struct id_list {
	char (*ids)[QUEUE_ID_LEN + 1];
	size_t count;
};

static int collect_id(const struct queue_entry *entry, void *ctx)
{
	struct id_list *list = ctx;
	list->ids = xrealloc(list->ids, (list->count + 1) * sizeof(*list->ids));
	memcpy(list->ids[list->count++], entry->id, QUEUE_ID_LEN + 1);
	return 0;
}

/* The spool file of every message in the queue's copy; a message whose
 * file is gone was delivered meanwhile (and, if here, committed to its
 * mailbox before), so its record leaves the copy too. */
static int backup_queue(struct backup *b)
{
	char *db = xasprintf("%s/queue.lmdb", b->dir);
	bool present = is_file(db);
	free(db);
	if (!present)
		return 0;
	struct queue *q;
	const char *error;
	struct id_list list = { NULL, 0 };
	if (queue_open(b->dir, NULL, &q, &error) < 0)
		return cli_error("backup: queue copy: %s", error);
	int ret = 0;
	if (queue_list(q, collect_id, &list, &error) < 0)
		ret = cli_error("backup: queue copy: %s", error);
	for (size_t i = 0; ret == 0 && i < list.count; i++) {
		char *from = xasprintf("%s/queue/%s", b->cfg->data_dir, list.ids[i]);
		char *to = queue_spool_path(q, list.ids[i]);
		struct stat st;
		if (fs_copy_file(from, to) == 0) {
			b->queued++;
			if (stat(to, &st) == 0)
				b->bytes += (uint64_t)st.st_size;
		} else if (errno == ENOENT) {
			b->queue_gone++;
			if (queue_entry_remove(q, list.ids[i], &error) < 0)
				ret = cli_error("backup: queue copy: %s", error);
		} else {
			ret = cli_error("backup: cannot copy %s: %s", from, strerror(errno));
		}
		free(from);
		free(to);
	}
	free(list.ids);
	queue_close(&q);
	char *lock = xasprintf("%s/queue.lmdb-lock", b->dir);
	unlink(lock);
	free(lock);
	return ret;
}

static int account_entry(void *ctx, const char *name, const char *root, const char *dest)
{
	struct backup *b = ctx;
	const char *error;
	if (name[0] == '.' || !is_dir(root))
		return 0;
	b->accounts++;
	if (store_backup_account(root, dest, b->cfg->run_as, &b->mail, &error) < 0)
		return cli_error("backup: %s", error);
	return 0;
}

/* mail/DOMAIN/LOCAL, one account at a time; the store's own entries
 * (.ended, .deleted, .uidvalidity-floor) as they are. */
static int mail_entry(void *ctx, const char *name, const char *from, const char *to)
{
	struct backup *b = ctx;
	if (name[0] == '.')
		return copy_entry(from, to, &b->bytes, "backup");
	if (!is_dir(from))
		return 0;
	if (mkdir(to, 0700) < 0)
		return cli_error("backup: cannot create %s: %s", to, strerror(errno));
	return each_entry(from, to, "backup", account_entry, b);
}

static int backup_mail(struct backup *b)
{
	char *mail = xasprintf("%s/mail", b->cfg->data_dir);
	char *mail_copy = xasprintf("%s/mail", b->dir);
	int ret = 0;
	if (is_dir(mail)) {
		if (mkdir(mail_copy, 0700) < 0)
			ret = cli_error("backup: cannot create %s: %s", mail_copy, strerror(errno));
		else
			ret = each_entry(mail, mail_copy, "backup", mail_entry, b);
	}
	free(mail);
	free(mail_copy);
	return ret;
}

/* Whatever else data_dir holds (auth-secret, keys, ...), as it is. */
static int rest_entry(void *ctx, const char *name, const char *from, const char *to)
{
	struct backup *b = ctx;
	if (has_suffix(name, ".lmdb") || has_suffix(name, ".lmdb-lock") ||
	    strncmp(name, "metrics.shm", 11) == 0 || strcmp(name, "tmp") == 0 ||
	    strcmp(name, "queue") == 0 || strcmp(name, "mail") == 0)
		return 0;
	return copy_entry(from, to, &b->bytes, "backup");
}

/* Durable before the manifest says the backup is whole. */
static int sync_tree(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = fd >= 0 && syncfs(fd) == 0 ? 0 : -1;
	if (fd >= 0)
		close(fd);
	return ret;
}

static int write_manifest(const struct backup *b, time_t started)
{
	char *path = xasprintf("%s/%s", b->dir, MANIFEST);
	char *tmp = xasprintf("%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	int ret = 0;
	if (f == NULL) {
		ret = cli_error("backup: cannot write %s: %s", tmp, strerror(errno));
	} else {
		char when[32];
		struct tm tm;
		gmtime_r(&started, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		fprintf(f, "postern-backup %d\npostern %s\nstarted %s\nhostname %s\n"
			"data_dir %s\naccounts %llu\nmessages %llu\nqueued %llu\n",
			MANIFEST_VERSION, POSTERN_VERSION, when, b->cfg->hostname, b->cfg->data_dir,
			(unsigned long long)b->accounts,
			(unsigned long long)(b->mail.messages + b->mail.extra),
			(unsigned long long)b->queued);
		if (fflush(f) != 0 || fsync(fileno(f)) != 0)
			ret = cli_error("backup: cannot write %s: %s", tmp, strerror(errno));
		if (fclose(f) != 0 && ret == 0)
			ret = cli_error("backup: cannot write %s", tmp);
		if (ret == 0 && rename(tmp, path) < 0)
			ret = cli_error("backup: cannot write %s: %s", path, strerror(errno));
	}
	if (ret == 0 && sync_tree(b->dir) < 0)
		ret = cli_error("backup: cannot sync %s: %s", b->dir, strerror(errno));
	free(tmp);
	free(path);
	return ret;
}

/* DIR must be new or empty, and outside data_dir. */
static int prepare_dir(const char *dir, const char *data_dir, const char *what)
{
	if (!fs_dir_empty(dir))
		return cli_error("%s: %s is not an empty directory", what, dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return cli_error("%s: cannot create %s: %s", what, dir, strerror(errno));
	char real_dir[PATH_MAX], real_data[PATH_MAX];
	if (realpath(dir, real_dir) != NULL && realpath(data_dir, real_data) != NULL) {
		size_t n = strlen(real_data);
		if (strncmp(real_dir, real_data, n) == 0 && (real_dir[n] == '/' || real_dir[n] == '\0'))
			return cli_error("%s: %s is inside data_dir %s", what, dir, data_dir);
	}
	return 0;
}

int cmd_backup(int argc, char **argv)
{
	const char *path = cli_take_config_arg(&argc, argv);
	if (path == NULL)
		return EXIT_USAGE;
	if (argc != 1 || argv[0][0] == '-')
		return cli_usage("backup: DIR expected (a new or empty directory)");
	struct config cfg;
	if (cli_load_config(path, &cfg, false) < 0)
		return EXIT_USER_ERROR;
	struct backup b;
	memset(&b, 0, sizeof(b));
	b.cfg = &cfg;
	b.dir = argv[0];
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	time_t started = time(NULL);
	int ret = 0;
	if (!is_dir(cfg.data_dir))
		ret = cli_error("backup: data_dir %s does not exist", cfg.data_dir);
	if (ret == 0)
		ret = prepare_dir(b.dir, cfg.data_dir, "backup");
	/* order matters: the queue before the mail (see the top of the file) */
	if (ret == 0)
		ret = each_entry(cfg.data_dir, b.dir, "backup", database_entry, &b);
	if (ret == 0)
		ret = backup_queue(&b);
	if (ret == 0)
		ret = backup_mail(&b);
	if (ret == 0)
		ret = each_entry(cfg.data_dir, b.dir, "backup", rest_entry, &b);
	if (ret == 0)
		ret = write_manifest(&b, started);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ret == 0)
		printf("backup of %s in %s: %llu accounts, %llu messages (%llu expunged "
		       "meanwhile), %llu queued, %llu databases, %.1f MiB, %.1f s\n",
		       cfg.data_dir, b.dir, (unsigned long long)b.accounts,
		       (unsigned long long)(b.mail.messages + b.mail.extra),
		       (unsigned long long)b.mail.missing, (unsigned long long)b.queued,
		       (unsigned long long)b.databases,
		       (double)(b.bytes + b.mail.bytes) / (1024.0 * 1024.0),
		       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	config_free(&cfg);
	return ret == 0 ? 0 : EXIT_USER_ERROR;
}

static int restore_entry(void *ctx, const char *name, const char *from, const char *to)
{
	if (strcmp(name, MANIFEST) == 0)
		return 0;
	return copy_entry(from, to, ctx, "restore");
}

int cmd_restore(int argc, char **argv)
{
	const char *path = cli_take_config_arg(&argc, argv);
	if (path == NULL)
		return EXIT_USAGE;
	if (argc != 1 || argv[0][0] == '-')
		return cli_usage("restore: DIR expected (made by postern backup)");
	const char *dir = argv[0];
	struct config cfg;
	if (cli_load_config(path, &cfg, false) < 0)
		return EXIT_USER_ERROR;
	const char *error;
	int ret = 0;
	char *manifest = xasprintf("%s/%s", dir, MANIFEST);
	if (!is_file(manifest))
		ret = cli_error("restore: %s is not a complete backup (no %s)", dir, MANIFEST);
	else if (!fs_dir_empty(cfg.data_dir))
		ret = cli_error("restore: data_dir %s is not empty (restore into an empty one, "
				"with the server stopped)", cfg.data_dir);
	else if (privs_mkdir_p(cfg.data_dir, 0750, cfg.run_as, &error) < 0)
		ret = cli_error("restore: %s", error);
	uint64_t bytes = 0;
	if (ret == 0)
		ret = each_entry(dir, cfg.data_dir, "restore", restore_entry, &bytes);
	/* the server's user owns its data (CONTRACT.md) */
	if (ret == 0 && fs_give_tree(cfg.data_dir, cfg.run_as, &error) < 0)
		ret = cli_error("restore: %s", error);
	if (ret == 0 && sync_tree(cfg.data_dir) < 0)
		ret = cli_error("restore: cannot sync %s: %s", cfg.data_dir, strerror(errno));
	if (ret == 0)
		printf("restored %s into %s (%.1f MiB); start the server\n", dir, cfg.data_dir,
		       (double)bytes / (1024.0 * 1024.0));
	free(manifest);
	config_free(&cfg);
	return ret == 0 ? 0 : EXIT_USER_ERROR;
}

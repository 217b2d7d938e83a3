/* The marks of ended accounts under DATA/mail/.ended/ (account-end.h). */
#include "core/account-end.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/privs.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define ACCOUNT_END_DIR "mail/.ended"
#define ACCOUNT_END_NAME_LEN 32
#define ACCOUNT_END_MAX 512     /* an address is at most 256 bytes */

static char account_end_error[512];

static int account_end_fail(const char **error_r, const char *what, const char *path)
{
	snprintf(account_end_error, sizeof(account_end_error), "%s %s: %s", what, path,
		 strerror(errno));
	*error_r = account_end_error;
	return -1;
}

/* DATA/mail/.ended/<hex>: the name depends on the address only, in any case. */
static char *mark_path(const char *data_dir, const char *address)
{
	char *lower = xstrdup(address);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char hex[ACCOUNT_END_NAME_LEN + 1];

	for (char *p = lower; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	if (EVP_Digest(lower, strlen(lower), md, &md_len, EVP_sha256(), NULL) != 1)
		fatal("event=sha256-failed");
	free(lower);
	for (size_t i = 0; i < ACCOUNT_END_NAME_LEN / 2; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return xasprintf("%s/%s/%s", data_dir, ACCOUNT_END_DIR, hex);
}

int account_end_mark(const char *data_dir, const char *address, const char *run_as,
		     const char **error_r)
{
	char *dir = xasprintf("%s/%s", data_dir, ACCOUNT_END_DIR);
	char *path = mark_path(data_dir, address);
	char *tmp = xasprintf("%s/.tmp.%d", dir, (int)getpid());
	int ret = -1, fd = -1;

	if (privs_mkdir_p(dir, 0700, run_as, error_r) < 0)
		goto out;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		account_end_fail(error_r, "cannot create", tmp);
		goto out;
	}
	/* durable: after a crash the account must still be refused */
	if (dprintf(fd, "%s\n", address) < 0 || fsync(fd) < 0) {
		account_end_fail(error_r, "cannot write", tmp);
		goto out;
	}
	if (privs_give(tmp, run_as, error_r) < 0)
		goto out;
	/* closed before the rename: watchers see the mark appear once */
	close(fd);
	fd = -1;
	if (rename(tmp, path) < 0) {
		account_end_fail(error_r, "cannot rename into", dir);
		goto out;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		unlink(tmp);
	free(tmp);
	free(path);
	free(dir);
	return ret;
}

int account_end_clear(const char *data_dir, const char *address, const char **error_r)
{
	char *path = mark_path(data_dir, address);
	int ret = 0;
	if (unlink(path) < 0 && errno != ENOENT)
		ret = account_end_fail(error_r, "cannot remove", path);
	free(path);
	return ret;
}

/* The address a mark holds, into out; -1 when unreadable. */
static int mark_read(const char *path, char *out, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, out, size - 1);
	close(fd);
	if (n <= 0)
		return -1;
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
	return out[0] != '\0' ? 0 : -1;
}

bool account_end_marked(const char *data_dir, const char *address)
{
	char *path = mark_path(data_dir, address);
	char held[ACCOUNT_END_MAX];
	/* the name is a digest: compare what the mark holds */
	bool marked = mark_read(path, held, sizeof(held)) == 0 &&
		      ascii_strcasecmp(held, address) == 0;
	free(path);
	return marked;
}

int account_end_watch(const char *data_dir, const char **error_r)
{
	char *dir = xasprintf("%s/%s", data_dir, ACCOUNT_END_DIR);
	int fd = -1;
	if (privs_mkdir_p(dir, 0700, NULL, error_r) < 0)
		goto out;
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0) {
		account_end_fail(error_r, "inotify for", dir);
		goto out;
	}
	if (inotify_add_watch(fd, dir, IN_MOVED_TO) < 0) {
		account_end_fail(error_r, "inotify_add_watch", dir);
		close(fd);
		fd = -1;
	}
out:
	free(dir);
	return fd;
}

void account_end_consume(int fd, const char *data_dir,
			 void (*fn)(const char *address, void *ctx), void *ctx)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			/* temp files start with '.'; a mark's name is its digest */
			if (ev->len == 0 || ev->name[0] == '.' ||
			    strlen(ev->name) != ACCOUNT_END_NAME_LEN)
				continue;
			char *path = xasprintf("%s/%s/%s", data_dir, ACCOUNT_END_DIR, ev->name);
			char address[ACCOUNT_END_MAX];
			if (mark_read(path, address, sizeof(address)) == 0)
				fn(address, ctx);
			free(path);
		}
	}
}

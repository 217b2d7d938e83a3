/* Whole-tree file-system helpers (fs.h). */
#include "core/fs.h"
#include "core/buf.h"
#include "core/privs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FS_COPY_CHUNK (128 * 1024)

static char fs_error[600];

static int fs_fail(const char **error_r, const char *what, const char *path)
{
	snprintf(fs_error, sizeof(fs_error), "%s %s: %s", what, path, strerror(errno));
	*error_r = fs_error;
	return -1;
}

/* Copies with a running total; -1 with errno. */
static int copy_file_counted(const char *src, const char *dst, uint64_t *bytes_r)
{
	int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return -1;
	struct stat st;
	if (fstat(in, &st) < 0) {
		int err = errno;
		close(in);
		errno = err;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(in);
		errno = EINVAL;
		return -1;
	}
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
	if (out < 0) {
		int err = errno;
		close(in);
		errno = err;
		return -1;
	}
	char *chunk = xmalloc(FS_COPY_CHUNK);
	int ret = 0;
	for (;;) {
		ssize_t n = read(in, chunk, FS_COPY_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -1 : 0;
			break;
		}
		for (ssize_t done = 0; done < n;) {
			ssize_t w = write(out, chunk + done, (size_t)(n - done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				ret = -1;
				break;
			}
			done += w;
		}
		if (ret < 0)
			break;
		if (bytes_r != NULL)
			*bytes_r += (uint64_t)n;
	}
	free(chunk);
	struct timespec times[2] = { st.st_atim, st.st_mtim };
	if (ret == 0 && (futimens(out, times) < 0 || fchmod(out, st.st_mode & 07777) < 0))
		ret = -1;
	int err = errno;
	close(in);
	if (close(out) < 0 && ret == 0) {
		err = errno;
		ret = -1;
	}
	if (ret < 0) {
		unlink(dst);
		errno = err;
	}
	return ret;
}

int fs_copy_file(const char *src, const char *dst)
{
	return copy_file_counted(src, dst, NULL);
}

int fs_copy_tree(const char *src, const char *dst,
		 bool (*skip)(const char *name, bool is_dir, void *ctx), void *ctx,
		 uint64_t *bytes_r, const char **error_r)
{
	struct stat st;
	if (lstat(src, &st) < 0)
		return fs_fail(error_r, "cannot read", src);
	if (mkdir(dst, st.st_mode & 07777) < 0)
		return fs_fail(error_r, "cannot create", dst);
	DIR *d = opendir(src);
	if (d == NULL)
		return fs_fail(error_r, "cannot read", src);
	int ret = 0;
	struct dirent *de;
	while (ret == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *from = xasprintf("%s/%s", src, de->d_name);
		char *to = xasprintf("%s/%s", dst, de->d_name);
		struct stat est;
		if (lstat(from, &est) < 0) {
			if (errno != ENOENT)   /* gone meanwhile: nothing to copy */
				ret = fs_fail(error_r, "cannot read", from);
		} else if (S_ISDIR(est.st_mode)) {
			if (skip == NULL || !skip(de->d_name, true, ctx))
				ret = fs_copy_tree(from, to, skip, ctx, bytes_r, error_r);
		} else if (S_ISREG(est.st_mode)) {
			if ((skip == NULL || !skip(de->d_name, false, ctx)) &&
			    copy_file_counted(from, to, bytes_r) < 0 && errno != ENOENT)
				ret = fs_fail(error_r, "cannot copy", from);
		}
		free(from);
		free(to);
	}
	closedir(d);
	/* the directory's own times, after its entries were made */
	struct timespec times[2] = { st.st_atim, st.st_mtim };
	utimensat(AT_FDCWD, dst, times, AT_SYMLINK_NOFOLLOW);
	return ret;
}

static int remove_at(int parent, const char *name)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOTDIR || errno == ELOOP ? unlinkat(parent, name, 0) : -1;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -1;
	}
	int ret = 0;
	struct dirent *de;
	while (ret == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN)
			ret = remove_at(dirfd(d), de->d_name);
		else
			ret = unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	return ret == 0 ? unlinkat(parent, name, AT_REMOVEDIR) : ret;
}

int fs_remove_tree(const char *path)
{
	return remove_at(AT_FDCWD, path);
}

int fs_give_tree(const char *path, const char *user, const char **error_r)
{
	if (user == NULL || !privs_is_root())
		return 0;
	if (privs_give(path, user, error_r) < 0)
		return -1;
	DIR *d = opendir(path);
	if (d == NULL)
		return errno == ENOTDIR ? 0 : fs_fail(error_r, "cannot read", path);
	int ret = 0;
	struct dirent *de;
	while (ret == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *child = xasprintf("%s/%s", path, de->d_name);
		if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN)
			ret = fs_give_tree(child, user, error_r);
		else
			ret = privs_give(child, user, error_r);
		free(child);
	}
	closedir(d);
	return ret;
}

bool fs_dir_empty(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return errno == ENOENT;
	struct dirent *de;
	bool empty = true;
	while (empty && (de = readdir(d)) != NULL)
		empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
	closedir(d);
	return empty;
}

#ifndef POSTERN_FS_H
#define POSTERN_FS_H

/* File-system helpers for whole-tree work (`postern backup`, `restore`,
 * removing a deleted account's mail). Paths are followed never through a
 * symbolic link below the starting point. */

#include <stdbool.h>
#include <stdint.h>

/* Copies the regular file src to dst, which must not exist (O_EXCL), with
 * src's permission bits and modification time (a message's INTERNALDATE
 * is its file's mtime). 0, or -1 with errno set (ENOENT: src is gone). */
int fs_copy_file(const char *src, const char *dst);
/* Copies the tree src (a directory) into dst (created; must not exist),
 * regular files and directories only. skip(name, is_dir, ctx) may leave
 * an entry out (may be NULL). bytes_r (may be NULL) adds the bytes
 * copied. 0, or -1 with a reason. */
int fs_copy_tree(const char *src, const char *dst,
		 bool (*skip)(const char *name, bool is_dir, void *ctx), void *ctx,
		 uint64_t *bytes_r, const char **error_r);
/* rm -r: 0, or -1 with errno set. */
int fs_remove_tree(const char *path);
/* Hands every entry of the tree to user (when root; user NULL: nothing). */
int fs_give_tree(const char *path, const char *user, const char **error_r);
/* True when path is missing or an empty directory. */
bool fs_dir_empty(const char *path);

#endif

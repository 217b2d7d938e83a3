#ifndef POSTERN_PRIVS_H
#define POSTERN_PRIVS_H

/* Privilege handling: the master starts as root to bind ports; every
 * child drops to run_as before it touches a client byte; the admin CLI,
 * usually run as root, hands what it creates to run_as. */

#include <stdbool.h>
#include <sys/types.h>

/* Looks up run_as. Returns -1 with a message if the user does not exist. */
int privs_lookup(const char *user, uid_t *uid_r, gid_t *gid_r, const char **error_r);
/* When running as root: setgroups/setgid/setuid to user, and verifies
 * that root cannot be regained. A no-op (returning 0) when not root. */
int privs_drop(const char *user, const char **error_r);
/* When running as root: chown path to user (not following symlinks).
 * A no-op when not root or when user is NULL. */
int privs_give(const char *path, const char *user, const char **error_r);
/* mkdir -p with mode, each created directory given to user when root. */
int privs_mkdir_p(const char *path, mode_t mode, const char *user, const char **error_r);
bool privs_is_root(void);
/* When running as root: whether user can reach path with access mode
 * (R_OK, W_OK, X_OK), searching every directory above it, as the kernel
 * decides it (a child drops to user and asks). Returns -1 with a message
 * naming the first directory in the way. A no-op when not root. */
int privs_user_can_reach(const char *user, const char *path, int mode, const char **error_r);

#endif

#include "core/privs.h"
#include "core/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char privs_error[512];

bool privs_is_root(void)
{
	return geteuid() == 0;
}

int privs_lookup(const char *user, uid_t *uid_r, gid_t *gid_r, const char **error_r)
{
	struct passwd pw, *result = NULL;
	char buf[4096];
	int ret = getpwnam_r(user, &pw, buf, sizeof(buf), &result);
	if (ret != 0 || result == NULL) {
		snprintf(privs_error, sizeof(privs_error),
			 "run_as: no such system user '%s'", user);
		*error_r = privs_error;
		return -1;
	}
	*uid_r = pw.pw_uid;
	*gid_r = pw.pw_gid;
	return 0;
}

int privs_drop(const char *user, const char **error_r)
{
	uid_t uid;
	gid_t gid;
	if (!privs_is_root())
		return 0;
	if (privs_lookup(user, &uid, &gid, error_r) < 0)
		return -1;
	if (uid == 0) {
		*error_r = "run_as: refusing to run as root";
		return -1;
	}
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		snprintf(privs_error, sizeof(privs_error), "dropping to %s: %s", user,
			 strerror(errno));
		*error_r = privs_error;
		return -1;
	}
	if (setuid(0) == 0 || geteuid() == 0) {
		*error_r = "dropping privileges: root could be regained";
		return -1;
	}
	return 0;
}

int privs_give(const char *path, const char *user, const char **error_r)
{
	uid_t uid;
	gid_t gid;
	if (!privs_is_root() || user == NULL)
		return 0;
	if (privs_lookup(user, &uid, &gid, error_r) < 0)
		return -1;
	if (lchown(path, uid, gid) < 0) {
		snprintf(privs_error, sizeof(privs_error), "chown %s: %s", path,
			 strerror(errno));
		*error_r = privs_error;
		return -1;
	}
	return 0;
}

int privs_mkdir_p(const char *path, mode_t mode, const char *user, const char **error_r)
{
	char *copy = xstrdup(path);
	size_t len = strlen(copy);
	int ret = 0;
	for (size_t i = 1; i <= len && ret == 0; i++) {
		if (copy[i] != '/' && copy[i] != '\0')
			continue;
		char saved = copy[i];
		copy[i] = '\0';
		if (mkdir(copy, mode) == 0) {
			if (user != NULL && privs_give(copy, user, error_r) < 0)
				ret = -1;
		} else if (errno != EEXIST) {
			snprintf(privs_error, sizeof(privs_error), "mkdir %s: %s", copy,
				 strerror(errno));
			*error_r = privs_error;
			ret = -1;
		}
		copy[i] = saved;
	}
	free(copy);
	return ret;
}

/* In the child, already dropped to the user: the first directory above
 * path it cannot search, or path itself without mode. */
static void reach_report(const char *path, int mode, int fd)
{
	char *copy = xstrdup(path);
	for (char *p = copy + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		bool last = *p == '\0';
		*p = '\0';
		if (access(copy, last ? mode : X_OK) < 0 && errno != ENOENT) {
			int err = errno;
			struct stat st;
			char mode_text[16] = "";
			if (stat(copy, &st) == 0)
				snprintf(mode_text, sizeof(mode_text), " (mode %04o)",
					 (unsigned)(st.st_mode & 07777));
			dprintf(fd, "%s%s: %s", copy, mode_text, strerror(err));
			break;
		}
		if (last)
			break;
		*p = '/';
	}
	free(copy);
}

int privs_user_can_reach(const char *user, const char *path, int mode, const char **error_r)
{
	if (!privs_is_root())
		return 0;
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		snprintf(privs_error, sizeof(privs_error), "pipe: %s", strerror(errno));
		*error_r = privs_error;
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(privs_error, sizeof(privs_error), "fork: %s", strerror(errno));
		*error_r = privs_error;
		close(pipefd[0]);
		close(pipefd[1]);
		return -1;
	}
	if (pid == 0) {
		const char *error;
		close(pipefd[0]);
		if (privs_drop(user, &error) < 0)
			dprintf(pipefd[1], "%s", error);
		else
			reach_report(path, mode, pipefd[1]);
		_exit(0);
	}
	close(pipefd[1]);
	char why[400];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(why) - 1 &&
	       ((n = read(pipefd[0], why + len, sizeof(why) - 1 - len)) > 0 ||
		(n < 0 && errno == EINTR)))
		len += n > 0 ? (size_t)n : 0;
	why[len] = '\0';
	close(pipefd[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (len == 0)
		return 0;
	snprintf(privs_error, sizeof(privs_error), "user %s cannot reach %s: %s", user, path,
		 why);
	*error_r = privs_error;
	return -1;
}

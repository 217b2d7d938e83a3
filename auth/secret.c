/* DATA/auth-secret: the server secret behind the SCRAM decoys for unknown
 * users. Created once (mode 0600) by whichever process needs it first:
 * written to a temporary name and link()ed into place, so that a
 * concurrent reader sees either no file or the whole secret. */
#include "auth/auth-private.h"
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char secret_error[512];

static int secret_read(const char *path, unsigned char *secret)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, secret, AUTH_SECRET_LEN);
	close(fd);
	if (n != AUTH_SECRET_LEN) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static int secret_create(const char *path, const char *run_as, const char **error_r)
{
	unsigned char secret[AUTH_SECRET_LEN];
	char *tmp = xasprintf("%s.%ld.tmp", path, (long)getpid());
	int ret = -1;

	if (RAND_bytes(secret, sizeof(secret)) != 1) {
		*error_r = "auth-secret: no random bytes";
		free(tmp);
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, secret, sizeof(secret)) != (ssize_t)sizeof(secret) ||
	    fsync(fd) < 0) {
		snprintf(secret_error, sizeof(secret_error), "%s: %s", tmp, strerror(errno));
		*error_r = secret_error;
		goto out;
	}
	if (privs_give(tmp, run_as, error_r) < 0)
		goto out;
	if (link(tmp, path) < 0 && errno != EEXIST) {
		snprintf(secret_error, sizeof(secret_error), "%s: %s", path, strerror(errno));
		*error_r = secret_error;
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return ret;
}

int auth_secret_load(const char *data_dir, const char *run_as,
		     unsigned char secret_r[AUTH_SECRET_LEN], const char **error_r)
{
	char *path = xasprintf("%s/auth-secret", data_dir);
	int ret = 0;
	*error_r = NULL;
	if (secret_read(path, secret_r) < 0) {
		if (errno != ENOENT ||
		    secret_create(path, run_as, error_r) < 0 ||
		    secret_read(path, secret_r) < 0) {
			if (*error_r == NULL) {
				snprintf(secret_error, sizeof(secret_error), "%s: %s",
					 path, strerror(errno));
				*error_r = secret_error;
			}
			ret = -1;
		}
	}
	free(path);
	return ret;
}

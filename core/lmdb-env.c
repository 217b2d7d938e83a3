/* What every LMDB environment does the same way (DESIGN.md, "LMDB
 * facts"): one file (MDB_NOSUBDIR) plus its lock file, both given to
 * run_as; MDB_NOTLS so an event loop may hold several read transactions;
 * a map sized up front, and a map grown by another process adopted. */
#include "core/lmdb-env.h"
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>

int lmdb_env_open(const char *path, unsigned flags, size_t mapsize, unsigned maxdbs,
		  const char *run_as, MDB_env **env_r, const char **error_r)
{
	static char error[512];
	char *lock = xasprintf("%s-lock", path);
	MDB_env *env = NULL;
	int rc;

	if ((rc = mdb_env_create(&env)) != 0 ||
	    (maxdbs > 0 && (rc = mdb_env_set_maxdbs(env, maxdbs)) != 0) ||
	    (rc = mdb_env_set_mapsize(env, mapsize)) != 0 ||
	    (rc = mdb_env_open(env, path, flags | MDB_NOSUBDIR | MDB_NOTLS, 0600)) != 0) {
		snprintf(error, sizeof(error), "%s: %s", path, mdb_strerror(rc));
		*error_r = error;
		goto fail;
	}
	if (privs_give(path, run_as, error_r) < 0 || privs_give(lock, run_as, error_r) < 0)
		goto fail;
	free(lock);
	*env_r = env;
	return 0;
fail:
	if (env != NULL)
		mdb_env_close(env);
	free(lock);
	return -1;
}

int lmdb_env_txn_begin(MDB_env *env, unsigned flags, MDB_txn **txn_r)
{
	int rc = mdb_txn_begin(env, NULL, flags, txn_r);
	if (rc == MDB_MAP_RESIZED) {
		/* another process grew the map: adopt its size */
		mdb_env_set_mapsize(env, 0);
		rc = mdb_txn_begin(env, NULL, flags, txn_r);
	}
	return rc;
}

int lmdb_env_copy_compact(const char *path, const char *dst, const char *run_as,
			  const char **error_r)
{
	static char error[512];
	MDB_env *env;
	/* map size 0: the one the file records (a writer may have grown it) */
	if (lmdb_env_open(path, MDB_RDONLY, 0, 64, run_as, &env, error_r) < 0)
		return -1;
	int rc;
	for (int tries = 0;; tries++) {
		rc = mdb_env_copy2(env, dst, MDB_CP_COMPACT);
		if (rc != MDB_MAP_RESIZED || tries == 3)
			break;
		mdb_env_set_mapsize(env, 0);   /* grown meanwhile: adopt, again */
	}
	mdb_env_close(env);
	if (rc != 0) {
		snprintf(error, sizeof(error), "copying %s: %s", path, mdb_strerror(rc));
		*error_r = error;
		return -1;
	}
	return 0;
}

#include "core/ratelimit.h"
#include "core/core.h"
#include "core/lmdb-env.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATELIMIT_MAPSIZE ((size_t)64 << 20)

struct ratelimit {
	MDB_env *env;
	MDB_dbi dbi;
};

struct ratelimit_value {
	int64_t window_start;
	uint32_t count;
};

int ratelimit_open(const char *data_dir, const char *run_as, struct ratelimit **rl_r,
		   const char **error_r)
{
	static char error[256];
	struct ratelimit *rl = xcalloc(1, sizeof(*rl));
	char *path = xasprintf("%s/ratelimit.lmdb", data_dir);
	MDB_txn *txn;
	int rc;
	if (lmdb_env_open(path, MDB_NOSYNC, RATELIMIT_MAPSIZE, 0, run_as, &rl->env,
			  error_r) < 0) {
		free(path);
		free(rl);
		return -1;
	}
	free(path);
	if ((rc = lmdb_env_txn_begin(rl->env, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &rl->dbi)) != 0 || (rc = mdb_txn_commit(txn)) != 0) {
		snprintf(error, sizeof(error), "ratelimit.lmdb: %s", mdb_strerror(rc));
		*error_r = error;
		mdb_env_close(rl->env);
		free(rl);
		return -1;
	}
	*rl_r = rl;
	return 0;
}

void ratelimit_close(struct ratelimit **rlp)
{
	if (*rlp == NULL)
		return;
	mdb_env_close((*rlp)->env);
	free(*rlp);
	*rlp = NULL;
}

static int64_t window_of(time_t now, int window)
{
	return (int64_t)now - (int64_t)now % (window > 0 ? window : 1);
}

unsigned ratelimit_count(struct ratelimit *rl, const char *key, int window, time_t now)
{
	MDB_txn *txn;
	unsigned count = 0;
	if (lmdb_env_txn_begin(rl->env, MDB_RDONLY, &txn) != 0)
		return 0;
	MDB_val k = { strlen(key), (void *)key }, v;
	if (mdb_get(txn, rl->dbi, &k, &v) == 0 && v.mv_size == sizeof(struct ratelimit_value)) {
		struct ratelimit_value val;
		memcpy(&val, v.mv_data, sizeof(val));
		if (val.window_start == window_of(now, window))
			count = val.count;
	}
	mdb_txn_abort(txn);
	return count;
}

void ratelimit_hit(struct ratelimit *rl, const char *key, int window, time_t now)
{
	MDB_txn *txn;
	if (lmdb_env_txn_begin(rl->env, 0, &txn) != 0)
		return;
	struct ratelimit_value val = { window_of(now, window), 0 };
	MDB_val k = { strlen(key), (void *)key }, v;
	if (mdb_get(txn, rl->dbi, &k, &v) == 0 && v.mv_size == sizeof(val)) {
		struct ratelimit_value old;
		memcpy(&old, v.mv_data, sizeof(old));
		if (old.window_start == val.window_start)
			val.count = old.count;
	}
	val.count++;
	v.mv_size = sizeof(val);
	v.mv_data = &val;
	if (mdb_put(txn, rl->dbi, &k, &v, 0) == 0)
		mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
}

/* Login throttling shared by every worker: DATA/throttle.lmdb, opened
 * MDB_NOSYNC (losing recent counts in a crash is harmless, and no fsync
 * lands on a login path). One record per key ("ip:..." or "user:..."):
 * failure count, time of the last failure, end of a block. Counts decay by
 * one every block_time / block_after seconds without failures. */
#include "auth/auth-private.h"
#include "core/core.h"

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THROTTLE_MAPSIZE ((size_t)256 << 20)
#define THROTTLE_DELAY_STEP_MS 1000
#define THROTTLE_DELAY_MAX_MS 10000

struct throttle {
	MDB_env *env;
	MDB_dbi dbi;
	struct throttle_policy policy;
};

struct throttle_record {
	uint32_t count;
	uint32_t unused;
	int64_t last;
	int64_t blocked_until;
};

int throttle_open(const char *data_dir, const char *run_as,
		  const struct throttle_policy *policy, struct throttle **t_r,
		  const char **error_r)
{
	static char error[512];
	struct throttle *t = xcalloc(1, sizeof(*t));
	char *path = xasprintf("%s/throttle.lmdb", data_dir);
	MDB_txn *txn;
	int rc;

	t->policy = *policy;
	if (lmdb_env_open(path, MDB_NOSYNC, THROTTLE_MAPSIZE, 0, run_as, &t->env,
			  error_r) < 0)
		goto fail;
	if ((rc = lmdb_env_txn_begin(t->env, 0, &txn)) == 0) {
		if ((rc = mdb_dbi_open(txn, NULL, 0, &t->dbi)) != 0)
			mdb_txn_abort(txn);
		else
			rc = mdb_txn_commit(txn);
	}
	if (rc != 0) {
		snprintf(error, sizeof(error), "%s: %s", path, mdb_strerror(rc));
		*error_r = error;
		mdb_env_close(t->env);
		goto fail;
	}
	free(path);
	*t_r = t;
	return 0;
fail:
	free(t);
	free(path);
	return -1;
}

void throttle_close(struct throttle **t)
{
	if (*t == NULL)
		return;
	mdb_env_close((*t)->env);
	free(*t);
	*t = NULL;
}

int throttle_reader_check(struct throttle *t)
{
	int dead = 0;
	mdb_reader_check(t->env, &dead);
	return dead;
}

static int throttle_txn_begin(struct throttle *t, unsigned flags, MDB_txn **txn_r)
{
	int rc = lmdb_env_txn_begin(t->env, flags, txn_r);
	if (rc != 0)
		log_error("event=db-error db=throttle error=\"%s\"", mdb_strerror(rc));
	return rc;
}

static int decay_seconds(const struct throttle *t)
{
	int s = t->policy.block_after > 0 ? t->policy.block_time / t->policy.block_after : 0;
	return s > 0 ? s : 1;
}

/* Reads key's record with the decay applied. False when there is none. */
static bool throttle_get(struct throttle *t, MDB_txn *txn, const char *key, time_t now,
			 struct throttle_record *rec_r)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	memset(rec_r, 0, sizeof(*rec_r));
	if (mdb_get(txn, t->dbi, &k, &v) != 0 || v.mv_size != sizeof(*rec_r))
		return false;
	memcpy(rec_r, v.mv_data, sizeof(*rec_r));
	if (now > rec_r->last) {
		int64_t decayed = (now - rec_r->last) / decay_seconds(t);
		rec_r->count = decayed >= rec_r->count ? 0 : rec_r->count - (uint32_t)decayed;
		rec_r->last += decayed * decay_seconds(t);
	}
	return true;
}

static unsigned delay_for(const struct throttle *t, uint32_t count)
{
	if (count < (uint32_t)t->policy.delay_after)
		return 0;
	uint64_t ms = (uint64_t)(count - (uint32_t)t->policy.delay_after + 1) *
		THROTTLE_DELAY_STEP_MS;
	return ms > THROTTLE_DELAY_MAX_MS ? THROTTLE_DELAY_MAX_MS : (unsigned)ms;
}

bool throttle_is_blocked(struct throttle *t, const char *key, time_t now)
{
	struct throttle_record rec;
	MDB_txn *txn;
	if (throttle_txn_begin(t, MDB_RDONLY, &txn) != 0)
		return false;
	bool found = throttle_get(t, txn, key, now, &rec);
	mdb_txn_abort(txn);
	return found && rec.blocked_until > now;
}

unsigned throttle_delay_ms(struct throttle *t, const char *key, time_t now)
{
	struct throttle_record rec;
	MDB_txn *txn;
	if (throttle_txn_begin(t, MDB_RDONLY, &txn) != 0)
		return 0;
	throttle_get(t, txn, key, now, &rec);
	mdb_txn_abort(txn);
	return delay_for(t, rec.count);
}

unsigned throttle_fail(struct throttle *t, const char *key, time_t now)
{
	return throttle_count_failure(t, key, now, true);
}

unsigned throttle_count_failure(struct throttle *t, const char *key, time_t now,
				bool may_block)
{
	struct throttle_record rec;
	for (int attempt = 0; attempt < 2; attempt++) {
		MDB_txn *txn;
		if (throttle_txn_begin(t, 0, &txn) != 0)
			return 0;
		throttle_get(t, txn, key, now, &rec);
		rec.count++;
		rec.last = now;
		if (may_block && rec.count >= (uint32_t)t->policy.block_after &&
		    rec.blocked_until <= now)
			rec.blocked_until = now + t->policy.block_time;
		MDB_val k = { strlen(key), (void *)key }, v = { sizeof(rec), &rec };
		int rc = mdb_put(txn, t->dbi, &k, &v, 0);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (rc == 0)
			break;
		if (rc != MDB_MAP_FULL || attempt > 0) {
			log_error("event=db-error db=throttle error=\"%s\"", mdb_strerror(rc));
			break;
		}
		/* full of (mostly stale) entries from many addresses: start over */
		log_warn("event=throttle-reset reason=map-full");
		if (throttle_txn_begin(t, 0, &txn) == 0) {
			if (mdb_drop(txn, t->dbi, 0) == 0)
				mdb_txn_commit(txn);
			else
				mdb_txn_abort(txn);
		}
	}
	return delay_for(t, rec.count);
}

void throttle_clear(struct throttle *t, const char *key)
{
	MDB_txn *txn;
	MDB_val k = { strlen(key), (void *)key };
	if (throttle_txn_begin(t, 0, &txn) != 0)
		return;
	if (mdb_del(txn, t->dbi, &k, NULL) == 0)
		mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
}

/* A note is a record with no count whose "last" is the time it was made
 * (throttle_get's decay is not applied to it). */
void throttle_note(struct throttle *t, const char *key, time_t now)
{
	struct throttle_record rec = { 0, 0, now, 0 };
	MDB_txn *txn;
	MDB_val k = { strlen(key), (void *)key }, v = { sizeof(rec), &rec };
	if (throttle_txn_begin(t, 0, &txn) != 0)
		return;
	if (mdb_put(txn, t->dbi, &k, &v, 0) == 0)
		mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
}

bool throttle_noted_since(struct throttle *t, const char *key, time_t since)
{
	MDB_txn *txn;
	MDB_val k = { strlen(key), (void *)key }, v;
	struct throttle_record rec;
	bool found = false;
	if (throttle_txn_begin(t, MDB_RDONLY, &txn) != 0)
		return false;
	if (mdb_get(txn, t->dbi, &k, &v) == 0 && v.mv_size == sizeof(rec)) {
		memcpy(&rec, v.mv_data, sizeof(rec));
		found = rec.last >= since;
	}
	mdb_txn_abort(txn);
	return found;
}

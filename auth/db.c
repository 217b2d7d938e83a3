/* The account database: DATA/accounts.lmdb, one LMDB environment with
 * three named databases, each keyed by the lowercased normal form:
 *   domains  "example.org"          -> "created=T\n"
 *   users    "bob@example.org"      -> "address=Bob@example.org\nhash=...\n..."
 *   aliases  "info@example.org" or "@example.org" (catch-all)
 *                                   -> "alias=...\ntargets=a@x,b@y\n"
 * Records are "name=value" lines so fields can be added later. Every
 * lookup is its own short read transaction, so changes made by the CLI
 * are seen by running servers at once. */
#include "auth/auth.h"
#include "auth/auth-private.h"
#include "core/core.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DB_MAPSIZE ((size_t)1 << 30)
#define DB_USER_ERROR (-1)      /* an op's refusal, message in error_r */
#define ALIAS_MAX_DEPTH 20

struct auth_db {
	struct auth_client *client;   /* a worker's: lookups go to the auth process */
	MDB_env *env;
	MDB_dbi domains, users, aliases;
	char error[512];
};

static const char *db_errorf(struct auth_db *db, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static const char *db_errorf(struct auth_db *db, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(db->error, sizeof(db->error), fmt, ap);
	va_end(ap);
	return db->error;
}

/* ---- transactions ------------------------------------------------- */

static int db_txn_begin(struct auth_db *db, unsigned flags, MDB_txn **txn_r)
{
	return lmdb_env_txn_begin(db->env, flags, txn_r);
}

static void db_grow(struct auth_db *db)
{
	MDB_envinfo info;
	mdb_env_info(db->env, &info);
	mdb_env_set_mapsize(db->env, info.me_mapsize * 2);
}

typedef int db_op_fn(struct auth_db *db, MDB_txn *txn, void *ctx, const char **error_r);

/* Runs op in a write transaction and commits. A full map aborts the
 * transaction (it is dead), grows the map and runs op again. */
static int db_write(struct auth_db *db, db_op_fn *op, void *ctx, const char **error_r)
{
	for (int attempt = 0; attempt < 8; attempt++) {
		MDB_txn *txn;
		int rc = db_txn_begin(db, 0, &txn);
		if (rc != 0)
			goto fail;
		rc = op(db, txn, ctx, error_r);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (rc == MDB_MAP_FULL) {
			db_grow(db);
			continue;
		}
		if (rc == DB_USER_ERROR)
			return -1;
		if (rc == 0)
			return 0;
	fail:
		*error_r = db_errorf(db, "accounts database: %s", mdb_strerror(rc));
		return -1;
	}
	*error_r = "accounts database: map full";
	return -1;
}

static int db_get(MDB_txn *txn, MDB_dbi dbi, const char *key, MDB_val *val_r)
{
	MDB_val k = { strlen(key), (void *)key };
	return mdb_get(txn, dbi, &k, val_r);
}

static int db_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const struct buf *value)
{
	MDB_val k = { strlen(key), (void *)key };
	MDB_val v = { value->len, value->data };
	return mdb_put(txn, dbi, &k, &v, 0);
}

static int db_del(MDB_txn *txn, MDB_dbi dbi, const char *key)
{
	MDB_val k = { strlen(key), (void *)key };
	return mdb_del(txn, dbi, &k, NULL);
}

/* ---- open --------------------------------------------------------- */

int auth_db_open(const char *data_dir, const char *run_as,
		 struct auth_db **db_r, const char **error_r)
{
	return auth_db_open_sized(data_dir, run_as, DB_MAPSIZE, db_r, error_r);
}

int auth_db_open_sized(const char *data_dir, const char *run_as, size_t mapsize,
		       struct auth_db **db_r, const char **error_r)
{
	struct auth_db *db = xcalloc(1, sizeof(*db));
	char *path = xasprintf("%s/accounts.lmdb", data_dir);
	MDB_txn *txn;
	int rc;

	if (privs_mkdir_p(data_dir, 0750, run_as, error_r) < 0 ||
	    lmdb_env_open(path, 0, mapsize, 4, run_as, &db->env, error_r) < 0) {
		free(db);
		free(path);
		return -1;
	}
	if ((rc = db_txn_begin(db, 0, &txn)) == 0) {
		if ((rc = mdb_dbi_open(txn, "domains", MDB_CREATE, &db->domains)) != 0 ||
		    (rc = mdb_dbi_open(txn, "users", MDB_CREATE, &db->users)) != 0 ||
		    (rc = mdb_dbi_open(txn, "aliases", MDB_CREATE, &db->aliases)) != 0)
			mdb_txn_abort(txn);
		else
			rc = mdb_txn_commit(txn);
	}
	if (rc != 0) {
		static char error[512];   /* db, where messages live, goes away */
		snprintf(error, sizeof(error), "%s: %s", path, mdb_strerror(rc));
		*error_r = error;
		mdb_env_close(db->env);
		free(db);
		free(path);
		return -1;
	}
	free(path);
	*db_r = db;
	return 0;
}

struct auth_db *auth_db_remote_new(struct auth_client *cl)
{
	struct auth_db *db = xcalloc(1, sizeof(*db));
	db->client = cl;
	return db;
}

struct auth_client *auth_db_client(const struct auth_db *db)
{
	return db->client;
}

void auth_db_close(struct auth_db **db)
{
	if (*db != NULL && (*db)->client != NULL) {
		free(*db);
		*db = NULL;
		return;
	}
	if (*db == NULL)
		return;
	mdb_env_close((*db)->env);
	free(*db);
	*db = NULL;
}

int auth_db_reader_check(struct auth_db *db)
{
	if (db->client != NULL)
		return 0;
	int dead = 0;
	mdb_reader_check(db->env, &dead);
	struct throttle *t = auth_sasl_throttle();
	if (t != NULL)
		dead += throttle_reader_check(t);
	if (dead > 0)
		log_info("event=lmdb-readers-cleared count=%d", dead);
	return dead;
}

/* ---- records ------------------------------------------------------ */

/* Finds "name=" at a line start in a record; copies the value. */
static bool record_field(const MDB_val *val, const char *name, char *dst, size_t size)
{
	const char *p = val->mv_data, *end = p + val->mv_size;
	size_t name_len = strlen(name);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = nl != NULL ? nl : end;
		if ((size_t)(line_end - p) > name_len && memcmp(p, name, name_len) == 0 &&
		    p[name_len] == '=') {
			size_t len = (size_t)(line_end - p) - name_len - 1;
			if (len >= size)
				len = size - 1;
			memcpy(dst, p + name_len + 1, len);
			dst[len] = '\0';
			return true;
		}
		p = line_end + 1;
	}
	if (size > 0)
		dst[0] = '\0';
	return false;
}

static uint64_t record_u64(const MDB_val *val, const char *name)
{
	char text[32];
	if (!record_field(val, name, text, sizeof(text)))
		return 0;
	return strtoull(text, NULL, 10);
}

static void user_decode(const char *key, const MDB_val *val, struct auth_user *user_r)
{
	memset(user_r, 0, sizeof(*user_r));
	snprintf(user_r->key, sizeof(user_r->key), "%s", key);
	record_field(val, "address", user_r->address, sizeof(user_r->address));
	record_field(val, "hash", user_r->hash, sizeof(user_r->hash));
	record_field(val, "scram-sha-256", user_r->scram_sha256, sizeof(user_r->scram_sha256));
	record_field(val, "scram-sha-1", user_r->scram_sha1, sizeof(user_r->scram_sha1));
	user_r->quota = record_u64(val, "quota");
	/* absent from records written before it existed: no limit */
	user_r->quota_messages = record_u64(val, "quota-messages");
	user_r->enabled = record_u64(val, "enabled") != 0;
	user_r->created = (time_t)record_u64(val, "created");
}

static void user_encode(const struct auth_user *user, struct buf *out)
{
	buf_printf(out, "address=%s\nhash=%s\nscram-sha-256=%s\nscram-sha-1=%s\n"
		   "quota=%" PRIu64 "\nenabled=%d\ncreated=%lld\nquota-messages=%" PRIu64 "\n",
		   user->address, user->hash, user->scram_sha256, user->scram_sha1,
		   user->quota, user->enabled ? 1 : 0, (long long)user->created,
		   user->quota_messages);
}

static void key_of(const MDB_val *k, char *dst, size_t size)
{
	size_t len = k->mv_size < size ? k->mv_size : size - 1;
	memcpy(dst, k->mv_data, len);
	dst[len] = '\0';
}

/* "x@domain" or "@domain" belongs to domain. */
static bool key_in_domain(const MDB_val *k, const char *domain)
{
	size_t dlen = strlen(domain);
	const char *p = k->mv_data;
	return k->mv_size > dlen && p[k->mv_size - dlen - 1] == '@' &&
		memcmp(p + k->mv_size - dlen, domain, dlen) == 0;
}

/* ---- domains ------------------------------------------------------ */

static bool txn_has(MDB_txn *txn, MDB_dbi dbi, const char *key)
{
	MDB_val v;
	return db_get(txn, dbi, key, &v) == 0;
}

static int op_domain_add(struct auth_db *db, MDB_txn *txn, void *ctx, const char **error_r)
{
	const char *domain = ctx;
	if (txn_has(txn, db->domains, domain)) {
		*error_r = db_errorf(db, "domain '%s' exists", domain);
		return DB_USER_ERROR;
	}
	struct buf rec = BUF_INIT;
	buf_printf(&rec, "created=%lld\n", (long long)time(NULL));
	int rc = db_put(txn, db->domains, domain, &rec);
	buf_free(&rec);
	return rc;
}

static int normalise_domain(struct auth_db *db, const char *text, char *dst,
			    const char **error_r)
{
	const char *why;
	if (auth_domain_normalise(text, dst, &why) < 0) {
		*error_r = db_errorf(db, "bad domain '%s': %s", text, why);
		return -1;
	}
	return 0;
}

int auth_domain_add(struct auth_db *db, const char *domain, const char **error_r)
{
	char name[AUTH_DOMAIN_MAX + 1];
	if (normalise_domain(db, domain, name, error_r) < 0)
		return -1;
	return db_write(db, op_domain_add, name, error_r);
}

struct domain_del_ctx {
	const char *domain;
	bool force;
};

/* Deletes (or, without force, counts) the keys of a domain in dbi. */
static int purge_domain(MDB_txn *txn, MDB_dbi dbi, const char *domain, bool force,
			size_t *count_r)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (!key_in_domain(&k, domain))
			continue;
		(*count_r)++;
		if (force && (rc = mdb_cursor_del(cur, 0)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int op_domain_del(struct auth_db *db, MDB_txn *txn, void *ctx, const char **error_r)
{
	struct domain_del_ctx *c = ctx;
	size_t users = 0, aliases = 0;
	int rc;

	if (!txn_has(txn, db->domains, c->domain)) {
		*error_r = db_errorf(db, "unknown domain '%s'", c->domain);
		return DB_USER_ERROR;
	}
	if ((rc = purge_domain(txn, db->users, c->domain, c->force, &users)) != 0 ||
	    (rc = purge_domain(txn, db->aliases, c->domain, c->force, &aliases)) != 0)
		return rc;
	if (!c->force && users + aliases > 0) {
		*error_r = db_errorf(db, "domain '%s' still has %zu users and %zu aliases "
				     "(use --force to delete them too)",
				     c->domain, users, aliases);
		return DB_USER_ERROR;
	}
	return db_del(txn, db->domains, c->domain);
}

int auth_domain_del(struct auth_db *db, const char *domain, bool force,
		    const char **error_r)
{
	char name[AUTH_DOMAIN_MAX + 1];
	if (normalise_domain(db, domain, name, error_r) < 0)
		return -1;
	struct domain_del_ctx ctx = { name, force };
	return db_write(db, op_domain_del, &ctx, error_r);
}

/* Walks a database in key order inside one read transaction. */
static int db_scan(struct auth_db *db, MDB_dbi dbi,
		   int (*each)(const MDB_val *k, const MDB_val *v, void *ctx),
		   void *ctx, const char **error_r)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = db_txn_begin(db, MDB_RDONLY, &txn);
	if (rc == 0) {
		if ((rc = mdb_cursor_open(txn, dbi, &cur)) == 0) {
			for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
			     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
				if (each(&k, &v, ctx) != 0)
					break;
			}
			mdb_cursor_close(cur);
		}
		mdb_txn_abort(txn);
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		*error_r = db_errorf(db, "accounts database: %s", mdb_strerror(rc));
		return -1;
	}
	return 0;
}

struct domain_list_ctx {
	int (*fn)(const struct auth_domain_info *info, void *ctx);
	void *ctx;
};

static int each_domain(const MDB_val *k, const MDB_val *v, void *ctx)
{
	struct domain_list_ctx *c = ctx;
	struct auth_domain_info info;
	key_of(k, info.name, sizeof(info.name));
	info.created = (time_t)record_u64(v, "created");
	return c->fn(&info, c->ctx);
}

int auth_domain_list(struct auth_db *db,
		     int (*fn)(const struct auth_domain_info *info, void *ctx),
		     void *ctx, const char **error_r)
{
	struct domain_list_ctx c = { fn, ctx };
	return db_scan(db, db->domains, each_domain, &c, error_r);
}

bool auth_domain_is_local(struct auth_db *db, const char *domain)
{
	if (db->client != NULL)
		return auth_client_domain_is_local(db->client, domain) == 1;
	char name[AUTH_DOMAIN_MAX + 1];
	const char *error;
	MDB_txn *txn;
	if (auth_domain_normalise(domain, name, &error) < 0)
		return false;
	if (db_txn_begin(db, MDB_RDONLY, &txn) != 0)
		return false;
	bool local = txn_has(txn, db->domains, name);
	mdb_txn_abort(txn);
	return local;
}

/* ---- users -------------------------------------------------------- */

static int parse_address(struct auth_db *db, const char *text, struct auth_address *addr,
			 const char **error_r)
{
	const char *why;
	if (auth_address_parse(text, addr, &why) < 0) {
		*error_r = db_errorf(db, "bad address '%s': %s", text, why);
		return -1;
	}
	return 0;
}

int auth_user_lookup(struct auth_db *db, const char *address, struct auth_user *user_r)
{
	if (db->client != NULL)
		return auth_client_user_lookup(db->client, address, user_r);
	struct auth_address addr;
	const char *error;
	MDB_txn *txn;
	MDB_val v;
	if (auth_address_parse(address, &addr, &error) < 0)
		return 0;
	int rc = db_txn_begin(db, MDB_RDONLY, &txn);
	if (rc != 0) {
		log_error("event=db-error db=accounts error=\"%s\"", mdb_strerror(rc));
		return -1;
	}
	rc = db_get(txn, db->users, addr.key, &v);
	if (rc == 0)
		user_decode(addr.key, &v, user_r);
	mdb_txn_abort(txn);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0) {
		log_error("event=db-error db=accounts error=\"%s\"", mdb_strerror(rc));
		return -1;
	}
	return 1;
}

/* Fills the password fields of user: yescrypt and both SCRAM secrets. */
static int user_set_secrets(struct auth_db *db, struct auth_user *user,
			    const char *password, const char **error_r)
{
	unsigned char salt[AUTH_SCRAM_SALT_LEN];
	if (auth_password_hash(password, user->hash, sizeof(user->hash), error_r) < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		bool sha256 = i == 0;
		if (RAND_bytes(salt, sizeof(salt)) != 1 ||
		    auth_scram_secret(sha256, password, salt, sizeof(salt),
				      AUTH_SCRAM_ITERATIONS,
				      sha256 ? user->scram_sha256 : user->scram_sha1,
				      AUTH_SCRAM_SECRET_MAX) < 0) {
			*error_r = "computing SCRAM secrets failed";
			return -1;
		}
	}
	return 0;
}

static int op_user_add(struct auth_db *db, MDB_txn *txn, void *ctx, const char **error_r)
{
	struct auth_user *user = ctx;
	struct auth_address addr;
	auth_address_parse(user->address, &addr, error_r);
	if (!txn_has(txn, db->domains, addr.domain)) {
		*error_r = db_errorf(db, "unknown domain '%s'", addr.domain);
		return DB_USER_ERROR;
	}
	if (txn_has(txn, db->users, user->key)) {
		*error_r = db_errorf(db, "user '%s' exists", user->address);
		return DB_USER_ERROR;
	}
	if (txn_has(txn, db->aliases, user->key)) {
		*error_r = db_errorf(db, "'%s' is an alias", user->address);
		return DB_USER_ERROR;
	}
	struct buf rec = BUF_INIT;
	user_encode(user, &rec);
	int rc = db_put(txn, db->users, user->key, &rec);
	OPENSSL_cleanse(rec.data, rec.len);
	buf_free(&rec);
	return rc;
}

int auth_user_add(struct auth_db *db, const char *address, const char *password,
		  uint64_t quota, bool enabled, const char **error_r)
{
	struct auth_address addr;
	struct auth_user user;
	if (parse_address(db, address, &addr, error_r) < 0)
		return -1;
	if (!auth_domain_is_local(db, addr.domain)) {
		/* checked again in the transaction; this spares the hashing */
		*error_r = db_errorf(db, "unknown domain '%s'", addr.domain);
		return -1;
	}
	memset(&user, 0, sizeof(user));
	memcpy(user.address, addr.address, sizeof(user.address));
	memcpy(user.key, addr.key, sizeof(user.key));
	user.quota = quota;
	user.enabled = enabled;
	user.created = time(NULL);
	if (user_set_secrets(db, &user, password, error_r) < 0)
		return -1;
	int ret = db_write(db, op_user_add, &user, error_r);
	OPENSSL_cleanse(&user, sizeof(user));
	return ret;
}

static int op_user_del(struct auth_db *db, MDB_txn *txn, void *ctx, const char **error_r)
{
	const struct auth_address *addr = ctx;
	int rc = db_del(txn, db->users, addr->key);
	if (rc == MDB_NOTFOUND) {
		*error_r = db_errorf(db, "unknown user '%s'", addr->address);
		return DB_USER_ERROR;
	}
	return rc;
}

int auth_user_del(struct auth_db *db, const char *address, const char **error_r)
{
	struct auth_address addr;
	if (parse_address(db, address, &addr, error_r) < 0)
		return -1;
	return db_write(db, op_user_del, &addr, error_r);
}

/* Read-modify-write of one user record. */
struct user_update_ctx {
	const struct auth_address *addr;
	void (*apply)(struct auth_user *user, const void *arg);
	const void *arg;
};

static int op_user_update(struct auth_db *db, MDB_txn *txn, void *ctx, const char **error_r)
{
	struct user_update_ctx *c = ctx;
	struct auth_user user;
	MDB_val v;
	int rc = db_get(txn, db->users, c->addr->key, &v);
	if (rc == MDB_NOTFOUND) {
		*error_r = db_errorf(db, "unknown user '%s'", c->addr->address);
		return DB_USER_ERROR;
	}
	if (rc != 0)
		return rc;
	user_decode(c->addr->key, &v, &user);
	c->apply(&user, c->arg);
	struct buf rec = BUF_INIT;
	user_encode(&user, &rec);
	rc = db_put(txn, db->users, c->addr->key, &rec);
	OPENSSL_cleanse(rec.data, rec.len);
	OPENSSL_cleanse(&user, sizeof(user));
	buf_free(&rec);
	return rc;
}

static int user_update(struct auth_db *db, const char *address,
		       void (*apply)(struct auth_user *user, const void *arg),
		       const void *arg, const char **error_r)
{
	struct auth_address addr;
	if (parse_address(db, address, &addr, error_r) < 0)
		return -1;
	struct user_update_ctx ctx = { &addr, apply, arg };
	return db_write(db, op_user_update, &ctx, error_r);
}

static void apply_secrets(struct auth_user *user, const void *arg)
{
	const struct auth_user *from = arg;
	memcpy(user->hash, from->hash, sizeof(user->hash));
	memcpy(user->scram_sha256, from->scram_sha256, sizeof(user->scram_sha256));
	memcpy(user->scram_sha1, from->scram_sha1, sizeof(user->scram_sha1));
}

int auth_user_set_password(struct auth_db *db, const char *address,
			   const char *password, const char **error_r)
{
	struct auth_user secrets, current;
	int found = auth_user_lookup(db, address, &current);
	if (found <= 0) {
		struct auth_address addr;
		if (parse_address(db, address, &addr, error_r) < 0)
			return -1;
		*error_r = found < 0 ? "accounts database error" :
			db_errorf(db, "unknown user '%s'", addr.address);
		return -1;
	}
	memset(&secrets, 0, sizeof(secrets));
	if (user_set_secrets(db, &secrets, password, error_r) < 0)
		return -1;
	int ret = user_update(db, address, apply_secrets, &secrets, error_r);
	OPENSSL_cleanse(&secrets, sizeof(secrets));
	OPENSSL_cleanse(&current, sizeof(current));
	return ret;
}

static void apply_enabled(struct auth_user *user, const void *arg)
{
	user->enabled = *(const bool *)arg;
}

int auth_user_set_enabled(struct auth_db *db, const char *address, bool enabled,
			  const char **error_r)
{
	return user_update(db, address, apply_enabled, &enabled, error_r);
}

static void apply_quota(struct auth_user *user, const void *arg)
{
	user->quota = *(const uint64_t *)arg;
}

int auth_user_set_quota(struct auth_db *db, const char *address, uint64_t quota,
			const char **error_r)
{
	return user_update(db, address, apply_quota, &quota, error_r);
}

static void apply_quota_messages(struct auth_user *user, const void *arg)
{
	user->quota_messages = *(const uint64_t *)arg;
}

int auth_user_set_quota_messages(struct auth_db *db, const char *address, uint64_t messages,
				 const char **error_r)
{
	return user_update(db, address, apply_quota_messages, &messages, error_r);
}

struct user_list_ctx {
	const char *domain;
	int (*fn)(const struct auth_user *user, void *ctx);
	void *ctx;
};

static int each_user(const MDB_val *k, const MDB_val *v, void *ctx)
{
	struct user_list_ctx *c = ctx;
	struct auth_user user;
	char key[AUTH_ADDRESS_MAX + 3];
	if (c->domain != NULL && !key_in_domain(k, c->domain))
		return 0;
	key_of(k, key, sizeof(key));
	user_decode(key, v, &user);
	return c->fn(&user, c->ctx);
}

int auth_user_list(struct auth_db *db, const char *domain,
		   int (*fn)(const struct auth_user *user, void *ctx),
		   void *ctx, const char **error_r)
{
	char name[AUTH_DOMAIN_MAX + 1];
	if (domain != NULL) {
		if (normalise_domain(db, domain, name, error_r) < 0)
			return -1;
		if (!auth_domain_is_local(db, name)) {
			*error_r = db_errorf(db, "unknown domain '%s'", name);
			return -1;
		}
	}
	struct user_list_ctx c = { domain != NULL ? name : NULL, fn, ctx };
	return db_scan(db, db->users, each_user, &c, error_r);
}

/* ---- aliases and resolution --------------------------------------- */

static void recipients_add(struct auth_recipients *list, const char *address, bool local)
{
	for (size_t i = 0; i < list->count; i++) {
		if (ascii_strcasecmp(list->items[i].address, address) == 0)
			return;
	}
	list->items = xrealloc(list->items, (list->count + 1) * sizeof(*list->items));
	list->items[list->count].address = xstrdup(address);
	list->items[list->count].local = local;
	list->count++;
}

void auth_recipients_free(struct auth_recipients *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i].address);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

/* The chain of alias keys being expanded, to detect loops. */
struct resolve_path {
	const char *keys[ALIAS_MAX_DEPTH];
	int depth;
};

static int resolve_in(struct auth_db *db, MDB_txn *txn, const char *address,
		      struct resolve_path *path, struct auth_recipients *list,
		      const char **error_r);

static int expand_alias(struct auth_db *db, MDB_txn *txn, const char *alias_key,
			const MDB_val *rec, struct resolve_path *path,
			struct auth_recipients *list, const char **error_r)
{
	char targets[4096];
	int found = 0;

	for (int i = 0; i < path->depth; i++) {
		if (strcmp(path->keys[i], alias_key) == 0) {
			*error_r = db_errorf(db, "alias loop through '%s'", alias_key);
			return -1;
		}
	}
	if (path->depth >= ALIAS_MAX_DEPTH) {
		*error_r = db_errorf(db, "aliases nested too deep at '%s'", alias_key);
		return -1;
	}
	path->keys[path->depth++] = alias_key;
	record_field(rec, "targets", targets, sizeof(targets));
	char *save = NULL;
	for (char *t = strtok_r(targets, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		int r = resolve_in(db, txn, t, path, list, error_r);
		if (r < 0) {
			found = -1;
			break;
		}
		if (r > 0)
			found = 1;
	}
	path->depth--;
	return found;
}

static int resolve_in(struct auth_db *db, MDB_txn *txn, const char *address,
		      struct resolve_path *path, struct auth_recipients *list,
		      const char **error_r)
{
	struct auth_address addr;
	char catchall[AUTH_DOMAIN_MAX + 2];
	MDB_val v;

	if (parse_address(db, address, &addr, error_r) < 0)
		return -1;
	if (!txn_has(txn, db->domains, addr.domain)) {
		recipients_add(list, addr.address, false);
		return 1;
	}
	if (db_get(txn, db->users, addr.key, &v) == 0) {
		char display[AUTH_ADDRESS_MAX + 3];
		record_field(&v, "address", display, sizeof(display));
		recipients_add(list, display, true);
		return 1;
	}
	if (db_get(txn, db->aliases, addr.key, &v) == 0)
		return expand_alias(db, txn, addr.key, &v, path, list, error_r);
	snprintf(catchall, sizeof(catchall), "@%s", addr.domain);
	if (db_get(txn, db->aliases, catchall, &v) == 0)
		return expand_alias(db, txn, catchall, &v, path, list, error_r);
	return 0;
}

int auth_resolve_recipient(struct auth_db *db, const char *address,
			   struct auth_recipients *list_r, const char **error_r)
{
	struct resolve_path path = { .depth = 0 };
	MDB_txn *txn;
	if (db->client != NULL)
		return auth_client_resolve(db->client, address, list_r, error_r);
	memset(list_r, 0, sizeof(*list_r));
	int rc = db_txn_begin(db, MDB_RDONLY, &txn);
	if (rc != 0) {
		*error_r = db_errorf(db, "accounts database: %s", mdb_strerror(rc));
		return -1;
	}
	int r = resolve_in(db, txn, address, &path, list_r, error_r);
	mdb_txn_abort(txn);
	if (r <= 0)
		auth_recipients_free(list_r);
	return r;
}

bool auth_sender_allowed(struct auth_db *db, const char *user, const char *address)
{
	if (db->client != NULL)
		return auth_client_sender_allowed(db->client, user, address) == 1;
	struct auth_address addr, self;
	struct auth_recipients list;
	const char *error;
	MDB_txn *txn;
	MDB_val v;

	if (auth_address_parse(address, &addr, &error) < 0 ||
	    auth_address_parse(user, &self, &error) < 0)
		return false;
	if (strcmp(addr.key, self.key) == 0)
		return true;
	/* only an exact alias, never a catch-all: it would cover every
	 * unassigned address of its domain */
	if (db_txn_begin(db, MDB_RDONLY, &txn) != 0)
		return false;
	bool is_alias = db_get(txn, db->aliases, addr.key, &v) == 0;
	mdb_txn_abort(txn);
	if (!is_alias || auth_resolve_recipient(db, addr.address, &list, &error) <= 0)
		return false;
	bool allowed = false;
	for (size_t i = 0; i < list.count; i++) {
		if (list.items[i].local && ascii_strcasecmp(list.items[i].address,
							    self.address) == 0)
			allowed = true;
	}
	auth_recipients_free(&list);
	return allowed;
}

/* An alias name: "local@domain" or a catch-all "@domain". */
static int parse_alias_name(struct auth_db *db, const char *text, char *key,
			    char *display, char *domain, const char **error_r)
{
	if (text[0] == '@') {
		if (normalise_domain(db, text + 1, domain, error_r) < 0)
			return -1;
		snprintf(key, AUTH_ADDRESS_MAX + 3, "@%s", domain);
		snprintf(display, AUTH_ADDRESS_MAX + 3, "@%s", domain);
		return 0;
	}
	struct auth_address addr;
	if (parse_address(db, text, &addr, error_r) < 0)
		return -1;
	memcpy(key, addr.key, sizeof(addr.key));
	memcpy(display, addr.address, sizeof(addr.address));
	memcpy(domain, addr.domain, sizeof(addr.domain));
	return 0;
}

struct alias_add_ctx {
	char key[AUTH_ADDRESS_MAX + 3];
	char display[AUTH_ADDRESS_MAX + 3];
	char domain[AUTH_DOMAIN_MAX + 1];
	struct buf targets;      /* normalised, comma-separated */
};

/* A local target must already exist: a user, an alias or a catch-all. */
static int check_target(struct auth_db *db, MDB_txn *txn, const struct auth_address *t,
			const char **error_r)
{
	char catchall[AUTH_DOMAIN_MAX + 2];
	if (!txn_has(txn, db->domains, t->domain))
		return 0;
	snprintf(catchall, sizeof(catchall), "@%s", t->domain);
	if (txn_has(txn, db->users, t->key) || txn_has(txn, db->aliases, t->key) ||
	    txn_has(txn, db->aliases, catchall))
		return 0;
	*error_r = db_errorf(db, "unknown user '%s'", t->address);
	return DB_USER_ERROR;
}

static int op_alias_add(struct auth_db *db, MDB_txn *txn, void *ctx, const char **error_r)
{
	struct alias_add_ctx *c = ctx;
	struct auth_recipients list;
	struct resolve_path path = { .depth = 0 };
	char targets[4096];
	int rc;

	if (!txn_has(txn, db->domains, c->domain)) {
		*error_r = db_errorf(db, "unknown domain '%s'", c->domain);
		return DB_USER_ERROR;
	}
	if (txn_has(txn, db->users, c->key)) {
		*error_r = db_errorf(db, "'%s' is a user", c->display);
		return DB_USER_ERROR;
	}
	if (txn_has(txn, db->aliases, c->key)) {
		*error_r = db_errorf(db, "alias '%s' exists", c->display);
		return DB_USER_ERROR;
	}
	struct buf rec = BUF_INIT;
	buf_printf(&rec, "alias=%s\ntargets=%s\n", c->display, buf_str(&c->targets));
	rc = db_put(txn, db->aliases, c->key, &rec);
	buf_free(&rec);
	if (rc != 0)
		return rc;
	/* after the put, so that a target naming the alias itself is a loop */
	snprintf(targets, sizeof(targets), "%s", buf_str(&c->targets));
	char *save = NULL;
	for (char *t = strtok_r(targets, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		struct auth_address addr;
		auth_address_parse(t, &addr, error_r);
		if ((rc = check_target(db, txn, &addr, error_r)) != 0)
			return rc;
	}
	/* expand the new alias inside this transaction to find loops */
	MDB_val v;
	memset(&list, 0, sizeof(list));
	if ((rc = db_get(txn, db->aliases, c->key, &v)) != 0)
		return rc;
	int r = expand_alias(db, txn, c->key, &v, &path, &list, error_r);
	auth_recipients_free(&list);
	return r < 0 ? DB_USER_ERROR : 0;
}

int auth_alias_add(struct auth_db *db, const char *alias, const char *targets,
		   const char **error_r)
{
	struct alias_add_ctx ctx;
	memset(&ctx, 0, sizeof(ctx));
	if (parse_alias_name(db, alias, ctx.key, ctx.display, ctx.domain, error_r) < 0)
		return -1;
	char *copy = xstrdup(targets), *save = NULL;
	int ret = -1;
	for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		struct auth_address addr;
		while (*t == ' ' || *t == '\t')
			t++;
		size_t len = strlen(t);
		while (len > 0 && (t[len - 1] == ' ' || t[len - 1] == '\t'))
			t[--len] = '\0';
		if (len == 0)
			continue;
		if (parse_address(db, t, &addr, error_r) < 0)
			goto out;
		if (ctx.targets.len > 0)
			buf_append_char(&ctx.targets, ',');
		buf_append_str(&ctx.targets, addr.address);
	}
	if (ctx.targets.len == 0) {
		*error_r = "alias needs at least one target";
		goto out;
	}
	if (ctx.targets.len >= sizeof(((struct auth_alias_info *)0)->targets)) {
		*error_r = "too many alias targets";
		goto out;
	}
	ret = db_write(db, op_alias_add, &ctx, error_r);
out:
	free(copy);
	buf_free(&ctx.targets);
	return ret;
}

static int op_alias_del(struct auth_db *db, MDB_txn *txn, void *ctx, const char **error_r)
{
	const char *key = ctx;
	int rc = db_del(txn, db->aliases, key);
	if (rc == MDB_NOTFOUND) {
		*error_r = db_errorf(db, "unknown alias '%s'", key);
		return DB_USER_ERROR;
	}
	return rc;
}

int auth_alias_del(struct auth_db *db, const char *alias, const char **error_r)
{
	char key[AUTH_ADDRESS_MAX + 3], display[AUTH_ADDRESS_MAX + 3];
	char domain[AUTH_DOMAIN_MAX + 1];
	if (parse_alias_name(db, alias, key, display, domain, error_r) < 0)
		return -1;
	return db_write(db, op_alias_del, key, error_r);
}

struct alias_list_ctx {
	int (*fn)(const struct auth_alias_info *info, void *ctx);
	void *ctx;
};

static int each_alias(const MDB_val *k, const MDB_val *v, void *ctx)
{
	struct alias_list_ctx *c = ctx;
	struct auth_alias_info info;
	if (!record_field(v, "alias", info.alias, sizeof(info.alias)))
		key_of(k, info.alias, sizeof(info.alias));
	record_field(v, "targets", info.targets, sizeof(info.targets));
	return c->fn(&info, c->ctx);
}

int auth_alias_list(struct auth_db *db,
		    int (*fn)(const struct auth_alias_info *info, void *ctx),
		    void *ctx, const char **error_r)
{
	struct alias_list_ctx c = { fn, ctx };
	return db_scan(db, db->aliases, each_alias, &c, error_r);
}

#include "test.h"
#include "auth/auth.h"
#include "auth/auth-private.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct auth_db *open_db(void)
{
	static int n;
	char dir[512];
	struct auth_db *db = NULL;
	const char *error = NULL;
	snprintf(dir, sizeof(dir), "%s/data%d", test_tmpdir(), n++);
	if (auth_db_open(dir, "nobody", &db, &error) < 0) {
		fprintf(stderr, "auth_db_open: %s\n", error);
		exit(1);
	}
	return db;
}

static int count_cb(const void *item, void *ctx)
{
	(void)item;
	(*(int *)ctx)++;
	return 0;
}

static int count_users(struct auth_db *db, const char *domain)
{
	int n = 0;
	const char *error;
	auth_user_list(db, domain, (int (*)(const struct auth_user *, void *))count_cb,
		       &n, &error);
	return n;
}

static void test_domains(void)
{
	struct auth_db *db = open_db();
	const char *error = NULL;
	TEST_ASSERT_INT(auth_domain_add(db, "Example.ORG", &error), 0);
	TEST_ASSERT_INT(auth_domain_add(db, "example.org", &error), -1);
	TEST_ASSERT_STR(error, "domain 'example.org' exists");
	TEST_ASSERT_INT(auth_domain_add(db, "bad_domain", &error), -1);
	TEST_ASSERT_INT(auth_domain_add(db, "bücher.example", &error), 0);
	TEST_ASSERT(auth_domain_is_local(db, "EXAMPLE.org"));
	TEST_ASSERT(auth_domain_is_local(db, "xn--bcher-kva.example"));
	TEST_ASSERT(auth_domain_is_local(db, "BÜCHER.example"));
	TEST_ASSERT(!auth_domain_is_local(db, "example.net"));
	TEST_ASSERT_INT(auth_domain_del(db, "example.net", false, &error), -1);
	TEST_ASSERT_STR(error, "unknown domain 'example.net'");
	TEST_ASSERT_INT(auth_domain_del(db, "xn--bcher-kva.example", false, &error), 0);
	TEST_ASSERT(!auth_domain_is_local(db, "bücher.example"));
	auth_db_close(&db);
	TEST_ASSERT(db == NULL);
}

static void test_users(void)
{
	struct auth_db *db = open_db();
	struct auth_user user;
	const char *error = NULL;
	TEST_ASSERT_INT(auth_user_add(db, "bob@example.org", "pw", 0, true, &error), -1);
	TEST_ASSERT_STR(error, "unknown domain 'example.org'");
	auth_domain_add(db, "example.org", &error);
	TEST_ASSERT_INT(auth_user_add(db, "Bob@Example.org", "secret", 1000, true, &error), 0);
	TEST_ASSERT_INT(auth_user_add(db, "bob@example.org", "x", 0, true, &error), -1);
	TEST_ASSERT_STR(error, "user 'bob@example.org' exists");
	TEST_ASSERT_INT(auth_user_add(db, "bad@@example.org", "x", 0, true, &error), -1);

	TEST_ASSERT_INT(auth_user_lookup(db, "BOB@EXAMPLE.ORG", &user), 1);
	TEST_ASSERT_STR(user.address, "Bob@example.org");
	TEST_ASSERT_STR(user.key, "bob@example.org");
	TEST_ASSERT_INT(user.quota, 1000);
	TEST_ASSERT(user.enabled);
	TEST_ASSERT(user.created > 0);
	TEST_ASSERT(strncmp(user.hash, "$y$", 3) == 0);
	TEST_ASSERT(strncmp(user.scram_sha256, "SCRAM-SHA-256$16384:", 20) == 0);
	TEST_ASSERT(strncmp(user.scram_sha1, "SCRAM-SHA-1$16384:", 18) == 0);
	TEST_ASSERT(auth_password_verify("secret", user.hash));
	TEST_ASSERT(!auth_password_verify("Secret", user.hash));
	TEST_ASSERT(strstr(user.scram_sha256, "secret") == NULL);

	TEST_ASSERT_INT(auth_user_set_password(db, "bob@example.org", "new", &error), 0);
	TEST_ASSERT_INT(auth_user_lookup(db, "bob@example.org", &user), 1);
	TEST_ASSERT(auth_password_verify("new", user.hash));
	TEST_ASSERT_INT(auth_user_set_enabled(db, "bob@example.org", false, &error), 0);
	TEST_ASSERT_INT(auth_user_lookup(db, "bob@example.org", &user), 1);
	TEST_ASSERT(!user.enabled);
	TEST_ASSERT_INT(auth_user_set_quota(db, "bob@example.org", 5, &error), 0);
	TEST_ASSERT_INT(auth_user_lookup(db, "bob@example.org", &user), 1);
	TEST_ASSERT_INT(user.quota, 5);
	TEST_ASSERT_STR(user.address, "Bob@example.org");

	TEST_ASSERT_INT(auth_user_set_password(db, "eve@example.org", "x", &error), -1);
	TEST_ASSERT_STR(error, "unknown user 'eve@example.org'");
	TEST_ASSERT_INT(auth_user_lookup(db, "eve@example.org", &user), 0);

	auth_domain_add(db, "example.net", &error);
	auth_user_add(db, "ann@example.net", "pw", 0, true, &error);
	TEST_ASSERT_INT(count_users(db, NULL), 2);
	TEST_ASSERT_INT(count_users(db, "example.net"), 1);

	TEST_ASSERT_INT(auth_user_del(db, "BOB@example.org", &error), 0);
	TEST_ASSERT_INT(auth_user_del(db, "bob@example.org", &error), -1);
	TEST_ASSERT_STR(error, "unknown user 'bob@example.org'");
	TEST_ASSERT_INT(auth_user_lookup(db, "bob@example.org", &user), 0);
	auth_db_close(&db);
}

static void test_aliases(void)
{
	struct auth_db *db = open_db();
	struct auth_recipients list;
	const char *error = NULL;
	auth_domain_add(db, "example.org", &error);
	auth_user_add(db, "bob@example.org", "pw", 0, true, &error);
	auth_user_add(db, "ann@example.org", "pw", 0, true, &error);

	TEST_ASSERT_INT(auth_alias_add(db, "info@example.org",
				       "bob@example.org, Ann@Example.org,x@remote.net",
				       &error), 0);
	TEST_ASSERT_INT(auth_resolve_recipient(db, "INFO@example.org", &list, &error), 1);
	TEST_ASSERT_INT(list.count, 3);
	if (list.count == 3) {
		TEST_ASSERT_STR(list.items[0].address, "bob@example.org");
		TEST_ASSERT(list.items[0].local);
		TEST_ASSERT_STR(list.items[1].address, "ann@example.org");
		TEST_ASSERT_STR(list.items[2].address, "x@remote.net");
		TEST_ASSERT(!list.items[2].local);
	}
	auth_recipients_free(&list);

	/* errors */
	TEST_ASSERT_INT(auth_alias_add(db, "bob@example.org", "ann@example.org", &error), -1);
	TEST_ASSERT_STR(error, "'bob@example.org' is a user");
	TEST_ASSERT_INT(auth_alias_add(db, "x@example.com", "ann@example.org", &error), -1);
	TEST_ASSERT_STR(error, "unknown domain 'example.com'");
	TEST_ASSERT_INT(auth_alias_add(db, "y@example.org", "nobody@example.org", &error), -1);
	TEST_ASSERT_STR(error, "unknown user 'nobody@example.org'");
	TEST_ASSERT_INT(auth_alias_add(db, "y@example.org", "bad address", &error), -1);
	TEST_ASSERT_INT(auth_user_add(db, "info@example.org", "pw", 0, true, &error), -1);
	TEST_ASSERT_STR(error, "'info@example.org' is an alias");

	/* loops: self, two-step, three-step */
	TEST_ASSERT_INT(auth_alias_add(db, "self@example.org", "self@example.org", &error), -1);
	TEST_ASSERT(strstr(error, "loop") != NULL);
	TEST_ASSERT_INT(auth_alias_add(db, "a@example.org", "info@example.org", &error), 0);
	TEST_ASSERT_INT(auth_alias_add(db, "b@example.org", "a@example.org", &error), 0);
	TEST_ASSERT_INT(auth_alias_del(db, "info@example.org", &error), 0);
	TEST_ASSERT_INT(auth_alias_add(db, "info@example.org", "b@example.org", &error), -1);
	TEST_ASSERT(strstr(error, "loop") != NULL);
	TEST_ASSERT_INT(auth_alias_add(db, "info@example.org", "bob@example.org,b@example.org",
				       &error), -1);
	/* a diamond is not a loop */
	TEST_ASSERT_INT(auth_alias_add(db, "info@example.org", "bob@example.org", &error), 0);
	TEST_ASSERT_INT(auth_alias_add(db, "d@example.org", "a@example.org,b@example.org",
				       &error), 0);
	TEST_ASSERT_INT(auth_resolve_recipient(db, "d@example.org", &list, &error), 1);
	TEST_ASSERT_INT(list.count, 1);
	auth_recipients_free(&list);

	/* resolution of plain addresses */
	TEST_ASSERT_INT(auth_resolve_recipient(db, "Bob@example.org", &list, &error), 1);
	TEST_ASSERT_INT(list.count, 1);
	auth_recipients_free(&list);
	TEST_ASSERT_INT(auth_resolve_recipient(db, "who@example.org", &list, &error), 0);
	TEST_ASSERT_INT(auth_resolve_recipient(db, "who@elsewhere.net", &list, &error), 1);
	TEST_ASSERT(list.count == 1 && !list.items[0].local);
	auth_recipients_free(&list);

	/* catch-all */
	TEST_ASSERT_INT(auth_alias_add(db, "@Example.org", "ann@example.org", &error), 0);
	TEST_ASSERT_INT(auth_resolve_recipient(db, "who@example.org", &list, &error), 1);
	TEST_ASSERT(list.count == 1 && strcmp(list.items[0].address, "ann@example.org") == 0);
	auth_recipients_free(&list);
	TEST_ASSERT_INT(auth_resolve_recipient(db, "bob@example.org", &list, &error), 1);
	TEST_ASSERT(list.count == 1 && strcmp(list.items[0].address, "bob@example.org") == 0);
	auth_recipients_free(&list);

	/* sender_allowed */
	TEST_ASSERT(auth_sender_allowed(db, "bob@example.org", "BOB@example.org"));
	TEST_ASSERT(auth_sender_allowed(db, "bob@example.org", "info@example.org"));
	TEST_ASSERT(auth_sender_allowed(db, "bob@example.org", "d@example.org"));
	TEST_ASSERT(!auth_sender_allowed(db, "ann@example.org", "info@example.org"));
	TEST_ASSERT(!auth_sender_allowed(db, "ann@example.org", "bob@example.org"));
	TEST_ASSERT(!auth_sender_allowed(db, "ann@example.org", "who@example.org"));

	TEST_ASSERT_INT(auth_alias_del(db, "nothere@example.org", &error), -1);
	TEST_ASSERT_STR(error, "unknown alias 'nothere@example.org'");
	int n = 0;
	auth_alias_list(db, (int (*)(const struct auth_alias_info *, void *))count_cb,
			&n, &error);
	TEST_ASSERT_INT(n, 5);

	/* domain deletion: refused while users/aliases remain, then forced */
	TEST_ASSERT_INT(auth_domain_del(db, "example.org", false, &error), -1);
	TEST_ASSERT(strstr(error, "--force") != NULL);
	TEST_ASSERT(auth_domain_is_local(db, "example.org"));
	TEST_ASSERT_INT(auth_domain_del(db, "example.org", true, &error), 0);
	TEST_ASSERT(!auth_domain_is_local(db, "example.org"));
	TEST_ASSERT_INT(count_users(db, NULL), 0);
	n = 0;
	auth_alias_list(db, (int (*)(const struct auth_alias_info *, void *))count_cb,
			&n, &error);
	TEST_ASSERT_INT(n, 0);
	auth_db_close(&db);
}

static void test_reopen(void)
{
	/* a second process sees the change without reopening */
	char dir[512];
	struct auth_db *db1, *db2;
	const char *error;
	snprintf(dir, sizeof(dir), "%s/shared", test_tmpdir());
	TEST_ASSERT_INT(auth_db_open(dir, "nobody", &db1, &error), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct auth_db *child;
		if (auth_db_open(dir, "nobody", &child, &error) < 0)
			_exit(1);
		auth_domain_add(child, "child.example", &error);
		auth_db_close(&child);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	TEST_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	TEST_ASSERT(auth_domain_is_local(db1, "child.example"));
	auth_db_close(&db1);
	TEST_ASSERT_INT(auth_db_open(dir, "nobody", &db2, &error), 0);
	TEST_ASSERT(auth_domain_is_local(db2, "child.example"));
	auth_db_close(&db2);
}

static size_t b64_decode(const char *text, unsigned char *dst)
{
	size_t len = strlen(text);
	int n = EVP_DecodeBlock(dst, (const unsigned char *)text, (int)len);
	while (len > 0 && text[len - 1] == '=') {
		len--;
		n--;
	}
	return (size_t)n;
}

/* Checks a secret against an RFC exchange: the client's proof must verify
 * with StoredKey, and ServerKey must give the server's signature. */
static void check_exchange(const EVP_MD *md, const char *secret, const char *auth_message,
			   const char *proof64, const char *signature64)
{
	unsigned char stored[64], server[64], proof[64], sig[64], mac[64], client_key[64];
	unsigned char hashed[64];
	unsigned int mac_len;
	char copy[512];
	snprintf(copy, sizeof(copy), "%s", secret);
	char *keys = strrchr(copy, '$') + 1;
	char *colon = strchr(keys, ':');
	*colon = '\0';
	size_t len = (size_t)EVP_MD_get_size(md);
	TEST_ASSERT_INT(b64_decode(keys, stored), len);
	TEST_ASSERT_INT(b64_decode(colon + 1, server), len);
	TEST_ASSERT_INT(b64_decode(proof64, proof), len);
	TEST_ASSERT_INT(b64_decode(signature64, sig), len);
	HMAC(md, stored, (int)len, (const unsigned char *)auth_message, strlen(auth_message),
	     mac, &mac_len);
	for (size_t i = 0; i < len; i++)
		client_key[i] = proof[i] ^ mac[i];
	EVP_Digest(client_key, len, hashed, NULL, md, NULL);
	TEST_ASSERT(memcmp(hashed, stored, len) == 0);
	HMAC(md, server, (int)len, (const unsigned char *)auth_message, strlen(auth_message),
	     mac, &mac_len);
	TEST_ASSERT(memcmp(mac, sig, len) == 0);
}

/* A process that dies inside a read transaction leaves its reader slot;
 * auth_db_reader_check() clears it. */
static void test_reader_check(void)
{
	char dir[512], path[600];
	struct auth_db *db;
	const char *error;
	snprintf(dir, sizeof(dir), "%s/readers", test_tmpdir());
	TEST_ASSERT_INT(auth_db_open(dir, "nobody", &db, &error), 0);
	snprintf(path, sizeof(path), "%s/accounts.lmdb", dir);
	pid_t pid = fork();
	if (pid == 0) {
		MDB_env *env;
		MDB_txn *txn;
		if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 4) != 0 ||
		    mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOTLS, 0600) != 0 ||
		    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
			_exit(1);
		_exit(0);   /* dies holding the slot */
	}
	int status;
	waitpid(pid, &status, 0);
	TEST_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	TEST_ASSERT_INT(auth_db_reader_check(db), 1);
	TEST_ASSERT_INT(auth_db_reader_check(db), 0);
	auth_db_close(&db);
}

/* A map that fills up grows (MDB_MAP_FULL: abort, grow, retry), and a
 * process that opened it small adopts the new size (MDB_MAP_RESIZED). */
static void test_map_growth(void)
{
	char dir[512], name[64];
	struct auth_db *db;
	const char *error = NULL;
	int pipe_go[2], pipe_done[2];
	snprintf(dir, sizeof(dir), "%s/small", test_tmpdir());
	TEST_ASSERT_INT(auth_db_open_sized(dir, "nobody", 32 * 1024, &db, &error), 0);
	TEST_ASSERT(pipe(pipe_go) == 0 && pipe(pipe_done) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		/* opened small; reads after the parent grew the map */
		struct auth_db *child;
		char c;
		if (auth_db_open_sized(dir, "nobody", 32 * 1024, &child, &error) < 0)
			_exit(1);
		if (write(pipe_done[1], "r", 1) != 1 || read(pipe_go[0], &c, 1) != 1)
			_exit(2);
		bool ok = auth_domain_is_local(child, "d599.example") &&
			auth_domain_add(child, "child.example", &error) == 0;
		auth_db_close(&child);
		_exit(ok ? 0 : 3);
	}
	char c;
	TEST_ASSERT(read(pipe_done[0], &c, 1) == 1);
	int failures = 0;
	for (int i = 0; i < 600; i++) {
		snprintf(name, sizeof(name), "d%d.example", i);
		if (auth_domain_add(db, name, &error) < 0)
			failures++;
	}
	TEST_ASSERT_INT(failures, 0);
	TEST_ASSERT(write(pipe_go[1], "g", 1) == 1);
	int status;
	waitpid(pid, &status, 0);
	TEST_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	TEST_ASSERT(auth_domain_is_local(db, "child.example"));
	TEST_ASSERT(auth_domain_is_local(db, "d0.example"));
	TEST_ASSERT_INT(auth_db_reader_check(db), 0);
	struct stat st;
	snprintf(name, sizeof(name), "/accounts.lmdb");
	char path[600];
	snprintf(path, sizeof(path), "%s%s", dir, name);
	TEST_ASSERT(stat(path, &st) == 0 && st.st_size > 32 * 1024);   /* it grew */
	auth_db_close(&db);
}

/* RFC 7677 section 3 (SCRAM-SHA-256) and RFC 5802 section 5 (SCRAM-SHA-1):
 * user "user", password "pencil". */
static void test_scram_vector(void)
{
	unsigned char salt[32];
	char secret[AUTH_SCRAM_SECRET_MAX];
	size_t salt_len = b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", salt);
	TEST_ASSERT_INT(auth_scram_secret(true, "pencil", salt, salt_len, 4096,
					  secret, sizeof(secret)), 0);
	TEST_ASSERT_STR(secret, "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
			"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
			"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
	check_exchange(EVP_sha256(), secret,
		"n=user,r=rOprNGfwEbeRWgbNEkqO,"
		"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
		"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		"dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");

	salt_len = b64_decode("QSXCR+Q6sek8bf92", salt);
	TEST_ASSERT_INT(auth_scram_secret(false, "pencil", salt, salt_len, 4096,
					  secret, sizeof(secret)), 0);
	TEST_ASSERT_STR(secret, "SCRAM-SHA-1$4096:QSXCR+Q6sek8bf92$"
			"6dlGYMOdZcOPutkcNY8U2g7vK9Y=:D+CSWLOshSulAsxiupA+qs2/fTE=");
	check_exchange(EVP_sha1(), secret,
		"n=user,r=fyko+d2lbbFgONRv9qkxdawL,"
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,"
		"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
		"v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "rmF9pqV8S7suAoZWja4dJRkFsKQ=");
}

int main(void)
{
	test_run("domains", test_domains);
	test_run("users", test_users);
	test_run("aliases", test_aliases);
	test_run("reopen", test_reopen);
	test_run("map_growth", test_map_growth);
	test_run("reader_check", test_reader_check);
	test_run("scram_vector", test_scram_vector);
	return test_end();
}

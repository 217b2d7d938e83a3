#ifndef POSTERN_AUTH_H
#define POSTERN_AUTH_H

/* auth: accounts (domains, users, aliases) in DATA/accounts.lmdb, the one
 * SASL server (Cyrus libsasl2, configured in-process) shared by SMTP, POP3
 * and IMAP, and login throttling shared by every worker process.
 *
 * Addresses: the domain is lowercased and turned into its IDNA A-label;
 * the local part keeps the case it was given (the "display" form) and is
 * compared case-insensitively (lookups use a lowercased key).
 *
 * Process rules (LMDB): open the database after fork(), once per process;
 * call auth_sasl_init() once per process, after fork(), after dropping
 * privileges. Everything here is single-threaded. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/config.h"

/* ---- addresses ---------------------------------------------------- */

#define AUTH_LOCAL_MAX 64      /* RFC 5321 4.5.3.1.1 */
#define AUTH_DOMAIN_MAX 255    /* RFC 5321 4.5.3.1.2 */
#define AUTH_ADDRESS_MAX 254   /* RFC 5321 path limit minus "<>" */

struct auth_address {
	char local[AUTH_LOCAL_MAX + 3];       /* as given (quoted form kept) */
	char domain[AUTH_DOMAIN_MAX + 1];     /* lowercased A-label */
	char address[AUTH_ADDRESS_MAX + 3];   /* local@domain, display form */
	char key[AUTH_ADDRESS_MAX + 3];       /* lowercased lookup key */
};

/* Parses an RFC 5321 Mailbox (dot-atom or quoted-string local part, UTF-8
 * allowed as in RFC 6531; a domain name: address literals are refused)
 * and normalises it. Returns 0, or -1 with a message. */
int auth_address_parse(const char *text, struct auth_address *addr_r,
		       const char **error_r);
/* Normalises a domain name (lowercase, IDNA A-label, syntax). dst must
 * hold AUTH_DOMAIN_MAX + 1 bytes. */
int auth_domain_normalise(const char *text, char *dst, const char **error_r);

/* ---- the account database ----------------------------------------- */

struct auth_db;

#define AUTH_SCRAM_SECRET_MAX 256

struct auth_user {
	char address[AUTH_ADDRESS_MAX + 3];   /* display form */
	char key[AUTH_ADDRESS_MAX + 3];       /* lowercased lookup key */
	char hash[384];                       /* yescrypt "$y$..." */
	char scram_sha256[AUTH_SCRAM_SECRET_MAX]; /* Cyrus authPassword form */
	char scram_sha1[AUTH_SCRAM_SECRET_MAX];
	uint64_t quota;                       /* bytes, 0 = none */
	uint64_t quota_messages;              /* messages, 0 = none */
	bool enabled;
	time_t created;
};

/* A resolved recipient: a local user (its canonical address) or a remote
 * address to relay to. */
struct auth_recipient {
	char *address;
	bool local;
};

struct auth_recipients {
	struct auth_recipient *items;
	size_t count;
};

void auth_recipients_free(struct auth_recipients *list);

/* Opens (creating when missing) DATA/accounts.lmdb; files created are
 * given to run_as when running as root. */
int auth_db_open(const char *data_dir, const char *run_as,
		 struct auth_db **db_r, const char **error_r);
void auth_db_close(struct auth_db **db);
/* Clears reader slots left by dead processes in accounts.lmdb and, when
 * auth_sasl_init() ran in this process, throttle.lmdb (mdb_reader_check).
 * For a periodic timer in some long-lived process. Returns the number of
 * slots cleared. */
int auth_db_reader_check(struct auth_db *db);

/* Lookups: 1 found, 0 not found, -1 database error (error logged). */
int auth_user_lookup(struct auth_db *db, const char *address,
		     struct auth_user *user_r);
bool auth_domain_is_local(struct auth_db *db, const char *domain);
/* Expands address into local users and remote addresses: a user is
 * itself; an alias is expanded recursively (a catch-all "@domain" alias
 * answers for unknown local parts of its domain); an address in a
 * non-local domain is remote. Returns 1 with the list, 0 when the address
 * is local but unknown (or expands to nothing), -1 on bad syntax, an
 * alias loop or a database error (message in error_r). */
int auth_resolve_recipient(struct auth_db *db, const char *address,
			   struct auth_recipients *list_r, const char **error_r);
/* May user (a canonical address) send as address? Its own address, or an
 * alias that expands to user. */
bool auth_sender_allowed(struct auth_db *db, const char *user, const char *address);

/* Administration (the CLI). All return 0, or -1 with a one-line message
 * fit for the admin ("unknown domain 'x'", "user 'a@b' exists", ...).
 * Messages may live in db: use them before the next call on db or
 * auth_db_close(). */
struct auth_domain_info {
	char name[AUTH_DOMAIN_MAX + 1];
	time_t created;
};

struct auth_alias_info {
	char alias[AUTH_ADDRESS_MAX + 3];     /* "local@domain" or "@domain" */
	char targets[4096];                   /* comma-separated */
};

int auth_domain_add(struct auth_db *db, const char *domain, const char **error_r);
/* Refuses while users or aliases remain in the domain unless force, which
 * deletes them with it. */
int auth_domain_del(struct auth_db *db, const char *domain, bool force,
		    const char **error_r);
/* Calls fn for every domain in order; fn returns 0 to go on. */
int auth_domain_list(struct auth_db *db,
		     int (*fn)(const struct auth_domain_info *info, void *ctx),
		     void *ctx, const char **error_r);

int auth_user_add(struct auth_db *db, const char *address, const char *password,
		  uint64_t quota, bool enabled, const char **error_r);
int auth_user_del(struct auth_db *db, const char *address, const char **error_r);
int auth_user_set_password(struct auth_db *db, const char *address,
			   const char *password, const char **error_r);
int auth_user_set_enabled(struct auth_db *db, const char *address, bool enabled,
			  const char **error_r);
int auth_user_set_quota(struct auth_db *db, const char *address, uint64_t quota,
			const char **error_r);
/* The limit on the number of messages (0 = none). */
int auth_user_set_quota_messages(struct auth_db *db, const char *address, uint64_t messages,
				 const char **error_r);
/* Every user, or those of domain when it is not NULL, in key order. */
int auth_user_list(struct auth_db *db, const char *domain,
		   int (*fn)(const struct auth_user *user, void *ctx),
		   void *ctx, const char **error_r);

/* targets: comma-separated addresses. Refuses an alias that is an existing
 * user, an unknown local target and a loop. */
int auth_alias_add(struct auth_db *db, const char *alias, const char *targets,
		   const char **error_r);
int auth_alias_del(struct auth_db *db, const char *alias, const char **error_r);
int auth_alias_list(struct auth_db *db,
		    int (*fn)(const struct auth_alias_info *info, void *ctx),
		    void *ctx, const char **error_r);

/* ---- passwords ---------------------------------------------------- */

#define AUTH_SCRAM_ITERATIONS 16384   /* Cyrus clients refuse > 65536 */

/* yescrypt hash of password into hash_r (CRYPT_OUTPUT_SIZE bytes). */
int auth_password_hash(const char *password, char *hash_r, size_t size,
		       const char **error_r);
/* Constant-time verification against a crypt hash. */
bool auth_password_verify(const char *password, const char *hash);
/* The SCRAM secret in Cyrus' authPassword form,
 * "SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>".
 * sha256 false selects SCRAM-SHA-1. */
int auth_scram_secret(bool sha256, const char *password, const unsigned char *salt,
		      size_t salt_len, unsigned iterations, char *dst, size_t size);

/* ---- the SASL server ---------------------------------------------- */

/* Process-wide: after fork, once per process. Keeps cfg and db. */
int auth_sasl_init(const struct config *cfg, struct auth_db *db, const char **error_r);
void auth_sasl_deinit(void);
/* Tests: replace the clock used by throttling (NULL restores time()). */
void auth_set_clock(time_t (*now_fn)(void));
/* Tests: how many password hashes were computed inside a call (not ahead
 * in a thread, see auth_login_async()). */
unsigned auth_hashes_inline(void);

struct auth_conn_info {
	const char *service;       /* "smtp" "imap" "pop" */
	const char *local_ip;
	int local_port;
	const char *remote_ip;
	int remote_port;
	bool tls;
	bool loopback;
	/* Optional: RFC 9266 tls-exporter keying material, asked for once TLS
	 * is up (the first listing or exchange after the handshake): -1 when
	 * there is none yet. With it, SCRAM-*-PLUS are offered. */
	int (*tls_exporter)(void *ctx, unsigned char *out, size_t len);
	void *tls_exporter_ctx;
};

struct auth_session;

struct auth_session *auth_session_new(const struct auth_conn_info *info);
void auth_session_free(struct auth_session **s);
/* After STARTTLS: plaintext mechanisms become available. */
void auth_session_set_tls(struct auth_session *s);
/* Optional, after the TLS handshake: channel binding data, which adds
 * SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS to the mechanisms. type is the
 * RFC 5056 name, e.g. "tls-exporter" (RFC 9266: 32 bytes from
 * SSL_export_keying_material(ssl, out, 32, "EXPORTER-Channel-Binding", 24,
 * NULL, 0, 0), for TLS 1.3 or TLS 1.2 with extended master secret). At
 * most 64 bytes. */
void auth_session_set_channel_binding(struct auth_session *s, const char *type,
				      const unsigned char *data, size_t len);
/* [auth] plaintext policy against this connection's TLS/loopback state.
 * When false the protocol gives its "encryption required" reply and
 * advertises no mechanism. */
bool auth_plaintext_allowed(const struct auth_session *s);
/* Space-separated mechanism names offered now, "" when none. */
const char *auth_mechanisms(struct auth_session *s);

enum auth_result {
	AUTH_CONTINUE,   /* send *challenge_b64_r and wait for a response */
	AUTH_OK,         /* logged in as auth_username() */
	AUTH_FAILED,     /* every credential failure, whatever the cause */
	AUTH_MALFORMED,  /* the client sent invalid base64 */
	AUTH_CANCELLED,  /* the client sent "*" */
	AUTH_NOMECH,     /* unknown or not offered now (see plaintext_allowed) */
	AUTH_TEMPFAIL,   /* our side failed (database) */
};

/* initial_b64: the initial response as on the wire (NULL when absent, "="
 * for an empty one). challenge_b64_r: base64 text to send with a
 * continuation (valid until the next call). SCRAM's success-with-data is
 * hidden: CONTINUE with the server-final message, then OK on the client's
 * empty response. */
enum auth_result auth_start(struct auth_session *s, const char *mech,
			    const char *initial_b64, const char **challenge_b64_r);
/* "*" cancels. */
enum auth_result auth_step(struct auth_session *s, const char *response_b64,
			   const char **challenge_b64_r);
/* USER/PASS and IMAP LOGIN, through the same SASL path (PLAIN inside). */
enum auth_result auth_login(struct auth_session *s, const char *user,
			    const char *password);
/* The same three calls without hashing a password on the event loop: a
 * password check they would make (PLAIN, LOGIN, USER/PASS) runs first in
 * one of o's threads (core/offload.h), then the call runs on the loop
 * with its answer and cb(ctx, result, challenge_b64) follows. Throttling,
 * the account's state and the SASL exchange are all decided on the loop,
 * as in the plain calls; only crypt_r moves. Without o, or with no
 * password to check, cb is called before the function returns. An answer
 * that throttling delays (auth_reply_delay_ms) comes only after the
 * delay, on o's loop, so protocols never time replies themselves. One
 * call at a time per session; auth_session_free() while one waits is
 * fine (cb is then never called). */
struct offload;
typedef void auth_done_fn(void *ctx, enum auth_result result, const char *challenge_b64);
void auth_login_async(struct auth_session *s, struct offload *o, const char *user,
		      const char *password, auth_done_fn *cb, void *ctx);
void auth_start_async(struct auth_session *s, struct offload *o, const char *mech,
		      const char *initial_b64, auth_done_fn *cb, void *ctx);
void auth_step_async(struct auth_session *s, struct offload *o, const char *response_b64,
		     auth_done_fn *cb, void *ctx);
/* Ends an exchange in progress (nothing is answered). */
void auth_cancel(struct auth_session *s);
/* The canonical address after AUTH_OK, else NULL. */
const char *auth_username(const struct auth_session *s);
/* The delay throttling set for the last answer (0 = none). The *_async
 * calls wait it out themselves before calling back (the one failure
 * delay of every protocol); the plain calls only report it. */
unsigned auth_reply_delay_ms(const struct auth_session *s);


/* ---- the auth process ----------------------------------------------
 * One process, started and supervised by the master, alone opens
 * accounts.lmdb, the throttle counters and the server secret, and runs
 * the SASL server with its hashing threads (docs/security.md). Workers
 * and the relay reach it over two socketpairs each that the master made:
 * one for lookups (quick synchronous round trips), one for sessions. */

/* In a worker or the relay, after the fork and the privilege drop,
 * instead of auth_db_open() and auth_sasl_init(): db_r answers
 * auth_user_lookup(), auth_domain_is_local(), auth_resolve_recipient()
 * and auth_sender_allowed() (never a hash: the user's hash fields are
 * empty), and auth_session_* ask the auth process. Only the *_async
 * calls work on such sessions. Takes the descriptors over. */
int auth_client_open(const struct config *cfg, int sync_fd, int async_fd,
		     struct auth_db **db_r, const char **error_r);
void auth_client_close(void);

/* The auth process, after the fork and the privilege drop: opens what it
 * holds, then serves until SIGTERM. ctl_fd is the master's control
 * socket: it hands over the socket ends of each worker and the relay
 * (auth_service_attach) and says when one is gone. prepare, when not
 * NULL, runs once everything is open and before serving (the sandbox);
 * -1 is fatal. Returns the exit status. */
int auth_service_main(const struct config *cfg, int ctl_fd,
		      int (*prepare)(const struct config *cfg, const char **error_r));

#endif

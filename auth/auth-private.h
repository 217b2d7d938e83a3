#ifndef POSTERN_AUTH_PRIVATE_H
#define POSTERN_AUTH_PRIVATE_H

/* Shared between the files of auth/ only. */

#include "auth/auth.h"

#include "core/lmdb-env.h"

#define AUTH_SCRAM_SALT_LEN 16
#define AUTH_SCRAM_SALT_MAX 64

int auth_scram_keys(bool sha256, const char *password, const unsigned char *salt,
		    size_t salt_len, unsigned iterations,
		    unsigned char *stored_key_r, unsigned char *server_key_r);
int auth_scram_format(bool sha256, unsigned iterations, const unsigned char *salt,
		      size_t salt_len, const unsigned char *stored_key,
		      const unsigned char *server_key, char *dst, size_t size);


/* auth_db_open with another initial map size (tests: growing the map). */
int auth_db_open_sized(const char *data_dir, const char *run_as, size_t mapsize,
		       struct auth_db **db_r, const char **error_r);

/* DATA/auth-secret: 32 random bytes, created 0600 on first use. */
#define AUTH_SECRET_LEN 32
int auth_secret_load(const char *data_dir, const char *run_as,
		     unsigned char secret_r[AUTH_SECRET_LEN], const char **error_r);

/* Throttling state in DATA/throttle.lmdb, shared by all processes. */
struct throttle;

struct throttle_policy {
	int delay_after;      /* failures before replies slow down */
	int block_after;      /* failures before refusing */
	int block_time;       /* seconds */
};

int throttle_open(const char *data_dir, const char *run_as,
		  const struct throttle_policy *policy, struct throttle **t_r,
		  const char **error_r);
void throttle_close(struct throttle **t);
int throttle_reader_check(struct throttle *t);
/* The throttle of auth_sasl_init(), or NULL. */
struct throttle *auth_sasl_throttle(void);
/* key: "ip:SOURCE", "pair:ACCOUNT|SOURCE", "user:ACCOUNT", "ok:ACCOUNT|SOURCE". */
bool throttle_is_blocked(struct throttle *t, const char *key, time_t now);
/* Records a failure; returns the reply delay in milliseconds. Reaching
 * block_after blocks the key for block_time. */
unsigned throttle_fail(struct throttle *t, const char *key, time_t now);
/* The same, blocking only when may_block (an account's own count only
 * ever slows down: strangers must not lock it out). */
unsigned throttle_count_failure(struct throttle *t, const char *key, time_t now,
				bool may_block);
/* Notes that key happened at now (a source that logged in to an account),
 * and asks whether it did at or after since. */
void throttle_note(struct throttle *t, const char *key, time_t now);
bool throttle_noted_since(struct throttle *t, const char *key, time_t since);
/* Forgets a key's failures (after a success). */
void throttle_clear(struct throttle *t, const char *key);
/* Reply delay for a key's current count, without recording anything. */
unsigned throttle_delay_ms(struct throttle *t, const char *key, time_t now);


/* ---- the SASL server itself (sasl.c) --------------------------------
 * What the public auth_session_* calls do in a process that holds the
 * database (the auth process, the CLI, the unit tests); a worker's
 * sessions ask the auth process instead (client.c). */
struct asrv_session;
struct offload;

struct asrv_session *asrv_session_new(const struct auth_conn_info *info);
void asrv_session_free(struct asrv_session **s);
void asrv_session_set_tls(struct asrv_session *s);
void asrv_session_set_channel_binding(struct asrv_session *s, const char *type,
				      const unsigned char *data, size_t len);
bool asrv_plaintext_allowed(const struct asrv_session *s);
const char *asrv_mechanisms(struct asrv_session *s);
enum auth_result asrv_start(struct asrv_session *s, const char *mech,
			    const char *initial_b64, const char **challenge_b64_r);
enum auth_result asrv_step(struct asrv_session *s, const char *response_b64,
			   const char **challenge_b64_r);
enum auth_result asrv_login(struct asrv_session *s, const char *user, const char *password);
void asrv_login_async(struct asrv_session *s, struct offload *o, const char *user,
		      const char *password, auth_done_fn *cb, void *ctx);
void asrv_start_async(struct asrv_session *s, struct offload *o, const char *mech,
		      const char *initial_b64, auth_done_fn *cb, void *ctx);
void asrv_step_async(struct asrv_session *s, struct offload *o, const char *response_b64,
		     auth_done_fn *cb, void *ctx);
const char *asrv_username(const struct asrv_session *s);
unsigned asrv_reply_delay_ms(const struct asrv_session *s);

/* [auth] plaintext for a connection with these properties. */
bool auth_plaintext_policy(const struct config *cfg, bool tls, bool loopback);

/* ---- a worker's link to the auth process (client.c) ----------------- */
struct auth_client;
/* The process-wide client, when auth_client_open() ran in this process. */
struct auth_client *auth_client_get(void);
int auth_client_user_lookup(struct auth_client *cl, const char *address,
			    struct auth_user *user_r);
int auth_client_domain_is_local(struct auth_client *cl, const char *domain);
int auth_client_resolve(struct auth_client *cl, const char *address,
			struct auth_recipients *list_r, const char **error_r);
int auth_client_sender_allowed(struct auth_client *cl, const char *user,
			       const char *address);
/* The auth_db a worker gets: lookups only, each a round trip. */
struct auth_db *auth_db_remote_new(struct auth_client *cl);
struct auth_client *auth_db_client(const struct auth_db *db);

#endif

/* The one SASL server, on Cyrus libsasl2, configured entirely in-process:
 *
 * - SASL_CB_GETOPT pins mech_list, auxprop_plugin and pwcheck_method, so
 *   no /etc/sasl2/postern.conf is read (SASL_CB_VERIFYFILE refuses config
 *   files anyway, and every plugin but scram, plain and login);
 * - PLAIN and LOGIN end in SASL_CB_SERVER_USERDB_CHECKPASS, which checks
 *   the yescrypt hash;
 * - SCRAM-SHA-256/-1 read "*authPassword" from our own auxprop plugin,
 *   which answers the secrets stored at set-password time (never
 *   "*userPassword", so no clear password is involved);
 * - unknown and disabled users take the same path: a dummy crypt_r for
 *   PLAIN/LOGIN, and for SCRAM a decoy secret derived from
 *   HMAC(server secret, username) that is stable per name, so neither
 *   timing nor the exchange reveals which accounts exist.
 *
 * libsasl2 keeps process-wide state, so this module does too (struct
 * auth_server below), set once by auth_sasl_init(). */
#include "auth/auth.h"
#include "auth/auth-private.h"
#include "core/core.h"
#include "core/metrics.h"
#include "core/offload.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sasl/sasl.h>
#include <sasl/saslplug.h>
#include <sasl/saslutil.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef AUTH_SASL_PLUGIN_DIR
#define AUTH_SASL_PLUGIN_DIR "/usr/lib/x86_64-linux-gnu/sasl2"
#endif

/* The -PLUS variants are offered only on connections that were given
 * channel binding data (asrv_session_set_channel_binding). */
#define MECH_LIST "PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-1 SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS"
#define CBIND_MAX 64
#define AUXPROP_NAME "postern"
#define AUTH_PASSWORD_PROP "*authPassword"
#define CREDENTIAL_MAX 1024     /* longer user names or passwords fail */
#define RESPONSE_MAX 16384      /* decoded size of one client response */

struct auth_server {
	bool initialised;
	const struct config *cfg;
	struct auth_db *db;
	struct throttle *throttle;
	unsigned char secret[AUTH_SECRET_LEN];
	char dummy_hash[CRYPT_OUTPUT_SIZE];
	time_t (*now)(void);
	bool db_failed;          /* a lookup failed during the current call */
	unsigned hashes_inline;  /* crypt_r calls cb_checkpass() made itself */
};

static struct auth_server server;

enum session_state { SESSION_IDLE, SESSION_EXCHANGE, SESSION_DONE };

struct asrv_session {
	char *service;
	char *remote_ip;
	char local_port[128];     /* "ip;port" as libsasl2 wants it */
	char remote_port[128];
	bool tls;
	bool loopback;
	char cbind_name[32];          /* "" when no channel binding */
	unsigned char cbind_data[CBIND_MAX];
	sasl_channel_binding_t cbind;
	int (*tls_exporter)(void *ctx, unsigned char *out, size_t len);
	void *tls_exporter_ctx;
	sasl_conn_t *conn;
	sasl_callback_t callbacks[3];
	enum session_state state;
	char mech[32];
	bool login_user_next;                    /* LOGIN: the next response is the name */
	char attempted[AUTH_ADDRESS_MAX + 3];   /* authid being tried, canonical */
	char *username;                          /* after AUTH_OK */
	unsigned delay_ms;
	char mechs[256];
	struct buf out;                          /* base64 challenge */
	char *login_name;                        /* LOGIN: the name given, for the check */
	struct auth_check *check;                /* for the call in progress */
	struct offload_job *job;                 /* its hashing, when in another thread */
	struct event *delay_ev;                  /* an answer held back by throttling */
	enum auth_result delayed_result;
	auth_done_fn *delayed_cb;
	void *delayed_ctx;
	const char *delayed_log_ctx;
};

/* A password check made ahead of the call that needs it (see the async
 * calls below): the canonical user, the exact password bytes and the hash
 * they were checked against. */
struct auth_check {
	char user[AUTH_ADDRESS_MAX * 4 + 1];
	char *password;
	size_t password_len;
	char hash[CRYPT_OUTPUT_SIZE];
	bool match;
};

static void check_free(struct auth_check *c)
{
	if (c == NULL)
		return;
	if (c->password != NULL) {
		OPENSSL_cleanse(c->password, c->password_len);
		free(c->password);
	}
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

static time_t auth_now(void)
{
	return server.now != NULL ? server.now() : time(NULL);
}

struct throttle *auth_sasl_throttle(void)
{
	return server.initialised ? server.throttle : NULL;
}

unsigned auth_hashes_inline(void)
{
	return server.hashes_inline;
}

void auth_set_clock(time_t (*now_fn)(void))
{
	server.now = now_fn;
}

/* ---- global callbacks --------------------------------------------- */

static int cb_getopt(void *context, const char *plugin_name, const char *option,
		     const char **result, unsigned *len)
{
	const char *value = NULL;
	if (strcmp(option, "mech_list") == 0)
		value = MECH_LIST;
	else if (strcmp(option, "auxprop_plugin") == 0)
		value = AUXPROP_NAME;
	else if (strcmp(option, "pwcheck_method") == 0)
		value = "auxprop";
	if (value == NULL)
		return SASL_FAIL;
	*result = value;
	if (len != NULL)
		*len = (unsigned)strlen(value);
	return SASL_OK;
}

static int cb_verifyfile(void *context, const char *file, sasl_verify_type_t type)
{
	static const char *const allowed[] = { "libscram.so", "libplain.so", "liblogin.so" };
	if (type != SASL_VRFY_PLUGIN)
		return SASL_CONTINUE;     /* no config files, no password files */
	const char *base = strrchr(file, '/');
	base = base != NULL ? base + 1 : file;
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		if (strcmp(base, allowed[i]) == 0)
			return SASL_OK;
	}
	return SASL_CONTINUE;
}

static int cb_getpath(void *context, const char **path)
{
	*path = AUTH_SASL_PLUGIN_DIR;
	return SASL_OK;
}

static int cb_log(void *context, int level, const char *message)
{
	char text[512];
	log_sanitize(text, sizeof(text), message, strlen(message));
	if (level <= SASL_LOG_ERR)
		log_warn("event=sasl-log message=\"%s\"", text);
	else
		log_debug("event=sasl-log message=\"%s\"", text);
	return SASL_OK;
}

/* through void (*)(void), the cast GCC accepts for any function type */
#define SASL_CB(fn) ((sasl_callback_ft)(void (*)(void))(fn))

static const sasl_callback_t global_callbacks[] = {
	{ SASL_CB_GETOPT, SASL_CB(cb_getopt), NULL },
	{ SASL_CB_VERIFYFILE, SASL_CB(cb_verifyfile), NULL },
	{ SASL_CB_GETPATH, SASL_CB(cb_getpath), NULL },
	{ SASL_CB_LOG, SASL_CB(cb_log), NULL },
	{ SASL_CB_LIST_END, NULL, NULL },
};

/* ---- credentials -------------------------------------------------- */

/* Looks a canonical user up for a credential check: the record when it
 * exists and is enabled, false otherwise (unknown and disabled alike). */
static bool usable_user(const char *name, struct auth_user *user_r)
{
	int found = auth_user_lookup(server.db, name, user_r);
	if (found < 0)
		server.db_failed = true;
	return found > 0 && user_r->enabled;
}

/* The check made ahead for exactly this user, password and hash, if any
 * (consumed either way). */
static bool check_answers(struct asrv_session *s, const char *user, const char *pass,
			  unsigned passlen, const char *hash, bool *match_r)
{
	struct auth_check *c = s->check;
	s->check = NULL;
	bool fits = c != NULL && strcmp(c->user, user) == 0 && c->password_len == passlen &&
		    CRYPTO_memcmp(c->password, pass, passlen) == 0 && strcmp(c->hash, hash) == 0;
	if (fits)
		*match_r = c->match;
	check_free(c);
	return fits;
}

static int cb_checkpass(sasl_conn_t *conn, void *context, const char *user,
			const char *pass, unsigned passlen, struct propctx *propctx)
{
	struct asrv_session *s = context;
	struct auth_user record;
	bool usable = usable_user(user, &record);
	bool clean = passlen < CREDENTIAL_MAX && memchr(pass, '\0', passlen) == NULL;
	const char *hash = usable ? record.hash : server.dummy_hash;
	bool match;
	/* always one crypt_r (here or ahead in a thread), so that timing
	 * says nothing about the user */
	if (!check_answers(s, user, pass, passlen, hash, &match)) {
		server.hashes_inline++;
		char *copy = xstrndup(pass, passlen < CREDENTIAL_MAX ? passlen : CREDENTIAL_MAX);
		match = auth_password_verify(copy, hash);
		OPENSSL_cleanse(copy, strlen(copy));
		free(copy);
	}
	OPENSSL_cleanse(&record, sizeof(record));
	return usable && clean && match ? SASL_OK : SASL_BADAUTH;
}

static void lowercase_copy(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		len = size - 1;
	for (size_t i = 0; i < len; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] - 'A' + 'a') : src[i];
	dst[len] = '\0';
}

/* Canonical form: the lowercased normalised address. A name that is not
 * an address is passed on lowercased; it will simply not be found. False
 * when it does not fit out. */
static bool canonical_name(const char *in, size_t inlen, char *out, size_t size)
{
	struct auth_address addr;
	const char *error;
	if (inlen >= size)
		return false;
	/* a NUL cannot be in any account name; refusing here would make
	 * libsasl2 2.1.28's LOGIN plugin leak its copy of the name, so the
	 * name is kept unusable instead and fails like any unknown one */
	for (size_t i = 0; i < inlen; i++)
		out[i] = in[i] == '\0' ? '\x01' : in[i];
	out[inlen] = '\0';
	if (auth_address_parse(out, &addr, &error) == 0)
		snprintf(out, size, "%s", addr.key);
	else
		lowercase_copy(out, size, out, inlen);
	return true;
}

static int cb_canon_user(sasl_conn_t *conn, void *context, const char *in,
			 unsigned inlen, unsigned flags, const char *user_realm,
			 char *out, unsigned out_max, unsigned *out_len)
{
	struct asrv_session *s = context;
	char raw[AUTH_ADDRESS_MAX * 4 + 1];

	if (!canonical_name(in, inlen, raw, sizeof(raw)))
		return SASL_BADPROT;
	size_t len = strlen(raw);
	if (len >= out_max)
		return SASL_BUFOVER;
	memcpy(out, raw, len + 1);
	*out_len = (unsigned)len;
	if ((flags & SASL_CU_AUTHID) != 0) {
		size_t n = len < sizeof(s->attempted) ? len : sizeof(s->attempted) - 1;
		memcpy(s->attempted, raw, n);
		s->attempted[n] = '\0';
	}
	return SASL_OK;
}

/* ---- the auxprop plugin: SCRAM secrets ---------------------------- */

/* The decoy for a name without a usable account: stable per name, and
 * indistinguishable from a stored secret without the server secret. */
static void decoy_secret(bool sha256, const char *name, char *dst, size_t size)
{
	unsigned char salt[32], stored[32], server_key[32];   /* SHA-256 sized */
	unsigned int n;
	struct buf msg = BUF_INIT;
	static const char *const labels[] = { "salt", "stored", "server" };
	unsigned char *outs[] = { salt, stored, server_key };

	for (int i = 0; i < 3; i++) {
		buf_reset(&msg);
		buf_printf(&msg, "decoy %s %s", labels[i], sha256 ? "sha256" : "sha1");
		buf_append(&msg, "", 1);
		buf_append_str(&msg, name);
		HMAC(EVP_sha256(), server.secret, AUTH_SECRET_LEN,
		     (const unsigned char *)msg.data, msg.len, outs[i], &n);
	}
	buf_free(&msg);
	auth_scram_format(sha256, AUTH_SCRAM_ITERATIONS, salt, AUTH_SCRAM_SALT_LEN,
			  stored, server_key, dst, size);
}

static bool authpassword_requested(struct propctx *ctx, unsigned flags)
{
	const struct propval *vals = prop_get(ctx);
	for (; vals != NULL && vals->name != NULL; vals++) {
		if (strcmp(vals->name, AUTH_PASSWORD_PROP) != 0)
			continue;
		if (vals->values != NULL && (flags & SASL_AUXPROP_OVERRIDE) == 0)
			return false;
		return true;
	}
	return false;
}

static int auxprop_lookup(void *glob_context, sasl_server_params_t *sparams,
			  unsigned flags, const char *user, unsigned ulen)
{
	char name[AUTH_ADDRESS_MAX * 4 + 1];
	char secrets[2][AUTH_SCRAM_SECRET_MAX];
	struct auth_user record;

	/* only the authentication identity has secrets */
	if ((flags & SASL_AUXPROP_AUTHZID) != 0 ||
	    !authpassword_requested(sparams->propctx, flags))
		return SASL_OK;
	if (ulen >= sizeof(name))
		ulen = sizeof(name) - 1;
	memcpy(name, user, ulen);
	name[ulen] = '\0';
	if (usable_user(name, &record) && record.scram_sha256[0] != '\0') {
		memcpy(secrets[0], record.scram_sha256, sizeof(secrets[0]));
		memcpy(secrets[1], record.scram_sha1, sizeof(secrets[1]));
	} else {
		decoy_secret(true, name, secrets[0], sizeof(secrets[0]));
		decoy_secret(false, name, secrets[1], sizeof(secrets[1]));
	}
	OPENSSL_cleanse(&record, sizeof(record));
	sparams->utils->prop_erase(sparams->propctx, AUTH_PASSWORD_PROP);
	sparams->utils->prop_set(sparams->propctx, AUTH_PASSWORD_PROP, secrets[0], 0);
	if (secrets[1][0] != '\0')
		sparams->utils->prop_set(sparams->propctx, AUTH_PASSWORD_PROP, secrets[1], 0);
	return SASL_OK;
}

static sasl_auxprop_plug_t auxprop_plugin = {
	.features = 0,
	.glob_context = NULL,
	.auxprop_lookup = auxprop_lookup,
	.name = (char *)AUXPROP_NAME,
};

static int auxprop_init(const sasl_utils_t *utils, int max_version, int *out_version,
			sasl_auxprop_plug_t **plug, const char *plugname)
{
	if (max_version < SASL_AUXPROP_PLUG_VERSION)
		return SASL_BADVERS;
	*out_version = SASL_AUXPROP_PLUG_VERSION;
	*plug = &auxprop_plugin;
	return SASL_OK;
}

/* ---- init --------------------------------------------------------- */

int auth_sasl_init(const struct config *cfg, struct auth_db *db, const char **error_r)
{
	static char error[256];
	unsigned char random_pw[16];
	char pw_text[33];

	if (server.initialised) {
		*error_r = "SASL already initialised in this process";
		return -1;
	}
	server.cfg = cfg;
	server.db = db;
	if (auth_secret_load(cfg->data_dir, cfg->run_as, server.secret, error_r) < 0)
		return -1;
	struct throttle_policy policy = {
		cfg->auth_delay_after, cfg->auth_block_after, cfg->auth_block_time,
	};
	if (throttle_open(cfg->data_dir, cfg->run_as, &policy, &server.throttle, error_r) < 0)
		return -1;
	/* the hash unknown users are checked against: same cost as real ones */
	RAND_bytes(random_pw, sizeof(random_pw));
	for (size_t i = 0; i < sizeof(random_pw); i++)
		snprintf(pw_text + 2 * i, 3, "%02x", random_pw[i]);
	if (auth_password_hash(pw_text, server.dummy_hash, sizeof(server.dummy_hash),
			       error_r) < 0)
		goto fail;
	int rc = sasl_server_init(global_callbacks, "postern");
	if (rc != SASL_OK) {
		snprintf(error, sizeof(error), "sasl_server_init: %s",
			 sasl_errstring(rc, NULL, NULL));
		*error_r = error;
		goto fail;
	}
	rc = sasl_auxprop_add_plugin(AUXPROP_NAME, auxprop_init);
	if (rc != SASL_OK) {
		snprintf(error, sizeof(error), "sasl_auxprop_add_plugin: %s",
			 sasl_errstring(rc, NULL, NULL));
		*error_r = error;
		sasl_server_done();
		goto fail;
	}
	server.initialised = true;
	return 0;
fail:
	throttle_close(&server.throttle);
	return -1;
}

void auth_sasl_deinit(void)
{
	if (!server.initialised)
		return;
	sasl_server_done();
	throttle_close(&server.throttle);
	OPENSSL_cleanse(server.secret, sizeof(server.secret));
	server.initialised = false;
}

/* ---- sessions ----------------------------------------------------- */

static void session_dispose_conn(struct asrv_session *s)
{
	if (s->conn != NULL)
		sasl_dispose(&s->conn);
	s->conn = NULL;
	s->state = SESSION_IDLE;
}

bool auth_plaintext_policy(const struct config *cfg, bool tls, bool loopback)
{
	switch (cfg->auth_plaintext) {
	case PLAINTEXT_ALWAYS:
		return true;
	case PLAINTEXT_LOOPBACK:
		return tls || loopback;
	case PLAINTEXT_NEVER:
		break;
	}
	return tls;
}

bool asrv_plaintext_allowed(const struct asrv_session *s)
{
	return auth_plaintext_policy(server.cfg, s->tls, s->loopback);
}

/* A libsasl2 connection carrying this session's addresses, security
 * properties, TLS strength and channel binding. */
static sasl_conn_t *session_conn_create(struct asrv_session *s)
{
	sasl_conn_t *conn = NULL;
	int rc = sasl_server_new(s->service, server.cfg->hostname, NULL,
				 s->local_port[0] != '\0' ? s->local_port : NULL,
				 s->remote_port[0] != '\0' ? s->remote_port : NULL,
				 s->callbacks, 0, &conn);
	if (rc == SASL_BADPARAM) {
		/* libsasl2 refuses addresses it cannot parse; none of our
		 * mechanisms needs them */
		rc = sasl_server_new(s->service, server.cfg->hostname, NULL, NULL, NULL,
				     s->callbacks, 0, &conn);
	}
	if (rc != SASL_OK) {
		log_error("event=sasl-error call=sasl_server_new error=\"%s\"",
			  sasl_errstring(rc, NULL, NULL));
		return NULL;
	}
	sasl_security_properties_t props;
	memset(&props, 0, sizeof(props));
	props.security_flags = SASL_SEC_NOANONYMOUS;
	if (!asrv_plaintext_allowed(s))
		props.security_flags |= SASL_SEC_NOPLAINTEXT;
	sasl_setprop(conn, SASL_SEC_PROPS, &props);
	if (s->tls) {
		sasl_ssf_t ssf = 256;
		sasl_setprop(conn, SASL_SSF_EXTERNAL, &ssf);
	}
	if (s->cbind_name[0] != '\0')
		sasl_setprop(conn, SASL_CHANNEL_BINDING, &s->cbind);
	return conn;
}

/* A fresh libsasl2 connection for each exchange: nothing of a failed or
 * cancelled attempt carries over. */
static int session_new_conn(struct asrv_session *s)
{
	session_dispose_conn(s);
	s->conn = session_conn_create(s);
	return s->conn != NULL ? 0 : -1;
}

static void format_ipport(char *dst, size_t size, const char *ip, int port)
{
	struct in6_addr addr;
	dst[0] = '\0';
	if (ip != NULL && (inet_pton(AF_INET, ip, &addr) == 1 ||
			   inet_pton(AF_INET6, ip, &addr) == 1))
		snprintf(dst, size, "%s;%d", ip, port);
}

struct asrv_session *asrv_session_new(const struct auth_conn_info *info)
{
	struct asrv_session *s = xcalloc(1, sizeof(*s));
	s->service = xstrdup(info->service);
	s->remote_ip = xstrdup(info->remote_ip != NULL ? info->remote_ip : "");
	format_ipport(s->local_port, sizeof(s->local_port), info->local_ip, info->local_port);
	format_ipport(s->remote_port, sizeof(s->remote_port), info->remote_ip,
		      info->remote_port);
	s->tls = info->tls;
	s->loopback = info->loopback;
	s->tls_exporter = info->tls_exporter;
	s->tls_exporter_ctx = info->tls_exporter_ctx;
	s->callbacks[0] = (sasl_callback_t){ SASL_CB_CANON_USER, SASL_CB(cb_canon_user), s };
	s->callbacks[1] = (sasl_callback_t){ SASL_CB_SERVER_USERDB_CHECKPASS,
					     SASL_CB(cb_checkpass), s };
	s->callbacks[2] = (sasl_callback_t){ SASL_CB_LIST_END, NULL, NULL };
	buf_init(&s->out);
	return s;
}

void asrv_session_free(struct asrv_session **s)
{
	if (*s == NULL)
		return;
	session_dispose_conn(*s);
	/* a check still hashing is released when it is done */
	offload_cancel((*s)->job);
	if ((*s)->delay_ev != NULL)
		event_free((*s)->delay_ev);
	check_free((*s)->check);
	free((*s)->login_name);
	free((*s)->service);
	free((*s)->remote_ip);
	free((*s)->username);
	buf_free(&(*s)->out);
	free(*s);
	*s = NULL;
}

void asrv_session_set_tls(struct asrv_session *s)
{
	s->tls = true;
	session_dispose_conn(s);
}

void asrv_session_set_channel_binding(struct asrv_session *s, const char *type,
				      const unsigned char *data, size_t len)
{
	session_dispose_conn(s);
	if (type == NULL || len == 0 || len > CBIND_MAX ||
	    strlen(type) >= sizeof(s->cbind_name)) {
		s->cbind_name[0] = '\0';
		return;
	}
	snprintf(s->cbind_name, sizeof(s->cbind_name), "%s", type);
	memcpy(s->cbind_data, data, len);
	s->cbind = (sasl_channel_binding_t){ s->cbind_name, 0, len, s->cbind_data };
}

/* Channel binding from the connection's TLS, once it is up. */
static void session_fetch_channel_binding(struct asrv_session *s)
{
	unsigned char data[32];
	if (s->cbind_name[0] != '\0' || !s->tls || s->tls_exporter == NULL ||
	    s->tls_exporter(s->tls_exporter_ctx, data, sizeof(data)) < 0)
		return;
	asrv_session_set_channel_binding(s, "tls-exporter", data, sizeof(data));
	OPENSSL_cleanse(data, sizeof(data));
}

static bool is_plus_mech(const char *mech, size_t len)
{
	return len > 5 && ascii_strncasecmp(mech + len - 5, "-PLUS", 5) == 0;
}

static bool mech_listed(const struct buf *list, const char *mech, size_t len)
{
	for (size_t i = 0; i < list->len;) {
		size_t end = i;
		while (end < list->len && list->data[end] != ' ')
			end++;
		if (end - i == len && memcmp(list->data + i, mech, len) == 0)
			return true;
		i = end + 1;
	}
	return false;
}

/* Copies libsasl2's list, leaving out -PLUS mechanisms when there is no
 * channel binding to offer them with, and any name it lists twice
 * (libsasl2 2.1.28 lists SCRAM-SHA-1 once per plugin table entry). */
static void copy_mech_list(struct asrv_session *s, const char *list, unsigned len)
{
	struct buf out = BUF_INIT;
	for (unsigned i = 0; i < len;) {
		unsigned end = i;
		while (end < len && list[end] != ' ')
			end++;
		if (end > i && (s->cbind_name[0] != '\0' || !is_plus_mech(list + i, end - i)) &&
		    !mech_listed(&out, list + i, end - i)) {
			if (out.len > 0)
				buf_append_char(&out, ' ');
			buf_append(&out, list + i, end - i);
		}
		i = end + 1;
	}
	snprintf(s->mechs, sizeof(s->mechs), "%s", buf_str(&out));
	buf_free(&out);
}

const char *asrv_mechanisms(struct asrv_session *s)
{
	const char *list;
	unsigned len;
	int count;
	sasl_conn_t *conn;
	s->mechs[0] = '\0';
	if (s->conn == NULL)
		session_fetch_channel_binding(s);
	/* its own connection: an exchange in progress is left alone */
	if (!asrv_plaintext_allowed(s) || (conn = session_conn_create(s)) == NULL)
		return s->mechs;
	if (sasl_listmech(conn, NULL, "", " ", "", &list, &len, &count) == SASL_OK)
		copy_mech_list(s, list, len);
	sasl_dispose(&conn);
	return s->mechs;
}

const char *asrv_username(const struct asrv_session *s)
{
	return s->username;
}

unsigned asrv_reply_delay_ms(const struct asrv_session *s)
{
	return s->delay_ms;
}

/* ---- outcomes ----------------------------------------------------- */

/* Throttling (docs/accounts.md): a source's failures slow it down and
 * then block it, as do an account's failures from one source; an
 * account's failures from everywhere only slow down the sources that
 * have not logged in to it lately, and never block anyone, so no
 * stranger can lock an account out. */

#define KNOWN_SOURCE_SECS (30 * 86400)   /* a login makes a source known this long */

/* The source a client is counted as: its IPv4 address, or the /64 of
 * an IPv6 one (a single host commonly holds a whole /64). */
static void source_name(char *dst, size_t size, const char *ip)
{
	struct in6_addr a6;
	if (strchr(ip, ':') != NULL && inet_pton(AF_INET6, ip, &a6) == 1) {
		char text[INET6_ADDRSTRLEN];
		memset(a6.s6_addr + 8, 0, 8);
		inet_ntop(AF_INET6, &a6, text, sizeof(text));
		snprintf(dst, size, "%s/64", text);
		return;
	}
	snprintf(dst, size, "%s", ip);
}

struct throttle_keys {
	char source[INET6_ADDRSTRLEN + 16];               /* "ip:SRC" */
	char pair[AUTH_ADDRESS_MAX * 4 + 64];             /* "pair:USER|SRC" */
	char account[AUTH_ADDRESS_MAX * 4 + 16];          /* "user:USER" */
	char known[AUTH_ADDRESS_MAX * 4 + 64];            /* "ok:USER|SRC" */
};

/* user: the canonical (lowercased) account name, "" when not known yet. */
static void throttle_keys(const struct asrv_session *s, const char *user,
			  struct throttle_keys *k)
{
	char src[INET6_ADDRSTRLEN + 8];
	source_name(src, sizeof(src), s->remote_ip);
	snprintf(k->source, sizeof(k->source), "ip:%s", src);
	snprintf(k->pair, sizeof(k->pair), "pair:%s|%s", user, src);
	snprintf(k->account, sizeof(k->account), "user:%s", user);
	snprintf(k->known, sizeof(k->known), "ok:%s|%s", user, src);
}

static bool session_blocked(const struct asrv_session *s, const char *user)
{
	struct throttle_keys k;
	time_t now = auth_now();
	if (s->remote_ip[0] == '\0')
		return false;
	throttle_keys(s, user, &k);
	if (throttle_is_blocked(server.throttle, k.source, now))
		return true;
	return user[0] != '\0' && throttle_is_blocked(server.throttle, k.pair, now);
}

/* The account's delay, unless this source logged in to it lately. */
static unsigned account_delay(const struct throttle_keys *k, time_t now)
{
	if (throttle_noted_since(server.throttle, k->known, now - KNOWN_SOURCE_SECS))
		return 0;
	return throttle_delay_ms(server.throttle, k->account, now);
}

static unsigned max_delay(unsigned a, unsigned b)
{
	return a > b ? a : b;
}

/* Every failure ends here: one log line, counted per source, per
 * (account, source) and per account, and the reply delay they earn. */
static enum auth_result session_failed(struct asrv_session *s, const char *reason)
{
	char user[AUTH_ADDRESS_MAX + 3];
	struct throttle_keys k;
	time_t now = auth_now();
	unsigned delay = 0;

	log_sanitize(user, sizeof(user), s->attempted, strlen(s->attempted));
	log_info("event=auth-fail service=%s remote=%s user=\"%s\" mech=%s reason=%s",
		 s->service, s->remote_ip[0] != '\0' ? s->remote_ip : "-", user, s->mech,
		 reason);
	metrics_login(s->service, false);
	throttle_keys(s, s->attempted, &k);
	if (s->attempted[0] != '\0') {
		/* what the account had earned before this attempt */
		delay = account_delay(&k, now);
		throttle_count_failure(server.throttle, k.account, now, false);
	}
	if (s->remote_ip[0] != '\0') {
		delay = max_delay(delay, throttle_fail(server.throttle, k.source, now));
		if (s->attempted[0] != '\0')
			delay = max_delay(delay, throttle_fail(server.throttle, k.pair, now));
	}
	s->delay_ms = delay;
	session_dispose_conn(s);
	return AUTH_FAILED;
}

static enum auth_result session_succeeded(struct asrv_session *s)
{
	const void *name = NULL;
	struct auth_user record;
	struct throttle_keys k;
	time_t now = auth_now();

	if (sasl_getprop(s->conn, SASL_USERNAME, &name) != SASL_OK || name == NULL)
		return session_failed(s, "no-username");
	snprintf(s->attempted, sizeof(s->attempted), "%s", (const char *)name);
	/* the account may have been disabled or deleted meanwhile */
	if (!usable_user(s->attempted, &record)) {
		if (!server.db_failed)
			return session_failed(s, "unusable");
		session_dispose_conn(s);
		log_warn("event=auth-tempfail service=%s mech=%s", s->service, s->mech);
		return AUTH_TEMPFAIL;
	}
	if (session_blocked(s, record.key)) {
		OPENSSL_cleanse(&record, sizeof(record));
		return session_failed(s, "blocked");
	}
	free(s->username);
	s->username = xstrdup(record.address);
	OPENSSL_cleanse(&record, sizeof(record));
	char user[AUTH_ADDRESS_MAX + 3];
	log_sanitize(user, sizeof(user), s->username, strlen(s->username));
	log_info("event=auth-ok service=%s remote=%s user=\"%s\" mech=%s", s->service,
		 s->remote_ip[0] != '\0' ? s->remote_ip : "-", user, s->mech);
	metrics_login(s->service, true);
	/* a stranger waits out the account's delay even with the right
	 * password (else the delay would tell right from wrong); a source
	 * that logs in is known from now on and its own count starts over */
	throttle_keys(s, s->attempted, &k);
	s->delay_ms = s->remote_ip[0] != '\0' ? account_delay(&k, now) : 0;
	if (s->remote_ip[0] != '\0') {
		throttle_note(server.throttle, k.known, now);
		throttle_clear(server.throttle, k.pair);
	}
	s->state = SESSION_DONE;
	session_dispose_conn(s);
	return AUTH_OK;
}

/* Maps a libsasl2 result: every credential failure, whatever code Cyrus
 * picked for it (BADAUTH, NOUSER, BADPROT, NOMEM from SCRAM, ...), becomes
 * AUTH_FAILED. */
static enum auth_result session_result(struct asrv_session *s, int rc, const char *out,
				       unsigned outlen, const char **challenge_b64_r)
{
	switch (rc) {
	case SASL_CONTINUE: {
		unsigned cap = (outlen / 3 + 1) * 4 + 1, len = 0;
		buf_reset(&s->out);
		buf_reserve(&s->out, cap);
		if (sasl_encode64(out != NULL ? out : "", outlen, s->out.data, cap, &len) != SASL_OK)
			return session_failed(s, "encode");
		s->out.len = len;
		s->out.data[len] = '\0';
		*challenge_b64_r = s->out.data;
		s->state = SESSION_EXCHANGE;
		return AUTH_CONTINUE;
	}
	case SASL_OK:
		return session_succeeded(s);
	case SASL_NOMECH:
	case SASL_TOOWEAK:
	case SASL_ENCRYPT:
		session_dispose_conn(s);
		return AUTH_NOMECH;
	default:
		if (server.db_failed) {
			session_dispose_conn(s);
			log_warn("event=auth-tempfail service=%s mech=%s", s->service, s->mech);
			return AUTH_TEMPFAIL;
		}
		return session_failed(s, "credentials");
	}
}

/* Decodes a client response: "=" (initial responses only) is empty.
 * Returns the decoded length or -1. */
static int decode_response(const char *b64, char *dst, size_t size)
{
	unsigned len = 0;
	size_t in_len = strlen(b64);
	if (in_len == 0)
		return 0;
	if (in_len / 4 * 3 >= size)
		return -1;
	if (sasl_decode64(b64, (unsigned)in_len, dst, (unsigned)size, &len) != SASL_OK)
		return -1;
	return (int)len;
}

static bool mech_known(const char *mech)
{
	size_t len = strlen(mech);
	for (const char *p = MECH_LIST; *p != '\0';) {
		const char *end = strchr(p, ' ');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
		if (n == len && ascii_strncasecmp(p, mech, n) == 0)
			return true;
		p += n;
		while (*p == ' ')
			p++;
	}
	return false;
}

static void session_begin(struct asrv_session *s, const char *mech)
{
	free(s->username);
	s->username = NULL;
	free(s->login_name);
	s->login_name = NULL;
	s->attempted[0] = '\0';
	s->delay_ms = 0;
	server.db_failed = false;
	snprintf(s->mech, sizeof(s->mech), "%s", mech);
	for (char *p = s->mech; *p != '\0'; p++) {
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	}
}

static enum auth_result start_now(struct asrv_session *s, const char *mech,
				  const char *initial_b64, const char **challenge_b64_r)
{
	char *in = NULL;
	int in_len = 0;
	const char *out = NULL;
	unsigned out_len = 0;

	*challenge_b64_r = "";
	session_fetch_channel_binding(s);
	if (!asrv_plaintext_allowed(s) || !mech_known(mech) ||
	    (is_plus_mech(mech, strlen(mech)) && s->cbind_name[0] == '\0'))
		return AUTH_NOMECH;
	session_begin(s, mech);
	if (session_new_conn(s) < 0)
		return AUTH_TEMPFAIL;
	if (session_blocked(s, ""))
		return session_failed(s, "blocked");
	if (initial_b64 != NULL) {
		in = xmalloc(RESPONSE_MAX);
		in_len = strcmp(initial_b64, "=") == 0 ? 0 :
			decode_response(initial_b64, in, RESPONSE_MAX);
		if (in_len < 0 || (in_len == 0 && strcmp(initial_b64, "=") != 0)) {
			free(in);
			session_dispose_conn(s);
			return AUTH_MALFORMED;
		}
	}
	/* libsasl2 2.1.28's LOGIN plugin leaks an empty user name: an empty
	 * name is a failure anyway, so it never reaches the plugin */
	s->login_user_next = strcmp(s->mech, "LOGIN") == 0 && initial_b64 == NULL;
	if (strcmp(s->mech, "LOGIN") == 0 && initial_b64 != NULL && in_len == 0) {
		free(in);
		return session_failed(s, "credentials");
	}
	if (strcmp(s->mech, "LOGIN") == 0 && in_len > 0)
		s->login_name = xstrndup(in, (size_t)in_len);
	int rc = sasl_server_start(s->conn, s->mech, in, (unsigned)in_len, &out, &out_len);
	if (in != NULL) {
		OPENSSL_cleanse(in, RESPONSE_MAX);
		free(in);
	}
	return session_result(s, rc, out, out_len, challenge_b64_r);
}

static enum auth_result step_now(struct asrv_session *s, const char *response_b64,
				 const char **challenge_b64_r)
{
	const char *out = NULL;
	unsigned out_len = 0;

	*challenge_b64_r = "";
	if (s->state != SESSION_EXCHANGE || s->conn == NULL)
		return AUTH_MALFORMED;
	if (strcmp(response_b64, "*") == 0) {
		session_dispose_conn(s);
		return AUTH_CANCELLED;
	}
	char *in = xmalloc(RESPONSE_MAX);
	int in_len = decode_response(response_b64, in, RESPONSE_MAX);
	if (in_len < 0) {
		free(in);
		session_dispose_conn(s);
		return AUTH_MALFORMED;
	}
	if (s->login_user_next && in_len == 0) {
		free(in);
		return session_failed(s, "credentials");
	}
	if (s->login_user_next) {
		free(s->login_name);
		s->login_name = xstrndup(in, (size_t)in_len);
	}
	s->login_user_next = false;
	server.db_failed = false;
	int rc = sasl_server_step(s->conn, in, (unsigned)in_len, &out, &out_len);
	OPENSSL_cleanse(in, RESPONSE_MAX);
	free(in);
	return session_result(s, rc, out, out_len, challenge_b64_r);
}

static enum auth_result login_now(struct asrv_session *s, const char *user,
				  const char *password)
{
	const char *out = NULL;
	unsigned out_len = 0;
	size_t user_len = strlen(user), pass_len = strlen(password);

	if (!asrv_plaintext_allowed(s))
		return AUTH_NOMECH;
	session_begin(s, "PLAIN");
	if (session_new_conn(s) < 0)
		return AUTH_TEMPFAIL;
	if (session_blocked(s, ""))
		return session_failed(s, "blocked");
	if (user_len >= CREDENTIAL_MAX || pass_len >= CREDENTIAL_MAX || user_len == 0 ||
	    pass_len == 0) {
		lowercase_copy(s->attempted, sizeof(s->attempted), user, user_len);
		return session_failed(s, "credentials");
	}
	/* PLAIN's message: authzid NUL authcid NUL password */
	size_t len = 1 + user_len + 1 + pass_len;
	char *msg = xmalloc(len);
	msg[0] = '\0';
	memcpy(msg + 1, user, user_len);
	msg[1 + user_len] = '\0';
	memcpy(msg + 2 + user_len, password, pass_len);
	int rc = sasl_server_start(s->conn, "PLAIN", msg, (unsigned)len, &out, &out_len);
	OPENSSL_cleanse(msg, len);
	free(msg);
	if (rc == SASL_CONTINUE)
		return session_failed(s, "credentials");
	return session_result(s, rc, out, out_len, &out);
}

/* ---- the calls, now or with the password hashed in another thread ---- */

static enum auth_result drop_check(struct asrv_session *s, enum auth_result result)
{
	check_free(s->check);
	s->check = NULL;
	return result;
}

enum auth_result asrv_start(struct asrv_session *s, const char *mech,
			    const char *initial_b64, const char **challenge_b64_r)
{
	return drop_check(s, start_now(s, mech, initial_b64, challenge_b64_r));
}

enum auth_result asrv_step(struct asrv_session *s, const char *response_b64,
			   const char **challenge_b64_r)
{
	return drop_check(s, step_now(s, response_b64, challenge_b64_r));
}

enum auth_result asrv_login(struct asrv_session *s, const char *user, const char *password)
{
	return drop_check(s, login_now(s, user, password));
}

/* The check cb_checkpass() will make for user and password, or NULL when
 * the name cannot be an account's. */
static struct auth_check *check_new(const char *user, size_t user_len, const char *pass,
				    size_t pass_len)
{
	struct auth_check *c = xcalloc(1, sizeof(*c));
	if (user_len == 0 || !canonical_name(user, user_len, c->user, sizeof(c->user))) {
		free(c);
		return NULL;
	}
	struct auth_user record;
	bool usable = usable_user(c->user, &record);
	snprintf(c->hash, sizeof(c->hash), "%s", usable ? record.hash : server.dummy_hash);
	OPENSSL_cleanse(&record, sizeof(record));
	c->password = xmalloc(pass_len + 1);
	memcpy(c->password, pass, pass_len);
	c->password[pass_len] = '\0';
	c->password_len = pass_len;
	return c;
}

/* PLAIN's message, authzid NUL authcid NUL password, as base64. */
static struct auth_check *check_plain(const char *b64)
{
	char *in = xmalloc(RESPONSE_MAX);
	int len = decode_response(b64, in, RESPONSE_MAX);
	struct auth_check *c = NULL;
	const char *authcid = len > 0 ? memchr(in, '\0', (size_t)len) : NULL;
	const char *pass = authcid != NULL ?
		memchr(authcid + 1, '\0', (size_t)(in + len - (authcid + 1))) : NULL;
	if (pass != NULL) {
		authcid++;
		pass++;
		c = check_new(authcid, (size_t)(pass - 1 - authcid), pass,
			      (size_t)(in + len - pass));
	}
	OPENSSL_cleanse(in, RESPONSE_MAX);
	free(in);
	return c;
}

/* The password check the call would make, made ahead; NULL when it makes
 * none (no password in it, refused before any check). */
static struct auth_check *check_for_login(struct asrv_session *s, const char *user,
					  const char *password)
{
	size_t user_len = strlen(user), pass_len = strlen(password);
	if (!asrv_plaintext_allowed(s) || session_blocked(s, "") || user_len >= CREDENTIAL_MAX ||
	    pass_len == 0 || pass_len >= CREDENTIAL_MAX)
		return NULL;
	return check_new(user, user_len, password, pass_len);
}

static struct auth_check *check_for_start(struct asrv_session *s, const char *mech,
					  const char *initial_b64)
{
	if (initial_b64 == NULL || ascii_strcasecmp(mech, "PLAIN") != 0 ||
	    !asrv_plaintext_allowed(s) || session_blocked(s, ""))
		return NULL;
	return check_plain(initial_b64);
}

static struct auth_check *check_for_step(struct asrv_session *s, const char *response_b64)
{
	if (s->state != SESSION_EXCHANGE || s->conn == NULL || strcmp(response_b64, "*") == 0)
		return NULL;
	if (strcmp(s->mech, "PLAIN") == 0)
		return check_plain(response_b64);
	if (strcmp(s->mech, "LOGIN") != 0 || s->login_user_next || s->login_name == NULL)
		return NULL;
	char *in = xmalloc(RESPONSE_MAX);
	int len = decode_response(response_b64, in, RESPONSE_MAX);
	struct auth_check *c = len > 0 ?
		check_new(s->login_name, strlen(s->login_name), in, (size_t)len) : NULL;
	OPENSSL_cleanse(in, RESPONSE_MAX);
	free(in);
	return c;
}

enum pending_kind { PENDING_LOGIN, PENDING_START, PENDING_STEP };

/* One call waiting for its check: its arguments (secrets among them). */
struct auth_pending {
	enum pending_kind kind;
	char *args[2];
	struct auth_check *check;
	auth_done_fn *cb;
	void *ctx;
	struct event_base *base;   /* for a delayed answer, NULL: none */
};

static void pending_free(void *arg)
{
	struct auth_pending *p = arg;
	for (int i = 0; i < 2; i++) {
		if (p->args[i] != NULL) {
			OPENSSL_cleanse(p->args[i], strlen(p->args[i]));
			free(p->args[i]);
		}
	}
	check_free(p->check);
	free(p);
}

/* In a pool thread: the hash, and nothing else. As cb_checkpass() does,
 * at most CREDENTIAL_MAX bytes of the password are hashed. */
static void pending_work(void *arg)
{
	struct auth_check *c = ((struct auth_pending *)arg)->check;
	char *copy = xstrndup(c->password,
			      c->password_len < CREDENTIAL_MAX ? c->password_len : CREDENTIAL_MAX);
	c->match = auth_password_verify(copy, c->hash);
	OPENSSL_cleanse(copy, strlen(copy));
	free(copy);
}

static void delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct asrv_session *s = arg;
	auth_done_fn *cb = s->delayed_cb;
	const char *saved = log_get_context();
	s->delayed_cb = NULL;
	log_set_context(s->delayed_log_ctx);
	cb(s->delayed_ctx, s->delayed_result, "");
	log_set_context(saved);
}

/* The one place a throttled answer waits (for every protocol): the
 * callback comes after the delay throttling set, without blocking the
 * loop; the protocol reads nothing meanwhile, as for any pending call. */
static void pending_answer(struct asrv_session *s, struct event_base *base,
			   enum auth_result result, const char *challenge,
			   auth_done_fn *cb, void *ctx)
{
	unsigned ms = result == AUTH_OK || result == AUTH_FAILED ? s->delay_ms : 0;
	if (ms == 0 || base == NULL) {
		cb(ctx, result, challenge);
		return;
	}
	if (s->delay_ev == NULL && (s->delay_ev = evtimer_new(base, delay_done, s)) == NULL)
		fatal("event=evtimer-new-failed");
	s->delayed_result = result;
	s->delayed_cb = cb;
	s->delayed_ctx = ctx;
	s->delayed_log_ctx = log_get_context();
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(s->delay_ev, &tv);
}

/* Back on the loop: the call itself, with the check's answer. */
static void pending_done(void *ctx, void *arg)
{
	struct asrv_session *s = ctx;
	struct auth_pending *p = arg;
	const char *challenge = "";
	enum auth_result result = AUTH_TEMPFAIL;
	s->job = NULL;
	check_free(s->check);
	s->check = p->check;
	p->check = NULL;
	switch (p->kind) {
	case PENDING_LOGIN:
		result = asrv_login(s, p->args[0], p->args[1]);
		break;
	case PENDING_START:
		result = asrv_start(s, p->args[0], p->args[1], &challenge);
		break;
	case PENDING_STEP:
		result = asrv_step(s, p->args[0], &challenge);
		break;
	}
	auth_done_fn *cb = p->cb;
	void *cb_ctx = p->ctx;
	struct event_base *base = p->base;
	pending_free(p);
	pending_answer(s, base, result, challenge, cb, cb_ctx);
}

/* Hashes the call's password in one of o's threads when it checks one,
 * else makes the call now. */
static void pending_run(struct asrv_session *s, struct offload *o, enum pending_kind kind,
			const char *a, const char *b, auth_done_fn *cb, void *ctx)
{
	struct auth_pending *p = xcalloc(1, sizeof(*p));
	p->kind = kind;
	p->args[0] = a != NULL ? xstrdup(a) : NULL;
	p->args[1] = b != NULL ? xstrdup(b) : NULL;
	p->cb = cb;
	p->ctx = ctx;
	p->base = o != NULL ? offload_base(o) : NULL;
	if (s->delay_ev != NULL)
		event_del(s->delay_ev);
	if (s->job != NULL) {   /* the protocol waits for each call: not reached */
		offload_cancel(s->job);
		s->job = NULL;
	}
	if (o != NULL) {
		switch (kind) {
		case PENDING_LOGIN:
			p->check = check_for_login(s, a, b);
			break;
		case PENDING_START:
			p->check = check_for_start(s, a, b);
			break;
		case PENDING_STEP:
			p->check = check_for_step(s, a);
			break;
		}
	}
	if (p->check != NULL) {
		s->job = offload_submit(o, pending_work, pending_done, pending_free, p, s);
		return;
	}
	/* nothing to hash ahead (or no threads): the call now */
	pending_done(s, p);
}

void asrv_login_async(struct asrv_session *s, struct offload *o, const char *user,
		      const char *password, auth_done_fn *cb, void *ctx)
{
	pending_run(s, o, PENDING_LOGIN, user, password, cb, ctx);
}

void asrv_start_async(struct asrv_session *s, struct offload *o, const char *mech,
		      const char *initial_b64, auth_done_fn *cb, void *ctx)
{
	pending_run(s, o, PENDING_START, mech, initial_b64, cb, ctx);
}

void asrv_step_async(struct asrv_session *s, struct offload *o, const char *response_b64,
		     auth_done_fn *cb, void *ctx)
{
	pending_run(s, o, PENDING_STEP, response_b64, NULL, cb, ctx);
}

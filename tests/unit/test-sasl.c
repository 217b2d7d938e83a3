/* Full SASL exchanges in-process: a Cyrus client context talks base64 to
 * auth_start()/auth_step(), as a protocol would relay it. */
#include "test.h"
#include "auth/auth.h"
#include "core/core.h"
#include "core/offload.h"

#include <event2/event.h>
#include <sasl/sasl.h>
#include <sasl/saslutil.h>
#include <sys/stat.h>

static struct config cfg;
static const sasl_channel_binding_t *client_cbind;   /* the client's, or NULL */
static struct auth_db *db;
static time_t fake_now;

static time_t test_clock(void)
{
	return fake_now;
}

/* ---- the calls, plain or async ------------------------------------ */

/* With async_mode, every call goes through the *_async form, password
 * hashes in the offload's threads; the answers must not change. */
static bool async_mode;
static struct event_base *base;
static struct offload *offload;

struct async_answer {
	bool called;
	enum auth_result result;
	char challenge[8192];
};

static void answer_cb(void *ctx, enum auth_result result, const char *challenge)
{
	struct async_answer *a = ctx;
	a->called = true;
	a->result = result;
	snprintf(a->challenge, sizeof(a->challenge), "%s", challenge != NULL ? challenge : "");
}

static enum auth_result answer_wait(struct async_answer *a, const char **challenge_r)
{
	while (!a->called)
		event_base_loop(base, EVLOOP_ONCE);
	if (challenge_r != NULL) {
		static char copy[8192];
		memcpy(copy, a->challenge, sizeof(copy));
		*challenge_r = copy;
	}
	return a->result;
}

static enum auth_result t_start(struct auth_session *s, const char *mech, const char *initial,
				const char **challenge_r)
{
	if (!async_mode)
		return auth_start(s, mech, initial, challenge_r);
	struct async_answer a = { 0 };
	auth_start_async(s, offload, mech, initial, answer_cb, &a);
	return answer_wait(&a, challenge_r);
}

static enum auth_result t_step(struct auth_session *s, const char *response,
			       const char **challenge_r)
{
	if (!async_mode)
		return auth_step(s, response, challenge_r);
	struct async_answer a = { 0 };
	auth_step_async(s, offload, response, answer_cb, &a);
	return answer_wait(&a, challenge_r);
}

static enum auth_result t_login(struct auth_session *s, const char *user, const char *pass)
{
	if (!async_mode)
		return auth_login(s, user, pass);
	struct async_answer a = { 0 };
	auth_login_async(s, offload, user, pass, answer_cb, &a);
	return answer_wait(&a, NULL);
}

/* ---- the client side ---------------------------------------------- */

struct client_creds {
	const char *user;
	const char *password;
	const char *authzid;     /* "" for none */
};

static int cb_simple(void *context, int id, const char **result, unsigned *len)
{
	struct client_creds *c = context;
	*result = id == SASL_CB_USER ? c->authzid : c->user;
	if (len != NULL)
		*len = (unsigned)strlen(*result);
	return SASL_OK;
}

static int cb_secret(sasl_conn_t *conn, void *context, int id, sasl_secret_t **psecret)
{
	static union {
		sasl_secret_t secret;
		char space[sizeof(sasl_secret_t) + 1100];
	} store;
	struct client_creds *c = context;
	size_t len = strlen(c->password);
	store.secret.len = len;
	memcpy(store.secret.data, c->password, len + 1);
	*psecret = &store.secret;
	return SASL_OK;
}

#define CB(fn) ((int (*)(void))(void (*)(void))(fn))

static const char *b64(const char *data, unsigned len)
{
	static char out[8192];
	unsigned n = 0;
	if (data == NULL)
		return NULL;
	if (len == 0)
		return "";
	sasl_encode64(data, len, out, sizeof(out), &n);
	out[n] = '\0';
	return out;
}

struct exchange {
	enum auth_result result;
	int steps;             /* server continuations */
	bool client_failed;    /* the client refused the server's answer */
};

/* Runs mech between a Cyrus client and the session. */
static struct exchange run_as(struct auth_session *s, const char *mech, const char *user,
			      const char *password, const char *authzid)
{
	struct client_creds creds = { user, password, authzid };
	sasl_callback_t callbacks[] = {
		{ SASL_CB_USER, CB(cb_simple), &creds },
		{ SASL_CB_AUTHNAME, CB(cb_simple), &creds },
		{ SASL_CB_PASS, CB(cb_secret), &creds },
		{ SASL_CB_LIST_END, NULL, NULL },
	};
	struct exchange ex = { AUTH_FAILED, 0, false };
	sasl_conn_t *client;
	const char *out, *chosen, *challenge;
	unsigned out_len;
	char decoded[8192];

	if (sasl_client_new("imap", "mail.example.org", NULL, NULL, callbacks, 0,
			    &client) != SASL_OK) {
		TEST_ASSERT(!"sasl_client_new");
		return ex;
	}
	if (client_cbind != NULL)
		sasl_setprop(client, SASL_CHANNEL_BINDING, client_cbind);
	int rc = sasl_client_start(client, mech, NULL, &out, &out_len, &chosen);
	if (rc != SASL_OK && rc != SASL_CONTINUE) {
		fprintf(stderr, "sasl_client_start(%s): %s\n", mech,
			sasl_errdetail(client));
		TEST_ASSERT(!"sasl_client_start");
		sasl_dispose(&client);
		return ex;
	}
	const char *initial = out == NULL ? NULL : out_len == 0 ? "=" : b64(out, out_len);
	ex.result = t_start(s, mech, initial, &challenge);
	while (ex.result == AUTH_CONTINUE && ex.steps < 10) {
		unsigned dec_len = 0;
		ex.steps++;
		sasl_decode64(challenge, (unsigned)strlen(challenge), decoded,
			      sizeof(decoded), &dec_len);
		rc = sasl_client_step(client, decoded, dec_len, NULL, &out, &out_len);
		if (rc != SASL_OK && rc != SASL_CONTINUE) {
			ex.client_failed = true;
			ex.result = t_step(s, "*", &challenge);
			break;
		}
		ex.result = t_step(s, out == NULL ? "" : b64(out, out_len), &challenge);
	}
	sasl_dispose(&client);
	return ex;
}

static struct exchange run(struct auth_session *s, const char *mech, const char *user,
			   const char *password)
{
	return run_as(s, mech, user, password, "");
}

static struct auth_session *session(const char *remote, bool tls, bool loopback)
{
	struct auth_conn_info info = {
		.service = "imap", .local_ip = "192.0.2.1", .local_port = 143,
		.remote_ip = remote, .remote_port = 40000, .tls = tls, .loopback = loopback,
	};
	return auth_session_new(&info);
}

/* ---- tests -------------------------------------------------------- */

static const char *const mechs[] = { "PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-1" };

static void test_files(void)
{
	char path[600];
	struct stat st;
	snprintf(path, sizeof(path), "%s/auth-secret", cfg.data_dir);
	TEST_ASSERT_INT(stat(path, &st), 0);
	TEST_ASSERT_INT(st.st_mode & 0777, 0600);
	TEST_ASSERT_INT(st.st_size, 32);
	snprintf(path, sizeof(path), "%s/throttle.lmdb", cfg.data_dir);
	TEST_ASSERT_INT(stat(path, &st), 0);
	TEST_ASSERT_INT(st.st_mode & 0777, 0600);
}

static void test_mechanisms(void)
{
	struct auth_session *s = session("198.51.100.1", true, false);
	const char *list = auth_mechanisms(s);
	for (size_t i = 0; i < 4; i++)
		TEST_ASSERT(strstr(list, mechs[i]) != NULL);
	TEST_ASSERT(strstr(list, "CRAM-MD5") == NULL);
	TEST_ASSERT(strstr(list, "DIGEST-MD5") == NULL);
	TEST_ASSERT(strstr(list, "ANONYMOUS") == NULL);
	TEST_ASSERT(strstr(list, "NTLM") == NULL);
	TEST_ASSERT(strstr(list, "-PLUS") == NULL);   /* no channel binding given */
	auth_session_free(&s);
	TEST_ASSERT(s == NULL);
}

static void test_right_password(void)
{
	for (size_t i = 0; i < 4; i++) {
		struct auth_session *s = session("198.51.100.2", true, false);
		struct exchange ex = run(s, mechs[i], "bob@example.org", "correct horse");
		test_current = mechs[i];
		TEST_ASSERT_INT(ex.result, AUTH_OK);
		TEST_ASSERT(!ex.client_failed);
		TEST_ASSERT_STR(auth_username(s), "Bob@example.org");
		TEST_ASSERT_INT(auth_reply_delay_ms(s), 0);
		/* the address is compared case-insensitively */
		ex = run(s, mechs[i], "BOB@Example.ORG", "correct horse");
		TEST_ASSERT_INT(ex.result, AUTH_OK);
		TEST_ASSERT_STR(auth_username(s), "Bob@example.org");
		auth_session_free(&s);
	}
}

static void test_failures_look_alike(void)
{
	static const char *const ips[] = { "198.51.100.30", "198.51.100.31",
					   "198.51.100.32", "198.51.100.33" };
	for (size_t i = 0; i < 4; i++) {
		struct auth_session *s = session(ips[i], true, false);
		test_current = mechs[i];
		fake_now += 3600;   /* let earlier failures decay */
		struct exchange wrong = run(s, mechs[i], "bob@example.org", "wrong");
		struct exchange unknown = run(s, mechs[i], "nobody@example.org", "wrong");
		struct exchange disabled = run(s, mechs[i], "off@example.org", "offpass");
		struct exchange junk = run(s, mechs[i], "not an address", "x");
		TEST_ASSERT_INT(wrong.result, AUTH_FAILED);
		TEST_ASSERT_INT(unknown.result, AUTH_FAILED);
		TEST_ASSERT_INT(disabled.result, AUTH_FAILED);
		TEST_ASSERT_INT(junk.result, AUTH_FAILED);
		/* same number of round trips whether the user exists or not */
		TEST_ASSERT_INT(unknown.steps, wrong.steps);
		TEST_ASSERT_INT(disabled.steps, wrong.steps);
		TEST_ASSERT(auth_username(s) == NULL);
		auth_session_free(&s);
	}
}

static void test_scram_decoy_stable(void)
{
	/* the salt offered for an unknown name is the same every time */
	struct auth_session *s = session("198.51.100.4", true, false);
	const char *challenge;
	char first[512], second[512];
	const char *msg = "n,,n=ghost@example.org,r=abcdefghijklmnop";
	TEST_ASSERT_INT(auth_start(s, "SCRAM-SHA-256", b64(msg, (unsigned)strlen(msg)),
				   &challenge), AUTH_CONTINUE);
	unsigned n = 0;
	sasl_decode64(challenge, (unsigned)strlen(challenge), first, sizeof(first), &n);
	first[n] = '\0';
	TEST_ASSERT_INT(auth_step(s, "*", &challenge), AUTH_CANCELLED);
	TEST_ASSERT_INT(auth_start(s, "SCRAM-SHA-256", b64(msg, (unsigned)strlen(msg)),
				   &challenge), AUTH_CONTINUE);
	sasl_decode64(challenge, (unsigned)strlen(challenge), second, sizeof(second), &n);
	second[n] = '\0';
	TEST_ASSERT(strstr(first, ",s=") != NULL && strstr(first, ",i=16384") != NULL);
	TEST_ASSERT_STR(strstr(second, ",s="), strstr(first, ",s="));
	auth_step(s, "*", &challenge);
	auth_session_free(&s);
}

static void test_malformed_and_cancel(void)
{
	fake_now += 3600;
	struct auth_session *s = session("198.51.100.5", true, false);
	const char *challenge;
	TEST_ASSERT_INT(auth_start(s, "PLAIN", "!!not base64!!", &challenge), AUTH_MALFORMED);
	TEST_ASSERT_INT(auth_start(s, "PLAIN", NULL, &challenge), AUTH_CONTINUE);
	TEST_ASSERT_STR(challenge, "");
	TEST_ASSERT_INT(auth_step(s, "%%%%", &challenge), AUTH_MALFORMED);
	TEST_ASSERT_INT(auth_start(s, "LOGIN", NULL, &challenge), AUTH_CONTINUE);
	TEST_ASSERT_INT(auth_step(s, "*", &challenge), AUTH_CANCELLED);
	/* a step with no exchange going on */
	TEST_ASSERT_INT(auth_step(s, "AAAA", &challenge), AUTH_MALFORMED);
	TEST_ASSERT_INT(auth_start(s, "CRAM-MD5", NULL, &challenge), AUTH_NOMECH);
	TEST_ASSERT_INT(auth_start(s, "DIGEST-MD5", NULL, &challenge), AUTH_NOMECH);
	TEST_ASSERT_INT(auth_start(s, "ANONYMOUS", NULL, &challenge), AUTH_NOMECH);
	/* an empty initial response is PLAIN's failure, not malformed */
	TEST_ASSERT_INT(auth_start(s, "PLAIN", "=", &challenge), AUTH_FAILED);
	/* PLAIN with an authzid of someone else */
	const char proxy[] = "ann@example.org\0bob@example.org\0correct horse";
	TEST_ASSERT_INT(auth_start(s, "PLAIN", b64(proxy, sizeof(proxy) - 1), &challenge),
			AUTH_FAILED);
	const char same[] = "bob@example.org\0bob@example.org\0correct horse";
	TEST_ASSERT_INT(auth_start(s, "plain", b64(same, sizeof(same) - 1), &challenge),
			AUTH_OK);
	auth_session_free(&s);
}

static void test_initial_responses(void)
{
	const char *challenge;
	fake_now += 3600;
	struct auth_session *s = session("198.51.100.9", true, false);
	/* AUTH LOGIN with the user name as initial response (RFC 4954 style) */
	const char *user = "bob@example.org", *pass = "correct horse";
	TEST_ASSERT_INT(t_start(s, "LOGIN", b64(user, (unsigned)strlen(user)), &challenge),
			AUTH_CONTINUE);
	/* listing mechanisms meanwhile leaves the exchange alone */
	TEST_ASSERT(strstr(auth_mechanisms(s), "LOGIN") != NULL);
	TEST_ASSERT_INT(t_step(s, b64(pass, (unsigned)strlen(pass)), &challenge), AUTH_OK);
	/* SASL-IR with an empty initial response: libsasl2 2.1.28 treats it
	 * as no initial response for SCRAM and asks again with "" */
	enum auth_result r = t_start(s, "SCRAM-SHA-256", "=", &challenge);
	TEST_ASSERT(r == AUTH_FAILED || (r == AUTH_CONTINUE && challenge[0] == '\0'));
	if (r == AUTH_CONTINUE)
		TEST_ASSERT_INT(t_step(s, "", &challenge), AUTH_FAILED);
	/* asking to act as someone else, with the right password */
	for (size_t i = 0; i < 4; i++) {
		fake_now += 3600;
		if (strcmp(mechs[i], "LOGIN") != 0)   /* LOGIN carries no authzid */
			TEST_ASSERT_INT(run_as(s, mechs[i], "bob@example.org", "correct horse",
					       "ann@example.org").result, AUTH_FAILED);
		/* the same identity spelled differently is no proxying */
		TEST_ASSERT_INT(run_as(s, mechs[i], "bob@example.org", "correct horse",
				       "BOB@example.org").result, AUTH_OK);
	}
	fake_now += 3600;
	/* an address libsasl2 cannot parse does not break the session */
	struct auth_conn_info info = { .service = "smtp", .local_ip = "not-an-ip",
				       .local_port = 25, .remote_ip = "unix:/x",
				       .remote_port = 0, .tls = true };
	struct auth_session *odd = auth_session_new(&info);
	TEST_ASSERT(strstr(auth_mechanisms(odd), "PLAIN") != NULL);
	TEST_ASSERT_INT(t_login(odd, "bob@example.org", "correct horse"), AUTH_OK);
	auth_session_free(&odd);
	/* a quoted local part with a comma: SCRAM escapes it as =2C */
	TEST_ASSERT_INT(run(s, "SCRAM-SHA-256", "\"j,d\"@example.org", "jd").result, AUTH_OK);
	TEST_ASSERT_STR(auth_username(s), "\"j,d\"@example.org");
	TEST_ASSERT_INT(run(s, "PLAIN", "\"J,D\"@example.org", "jd").result, AUTH_OK);
	auth_session_free(&s);
}

static void test_channel_binding(void)
{
	static const unsigned char data[32] = "0123456789abcdef0123456789abcdef";
	static const unsigned char other[32] = "fedcba9876543210fedcba9876543210";
	sasl_channel_binding_t good = { "tls-exporter", 0, sizeof(data), data };
	sasl_channel_binding_t bad = { "tls-exporter", 0, sizeof(other), other };
	const char *challenge;
	fake_now += 3600;
	struct auth_session *s = session("198.51.100.10", true, false);
	TEST_ASSERT_INT(auth_start(s, "SCRAM-SHA-256-PLUS", NULL, &challenge), AUTH_NOMECH);
	auth_session_set_channel_binding(s, "tls-exporter", data, sizeof(data));
	const char *list = auth_mechanisms(s);
	TEST_ASSERT(strstr(list, "SCRAM-SHA-256-PLUS") != NULL);
	TEST_ASSERT(strstr(list, "SCRAM-SHA-1-PLUS") != NULL);
	client_cbind = &good;
	TEST_ASSERT_INT(run(s, "SCRAM-SHA-256-PLUS", "bob@example.org", "correct horse").result,
			AUTH_OK);
	TEST_ASSERT_INT(run(s, "SCRAM-SHA-1-PLUS", "bob@example.org", "correct horse").result,
			AUTH_OK);
	TEST_ASSERT_INT(run(s, "SCRAM-SHA-256-PLUS", "bob@example.org", "wrong").result,
			AUTH_FAILED);
	/* a man in the middle sees other TLS keys */
	client_cbind = &bad;
	TEST_ASSERT_INT(run(s, "SCRAM-SHA-256-PLUS", "bob@example.org", "correct horse").result,
			AUTH_FAILED);
	client_cbind = NULL;
	TEST_ASSERT_INT(run(s, "SCRAM-SHA-256", "bob@example.org", "correct horse").result,
			AUTH_OK);
	auth_session_free(&s);
}

static void test_login(void)
{
	fake_now += 3600;
	struct auth_session *s = session("198.51.100.6", true, false);
	TEST_ASSERT_INT(t_login(s, "bob@example.org", "correct horse"), AUTH_OK);
	TEST_ASSERT_STR(auth_username(s), "Bob@example.org");
	TEST_ASSERT_INT(t_login(s, "bob@example.org", "wrong"), AUTH_FAILED);
	TEST_ASSERT(auth_username(s) == NULL);
	TEST_ASSERT_INT(t_login(s, "nobody@example.org", "wrong"), AUTH_FAILED);
	TEST_ASSERT_INT(t_login(s, "off@example.org", "offpass"), AUTH_FAILED);
	TEST_ASSERT_INT(t_login(s, "", ""), AUTH_FAILED);
	char long_text[3000];
	memset(long_text, 'a', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	TEST_ASSERT_INT(t_login(s, long_text, "x"), AUTH_FAILED);
	TEST_ASSERT_INT(t_login(s, "bob@example.org", long_text), AUTH_FAILED);
	auth_session_free(&s);
}

static void test_plaintext_policy(void)
{
	fake_now += 3600;
	const char *challenge;
	cfg.auth_plaintext = PLAINTEXT_NEVER;
	struct auth_session *s = session("198.51.100.7", false, true);
	TEST_ASSERT(!auth_plaintext_allowed(s));
	TEST_ASSERT_STR(auth_mechanisms(s), "");
	TEST_ASSERT_INT(auth_start(s, "PLAIN", NULL, &challenge), AUTH_NOMECH);
	TEST_ASSERT_INT(auth_login(s, "bob@example.org", "correct horse"), AUTH_NOMECH);
	auth_session_set_tls(s);
	TEST_ASSERT(auth_plaintext_allowed(s));
	TEST_ASSERT(strstr(auth_mechanisms(s), "PLAIN") != NULL);
	TEST_ASSERT_INT(auth_login(s, "bob@example.org", "correct horse"), AUTH_OK);
	auth_session_free(&s);

	cfg.auth_plaintext = PLAINTEXT_LOOPBACK;
	s = session("127.0.0.1", false, true);
	TEST_ASSERT(auth_plaintext_allowed(s));
	TEST_ASSERT(strstr(auth_mechanisms(s), "LOGIN") != NULL);
	TEST_ASSERT_INT(run(s, "PLAIN", "bob@example.org", "correct horse").result, AUTH_OK);
	auth_session_free(&s);
	s = session("198.51.100.7", false, false);
	TEST_ASSERT(!auth_plaintext_allowed(s));
	TEST_ASSERT_INT(auth_start(s, "SCRAM-SHA-256", NULL, &challenge), AUTH_NOMECH);
	auth_session_free(&s);

	cfg.auth_plaintext = PLAINTEXT_ALWAYS;
	s = session("198.51.100.7", false, false);
	TEST_ASSERT(auth_plaintext_allowed(s));
	TEST_ASSERT_INT(run(s, "LOGIN", "bob@example.org", "correct horse").result, AUTH_OK);
	auth_session_free(&s);
	cfg.auth_plaintext = PLAINTEXT_LOOPBACK;
}

static void test_changes_seen_at_once(void)
{
	fake_now += 3600;
	const char *error;
	struct auth_session *s = session("198.51.100.8", true, false);
	TEST_ASSERT_INT(auth_user_add(db, "new@example.org", "first", 0, true, &error), 0);
	TEST_ASSERT_INT(run(s, "SCRAM-SHA-256", "new@example.org", "first").result, AUTH_OK);
	TEST_ASSERT_INT(auth_user_set_password(db, "new@example.org", "second", &error), 0);
	TEST_ASSERT_INT(run(s, "SCRAM-SHA-256", "new@example.org", "first").result, AUTH_FAILED);
	TEST_ASSERT_INT(run(s, "PLAIN", "new@example.org", "second").result, AUTH_OK);
	TEST_ASSERT_INT(auth_user_set_enabled(db, "new@example.org", false, &error), 0);
	TEST_ASSERT_INT(run(s, "SCRAM-SHA-1", "new@example.org", "second").result, AUTH_FAILED);
	TEST_ASSERT_INT(auth_user_del(db, "new@example.org", &error), 0);
	TEST_ASSERT_INT(run(s, "LOGIN", "new@example.org", "second").result, AUTH_FAILED);
	auth_session_free(&s);
}

static void test_throttling(void)
{
	/* delay_after 2, block_after 4, block_time 60s: one failure decays
	 * every 15 s */
	struct auth_session *s = session("203.0.113.9", true, false);
	fake_now += 100000;
	TEST_ASSERT_INT(auth_login(s, "ann@example.org", "bad"), AUTH_FAILED);
	TEST_ASSERT_INT(auth_reply_delay_ms(s), 0);
	TEST_ASSERT_INT(auth_login(s, "ann@example.org", "bad"), AUTH_FAILED);
	TEST_ASSERT(auth_reply_delay_ms(s) > 0);
	unsigned d2 = auth_reply_delay_ms(s);
	TEST_ASSERT_INT(auth_login(s, "ann@example.org", "bad"), AUTH_FAILED);
	TEST_ASSERT(auth_reply_delay_ms(s) > d2);
	TEST_ASSERT_INT(auth_login(s, "ann@example.org", "bad"), AUTH_FAILED);
	/* blocked: even the right password fails, from this address... */
	TEST_ASSERT_INT(auth_login(s, "ann@example.org", "annpass"), AUTH_FAILED);
	TEST_ASSERT_INT(run(s, "SCRAM-SHA-256", "ann@example.org", "annpass").result,
			AUTH_FAILED);
	/* ...but never for this account from elsewhere (issue 19: strangers
	 * must not lock an account out): a source that never logged in to
	 * it waits out the account's delay, right password or not... */
	struct auth_session *other = session("203.0.113.10", true, false);
	TEST_ASSERT_INT(auth_login(other, "ann@example.org", "annpass"), AUTH_OK);
	TEST_ASSERT(auth_reply_delay_ms(other) > 0);
	/* ...and once it has, no more */
	TEST_ASSERT_INT(auth_login(other, "ann@example.org", "annpass"), AUTH_OK);
	TEST_ASSERT_INT(auth_reply_delay_ms(other), 0);
	TEST_ASSERT_INT(auth_login(other, "ann@example.org", "bad"), AUTH_FAILED);
	TEST_ASSERT_INT(auth_reply_delay_ms(other), 0);
	/* other accounts from another address are not affected */
	TEST_ASSERT_INT(auth_login(other, "bob@example.org", "correct horse"), AUTH_OK);
	/* it wears off */
	fake_now += 61 + 15 * 10;
	TEST_ASSERT_INT(auth_login(s, "ann@example.org", "annpass"), AUTH_OK);
	TEST_ASSERT_INT(auth_reply_delay_ms(s), 0);
	auth_session_free(&s);
	auth_session_free(&other);
}

/* An IPv6 source is its /64: hopping addresses inside it does not
 * escape the source's block. */
static void test_throttling_ipv6_prefix(void)
{
	fake_now += 100000;
	char ip[64];
	for (int i = 0; i < 4; i++) {
		snprintf(ip, sizeof(ip), "2001:db8:5:6::%x", i + 1);
		struct auth_session *s = session(ip, true, false);
		TEST_ASSERT_INT(auth_login(s, "nobody-here@example.org", "bad"), AUTH_FAILED);
		auth_session_free(&s);
	}
	struct auth_session *s = session("2001:db8:5:6:ffff::9", true, false);
	TEST_ASSERT_INT(auth_login(s, "bob@example.org", "correct horse"), AUTH_FAILED);
	auth_session_free(&s);
	s = session("2001:db8:5:7::1", true, false);
	TEST_ASSERT_INT(auth_login(s, "bob@example.org", "correct horse"), AUTH_OK);
	auth_session_free(&s);
}

/* The async calls hash in a thread, bind the answer to the hash it was
 * checked against, and survive the session going away meanwhile. */
static void test_async(void)
{
	const char *error;
	fake_now += 3600;
	struct auth_session *s = session("198.51.100.40", true, false);
	unsigned inline_before = auth_hashes_inline();
	struct async_answer a = { 0 };
	auth_login_async(s, offload, "bob@example.org", "correct horse", answer_cb, &a);
	TEST_ASSERT(!a.called);   /* the hash runs in a thread */
	TEST_ASSERT_INT(answer_wait(&a, NULL), AUTH_OK);
	TEST_ASSERT_STR(auth_username(s), "Bob@example.org");
	struct async_answer b = { 0 };
	auth_login_async(s, offload, "nobody@example.org", "x", answer_cb, &b);
	TEST_ASSERT(!b.called);   /* an unknown user is hashed alike */
	TEST_ASSERT_INT(answer_wait(&b, NULL), AUTH_FAILED);
	TEST_ASSERT_INT(auth_hashes_inline(), inline_before);

	/* the password changes while the old one is being checked: the
	 * check no longer answers, the call hashes again and refuses */
	fake_now += 3600;
	struct async_answer c = { 0 };
	auth_login_async(s, offload, "chg@example.org", "before", answer_cb, &c);
	TEST_ASSERT_INT(auth_user_set_password(db, "chg@example.org", "after", &error), 0);
	TEST_ASSERT_INT(answer_wait(&c, NULL), AUTH_FAILED);
	TEST_ASSERT_INT(auth_hashes_inline(), inline_before + 1);
	inline_before = auth_hashes_inline();

	/* nothing to hash (SCRAM's first step, a refused mechanism): the
	 * answer comes at once; so it does without an offload */
	struct async_answer d = { 0 };
	auth_start_async(s, offload, "NOPE", NULL, answer_cb, &d);
	TEST_ASSERT(d.called);
	TEST_ASSERT_INT(d.result, AUTH_NOMECH);
	struct async_answer e = { 0 };
	auth_login_async(s, NULL, "bob@example.org", "correct horse", answer_cb, &e);
	TEST_ASSERT(e.called);
	TEST_ASSERT_INT(e.result, AUTH_OK);
	TEST_ASSERT_INT(auth_hashes_inline(), inline_before + 1);

	/* the session goes away while its hash runs: no answer, nothing leaks */
	struct auth_session *gone = session("198.51.100.41", true, false);
	struct async_answer f = { 0 };
	auth_login_async(gone, offload, "bob@example.org", "correct horse", answer_cb, &f);
	auth_session_free(&gone);
	struct async_answer g = { 0 };
	auth_login_async(s, offload, "ann@example.org", "annpass", answer_cb, &g);
	TEST_ASSERT_INT(answer_wait(&g, NULL), AUTH_OK);
	TEST_ASSERT(!f.called);
	auth_session_free(&s);
}

/* Every exchange again through the async calls: same answers, and every
 * password hashed ahead in a thread. */
static void test_all_async(void)
{
	unsigned before = auth_hashes_inline();
	async_mode = true;
	test_right_password();
	test_failures_look_alike();
	test_initial_responses();
	test_login();
	async_mode = false;
	TEST_ASSERT_INT(auth_hashes_inline(), before);
}

int main(void)
{
	const char *error;
	char dir[512];
	log_init("test-sasl", getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN);
	config_init_defaults(&cfg);
	snprintf(dir, sizeof(dir), "%s/data", test_tmpdir());
	free(cfg.data_dir);
	cfg.data_dir = xstrdup(dir);
	free(cfg.run_as);
	cfg.run_as = xstrdup("nobody");
	free(cfg.hostname);
	cfg.hostname = xstrdup("mail.example.org");
	cfg.auth_delay_after = 2;
	cfg.auth_block_after = 4;
	cfg.auth_block_time = 60;
	if (auth_db_open(cfg.data_dir, cfg.run_as, &db, &error) < 0 ||
	    auth_domain_add(db, "example.org", &error) < 0 ||
	    auth_user_add(db, "Bob@example.org", "correct horse", 0, true, &error) < 0 ||
	    auth_user_add(db, "ann@example.org", "annpass", 0, true, &error) < 0 ||
	    auth_user_add(db, "off@example.org", "offpass", 0, false, &error) < 0 ||
	    auth_user_add(db, "chg@example.org", "before", 0, true, &error) < 0 ||
	    auth_user_add(db, "\"j,d\"@example.org", "jd", 0, true, &error) < 0 ||
	    auth_sasl_init(&cfg, db, &error) < 0) {
		fprintf(stderr, "setup: %s\n", error);
		return 1;
	}
	auth_set_clock(test_clock);
	fake_now = time(NULL);
	if (sasl_client_init(NULL) != SASL_OK) {
		fprintf(stderr, "sasl_client_init failed\n");
		return 1;
	}
	TEST_ASSERT(auth_sasl_init(&cfg, db, &error) < 0);

	test_run("files", test_files);
	test_run("mechanisms", test_mechanisms);
	test_run("right_password", test_right_password);
	test_run("failures_look_alike", test_failures_look_alike);
	test_run("scram_decoy_stable", test_scram_decoy_stable);
	test_run("malformed_and_cancel", test_malformed_and_cancel);
	test_run("initial_responses", test_initial_responses);
	test_run("channel_binding", test_channel_binding);
	test_run("login", test_login);
	test_run("plaintext_policy", test_plaintext_policy);
	test_run("changes_seen_at_once", test_changes_seen_at_once);
	test_run("throttling", test_throttling);
	test_run("throttling_ipv6_prefix", test_throttling_ipv6_prefix);
	base = event_base_new();
	offload = offload_new(base, 2);
	TEST_ASSERT(base != NULL && offload != NULL);
	test_run("async", test_async);
	test_run("all_async", test_all_async);
	offload_free(&offload);
	event_base_free(base);

	auth_sasl_deinit();
	auth_db_close(&db);
	config_free(&cfg);
	return test_end();
}

/* AUTHORIZATION: USER/PASS (RFC 1939 7), APOP (refused), AUTH (RFC 5034
 * SASL with initial response), all through the auth module; the plaintext
 * policy, throttled failure replies and the [AUTH]/[SYS/TEMP] response
 * codes (RFC 2449, RFC 3206). */
#include "pop3/pop3-private.h"
#include "auth/auth.h"

#include <stdlib.h>
#include <string.h>

/* One reply for every credential failure: wrong password, unknown user,
 * disabled account, blocked by throttling. */
#define REPLY_AUTH_FAILED "-ERR [AUTH] Authentication failed"
#define REPLY_PLAINTEXT \
	"-ERR [AUTH] Plaintext authentication disallowed on non-secure connections (use STLS)"
#define REPLY_TEMPFAIL "-ERR [SYS/TEMP] Authentication temporarily unavailable"

static void pop3_login_done(struct pop3_session *s)
{
	const char *user = auth_username(s->auth);
	linereader_set_max(&s->lr, POP3_MAX_COMMAND_LINE);
	pop3_set_state(s, POP3_STATE_AUTHORIZATION);
	if (pop3_maildrop_open(s, user) < 0)
		return;
	conn_set_user(s->conn, user);
	conn_set_timeout(s->conn, conn_config(s->conn)->timeout_pop3);
	pop3_set_state(s, POP3_STATE_TRANSACTION);
	pop3_replyf(s, "+OK Logged in, %u messages", (unsigned)s->msg_count);
}

/* Every auth module outcome but CONTINUE. */
static void pop3_auth_result(struct pop3_session *s, enum auth_result result)
{
	linereader_set_max(&s->lr, POP3_MAX_COMMAND_LINE);
	pop3_set_state(s, POP3_STATE_AUTHORIZATION);
	switch (result) {
	case AUTH_OK:
		pop3_login_done(s);
		break;
	case AUTH_FAILED:   /* already delayed by throttling (auth/) */
		pop3_error(s, REPLY_AUTH_FAILED);
		break;
	case AUTH_MALFORMED:
		pop3_error(s, "-ERR Invalid base64 data");
		break;
	case AUTH_CANCELLED:
		pop3_error(s, "-ERR Authentication cancelled");
		break;
	case AUTH_NOMECH:
		if (!auth_plaintext_allowed(s->auth))
			pop3_error(s, REPLY_PLAINTEXT);
		else
			pop3_error(s, "-ERR Unsupported authentication mechanism");
		break;
	case AUTH_TEMPFAIL:
		pop3_error(s, REPLY_TEMPFAIL);
		break;
	case AUTH_CONTINUE:
		break;
	}
}

static void pop3_auth_continue(struct pop3_session *s, const char *challenge);

/* The auth module's answer, maybe after a password was hashed in another
 * thread: no command is read meanwhile (the DELAYED state). */
static void pop3_auth_done(void *ctx, enum auth_result result, const char *challenge)
{
	struct pop3_session *s = ctx;
	if (result == AUTH_CONTINUE)
		pop3_auth_continue(s, challenge);
	else
		pop3_auth_result(s, result);
	if (s->state != POP3_STATE_DELAYED && !conn_is_closing(s->conn))
		pop3_resume(s);
}

void pop3_cmd_user(struct pop3_session *s, const struct pop3_request *req)
{
	if (!auth_plaintext_allowed(s->auth)) {
		pop3_error(s, REPLY_PLAINTEXT);
		return;
	}
	free(s->user);
	s->user = xstrdup(req->argv[0]);
	pop3_reply(s, "+OK");
}

void pop3_cmd_pass(struct pop3_session *s, const struct pop3_request *req)
{
	if (!auth_plaintext_allowed(s->auth)) {
		pop3_error(s, REPLY_PLAINTEXT);
		return;
	}
	if (s->user == NULL) {
		pop3_error(s, "-ERR No USER given");
		return;
	}
	char *user = s->user;
	s->user = NULL;   /* a failed PASS needs a new USER (RFC 1939 7) */
	pop3_set_state(s, POP3_STATE_DELAYED);
	auth_login_async(s->auth, conn_services(s->conn)->offload, user, req->argv[0],
			 pop3_auth_done, s);
	free(user);
}

void pop3_cmd_apop(struct pop3_session *s, const struct pop3_request *req)
{
	/* APOP needs the clear password on the server: never stored */
	pop3_error(s, "-ERR APOP not supported");
}

static void pop3_auth_continue(struct pop3_session *s, const char *challenge)
{
	pop3_replyf(s, "+ %s", challenge);
	linereader_set_max(&s->lr, POP3_MAX_SASL_LINE);
	pop3_set_state(s, POP3_STATE_SASL);
}

void pop3_cmd_auth(struct pop3_session *s, const struct pop3_request *req)
{
	if (req->argc == 0) {
		/* the pre-RFC 5034 listing some clients still ask for */
		struct buf b = BUF_INIT;
		buf_append_str(&b, "+OK\r\n");
		for (const char *p = auth_mechanisms(s->auth); *p != '\0';) {
			size_t n = strcspn(p, " ");
			buf_append(&b, p, n);
			buf_append_str(&b, "\r\n");
			p += n;
			p += strspn(p, " ");
		}
		buf_append_str(&b, ".\r\n");
		conn_write(s->conn, b.data, b.len);
		buf_free(&b);
		return;
	}
	free(s->user);
	s->user = NULL;
	pop3_set_state(s, POP3_STATE_DELAYED);
	auth_start_async(s->auth, conn_services(s->conn)->offload, req->argv[0],
			 req->argc > 1 ? req->argv[1] : NULL, pop3_auth_done, s);
}

void pop3_sasl_response(struct pop3_session *s, const char *line)
{
	if (line == NULL) {
		auth_cancel(s->auth);
		pop3_set_state(s, POP3_STATE_AUTHORIZATION);
		linereader_set_max(&s->lr, POP3_MAX_COMMAND_LINE);
		pop3_error(s, "-ERR Response line too long");
		return;
	}
	pop3_set_state(s, POP3_STATE_DELAYED);
	auth_step_async(s->auth, conn_services(s->conn)->offload, line, pop3_auth_done, s);
}

void pop3_auth_free(struct pop3_session *s)
{
	free(s->user);
	s->user = NULL;
	auth_session_free(&s->auth);
}

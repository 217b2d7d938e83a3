/* LOGIN and AUTHENTICATE (RFC 3501 6.2, RFC 4959 SASL-IR) through the
 * auth module: the plaintext policy ([PRIVACYREQUIRED]), one reply for
 * every credential failure ([AUTHENTICATIONFAILED]), delayed by
 * throttling without blocking the worker. */
#include "imap/imap-private.h"
#include "auth/auth.h"
#include "intake/intake.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#define REPLY_FAILED "NO [AUTHENTICATIONFAILED] Authentication failed"
#define REPLY_PRIVACY "NO [PRIVACYREQUIRED] Use STARTTLS first"
#define REPLY_TEMPFAIL "NO [UNAVAILABLE] Authentication temporarily unavailable"

/* Already delayed by throttling, in auth/ (the same for every protocol). */
static void imap_auth_failed(struct imap_session *s, const char *tag)
{
	conn_printf(s->conn, "%s " REPLY_FAILED "\r\n", tag);
}

static void imap_login_done(struct imap_session *s, const char *tag)
{
	const char *user = auth_username(s->auth);
	const char *error;
	if (store_account_open(s->services->store, user, &s->account, &error) < 0) {
		log_error("event=store-account-open-failed error=\"%s\"", error);
		imap_no(s, tag, "[UNAVAILABLE] Mailbox store unavailable");
		return;
	}
	intake_quota_refresh(s->services, s->account, user);
	s->user = xstrdup(user);
	conn_set_user(s->conn, user);
	conn_set_timeout(s->conn, conn_config(s->conn)->timeout_imap);
	imap_reader_set_limits(&s->reader, IMAP_TEXT_MAX, IMAP_LITERAL_MAX);
	s->reader.literal_fn = imap_append_literal;
	s->reader.stream_fn = imap_append_stream;
	s->reader.fn_ctx = s;
	s->reader.stream_max = imap_append_limit(s);
	s->errors = 0;
	imap_set_state(s, IMAP_STATE_AUTHENTICATED);
	struct buf b = BUF_INIT;
	buf_printf(&b, "%s OK [CAPABILITY ", tag);
	imap_capabilities(s, &b);
	buf_append_str(&b, "] Logged in\r\n");
	imap_write_buf(s, &b);
	buf_free(&b);
}

/* Every auth module outcome but CONTINUE. */
static void imap_auth_result(struct imap_session *s, const char *tag, enum auth_result result)
{
	switch (result) {
	case AUTH_OK:
		imap_login_done(s, tag);
		break;
	case AUTH_FAILED:
		imap_auth_failed(s, tag);
		break;
	case AUTH_MALFORMED:
		imap_bad(s, tag, "Invalid base64 data");
		break;
	case AUTH_CANCELLED:
		imap_bad(s, tag, "Authentication cancelled");
		break;
	case AUTH_NOMECH:
		if (!auth_plaintext_allowed(s->auth))
			conn_printf(s->conn, "%s " REPLY_PRIVACY "\r\n", tag);
		else
			imap_no(s, tag, "[CANNOT] Unsupported authentication mechanism");
		break;
	case AUTH_TEMPFAIL:
		conn_printf(s->conn, "%s " REPLY_TEMPFAIL "\r\n", tag);
		break;
	case AUTH_CONTINUE:
		break;
	}
}

static void imap_auth_wait(struct imap_session *s, const char *tag);
static void imap_auth_done(void *ctx, enum auth_result result, const char *challenge);

void imap_cmd_login(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *user, *password;
	if (cmd->count != 2 || !imap_arg_astring(&cmd->args[0], &user) ||
	    !imap_arg_astring(&cmd->args[1], &password)) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	if (!auth_plaintext_allowed(s->auth)) {
		conn_printf(s->conn, "%s " REPLY_PRIVACY "\r\n", cmd->tag);
		return;
	}
	imap_auth_wait(s, cmd->tag);
	auth_login_async(s->auth, s->services->offload, user, password, imap_auth_done, s);
}

static void imap_sasl_continue(struct imap_session *s, const char *challenge)
{
	conn_printf(s->conn, "+ %s\r\n", challenge != NULL ? challenge : "");
	imap_set_mode(s, IMAP_INPUT_SASL);
}

/* LOGIN and AUTHENTICATE wait for the auth module (a password hashed in
 * another thread) without reading anything else meanwhile. */
static void imap_auth_wait(struct imap_session *s, const char *tag)
{
	free(s->sasl_tag);
	s->sasl_tag = xstrdup(tag);
	imap_set_mode(s, IMAP_INPUT_WAIT);
	conn_pause_input(s->conn);
}

static void imap_auth_done(void *ctx, enum auth_result result, const char *challenge)
{
	struct imap_session *s = ctx;
	imap_set_mode(s, IMAP_INPUT_COMMAND);
	if (!conn_is_closing(s->conn))
		conn_resume_input(s->conn);
	if (result == AUTH_CONTINUE) {
		imap_sasl_continue(s, challenge);
		return;
	}
	char *tag = s->sasl_tag;
	s->sasl_tag = NULL;
	imap_auth_result(s, tag, result);
	free(tag);
}

void imap_cmd_authenticate(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *mech, *initial = NULL;
	if (cmd->count < 1 || cmd->count > 2 || !imap_arg_atom(&cmd->args[0], &mech) ||
	    (cmd->count == 2 && !imap_arg_atom(&cmd->args[1], &initial))) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	imap_auth_wait(s, cmd->tag);
	auth_start_async(s->auth, s->services->offload, mech, initial, imap_auth_done, s);
}

/* One client response line during AUTHENTICATE. */
void imap_sasl_input(struct imap_session *s, const char *line, size_t len)
{
	(void)len;
	imap_set_mode(s, IMAP_INPUT_WAIT);
	conn_pause_input(s->conn);
	auth_step_async(s->auth, s->services->offload, line, imap_auth_done, s);
}

/* SMTP AUTH (RFC 4954) through the shared SASL server (auth/). */
#include "submission/smtp-private.h"
#include "auth/auth.h"

#include <stdlib.h>
#include <string.h>

static struct auth_session *smtp_auth_session(struct smtp_session *s)
{
	if (s->auth == NULL) {
		struct auth_conn_info info = {
			.service = "smtp",
			.local_ip = conn_local_ip(s->conn),
			.local_port = conn_local_port(s->conn),
			.remote_ip = conn_remote_ip(s->conn),
			.remote_port = conn_remote_port(s->conn),
			.tls = conn_is_tls(s->conn),
			.loopback = conn_is_loopback(s->conn),
			.tls_exporter = conn_tls_exporter_fn,
			.tls_exporter_ctx = s->conn,
		};
		s->auth = auth_session_new(&info);
	}
	return s->auth;
}

/* AUTH is for submission only; inbound MX never offers it. */
static bool smtp_auth_offered(struct smtp_session *s)
{
	return smtp_is_submission(s) && s->user == NULL &&
	       auth_plaintext_allowed(smtp_auth_session(s));
}

void smtp_auth_write_ehlo(struct smtp_session *s)
{
	if (!smtp_auth_offered(s))
		return;
	const char *mechs = auth_mechanisms(smtp_auth_session(s));
	if (mechs[0] != '\0')
		conn_printf(s->conn, "250-AUTH %s\r\n", mechs);
}

void smtp_auth_reset(struct smtp_session *s)
{
	if (s->auth != NULL)
		auth_session_free(&s->auth);
	free(s->user);
	s->user = NULL;
}

static void smtp_auth_result(struct smtp_session *s, enum auth_result result,
			     const char *challenge)
{
	switch (result) {
	case AUTH_CONTINUE:
		conn_printf(s->conn, "334 %s\r\n", challenge != NULL ? challenge : "");
		smtp_set_state(s, SMTP_STATE_AUTH);
		return;
	case AUTH_OK:
		s->user = xstrdup(auth_username(s->auth));
		conn_set_user(s->conn, s->user);
		conn_set_timeout(s->conn, conn_config(s->conn)->timeout_smtp);
		smtp_set_state(s, SMTP_STATE_READY);
		smtp_reply(s, "235 2.7.0 Authentication successful");
		return;
	case AUTH_FAILED:   /* already delayed by throttling (auth/) */
		smtp_set_state(s, SMTP_STATE_READY);
		smtp_reply(s, "535 5.7.8 Error: authentication failed");
		return;
	case AUTH_MALFORMED:
		smtp_set_state(s, SMTP_STATE_READY);
		smtp_error(s, "501 5.5.2 Error: cannot decode the response");
		return;
	case AUTH_CANCELLED:
		smtp_set_state(s, SMTP_STATE_READY);
		smtp_reply(s, "501 5.7.0 Error: authentication cancelled");
		return;
	case AUTH_NOMECH:
		smtp_set_state(s, SMTP_STATE_READY);
		smtp_error(s, "504 5.5.4 Error: unsupported authentication mechanism");
		return;
	case AUTH_TEMPFAIL:
		smtp_set_state(s, SMTP_STATE_READY);
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
}

/* While a password is hashed in another thread nothing else is read. */
static void smtp_auth_wait(struct smtp_session *s)
{
	smtp_set_state(s, SMTP_STATE_WAIT);
	conn_pause_input(s->conn);
}

static void smtp_auth_done(void *ctx, enum auth_result result, const char *challenge)
{
	struct smtp_session *s = ctx;
	smtp_auth_result(s, result, challenge);
	if (s->state != SMTP_STATE_WAIT && !conn_is_closing(s->conn))
		conn_resume_input(s->conn);
}

void smtp_cmd_auth(struct smtp_session *s, const char *args)
{
	if (!smtp_is_submission(s)) {
		smtp_error(s, "502 5.5.1 Error: AUTH not available on this port");
		return;
	}
	if (s->user != NULL) {
		smtp_error(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (!auth_plaintext_allowed(smtp_auth_session(s))) {
		smtp_error(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (args == NULL) {
		smtp_error(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	char *mech = pool_strdup(s->cmd_pool, args);
	char *initial = strchr(mech, ' ');
	if (initial != NULL) {
		*initial++ = '\0';
		if (strchr(initial, ' ') != NULL) {
			smtp_error(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
			return;
		}
	}
	smtp_auth_wait(s);
	auth_start_async(s->auth, conn_services(s->conn)->offload, mech, initial,
			 smtp_auth_done, s);
}

void smtp_auth_response(struct smtp_session *s, const char *line)
{
	if (line == NULL) {   /* an over-long response */
		smtp_set_state(s, SMTP_STATE_READY);
		smtp_error(s, "500 5.5.6 Error: authentication response too long");
		return;
	}
	smtp_auth_wait(s);
	auth_step_async(s->auth, conn_services(s->conn)->offload, line, smtp_auth_done, s);
}

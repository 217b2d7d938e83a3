/* The ESMTP server: session state, the command table and its dispatcher
 * (RFC 5321, RFC 3207 STARTTLS, RFC 2034/3463 enhanced status codes). */
#include "submission/smtp-private.h"
#include "auth/auth.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	CMD_HELO_FIRST = 1 << 0,   /* needs EHLO/HELO first */
	CMD_NOT_IN_TXN = 1 << 1,   /* not between MAIL and the end of the message */
	CMD_LONG_LINE = 1 << 2,    /* may use the AUTH line length */
};

struct smtp_command {
	const char *name;
	void (*fn)(struct smtp_session *s, const char *args);
	unsigned int flags;
};

static const char *const state_names[] = {
	"init", "ready", "auth", "mail", "data", "bdat", "wait",
};

void smtp_set_state(struct smtp_session *s, enum smtp_state state)
{
	if (s->state != state)
		log_debug("event=smtp-state from=%s to=%s", state_names[s->state], state_names[state]);
	s->state = state;
}

void smtp_reply(struct smtp_session *s, const char *line)
{
	conn_write_str(s->conn, line);
	conn_write(s->conn, "\r\n", 2);
}

void smtp_error(struct smtp_session *s, const char *line)
{
	smtp_reply(s, line);
	if (++s->errors >= SMTP_MAX_ERRORS) {
		smtp_reply(s, "421 4.7.0 Too many errors, closing connection");
		conn_close(s->conn, "too-many-errors");
	}
}

bool smtp_is_submission(const struct smtp_session *s)
{
	return s->kind != LISTEN_SMTP;
}

static bool smtp_can_starttls(const struct smtp_session *s)
{
	return !conn_is_tls(s->conn) && s->kind != LISTEN_SUBMISSIONS;
}

static void cmd_ehlo_common(struct smtp_session *s, const char *args, bool esmtp)
{
	if (args == NULL || args[0] == '\0') {
		smtp_error(s, esmtp ? "501 5.5.4 Syntax: EHLO hostname" : "501 5.5.4 Syntax: HELO hostname");
		return;
	}
	/* EHLO resets any transaction (RFC 5321 4.1.4) */
	smtp_txn_abort(s);
	free(s->helo);
	s->helo = xstrdup(args);
	s->esmtp = esmtp;
	smtp_set_state(s, SMTP_STATE_READY);
	const struct config *cfg = conn_config(s->conn);
	if (!esmtp) {
		conn_printf(s->conn, "250 %s\r\n", cfg->hostname);
		return;
	}
	conn_printf(s->conn, "250-%s\r\n", cfg->hostname);
	conn_printf(s->conn, "250-SIZE %zu\r\n", cfg->smtp_max_message_size);
	if (smtp_can_starttls(s))
		conn_write_str(s->conn, "250-STARTTLS\r\n");
	smtp_auth_write_ehlo(s);
	conn_write_str(s->conn, "250-PIPELINING\r\n250-8BITMIME\r\n250-BINARYMIME\r\n"
				"250-CHUNKING\r\n250-SMTPUTF8\r\n250-DSN\r\n"
				"250 ENHANCEDSTATUSCODES\r\n");
}

static void cmd_ehlo(struct smtp_session *s, const char *args)
{
	cmd_ehlo_common(s, args, true);
}

static void cmd_helo(struct smtp_session *s, const char *args)
{
	cmd_ehlo_common(s, args, false);
}

static void cmd_starttls(struct smtp_session *s, const char *args)
{
	if (args != NULL) {
		smtp_error(s, "501 5.5.4 Syntax: STARTTLS takes no parameters");
		return;
	}
	if (conn_is_tls(s->conn)) {
		smtp_error(s, "503 5.5.1 TLS already active");
		return;
	}
	if (!smtp_can_starttls(s)) {
		smtp_error(s, "502 5.5.1 STARTTLS not available here");
		return;
	}
	/* RFC 3207 4.2: forget everything learned before TLS */
	smtp_txn_abort(s);
	smtp_auth_reset(s);
	smtp_set_state(s, SMTP_STATE_INIT);
	free(s->helo);
	s->helo = NULL;
	linereader_reset(&s->lr);
	conn_starttls(s->conn, "220 2.0.0 Ready to start TLS\r\n");
}

static void cmd_noop(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "250 2.0.0 OK");
}

static void cmd_rset(struct smtp_session *s, const char *args)
{
	if (args != NULL) {
		smtp_error(s, "501 5.5.4 Syntax: RSET takes no parameters");
		return;
	}
	smtp_txn_abort(s);
	if (s->state != SMTP_STATE_INIT)
		smtp_set_state(s, SMTP_STATE_READY);
	smtp_reply(s, "250 2.0.0 OK");
}

static void cmd_help(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "214 2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET "
		      "NOOP VRFY HELP QUIT");
}

static void cmd_vrfy(struct smtp_session *s, const char *args)
{
	/* never reveals which accounts exist */
	smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_quit(struct smtp_session *s, const char *args)
{
	smtp_txn_abort(s);
	conn_printf(s->conn, "221 2.0.0 %s closing connection\r\n", conn_config(s->conn)->hostname);
	conn_close(s->conn, "quit");
}

static const struct smtp_command smtp_commands[] = {
	{ "EHLO", cmd_ehlo, CMD_NOT_IN_TXN },
	{ "HELO", cmd_helo, CMD_NOT_IN_TXN },
	{ "STARTTLS", cmd_starttls, CMD_HELO_FIRST | CMD_NOT_IN_TXN },
	{ "AUTH", smtp_cmd_auth, CMD_HELO_FIRST | CMD_NOT_IN_TXN | CMD_LONG_LINE },
	{ "MAIL", smtp_cmd_mail, CMD_HELO_FIRST },
	{ "RCPT", smtp_cmd_rcpt, CMD_HELO_FIRST },
	{ "DATA", smtp_cmd_data, CMD_HELO_FIRST },
	{ "BDAT", smtp_cmd_bdat, CMD_HELO_FIRST },
	{ "NOOP", cmd_noop, 0 },
	{ "RSET", cmd_rset, 0 },
	{ "HELP", cmd_help, 0 },
	{ "VRFY", cmd_vrfy, 0 },
	{ "QUIT", cmd_quit, 0 },
};

static void smtp_dispatch(struct smtp_session *s, char *line, size_t len, unsigned int flags)
{
	if (flags & (LR_FLAG_NUL | LR_FLAG_BARE_CR)) {
		smtp_error(s, "500 5.5.2 Syntax error: control characters in command");
		return;
	}
	char *args = strchr(line, ' ');
	if (args != NULL) {
		*args++ = '\0';
		while (*args == ' ')
			args++;
		size_t alen = strlen(args);
		while (alen > 0 && args[alen - 1] == ' ')
			args[--alen] = '\0';
		if (*args == '\0')
			args = NULL;
	}
	for (size_t i = 0; i < sizeof(smtp_commands) / sizeof(smtp_commands[0]); i++) {
		const struct smtp_command *cmd = &smtp_commands[i];
		if (ascii_strcasecmp(line, cmd->name) != 0)
			continue;
		if (!(cmd->flags & CMD_LONG_LINE) && len + 2 > SMTP_MAX_COMMAND_LINE) {
			smtp_error(s, "500 5.5.2 Error: line too long");
			return;
		}
		if ((cmd->flags & CMD_HELO_FIRST) && s->state == SMTP_STATE_INIT) {
			smtp_error(s, "503 5.5.1 Error: send EHLO/HELO first");
			return;
		}
		if ((cmd->flags & CMD_NOT_IN_TXN) && s->txn != NULL) {
			smtp_error(s, "503 5.5.1 Error: not allowed during a mail transaction");
			return;
		}
		cmd->fn(s, args);
		return;
	}
	smtp_error(s, len + 2 > SMTP_MAX_COMMAND_LINE ? "500 5.5.2 Error: line too long" :
		      "502 5.5.2 Error: command not recognized");
}

static void smtp_input(void *ctx)
{
	struct smtp_session *s = ctx;
	struct evbuffer *in = conn_input(s->conn);
	while (!conn_is_closing(s->conn) && s->state != SMTP_STATE_WAIT) {
		if (s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT) {
			if (!smtp_mail_input(s, in)) {
				conn_want_more(s->conn, true);   /* a message: min_rate */
				return;
			}
			continue;
		}
		enum lr_status st = linereader_next(&s->lr, in);
		if (st == LR_NEED_MORE) {
			conn_want_more(s->conn, evbuffer_get_length(in) > 0 || s->lr.discarding);
			return;
		}
		if (st == LR_TOO_LONG) {
			if (s->state == SMTP_STATE_AUTH)
				smtp_auth_response(s, NULL);
			else
				smtp_error(s, "500 5.5.2 Error: line too long");
			continue;
		}
		pool_clear(s->cmd_pool);
		if (s->state == SMTP_STATE_AUTH)
			smtp_auth_response(s, s->lr.line);
		else
			smtp_dispatch(s, s->lr.line, s->lr.line_len, s->lr.flags);
	}
}

static void *smtp_start(struct conn *c)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	s->conn = c;
	s->cmd_pool = pool_new(1024);
	s->kind = conn_listener_kind(c);
	linereader_init(&s->lr, SMTP_MAX_AUTH_LINE + 2);
	if (s->kind == LISTEN_SMTP) {
		/* no login on 25: the idle timeout and min_rate apply, not
		 * the pre-login deadline */
		conn_end_preauth(c);
		conn_set_timeout(c, conn_config(c)->timeout_smtp);
	}
	conn_printf(c, "220 %s ESMTP Postern\r\n", conn_config(c)->hostname);
	return s;
}

static void smtp_timeout(void *ctx)
{
	struct smtp_session *s = ctx;
	conn_printf(s->conn, "421 4.4.2 %s Error: timeout exceeded\r\n",
		    conn_config(s->conn)->hostname);
}

/* A transaction (a message being received is finished first), an
 * authentication in progress or waiting. */
static bool smtp_busy(void *ctx)
{
	struct smtp_session *s = ctx;
	return s->txn != NULL || s->state == SMTP_STATE_WAIT || s->state == SMTP_STATE_AUTH ||
	       s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT;
}

static void smtp_shutdown(void *ctx)
{
	struct smtp_session *s = ctx;
	smtp_reply(s, "421 4.3.2 Server shutting down");
}

static void smtp_end(void *ctx)
{
	struct smtp_session *s = ctx;
	/* RFC 5321 3.8: 421 may come at any time; a message under way is not
	 * accepted */
	smtp_reply(s, "421 4.7.0 Account deleted by the administrator, closing connection");
	conn_close(s->conn, "account-ended");
}

static void smtp_free(void *ctx)
{
	struct smtp_session *s = ctx;
	smtp_txn_abort(s);
	smtp_auth_reset(s);
	linereader_free(&s->lr);
	pool_free(&s->cmd_pool);
	free(s->helo);
	free(s);
}

const struct proto smtp_proto = {
	.name = "smtp",
	.start = smtp_start,
	.input = smtp_input,
	.timeout = smtp_timeout,
	.busy = smtp_busy,
	.shutdown = smtp_shutdown,
	.end = smtp_end,
	.free = smtp_free,
};

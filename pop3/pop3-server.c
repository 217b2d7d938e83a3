/* The POP3 server: session state, the command table and its dispatcher
 * (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS). */
#include "pop3/pop3.h"
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POP3_MAX_COMMAND_LINE 512
#define POP3_MAX_ERRORS 10      /* bad commands before login, then close */

enum pop3_state {
	POP3_STATE_AUTHORIZATION,
	POP3_STATE_TRANSACTION,
};

struct pop3_session {
	struct conn *conn;
	struct linereader lr;
	enum pop3_state state;
	int errors;
};

enum {
	CMD_AUTHORIZATION = 1 << 0,   /* allowed before login */
	CMD_TRANSACTION = 1 << 1,     /* allowed after login */
};

struct pop3_command {
	const char *name;
	void (*fn)(struct pop3_session *s, const char *args);
	unsigned int flags;
};

static void pop3_reply(struct pop3_session *s, const char *line)
{
	conn_write_str(s->conn, line);
	conn_write(s->conn, "\r\n", 2);
}

static void pop3_error(struct pop3_session *s, const char *line)
{
	pop3_reply(s, line);
	if (s->state == POP3_STATE_AUTHORIZATION && ++s->errors >= POP3_MAX_ERRORS) {
		pop3_reply(s, "-ERR Too many invalid commands, closing connection");
		conn_close(s->conn, "too-many-errors");
	}
}

static void cmd_capa(struct pop3_session *s, const char *args)
{
	conn_write_str(s->conn, "+OK Capability list follows\r\n");
	if (!conn_is_tls(s->conn) && conn_listener_kind(s->conn) == LISTEN_POP3)
		conn_write_str(s->conn, "STLS\r\n");
	conn_write_str(s->conn, "RESP-CODES\r\nPIPELINING\r\nIMPLEMENTATION Postern\r\n.\r\n");
}

static void cmd_stls(struct pop3_session *s, const char *args)
{
	if (args != NULL) {
		pop3_error(s, "-ERR STLS takes no arguments");
		return;
	}
	if (conn_is_tls(s->conn)) {
		pop3_error(s, "-ERR TLS already active");
		return;
	}
	if (conn_listener_kind(s->conn) != LISTEN_POP3) {
		pop3_error(s, "-ERR STLS not available here");
		return;
	}
	linereader_reset(&s->lr);
	conn_starttls(s->conn, "+OK Begin TLS negotiation\r\n");
}

static void cmd_noop(struct pop3_session *s, const char *args)
{
	pop3_reply(s, "+OK");
}

static void cmd_quit(struct pop3_session *s, const char *args)
{
	pop3_reply(s, "+OK Postern POP3 server signing off");
	conn_close(s->conn, "quit");
}

static const struct pop3_command pop3_commands[] = {
	{ "CAPA", cmd_capa, CMD_AUTHORIZATION | CMD_TRANSACTION },
	{ "STLS", cmd_stls, CMD_AUTHORIZATION },
	{ "NOOP", cmd_noop, CMD_TRANSACTION },
	{ "QUIT", cmd_quit, CMD_AUTHORIZATION | CMD_TRANSACTION },
};

static void pop3_dispatch(struct pop3_session *s, char *line, unsigned int flags)
{
	if (flags & (LR_FLAG_NUL | LR_FLAG_BARE_CR)) {
		pop3_error(s, "-ERR Invalid characters in command");
		return;
	}
	char *args = strchr(line, ' ');
	if (args != NULL) {
		*args++ = '\0';
		if (*args == '\0')
			args = NULL;
	}
	for (size_t i = 0; i < sizeof(pop3_commands) / sizeof(pop3_commands[0]); i++) {
		const struct pop3_command *cmd = &pop3_commands[i];
		if (ascii_strcasecmp(line, cmd->name) != 0)
			continue;
		unsigned int need = s->state == POP3_STATE_AUTHORIZATION ?
			CMD_AUTHORIZATION : CMD_TRANSACTION;
		if ((cmd->flags & need) == 0) {
			pop3_error(s, "-ERR Command not valid in this state");
			return;
		}
		cmd->fn(s, args);
		return;
	}
	pop3_error(s, "-ERR Unknown command");
}

static void pop3_input(void *ctx)
{
	struct pop3_session *s = ctx;
	struct evbuffer *in = conn_input(s->conn);
	while (!conn_is_closing(s->conn)) {
		enum lr_status st = linereader_next(&s->lr, in);
		if (st == LR_NEED_MORE)
			return;
		if (st == LR_TOO_LONG) {
			pop3_error(s, "-ERR Command line too long");
			continue;
		}
		pop3_dispatch(s, s->lr.line, s->lr.flags);
	}
}

static void *pop3_start(struct conn *c)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));
	s->conn = c;
	linereader_init(&s->lr, POP3_MAX_COMMAND_LINE);
	conn_write_str(c, "+OK Postern POP3 server ready\r\n");
	return s;
}

static void pop3_timeout(void *ctx)
{
	struct pop3_session *s = ctx;
	pop3_reply(s, "-ERR Autologout; idle for too long");
}

static void pop3_shutdown(void *ctx)
{
	struct pop3_session *s = ctx;
	pop3_reply(s, "-ERR [SYS/TEMP] Server shutting down");
	conn_close(s->conn, "shutdown");
}

static void pop3_free(void *ctx)
{
	struct pop3_session *s = ctx;
	linereader_free(&s->lr);
	free(s);
}

const struct proto pop3_proto = {
	.name = "pop3",
	.start = pop3_start,
	.input = pop3_input,
	.timeout = pop3_timeout,
	.shutdown = pop3_shutdown,
	.free = pop3_free,
};

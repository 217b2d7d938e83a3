/* The IMAP server: session state, the command table and its dispatcher
 * (RFC 3501 / RFC 9051). */
#include "imap/imap.h"
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMAP_MAX_COMMAND_LINE (64 * 1024)
#define IMAP_MAX_PREAUTH_LINE 8192
#define IMAP_MAX_ERRORS 10      /* bad commands before login, then BYE */
#define IMAP_MAX_TAG 64

enum imap_state {
	IMAP_STATE_NOT_AUTHENTICATED,
	IMAP_STATE_AUTHENTICATED,
	IMAP_STATE_SELECTED,
	IMAP_STATE_LOGOUT,
};

struct imap_session {
	struct conn *conn;
	struct linereader lr;
	enum imap_state state;
	int errors;
};

enum {
	CMD_ANY = 0,
	CMD_NOTAUTH = 1 << 0,   /* only before login */
};

struct imap_command {
	const char *name;
	void (*fn)(struct imap_session *s, const char *tag, const char *args);
	unsigned int flags;
};

static bool imap_login_allowed(const struct imap_session *s)
{
	/* plaintext credentials only over TLS (accounts issue refines this) */
	return conn_is_tls(s->conn);
}

static void imap_write_capabilities(struct imap_session *s)
{
	conn_write_str(s->conn, "IMAP4rev1");
	if (s->state == IMAP_STATE_NOT_AUTHENTICATED) {
		if (!conn_is_tls(s->conn) && conn_listener_kind(s->conn) == LISTEN_IMAP)
			conn_write_str(s->conn, " STARTTLS");
		if (!imap_login_allowed(s))
			conn_write_str(s->conn, " LOGINDISABLED");
	}
}

static void imap_error(struct imap_session *s, const char *tag, const char *text)
{
	conn_printf(s->conn, "%s BAD %s\r\n", tag, text);
	if (s->state == IMAP_STATE_NOT_AUTHENTICATED && ++s->errors >= IMAP_MAX_ERRORS) {
		conn_write_str(s->conn, "* BYE Too many invalid commands\r\n");
		conn_close(s->conn, "too-many-errors");
	}
}

static void cmd_capability(struct imap_session *s, const char *tag, const char *args)
{
	conn_write_str(s->conn, "* CAPABILITY ");
	imap_write_capabilities(s);
	conn_printf(s->conn, "\r\n%s OK CAPABILITY completed\r\n", tag);
}

static void cmd_noop(struct imap_session *s, const char *tag, const char *args)
{
	conn_printf(s->conn, "%s OK NOOP completed\r\n", tag);
}

static void cmd_logout(struct imap_session *s, const char *tag, const char *args)
{
	s->state = IMAP_STATE_LOGOUT;
	conn_printf(s->conn, "* BYE Logging out\r\n%s OK LOGOUT completed\r\n", tag);
	conn_close(s->conn, "logout");
}

static void cmd_starttls(struct imap_session *s, const char *tag, const char *args)
{
	if (conn_is_tls(s->conn)) {
		imap_error(s, tag, "TLS already active");
		return;
	}
	if (conn_listener_kind(s->conn) != LISTEN_IMAP) {
		imap_error(s, tag, "STARTTLS not available here");
		return;
	}
	char reply[IMAP_MAX_TAG + 64];
	snprintf(reply, sizeof(reply), "%s OK Begin TLS negotiation now\r\n", tag);
	linereader_reset(&s->lr);
	conn_starttls(s->conn, reply);
}

static void cmd_login(struct imap_session *s, const char *tag, const char *args)
{
	if (!imap_login_allowed(s)) {
		conn_printf(s->conn, "%s NO [PRIVACYREQUIRED] Use STARTTLS first\r\n", tag);
		return;
	}
	conn_printf(s->conn, "%s NO [UNAVAILABLE] Login not available yet\r\n", tag);
}

static const struct imap_command imap_commands[] = {
	{ "CAPABILITY", cmd_capability, CMD_ANY },
	{ "NOOP", cmd_noop, CMD_ANY },
	{ "LOGOUT", cmd_logout, CMD_ANY },
	{ "STARTTLS", cmd_starttls, CMD_NOTAUTH },
	{ "LOGIN", cmd_login, CMD_NOTAUTH },
	{ "AUTHENTICATE", cmd_login, CMD_NOTAUTH },
};

static bool imap_tag_valid(const char *tag, size_t len)
{
	if (len == 0 || len > IMAP_MAX_TAG)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)tag[i];
		/* tag = 1*<any ASTRING-CHAR except "+"> */
		if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '{' || c == '%' ||
		    c == '*' || c == '"' || c == '\\' || c == '+')
			return false;
	}
	return true;
}

static void imap_dispatch(struct imap_session *s, char *line, size_t len, unsigned int flags)
{
	char *sp = memchr(line, ' ', len);
	size_t tag_len = sp != NULL ? (size_t)(sp - line) : len;
	if (!imap_tag_valid(line, tag_len) || (flags & LR_FLAG_NUL)) {
		imap_error(s, "*", "Invalid tag or command syntax");
		return;
	}
	line[tag_len] = '\0';
	const char *tag = line;
	if (sp == NULL) {
		imap_error(s, tag, "Missing command");
		return;
	}
	char *name = sp + 1;
	char *args = strchr(name, ' ');
	if (args != NULL)
		*args++ = '\0';
	if (flags & LR_FLAG_BARE_CR) {
		imap_error(s, tag, "Invalid characters in command");
		return;
	}
	for (size_t i = 0; i < sizeof(imap_commands) / sizeof(imap_commands[0]); i++) {
		const struct imap_command *cmd = &imap_commands[i];
		if (ascii_strcasecmp(name, cmd->name) != 0)
			continue;
		if ((cmd->flags & CMD_NOTAUTH) && s->state != IMAP_STATE_NOT_AUTHENTICATED) {
			imap_error(s, tag, "Command not valid in this state");
			return;
		}
		cmd->fn(s, tag, args);
		return;
	}
	imap_error(s, tag, "Unknown command");
}

static void imap_input(void *ctx)
{
	struct imap_session *s = ctx;
	struct evbuffer *in = conn_input(s->conn);
	while (!conn_is_closing(s->conn)) {
		enum lr_status st = linereader_next(&s->lr, in);
		if (st == LR_NEED_MORE)
			return;
		if (st == LR_TOO_LONG) {
			imap_error(s, "*", "[TOOBIG] Command line too long");
			continue;
		}
		imap_dispatch(s, s->lr.line, s->lr.line_len, s->lr.flags);
	}
}

static void *imap_start(struct conn *c)
{
	struct imap_session *s = xcalloc(1, sizeof(*s));
	s->conn = c;
	linereader_init(&s->lr, IMAP_MAX_PREAUTH_LINE);
	conn_write_str(c, "* OK [CAPABILITY ");
	imap_write_capabilities(s);
	conn_write_str(c, "] Postern ready\r\n");
	return s;
}

static void imap_timeout(void *ctx)
{
	struct imap_session *s = ctx;
	conn_write_str(s->conn, "* BYE Autologout; idle for too long\r\n");
}

static void imap_shutdown(void *ctx)
{
	struct imap_session *s = ctx;
	conn_write_str(s->conn, "* BYE [UNAVAILABLE] Server shutting down\r\n");
	conn_close(s->conn, "shutdown");
}

static void imap_free(void *ctx)
{
	struct imap_session *s = ctx;
	linereader_free(&s->lr);
	free(s);
}

const struct proto imap_proto = {
	.name = "imap",
	.start = imap_start,
	.input = imap_input,
	.timeout = imap_timeout,
	.shutdown = imap_shutdown,
	.free = imap_free,
};

/* The POP3 server: the session, its states, the dispatcher that enforces
 * the command table, and the commands of every state: CAPA, STLS, NOOP,
 * QUIT (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS). */
#include "pop3/pop3.h"
#include "pop3/pop3-private.h"
#include "auth/auth.h"

#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const pop3_state_names[] = {
	[POP3_STATE_AUTHORIZATION] = "authorization",
	[POP3_STATE_SASL] = "sasl",
	[POP3_STATE_DELAYED] = "delayed",
	[POP3_STATE_TRANSACTION] = "transaction",
	[POP3_STATE_STREAMING] = "streaming",
	[POP3_STATE_UPDATE] = "update",
};

void pop3_set_state(struct pop3_session *s, enum pop3_state state)
{
	if (s->state == state)
		return;
	log_debug("event=pop3-state from=%s to=%s", pop3_state_names[s->state],
		  pop3_state_names[state]);
	s->state = state;
}

void pop3_reply(struct pop3_session *s, const char *line)
{
	conn_write_str(s->conn, line);
	conn_write(s->conn, "\r\n", 2);
}

void pop3_replyf(struct pop3_session *s, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	buf_append(&b, "\r\n", 2);
	conn_write(s->conn, b.data, b.len);
	buf_free(&b);
}

void pop3_error(struct pop3_session *s, const char *line)
{
	pop3_reply(s, line);
	if (s->state == POP3_STATE_AUTHORIZATION && ++s->errors >= POP3_MAX_ERRORS) {
		pop3_reply(s, "-ERR Too many invalid commands, closing connection");
		conn_close(s->conn, "too-many-errors");
	}
}

void pop3_cmd_capa(struct pop3_session *s, const struct pop3_request *req)
{
	struct buf b = BUF_INIT;
	buf_append_str(&b, "+OK Capability list follows\r\n");
	if (s->state == POP3_STATE_AUTHORIZATION) {
		if (!conn_is_tls(s->conn) && conn_listener_kind(s->conn) == LISTEN_POP3)
			buf_append_str(&b, "STLS\r\n");
		if (auth_plaintext_allowed(s->auth))
			buf_append_str(&b, "USER\r\n");
		const char *mechs = auth_mechanisms(s->auth);
		if (mechs[0] != '\0')
			buf_printf(&b, "SASL %s\r\n", mechs);
	}
	buf_append_str(&b, "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
		       "EXPIRE NEVER\r\nLOGIN-DELAY 0\r\nIMPLEMENTATION Postern\r\n.\r\n");
	conn_write(s->conn, b.data, b.len);
	buf_free(&b);
}

void pop3_cmd_stls(struct pop3_session *s, const struct pop3_request *req)
{
	if (conn_is_tls(s->conn)) {
		pop3_error(s, "-ERR TLS already active");
		return;
	}
	if (conn_listener_kind(s->conn) != LISTEN_POP3) {
		pop3_error(s, "-ERR STLS not available here");
		return;
	}
	linereader_reset(&s->lr);
	/* what USER said before TLS is forgotten with the rest */
	free(s->user);
	s->user = NULL;
	auth_session_set_tls(s->auth);
	conn_starttls(s->conn, "+OK Begin TLS negotiation\r\n");
}

void pop3_cmd_noop(struct pop3_session *s, const struct pop3_request *req)
{
	pop3_reply(s, "+OK");
}

void pop3_cmd_quit(struct pop3_session *s, const struct pop3_request *req)
{
	if (s->state == POP3_STATE_TRANSACTION) {
		pop3_set_state(s, POP3_STATE_UPDATE);
		pop3_reply(s, pop3_maildrop_update(s));
	} else {
		pop3_reply(s, "+OK Postern POP3 server signing off");
	}
	conn_close(s->conn, "quit");
}

/* Enforces the table: state first (a known command in the wrong state
 * says so whatever its arguments), then syntax and arity, then that
 * message numbers name a message of the maildrop not deleted. */
static void pop3_dispatch(struct pop3_session *s, char *line, size_t len, unsigned int flags)
{
	struct pop3_request req;
	enum pop3_parse_result r = pop3_parse(line, len, flags, &req);
	unsigned int need = s->state == POP3_STATE_AUTHORIZATION ?
		CMD_AUTHORIZATION : CMD_TRANSACTION;
	if (r != POP3_PARSE_BAD_CHARS && req.cmd != NULL && (req.cmd->flags & need) == 0) {
		pop3_error(s, "-ERR Command not valid in this state");
		return;
	}
	if (r != POP3_PARSE_OK) {
		pop3_error(s, pop3_parse_error(r));
		return;
	}
	for (unsigned int i = 0; i < req.argc; i++) {
		if (req.cmd->args[i] != POP3_ARG_MSG)
			continue;
		const char *error = NULL;
		req.msg[i] = pop3_msg_lookup(s, req.num[i], &error);
		if (req.msg[i] == NULL) {
			pop3_error(s, error);
			return;
		}
	}
	req.cmd->fn(s, &req);
}

static bool pop3_accepts_input(const struct pop3_session *s)
{
	return s->state == POP3_STATE_AUTHORIZATION || s->state == POP3_STATE_SASL ||
	       s->state == POP3_STATE_TRANSACTION;
}

static void pop3_input(void *ctx)
{
	struct pop3_session *s = ctx;
	struct evbuffer *in = conn_input(s->conn);
	while (!conn_is_closing(s->conn) && pop3_accepts_input(s)) {
		enum lr_status st = linereader_next(&s->lr, in);
		if (st == LR_NEED_MORE) {
			conn_want_more(s->conn, evbuffer_get_length(in) > 0 || s->lr.discarding);
			break;
		}
		if (st == LR_TOO_LONG) {
			if (s->state == POP3_STATE_SASL)
				pop3_sasl_response(s, NULL);
			else
				pop3_error(s, "-ERR Command line too long");
			continue;
		}
		if (s->state == POP3_STATE_SASL)
			pop3_sasl_response(s, s->lr.line);
		else
			pop3_dispatch(s, s->lr.line, s->lr.line_len, s->lr.flags);
	}
	if (!pop3_accepts_input(s) && !conn_is_closing(s->conn))
		conn_pause_input(s->conn);
}

void pop3_resume(struct pop3_session *s)
{
	conn_resume_input(s->conn);
}

static void *pop3_start(struct conn *c)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));
	s->conn = c;
	s->lock = -1;
	linereader_init(&s->lr, POP3_MAX_COMMAND_LINE);
	struct auth_conn_info info = {
		.service = "pop",
		.local_ip = conn_local_ip(c),
		.local_port = conn_local_port(c),
		.remote_ip = conn_remote_ip(c),
		.remote_port = conn_remote_port(c),
		.tls = conn_listener_kind(c) == LISTEN_POP3S,
		.loopback = conn_is_loopback(c),
		.tls_exporter = conn_tls_exporter_fn,
		.tls_exporter_ctx = c,
	};
	s->auth = auth_session_new(&info);
	conn_write_str(c, "+OK Postern POP3 server ready\r\n");
	return s;
}

static void pop3_timeout(void *ctx)
{
	struct pop3_session *s = ctx;
	/* an idle timeout never applies the deletions (RFC 1939 3) */
	pop3_reply(s, "-ERR Autologout; idle for too long");
}

/* RETR/TOP streaming, an authentication waiting or in a SASL exchange. */
static bool pop3_busy(void *ctx)
{
	struct pop3_session *s = ctx;
	return s->state == POP3_STATE_STREAMING || s->state == POP3_STATE_DELAYED ||
	       s->state == POP3_STATE_SASL;
}

static void pop3_shutdown(void *ctx)
{
	struct pop3_session *s = ctx;
	pop3_reply(s, "-ERR [SYS/TEMP] Server shutting down");
}

static void pop3_end(void *ctx)
{
	struct pop3_session *s = ctx;
	/* no deletion is applied (RFC 1939 6: only QUIT does); mid-RETR the
	 * message is cut off rather than ended by a line of ours */
	if (s->state != POP3_STATE_STREAMING)
		pop3_reply(s, "-ERR Account deleted by the administrator");
	conn_close(s->conn, "account-ended");
}

static void pop3_free(void *ctx)
{
	struct pop3_session *s = ctx;
	pop3_stream_free(s);
	pop3_maildrop_close(s);
	pop3_auth_free(s);
	linereader_free(&s->lr);
	free(s);
}

const struct proto pop3_proto = {
	.name = "pop3",
	.start = pop3_start,
	.input = pop3_input,
	.timeout = pop3_timeout,
	.busy = pop3_busy,
	.shutdown = pop3_shutdown,
	.end = pop3_end,
	.free = pop3_free,
};

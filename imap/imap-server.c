/* The IMAP server: session state, the command table and its dispatcher
 * (RFC 3501 / RFC 9051), and the input loop over the command reader. */
#include "imap/imap.h"
#include "imap/imap-private.h"
#include "auth/auth.h"
#include "store/store.h"

#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	CMD_NOTAUTH = 1 << 0,    /* before login */
	CMD_AUTH = 1 << 1,       /* after login (authenticated or selected) */
	CMD_SELECTED = 1 << 2,   /* a mailbox is selected */
	CMD_UID = 1 << 3,        /* also as "UID <name>" */
	CMD_NOSYNC = 1 << 4,     /* no untagged updates at the end (it changes
				    or leaves the selected mailbox) */
	CMD_NOEXPUNGE = 1 << 5,  /* RFC 3501 7.4.1: no EXPUNGE (nor VANISHED)
				    during the sequence-number form */
	CMD_ANY = CMD_NOTAUTH | CMD_AUTH | CMD_SELECTED,
};

struct imap_command {
	const char *name;
	imap_cmd_fn *fn;
	unsigned int flags;
};

static const char *const state_names[] = {
	"not-authenticated", "authenticated", "selected", "logout",
};
static const char *const mode_names[] = { "command", "sasl", "idle", "wait" };

void imap_set_state(struct imap_session *s, enum imap_state state)
{
	if (s->state != state)
		log_debug("event=imap-state from=%s to=%s", state_names[s->state], state_names[state]);
	s->state = state;
}

void imap_set_mode(struct imap_session *s, enum imap_input_mode mode)
{
	if (s->mode != mode)
		log_debug("event=imap-input from=%s to=%s", mode_names[s->mode], mode_names[mode]);
	s->mode = mode;
}

void imap_capabilities(struct imap_session *s, struct buf *b)
{
	buf_append_str(b, "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE");
	if (s->state == IMAP_STATE_NOT_AUTHENTICATED) {
		if (!s->tls && conn_listener_kind(s->conn) == LISTEN_IMAP)
			buf_append_str(b, " STARTTLS");
		if (!auth_plaintext_allowed(s->auth))
			buf_append_str(b, " LOGINDISABLED");
		const char *mechs = auth_mechanisms(s->auth);
		while (*mechs != '\0') {
			size_t n = strcspn(mechs, " ");
			buf_append_str(b, " AUTH=");
			buf_append(b, mechs, n);
			mechs += n;
			mechs += strspn(mechs, " ");
		}
		return;
	}
	buf_append_str(b, " IDLE NAMESPACE UNSELECT CHILDREN SPECIAL-USE CREATE-SPECIAL-USE"
		       " LIST-EXTENDED LIST-STATUS STATUS=SIZE UIDPLUS MOVE MULTIAPPEND ESEARCH SEARCHRES CONDSTORE QRESYNC BINARY");
	buf_printf(b, " APPENDLIMIT=%llu", (unsigned long long)imap_append_limit(s));
	/* issue 17 part 2 */
	buf_append_str(b, " SAVEDATE OBJECTID QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE"
		       " METADATA METADATA-SERVER UTF8=ACCEPT CATENATE NOTIFY");
	if (!conn_is_compressed(s->conn))
		buf_append_str(b, " COMPRESS=DEFLATE");
}

void imap_command_updates(struct imap_session *s)
{
	if (!s->updates_pending)
		return;
	s->updates_pending = false;
	imap_sync(s, s->updates_expunge);
}

static void imap_vreply(struct imap_session *s, const char *tag, const char *word,
			const char *fmt, va_list ap)
{
	imap_command_updates(s);
	struct buf b = BUF_INIT;
	buf_printf(&b, "%s %s ", tag, word);
	buf_vprintf(&b, fmt, ap);
	buf_append_str(&b, "\r\n");
	conn_write(s->conn, b.data, b.len);
	buf_free(&b);
}

void imap_ok(struct imap_session *s, const char *tag, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	imap_vreply(s, tag, "OK", fmt, ap);
	va_end(ap);
}

void imap_no(struct imap_session *s, const char *tag, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	imap_vreply(s, tag, "NO", fmt, ap);
	va_end(ap);
}

void imap_bad(struct imap_session *s, const char *tag, const char *text)
{
	conn_printf(s->conn, "%s BAD %s\r\n", tag, text);
	int max = s->state == IMAP_STATE_NOT_AUTHENTICATED ? IMAP_MAX_ERRORS_PREAUTH
							    : IMAP_MAX_ERRORS;
	if (++s->errors >= max) {
		conn_write_str(s->conn, "* BYE Too many invalid commands\r\n");
		conn_close(s->conn, "too-many-errors");
	}
}

void imap_write_buf(struct imap_session *s, struct buf *b)
{
	if (b->len == 0)
		return;
	conn_write(s->conn, b->data, b->len);
	buf_reset(b);
}

/* ---- commands that need no other file ---------------------------------- */

static void imap_cmd_capability(struct imap_session *s, struct imap_cmd *cmd)
{
	struct buf b = BUF_INIT;
	buf_append_str(&b, "* CAPABILITY ");
	imap_capabilities(s, &b);
	buf_append_str(&b, "\r\n");
	imap_write_buf(s, &b);
	imap_command_updates(s);
	buf_printf(&b, "%s OK CAPABILITY completed\r\n", cmd->tag);
	imap_write_buf(s, &b);
	buf_free(&b);
}

static void imap_cmd_noop(struct imap_session *s, struct imap_cmd *cmd)
{
	/* the updates come with the tagged reply, as after every command */
	imap_ok(s, cmd->tag, "%s completed", cmd->name);
}

static void imap_cmd_logout(struct imap_session *s, struct imap_cmd *cmd)
{
	imap_set_state(s, IMAP_STATE_LOGOUT);
	conn_printf(s->conn, "* BYE Logging out\r\n%s OK LOGOUT completed\r\n", cmd->tag);
	conn_close(s->conn, "logout");
}

static void imap_cmd_starttls(struct imap_session *s, struct imap_cmd *cmd)
{
	if (s->tls) {
		imap_bad(s, cmd->tag, "TLS already active");
		return;
	}
	if (conn_listener_kind(s->conn) != LISTEN_IMAP) {
		imap_bad(s, cmd->tag, "STARTTLS not available here");
		return;
	}
	char reply[IMAP_MAX_TAG + 64];
	snprintf(reply, sizeof(reply), "%s OK Begin TLS negotiation now\r\n", cmd->tag);
	imap_reader_reset(&s->reader);
	s->tls = true;
	auth_session_set_tls(s->auth);
	conn_starttls(s->conn, reply);
}

/* RFC 2971: we say who we are and ignore what the client says. */
static void imap_cmd_id(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd->count != 1 || (!imap_arg_is_nil(&cmd->args[0]) &&
				cmd->args[0].type != IMAP_ARG_LIST)) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	conn_write_str(s->conn, "* ID (\"name\" \"Postern\")\r\n");
	imap_ok(s, cmd->tag, "ID completed");
}

/* RFC 5161. Nothing we announce needs enabling yet. */
static void imap_cmd_enable(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd->count == 0) {
		imap_bad(s, cmd->tag, "Missing capability");
		return;
	}
	struct buf b = BUF_INIT;
	buf_append_str(&b, "* ENABLED");
	for (size_t i = 0; i < cmd->count; i++) {
		const char *cap;
		if (!imap_arg_atom(&cmd->args[i], &cap)) {
			buf_free(&b);
			imap_bad(s, cmd->tag, "Invalid capability");
			return;
		}
		unsigned int bit = ascii_strcasecmp(cap, "CONDSTORE") == 0 ? IMAP_ENABLED_CONDSTORE
				 : ascii_strcasecmp(cap, "QRESYNC") == 0
				 ? IMAP_ENABLED_QRESYNC | IMAP_ENABLED_CONDSTORE
				 : ascii_strcasecmp(cap, "IMAP4rev2") == 0 ? IMAP_ENABLED_IMAP4REV2
				 : ascii_strcasecmp(cap, "UTF8=ACCEPT") == 0 ? IMAP_ENABLED_UTF8 : 0;
		/* RFC 5161: only what was not enabled before is listed */
		if (bit != 0 && (s->enabled & bit) != bit) {
			s->enabled |= bit;
			buf_printf(&b, " %s", bit & IMAP_ENABLED_QRESYNC ? "QRESYNC"
					      : bit & IMAP_ENABLED_IMAP4REV2 ? "IMAP4rev2"
					      : bit & IMAP_ENABLED_UTF8 ? "UTF8=ACCEPT" : "CONDSTORE");
		}
	}
	buf_append_str(&b, "\r\n");
	imap_write_buf(s, &b);
	imap_ok(s, cmd->tag, "ENABLE completed");
	buf_free(&b);
}

static const struct imap_command imap_commands[] = {
	{ "CAPABILITY", imap_cmd_capability, CMD_ANY },
	{ "NOOP", imap_cmd_noop, CMD_ANY },
	{ "LOGOUT", imap_cmd_logout, CMD_ANY | CMD_NOSYNC },
	{ "ID", imap_cmd_id, CMD_ANY },
	{ "STARTTLS", imap_cmd_starttls, CMD_NOTAUTH },
	{ "LOGIN", imap_cmd_login, CMD_NOTAUTH },
	{ "AUTHENTICATE", imap_cmd_authenticate, CMD_NOTAUTH },
	{ "ENABLE", imap_cmd_enable, CMD_AUTH | CMD_SELECTED },
	{ "SELECT", imap_cmd_select, CMD_AUTH | CMD_SELECTED | CMD_NOSYNC },
	{ "EXAMINE", imap_cmd_select, CMD_AUTH | CMD_SELECTED | CMD_NOSYNC },
	{ "CREATE", imap_cmd_create, CMD_AUTH | CMD_SELECTED },
	{ "DELETE", imap_cmd_delete, CMD_AUTH | CMD_SELECTED },
	{ "RENAME", imap_cmd_rename, CMD_AUTH | CMD_SELECTED },
	{ "SUBSCRIBE", imap_cmd_subscribe, CMD_AUTH | CMD_SELECTED },
	{ "UNSUBSCRIBE", imap_cmd_unsubscribe, CMD_AUTH | CMD_SELECTED },
	{ "LIST", imap_cmd_list, CMD_AUTH | CMD_SELECTED },
	{ "LSUB", imap_cmd_lsub, CMD_AUTH | CMD_SELECTED },
	{ "NAMESPACE", imap_cmd_namespace, CMD_AUTH | CMD_SELECTED },
	{ "STATUS", imap_cmd_status, CMD_AUTH | CMD_SELECTED },
	{ "APPEND", imap_cmd_append, CMD_AUTH | CMD_SELECTED },
	{ "IDLE", imap_cmd_idle, CMD_AUTH | CMD_SELECTED },
	{ "CHECK", imap_cmd_check, CMD_SELECTED },
	{ "CLOSE", imap_cmd_close, CMD_SELECTED | CMD_NOSYNC },
	{ "UNSELECT", imap_cmd_unselect, CMD_SELECTED | CMD_NOSYNC },
	{ "FETCH", imap_cmd_fetch, CMD_SELECTED | CMD_UID | CMD_NOEXPUNGE },
	{ "SEARCH", imap_cmd_search, CMD_SELECTED | CMD_UID | CMD_NOEXPUNGE },
	{ "STORE", imap_cmd_store, CMD_SELECTED | CMD_UID | CMD_NOEXPUNGE },
	{ "EXPUNGE", imap_cmd_expunge, CMD_SELECTED | CMD_UID },
	{ "COPY", imap_cmd_copy, CMD_SELECTED | CMD_UID },
	{ "MOVE", imap_cmd_move, CMD_SELECTED | CMD_UID },
	{ "COMPRESS", imap_cmd_compress, CMD_AUTH | CMD_SELECTED },
	{ "GETQUOTAROOT", imap_cmd_getquotaroot, CMD_AUTH | CMD_SELECTED },
	{ "GETQUOTA", imap_cmd_getquota, CMD_AUTH | CMD_SELECTED },
	{ "SETQUOTA", imap_cmd_setquota, CMD_AUTH | CMD_SELECTED },
	{ "GETMETADATA", imap_cmd_getmetadata, CMD_AUTH | CMD_SELECTED },
	{ "SETMETADATA", imap_cmd_setmetadata, CMD_AUTH | CMD_SELECTED },
	{ "NOTIFY", imap_cmd_notify, CMD_AUTH | CMD_SELECTED },
};

static const struct imap_command *imap_command_find(const char *name)
{
	for (size_t i = 0; i < sizeof(imap_commands) / sizeof(imap_commands[0]); i++)
		if (ascii_strcasecmp(name, imap_commands[i].name) == 0)
			return &imap_commands[i];
	return NULL;
}

static unsigned int imap_state_flag(const struct imap_session *s)
{
	switch (s->state) {
	case IMAP_STATE_NOT_AUTHENTICATED:
		return CMD_NOTAUTH;
	case IMAP_STATE_AUTHENTICATED:
		return CMD_AUTH;
	case IMAP_STATE_SELECTED:
		return CMD_SELECTED;
	default:
		return 0;
	}
}

void imap_command_done(struct imap_session *s)
{
	s->updates_pending = false;
	s->cmd_async = false;
	s->cmd_ctx = NULL;
	pool_clear(s->cmd_pool);
	if (s->mode == IMAP_INPUT_WAIT) {
		imap_set_mode(s, IMAP_INPUT_COMMAND);
		if (!conn_is_closing(s->conn))
			conn_resume_input(s->conn);
	}
	imap_notify_after_command(s);
	conn_busy_done(s->conn);
}

/* The dispatcher: syntax, command name, UID form and state are checked
 * here, from the table, before any handler runs. */
static void imap_command_run(struct imap_session *s, const char *data, size_t len,
			     bool bad_chars)
{
	struct imap_command_line line;
	const char *error = NULL;
	if (imap_parse(s->cmd_pool, data, len, &line, &error) < 0 || bad_chars) {
		const char *tag = line.tag != NULL ? line.tag : "*";
		imap_bad(s, tag, bad_chars ? "Invalid characters in command" : error);
		pool_clear(s->cmd_pool);
		return;
	}
	struct imap_cmd cmd = { line.tag, line.name, line.args, line.count, false, s->cmd_pool };
	const struct imap_command *def;
	if (ascii_strcasecmp(line.name, "UID") == 0) {
		const char *sub = NULL;
		def = line.count > 0 && imap_arg_atom(&line.args[0], &sub) ? imap_command_find(sub)
									    : NULL;
		if (def == NULL || !(def->flags & CMD_UID)) {
			imap_bad(s, cmd.tag, "Unknown UID command");
			pool_clear(s->cmd_pool);
			return;
		}
		cmd.uid = true;
		cmd.args++;
		cmd.count--;
		cmd.name = pool_printf(s->cmd_pool, "UID %s", def->name);
	} else {
		def = imap_command_find(line.name);
		if (def == NULL) {
			imap_bad(s, cmd.tag, "Unknown command");
			pool_clear(s->cmd_pool);
			return;
		}
		cmd.name = def->name;
	}
	if (!(def->flags & imap_state_flag(s))) {
		const char *why = "Command not valid in this state";
		if (s->state == IMAP_STATE_NOT_AUTHENTICATED)
			why = "Command not valid before login";
		else if (s->state == IMAP_STATE_AUTHENTICATED && (def->flags & CMD_SELECTED))
			why = "No mailbox selected";
		imap_bad(s, cmd.tag, why);
		pool_clear(s->cmd_pool);
		return;
	}
	s->updates_pending = s->state == IMAP_STATE_SELECTED && !(def->flags & CMD_NOSYNC);
	/* the UID forms name no sequence numbers: expunges may be told */
	s->updates_expunge = cmd.uid || !(def->flags & CMD_NOEXPUNGE);
	def->fn(s, &cmd);
	if (!s->cmd_async) {
		s->updates_pending = false;
		pool_clear(s->cmd_pool);
		imap_notify_after_command(s);
	}
}

static void imap_reader_event(struct imap_session *s, enum imap_read_status st)
{
	char tagbuf[IMAP_MAX_TAG + 1];
	const char *tag = imap_reader_tag(&s->reader, tagbuf, sizeof(tagbuf));
	switch (st) {
	case IMAP_READ_COMMAND:
		imap_command_run(s, s->reader.cmd.data, s->reader.cmd.len, s->reader.bad_chars);
		imap_append_reset(s);
		break;
	case IMAP_READ_CONTINUE:
		conn_write_str(s->conn, "+ OK\r\n");
		return;
	case IMAP_READ_TOO_LONG:
		imap_bad(s, tag, "[TOOBIG] Command too long");
		break;
	case IMAP_READ_LITERAL_TOO_BIG:
		imap_bad(s, tag, "[TOOBIG] Literal too big");
		break;
	case IMAP_READ_FATAL:
		conn_printf(s->conn, "* BYE [TOOBIG] Literal too big\r\n");
		conn_close(s->conn, "literal-too-big");
		break;
	case IMAP_READ_NEED_MORE:
		break;
	}
	imap_append_reset(s);
}

static void imap_input(void *ctx)
{
	struct imap_session *s = ctx;
	while (!conn_is_closing(s->conn) && s->mode != IMAP_INPUT_WAIT) {
		/* asked each time: COMPRESS changes where input comes from */
		struct evbuffer *in = conn_input(s->conn);
		if (s->mode == IMAP_INPUT_SASL || s->mode == IMAP_INPUT_IDLE) {
			enum lr_status st = linereader_next(&s->reader.lr, in);
			if (st == LR_NEED_MORE) {
				conn_want_more(s->conn, evbuffer_get_length(in) > 0 ||
						       s->reader.lr.discarding);
				return;
			}
			const char *line = s->reader.lr.line;
			size_t len = s->reader.lr.line_len;
			if (st == LR_TOO_LONG ||
			    (s->reader.lr.flags & (LR_FLAG_NUL | LR_FLAG_BARE_CR))) {
				line = "\x01";   /* neither base64 nor DONE */
				len = 1;
			}
			if (s->mode == IMAP_INPUT_SASL)
				imap_sasl_input(s, line, len);
			else
				imap_idle_input(s, line, len);
			continue;
		}
		enum imap_read_status st = imap_reader_next(&s->reader, in);
		if (st == IMAP_READ_NEED_MORE) {
			/* a command begun (text or literal) must keep min_rate */
			conn_want_more(s->conn, evbuffer_get_length(in) > 0 || s->reader.cmd.len > 0 ||
					       s->reader.literal_left > 0 || s->reader.lr.discarding);
			return;
		}
		imap_reader_event(s, st);
	}
}

static void *imap_start(struct conn *c)
{
	struct imap_session *s = xcalloc(1, sizeof(*s));
	s->conn = c;
	s->services = conn_services(c);
	s->cmd_pool = pool_new(8192);
	s->tls = conn_is_tls(c) || conn_listener_kind(c) == LISTEN_IMAPS;
	imap_reader_init(&s->reader, IMAP_PREAUTH_TEXT_MAX, IMAP_PREAUTH_LITERAL_MAX);
	struct auth_conn_info info = {
		.service = "imap",
		.local_ip = conn_local_ip(c),
		.local_port = conn_local_port(c),
		.remote_ip = conn_remote_ip(c),
		.remote_port = conn_remote_port(c),
		.tls = s->tls,
		.loopback = conn_is_loopback(c),
		.tls_exporter = conn_tls_exporter_fn,
		.tls_exporter_ctx = c,
	};
	s->auth = auth_session_new(&info);
	struct buf b = BUF_INIT;
	buf_append_str(&b, "* OK [CAPABILITY ");
	imap_capabilities(s, &b);
	buf_append_str(&b, "] Postern ready\r\n");
	imap_write_buf(s, &b);
	buf_free(&b);
	return s;
}

static void imap_timeout(void *ctx)
{
	struct imap_session *s = ctx;
	conn_write_str(s->conn, "* BYE Autologout; idle for too long\r\n");
}

/* A command in progress: never a BYE inside a streamed literal (the core
 * waits until the command is done), nor in an authentication exchange or
 * an APPEND being received. IDLE is not busy: BYE may end it. */
static bool imap_busy(void *ctx)
{
	struct imap_session *s = ctx;
	return s->cmd_async || s->mode == IMAP_INPUT_WAIT || s->mode == IMAP_INPUT_SASL ||
	       s->reader.streaming;
}

static void imap_shutdown(void *ctx)
{
	struct imap_session *s = ctx;
	conn_write_str(s->conn, "* BYE [UNAVAILABLE] Server shutting down\r\n");
}

static void imap_end(void *ctx)
{
	struct imap_session *s = ctx;
	/* in the middle of a FETCH literal a BYE would be taken for its bytes */
	if (!s->cmd_async)
		conn_write_str(s->conn, "* BYE Account deleted by the administrator\r\n");
	conn_close(s->conn, "account-ended");
}

static void imap_free(void *ctx)
{
	struct imap_session *s = ctx;
	imap_idle_stop(s);
	imap_notify_free(s);
	imap_fetch_abort(s);
	imap_append_reset(s);
	free(s->appends);
	free(s->own);
	imap_mailbox_close(s);
	if (s->account != NULL)
		store_account_close(&s->account);
	free(s->sasl_tag);
	free(s->user);
	auth_session_free(&s->auth);
	imap_reader_free(&s->reader);
	pool_free(&s->cmd_pool);
	free(s);
}

const struct proto imap_proto = {
	.name = "imap",
	.start = imap_start,
	.input = imap_input,
	.timeout = imap_timeout,
	.busy = imap_busy,
	.shutdown = imap_shutdown,
	.end = imap_end,
	.free = imap_free,
};

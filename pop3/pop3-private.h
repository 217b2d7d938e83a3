#ifndef POSTERN_POP3_PRIVATE_H
#define POSTERN_POP3_PRIVATE_H

/* pop3/ internals shared by its files: the session, the command table and
 * its parser, and the functions one command group offers another. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "core/conn.h"

#define POP3_MAX_COMMAND_LINE 512
#define POP3_MAX_SASL_LINE 16384   /* a SASL response line (RFC 5034 4) */
#define POP3_MAX_ERRORS 10         /* bad commands before login, then close */

struct auth_session;
struct store_account;
struct store_mailbox;
struct event;

enum pop3_state {
	POP3_STATE_AUTHORIZATION,
	POP3_STATE_SASL,          /* AUTH: waiting for a client response line */
	POP3_STATE_DELAYED,       /* a throttled failure reply is pending */
	POP3_STATE_TRANSACTION,
	POP3_STATE_STREAMING,     /* RETR/TOP: the message is being sent */
	POP3_STATE_UPDATE,        /* QUIT in TRANSACTION: applying deletions */
};

/* One message of the maildrop as seen at login. */
struct pop3_msg {
	uint32_t uid;
	uint64_t size;            /* octets RETR sends (CRLF line ends) */
	bool deleted;             /* DELE'd in this session */
	bool retrieved;           /* \Seen already (at login or by RETR) */
};

struct pop3_stream;
struct pop3_request;

struct pop3_session {
	struct conn *conn;
	struct linereader lr;
	enum pop3_state state;
	int errors;

	/* AUTHORIZATION */
	struct auth_session *auth;
	char *user;               /* from USER, waiting for PASS */

	/* TRANSACTION */
	struct store_account *acct;
	struct store_mailbox *mbox;
	int lock;
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	uint32_t msg_count;
	struct pop3_stream *stream;
};

/* ---- the command table and its parser (pop3-parse.c) ---- */

enum {
	CMD_AUTHORIZATION = 1 << 0,   /* allowed before login */
	CMD_TRANSACTION = 1 << 1,     /* allowed after login */
	CMD_REST = 1 << 2,            /* one argument: the rest of the line, verbatim */
};

/* What an argument must look like. */
enum pop3_arg {
	POP3_ARG_WORD,    /* any non-empty text without spaces */
	POP3_ARG_MSG,     /* a message number (the dispatcher checks range) */
	POP3_ARG_COUNT,   /* a non-negative number (TOP's line count) */
};

struct pop3_command {
	const char *name;
	void (*fn)(struct pop3_session *s, const struct pop3_request *req);
	unsigned int flags;
	unsigned char min_args, max_args;
	enum pop3_arg args[2];
};

#define POP3_MAX_ARGS 2

struct pop3_request {
	const struct pop3_command *cmd;
	unsigned int argc;
	const char *argv[POP3_MAX_ARGS];
	uint32_t num[POP3_MAX_ARGS];      /* value of POP3_ARG_MSG/COUNT arguments */
	struct pop3_msg *msg[POP3_MAX_ARGS];  /* POP3_ARG_MSG: set by the dispatcher */
};

enum pop3_parse_result {
	POP3_PARSE_OK,
	POP3_PARSE_BAD_CHARS,     /* NUL, bare CR or other control bytes */
	POP3_PARSE_UNKNOWN,       /* no such command */
	POP3_PARSE_ARGS,          /* too few or too many arguments */
	POP3_PARSE_NUMBER,        /* a number argument is not one */
};

/* Splits line (modified in place) into a command of the table and its
 * arguments, checking arity and number syntax (not the session state,
 * nor message ranges: the dispatcher does those). Numbers above
 * UINT32_MAX saturate. */
enum pop3_parse_result pop3_parse(char *line, size_t len, unsigned int lr_flags,
				  struct pop3_request *req_r);
/* "-ERR ..." text for a parse failure. */
const char *pop3_parse_error(enum pop3_parse_result result);
/* Decimal digits only, saturating at UINT32_MAX; false when not a number. */
bool pop3_parse_number(const char *text, uint32_t *value_r);

/* ---- pop3-server.c ---- */

void pop3_set_state(struct pop3_session *s, enum pop3_state state);
void pop3_reply(struct pop3_session *s, const char *line);
void pop3_replyf(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A failure reply; before login it counts against the bad-command budget. */
void pop3_error(struct pop3_session *s, const char *line);
/* Input processing resumes (after a delayed reply or a stream). */
void pop3_resume(struct pop3_session *s);

/* ---- command handlers ---- */

void pop3_cmd_capa(struct pop3_session *s, const struct pop3_request *req);
void pop3_cmd_stls(struct pop3_session *s, const struct pop3_request *req);
void pop3_cmd_noop(struct pop3_session *s, const struct pop3_request *req);
void pop3_cmd_quit(struct pop3_session *s, const struct pop3_request *req);
/* pop3-auth.c */
void pop3_cmd_user(struct pop3_session *s, const struct pop3_request *req);
void pop3_cmd_pass(struct pop3_session *s, const struct pop3_request *req);
void pop3_cmd_apop(struct pop3_session *s, const struct pop3_request *req);
void pop3_cmd_auth(struct pop3_session *s, const struct pop3_request *req);
void pop3_sasl_response(struct pop3_session *s, const char *line);
void pop3_auth_free(struct pop3_session *s);
/* pop3-maildrop.c */
void pop3_cmd_stat(struct pop3_session *s, const struct pop3_request *req);
void pop3_cmd_list(struct pop3_session *s, const struct pop3_request *req);
void pop3_cmd_uidl(struct pop3_session *s, const struct pop3_request *req);
void pop3_cmd_dele(struct pop3_session *s, const struct pop3_request *req);
void pop3_cmd_rset(struct pop3_session *s, const struct pop3_request *req);
/* Opens the maildrop of the logged-in user: 0, or -1 after replying. */
int pop3_maildrop_open(struct pop3_session *s, const char *user);
/* UPDATE state: expunges the DELE'd messages. Returns the reply. */
const char *pop3_maildrop_update(struct pop3_session *s);
void pop3_maildrop_close(struct pop3_session *s);
/* Message number num of the maildrop, or NULL with the -ERR reply (out of
 * range, deleted). */
struct pop3_msg *pop3_msg_lookup(struct pop3_session *s, uint32_t num, const char **error_r);
/* pop3-retr.c */
void pop3_cmd_retr(struct pop3_session *s, const struct pop3_request *req);
void pop3_cmd_top(struct pop3_session *s, const struct pop3_request *req);
void pop3_stream_free(struct pop3_session *s);

/* Message body conversion for RETR/TOP (pop3-retr.c), exposed for tests:
 * bare LF becomes CRLF, a line starting with '.' gets another, a TOP
 * stops after the header and body_lines lines of body. */
struct pop3_convert {
	bool top;
	uint32_t body_lines;      /* TOP: body lines still to send */
	bool in_body;
	bool line_start;
	bool prev_cr;
	uint64_t line_bytes;      /* bytes of the current line so far */
	bool done;                /* TOP reached its end */
	uint64_t octets;          /* message octets sent, without dot-stuffing */
};
void pop3_convert_init(struct pop3_convert *cv, bool top, uint32_t body_lines);
/* Appends the converted form of data to out. */
void pop3_convert(struct pop3_convert *cv, const char *data, size_t len, struct buf *out);
/* Appends the end: a CRLF when the last line had none, then ".\r\n". */
void pop3_convert_finish(struct pop3_convert *cv, struct buf *out);

#endif

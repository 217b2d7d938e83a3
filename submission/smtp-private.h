#ifndef POSTERN_SMTP_PRIVATE_H
#define POSTERN_SMTP_PRIVATE_H

/* Shared by the files of submission/ only. */

#include "submission/smtp.h"
#include "submission/smtp-data.h"
#include "submission/smtp-parse.h"
#include "core/core.h"

#include <stdbool.h>
#include <stdint.h>

struct auth_session;
struct event;
struct intake;

/* RFC 5321 4.5.3.1.4 caps command lines at 512 octets; RFC 4954 4 lets an
 * AUTH line (and a SASL response) run to 12288. */
#define SMTP_MAX_COMMAND_LINE 512
#define SMTP_MAX_AUTH_LINE 12288
#define SMTP_MAX_ERRORS 10            /* bad commands (and unknown recipients) before 421 */
#define SMTP_SOFT_ERRORS 3            /* after this many, unknown recipients are answered slowly */
#define SMTP_ERROR_DELAY_MS 1000

enum smtp_state {
	SMTP_STATE_INIT,    /* greeted, no EHLO/HELO yet */
	SMTP_STATE_READY,   /* EHLO/HELO done, no transaction */
	SMTP_STATE_AUTH,    /* inside a SASL exchange: lines are responses */
	SMTP_STATE_MAIL,    /* MAIL accepted: RCPT, DATA, BDAT */
	SMTP_STATE_DATA,    /* reading the message until <CRLF>.<CRLF> */
	SMTP_STATE_BDAT,    /* reading a BDAT chunk of known size */
	SMTP_STATE_WAIT,    /* waiting for the auth module's answer, or for intake to
			       finish the message; input paused */
};

/* One mail transaction: the intake job that takes the message, and the
 * state of DATA or BDAT. */
struct smtp_txn {
	struct pool *pool;
	struct intake *job;
	struct smtp_path sender;
	struct smtp_mail_params params;
	size_t rcpt_count;
	/* the message */
	bool started;                   /* DATA or the first BDAT began */
	bool bdat;                      /* the message comes in BDAT chunks */
	uint64_t bdat_remaining;        /* bytes left in the current chunk */
	bool bdat_last;
	uint64_t bdat_total;
	const char *bdat_refusal;       /* reply once the chunk is consumed */
	struct smtp_data_decoder dec;
};

struct smtp_session {
	struct conn *conn;
	struct pool *cmd_pool;          /* cleared before each command */
	struct linereader lr;
	enum smtp_state state;
	enum listener_kind kind;
	char *helo;
	bool esmtp;
	int errors;
	struct auth_session *auth;
	char *user;                     /* authenticated canonical address */
	struct smtp_txn *txn;
};

void smtp_set_state(struct smtp_session *s, enum smtp_state state);
void smtp_reply(struct smtp_session *s, const char *line);
void smtp_error(struct smtp_session *s, const char *line);
bool smtp_is_submission(const struct smtp_session *s);

/* smtp-auth.c */
void smtp_cmd_auth(struct smtp_session *s, const char *args);
void smtp_auth_response(struct smtp_session *s, const char *line);
void smtp_auth_write_ehlo(struct smtp_session *s);
void smtp_auth_reset(struct smtp_session *s);

/* smtp-mail.c */
void smtp_cmd_mail(struct smtp_session *s, const char *args);
void smtp_cmd_rcpt(struct smtp_session *s, const char *args);
void smtp_cmd_data(struct smtp_session *s, const char *args);
void smtp_cmd_bdat(struct smtp_session *s, const char *args);
/* Feeds buffered message bytes (DATA or BDAT state); false when more
 * input is needed. */
bool smtp_mail_input(struct smtp_session *s, struct evbuffer *in);
void smtp_txn_abort(struct smtp_session *s);


#endif

#ifndef POSTERN_SMTP_PARSE_H
#define POSTERN_SMTP_PARSE_H

/* Parsers for the arguments of MAIL and RCPT (RFC 5321 4.1.2, with the
 * parameters of RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 3030 BINARYMIME,
 * RFC 6531 SMTPUTF8, RFC 3461 DSN and RFC 4954 AUTH). Private to
 * submission/. On error each returns -1 and a complete reply line (code,
 * enhanced code, one-line reason) in reply_r. */

#include <stdbool.h>
#include <stdint.h>

struct pool;

#define SMTP_MAX_LOCALPART 64
#define SMTP_MAX_DOMAIN 255
#define SMTP_MAX_PATH 256

enum smtp_body { SMTP_BODY_UNSET, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };
enum smtp_ret { SMTP_RET_UNSET, SMTP_RET_FULL, SMTP_RET_HDRS };

enum smtp_notify {
	SMTP_NOTIFY_NEVER = 1 << 0,
	SMTP_NOTIFY_SUCCESS = 1 << 1,
	SMTP_NOTIFY_FAILURE = 1 << 2,
	SMTP_NOTIFY_DELAY = 1 << 3,
};

struct smtp_path {
	char *address;      /* "local@domain"; "" for the null path <> */
	bool utf8;          /* holds non-ASCII (needs SMTPUTF8) */
	bool postmaster;    /* the bare <Postmaster> of RFC 5321 4.5.1 */
};

struct smtp_mail_params {
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	char *envid;        /* xtext-decoded, NULL when absent */
	char *auth;         /* AUTH= value (RFC 4954 5), kept for the log only */
};

struct smtp_rcpt_params {
	unsigned int notify;  /* smtp_notify bits, 0 = not given */
	char *orcpt;          /* "rfc822;addr" with the address xtext-decoded */
};

/* args: what follows "MAIL " ("FROM:<a@b> SIZE=10"). */
int smtp_parse_mail(const char *args, struct pool *pool, struct smtp_path *path_r,
		    struct smtp_mail_params *params_r, const char **reply_r);
/* args: what follows "RCPT " ("TO:<a@b> NOTIFY=NEVER"). */
int smtp_parse_rcpt(const char *args, struct pool *pool, struct smtp_path *path_r,
		    struct smtp_rcpt_params *params_r, const char **reply_r);
/* xtext (RFC 3461 4): "+2B" -> "+"; NULL on malformed input. */
char *smtp_xtext_decode(const char *text, struct pool *pool);
/* Checks "local@domain" (the Mailbox of RFC 5321), allowing UTF-8 when
 * utf8_ok; sets *utf8_r when it holds non-ASCII. */
bool smtp_mailbox_valid(const char *mailbox, bool utf8_ok, bool *utf8_r);

#endif

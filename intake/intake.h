#ifndef POSTERN_INTAKE_H
#define POSTERN_INTAKE_H

/* intake/: the one door for every message (Postfix's cleanup(8),
 * Dovecot's mail-deliver). SMTP DATA and BDAT, the relay's local retries
 * and its delivery reports, and `postern deliver` all hand their message
 * to an intake job; IMAP APPEND uses its store half (intake_append_*).
 *
 *   intake_begin(sv, cfg, &env, &job)        envelope: sender, who, where from
 *   intake_add_rcpt(job, addr, &params, &st) once per recipient: aliases,
 *                                            hosted or remote, relay policy,
 *                                            quota; a status per recipient
 *   intake_write(job, bytes, len) ...        the message as it comes (SMTP:
 *                                            dot-stuffing already removed)
 *   intake_end(job, offload, done, ctx)      header checks' verdict, filters'
 *                                            end steps, then the file is
 *                                            linked into mailboxes and/or
 *                                            the queue, fsynced, and done()
 *                                            runs with the results
 *   intake_free(&job)
 *
 * The job owns the whole path of the bytes: the line-ending rule (bare CR
 * or LF refused, or made CRLF with normalize_bare_lf), the header block
 * (held up to INTAKE_MAX_HEADER bytes, a bigger one refuses the message),
 * every header check (the Received loop count, the sender-login match of
 * From:, Return-Path dropped), the fields written once (Return-Path on
 * stored copies, Received, Date and Message-ID for submission), the filter
 * chain, and the one file written. Nothing is acknowledged before
 * intake_end() says so, and what it says OK is on disk.
 *
 * Results are protocol-neutral (struct intake_status): a code, a class
 * (2/4/5) and an RFC 3463 enhanced status with a one-line reason; SMTP
 * turns them into reply lines, the relay into queue results, the CLI into
 * messages. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"

struct config;
struct intake;
struct offload;
struct services;
struct store_account;

/* The largest header block taken (fields and their line ends, the blank
 * line that ends the block not counted). One byte more and the message
 * is refused with INTAKE_HEADER_TOO_BIG. */
#define INTAKE_MAX_HEADER (512 * 1024)
#define INTAKE_MAX_FROM_ADDRESSES 32

enum intake_origin {
	INTAKE_SUBMISSION,   /* 587/465, an authenticated user */
	INTAKE_INBOUND,      /* the MX port 25 */
	INTAKE_LOCAL,        /* `postern deliver` */
	INTAKE_RETRY,        /* the relay: a queued message to hosted mailboxes */
	INTAKE_REPORT,       /* a message Postern writes itself (DSN) */
	INTAKE_INJECT,       /* `postern queue inject`: checked like LOCAL, but every
				recipient is queued for the relay, none delivered now */
};

enum intake_body { INTAKE_BODY_UNSET, INTAKE_BODY_7BIT, INTAKE_BODY_8BITMIME,
		   INTAKE_BODY_BINARYMIME };
enum intake_ret { INTAKE_RET_UNSET, INTAKE_RET_FULL, INTAKE_RET_HDRS };

/* The DSN NOTIFY bits (RFC 3461), the values of queue.h's QUEUE_NOTIFY_*. */
#define INTAKE_NOTIFY_NEVER   (1u << 0)
#define INTAKE_NOTIFY_SUCCESS (1u << 1)
#define INTAKE_NOTIFY_FAILURE (1u << 2)
#define INTAKE_NOTIFY_DELAY   (1u << 3)

struct intake_envelope {
	enum intake_origin origin;
	const char *sender;          /* "" for the null sender <> */
	const char *user;            /* authenticated canonical address, or NULL */
	/* the client, for Received: and the filters (SMTP origins) */
	const char *helo;            /* as given, NULL when none */
	const char *remote_ip;       /* NULL when not over the network */
	const char *tls;             /* "TLSv1.3 ..." when over TLS, else NULL */
	bool esmtp;
	const char *id;              /* the transaction id for logs and Received: */
	/* MAIL parameters */
	enum intake_body body;
	bool smtputf8;
	const char *envid;           /* RFC 3461 ENVID, NULL when absent */
	enum intake_ret ret;
	uint64_t declared_size;      /* SIZE=, 0 when not given */
	/* the folder hosted recipients get it in, NULL = INBOX (deliver -m) */
	const char *mailbox;
	/* INTAKE_RETRY only: what the queue record carries */
	const char *queue_id;
	const char *prepend;         /* fields the first intake added for every copy */
};

struct intake_rcpt_params {
	unsigned int notify;         /* INTAKE_NOTIFY_* bits, 0 = not given */
	const char *orcpt;           /* "rfc822;addr", NULL when not given */
};

enum intake_code {
	INTAKE_OK = 0,
	/* per recipient */
	INTAKE_UNKNOWN_USER,         /* 550 5.1.1 */
	INTAKE_NO_TARGET,            /* 550 5.1.1 expands to nothing deliverable */
	INTAKE_RELAY_DENIED,         /* 554 5.7.1 not a hosted domain, no login */
	INTAKE_RELAY_DISABLED,       /* 554 5.7.1 [relay] mode = none */
	INTAKE_BINARY_REMOTE,        /* 554 5.6.3 BINARYMIME to another server */
	INTAKE_OVER_QUOTA,           /* 552 5.2.2 (452 4.2.2 with quota_full_tempfail) */
	INTAKE_TOO_MANY_RCPTS,       /* 452 4.5.3 */
	INTAKE_LOOKUP_FAILED,        /* 451 4.3.0 */
	INTAKE_NOT_LOCAL,            /* deliver: expands outside */
	/* per message */
	INTAKE_SENDER_NOT_OWNED,     /* 553 5.7.1 envelope sender */
	INTAKE_FROM_NOT_OWNED,       /* 553 5.7.1 From: */
	INTAKE_FROM_UNPARSABLE,      /* 553 5.7.1 */
	INTAKE_LOOP,                 /* 554 5.4.6 too many Received: */
	INTAKE_HEADER_TOO_BIG,       /* 552 5.3.4 */
	INTAKE_BARE_NEWLINE,         /* 550 5.6.0 bare CR or LF */
	INTAKE_LINE_TOO_LONG,        /* 550 5.6.0 */
	INTAKE_TOO_BIG,              /* 552 5.3.4 */
	INTAKE_NO_SPACE,             /* 452 4.3.1 */
	INTAKE_LOCAL_ERROR,          /* 451 4.3.0 */
	INTAKE_FILTER_REJECT,        /* 5xx from a filter, its reason */
	INTAKE_FILTER_TEMPFAIL,      /* 4xx from a filter, its reason */
};

struct intake_status {
	enum intake_code code;
	int reply;                   /* the SMTP reply code it maps to (250, 451, 550, ...) */
	char enhanced[12];           /* "5.1.1" */
	char text[256];              /* one line, no code: "Recipient address rejected: ..." */
};

/* ---- a job ------------------------------------------------------------- */

/* Starts a message. env is copied. The envelope sender of a submission
 * must be the user's own (INTAKE_SENDER_NOT_OWNED in status_r, and no
 * job). Returns 0 with *job_r, or -1 with status_r filled. */
int intake_begin(struct services *sv, const struct config *cfg,
		 const struct intake_envelope *env, struct intake **job_r,
		 struct intake_status *status_r);
void intake_free(struct intake **job);

/* Adds a recipient: hosted or remote, aliases expanded, relay policy and
 * quota (read from the account database now) checked. Returns 0 when the
 * recipient is taken (status INTAKE_OK), -1 when refused (status says
 * why). Postmaster without a domain is the caller's to map. */
int intake_add_rcpt(struct intake *job, const char *address,
		    const struct intake_rcpt_params *params, struct intake_status *status_r);
size_t intake_rcpt_count(const struct intake *job);
/* Is address in a hosted domain (delivered here, never relayed)? */
bool intake_is_hosted(struct services *sv, const char *address);

/* Opens where the message will be written (and starts the filters),
 * before the first byte: false when it cannot be stored now (the caller
 * may refuse at once, e.g. SMTP's DATA with 451). intake_write() opens it
 * too when this was not called. */
bool intake_open(struct intake *job);
/* The message bytes, in any pieces. Problems (bare line ends, size,
 * header size) are remembered and reported by intake_end(); writing on
 * after one is harmless (nothing more is kept). */
void intake_write(struct intake *job, const void *data, size_t len);
/* Bytes taken so far (the message as received, after normalising). */
uint64_t intake_size(const struct intake *job);

typedef void intake_done_fn(void *ctx, struct intake *job);
/* Ends the message: the header checks' verdict, the filters' end steps
 * (in a thread of o when given and a filter may block, else inline),
 * then delivery into the store and the queue, all durable. done(ctx, job)
 * runs with the results, on the calling thread's loop, possibly before
 * intake_end() returns; without o everything is over when it returns
 * (done may then be NULL). intake_free() while the filters still run in
 * a thread abandons the message: nothing is delivered. */
void intake_end(struct intake *job, struct offload *o, intake_done_fn *done, void *ctx);

/* After done: the message's status (INTAKE_OK when at least one recipient
 * has it or it is queued for them), the queue id ("" when nothing was
 * queued), and each recipient's own result in intake_add_rcpt() order
 * (a recipient taken at RCPT but whose local delivery failed for good
 * is not OK; a temporary local failure is queued for retry and is OK). */
const struct intake_status *intake_result(const struct intake *job);
const char *intake_queue_id(const struct intake *job);
/* The message's id in logs and Received: (the envelope's, or a new one). */
const char *intake_id(const struct intake *job);
const struct intake_status *intake_rcpt_result(const struct intake *job, size_t i);
/* The UID a hosted recipient's copy got (0 when none, e.g. queued). */
uint32_t intake_rcpt_uid(const struct intake *job, size_t i);

/* Fills a status for a code (its reply code, enhanced status and default
 * text); the config decides quota's 452/552. For the users of the door. */
void intake_status_set(struct intake_status *st, const struct config *cfg,
		       enum intake_code code, const char *text);

/* ---- the store half, for IMAP APPEND ---------------------------------- */

/* Pushes the account's quota, read from the account database now, into
 * its store index, so that the next append is held to it. 0 or -1. */
int intake_quota_refresh(struct services *sv, struct store_account *acct,
			 const char *account);

/* ---- filters ----------------------------------------------------------- */

/* A filter is one step of the chain: it sees the complete header field
 * by field, then the body streamed, and at the end gives its verdict.
 * Filters are registered once per process (before the first job); each
 * job asks every filter whether it wants the message. DKIM signing and
 * the inbound checks (SPF, DKIM, DMARC, rspamd) plug in here.
 *
 * Every callback but end runs on the caller's thread as the bytes come.
 * end may block (DNS, HTTP): it runs in an offload thread when the job
 * has one, so it may touch nothing but its own state and the verdict. */

enum intake_action {
	INTAKE_ACCEPT,               /* go on with the next filter */
	INTAKE_REJECT,               /* refuse the message for good (5xx) */
	INTAKE_DEFER,                /* refuse it for now (4xx) */
};

struct intake_verdict {
	enum intake_action action;
	char reply[256];             /* with REJECT/DEFER: "5.7.1 reason" (enhanced + text) */
	/* complete fields ("Name: value\r\n", folded) put on top of every
	 * copy, after Return-Path (Authentication-Results, X-Spam-*) */
	struct buf prepend;
	/* fields put on top of the copies that leave for other hosts only
	 * (DKIM-Signature) */
	struct buf prepend_remote;
	/* the folder hosted recipients get it in (NULL = as it was); a
	 * string of the filter's that outlives the job */
	const char *folder;
};

/* What a filter may read about the message. */
struct intake_info {
	const struct intake_envelope *env;
	const struct config *cfg;
	bool has_local;              /* hosted recipients */
	bool has_remote;             /* recipients on other hosts */
	/* RFC5322.From's domain (lowercased), NULL when none or several;
	 * set by the time end() runs */
	const char *from_domain;
};

struct intake_filter {
	const char *name;
	/* A state for this message, or NULL to stay out of it. */
	void *(*begin)(const struct intake_info *info);
	/* One complete header field as received ("Name: value\r\n", folded,
	 * with its line ends), in order. Return false to drop it. */
	bool (*header)(void *state, const char *field, size_t len);
	/* The header block ended; the fields intake added (Date, Message-ID)
	 * were passed to header() just before. */
	void (*header_end)(void *state);
	/* Body bytes (CRLF line ends), in any pieces. */
	void (*body)(void *state, const char *data, size_t len);
	/* The verdict, which holds what earlier filters said. May block. */
	void (*end)(void *state, const struct intake_info *info, struct intake_verdict *v);
	void (*free)(void *state);
	/* true when the filter only ever fills prepend_remote: intake may
	 * then write hosted recipients' copies straight away. Otherwise the
	 * message is held aside until the verdict, and stored copies are
	 * written with what the filters put on top. */
	bool remote_only;
};

/* Adds a filter at the end of the chain (process-wide; at most 16). */
void intake_filter_register(const struct intake_filter *f);
/* Tests: forget every filter. */
void intake_filter_reset(void);

#endif

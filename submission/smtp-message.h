#ifndef POSTERN_SMTP_MESSAGE_H
#define POSTERN_SMTP_MESSAGE_H

/* What happens to a message between the DATA/BDAT decoder and the spool
 * file: the Received: trace header goes first (RFC 5321 4.4); the header
 * block is held (bounded) until it ends so that it can be checked (loop
 * count, From: addresses) and, for submission, completed with Date: and
 * Message-ID: when missing (RFC 6409 8.3, 8.6); the body streams through.
 * Private to submission/. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"

#define SMTP_MAX_HEADER_BLOCK (512 * 1024)
#define SMTP_MAX_FROM_ADDRESSES 32

struct smtp_message {
	bool add_missing;           /* submission: add Date/Message-ID */
	const char *hostname;       /* for Message-ID */
	bool in_body;
	struct buf header;          /* the held header block */
	size_t line_start;          /* offset in header of the current line */
	int received_count;
	bool has_date;
	bool has_message_id;
	bool has_from;
	/* addresses found in From: (lowercased domain), for the sender check */
	char *from[SMTP_MAX_FROM_ADDRESSES];
	int from_count;
	bool from_unparsable;
	void (*write)(void *ctx, const char *data, size_t len);
	void *ctx;
};

void smtp_message_init(struct smtp_message *m, const char *trace, bool add_missing,
		       const char *hostname,
		       void (*write)(void *ctx, const char *data, size_t len), void *ctx);
/* Decoded message bytes (CRLF line ends). */
void smtp_message_feed(struct smtp_message *m, const char *data, size_t len);
/* The end of the message: a header block that never ended is flushed. */
void smtp_message_finish(struct smtp_message *m);
void smtp_message_free(struct smtp_message *m);

/* Extracts the addr-specs of an RFC 5322 address list (display names,
 * comments, groups and quoted strings understood). Returns the count
 * stored (up to max), -1 when the text cannot be parsed. */
int smtp_address_list(const char *value, size_t len, char **out, int max);

/* "Sun, 29 Nov 2026 12:00:00 +0000" */
void smtp_rfc5322_date(time_t t, char *out, size_t out_size);

#endif
